/* uwsgi.c: uwsgi request packets into gc__http_request_t (see uwsgi.h).
 *
 * Three phases per request: the 4-byte header, the variables block (collected whole,
 * at most 65,535 bytes, then turned into the request in one pass), the body (streamed
 * into the request's body as it arrives). */
#include "http/uwsgi.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/forward.h"

void gc__uwsgi_init(gc__uwsgi_parser_t *u)
{
    memset(u, 0, sizeof(*u));
    gc__buf_init(&u->vars);
}

void gc__uwsgi_free(gc__uwsgi_parser_t *u)
{
    gc__buf_free(&u->vars);
}

void gc__uwsgi_next(gc__uwsgi_parser_t *u)
{
    u->hdr_len = 0;
    u->datasize = 0;
    u->body_left = 0;
    /* A big block's memory is given back rather than kept for the next packet. */
    if (u->vars.cap > 16 * 1024)
        gc__buf_free(&u->vars);
    gc__buf_reset(&u->vars);
}

static void fail(gc__http_parser_t *p, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void fail(gc__http_parser_t *p, int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->error_msg, sizeof(p->error_msg), fmt, ap);
    va_end(ap);
    p->error_status = status;
    p->state = GC_HTTP_ERROR;
}

static int oom(gc__http_parser_t *p)
{
    fail(p, 500, "Out of memory while reading the request");
    return -1;
}

static uint16_t le16(const uint8_t *b)
{
    return (uint16_t)(b[0] | (b[1] << 8));
}

/* --- the variables ---------------------------------------------------------------- */

typedef struct {
    gc__view_t key, value;
} var_t;

/* The variables the request is made of, found in a first pass (the last of a repeated
 * name wins, as in Gunicorn's dict). */
enum { K_METHOD, K_PATH, K_QUERY, K_HTTPS, K_SCHEME, K_LENGTH, K_COUNT };
static const char *const known_names[K_COUNT] = {
    "REQUEST_METHOD", "PATH_INFO", "QUERY_STRING", "HTTPS", "wsgi.url_scheme", "CONTENT_LENGTH",
};

static int is_tchar(unsigned char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           (ch != 0 && strchr("!#$%&'*+-.^_`|~", ch) != NULL);
}

static int view_is(gc__view_t v, const char *s)
{
    size_t n = strlen(s);
    return v.len == n && memcmp(v.base, s, n) == 0;
}

/* Whether a PATH_INFO byte must be percent-encoded in the target: what would end the
 * path (?, #), start an escape (%), or is not visible ASCII. */
static int must_escape(unsigned char ch)
{
    return ch <= 0x20 || ch >= 0x7f || ch == '%' || ch == '?' || ch == '#';
}

/* Reads the variable at *pos of the block (d, n) into *out and moves *pos past it.
 * Returns 1, 0 at the end of the block, or -1 after fail() (a truncated variable). */
static int next_var(gc__http_parser_t *p, const char *d, size_t n, size_t *pos, var_t *out)
{
    size_t at = *pos;
    if (at == n)
        return 0;
    const char *why = NULL;
    size_t klen = 0, vlen = 0;
    if (n - at < 2) {
        why = "truncated key size";
    } else if (klen = le16((const uint8_t *)d + at), at += 2, n - at < klen) {
        why = "truncated key";
    } else if (out->key = gc__view(d + at, klen), at += klen, n - at < 2) {
        why = "truncated value size";
    } else if (vlen = le16((const uint8_t *)d + at), at += 2, n - at < vlen) {
        why = "truncated value";
    }
    if (why != NULL) {
        fail(p, 400, "Invalid uWSGI header: %s", why);
        return -1;
    }
    out->value = gc__view(d + at, vlen);
    *pos = at + vlen;
    return 1;
}

/* Appends a header field (name with "_" turned into "-"), within the limits. Returns 0,
 * or -1 after fail(). */
