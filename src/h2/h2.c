/* h2.c: an HTTP/2 server session on nghttp2, turned into gunicorn-c's requests.
 *
 * nghttp2 owns the connection state; we register its callbacks and keep, per stream, a
 * gc__h2_stream_t (the request being built, then the response queue) as the stream's
 * user data. What nghttp2 checks and what we check is listed in h2.h ("Bad requests");
 * the defences are set as nghttp2 options in gc__h2_new, except the two we count here:
 * held streams in the concurrency limit (a reset stream whose request still runs keeps
 * its slot), and the rate of streams the client makes us refuse or reset ("bad"
 * streams: malformed heads, limits; a cheap way to make a server work without ever
 * sending RST_STREAM itself). See h2.h for the caller's view. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <nghttp2/nghttp2.h>

#include "common/clock.h"
#include "h2/h2.h"
#include "http/forward.h"

/* The codec's side of a stream. */
struct gc__h2_stream_priv {
    gc__h2_stream_t *prev, *next; /* the session's list, to free everything at the end */
    int handed;                   /* on_request has run: the caller holds or held it */
    int released;                 /* gc__h2_stream_release has run */
    size_t header_bytes;          /* decoded size of the head, as RFC 9113 counts it */
    size_t nkept;                 /* fields stored, for limit_request_fields */
    uint32_t authority_off, authority_len, scheme_off, scheme_len;
    int has_authority;
    gc__buf_t cookie;      /* cookie crumbs joined while the head arrives */
    size_t body_in_memory; /* this body's share of the session's body_memory */

    /* The response. */
    int resp_started; /* final HEADERS submitted */
    int resp_ended;   /* the body is complete (queued), or there is none */
    int deferred;     /* the data provider said DEFERRED and waits for a resume */
    int notify;       /* nghttp2 took queued bytes since on_data_sent last ran */
    int no_body;      /* HEAD, 204, 304: body bytes given to gc__h2_send_data are dropped */
    gc__buf_t out;    /* queued body bytes, sent from out_off */
    size_t out_off;
    gc__buf_t trailers; /* "name\0value\0" pairs, lower-case, ready for the provider */
    size_t ntrailers;
};

/* A token bucket (see bucket_take). */
typedef struct {
    double tokens;
    uint64_t at_ms;
} bucket_t;

/* One allocation for both halves. */
typedef struct {
    gc__h2_stream_t pub;
    struct gc__h2_stream_priv priv;
} stream_alloc_t;

struct gc__h2_session {
    nghttp2_session *ng;
    gc__h2_settings_t set;
    gc__h2_callbacks_t cb;
    void *user;
    gc__h2_stream_t *streams; /* every live stream object */
    int nstreams, nheld;
    size_t body_memory; /* in-memory body bytes of all streams */
    int stopping, final_goaway;
    int notify_pending;
    bucket_t bad;    /* streams the client made us refuse or reset */
    bucket_t resets; /* RST_STREAM frames from the client */
    gc__h2_stats_t stats;
    gc__buf_t scratch; /* lower-cased names for the nv arrays we submit */
};

static const uint8_t stop_ping[8] = {'g', 'c', '-', 's', 't', 'o', 'p', '!'};

void gc__h2_settings_default(gc__h2_settings_t *s)
{
    memset(s, 0, sizeof(*s));
    s->max_concurrent_streams = 100;
    s->initial_window_size = 65535;
    s->max_frame_size = 16384;
    s->max_header_list_size = 65536;
    gc__http_limits_default(&s->http);
    s->reset_burst = 1000;
    s->reset_rate = 33;
    s->bad_burst = 200;
    s->bad_rate = 10;
    s->max_continuations = 8;
    s->max_settings = 32;
    s->max_outbound_ack = 1000;
    s->max_deflate_table = 4096;
}

static const gc__forward_policy_t *policy(const gc__h2_session_t *s)
{
    return s->set.http.forward ? s->set.http.forward : gc__forward_policy_default();
}

static struct gc__h2_stream_priv *sp(gc__h2_stream_t *st)
{
    return st->priv;
}

/* --- streams ------------------------------------------------------------------------ */

static gc__h2_stream_t *stream_new(gc__h2_session_t *s, int32_t id)
{
    stream_alloc_t *a = calloc(1, sizeof(*a));
    if (a == NULL)
        return NULL;
    gc__h2_stream_t *st = &a->pub;
    st->priv = &a->priv;
    st->id = id;
    st->weight = NGHTTP2_DEFAULT_WEIGHT;
    gc__buf_init(&st->req.head);
    gc__buf_init(&st->req.body.mem);
    st->req.body.fd = -1;
    st->req.content_length = -1;
    st->req.script_name = -1;
    st->req.major = 2;
    st->req.minor = 0;
    st->req.keep_alive = 1;
    snprintf(st->req.version, sizeof(st->req.version), "HTTP/2.0");
    a->priv.next = s->streams;
    if (s->streams)
        sp(s->streams)->prev = st;
    s->streams = st;
    s->nstreams++;
    return st;
}

/* The body's in-memory bytes leave the session's account (when it spills, or at free). */
static void body_account(gc__h2_session_t *s, gc__h2_stream_t *st)
{
    size_t now = st->req.body.fd < 0 ? st->req.body.mem.len : 0;
    s->body_memory = s->body_memory - sp(st)->body_in_memory + now;
    sp(st)->body_in_memory = now;
}

