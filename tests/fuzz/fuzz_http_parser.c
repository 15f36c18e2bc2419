/* fuzz_http_parser.c: a libFuzzer target for the request parser and its validation
 * layer (src/http/parser.c over llhttp).
 *
 * The input is what a client sends on one connection, as it is: the corpus files
 * (tests/fuzz/corpus/) are plain HTTP. The target drives the parser the way the
 * worker does (feed, hand over each complete request, go on with the bytes after it,
 * end of input) three times over: the whole input in one piece, in pieces whose sizes
 * come from a hash of the input, and one byte at a time. Besides crashes and sanitizer
 * reports it checks:
 *
 *   - what the validation layer promises of every request it hands over: offsets
 *     inside the head, tokens for names, no control bytes in values, one framing,
 *     Gunicorn's limits, a body whose length matches its framing;
 *   - that the three runs agree: how a client's bytes happen to be split across reads
 *     must never change which requests are seen, nor what they hold, nor whether the
 *     connection ends in a refusal. (Which refusal may differ: with two faults in one
 *     head, the one noticed first can depend on where a read ended.)
 *
 * A broken rule aborts, which libFuzzer reports as a crash with the input saved. The
 * same entry point runs the corpus without libFuzzer in the test suite
 * (tests/fuzz/replay.c). Limits, including a tiny spool threshold that sends bodies
 * through the temporary-file path, also come from the hash. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/parser.h"
#include "http/response.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Keeps the harness's memory bounded: a longer input is cut (libFuzzer's -max_len
 * normally keeps inputs below this anyway). */
#define MAX_INPUT (256 * 1024)

typedef struct {
    uint64_t hash; /* of every request handed over, in order */
    int requests;
    int refused; /* the connection ended in a refusal */
} outcome_t;

static void check(int ok, const char *what, const uint8_t *data, size_t size)
{
    if (ok)
        return;
    fprintf(stderr, "fuzz_http_parser: broken rule: %s (input of %zu bytes)\n", what, size);
    (void)data;
    abort();
}

static uint64_t mix(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 0x100000001b3ull; /* FNV-1a */
    return h;
}

static uint64_t mix_int(uint64_t h, int64_t v)
{
    return mix(h, &v, sizeof(v));
}

/* splitmix64: the piece sizes and limits are a function of the input only, so a saved
 * input replays exactly. */