static int add_field(gc__http_parser_t *p, gc__view_t name, gc__view_t value)
{
    gc__http_request_t *r = &p->req;
    const gc__http_limits_t *l = p->limits;
    if (l->max_field_size > 0 && name.len + 2 + value.len + 2 > l->max_field_size) {
        fail(p, 431, "limit request headers fields size");
        return -1;
    }
    for (size_t i = 0; i < value.len; i++) {
        unsigned char ch = (unsigned char)value.base[i];
        if (ch == '\r' || ch == '\n' || ch == '\0') {
            fail(p, 400, "Invalid uWSGI variable value for %.*s", (int)name.len, name.base);
            return -1;
        }
    }
    /* A name sent twice keeps its first place and its last value (Gunicorn keeps the
     * variables in a dict). */
    for (size_t i = 0; i < r->nfields; i++) {
        gc__view_t have = gc__http_field_name(r, i);
        if (have.len != name.len)
            continue;
        size_t j = 0;
        while (j < name.len && (name.base[j] == '_' ? '-' : name.base[j]) == have.base[j])
            j++;
        if (j < name.len)
            continue;
        r->fields[i].value_off = (uint32_t)r->head.len;
        r->fields[i].value_len = (uint32_t)value.len;
        return gc__buf_append(&r->head, value.base, value.len) < 0 ? oom(p) : 0;
    }
    if (r->nfields >= l->max_fields) {
        fail(p, 431, "limit request headers fields");
        return -1;
    }
    if (gc__http_fields_reserve(r) < 0)
        return oom(p);
    gc__http_field_t *f = &r->fields[r->nfields];
    memset(f, 0, sizeof(*f));
    f->name_off = (uint32_t)r->head.len;
    f->name_len = (uint32_t)name.len;
    if (gc__buf_append(&r->head, name.base, name.len) < 0)
        return oom(p);
    char *nm = r->head.data + f->name_off;
    for (size_t i = 0; i < name.len; i++)
        if (nm[i] == '_')
            nm[i] = '-';
    f->value_off = (uint32_t)r->head.len;
    f->value_len = (uint32_t)value.len;
    if (gc__buf_append(&r->head, value.base, value.len) < 0)
        return oom(p);
    r->nfields++;
    return 0;
}

/* CONTENT_LENGTH: empty means no body; otherwise digits only. Returns 0 or -1 after
 * fail(). */
static int take_length(gc__http_parser_t *p, gc__view_t v, uint64_t *out)
{
    *out = 0;
    uint64_t n = 0;
    for (size_t i = 0; i < v.len; i++) {
        unsigned char ch = (unsigned char)v.base[i];
        if (ch < '0' || ch > '9' || n > (UINT64_C(1) << 53)) {
            fail(p, 400, "Invalid uWSGI variable: CONTENT_LENGTH '%.*s'",
                 (int)(v.len > 40 ? 40 : v.len), v.base);
            return -1;
        }
        n = n * 10 + (uint64_t)(ch - '0');
    }
    *out = n;
    return 0;
}

/* The variables block is whole: builds p->req from it. Returns 0, or -1 after fail(). */
static int build(gc__uwsgi_parser_t *u, gc__http_parser_t *p)
{
    gc__http_request_t *r = &p->req;
    const char *d = u->vars.data;
    size_t n = u->vars.len, pos = 0, count = 0;
    var_t v;
    int more;
    /* First pass: the block is well formed, and where the variables we need are. */
    gc__view_t known[K_COUNT];
    int has[K_COUNT] = {0};
    while ((more = next_var(p, d, n, &pos, &v)) > 0) {
        if (++count > GC_UWSGI_MAX_VARS) {
            fail(p, 400, "Invalid uWSGI header: more than %d variables", GC_UWSGI_MAX_VARS);
            return -1;
        }
        for (int i = 0; i < K_COUNT; i++)
            if (view_is(v.key, known_names[i])) {
                known[i] = v.value;
                has[i] = 1;
                break;
            }
    }
    if (more < 0)
        return -1;

    /* The request line: method, target. */
    gc__view_t method = has[K_METHOD] ? known[K_METHOD] : gc__view("GET", 3);
    if (method.len == 0 || method.len > 64) {
        fail(p, 400, "Invalid HTTP method: '%.*s'", (int)(method.len > 64 ? 64 : method.len),
             method.base);
        return -1;
    }
    for (size_t i = 0; i < method.len; i++)
        if (!is_tchar((unsigned char)method.base[i])) {
            fail(p, 400, "Invalid HTTP method: '%.*s'", (int)method.len, method.base);
            return -1;
        }
    r->method_off = (uint32_t)r->head.len;
    r->method_len = (uint32_t)method.len;
    if (gc__buf_append(&r->head, method.base, method.len) < 0)
        return oom(p);
    r->target_off = (uint32_t)r->head.len;
    gc__view_t path = has[K_PATH] && known[K_PATH].len > 0 ? known[K_PATH] : gc__view("/", 1);
    if (path.base[0] != '/') { /* nothing else would make an origin-form target */
        fail(p, 400, "Invalid uWSGI variable: PATH_INFO must start with /");
        return -1;
    }
    static const char hex[] = "0123456789ABCDEF";
    for (size_t i = 0; i < path.len; i++) {
        unsigned char ch = (unsigned char)path.base[i];
        char esc[3] = {'%', hex[ch >> 4], hex[ch & 15]};
        int rc = must_escape(ch) ? gc__buf_append(&r->head, esc, 3)
                                 : gc__buf_append(&r->head, (const char *)&ch, 1);
        if (rc < 0)
            return oom(p);
    }
    gc__view_t query = has[K_QUERY] ? known[K_QUERY] : gc__view("", 0);
    if (query.len > 0) {
        for (size_t i = 0; i < query.len; i++) {
            unsigned char ch = (unsigned char)query.base[i];
            if (ch < 0x20 || ch == 0x7f) {
                fail(p, 400, "Invalid uWSGI variable value for QUERY_STRING");
                return -1;
            }
        }
        if (gc__buf_append(&r->head, "?", 1) < 0 ||
            gc__buf_append(&r->head, query.base, query.len) < 0)
            return oom(p);
    }
    r->target_len = (uint32_t)(r->head.len - r->target_off);
    size_t line = r->method_len + 1 + r->target_len + 9; /* " HTTP/1.1" */
    if (p->limits->max_line > 0 && line > p->limits->max_line) {
        fail(p, 400, "Request Line is too large (%zu > %zu)", line, p->limits->max_line);
        return -1;
    }

    /* Second pass: the header fields, in packet order. */
    pos = 0;
    while (next_var(p, d, n, &pos, &v) > 0) {
        gc__view_t key = v.key;
        int rc = 0;
        if (key.len > 5 && memcmp(key.base, "HTTP_", 5) == 0) {
            gc__view_t name = gc__view(key.base + 5, key.len - 5);
            for (size_t j = 0; j < name.len; j++)
                if (!is_tchar((unsigned char)name.base[j])) {
                    fail(p, 400, "Invalid HTTP header name: '%.*s'", (int)name.len, name.base);
                    return -1;
                }
            rc = add_field(p, name, v.value);
        } else if (view_is(key, "CONTENT_TYPE") || view_is(key, "CONTENT_LENGTH")) {
            rc = add_field(p, key, v.value);
        }
        if (rc < 0)
            return -1;
    }

    uint64_t length;
    gc__view_t clen = has[K_LENGTH] ? known[K_LENGTH] : gc__view("", 0);
    if (take_length(p, clen, &length) < 0)
        return -1;
    r->content_length = clen.len > 0 ? (int64_t)length : -1;
    u->body_left = length;

    gc__view_t https = known[K_HTTPS], scheme = known[K_SCHEME];
    if (has[K_HTTPS] &&
        (gc__view_ieq(https, "on") || gc__view_ieq(https, "1") || gc__view_ieq(https, "true")))
        r->url_scheme = GC_SCHEME_HTTPS;
    else if (has[K_SCHEME] && view_is(scheme, "https"))
        r->url_scheme = GC_SCHEME_HTTPS;
    else if (has[K_SCHEME] && view_is(scheme, "http"))
        r->url_scheme = GC_SCHEME_HTTP;
    r->major = 1;
    r->minor = 1;
    r->keep_alive = 0;
    r->close_delimited = 1;
    return 0;
}

