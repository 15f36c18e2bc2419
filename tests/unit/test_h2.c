/* test_h2.c: the HTTP/2 server codec in src/h2/h2.c.
 *
 * Two kinds of peer drive the real codec, all in memory:
 *   - an nghttp2 client session (pair_t): well-behaved traffic, with the frames moved
 *     between the two sessions by pump() until neither has anything to say;
 *   - hand-made frames (raw_t): malformed and hostile traffic an nghttp2 client would
 *     never send, with the server's answer decoded frame by frame by scan().
 * Every defence test checks what the server sends back (GOAWAY and its code,
 * RST_STREAM codes, statuses) and that its stream objects stay bounded. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <nghttp2/nghttp2.h>

#include "h2/h2.h"
#include "http/forward.h"
#include "unit.h"

#define MAXS 4096 /* client stream slots: stream id / 2 */

/* ---------------------------------------------------------------------------------- */
/* The pair: our server session and an nghttp2 client session.                        */

typedef struct {
    int status;        /* the final status */
    int informational; /* the last 1xx status */
    gc__buf_t headers; /* "name: value\n" of the final head */
    gc__buf_t trailers;
    gc__buf_t body;
    int closed;
    uint32_t code;
} cresp_t;

typedef struct {
    gc__h2_settings_t set;
    gc__h2_session_t *srv;
    nghttp2_session *cli;
    int srv_error; /* gc__h2_feed's negative return, if any */
    /* Server events. */
    gc__h2_stream_t *reqs[MAXS];
    int nreq, body_done, closes, data_sent;
    uint32_t last_close;
    size_t last_queued;
    int release_on_request; /* release every stream at once (raw floods) */
    int answer_errors;      /* answer error_status heads at once, then release */
    /* Client side. */
    cresp_t resp[MAXS];
    int goaways;
    int32_t goaway_last;
    uint32_t goaway_code;
} pair_t;

static pair_t *pair_new_with(const gc__h2_settings_t *set, nghttp2_option *cli_opt);

static void srv_on_request(void *user, gc__h2_stream_t *st)
{
    pair_t *t = user;
    ASSERT(t->nreq < MAXS);
    t->reqs[t->nreq++] = st;
    if (t->answer_errors && st->error_status) {
        gc__h2_header_t h[] = {{GC_VIEW_LIT("content-type"), GC_VIEW_LIT("text/plain")}};
        ASSERT_OK(gc__h2_respond(t->srv, st, st->error_status, h, 1, 0));
        ASSERT_OK(gc__h2_send_data(t->srv, st, st->error_msg, strlen(st->error_msg), 1));
        gc__h2_stream_release(t->srv, st);
    } else if (t->release_on_request) {
        gc__h2_stream_release(t->srv, st);
    }
}

static void srv_on_body_done(void *user, gc__h2_stream_t *st)
{
    ((pair_t *)user)->body_done++;
}

static void srv_on_close(void *user, gc__h2_stream_t *st, uint32_t code)
{
    pair_t *t = user;
    t->closes++;
    t->last_close = code;
}

static void srv_on_data_sent(void *user, gc__h2_stream_t *st, size_t queued)
{
    pair_t *t = user;
    t->data_sent++;
    t->last_queued = queued;
}

static const gc__h2_callbacks_t srv_cb = {
    .on_request = srv_on_request,
    .on_body_done = srv_on_body_done,
    .on_stream_close = srv_on_close,
    .on_data_sent = srv_on_data_sent,
};

static cresp_t *resp_of(pair_t *t, int32_t id)
{
    ASSERT(id > 0 && id / 2 < MAXS);
    return &t->resp[id / 2];
}

static int cli_on_header(nghttp2_session *ng, const nghttp2_frame *frame, const uint8_t *name,
                         size_t nlen, const uint8_t *value, size_t vlen, uint8_t flags, void *user)
{
    pair_t *t = user;
    cresp_t *r = resp_of(t, frame->hd.stream_id);
    if (nlen == 7 && memcmp(name, ":status", 7) == 0) {
        int status = atoi((const char *)value);
        if (status < 200)
            r->informational = status;
        else
            r->status = status;
        return 0;
    }
    gc__buf_t *b =
        frame->headers.cat == NGHTTP2_HCAT_HEADERS && r->status ? &r->trailers : &r->headers;
    if (r->status == 0 && r->informational)
        return 0; /* a 1xx head's fields */
    gc__buf_printf(b, "%.*s: %.*s\n", (int)nlen, name, (int)vlen, value);
    return 0;
}

static int cli_on_data(nghttp2_session *ng, uint8_t flags, int32_t id, const uint8_t *data,
                       size_t len, void *user)
{
    gc__buf_append(&resp_of(user, id)->body, data, len);
    return 0;
}

static int cli_on_close(nghttp2_session *ng, int32_t id, uint32_t code, void *user)
{
    cresp_t *r = resp_of(user, id);
    r->closed = 1;
    r->code = code;
    return 0;
}

static int cli_on_frame(nghttp2_session *ng, const nghttp2_frame *frame, void *user)
{
    pair_t *t = user;
    if (frame->hd.type == NGHTTP2_GOAWAY) {
        t->goaways++;
        t->goaway_last = frame->goaway.last_stream_id;
        t->goaway_code = frame->goaway.error_code;
    }
    return 0;
}

static pair_t *pair_new_with(const gc__h2_settings_t *set, nghttp2_option *cli_opt)
{
    pair_t *t = calloc(1, sizeof(*t));
    ASSERT(t != NULL);
    t->set = *set;
    t->srv = gc__h2_new(&t->set, &srv_cb, t);
    ASSERT(t->srv != NULL);
    nghttp2_session_callbacks *cbs;
    ASSERT_OK(nghttp2_session_callbacks_new(&cbs));
    nghttp2_session_callbacks_set_on_header_callback(cbs, cli_on_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, cli_on_data);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, cli_on_close);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, cli_on_frame);
    ASSERT_OK(nghttp2_session_client_new2(&t->cli, cbs, t, cli_opt));
    nghttp2_session_callbacks_del(cbs);
    return t;
}

static pair_t *pair_new(void)
{
    gc__h2_settings_t set;
    gc__h2_settings_default(&set);
    pair_t *t = pair_new_with(&set, NULL);
    ASSERT_OK(nghttp2_submit_settings(t->cli, NGHTTP2_FLAG_NONE, NULL, 0));
    return t;
}

static void pair_free(pair_t *t)
{
    gc__h2_free(t->srv);
    nghttp2_session_del(t->cli);
    for (int i = 0; i < MAXS; i++) {
        gc__buf_free(&t->resp[i].headers);
        gc__buf_free(&t->resp[i].trailers);
        gc__buf_free(&t->resp[i].body);
    }
    free(t);
}

/* Moves frames both ways until neither side has anything to send. */
static void pump(pair_t *t)
{
    gc__buf_t out;
    gc__buf_init(&out);
    for (int round = 0; round < 10000; round++) {
        int moved = 0;
        gc__buf_reset(&out);
        ssize_t n = gc__h2_send_into(t->srv, &out, 64 * 1024);
        ASSERT(n >= 0);
        if (n > 0) {
            ASSERT_EQ_INT(nghttp2_session_mem_recv(t->cli, (uint8_t *)out.data, out.len),
                          (ssize_t)out.len);
            moved = 1;
        }
        const uint8_t *p;
        ssize_t m;
        while ((m = nghttp2_session_mem_send(t->cli, &p)) > 0) {
            moved = 1;
            if (t->srv_error)
                continue;
            ssize_t used = gc__h2_feed(t->srv, p, (size_t)m);
            if (used < 0)
                t->srv_error = (int)used;
            else
                ASSERT_EQ_INT(used, m);
        }
        ASSERT(m >= 0);
        if (!moved)
            break;
    }
    gc__buf_free(&out);
}

/* Moves only the client's pending frames to the server (before the server's SETTINGS
 * reach the client). */
static void client_flush(pair_t *t)
{
    const uint8_t *p;
    ssize_t m;
    while ((m = nghttp2_session_mem_send(t->cli, &p)) > 0)
        ASSERT_EQ_INT(gc__h2_feed(t->srv, p, (size_t)m), m);
    ASSERT(m == 0);
}

/* Submits a request; `nv` pairs are name, value strings, NULL-terminated. The names
 * are literals sent as they are (nghttp2 lower-cases the names it copies, which would
 * hide an upper-case name from the server). */
static int32_t request(pair_t *t, const char *const *nv, nghttp2_data_provider *body)
{
    nghttp2_nv a[64];
    size_t n = 0;
    for (; nv[2 * n] != NULL; n++)
        a[n] = (nghttp2_nv){(uint8_t *)nv[2 * n], (uint8_t *)nv[2 * n + 1], strlen(nv[2 * n]),
                            strlen(nv[2 * n + 1]), NGHTTP2_NV_FLAG_NO_COPY_NAME};
    int32_t id = nghttp2_submit_request(t->cli, NULL, a, n, body, NULL);
    ASSERT(id > 0);
    return id;
}