/* Frees the request (head, fields, body): at release, or with the stream. */
static void request_drop(gc__h2_session_t *s, gc__h2_stream_t *st)
{
    gc__http_request_t *r = &st->req;
    s->body_memory -= sp(st)->body_in_memory;
    sp(st)->body_in_memory = 0;
    gc__buf_free(&r->head);
    free(r->fields);
    r->fields = NULL;
    r->nfields = r->fields_cap = 0;
    gc__buf_free(&r->body.mem);
    if (r->body.fd >= 0)
        close(r->body.fd);
    r->body.fd = -1;
    r->body.len = 0;
}

static void stream_free(gc__h2_session_t *s, gc__h2_stream_t *st)
{
    struct gc__h2_stream_priv *p = sp(st);
    if (p->prev)
        sp(p->prev)->next = p->next;
    else
        s->streams = p->next;
    if (p->next)
        sp(p->next)->prev = p->prev;
    s->nstreams--;
    request_drop(s, st);
    gc__buf_free(&p->cookie);
    gc__buf_free(&p->out);
    gc__buf_free(&p->trailers);
    free(st);
}

static gc__h2_stream_t *stream_of(gc__h2_session_t *s, int32_t id)
{
    return nghttp2_session_get_stream_user_data(s->ng, id);
}

/* Takes a token from a bucket of `burst` tokens refilled at `rate` per second. Returns
 * 0, or -1 when it is empty. */
static int bucket_take(bucket_t *b, uint32_t burst, uint32_t rate)
{
    uint64_t now = gc__monotonic_ms();
    b->tokens += (double)(now - b->at_ms) * rate / 1000.0;
    if (b->tokens > burst)
        b->tokens = burst;
    b->at_ms = now;
    if (b->tokens < 1.0)
        return -1;
    b->tokens -= 1.0;
    return 0;
}

/* Ends the connection for abuse. nghttp2 then ignores every byte still to come, even
 * in the buffer being fed, so no further stream reaches the caller. */
static void calm_down(gc__h2_session_t *s)
{
    nghttp2_session_terminate_session(s->ng, NGHTTP2_ENHANCE_YOUR_CALM);
}

/* A stream the client made us refuse or reset. Past the token bucket the connection
 * ends: each such stream costs us work and costs the client one small frame (the
 * "MadeYouReset" family of CVE-2023-44487). Returns -1 when it ended the connection. */
static int count_bad(gc__h2_session_t *s)
{
    s->stats.bad++;
    if (bucket_take(&s->bad, s->set.bad_burst, s->set.bad_rate) == 0)
        return 0;
    calm_down(s);
    return -1;
}

/* --- the request head ---------------------------------------------------------------- */

