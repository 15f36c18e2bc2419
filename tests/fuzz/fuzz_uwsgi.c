/* fuzz_uwsgi.c: a libFuzzer target for the uwsgi packet parser (src/http/uwsgi.c).
 *
 * The input is what a front end sends on one connection: uwsgi packets with their
 * bodies, back to back (the corpus, tests/fuzz/corpus-uwsgi/, holds such bytes). The
 * target drives the parser as the worker does (feed, take each complete request, go on
 * with the bytes after it, end of input) three times: the input in one piece, in pieces
 * whose sizes come from a hash of the input, and one byte at a time. It checks:
 *
 *   - what every request handed over promises: offsets inside the head, a token for a
 *     method, a target that starts with "/" and holds no byte a path must not, header
 *     names without "_", no CR, LF or NUL in values, the limits, a body of exactly
 *     CONTENT_LENGTH bytes, keep_alive 0 and close_delimited 1;
 *   - that the three runs agree on the requests, what they hold, and whether the
 *     connection ends in a refusal (and with which status: a packet has one fault that
 *     is found first whatever the split).
 *
 * A broken rule aborts. tests/fuzz/replay.c runs the corpus through the same entry
 * point in every build (ctest fuzz_corpus_uwsgi). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/uwsgi.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_INPUT (256 * 1024)

typedef struct {
    uint64_t hash;
    int requests;
    int refused; /* the error status the connection ended with, 0 if none */
} outcome_t;

static void broken(const char *rule)
{
    fprintf(stderr, "fuzz_uwsgi: broken rule: %s\n", rule);
    abort();
}

static uint64_t mix(uint64_t h, const void *p, size_t n)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 0x100000001b3ULL;
    return h;
}

static void check_request(const gc__http_parser_t *p, outcome_t *o)
{
    const gc__http_request_t *r = &p->req;
    const gc__http_limits_t *l = p->limits;
    if ((uint64_t)r->method_off + r->method_len > r->head.len ||
        (uint64_t)r->target_off + r->target_len > r->head.len)
        broken("request line inside the head");
    gc__view_t m = gc__http_method(r), t = gc__http_target(r);
    if (m.len == 0)
        broken("a method");
    for (size_t i = 0; i < m.len; i++)
        if (m.base[i] <= ' ' || m.base[i] == 0x7f || strchr("\"(),/:;<=>?@[\\]{}", m.base[i]))
            broken("the method is a token");
    if (t.len == 0 || t.base[0] != '/')
        broken("the target starts with /");
    const char *q = memchr(t.base, '?', t.len);
    size_t plen = q ? (size_t)(q - t.base) : t.len;
    for (size_t i = 0; i < t.len; i++) {
        unsigned char ch = (unsigned char)t.base[i];
        if (ch < 0x20 || ch == 0x7f || (i < plen && (ch == ' ' || ch >= 0x80 || ch == '#')))
            broken("the target's bytes");
    }
    if (l->max_line && m.len + 1 + t.len + 9 > l->max_line)
        broken("limit_request_line");
    if (r->nfields > l->max_fields)
        broken("limit_request_fields");
    for (size_t i = 0; i < r->nfields; i++) {
        const gc__http_field_t *f = &r->fields[i];
        if ((uint64_t)f->name_off + f->name_len > r->head.len ||
            (uint64_t)f->value_off + f->value_len > r->head.len)
            broken("fields inside the head");
        gc__view_t n = gc__http_field_name(r, i), v = gc__http_field_value(r, i);
        if (n.len == 0 || memchr(n.base, '_', n.len))
            broken("a field name without _");
        if (l->max_field_size && n.len + 2 + v.len + 2 > l->max_field_size)
            broken("limit_request_field_size");
        for (size_t j = 0; j < v.len; j++)
            if (v.base[j] == '\r' || v.base[j] == '\n' || v.base[j] == '\0')
                broken("no CR, LF or NUL in a value");
        o->hash = mix(o->hash, n.base, n.len);
        o->hash = mix(o->hash, v.base, v.len);
    }
    uint64_t want = r->content_length < 0 ? 0 : (uint64_t)r->content_length;
    if (r->body.len != want)
        broken("a body of CONTENT_LENGTH bytes");
    if (r->keep_alive != 0 || r->close_delimited != 1 || r->major != 1 || r->minor != 1)
        broken("HTTP/1.1, closed after the response");
    char buf[4096];
    for (uint64_t off = 0; off < r->body.len;) {
        ssize_t k = gc__http_body_read(&r->body, off, buf, sizeof(buf));
        if (k <= 0)
            broken("the body reads back");
        o->hash = mix(o->hash, buf, (size_t)k);
        off += (uint64_t)k;
    }
    o->hash = mix(o->hash, m.base, m.len);
    o->hash = mix(o->hash, t.base, t.len);
    o->hash = mix(o->hash, &r->url_scheme, sizeof(r->url_scheme));
    o->requests++;
}