static int32_t get(pair_t *t, const char *path)
{
    const char *nv[] = {":method", "GET",        ":scheme",     "https", ":path",
                        path,      ":authority", "example.com", NULL};
    return request(t, nv, NULL);
}

/* A request body for the client: `len` bytes of a pattern, at most `step` per DATA. */
typedef struct {
    size_t len, off, step;
} cbody_t;

static char body_byte(size_t i)
{
    return (char)('a' + (i * 7) % 26);
}

static ssize_t cbody_read(nghttp2_session *ng, int32_t id, uint8_t *buf, size_t length,
                          uint32_t *flags, nghttp2_data_source *src, void *user)
{
    cbody_t *b = src->ptr;
    size_t n = b->len - b->off;
    if (n > length)
        n = length;
    if (n > b->step)
        n = b->step;
    for (size_t i = 0; i < n; i++)
        buf[i] = (uint8_t)body_byte(b->off + i);
    b->off += n;
    if (b->off == b->len)
        *flags |= NGHTTP2_DATA_FLAG_EOF;
    return (ssize_t)n;
}

static void check_body(const gc__http_body_t *b, size_t len)
{
    ASSERT_EQ_INT(b->len, len);
    char buf[4096];
    uint64_t off = 0;
    while (off < len) {
        ssize_t n = gc__http_body_read(b, off, buf, sizeof(buf));
        ASSERT(n > 0);
        for (ssize_t i = 0; i < n; i++)
            if (buf[i] != body_byte(off + (size_t)i))
                ASSERT_EQ_INT(buf[i], body_byte(off + (size_t)i));
        off += (uint64_t)n;
    }
}

/* The request as text, as test_http_parser.c summarises HTTP/1 requests. */
static void describe(const gc__http_request_t *r, gc__buf_t *out)
{
    gc__view_t m = gc__http_method(r), tg = gc__http_target(r);
    gc__buf_printf(out, "%.*s %.*s %s %d.%d ka=%d cl=%lld\n", (int)m.len, m.base, (int)tg.len,
                   tg.base, r->version, r->major, r->minor, r->keep_alive,
                   (long long)r->content_length);
    for (size_t i = 0; i < r->nfields; i++) {
        gc__view_t n = gc__http_field_name(r, i), v = gc__http_field_value(r, i);
        gc__buf_printf(out, "[%.*s]=[%.*s]\n", (int)n.len, n.base, (int)v.len, v.base);
    }
}

static void respond_text(pair_t *t, gc__h2_stream_t *st, int status, const char *body)
{
    gc__h2_header_t h[] = {{GC_VIEW_LIT("Content-Type"), GC_VIEW_LIT("text/plain")}};
    ASSERT_OK(gc__h2_respond(t->srv, st, status, h, 1, 0));
    ASSERT_OK(gc__h2_send_data(t->srv, st, body, strlen(body), 1));
}

/* ---------------------------------------------------------------------------------- */
/* Hand-made frames.                                                                  */

static const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

static void frame(gc__buf_t *b, uint8_t type, uint8_t flags, uint32_t sid, const void *payload,
                  size_t len)
{
    uint8_t h[9] = {
        (uint8_t)(len >> 16), (uint8_t)(len >> 8),  (uint8_t)len,        type,        flags,
        (uint8_t)(sid >> 24), (uint8_t)(sid >> 16), (uint8_t)(sid >> 8), (uint8_t)sid};
    ASSERT_OK(gc__buf_append(b, h, 9));
    if (len)
        ASSERT_OK(gc__buf_append(b, payload, len));
}

static void rst_frame(gc__buf_t *b, uint32_t sid, uint32_t code)
{
    uint8_t p[4] = {(uint8_t)(code >> 24), (uint8_t)(code >> 16), (uint8_t)(code >> 8),
                    (uint8_t)code};
    frame(b, NGHTTP2_RST_STREAM, 0, sid, p, 4);
}

/* GET / over http with ":authority: x", from HPACK's static table (nghttp2 wants
 * :authority or host). */
static const uint8_t get_block[] = {0x82, 0x86, 0x84, 0x01, 0x01, 'x'};

/* What the server said, frame by frame. */
typedef struct {
    int goaway;
    uint32_t goaway_code;
    int32_t goaway_last;
    int rst;                 /* RST_STREAM frames */
    uint32_t rst_code[MAXS]; /* per stream id / 2, +1 so that 0 means none */
    int status[MAXS];        /* :status of the final head per stream id / 2 */
    int headers;
    nghttp2_hd_inflater *hd;
} scan_t;

static void scan(scan_t *sc, const uint8_t *p, size_t len)
{
    if (sc->hd == NULL)
        ASSERT_OK(nghttp2_hd_inflate_new(&sc->hd));
    while (len >= 9) {
        size_t flen = (size_t)p[0] << 16 | (size_t)p[1] << 8 | p[2];
        uint8_t type = p[3], flags = p[4];
        uint32_t sid =
            ((uint32_t)p[5] << 24 | (uint32_t)p[6] << 16 | (uint32_t)p[7] << 8 | p[8]) & 0x7fffffff;
        ASSERT(len >= 9 + flen);
        const uint8_t *pl = p + 9;
        if (type == NGHTTP2_GOAWAY) {
            sc->goaway++;
            sc->goaway_last = (int32_t)((uint32_t)pl[0] << 24 | (uint32_t)pl[1] << 16 |
                                        (uint32_t)pl[2] << 8 | pl[3]);
            sc->goaway_code =
                (uint32_t)pl[4] << 24 | (uint32_t)pl[5] << 16 | (uint32_t)pl[6] << 8 | pl[7];
        } else if (type == NGHTTP2_RST_STREAM) {
            sc->rst++;
            ASSERT(sid / 2 < MAXS);
            sc->rst_code[sid / 2] =
                1 + ((uint32_t)pl[0] << 24 | (uint32_t)pl[1] << 16 | (uint32_t)pl[2] << 8 | pl[3]);
        } else if (type == NGHTTP2_HEADERS) {
            /* Our server never pads nor sends priority, and a head fits one frame. */
            ASSERT(flags & NGHTTP2_FLAG_END_HEADERS);
            sc->headers++;
            const uint8_t *in = pl;
            size_t inlen = flen;
            for (;;) {
                nghttp2_nv nv;
                int out_flags = 0;
                ssize_t r = nghttp2_hd_inflate_hd2(sc->hd, &nv, &out_flags, in, inlen, 1);
                ASSERT(r >= 0);
                in += r;
                inlen -= (size_t)r;
                if (out_flags & NGHTTP2_HD_INFLATE_EMIT) {
                    if (nv.namelen == 7 && memcmp(nv.name, ":status", 7) == 0) {
                        int st = atoi((const char *)nv.value);
                        if (st >= 200 && sid / 2 < MAXS)
                            sc->status[sid / 2] = st;
                    }
                }
                if (out_flags & NGHTTP2_HD_INFLATE_FINAL) {
                    nghttp2_hd_inflate_end_headers(sc->hd);
                    break;
                }
                if (inlen == 0 && !(out_flags & NGHTTP2_HD_INFLATE_EMIT))
                    break;
            }
        }
        p += 9 + flen;
        len -= 9 + flen;
    }
    ASSERT_EQ_INT(len, 0);
}

static void scan_free(scan_t *sc)
{
    if (sc->hd)
        nghttp2_hd_inflate_del(sc->hd);
}

/* A raw peer: a server session fed hand-made bytes. */
typedef struct {
    pair_t *t; /* the server half of a pair (its client is unused) */
    gc__buf_t in;
    scan_t sc;
    int feed_error;
} raw_t;

static void raw_init(raw_t *r, const gc__h2_settings_t *set)
{
    memset(r, 0, sizeof(*r));
    r->t = pair_new_with(set, NULL);
    r->t->release_on_request = 1;
    gc__buf_init(&r->in);
    ASSERT_OK(gc__buf_append(&r->in, preface, sizeof(preface) - 1));
    frame(&r->in, NGHTTP2_SETTINGS, 0, 0, NULL, 0);
}

/* Feeds what was built, then takes and scans all the server has to say. Returns the
 * feed's result. */