/* --- feeding ---------------------------------------------------------------------- */

size_t gc__uwsgi_feed(gc__uwsgi_parser_t *u, gc__http_parser_t *p, const char *data, size_t len)
{
    size_t used = 0;
    if (p->state != GC_HTTP_NEED_MORE)
        return 0;
    if (len > 0)
        p->started = 1;
    if (u->hdr_len < 4) {
        while (u->hdr_len < 4 && used < len)
            u->hdr[u->hdr_len++] = (uint8_t)data[used++];
        if (u->hdr_len < 4)
            return used;
        if (u->hdr[0] != 0) {
            fail(p, 501, "Unsupported uWSGI modifier1: %u", u->hdr[0]);
            return used;
        }
        u->datasize = le16(u->hdr + 1);
    }
    if (!p->headers_done) {
        size_t want = u->datasize - u->vars.len, take = len - used < want ? len - used : want;
        if (gc__buf_append(&u->vars, data + used, take) < 0) {
            fail(p, 500, "Out of memory while reading the request");
            return used;
        }
        used += take;
        if (u->vars.len < u->datasize)
            return used;
        if (build(u, p) < 0)
            return used;
        p->headers_done = 1;
    }
    if (u->body_left > 0 && used < len) {
        size_t take = len - used;
        if (take > u->body_left)
            take = (size_t)u->body_left;
        int err = gc__http_body_append(&p->req.body, data + used, take, p->limits->spool_threshold);
        if (err < 0) {
            fail(p, 500,
                 err == -ENOMEM ? "Out of memory while reading the request"
                                : "Cannot write the request body to a temporary file");
            return used;
        }
        used += take;
        u->body_left -= take;
    }
    if (u->body_left == 0)
        p->state = GC_HTTP_READY;
    return used;
}

void gc__uwsgi_eof(gc__uwsgi_parser_t *u, gc__http_parser_t *p)
{
    if (p->state != GC_HTTP_NEED_MORE || !p->started)
        return;
    if (u->hdr_len < 4)
        fail(p, 400, "Invalid uWSGI header: incomplete header");
    else if (!p->headers_done)
        fail(p, 400, "Invalid uWSGI header: incomplete vars block");
    else
        fail(p, 400, "Request body ended early: %llu bytes missing",
             (unsigned long long)u->body_left);
}