static void bad_request(gc__h2_stream_t *st, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void bad_request(gc__h2_stream_t *st, int status, const char *fmt, ...)
{
    if (st->error_status)
        return; /* the first problem is the one reported */
    st->error_status = status;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(st->error_msg, sizeof(st->error_msg), fmt, ap);
    va_end(ap);
}

/* Appends a field (name and value copied into the head), counting it against
 * limit_request_fields and limit_request_field_size. Returns 0 or -ENOMEM; a limit
 * marks the request bad instead. */
static int add_field(gc__h2_session_t *s, gc__h2_stream_t *st, const char *name, size_t nlen,
                     const char *value, size_t vlen)
{
    gc__http_request_t *r = &st->req;
    const gc__http_limits_t *l = &s->set.http;
    if (sp(st)->nkept >= l->max_fields) {
        bad_request(st, 431, "limit request headers fields");
        return 0;
    }
    if (nlen + 2 + vlen + 2 > l->max_field_size) {
        bad_request(st, 431, "limit request headers fields size");
        return 0;
    }
    if (gc__http_fields_reserve(r) < 0)
        return -ENOMEM;
    gc__http_field_t *f = &r->fields[r->nfields];
    f->name_off = (uint32_t)r->head.len;
    f->name_len = (uint32_t)nlen;
    if (gc__buf_append(&r->head, name, nlen) < 0)
        return -ENOMEM;
    f->value_off = (uint32_t)r->head.len;
    f->value_len = (uint32_t)vlen;
    if (gc__buf_append(&r->head, value, vlen) < 0)
        return -ENOMEM;
    f->folded = 0;
    r->nfields++;
    sp(st)->nkept++;
    return 0;
}

/* Stores a pseudo-header field; nghttp2 has checked that each appears once, is known
 * and valid, and that all come before the regular fields. */
static int add_pseudo(gc__h2_stream_t *st, const uint8_t *name, size_t nlen, const uint8_t *value,
                      size_t vlen)
{
    gc__http_request_t *r = &st->req;
    uint32_t off = (uint32_t)r->head.len;
    if (gc__buf_append(&r->head, value, vlen) < 0)
        return -ENOMEM;
    gc__view_t n = gc__view((const char *)name, nlen);
    if (gc__view_ieq(n, ":method")) {
        r->method_off = off;
        r->method_len = (uint32_t)vlen;
    } else if (gc__view_ieq(n, ":path")) {
        r->target_off = off;
        r->target_len = (uint32_t)vlen;
    } else if (gc__view_ieq(n, ":authority")) {
        sp(st)->authority_off = off;
        sp(st)->authority_len = (uint32_t)vlen;
        sp(st)->has_authority = 1;
    } else if (gc__view_ieq(n, ":scheme")) {
        sp(st)->scheme_off = off;
        sp(st)->scheme_len = (uint32_t)vlen;
    }
    return 0;
}

static int on_header(nghttp2_session *ng, const nghttp2_frame *frame, const uint8_t *name,
                     size_t nlen, const uint8_t *value, size_t vlen, uint8_t flags, void *user)
{
    gc__h2_session_t *s = user;
    /* Trailer fields of a request are dropped unstored, as the HTTP/1 parser drops a
     * chunked body's trailer. */
    if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0;
    gc__h2_stream_t *st = stream_of(s, frame->hd.stream_id);
    if (st == NULL)
        return 0;
    /* SETTINGS_MAX_HEADER_LIST_SIZE is advisory for nghttp2's decoder: we count the
     * decoded size ourselves, so a small block of references to a big dynamic-table
     * entry (an HPACK bomb) stops being stored at the limit. */
    sp(st)->header_bytes += nlen + vlen + 32;
    if (st->error_status)
        return 0;
    if (s->set.max_header_list_size && sp(st)->header_bytes > s->set.max_header_list_size) {
        bad_request(st, 431, "Request Header Fields Too Large");
        return 0;
    }
    int err = 0;
    if (nlen > 0 && name[0] == ':') {
        err = add_pseudo(st, name, nlen, value, vlen);
    } else if (nlen == 6 && memcmp(name, "cookie", 6) == 0) {
        /* RFC 9113 8.2.3: crumbs join with "; " into one field for HTTP/1 semantics. */
        gc__buf_t *c = &sp(st)->cookie;
        if (c->len > 0)
            err = gc__buf_append(c, "; ", 2);
        if (err == 0)
            err = gc__buf_append(c, value, vlen);
    } else {
        gc__view_t n = gc__view((const char *)name, nlen);
        switch (gc__forward_field(policy(s), s->set.trusted, n)) {
        case GC_FORWARD_REFUSE: {
            char upper[64];
            size_t k = nlen < sizeof(upper) ? nlen : sizeof(upper);
            for (size_t i = 0; i < k; i++)
                upper[i] = name[i] >= 'a' && name[i] <= 'z' ? (char)(name[i] - 32) : (char)name[i];
            bad_request(st, 400, "Invalid HTTP header name: '%.*s'", (int)k, upper);
            return 0;
        }
        case GC_FORWARD_DROP:
            return 0; /* header_map drops it; it counts toward no limit, as in Gunicorn */
        case GC_FORWARD_KEEP:
            break;
        }
        err = add_field(s, st, (const char *)name, nlen, (const char *)value, vlen);
    }
    if (err < 0) {
        nghttp2_submit_rst_stream(ng, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_INTERNAL_ERROR);
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    }
    return 0;
}

static int count_named(const gc__http_request_t *r, const char *lower)
{
    int n = 0;
    for (size_t i = 0; i < r->nfields; i++)
        n += gc__view_ieq(gc__http_field_name(r, i), lower);
    return n;
}

/* The head is complete: the checks that need all of it, as the HTTP/1 parser makes
 * them (validate_head and gc__forward_check_head). Returns 0 or -ENOMEM. */
static int finish_head(gc__h2_session_t *s, gc__h2_stream_t *st, const nghttp2_frame *frame)
{
    gc__http_request_t *r = &st->req;
    struct gc__h2_stream_priv *p = sp(st);
    const gc__http_limits_t *l = &s->set.http;

    if (frame->hd.flags & NGHTTP2_FLAG_PRIORITY) {
        st->weight = frame->headers.pri_spec.weight;
        st->depends_on = frame->headers.pri_spec.stream_id;
        st->exclusive = frame->headers.pri_spec.exclusive;
    }
    if (st->error_status == 0 && gc__view_ieq(gc__http_method(r), "connect"))
        bad_request(st, 501, "CONNECT is not supported");
    if (st->error_status == 0 && l->max_line && r->target_len > l->max_line)
        bad_request(st, 400, "Request Line is too large (%u > %zu)", r->target_len, l->max_line);
    if (st->error_status == 0 && p->cookie.len > 0 &&
        add_field(s, st, "cookie", 6, p->cookie.data, p->cookie.len) < 0)
        return -ENOMEM;
    gc__buf_free(&p->cookie);
    if (st->error_status == 0) {
        int hosts = count_named(r, "host");
        if (hosts > 1)
            bad_request(st, 400, "Invalid HTTP Header: 'HOST'");
        else if (hosts == 0 && p->has_authority) {
            /* The value is the :authority bytes already in the head: copy them out first,
             * since appending may move the head. */
            char *a = malloc(p->authority_len + 1);
            if (a == NULL)
                return -ENOMEM;
            memcpy(a, r->head.data + p->authority_off, p->authority_len);
            int err = add_field(s, st, "host", 4, a, p->authority_len);
            free(a);
            if (err < 0)
                return err;
        }
    }
    if (st->error_status == 0 && count_named(r, "content-type") > 1)
        bad_request(st, 400, "Invalid HTTP Header: 'CONTENT-TYPE'");
    if (st->error_status == 0) {
        /* nghttp2 has checked that content-length is one run of digits. */
        ssize_t i = gc__http_find_field(r, "content-length");
        if (i >= 0) {
            gc__view_t v = gc__http_field_value(r, (size_t)i);
            int64_t n = 0;
            for (size_t k = 0; k < v.len && n < INT64_MAX / 10 - 10; k++)
                n = n * 10 + (v.base[k] - '0');
            r->content_length = n;
        }
        ssize_t e = gc__http_find_field(r, "expect");
        if (e >= 0 && gc__view_ieq(gc__http_field_value(r, (size_t)e), "100-continue"))
            r->expect_continue = !(frame->hd.flags & NGHTTP2_FLAG_END_STREAM);
    }
    if (st->error_status == 0) {
        int status;
        char msg[256];
        if (gc__forward_check_head(policy(s), s->set.trusted, r, &status, msg, sizeof(msg)) < 0)
            bad_request(st, status, "%s", msg);
    }
    st->scheme = gc__view(r->head.data + p->scheme_off, p->scheme_len);
    return 0;
}

/* --- nghttp2's receiving callbacks -------------------------------------------------- */

static int on_begin_headers(nghttp2_session *ng, const nghttp2_frame *frame, void *user)
{
    gc__h2_session_t *s = user;
    if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0;
    /* nghttp2 counts open streams against SETTINGS_MAX_CONCURRENT_STREAMS; we also count
     * streams the client closed while the caller still runs them. */
    if ((uint32_t)s->nstreams >= s->set.max_concurrent_streams) {
        s->stats.refused++;
        nghttp2_submit_rst_stream(ng, NGHTTP2_FLAG_NONE, frame->hd.stream_id,
                                  NGHTTP2_REFUSED_STREAM);
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    }
    gc__h2_stream_t *st = stream_new(s, frame->hd.stream_id);
    if (st == NULL) {
        nghttp2_submit_rst_stream(ng, NGHTTP2_FLAG_NONE, frame->hd.stream_id,
                                  NGHTTP2_INTERNAL_ERROR);
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    }
    nghttp2_session_set_stream_user_data(ng, frame->hd.stream_id, st);
    return 0;
}

/* END_STREAM from the client: the body is whole. */
static void body_done(gc__h2_session_t *s, gc__h2_stream_t *st)
{
    if (st->body_done)
        return;
    st->body_done = 1;
    if (sp(st)->handed && !sp(st)->released && s->cb.on_body_done)
        s->cb.on_body_done(s->user, st);
}

static int on_frame_recv(nghttp2_session *ng, const nghttp2_frame *frame, void *user)
{
    gc__h2_session_t *s = user;
    gc__h2_stream_t *st = frame->hd.stream_id ? stream_of(s, frame->hd.stream_id) : NULL;
    switch (frame->hd.type) {
    case NGHTTP2_HEADERS:
        if (st == NULL)
            return 0;
        if (frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
            if (finish_head(s, st, frame) < 0) {
                nghttp2_submit_rst_stream(ng, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_INTERNAL_ERROR);
                return 0;
            }
            if (st->error_status && count_bad(s) < 0)
                return 0; /* the connection ends: not worth an answer */
            sp(st)->handed = 1;
            s->nheld++;
            s->stats.requests++;
            s->cb.on_request(s->user, st);
            /* The caller may have released the stream; it is freed only when closed,
             * which cannot happen inside this callback. */
        }
        if (frame->hd.flags & NGHTTP2_FLAG_END_STREAM)
            body_done(s, st);
        return 0;
    case NGHTTP2_DATA:
        if (st != NULL && (frame->hd.flags & NGHTTP2_FLAG_END_STREAM))
            body_done(s, st);
        return 0;
    case NGHTTP2_RST_STREAM:
        /* CVE-2023-44487. nghttp2 has the same bucket, but when it runs out it only
         * queues a GOAWAY(INTERNAL_ERROR) and goes on with the bytes already read, so
         * one read full of HEADERS + RST_STREAM pairs still starts every stream in it.
         * Ours runs first (nghttp2 counts the frame after this callback) and stops the
         * reading at once. */
        s->stats.client_resets++;
        if (bucket_take(&s->resets, s->set.reset_burst, s->set.reset_rate) < 0)
            calm_down(s);
        return 0;
    case NGHTTP2_PING:
        /* The ACK of gc__h2_goaway's PING: the client has read the first GOAWAY, so the
         * streams it started are all here and the final GOAWAY can name the last. */
        if ((frame->hd.flags & NGHTTP2_FLAG_ACK) && s->stopping && !s->final_goaway &&
            memcmp(frame->ping.opaque_data, stop_ping, 8) == 0) {
            s->final_goaway = 1;
            nghttp2_submit_goaway(ng, NGHTTP2_FLAG_NONE,
                                  nghttp2_session_get_last_proc_stream_id(ng), NGHTTP2_NO_ERROR,
                                  NULL, 0);
        }
        return 0;
    default:
        return 0;
    }
}

static int on_data_chunk(nghttp2_session *ng, uint8_t flags, int32_t id, const uint8_t *data,
                         size_t len, void *user)
{
    gc__h2_session_t *s = user;
    gc__h2_stream_t *st = stream_of(s, id);
    /* The body of a refused head, or of a stream the caller let go, is dropped; nghttp2
     * still counts it in the flow-control windows. */
    if (st == NULL || st->error_status || st->body_error || sp(st)->released)
        return 0;
    size_t threshold = s->set.http.spool_threshold;
    size_t budget = s->set.body_memory ? s->set.body_memory : 4 * threshold;
    if (s->body_memory + len > budget)
        threshold = 0; /* the connection holds enough bodies in memory: to the file */
    int err = gc__http_body_append(&st->req.body, (const char *)data, len, threshold);
    body_account(s, st);
    if (err < 0) {
        st->body_error = err;
        nghttp2_submit_rst_stream(ng, NGHTTP2_FLAG_NONE, id, NGHTTP2_INTERNAL_ERROR);
    }
    return 0;
}

/* A stream error nghttp2 found in what the client sent (a malformed head, mostly). */
static int on_invalid_frame(nghttp2_session *ng, const nghttp2_frame *frame, int lib_error,
                            void *user)
{
    count_bad(user);
    return 0;
}

static int on_stream_close(nghttp2_session *ng, int32_t id, uint32_t code, void *user)
{
    gc__h2_session_t *s = user;
    gc__h2_stream_t *st = stream_of(s, id);
    if (st == NULL)
        return 0;
    nghttp2_session_set_stream_user_data(ng, id, NULL);
    st->closed = 1;
    st->close_code = code;
    /* Nothing more can be sent: give the queue's memory back now. */
    gc__buf_free(&sp(st)->out);
    sp(st)->out_off = 0;
    if (!sp(st)->handed || sp(st)->released) {
        stream_free(s, st);
        return 0;
    }
    if (s->cb.on_stream_close)
        s->cb.on_stream_close(s->user, st, code);
    return 0;
}

static int on_frame_send(nghttp2_session *ng, const nghttp2_frame *frame, void *user)
{
    gc__h2_session_t *s = user;
    if (frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA)
        return 0;
    if (!(frame->hd.flags & NGHTTP2_FLAG_END_STREAM))
        return 0;
    gc__h2_stream_t *st = stream_of(s, frame->hd.stream_id);
    if (st == NULL)
        return 0;
    /* The response is complete while the client still sends its body: RFC 9113 8.1
     * lets us end the stream with NO_ERROR so that it stops. */
    if (!st->body_done)
        nghttp2_submit_rst_stream(ng, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_NO_ERROR);
    return 0;
}

/* --- the response ---------------------------------------------------------------------- */

/* The data provider: queued bytes, DEFERRED when the queue is empty but not ended, EOF
 * (and trailers) at the end. */
static ssize_t read_body(nghttp2_session *ng, int32_t id, uint8_t *buf, size_t length,
                         uint32_t *flags, nghttp2_data_source *source, void *user)
{
    gc__h2_session_t *s = user;
    gc__h2_stream_t *st = source->ptr;
    struct gc__h2_stream_priv *p = sp(st);
    size_t avail = p->out.len - p->out_off;
    size_t n = avail < length ? avail : length;
    if (n > 0) {
        memcpy(buf, p->out.data + p->out_off, n);
        p->out_off += n;
        if (p->out_off == p->out.len) {
            p->out_off = 0;
            gc__buf_reset(&p->out);
        }
        p->notify = 1;
        s->notify_pending = 1;
    }
    if (p->out.len > p->out_off)
        return (ssize_t)n;
    if (!p->resp_ended) {
        if (n > 0)
            return (ssize_t)n;
        p->deferred = 1;
        return NGHTTP2_ERR_DEFERRED;
    }
    *flags |= NGHTTP2_DATA_FLAG_EOF;
    nghttp2_nv *nv = p->ntrailers > 0 ? malloc(p->ntrailers * sizeof(*nv)) : NULL;
    if (nv != NULL) {
        const char *c = p->trailers.data;
        for (size_t i = 0; i < p->ntrailers; i++) {
            size_t nl = strlen(c), vl = strlen(c + nl + 1);
            nv[i] =
                (nghttp2_nv){(uint8_t *)c, (uint8_t *)(c + nl + 1), nl, vl, NGHTTP2_NV_FLAG_NONE};
            c += nl + 1 + vl + 1;
        }
        if (nghttp2_submit_trailer(ng, id, nv, p->ntrailers) == 0)
            *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
        free(nv);
    }
    return (ssize_t)n;
}

static int is_connection_specific(gc__view_t name)
{
    return gc__view_ieq(name, "connection") || gc__view_ieq(name, "keep-alive") ||
           gc__view_ieq(name, "proxy-connection") || gc__view_ieq(name, "transfer-encoding") ||
           gc__view_ieq(name, "upgrade");
}

/* Lower-cases the fields into `out` as "name\0value\0" pairs, dropping the
 * connection-specific ones, and checks them as HTTP/2 fields. Returns the count kept, or
 * -EINVAL / -ENOMEM. */
static ssize_t pack_fields(gc__buf_t *out, const gc__h2_header_t *h, size_t n)
{
    ssize_t kept = 0;
    for (size_t i = 0; i < n; i++) {
        if (is_connection_specific(h[i].name))
            continue;
        size_t at = out->len;
        if (gc__buf_reserve(out, h[i].name.len + h[i].value.len + 2) < 0)
            return -ENOMEM;
        char *d = out->data + at;
        for (size_t k = 0; k < h[i].name.len; k++) {
            char c = h[i].name.base[k];
            d[k] = c >= 'A' && c <= 'Z' ? (char)(c + 32) : c;
        }
        d[h[i].name.len] = '\0';
        memcpy(d + h[i].name.len + 1, h[i].value.base, h[i].value.len);
        d[h[i].name.len + 1 + h[i].value.len] = '\0';
        /* nghttp2's name check lets pseudo-header names through: ours are made here. */
        if (h[i].name.len == 0 || d[0] == ':' ||
            !nghttp2_check_header_name((uint8_t *)d, h[i].name.len) ||
            !nghttp2_check_header_value((uint8_t *)d + h[i].name.len + 1, h[i].value.len))
            return -EINVAL;
        out->len += h[i].name.len + h[i].value.len + 2;
        kept++;
    }
    return kept;
}

/* Builds the nv array of ":status" and the packed fields in s->scratch. `nv` has room
 * for n + 1 entries. Returns the entries used or a negative error. */
static ssize_t build_nv(gc__h2_session_t *s, nghttp2_nv *nv, char status_text[4], int status,
                        const gc__h2_header_t *h, size_t n)
{
    gc__buf_reset(&s->scratch);
    ssize_t kept = pack_fields(&s->scratch, h, n);
    if (kept < 0)
        return kept;
    snprintf(status_text, 4, "%03d", status);
    nv[0] = (nghttp2_nv){(uint8_t *)":status", (uint8_t *)status_text, 7, 3, NGHTTP2_NV_FLAG_NONE};
    const char *c = s->scratch.data;
    for (ssize_t i = 0; i < kept; i++) {
        size_t nl = strlen(c), vl = strlen(c + nl + 1);
        nv[i + 1] =
            (nghttp2_nv){(uint8_t *)c, (uint8_t *)(c + nl + 1), nl, vl, NGHTTP2_NV_FLAG_NONE};
        c += nl + 1 + vl + 1;
    }
    return kept + 1;
}

static int ng_error(int rv)
{
    return rv == NGHTTP2_ERR_NOMEM ? -ENOMEM : -EPROTO;
}

static int submit_head(gc__h2_session_t *s, gc__h2_stream_t *st, int status,
                       const gc__h2_header_t *h, size_t n, int final, int end_stream)
{
    if (st->closed)
        return -ECONNRESET;
    if (sp(st)->resp_started)
        return -EALREADY;
    nghttp2_nv *nv = malloc((n + 1) * sizeof(*nv));
    if (nv == NULL)
        return -ENOMEM;
    char status_text[4];
    ssize_t nnv = build_nv(s, nv, status_text, status, h, n);
    int rv;
    if (nnv < 0) {
        rv = (int)nnv;
    } else if (!final) {
        rv = nghttp2_submit_headers(s->ng, NGHTTP2_FLAG_NONE, st->id, NULL, nv, (size_t)nnv, NULL);
        rv = rv < 0 ? ng_error(rv) : 0;
    } else {
        nghttp2_data_provider prd = {.source.ptr = st, .read_callback = read_body};
        rv = nghttp2_submit_response(s->ng, st->id, nv, (size_t)nnv, end_stream ? NULL : &prd);
        rv = rv < 0 ? ng_error(rv) : 0;
        if (rv == 0) {
            sp(st)->resp_started = 1;
            sp(st)->resp_ended = end_stream;
            sp(st)->no_body =
                status == 204 || status == 304 || gc__view_ieq(gc__http_method(&st->req), "head");
        }
    }
    free(nv);
    return rv;
}

int gc__h2_respond(gc__h2_session_t *s, gc__h2_stream_t *st, int status, const gc__h2_header_t *h,
                   size_t n, int end_stream)
{
    if (status < 200 || status > 999)
        return -EINVAL;
    return submit_head(s, st, status, h, n, 1, end_stream);
}

int gc__h2_send_informational(gc__h2_session_t *s, gc__h2_stream_t *st, int status,
                              const gc__h2_header_t *h, size_t n)
{
    if (status < 100 || status > 199 || status == 101)
        return -EINVAL;
    return submit_head(s, st, status, h, n, 0, 0);
}

/* Wakes the data provider after more bytes (or the end) were queued. */
static int resume(gc__h2_session_t *s, gc__h2_stream_t *st)
{
    if (!sp(st)->deferred)
        return 0;
    sp(st)->deferred = 0;
    int rv = nghttp2_session_resume_data(s->ng, st->id);
    return rv < 0 && rv != NGHTTP2_ERR_INVALID_ARGUMENT ? ng_error(rv) : 0;
}

int gc__h2_send_data(gc__h2_session_t *s, gc__h2_stream_t *st, const void *data, size_t len,
                     int end)
{
    struct gc__h2_stream_priv *p = sp(st);
    if (st->closed)
        return -ECONNRESET;
    if (!p->resp_started || p->resp_ended)
        return -EPIPE;
    if (len > 0 && !p->no_body) {
        /* Keep the queue compact: what was sent is dropped once it is half of it. */
        if (p->out_off > 0 && p->out_off >= p->out.len / 2) {
            gc__buf_consume(&p->out, p->out_off);
            p->out_off = 0;
        }
        if (gc__buf_append(&p->out, data, len) < 0)
            return -ENOMEM;
    }
    if (end)
        p->resp_ended = 1;
    return resume(s, st);
}

int gc__h2_send_trailers(gc__h2_session_t *s, gc__h2_stream_t *st, const gc__h2_header_t *h,
                         size_t n)
{
    struct gc__h2_stream_priv *p = sp(st);
    if (st->closed)
        return -ECONNRESET;
    if (!p->resp_started || p->resp_ended)
        return -EPIPE;
    gc__buf_reset(&p->trailers);
    ssize_t kept = pack_fields(&p->trailers, h, n);
    if (kept < 0) {
        gc__buf_reset(&p->trailers);
        return (int)kept;
    }
    p->ntrailers = (size_t)kept;
    p->resp_ended = 1;
    return resume(s, st);
}

size_t gc__h2_stream_queued(const gc__h2_stream_t *st)
{
    return st->priv->out.len - st->priv->out_off;
}

int gc__h2_reset(gc__h2_session_t *s, gc__h2_stream_t *st, uint32_t code)
{
    if (st->closed)
        return 0;
    int rv = nghttp2_submit_rst_stream(s->ng, NGHTTP2_FLAG_NONE, st->id, code);
    return rv < 0 ? ng_error(rv) : 0;
}

void gc__h2_stream_release(gc__h2_session_t *s, gc__h2_stream_t *st)
{
    struct gc__h2_stream_priv *p = sp(st);
    if (p->released)
        return;
    p->released = 1;
    s->nheld--;
    if (st->closed) {
        stream_free(s, st);
        return;
    }
    /* The stream lives on until its response is sent; the request is not needed. */
    request_drop(s, st);
    /* A response the caller will never finish must not leave the client waiting. */
    if (!p->resp_ended)
        nghttp2_submit_rst_stream(s->ng, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_INTERNAL_ERROR);
}

/* --- the session ----------------------------------------------------------------------- */

gc__h2_session_t *gc__h2_new(const gc__h2_settings_t *set, const gc__h2_callbacks_t *cb, void *user)
{
    if (set->max_frame_size < 16384 || set->max_frame_size > 16777215 ||
        set->initial_window_size > 0x7fffffffu || cb->on_request == NULL)
        return NULL;
    gc__h2_session_t *s = calloc(1, sizeof(*s));
    nghttp2_session_callbacks *cbs = NULL;
    nghttp2_option *opt = NULL;
    if (s == NULL)
        return NULL;
    s->set = *set;
    s->cb = *cb;
    s->user = user;
    s->bad = (bucket_t){set->bad_burst, gc__monotonic_ms()};
    s->resets = (bucket_t){set->reset_burst, s->bad.at_ms};
    gc__buf_init(&s->scratch);
    if (nghttp2_session_callbacks_new(&cbs) != 0 || nghttp2_option_new(&opt) != 0)
        goto fail;
    nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data_chunk);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_stream_close);
    nghttp2_session_callbacks_set_on_invalid_frame_recv_callback(cbs, on_invalid_frame);
    nghttp2_session_callbacks_set_on_frame_send_callback(cbs, on_frame_send);

    /* The 2023-2024 HTTP/2 defences that nghttp2 1.52 (with Debian's backports) has.
     * Its reset limit stays as a backstop behind ours (on_frame_recv). */
    nghttp2_option_set_stream_reset_rate_limit(opt, set->reset_burst, set->reset_rate);
    nghttp2_option_set_max_continuations(opt, set->max_continuations);
    nghttp2_option_set_max_settings(opt, set->max_settings);
    nghttp2_option_set_max_outbound_ack(opt, set->max_outbound_ack);
    nghttp2_option_set_max_deflate_dynamic_table_size(opt, set->max_deflate_table);
    if (nghttp2_session_server_new2(&s->ng, cbs, s, opt) != 0)
        goto fail;
    nghttp2_session_callbacks_del(cbs);
    nghttp2_option_del(opt);
    cbs = NULL;
    opt = NULL;

    nghttp2_settings_entry iv[4] = {
        {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, set->max_concurrent_streams},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, set->initial_window_size},
        {NGHTTP2_SETTINGS_MAX_FRAME_SIZE, set->max_frame_size},
        {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, set->max_header_list_size},
    };
    if (nghttp2_submit_settings(s->ng, NGHTTP2_FLAG_NONE, iv, set->max_header_list_size ? 4 : 3) !=
        0)
        goto fail;
    /* The connection's window starts at 65535 whatever the streams' is; a bigger stream
     * window would be capped by it for every upload, so it grows to match. */
    if (set->initial_window_size > 65535 &&
        nghttp2_session_set_local_window_size(s->ng, NGHTTP2_FLAG_NONE, 0,
                                              (int32_t)set->initial_window_size) != 0)
        goto fail;
    return s;