static ssize_t raw_flush(raw_t *r)
{
    ssize_t fed = 0;
    if (r->in.len > 0 && !r->feed_error) {
        fed = gc__h2_feed(r->t->srv, (uint8_t *)r->in.data, r->in.len);
        if (fed < 0)
            r->feed_error = (int)fed;
        else
            ASSERT_EQ_INT(fed, r->in.len);
    }
    gc__buf_reset(&r->in);
    gc__buf_t out;
    gc__buf_init(&out);
    for (;;) {
        gc__buf_reset(&out);
        ssize_t n = gc__h2_send_into(r->t->srv, &out, 64 * 1024);
        if (n <= 0)
            break;
        scan(&r->sc, (uint8_t *)out.data, out.len);
    }
    gc__buf_free(&out);
    return fed;
}

static void raw_free(raw_t *r)
{
    gc__buf_free(&r->in);
    scan_free(&r->sc);
    pair_free(r->t);
}

/* ---------------------------------------------------------------------------------- */
/* Requests and responses with an nghttp2 client.                                    */

static void test_get(void)
{
    pair_t *t = pair_new();
    int32_t id = get(t, "/path/x?q=1");
    pump(t);
    ASSERT_EQ_INT(t->nreq, 1);
    gc__h2_stream_t *st = t->reqs[0];
    ASSERT_EQ_INT(st->id, id);
    ASSERT_EQ_INT(st->error_status, 0);
    ASSERT(st->body_done);
    ASSERT_EQ_INT(t->body_done, 1);
    ASSERT_EQ_INT(st->weight, 16);
    ASSERT_EQ_INT(st->depends_on, 0);
    ASSERT_MEM_STR(st->scheme.base, st->scheme.len, "https");
    gc__buf_t d;
    gc__buf_init(&d);
    describe(&st->req, &d);
    ASSERT_MEM_STR(d.data, d.len,
                   "GET /path/x?q=1 HTTP/2.0 2.0 ka=1 cl=-1\n[host]=[example.com]\n");
    gc__buf_free(&d);
    ASSERT_EQ_INT(st->req.body.len, 0);

    /* Mixed-case and connection-specific names from the application. */
    gc__h2_header_t h[] = {
        {GC_VIEW_LIT("Content-Type"), GC_VIEW_LIT("text/plain")},
        {GC_VIEW_LIT("Connection"), GC_VIEW_LIT("close")},
        {GC_VIEW_LIT("Transfer-Encoding"), GC_VIEW_LIT("chunked")},
        {GC_VIEW_LIT("Keep-Alive"), GC_VIEW_LIT("timeout=5")},
        {GC_VIEW_LIT("X-Thing"), GC_VIEW_LIT("1")},
    };
    ASSERT_OK(gc__h2_respond(t->srv, st, 200, h, 5, 0));
    ASSERT_EQ_INT(gc__h2_respond(t->srv, st, 200, h, 1, 0), -EALREADY);
    ASSERT_OK(gc__h2_send_data(t->srv, st, "hello", 5, 0));
    ASSERT_OK(gc__h2_send_data(t->srv, st, " world", 6, 1));
    ASSERT_EQ_INT(gc__h2_send_data(t->srv, st, "x", 1, 0), -EPIPE);
    pump(t);
    cresp_t *r = resp_of(t, id);
    ASSERT_EQ_INT(r->status, 200);
    ASSERT_MEM_STR(r->headers.data, r->headers.len, "content-type: text/plain\nx-thing: 1\n");
    ASSERT_MEM_STR(r->body.data, r->body.len, "hello world");
    ASSERT(r->closed);
    ASSERT_EQ_INT(r->code, 0);
    ASSERT_EQ_INT(t->closes, 1);
    ASSERT(st->closed);
    ASSERT(!gc__h2_idle(t->srv)); /* held until released */
    gc__h2_stream_release(t->srv, st);
    ASSERT(gc__h2_idle(t->srv));
    pair_free(t);
}

static void test_bad_response_fields(void)
{
    pair_t *t = pair_new();
    get(t, "/");
    pump(t);
    gc__h2_stream_t *st = t->reqs[0];
    gc__h2_header_t crlf[] = {{GC_VIEW_LIT("x-a"), GC_VIEW_LIT("a\r\nb: c")}};
    ASSERT_EQ_INT(gc__h2_respond(t->srv, st, 200, crlf, 1, 1), -EINVAL);
    gc__h2_header_t pseudo[] = {{GC_VIEW_LIT(":path"), GC_VIEW_LIT("/")}};
    ASSERT_EQ_INT(gc__h2_respond(t->srv, st, 200, pseudo, 1, 1), -EINVAL);
    ASSERT_EQ_INT(gc__h2_respond(t->srv, st, 103, NULL, 0, 1), -EINVAL);
    ASSERT_EQ_INT(gc__h2_send_data(t->srv, st, "x", 1, 0), -EPIPE); /* no head yet */
    ASSERT_OK(gc__h2_respond(t->srv, st, 204, NULL, 0, 1));
    pump(t);
    ASSERT_EQ_INT(resp_of(t, 1)->status, 204);
    gc__h2_stream_release(t->srv, st);
    pair_free(t);
}

static void test_head_drops_body(void)
{
    pair_t *t = pair_new();
    const char *nv[] = {":method", "HEAD",  ":scheme", "http", ":authority",
                        "a",       ":path", "/",       NULL};
    int32_t id = request(t, nv, NULL);
    pump(t);
    ASSERT_EQ_INT(t->nreq, 1);
    gc__h2_stream_t *st = t->reqs[0];
    gc__h2_header_t h[] = {{GC_VIEW_LIT("content-length"), GC_VIEW_LIT("5")}};
    ASSERT_OK(gc__h2_respond(t->srv, st, 200, h, 1, 0));
    ASSERT_OK(gc__h2_send_data(t->srv, st, "hello", 5, 1));
    pump(t);
    cresp_t *r = resp_of(t, id);
    ASSERT_EQ_INT(r->status, 200);
    ASSERT_EQ_INT(r->body.len, 0);
    ASSERT(r->closed);
    ASSERT_EQ_INT(r->code, 0);
    gc__h2_stream_release(t->srv, st);
    pair_free(t);
}

static void test_cookies_and_host(void)
{
    pair_t *t = pair_new();
    const char *nv[] = {":method",   "GET",        ":scheme",   "http",   ":path",
                        "/",         ":authority", "a.example", "cookie", "a=1",
                        "x-one",     "1",          "cookie",    "b=2",    "host",
                        "h.example", "cookie",     "c=3",       NULL};
    request(t, nv, NULL);
    pump(t);
    ASSERT_EQ_INT(t->nreq, 1);
    gc__buf_t d;
    gc__buf_init(&d);
    describe(&t->reqs[0]->req, &d);
    /* The client's Host wins over :authority; the crumbs are one field, last. */
    ASSERT_MEM_STR(d.data, d.len,
                   "GET / HTTP/2.0 2.0 ka=1 cl=-1\n[x-one]=[1]\n[host]=[h.example]\n"
                   "[cookie]=[a=1; b=2; c=3]\n");
    gc__buf_free(&d);
    gc__h2_stream_release(t->srv, t->reqs[0]);
    pump(t);
    /* Released without a response: the client is told with a reset. */
    ASSERT(resp_of(t, 1)->closed);
    ASSERT_EQ_INT(resp_of(t, 1)->code, NGHTTP2_INTERNAL_ERROR);
    ASSERT(gc__h2_idle(t->srv));
    pair_free(t);
}

static void test_priority(void)
{
    pair_t *t = pair_new();
    int32_t first = get(t, "/a");
    nghttp2_priority_spec pri;
    nghttp2_priority_spec_init(&pri, first, 201, 1);
    nghttp2_nv nv[] = {
        {(uint8_t *)":method", (uint8_t *)"GET", 7, 3, 0},
        {(uint8_t *)":scheme", (uint8_t *)"http", 7, 4, 0},
        {(uint8_t *)":path", (uint8_t *)"/b", 5, 2, 0},
        {(uint8_t *)":authority", (uint8_t *)"a", 10, 1, 0},
    };
    ASSERT(nghttp2_submit_request(t->cli, &pri, nv, 4, NULL, NULL) > 0);
    pump(t);
    ASSERT_EQ_INT(t->nreq, 2);
    ASSERT_EQ_INT(t->reqs[0]->weight, 16);
    ASSERT_EQ_INT(t->reqs[1]->weight, 201);
    ASSERT_EQ_INT(t->reqs[1]->depends_on, first);
    ASSERT_EQ_INT(t->reqs[1]->exclusive, 1);
    pair_free(t); /* frees held streams too */
}

static void post(pair_t *t, cbody_t *b, int32_t *id)
{
    char cl[32];
    snprintf(cl, sizeof(cl), "%zu", b->len);
    const char *nv[] = {
        ":method", "POST", ":scheme",        "http", ":authority",   "a",
        ":path",   "/up",  "content-length", cl,     "content-type", "application/octet-stream",
        NULL};
    nghttp2_data_provider prd = {.source.ptr = b, .read_callback = cbody_read};
    *id = request(t, nv, &prd);
}