static uint64_t next_random(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static int view_in(const gc__buf_t *head, uint32_t off, uint32_t len)
{
    return (uint64_t)off + len <= head->len;
}

/* Checks a request handed over (with its body, unless it is only the head of one
 * that waits for "100 Continue") and folds it into the outcome. */
static void take_request(const gc__http_parser_t *p, int with_body, outcome_t *out, uint64_t *rnd,
                         const uint8_t *data, size_t size)
{
    const gc__http_request_t *r = &p->req;
    const gc__http_limits_t *l = p->limits;
    check(view_in(&r->head, r->method_off, r->method_len), "method inside head", data, size);
    check(view_in(&r->head, r->target_off, r->target_len), "target inside head", data, size);
    check(r->method_len > 0 && r->target_len > 0, "method and target present", data, size);
    check(r->major == 1 && (r->minor == 0 || r->minor == 1), "HTTP/1.0 or 1.1", data, size);
    check(!(r->chunked && r->content_length >= 0), "one framing only", data, size);
    check(!(r->chunked && r->minor == 0), "no chunked on HTTP/1.0", data, size);
    if (l->max_line)
        check((size_t)r->method_len + r->target_len + 10 <= l->max_line, "request line limit", data,
              size);
    check(r->nfields <= l->max_fields, "field count limit", data, size);
    gc__view_t target = gc__http_target(r);
    for (size_t i = 0; i < target.len; i++)
        check((unsigned char)target.base[i] > ' ' && (unsigned char)target.base[i] < 0x7f,
              "target is visible ASCII", data, size);
    check(!(r->method_len == 7 && memcmp(gc__http_method(r).base, "CONNECT", 7) == 0), "no CONNECT",
          data, size);
    ssize_t host = gc__http_find_field(r, "host");
    check(host < 0 || gc__http_field_value(r, (size_t)host).len > 0 ||
              (target.base[0] != '/' && target.base[0] != '*'),
          "an empty Host only with an absolute-form target", data, size);
    int hosts = 0;
    uint64_t h = out->hash;
    h = mix(h, gc__http_method(r).base, r->method_len);
    h = mix(h, gc__http_target(r).base, r->target_len);
    h = mix_int(h, r->minor);
    for (size_t i = 0; i < r->nfields; i++) {
        const gc__http_field_t *f = &r->fields[i];
        check(view_in(&r->head, f->name_off, f->name_len) &&
                  view_in(&r->head, f->value_off, f->value_len),
              "field inside head", data, size);
        gc__view_t name = gc__http_field_name(r, i), value = gc__http_field_value(r, i);
        check(gc__http_is_token(name), "field name is a token", data, size);
        check(gc__http_is_field_value(value), "field value has no control bytes", data, size);
        check(value.len == 0 ||
                  (value.base[0] != ' ' && value.base[0] != '\t' &&
                   value.base[value.len - 1] != ' ' && value.base[value.len - 1] != '\t'),
              "field value trimmed", data, size);
        check(name.len + value.len + 4 <= l->max_field_size, "field size limit", data, size);
        hosts += gc__view_ieq(name, "host");
        h = mix(h, name.base, name.len);
        h = mix(h, ":", 1);
        h = mix(h, value.base, value.len);
    }
    check(hosts <= 1 && (r->minor == 0 || hosts == 1), "one Host (required in 1.1)", data, size);
    h = mix_int(h, r->keep_alive);
    h = mix_int(h, r->chunked);
    h = mix_int(h, r->content_length);
    h = mix_int(h, r->expect_continue);
    if (!with_body) {
        out->hash = h;
        out->requests++;
        return;
    }

    /* The body, read back in pieces of random size, as wsgi.input would. */
    const gc__http_body_t *b = &r->body;
    if (r->content_length >= 0)
        check(b->len == (uint64_t)r->content_length, "body length is Content-Length", data, size);
    if (r->content_length < 0 && !r->chunked)
        check(b->len == 0, "no framing, no body", data, size);
    char buf[4096];
    uint64_t off = 0;
    for (;;) {
        size_t want = 1 + (size_t)(next_random(rnd) % sizeof(buf));
        ssize_t got = gc__http_body_read(b, off, buf, want);
        check(got >= 0, "body readable", data, size);
        if (got == 0)
            break;
        h = mix(h, buf, (size_t)got);
        off += (uint64_t)got;
    }
    check(off == b->len, "body reads back whole", data, size);
    h = mix_int(h, (int64_t)b->len);
    out->hash = h;
    out->requests++;
}

/* Runs one connection's bytes through a parser in pieces: piece 0 means one byte at a
 * time, SIZE_MAX the whole input at once, anything else random sizes up to it. */
static void run(const uint8_t *data, size_t size, const gc__http_limits_t *limits, size_t piece,
                uint64_t seed, outcome_t *out)
{
    gc__http_parser_t p;
    gc__http_parser_init(&p, limits);
    memset(out, 0, sizeof(*out));
    out->hash = 0xcbf29ce484222325ull;
    uint64_t rnd = seed; /* the same body reads in every run */
    uint64_t split = seed ^ 0x5bd1e995u;
    size_t off = 0;
    int open = 1;
    while (open && off < size) {
        size_t n = size - off;
        if (piece == 0)
            n = 1;
        else if (piece != SIZE_MAX && n > 1)
            n = 1 + (size_t)(next_random(&split) % (piece < n ? piece : n));
        size_t used = gc__http_parser_feed(&p, (const char *)data + off, n);
        check(used <= n, "feed uses at most what it is given", data, size);
        off += used;
        switch (p.state) {
        case GC_HTTP_NEED_MORE:
            check(used == n, "a parser that needs more takes everything", data, size);
            break;
        case GC_HTTP_READY:
            take_request(&p, 1, out, &rnd, data, size);
            /* The worker closes after a response it cannot keep alive (HTTP/1.0
             * without keep-alive, Connection: close, an upgrade). */
            if (!p.req.keep_alive)
                open = 0;
            else
                gc__http_parser_next(&p);
            break;
        case GC_HTTP_ERROR:
            check(p.error_status >= 400 && p.error_status < 600 && p.error_msg[0] != '\0',
                  "a refusal has a status and a reason", data, size);
            out->refused = 1;
            open = 0;
            break;
        default:
            /* The head of a request whose body waits for "100 Continue": follow the
             * application that reads it, the path that parses more. */
            check(p.state == GC_HTTP_HEAD && p.req.body_pending, "a head-only hand-over", data,
                  size);
            gc__http_parser_resume_body(&p);
            break;
        }
    }
    if (open) {
        gc__http_parser_eof(&p);
        if (p.state == GC_HTTP_ERROR)
            out->refused = 1;
    }
    gc__http_parser_free(&p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > MAX_INPUT)
        size = MAX_INPUT;
    uint64_t seed = mix(0x84222325cbf29ce4ull, data, size);
    uint64_t knobs = seed;
    gc__http_limits_t limits;
    memset(&limits, 0, sizeof(limits)); /* policy fields beyond the defaults: off */
    gc__http_limits_default(&limits);
    /* One input in five gets small limits, one in five a body threshold of a few bytes
     * (bodies then go through the temporary file), one in five obs-fold permitted. */
    switch (next_random(&knobs) % 5) {
    case 0:
        limits.max_line = 16 + next_random(&knobs) % 64;
        limits.max_fields = 1 + next_random(&knobs) % 4;
        limits.max_field_size = 8 + next_random(&knobs) % 64;
        break;
    case 1:
        limits.spool_threshold = next_random(&knobs) % 16;
        break;
    case 2:
        limits.permit_obsolete_folding = 1;
        break;
    default:
        break;
    }

    outcome_t whole, pieces, bytes;
    run(data, size, &limits, SIZE_MAX, seed, &whole);
    run(data, size, &limits, 1 + seed % 97, seed, &pieces);
    if (size <= 16 * 1024) /* byte by byte is slow on big inputs */
        run(data, size, &limits, 0, seed, &bytes);
    else
        bytes = whole;
    int same = whole.hash == pieces.hash && whole.hash == bytes.hash &&
               whole.requests == pieces.requests && whole.requests == bytes.requests &&
               whole.refused == pieces.refused && whole.refused == bytes.refused;
    if (!same)
        fprintf(stderr,
                "fuzz_http_parser: the split changed the outcome: whole %d requests%s, "
                "pieces %d%s, bytes %d%s\n",
                whole.requests, whole.refused ? " then refused" : "", pieces.requests,
                pieces.refused ? " then refused" : "", bytes.requests,
                bytes.refused ? " then refused" : "");
    check(same, "the split does not change the outcome", data, size);
    return 0;
}