fail:
    if (cbs)
        nghttp2_session_callbacks_del(cbs);
    if (opt)
        nghttp2_option_del(opt);
    gc__h2_free(s);
    return NULL;
}

void gc__h2_free(gc__h2_session_t *s)
{
    if (s == NULL)
        return;
    /* nghttp2 calls on_stream_close for open streams while it is deleted: keep our
     * callbacks quiet, then free every stream object ourselves. */
    s->cb.on_stream_close = NULL;
    for (gc__h2_stream_t *st = s->streams; st; st = sp(st)->next)
        sp(st)->released = 1;
    if (s->ng)
        nghttp2_session_del(s->ng);
    while (s->streams)
        stream_free(s, s->streams);
    gc__buf_free(&s->scratch);
    free(s);
}

/* RFC 4648 section 5, without padding (RFC 7540 3.2.1); trailing '=' tolerated. */
static ssize_t base64url_decode(gc__view_t in, uint8_t *out)
{
    uint32_t acc = 0;
    int bits = 0;
    size_t n = 0, len = in.len;
    while (len > 0 && in.base[len - 1] == '=')
        len--;
    for (size_t i = 0; i < len; i++) {
        char c = in.base[i];
        int v;
        if (c >= 'A' && c <= 'Z')
            v = c - 'A';
        else if (c >= 'a' && c <= 'z')
            v = c - 'a' + 26;
        else if (c >= '0' && c <= '9')
            v = c - '0' + 52;
        else if (c == '-' || c == '+')
            v = 62;
        else if (c == '_' || c == '/')
            v = 63;
        else
            return -EINVAL;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[n++] = (uint8_t)(acc >> bits);
        }
    }
    return (ssize_t)n;
}