static void test_post_body(void)
{
    pair_t *t = pair_new();
    cbody_t b = {.len = 40000, .step = 5000};
    int32_t id;
    post(t, &b, &id);
    pump(t);
    ASSERT_EQ_INT(t->nreq, 1);
    gc__h2_stream_t *st = t->reqs[0];
    ASSERT_EQ_INT(st->req.content_length, 40000);
    ASSERT(st->body_done);
    ASSERT_EQ_INT(t->body_done, 1);
    ASSERT_EQ_INT(st->req.body.fd, -1); /* under the spool threshold */
    check_body(&st->req.body, 40000);
    respond_text(t, st, 201, "created");
    pump(t);
    ASSERT_EQ_INT(resp_of(t, id)->status, 201);
    ASSERT_EQ_INT(resp_of(t, id)->code, 0);
    gc__h2_stream_release(t->srv, st);
    ASSERT(gc__h2_idle(t->srv));
    pair_free(t);
}

/* DATA longer than content-length: nghttp2 resets the stream after its head was handed
 * over, so the caller hears of it through on_stream_close, and never of a body. */
static void test_content_length_mismatch(void)
{
    pair_t *t = pair_new();
    const char *nv[] = {":method", "POST", ":scheme",        "http", ":authority", "a",
                        ":path",   "/",    "content-length", "10",   NULL};
    cbody_t b = {.len = 20, .step = 20};
    nghttp2_data_provider prd = {.source.ptr = &b, .read_callback = cbody_read};
    int32_t id = request(t, nv, &prd);
    pump(t);
    ASSERT_EQ_INT(t->nreq, 1);
    ASSERT_EQ_INT(t->reqs[0]->req.content_length, 10);
    ASSERT_EQ_INT(t->body_done, 0);
    ASSERT_EQ_INT(t->closes, 1);
    ASSERT_EQ_INT(t->last_close, NGHTTP2_PROTOCOL_ERROR);
    ASSERT_EQ_INT(resp_of(t, id)->code, NGHTTP2_PROTOCOL_ERROR);
    ASSERT_EQ_INT(gc__h2_respond(t->srv, t->reqs[0], 200, NULL, 0, 1), -ECONNRESET);
    gc__h2_stream_release(t->srv, t->reqs[0]);
    ASSERT(gc__h2_idle(t->srv));
    pair_free(t);
}

static void test_post_body_spooled(void)
{
    gc__h2_settings_t set;
    gc__h2_settings_default(&set);
    set.http.spool_threshold = 10000;
    set.initial_window_size = 1 << 20;
    pair_t *t = pair_new_with(&set, NULL);
    ASSERT_OK(nghttp2_submit_settings(t->cli, NGHTTP2_FLAG_NONE, NULL, 0));
    cbody_t b = {.len = 300000, .step = 16384};
    int32_t id;
    post(t, &b, &id);
    pump(t);
    gc__h2_stream_t *st = t->reqs[0];
    ASSERT(st->body_done);
    ASSERT(st->req.body.fd >= 0);
    check_body(&st->req.body, 300000);
    pair_free(t);
}

/* Two bodies on one connection share its memory budget: the second spills early. */
static void test_body_memory_budget(void)
{
    gc__h2_settings_t set;
    gc__h2_settings_default(&set);
    set.http.spool_threshold = 30000;
    set.body_memory = 40000;
    pair_t *t = pair_new_with(&set, NULL);
    ASSERT_OK(nghttp2_submit_settings(t->cli, NGHTTP2_FLAG_NONE, NULL, 0));
    cbody_t b1 = {.len = 25000, .step = 5000}, b2 = {.len = 25000, .step = 5000};
    int32_t id1, id2;
    post(t, &b1, &id1);
    pump(t);
    post(t, &b2, &id2);
    pump(t);
    ASSERT_EQ_INT(t->nreq, 2);
    ASSERT_EQ_INT(t->reqs[0]->req.body.fd, -1);
    ASSERT(t->reqs[1]->req.body.fd >= 0);
    check_body(&t->reqs[0]->req.body, 25000);
    check_body(&t->reqs[1]->req.body, 25000);
    gc__h2_stats_t stats;
    gc__h2_stats(t->srv, &stats);
    ASSERT_EQ_INT(stats.body_memory, 25000);
    /* A released stream gives its body back even before it closes. */
    ASSERT_OK(gc__h2_respond(t->srv, t->reqs[0], 200, NULL, 0, 0));
    gc__h2_stream_release(t->srv, t->reqs[0]);
    gc__h2_stats(t->srv, &stats);
    ASSERT_EQ_INT(stats.body_memory, 0);
    ASSERT_EQ_INT(stats.streams, 2);
    pair_free(t);
}

/* The client's window is small and it grants more only when told to: the server sends
 * what the window allows, keeps the rest queued, and resumes on WINDOW_UPDATE; an empty
 * queue defers until more bytes arrive. */
static void test_streamed_response_flow_control(void)
{
    gc__h2_settings_t set;
    gc__h2_settings_default(&set);
    nghttp2_option *opt;
    ASSERT_OK(nghttp2_option_new(&opt));
    nghttp2_option_set_no_auto_window_update(opt, 1);
    pair_t *t = pair_new_with(&set, opt);
    nghttp2_option_del(opt);
    nghttp2_settings_entry iv[] = {{NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 1000}};
    ASSERT_OK(nghttp2_submit_settings(t->cli, NGHTTP2_FLAG_NONE, iv, 1));
    int32_t id = get(t, "/stream");
    pump(t);
    gc__h2_stream_t *st = t->reqs[0];
    cresp_t *r = resp_of(t, id);

    ASSERT_OK(gc__h2_respond(t->srv, st, 200, NULL, 0, 0));
    pump(t);
    ASSERT_EQ_INT(r->status, 200);
    ASSERT_EQ_INT(r->body.len, 0);
    ASSERT(!gc__h2_want_write(t->srv)); /* deferred: nothing queued */

    ASSERT_OK(gc__h2_send_data(t->srv, st, "abc", 3, 0));
    pump(t);
    ASSERT_MEM_STR(r->body.data, r->body.len, "abc");
    ASSERT_EQ_INT(gc__h2_stream_queued(st), 0);

    char big[5000];
    for (size_t i = 0; i < sizeof(big); i++)
        big[i] = body_byte(i);
    ASSERT_OK(gc__h2_send_data(t->srv, st, big, sizeof(big), 0));
    ASSERT_EQ_INT(gc__h2_stream_queued(st), 5000);
    t->data_sent = 0;
    pump(t);
    /* 1000 - 3 bytes of window were left. */
    ASSERT_EQ_INT(r->body.len, 1000);
    ASSERT_EQ_INT(gc__h2_stream_queued(st), 5000 - 997);
    ASSERT(t->data_sent >= 1);
    ASSERT_EQ_INT(t->last_queued, 5000 - 997);
    ASSERT(!gc__h2_want_write(t->srv));

    /* The client reads and grants 1000 more, twice. */
    for (int i = 0; i < 2; i++) {
        ASSERT_OK(nghttp2_session_consume(t->cli, id, 1000));
        pump(t);
    }
    ASSERT_EQ_INT(r->body.len, 3000);
    ASSERT_EQ_INT(gc__h2_stream_queued(st), 5000 - 2997);
    ASSERT_OK(gc__h2_send_data(t->srv, st, NULL, 0, 1));
    while (!r->closed) {
        ASSERT_OK(nghttp2_session_consume(t->cli, id, 1000));
        pump(t);
    }
    ASSERT_EQ_INT(r->body.len, 5003);
    ASSERT_MEM_STR(r->body.data, 3, "abc");
    ASSERT(memcmp(r->body.data + 3, big, sizeof(big)) == 0);
    ASSERT_EQ_INT(r->code, 0);
    ASSERT_EQ_INT(t->last_queued, 0);
    gc__h2_stream_release(t->srv, st);
    ASSERT(gc__h2_idle(t->srv));
    pair_free(t);
}

static void test_trailers(void)
{
    pair_t *t = pair_new();
    int32_t id = get(t, "/grpc");
    pump(t);
    gc__h2_stream_t *st = t->reqs[0];
    ASSERT_OK(gc__h2_respond(t->srv, st, 200, NULL, 0, 0));
    ASSERT_OK(gc__h2_send_data(t->srv, st, "payload", 7, 0));
    gc__h2_header_t tr[] = {
        {GC_VIEW_LIT("Grpc-Status"), GC_VIEW_LIT("0")},
        {GC_VIEW_LIT("x-checksum"), GC_VIEW_LIT("abc")},
    };
    ASSERT_OK(gc__h2_send_trailers(t->srv, st, tr, 2));
    ASSERT_EQ_INT(gc__h2_send_trailers(t->srv, st, tr, 2), -EPIPE);
    pump(t);
    cresp_t *r = resp_of(t, id);
    ASSERT_EQ_INT(r->status, 200);
    ASSERT_MEM_STR(r->body.data, r->body.len, "payload");
    ASSERT_MEM_STR(r->trailers.data, r->trailers.len, "grpc-status: 0\nx-checksum: abc\n");
    ASSERT(r->closed);
    ASSERT_EQ_INT(r->code, 0);
    gc__h2_stream_release(t->srv, st);
    pair_free(t);
}