/* One connection's worth of bytes, in pieces of `step` (0: from the hash `seed`). */
static outcome_t run(const gc__http_limits_t *limits, const uint8_t *data, size_t size, size_t step,
                     uint64_t seed)
{
    outcome_t o = {.hash = 0xcbf29ce484222325ULL};
    gc__http_parser_t p;
    gc__uwsgi_parser_t u;
    gc__http_parser_init(&p, limits);
    gc__uwsgi_init(&u);
    size_t pos = 0;
    uint8_t *pending = NULL; /* bytes fed but not consumed: the next piece starts there */
    size_t npending = 0;
    while (pos < size || npending > 0) {
        size_t piece = step ? step : 1 + (size_t)(seed % 97);
        seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
        if (piece > size - pos)
            piece = size - pos;
        uint8_t *chunk = malloc(npending + piece + 1);
        if (chunk == NULL)
            abort();
        if (npending)
            memcpy(chunk, pending, npending);
        memcpy(chunk + npending, data + pos, piece);
        size_t n = npending + piece;
        pos += piece;
        free(pending);
        pending = NULL;
        npending = 0;
        size_t used = gc__uwsgi_feed(&u, &p, (const char *)chunk, n);
        if (used > n)
            broken("consumed no more than fed");
        if (p.state == GC_HTTP_ERROR) {
            if (p.error_status < 400 || p.error_status > 599)
                broken("an error status");
            o.refused = p.error_status;
            free(chunk);
            break;
        }
        if (p.state == GC_HTTP_READY) {
            check_request(&p, &o);
            gc__http_parser_next(&p);
            gc__uwsgi_next(&u);
        } else if (used != n) {
            broken("a parser waiting for more consumed everything");
        }
        if (used < n) {
            pending = malloc(n - used);
            if (pending == NULL)
                abort();
            memcpy(pending, chunk + used, n - used);
            npending = n - used;
        }
        free(chunk);
        if (pos == size && npending > 0 && used == 0 && p.state == GC_HTTP_NEED_MORE)
            break; /* cannot happen: a waiting parser takes all */
    }
    free(pending);
    if (o.refused == 0) {
        gc__uwsgi_eof(&u, &p);
        if (p.state == GC_HTTP_ERROR)
            o.refused = p.error_status;
    }
    gc__uwsgi_free(&u);
    gc__http_parser_free(&p);
    return o;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > MAX_INPUT)
        size = MAX_INPUT;
    uint64_t seed = mix(0xcbf29ce484222325ULL, data, size);
    gc__http_limits_t limits;
    gc__http_limits_default(&limits);
    /* Small limits now and then, and a tiny spool threshold to exercise the file path. */
    if (seed & 1) {
        limits.max_fields = 1 + (size_t)((seed >> 8) % 8);
        limits.max_field_size = 8 + (size_t)((seed >> 16) % 64);
        limits.max_line = 16 + (size_t)((seed >> 24) % 64);
    }
    limits.spool_threshold = (seed & 2) ? 8 : 1 << 20;
    outcome_t whole = run(&limits, data, size, size ? size : 1, seed);
    outcome_t hashed = run(&limits, data, size, 0, seed);
    outcome_t bytes = run(&limits, data, size, 1, seed);
    if (whole.requests != hashed.requests || whole.requests != bytes.requests ||
        whole.hash != hashed.hash || whole.hash != bytes.hash)
        broken("the same requests however the bytes are split");
    if (whole.refused != hashed.refused || whole.refused != bytes.refused)
        broken("the same refusal however the bytes are split");
    return 0;
}