int gc__h2_upgrade(gc__h2_session_t *s, gc__view_t settings_b64, int was_head,
                   gc__http_request_t *req, gc__h2_stream_t **out)
{
    /* A SETTINGS payload is 6 bytes per entry; the field is bounded by the HTTP/1 head. */
    uint8_t *payload = malloc(settings_b64.len * 3 / 4 + 3);
    if (payload == NULL)
        return -ENOMEM;
    ssize_t n = base64url_decode(settings_b64, payload);
    int rv = n < 0 || n % 6 != 0 ? -EINVAL : 0;
    if (rv == 0) {
        rv = nghttp2_session_upgrade2(s->ng, payload, (size_t)n, was_head, NULL);
        rv = rv == NGHTTP2_ERR_INVALID_ARGUMENT ? -EINVAL
             : rv == NGHTTP2_ERR_PROTO          ? -EPROTO
             : rv < 0                           ? ng_error(rv)
                                                : 0;
    }
    free(payload);
    if (rv < 0)
        return rv;
    gc__h2_stream_t *st = stream_new(s, 1);
    if (st == NULL)
        return -ENOMEM;
    if (req != NULL) {
        gc__buf_free(&st->req.head);
        st->req = *req;
        memset(req, 0, sizeof(*req));
        gc__buf_init(&req->head);
        gc__buf_init(&req->body.mem);
        req->body.fd = -1;
        req->content_length = -1;
        req->script_name = -1;
    }
    /* Its response goes out as HTTP/2, whatever version the request came with. */
    st->req.major = 2;
    st->req.minor = 0;
    st->req.keep_alive = 1;
    snprintf(st->req.version, sizeof(st->req.version), "HTTP/2.0");
    nghttp2_session_set_stream_user_data(s->ng, 1, st);
    sp(st)->handed = 1;
    st->body_done = 1;
    s->nheld++;
    s->stats.requests++;
    *out = st;
    return 0;
}