static void test_early_hints(void)
{
    pair_t *t = pair_new();
    int32_t id = get(t, "/page");
    pump(t);
    gc__h2_stream_t *st = t->reqs[0];
    gc__h2_header_t link[] = {{GC_VIEW_LIT("Link"), GC_VIEW_LIT("</style.css>; rel=preload")}};
    ASSERT_EQ_INT(gc__h2_send_informational(t->srv, st, 101, link, 1), -EINVAL);
    ASSERT_EQ_INT(gc__h2_send_informational(t->srv, st, 200, link, 1), -EINVAL);
    ASSERT_OK(gc__h2_send_informational(t->srv, st, 103, link, 1));
    pump(t);
    cresp_t *r = resp_of(t, id);
    ASSERT_EQ_INT(r->informational, 103);
    ASSERT_EQ_INT(r->status, 0);
    respond_text(t, st, 200, "page");
    ASSERT_EQ_INT(gc__h2_send_informational(t->srv, st, 103, link, 1), -EALREADY);
    pump(t);
    ASSERT_EQ_INT(r->status, 200);
    ASSERT_MEM_STR(r->body.data, r->body.len, "page");
    gc__h2_stream_release(t->srv, st);
    pair_free(t);
}

static void test_many_streams(void)
{
    pair_t *t = pair_new();
    int32_t ids[60];
    for (int i = 0; i < 60; i++) {
        char path[16];
        snprintf(path, sizeof(path), "/%d", i);
        ids[i] = get(t, path);
    }
    pump(t);
    ASSERT_EQ_INT(t->nreq, 60);
    gc__h2_stats_t stats;
    gc__h2_stats(t->srv, &stats);
    ASSERT_EQ_INT(stats.streams, 60);
    ASSERT_EQ_INT(stats.held, 60);
    /* Answered in reverse order, each with its own path. */
    for (int i = 59; i >= 0; i--) {
        gc__view_t target = gc__http_target(&t->reqs[i]->req);
        char body[32];
        snprintf(body, sizeof(body), "%.*s", (int)target.len, target.base);
        respond_text(t, t->reqs[i], 200, body);
        gc__h2_stream_release(t->srv, t->reqs[i]);
    }
    pump(t);
    for (int i = 0; i < 60; i++) {
        char want[16];
        snprintf(want, sizeof(want), "/%d", i);
        cresp_t *r = resp_of(t, ids[i]);
        ASSERT_EQ_INT(r->status, 200);
        ASSERT_MEM_STR(r->body.data, r->body.len, want);
    }
    ASSERT(gc__h2_idle(t->srv));
    pair_free(t);
}

/* Streams past SETTINGS_MAX_CONCURRENT_STREAMS are refused, also when the earlier ones
 * were reset by the client but still run (held): CVE-2023-44487's cheap stream churn. */
static void test_max_concurrent_streams(void)
{
    gc__h2_settings_t set;
    gc__h2_settings_default(&set);
    set.max_concurrent_streams = 5;
    pair_t *t = pair_new_with(&set, NULL);
    ASSERT_OK(nghttp2_submit_settings(t->cli, NGHTTP2_FLAG_NONE, NULL, 0));
    /* Before the client has our SETTINGS it believes streams are unlimited. */
    int32_t ids[8];
    for (int i = 0; i < 8; i++)
        ids[i] = get(t, "/");
    client_flush(t);
    pump(t);
    ASSERT_EQ_INT(t->nreq, 5);
    for (int i = 5; i < 8; i++) {
        ASSERT(resp_of(t, ids[i])->closed);
        ASSERT_EQ_INT(resp_of(t, ids[i])->code, NGHTTP2_REFUSED_STREAM);
    }
    /* The client resets the five; the application still runs them. */
    for (int i = 0; i < 5; i++)
        ASSERT_OK(nghttp2_submit_rst_stream(t->cli, NGHTTP2_FLAG_NONE, ids[i], NGHTTP2_CANCEL));
    pump(t);
    ASSERT_EQ_INT(t->closes, 5);
    ASSERT_EQ_INT(t->last_close, NGHTTP2_CANCEL);
    int32_t more[3];
    for (int i = 0; i < 3; i++)
        more[i] = get(t, "/again");
    pump(t);
    ASSERT_EQ_INT(t->nreq, 5);
    for (int i = 0; i < 3; i++)
        ASSERT_EQ_INT(resp_of(t, more[i])->code, NGHTTP2_REFUSED_STREAM);
    gc__h2_stats_t stats;
    gc__h2_stats(t->srv, &stats);
    ASSERT_EQ_INT(stats.refused, 3); /* the first three were nghttp2's own refusals */
    ASSERT_EQ_INT(stats.held, 5);
    /* Once the application lets them go, new streams are served. */
    for (int i = 0; i < 5; i++)
        gc__h2_stream_release(t->srv, t->reqs[i]);
    ASSERT(gc__h2_idle(t->srv));
    get(t, "/late");
    pump(t);
    ASSERT_EQ_INT(t->nreq, 6);
    pair_free(t);
}

static void test_client_reset_mid_response(void)
{
    pair_t *t = pair_new();
    int32_t id = get(t, "/long");
    pump(t);
    gc__h2_stream_t *st = t->reqs[0];
    ASSERT_OK(gc__h2_respond(t->srv, st, 200, NULL, 0, 0));
    ASSERT_OK(gc__h2_send_data(t->srv, st, "part one", 8, 0));
    pump(t);
    ASSERT_MEM_STR(resp_of(t, id)->body.data, resp_of(t, id)->body.len, "part one");
    ASSERT_OK(nghttp2_submit_rst_stream(t->cli, NGHTTP2_FLAG_NONE, id, NGHTTP2_CANCEL));
    pump(t);
    ASSERT_EQ_INT(t->closes, 1);
    ASSERT_EQ_INT(t->last_close, NGHTTP2_CANCEL);
    ASSERT(st->closed);
    ASSERT_EQ_INT(st->close_code, NGHTTP2_CANCEL);
    ASSERT_EQ_INT(gc__h2_send_data(t->srv, st, "part two", 8, 0), -ECONNRESET);
    ASSERT_EQ_INT(gc__h2_send_trailers(t->srv, st, NULL, 0), -ECONNRESET);
    ASSERT_OK(gc__h2_reset(t->srv, st, NGHTTP2_INTERNAL_ERROR));
    gc__h2_stats_t stats;
    gc__h2_stats(t->srv, &stats);
    ASSERT_EQ_INT(stats.client_resets, 1);
    gc__h2_stream_release(t->srv, st);
    ASSERT(gc__h2_idle(t->srv));
    pair_free(t);
}

/* A response finished before the request body: the server ends the stream with
 * RST_STREAM(NO_ERROR), and the rest of the body is not stored. */
static void test_response_before_body(void)
{
    pair_t *t = pair_new();
    cbody_t b = {.len = 200000, .step = 1000};
    int32_t id;
    post(t, &b, &id);
    /* Only the head and a first piece reach the server before it answers. */
    while (t->nreq == 0) {
        const uint8_t *p;
        ssize_t m = nghttp2_session_mem_send(t->cli, &p);
        ASSERT(m > 0);
        ASSERT_EQ_INT(gc__h2_feed(t->srv, p, (size_t)m), m);
    }
    gc__h2_stream_t *st = t->reqs[0];
    ASSERT(!st->body_done);
    respond_text(t, st, 413, "too big");
    pump(t);
    cresp_t *r = resp_of(t, id);
    ASSERT_EQ_INT(r->status, 413);
    ASSERT(r->closed);
    ASSERT_EQ_INT(r->code, NGHTTP2_NO_ERROR);
    ASSERT(b.off < b.len);
    gc__h2_stream_release(t->srv, st);
    ASSERT(gc__h2_idle(t->srv));
    pair_free(t);
}

static void test_graceful_goaway(void)
{
    pair_t *t = pair_new();
    int32_t id = get(t, "/slow");
    pump(t);
    gc__h2_stream_t *st = t->reqs[0];
    ASSERT_OK(gc__h2_goaway(t->srv));
    ASSERT_OK(gc__h2_goaway(t->srv)); /* once */
    pump(t);
    /* First 2^31-1, then, after the PING round trip, the last stream processed. */
    ASSERT_EQ_INT(t->goaways, 2);
    ASSERT_EQ_INT(t->goaway_last, id);
    ASSERT_EQ_INT(t->goaway_code, NGHTTP2_NO_ERROR);
    ASSERT(!gc__h2_idle(t->srv));
    ASSERT(gc__h2_want_read(t->srv));
    /* The stream in flight finishes normally. */
    respond_text(t, st, 200, "done");
    pump(t);
    ASSERT_MEM_STR(resp_of(t, id)->body.data, resp_of(t, id)->body.len, "done");
    ASSERT_EQ_INT(resp_of(t, id)->code, 0);
    gc__h2_stream_release(t->srv, st);
    ASSERT(gc__h2_idle(t->srv));
    ASSERT(!gc__h2_want_read(t->srv));
    ASSERT(!gc__h2_want_write(t->srv));
    pair_free(t);
}

static void test_h2c_upgrade(void)
{
    gc__h2_settings_t set;
    gc__h2_settings_default(&set);
    pair_t *t = pair_new_with(&set, NULL);

    /* The HTTP/1.1 request as the worker parsed it. */
    gc__http_limits_t limits;
    gc__http_limits_default(&limits);
    gc__http_parser_t hp;
    gc__http_parser_init(&hp, &limits);
    static const char h1[] =
        "GET /up?x=1 HTTP/1.1\r\nHost: h.example\r\nConnection: Upgrade, "
        "HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n";
    gc__http_parser_feed(&hp, h1, sizeof(h1) - 1);
    ASSERT_EQ_INT(hp.state, GC_HTTP_READY);

    /* The client's HTTP2-Settings, as nghttp2 packs it and base64url encodes it. */
    nghttp2_settings_entry iv[] = {{NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, 100},
                                   {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 65535}};
    uint8_t payload[64];
    ssize_t plen = nghttp2_pack_settings_payload(payload, sizeof(payload), iv, 2);
    ASSERT_EQ_INT(plen, 12);
    ASSERT_OK(nghttp2_session_upgrade2(t->cli, payload, (size_t)plen, 0, NULL));

    gc__h2_stream_t *st = NULL;
    ASSERT_EQ_INT(gc__h2_upgrade(t->srv, GC_VIEW_LIT("AAM*"), 0, NULL, &st), -EINVAL);
    ASSERT_OK(gc__h2_upgrade(t->srv, GC_VIEW_LIT("AAMAAABkAAQAAP__"), 0, &hp.req, &st));
    ASSERT(st != NULL);
    ASSERT_EQ_INT(st->id, 1);
    ASSERT(st->body_done);
    gc__view_t target = gc__http_target(&st->req);
    ASSERT_MEM_STR(target.base, target.len, "/up?x=1");
    ASSERT_EQ_INT(st->req.major, 2);
    ASSERT_EQ_INT(gc__http_find_field(&st->req, "host"), 0);
    gc__http_parser_free(&hp); /* its request moved out */
    ASSERT_EQ_INT(gc__h2_upgrade(t->srv, GC_VIEW_LIT("AAMAAABk"), 0, NULL, &st), -EPROTO);

    pump(t);
    respond_text(t, st, 200, "upgraded");
    pump(t);
    cresp_t *r = resp_of(t, 1);
    ASSERT_EQ_INT(r->status, 200);
    ASSERT_MEM_STR(r->body.data, r->body.len, "upgraded");
    ASSERT_EQ_INT(r->code, 0);
    gc__h2_stream_release(t->srv, st);
    ASSERT(gc__h2_idle(t->srv));
    /* Stream 3 is the client's next one. */
    get(t, "/next");
    pump(t);
    ASSERT_EQ_INT(t->nreq, 1);
    ASSERT_EQ_INT(t->reqs[0]->id, 3);
    pair_free(t);
}

/* Malformed requests: nghttp2's HTTP messaging rules reset the stream with
 * PROTOCOL_ERROR, and the application never sees them. */
static void test_malformed_requests(void)
{
    static const char *const cases[][14] = {
        {":method", "GET", ":scheme", "http", ":authority", "a", NULL}, /* no :path */
        {":method", "GET", ":scheme", "http", ":authority", "a", ":path", "/", "connection",
         "keep-alive", NULL},
        {":method", "GET", ":scheme", "http", ":authority", "a", ":path", "/", "X-Upper", "1",
         NULL},
        {":method", "GET", ":scheme", "http", ":authority", "a", ":path", "/", "te", "gzip", NULL},
        {":method", "GET", ":scheme", "http", ":authority", "a", ":path", "/", "transfer-encoding",
         "chunked", NULL},
        {":method", "GET", ":scheme", "http", ":authority", "a", ":path", "/", "upgrade", "h2c",
         NULL},
        {":method", "GET", ":scheme", "http", ":authority", "a", ":path", "/", ":path", "/again",
         NULL},
        {":method", "GET", ":scheme", "http", ":authority", "a", ":path", "/", ":bogus", "1", NULL},
        {":method", "GET", ":scheme", "http", ":authority", "a", ":path", "relative", NULL},
        {":method", "GET", ":scheme", "http", ":authority", "a", ":path", "/", "x-bad", "a\nb",
         NULL},
        {":method", "GET", ":scheme", "http", ":authority", "a", "x-a", "1", ":path", "/", NULL},
    };
    size_t ncases = sizeof(cases) / sizeof(cases[0]);
    pair_t *t = pair_new();
    int32_t ids[16];
    for (size_t i = 0; i < ncases; i++)
        ids[i] = request(t, cases[i], NULL);
    int32_t good = get(t, "/fine");
    pump(t);
    for (size_t i = 0; i < ncases; i++) {
        if (!resp_of(t, ids[i])->closed || resp_of(t, ids[i])->code != NGHTTP2_PROTOCOL_ERROR)
            fprintf(stderr, "\ncase %zu\n", i);
        ASSERT(resp_of(t, ids[i])->closed);
        ASSERT_EQ_INT(resp_of(t, ids[i])->code, NGHTTP2_PROTOCOL_ERROR);
    }
    ASSERT_EQ_INT(t->nreq, 1);
    ASSERT_EQ_INT(t->reqs[0]->id, good);
    gc__h2_stats_t stats;
    gc__h2_stats(t->srv, &stats);
    ASSERT_EQ_INT(stats.bad, ncases);
    ASSERT_EQ_INT(stats.streams, 1);
    ASSERT_EQ_INT(t->srv_error, 0);
    pair_free(t);
}

/* Well-formed requests over Gunicorn's limits reach on_request with the status to
 * answer on that stream; the connection goes on. */
static void test_request_limits(void)
{
    gc__h2_settings_t set;
    gc__h2_settings_default(&set);
    set.http.max_fields = 4;
    set.http.max_line = 20;
    set.http.max_field_size = 40;
    pair_t *t = pair_new_with(&set, NULL);
    ASSERT_OK(nghttp2_submit_settings(t->cli, NGHTTP2_FLAG_NONE, NULL, 0));
    t->answer_errors = 1;
    const char *fields[] = {":method", "GET", ":scheme", "http", ":authority", "a",
                            ":path",   "/",   "x-1",     "1",    "x-2",        "2",
                            "x-3",     "3",   "x-4",     "4",    NULL};
    const char *long_path[] = {":method",    "GET", ":scheme", "http",
                               ":authority", "a",   ":path",   "/123456789012345678901",
                               NULL};
    const char *big_field[] = {
        ":method", "GET",   ":scheme", "http",  ":authority",
        "a",       ":path", "/",       "x-big", "0123456789012345678901234567890123456789",
        NULL};
    const char *under[] = {":method", "GET", ":scheme",         "http",    ":authority", "a",
                           ":path",   "/",   "x_forwarded_for", "1.2.3.4", "x-ok",       "1",
                           NULL};
    const char *two_ct[] = {":method", "POST", ":scheme",      "http", ":authority",   "a",
                            ":path",   "/",    "content-type", "a/b",  "content-type", "c/d",
                            NULL};
    const char *cookies[] = {":method", "GET",          ":scheme", "http",         ":authority",
                             "a",       ":path",        "/",       "cookie",       "a=0123456789",
                             "cookie",  "b=0123456789", "cookie",  "c=0123456789", NULL};
    const char *connect[] = {":method", "CONNECT", ":authority", "example.com:443", NULL};
    int32_t a = request(t, fields, NULL), b = request(t, long_path, NULL),
            c = request(t, big_field, NULL), d = request(t, under, NULL),
            e = request(t, two_ct, NULL), f = request(t, cookies, NULL),
            g = request(t, connect, NULL);
    pump(t);
    ASSERT_EQ_INT(t->nreq, 7);
    ASSERT_EQ_INT(resp_of(t, a)->status, 431); /* four x- fields and the host */
    ASSERT_MEM_STR(resp_of(t, a)->body.data, resp_of(t, a)->body.len,
                   "limit request headers fields");
    ASSERT_EQ_INT(resp_of(t, b)->status, 400);
    ASSERT_MEM_STR(resp_of(t, b)->body.data, resp_of(t, b)->body.len,
                   "Request Line is too large (22 > 20)");
    ASSERT_EQ_INT(resp_of(t, c)->status, 431);
    ASSERT_MEM_STR(resp_of(t, c)->body.data, resp_of(t, c)->body.len,
                   "limit request headers fields size");
    /* header_map's default drops the underscore name, which counts toward no limit. */
    gc__h2_stream_t *sd = t->reqs[3];
    ASSERT_EQ_INT(sd->id, d);
    ASSERT_EQ_INT(sd->error_status, 0);
    ASSERT_EQ_INT(sd->req.nfields, 2); /* x-ok and host */
    ASSERT_EQ_INT(resp_of(t, e)->status, 400);
    ASSERT_MEM_STR(resp_of(t, e)->body.data, resp_of(t, e)->body.len,
                   "Invalid HTTP Header: 'CONTENT-TYPE'");
    /* The joined cookie is one field, measured whole. */
    ASSERT_EQ_INT(resp_of(t, f)->status, 431);
    ASSERT_EQ_INT(resp_of(t, g)->status, 501);
    gc__h2_stats_t stats;
    gc__h2_stats(t->srv, &stats);
    ASSERT_EQ_INT(stats.bad, 6);
    ASSERT_EQ_INT(t->srv_error, 0);
    pair_free(t);
}