ssize_t gc__h2_feed(gc__h2_session_t *s, const uint8_t *data, size_t len)
{
    ssize_t rv = nghttp2_session_mem_recv(s->ng, data, len);
    if (rv >= 0)
        return rv;
    /* nghttp2 gives up on these without a GOAWAY of its own: queue one that says why,
     * for the caller's last write. */
    uint32_t code = NGHTTP2_INTERNAL_ERROR;
    switch (rv) {
    case NGHTTP2_ERR_TOO_MANY_CONTINUATIONS:
    case NGHTTP2_ERR_FLOODED:
    case NGHTTP2_ERR_TOO_MANY_SETTINGS:
        code = NGHTTP2_ENHANCE_YOUR_CALM;
        break;
    case NGHTTP2_ERR_BAD_CLIENT_MAGIC:
    case NGHTTP2_ERR_SETTINGS_EXPECTED:
    case NGHTTP2_ERR_PROTO:
        code = NGHTTP2_PROTOCOL_ERROR;
        break;
    }
    nghttp2_session_terminate_session(s->ng, code);
    return ng_error((int)rv);
}

int gc__h2_want_write(const gc__h2_session_t *s)
{
    return nghttp2_session_want_write(s->ng);
}

int gc__h2_want_read(const gc__h2_session_t *s)
{
    return nghttp2_session_want_read(s->ng);
}