static void test_header_policy_refuse(void)
{
    gc__forward_policy_t fp;
    ASSERT_OK(gc__forward_policy_init(&fp));
    fp.header_map = GC_HEADER_MAP_REFUSE;
    gc__h2_settings_t set;
    gc__h2_settings_default(&set);
    set.http.forward = &fp;
    pair_t *t = pair_new_with(&set, NULL);
    ASSERT_OK(nghttp2_submit_settings(t->cli, NGHTTP2_FLAG_NONE, NULL, 0));
    t->answer_errors = 1;
    const char *under[] = {":method", "GET", ":scheme",         "http",    ":authority", "a",
                           ":path",   "/",   "x_forwarded_for", "1.2.3.4", NULL};
    int32_t id = request(t, under, NULL);
    pump(t);
    ASSERT_EQ_INT(resp_of(t, id)->status, 400);
    ASSERT_MEM_STR(resp_of(t, id)->body.data, resp_of(t, id)->body.len,
                   "Invalid HTTP header name: 'X_FORWARDED_FOR'");
    pair_free(t);
    gc__forward_policy_free(&fp);
}

/* ---------------------------------------------------------------------------------- */
/* Defences, with hand-made frames.                                                   */

/* CVE-2023-44487: HEADERS then RST_STREAM, over and over, all in one read. The reset
 * bucket ends the connection and no stream after it reaches the application. */
static void test_rapid_reset(void)
{
    gc__h2_settings_t set;
    gc__h2_settings_default(&set);
    set.reset_burst = 20;
    set.reset_rate = 1;
    raw_t r;
    raw_init(&r, &set);
    for (uint32_t i = 0; i < 200; i++) {
        frame(&r.in, NGHTTP2_HEADERS, NGHTTP2_FLAG_END_HEADERS | NGHTTP2_FLAG_END_STREAM, 1 + 2 * i,
              get_block, sizeof(get_block));
        rst_frame(&r.in, 1 + 2 * i, NGHTTP2_CANCEL);
    }
    raw_flush(&r);
    ASSERT_EQ_INT(r.sc.goaway, 1);
    ASSERT_EQ_INT(r.sc.goaway_code, NGHTTP2_ENHANCE_YOUR_CALM);
    /* Streams stopped being served at the limit, and none is left behind. */
    ASSERT_EQ_INT(r.t->nreq, 21);
    ASSERT_EQ_INT(r.sc.goaway_last, 41);
    gc__h2_stats_t stats;
    gc__h2_stats(r.t->srv, &stats);
    ASSERT_EQ_INT(stats.streams, 0);
    ASSERT(!gc__h2_want_read(r.t->srv));
    raw_free(&r);
}

/* CVE-2024-27316 and friends: a header block that never ends. */
static void test_continuation_flood(void)
{
    gc__h2_settings_t set;
    gc__h2_settings_default(&set);
    raw_t r;
    raw_init(&r, &set);
    frame(&r.in, NGHTTP2_HEADERS, 0, 1, get_block, sizeof(get_block));
    /* Each CONTINUATION adds a literal field "x-a: bbbb" without indexing. */
    uint8_t lit[] = {0x00, 0x03, 'x', '-', 'a', 0x04, 'b', 'b', 'b', 'b'};
    for (int i = 0; i < 100; i++)
        frame(&r.in, NGHTTP2_CONTINUATION, 0, 1, lit, sizeof(lit));
    raw_flush(&r);
    ASSERT_EQ_INT(r.feed_error, -EPROTO);
    ASSERT_EQ_INT(r.sc.goaway, 1);
    ASSERT_EQ_INT(r.sc.goaway_code, NGHTTP2_ENHANCE_YOUR_CALM);
    ASSERT_EQ_INT(r.t->nreq, 0);
    raw_free(&r);
}

/* A SETTINGS frame with more entries than we accept. */
static void test_settings_too_many_entries(void)
{
    gc__h2_settings_t set;
    gc__h2_settings_default(&set);
    raw_t r;
    raw_init(&r, &set);
    uint8_t payload[40 * 6];
    for (int i = 0; i < 40; i++) {
        uint8_t e[6] = {0, NGHTTP2_SETTINGS_HEADER_TABLE_SIZE, 0, 0, 0x10, 0};
        memcpy(payload + 6 * i, e, 6);
    }
    frame(&r.in, NGHTTP2_SETTINGS, 0, 0, payload, sizeof(payload));
    raw_flush(&r);
    ASSERT_EQ_INT(r.sc.goaway, 1);
    ASSERT_EQ_INT(r.sc.goaway_code, NGHTTP2_ENHANCE_YOUR_CALM);
    raw_free(&r);
}

/* PING and SETTINGS floods from a peer that never reads our acks: their queue is
 * bounded, then the connection ends. */
static void ack_flood(int settings)
{
    gc__h2_settings_t set;
    gc__h2_settings_default(&set);
    set.max_outbound_ack = 100;
    raw_t r;
    raw_init(&r, &set);
    uint8_t opaque[8] = {0};
    for (int i = 0; i < 500; i++) {
        if (settings)
            frame(&r.in, NGHTTP2_SETTINGS, 0, 0, NULL, 0);
        else
            frame(&r.in, NGHTTP2_PING, 0, 0, opaque, 8);
    }
    ssize_t fed = raw_flush(&r);
    ASSERT_EQ_INT(fed, -EPROTO);
    ASSERT_EQ_INT(r.sc.goaway, 1);
    ASSERT_EQ_INT(r.sc.goaway_code, NGHTTP2_ENHANCE_YOUR_CALM);
    raw_free(&r);
}

static void test_ping_flood(void)
{
    ack_flood(0);
}

static void test_settings_flood(void)
{
    ack_flood(1);
}

/* A small header block that decodes to a huge one: a 4000-byte entry put in the
 * dynamic table once, then referenced with one byte each. The decoded size is what
 * counts: the stream gets 431 and its stored head stays small. */
static void hpack_bomb_block(gc__buf_t *b, int first, int refs)
{
    ASSERT_OK(gc__buf_append(b, get_block, sizeof(get_block)));
    if (first) {
        /* Literal with incremental indexing, new name "x-bomb", 4000-byte value. */
        uint8_t h[] = {0x40, 0x06, 'x', '-', 'b', 'o', 'm', 'b', 0x7f, 0xa1, 0x1e};
        ASSERT_OK(gc__buf_append(b, h, sizeof(h)));
        ASSERT_EQ_INT(0x7f + 0x21 + (0x1e << 7), 4000);
        for (int i = 0; i < 4000; i++)
            ASSERT_OK(gc__buf_append(b, "z", 1));
    }
    for (int i = 0; i < refs; i++)
        ASSERT_OK(gc__buf_append(b, "\xbe", 1)); /* indexed: dynamic entry 62 */
}