ssize_t gc__h2_send_into(gc__h2_session_t *s, gc__buf_t *out, size_t max)
{
    size_t start = out->len;
    ssize_t err = 0;
    while (out->len < max) {
        const uint8_t *p;
        ssize_t n = nghttp2_session_mem_send(s->ng, &p);
        if (n < 0) {
            err = ng_error((int)n);
            break;
        }
        if (n == 0)
            break;
        if (gc__buf_append(out, p, (size_t)n) < 0) {
            err = -ENOMEM; /* nghttp2 has let go of these bytes: the connection is lost */
            break;
        }
    }
    /* Tell the caller which streams' queues went down, outside nghttp2's callbacks so that
     * it may queue more at once. */
    if (s->notify_pending) {
        s->notify_pending = 0;
        /* The callback may release (and so free) any stream: start over after each. */
        for (gc__h2_stream_t *st = s->streams; st;) {
            if (!sp(st)->notify) {
                st = sp(st)->next;
                continue;
            }
            sp(st)->notify = 0;
            if (sp(st)->handed && !sp(st)->released && s->cb.on_data_sent)
                s->cb.on_data_sent(s->user, st, gc__h2_stream_queued(st));
            st = s->streams;
        }
    }
    return err < 0 ? err : (ssize_t)(out->len - start);
}

int gc__h2_idle(const gc__h2_session_t *s)
{
    return s->nstreams == 0;
}

int gc__h2_draining(const gc__h2_session_t *s)
{
    return s->stopping && !s->final_goaway;
}

int gc__h2_goaway(gc__h2_session_t *s)
{
    if (s->stopping)
        return 0;
    s->stopping = 1;
    int rv = nghttp2_submit_shutdown_notice(s->ng);
    if (rv == 0)
        rv = nghttp2_submit_ping(s->ng, NGHTTP2_FLAG_NONE, stop_ping);
    return rv < 0 ? ng_error(rv) : 0;
}

int gc__h2_terminate(gc__h2_session_t *s, uint32_t code)
{
    int rv = nghttp2_session_terminate_session(s->ng, code);
    return rv < 0 ? ng_error(rv) : 0;
}

void gc__h2_stats(const gc__h2_session_t *s, gc__h2_stats_t *out)
{
    *out = s->stats;
    out->streams = s->nstreams;
    out->held = s->nheld;
    out->body_memory = s->body_memory;
}