static void test_hpack_bomb(void)
{
    gc__h2_settings_t set;
    gc__h2_settings_default(&set);
    set.http.max_fields = 1000;
    raw_t r;
    raw_init(&r, &set);
    r.t->release_on_request = 0;
    r.t->answer_errors = 1;
    /* The first block: one entry and 3 references (16 KB decoded), accepted. */
    gc__buf_t blk;
    gc__buf_init(&blk);
    hpack_bomb_block(&blk, 1, 3);
    frame(&r.in, NGHTTP2_HEADERS, NGHTTP2_FLAG_END_HEADERS | NGHTTP2_FLAG_END_STREAM, 1, blk.data,
          blk.len);
    /* The second: 1000 references in 1003 bytes, 4 MB decoded. */
    gc__buf_reset(&blk);
    hpack_bomb_block(&blk, 0, 1000);
    frame(&r.in, NGHTTP2_HEADERS, NGHTTP2_FLAG_END_HEADERS | NGHTTP2_FLAG_END_STREAM, 3, blk.data,
          blk.len);
    gc__buf_free(&blk);
    raw_flush(&r);
    ASSERT_EQ_INT(r.t->nreq, 2);
    ASSERT_EQ_INT(r.t->reqs[0]->error_status, 0);
    ASSERT_EQ_INT(r.t->reqs[0]->req.nfields, 5); /* four x-bomb and the host */
    ASSERT_EQ_INT(r.sc.status[1 / 2], 0);        /* not answered by the test */
    ASSERT_EQ_INT(r.sc.status[3 / 2], 431);
    ASSERT_EQ_INT(r.sc.goaway, 0);
    raw_free(&r);
}

/* The same bomb, stream after stream: every refused stream costs a token, and the
 * connection ends when they run out. */
static void test_bad_stream_rate(void)
{
    gc__h2_settings_t set;
    gc__h2_settings_default(&set);
    set.bad_burst = 10;
    set.bad_rate = 1;
    raw_t r;
    raw_init(&r, &set);
    r.t->release_on_request = 0; /* held, to look at them afterwards */
    gc__buf_t blk;
    gc__buf_init(&blk);
    hpack_bomb_block(&blk, 1, 20);
    frame(&r.in, NGHTTP2_HEADERS, NGHTTP2_FLAG_END_HEADERS | NGHTTP2_FLAG_END_STREAM, 1, blk.data,
          blk.len);
    for (uint32_t i = 1; i < 100; i++) {
        gc__buf_reset(&blk);
        hpack_bomb_block(&blk, 0, 20);
        frame(&r.in, NGHTTP2_HEADERS, NGHTTP2_FLAG_END_HEADERS | NGHTTP2_FLAG_END_STREAM, 1 + 2 * i,
              blk.data, blk.len);
    }
    gc__buf_free(&blk);
    raw_flush(&r);
    ASSERT_EQ_INT(r.sc.goaway, 1);
    ASSERT_EQ_INT(r.sc.goaway_code, NGHTTP2_ENHANCE_YOUR_CALM);
    /* Ten tokens: ten heads handed over with their 431, the eleventh ends it all. */
    ASSERT_EQ_INT(r.t->nreq, 10);
    for (int i = 0; i < r.t->nreq; i++)
        ASSERT_EQ_INT(r.t->reqs[i]->error_status, 431);
    ASSERT_EQ_INT(r.sc.goaway_last, 21);
    raw_free(&r);
}

/* Malformed heads count as bad streams too (nghttp2 resets them for us; the client
 * pays one small frame for each). */
static void test_malformed_stream_rate(void)
{
    gc__h2_settings_t set;
    gc__h2_settings_default(&set);
    set.bad_burst = 10;
    set.bad_rate = 1;
    raw_t r;
    raw_init(&r, &set);
    static const uint8_t no_path[] = {0x82, 0x86, 0x01, 0x01, 'x'}; /* no :path */
    for (uint32_t i = 0; i < 100; i++)
        frame(&r.in, NGHTTP2_HEADERS, NGHTTP2_FLAG_END_HEADERS | NGHTTP2_FLAG_END_STREAM, 1 + 2 * i,
              no_path, sizeof(no_path));
    raw_flush(&r);
    ASSERT_EQ_INT(r.sc.goaway, 1);
    ASSERT_EQ_INT(r.sc.goaway_code, NGHTTP2_ENHANCE_YOUR_CALM);
    ASSERT(r.sc.rst <= 11); /* the resets queued before the GOAWAY, at most */
    ASSERT_EQ_INT(r.t->nreq, 0);
    gc__h2_stats_t stats;
    gc__h2_stats(r.t->srv, &stats);
    ASSERT_EQ_INT(stats.bad, 11);
    ASSERT(stats.streams <= 11); /* never handed over; freed with the session */
    raw_free(&r);
}

/* Streams over the advertised limit, sent before our SETTINGS could be read. */
static void test_refused_streams_raw(void)
{
    gc__h2_settings_t set;
    gc__h2_settings_default(&set);
    set.max_concurrent_streams = 3;
    raw_t r;
    raw_init(&r, &set);
    r.t->release_on_request = 0;
    for (uint32_t i = 0; i < 10; i++)
        frame(&r.in, NGHTTP2_HEADERS, NGHTTP2_FLAG_END_HEADERS | NGHTTP2_FLAG_END_STREAM, 1 + 2 * i,
              get_block, sizeof(get_block));
    raw_flush(&r);
    ASSERT_EQ_INT(r.t->nreq, 3);
    for (uint32_t i = 3; i < 10; i++)
        ASSERT_EQ_INT(r.sc.rst_code[(1 + 2 * i) / 2], 1 + NGHTTP2_REFUSED_STREAM);
    ASSERT_EQ_INT(r.sc.goaway, 0);
    gc__h2_stats_t stats;
    gc__h2_stats(r.t->srv, &stats);
    ASSERT_EQ_INT(stats.streams, 3);
    raw_free(&r);
}

static void test_bad_preface(void)
{
    gc__h2_settings_t set;
    gc__h2_settings_default(&set);
    gc__h2_session_t *s = gc__h2_new(&set, &srv_cb, NULL);
    ASSERT(s != NULL);
    static const char h1[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    ASSERT(gc__h2_feed(s, (const uint8_t *)h1, sizeof(h1) - 1) < 0);
    gc__h2_free(s);
    set.max_frame_size = 1000;
    ASSERT(gc__h2_new(&set, &srv_cb, NULL) == NULL);
    set.max_frame_size = 16777216;
    ASSERT(gc__h2_new(&set, &srv_cb, NULL) == NULL);
}

/* Our SETTINGS carry Gunicorn's four http2_* values. */
static void test_server_settings(void)
{
    gc__h2_settings_t set;
    gc__h2_settings_default(&set);
    set.max_concurrent_streams = 7;
    set.initial_window_size = 100000;
    set.max_frame_size = 32768;
    set.max_header_list_size = 12345;
    pair_t *t = pair_new_with(&set, NULL);
    ASSERT_OK(nghttp2_submit_settings(t->cli, NGHTTP2_FLAG_NONE, NULL, 0));
    pump(t);
    nghttp2_session *c = t->cli;
    ASSERT_EQ_INT(nghttp2_session_get_remote_settings(c, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS),
                  7);
    ASSERT_EQ_INT(nghttp2_session_get_remote_settings(c, NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE),
                  100000);
    ASSERT_EQ_INT(nghttp2_session_get_remote_settings(c, NGHTTP2_SETTINGS_MAX_FRAME_SIZE), 32768);
    ASSERT_EQ_INT(nghttp2_session_get_remote_settings(c, NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE),
                  12345);
    /* The connection window grew with the streams'. */
    ASSERT_EQ_INT(nghttp2_session_get_remote_window_size(c), 100000);
    pair_free(t);
}

int main(int argc, char **argv)
{
    unit_init(argc, argv);
    RUN(test_get);
    RUN(test_bad_response_fields);
    RUN(test_head_drops_body);
    RUN(test_cookies_and_host);
    RUN(test_priority);
    RUN(test_post_body);
    RUN(test_content_length_mismatch);
    RUN(test_post_body_spooled);
    RUN(test_body_memory_budget);
    RUN(test_streamed_response_flow_control);
    RUN(test_trailers);
    RUN(test_early_hints);
    RUN(test_many_streams);
    RUN(test_max_concurrent_streams);
    RUN(test_client_reset_mid_response);
    RUN(test_response_before_body);
    RUN(test_graceful_goaway);
    RUN(test_h2c_upgrade);
    RUN(test_malformed_requests);
    RUN(test_request_limits);
    RUN(test_header_policy_refuse);
    RUN(test_rapid_reset);
    RUN(test_continuation_flood);
    RUN(test_settings_too_many_entries);
    RUN(test_ping_flood);
    RUN(test_settings_flood);
    RUN(test_hpack_bomb);
    RUN(test_bad_stream_rate);
    RUN(test_malformed_stream_rate);
    RUN(test_refused_streams_raw);
    RUN(test_bad_preface);
    RUN(test_server_settings);
    return unit_done();
}
