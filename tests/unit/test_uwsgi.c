/* test_uwsgi.c: uwsgi packets into requests (src/http/uwsgi.c). */
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "http/forward.h"
#include "http/uwsgi.h"
#include "unit.h"

/* --- building packets --------------------------------------------------------------- */

typedef struct {
    gc__buf_t vars;
    gc__buf_t out; /* header + vars (+ body) */
} packet_t;

static void pk_init(packet_t *pk)
{
    gc__buf_init(&pk->vars);
    gc__buf_init(&pk->out);
}

static void pk_free(packet_t *pk)
{
    gc__buf_free(&pk->vars);
    gc__buf_free(&pk->out);
}

static void put16(gc__buf_t *b, size_t n)
{
    uint8_t le[2] = {(uint8_t)(n & 0xff), (uint8_t)(n >> 8)};
    ASSERT_OK(gc__buf_append(b, le, 2));
}

static void pk_var(packet_t *pk, const char *k, const char *v)
{
    put16(&pk->vars, strlen(k));
    ASSERT_OK(gc__buf_append_str(&pk->vars, k));
    put16(&pk->vars, strlen(v));
    ASSERT_OK(gc__buf_append_str(&pk->vars, v));
}

/* Header with modifier1 `m1` and the vars' real size, the vars, then `body`. */
static void pk_finish(packet_t *pk, uint8_t m1, const char *body)
{
    gc__buf_reset(&pk->out);
    ASSERT_OK(gc__buf_append(&pk->out, &m1, 1));
    put16(&pk->out, pk->vars.len);
    ASSERT_OK(gc__buf_append(&pk->out, "\0", 1));
    ASSERT_OK(gc__buf_append(&pk->out, pk->vars.data, pk->vars.len));
    if (body != NULL)
        ASSERT_OK(gc__buf_append_str(&pk->out, body));
}

/* --- parsing ---------------------------------------------------------------------- */

typedef struct {
    gc__http_limits_t limits;
    gc__http_parser_t p;
    gc__uwsgi_parser_t u;
} harness_t;

static void h_init(harness_t *h)
{
    gc__http_limits_default(&h->limits);
    gc__http_parser_init(&h->p, &h->limits);
    gc__uwsgi_init(&h->u);
}

static void h_free(harness_t *h)
{
    gc__uwsgi_free(&h->u);
    gc__http_parser_free(&h->p);
}

/* Feeds the bytes in pieces of `step` (0: all at once); returns how many were used. */
static size_t h_feed(harness_t *h, const char *d, size_t n, size_t step)
{
    size_t used = 0;
    while (used < n && h->p.state == GC_HTTP_NEED_MORE) {
        size_t piece = step == 0 || n - used < step ? n - used : step;
        size_t k = gc__uwsgi_feed(&h->u, &h->p, d + used, piece);
        used += k;
        if (k < piece)
            break;
    }
    return used;
}

static void assert_field(const gc__http_request_t *r, size_t i, const char *name, const char *value)
{
    ASSERT(i < r->nfields);
    gc__view_t n = gc__http_field_name(r, i), v = gc__http_field_value(r, i);
    ASSERT_MEM_STR(n.base, n.len, name);
    ASSERT_MEM_STR(v.base, v.len, value);
}

static void assert_body(const gc__http_request_t *r, const char *want)
{
    char buf[256];
    ssize_t n = gc__http_body_read(&r->body, 0, buf, sizeof(buf));
    ASSERT(n >= 0);
    ASSERT_MEM_STR(buf, (size_t)n, want);
}

/* What nginx sends with `include uwsgi_params` for GET /a/b?x=1, plus two headers. */
static void nginx_get(packet_t *pk)
{
    pk_var(pk, "QUERY_STRING", "x=1&y=%20");
    pk_var(pk, "REQUEST_METHOD", "GET");
    pk_var(pk, "CONTENT_TYPE", "");
    pk_var(pk, "CONTENT_LENGTH", "");
    pk_var(pk, "REQUEST_URI", "/a/b?x=1&y=%20");
    pk_var(pk, "PATH_INFO", "/a/b");
    pk_var(pk, "DOCUMENT_ROOT", "/usr/share/nginx/html");
    pk_var(pk, "SERVER_PROTOCOL", "HTTP/1.1");
    pk_var(pk, "REQUEST_SCHEME", "http");
    pk_var(pk, "REMOTE_ADDR", "10.1.2.3");
    pk_var(pk, "REMOTE_PORT", "40000");
    pk_var(pk, "SERVER_PORT", "80");
    pk_var(pk, "SERVER_NAME", "example.com");
    pk_var(pk, "HTTP_HOST", "example.com");
    pk_var(pk, "HTTP_USER_AGENT", "curl/7.88.1");
    pk_var(pk, "HTTP_X_FORWARDED_FOR", "10.0.0.9");
}

static void check_nginx_get(const gc__http_request_t *r)
{
    gc__view_t m = gc__http_method(r), t = gc__http_target(r);
    ASSERT_MEM_STR(m.base, m.len, "GET");
    ASSERT_MEM_STR(t.base, t.len, "/a/b?x=1&y=%20");
    ASSERT_EQ_INT(r->nfields, 5);
    assert_field(r, 0, "CONTENT-TYPE", "");
    assert_field(r, 1, "CONTENT-LENGTH", "");
    assert_field(r, 2, "HOST", "example.com");
    assert_field(r, 3, "USER-AGENT", "curl/7.88.1");
    assert_field(r, 4, "X-FORWARDED-FOR", "10.0.0.9");
    ASSERT_EQ_INT(r->major, 1);
    ASSERT_EQ_INT(r->minor, 1);
    ASSERT_EQ_INT(r->keep_alive, 0);
    ASSERT_EQ_INT(r->close_delimited, 1);
    ASSERT_EQ_INT(r->content_length, -1);
    ASSERT_EQ_INT(r->url_scheme, GC_SCHEME_UNSET);
    ASSERT_EQ_INT(r->body.len, 0);
}

static void test_nginx_get(void)
{
    packet_t pk;
    pk_init(&pk);
    nginx_get(&pk);
    pk_finish(&pk, 0, NULL);
    harness_t h;
    h_init(&h);
    ASSERT_EQ_INT(h_feed(&h, pk.out.data, pk.out.len, 0), pk.out.len);
    ASSERT_EQ_INT(h.p.state, GC_HTTP_READY);
    ASSERT(h.p.headers_done);
    check_nginx_get(&h.p.req);
    h_free(&h);
    pk_free(&pk);
}

/* The CONTENT-TYPE/CONTENT-LENGTH names keep their underscore in the packet but not in
 * the request: checked here with the raw names the environ maps. */
static void test_post_body_and_what_follows(void)
{
    packet_t pk;
    pk_init(&pk);
    pk_var(&pk, "REQUEST_METHOD", "POST");
    pk_var(&pk, "PATH_INFO", "/form");
    pk_var(&pk, "CONTENT_TYPE", "text/plain");
    pk_var(&pk, "CONTENT_LENGTH", "5");
    pk_finish(&pk, 0, "helloNEXT");
    harness_t h;
    h_init(&h);
    ASSERT_EQ_INT(h_feed(&h, pk.out.data, pk.out.len, 0), pk.out.len - 4);
    ASSERT_EQ_INT(h.p.state, GC_HTTP_READY);
    const gc__http_request_t *r = &h.p.req;
    gc__view_t t = gc__http_target(r);
    ASSERT_MEM_STR(t.base, t.len, "/form");
    ASSERT_EQ_INT(r->content_length, 5);
    assert_field(r, 0, "CONTENT-TYPE", "text/plain");
    assert_field(r, 1, "CONTENT-LENGTH", "5");
    assert_body(r, "hello");
    h_free(&h);
    pk_free(&pk);
}

/* Split at every byte, and one byte at a time: the same request every time. */
static void test_split_anywhere(void)
{
    packet_t pk;
    pk_init(&pk);
    nginx_get(&pk);
    pk_var(&pk, "CONTENT_LENGTH", "11");
    pk_finish(&pk, 0, "hello world");
    for (size_t cut = 0; cut <= pk.out.len; cut++) {
        harness_t h;
        h_init(&h);
        size_t a = gc__uwsgi_feed(&h.u, &h.p, pk.out.data, cut);
        ASSERT_EQ_INT(a, cut);
        ASSERT_EQ_INT(h.p.state, cut == pk.out.len ? GC_HTTP_READY : GC_HTTP_NEED_MORE);
        ASSERT_EQ_INT(h.p.started, cut > 0);
        size_t b = gc__uwsgi_feed(&h.u, &h.p, pk.out.data + cut, pk.out.len - cut);
        ASSERT_EQ_INT(a + b, pk.out.len);
        ASSERT_EQ_INT(h.p.state, GC_HTTP_READY);
        ASSERT_EQ_INT(h.p.req.content_length, 11);
        assert_body(&h.p.req, "hello world");
        h_free(&h);
    }
    harness_t h;
    h_init(&h);
    ASSERT_EQ_INT(h_feed(&h, pk.out.data, pk.out.len, 1), pk.out.len);
    ASSERT_EQ_INT(h.p.state, GC_HTTP_READY);
    assert_body(&h.p.req, "hello world");
    h_free(&h);
    pk_free(&pk);
}

/* Two packets in one read (a client that reuses its connection): the second is parsed
 * after gc__http_parser_next + gc__uwsgi_next. */
static void test_two_packets(void)
{
    packet_t pk;
    pk_init(&pk);
    nginx_get(&pk);
    pk_finish(&pk, 0, NULL);
    gc__buf_t two;
    gc__buf_init(&two);
    ASSERT_OK(gc__buf_append(&two, pk.out.data, pk.out.len));
    ASSERT_OK(gc__buf_append(&two, pk.out.data, pk.out.len));
    harness_t h;
    h_init(&h);
    size_t used = gc__uwsgi_feed(&h.u, &h.p, two.data, two.len);
    ASSERT_EQ_INT(used, pk.out.len);
    check_nginx_get(&h.p.req);
    gc__http_parser_next(&h.p);
    gc__uwsgi_next(&h.u);
    ASSERT_EQ_INT(h.p.started, 0);
    ASSERT_EQ_INT(gc__uwsgi_feed(&h.u, &h.p, two.data + used, two.len - used), pk.out.len);
    ASSERT_EQ_INT(h.p.state, GC_HTTP_READY);
    check_nginx_get(&h.p.req);
    h_free(&h);
    gc__buf_free(&two);
    pk_free(&pk);
}

static void test_defaults_and_empty_packet(void)
{
    packet_t pk;
    pk_init(&pk);
    pk_finish(&pk, 0, NULL); /* datasize 0: no variables at all */
    harness_t h;
    h_init(&h);
    ASSERT_EQ_INT(h_feed(&h, pk.out.data, pk.out.len, 0), 4);
    ASSERT_EQ_INT(h.p.state, GC_HTTP_READY);
    gc__view_t m = gc__http_method(&h.p.req), t = gc__http_target(&h.p.req);
    ASSERT_MEM_STR(m.base, m.len, "GET");
    ASSERT_MEM_STR(t.base, t.len, "/");
    ASSERT_EQ_INT(h.p.req.nfields, 0);
    h_free(&h);
    pk_free(&pk);
}

/* PATH_INFO arrives decoded: the target encodes what the environ's decoding would
 * change, so that PATH_INFO reaches the application exactly as sent. */
static void test_path_info_is_escaped(void)
{
    packet_t pk;
    pk_init(&pk);
    pk_var(&pk, "PATH_INFO", "/a%41 b?c#d\xc3\xa9");
    pk_var(&pk, "QUERY_STRING", "q=%41");
    pk_finish(&pk, 0, NULL);
    harness_t h;
    h_init(&h);
    h_feed(&h, pk.out.data, pk.out.len, 0);
    ASSERT_EQ_INT(h.p.state, GC_HTTP_READY);
    gc__view_t t = gc__http_target(&h.p.req);
    ASSERT_MEM_STR(t.base, t.len, "/a%2541%20b%3Fc%23d%C3%A9?q=%41");
    gc__view_t path, query;
    gc__http_split_target(t, &path, &query);
    ASSERT_MEM_STR(path.base, path.len, "/a%2541%20b%3Fc%23d%C3%A9");
    ASSERT_MEM_STR(query.base, query.len, "q=%41");
    h_free(&h);
    pk_free(&pk);
}

static int scheme_of(const char *https, const char *url_scheme)
{
    packet_t pk;
    pk_init(&pk);
    if (https)
        pk_var(&pk, "HTTPS", https);
    if (url_scheme)
        pk_var(&pk, "wsgi.url_scheme", url_scheme);
    pk_finish(&pk, 0, NULL);
    harness_t h;
    h_init(&h);
    h_feed(&h, pk.out.data, pk.out.len, 0);
    ASSERT_EQ_INT(h.p.state, GC_HTTP_READY);
    int s = h.p.req.url_scheme;
    h_free(&h);
    pk_free(&pk);
    return s;
}

static void test_scheme(void)
{
    ASSERT_EQ_INT(scheme_of(NULL, NULL), GC_SCHEME_UNSET);
    ASSERT_EQ_INT(scheme_of("on", NULL), GC_SCHEME_HTTPS);
    ASSERT_EQ_INT(scheme_of("ON", NULL), GC_SCHEME_HTTPS);
    ASSERT_EQ_INT(scheme_of("1", NULL), GC_SCHEME_HTTPS);
    ASSERT_EQ_INT(scheme_of("True", NULL), GC_SCHEME_HTTPS);
    ASSERT_EQ_INT(scheme_of("off", NULL), GC_SCHEME_UNSET);
    ASSERT_EQ_INT(scheme_of(NULL, "https"), GC_SCHEME_HTTPS);
    ASSERT_EQ_INT(scheme_of(NULL, "http"), GC_SCHEME_HTTP);
    ASSERT_EQ_INT(scheme_of("off", "ftp"), GC_SCHEME_UNSET);
}

static void test_body_spools_to_a_file(void)
{
    packet_t pk;
    pk_init(&pk);
    pk_var(&pk, "REQUEST_METHOD", "PUT");
    pk_var(&pk, "CONTENT_LENGTH", "11");
    pk_finish(&pk, 0, "hello world");
    harness_t h;
    h_init(&h);
    h.limits.spool_threshold = 4;
    ASSERT_EQ_INT(h_feed(&h, pk.out.data, pk.out.len, 3), pk.out.len);
    ASSERT_EQ_INT(h.p.state, GC_HTTP_READY);
    ASSERT(h.p.req.body.fd >= 0);
    assert_body(&h.p.req, "hello world");
    h_free(&h);
    pk_free(&pk);
}

/* Feeds a finished packet; returns the refusal status (0: none). */
static int refusal(packet_t *pk, const gc__http_limits_t *limits, char *msg, size_t cap)
{
    harness_t h;
    h_init(&h);
    if (limits != NULL)
        h.limits = *limits;
    h_feed(&h, pk->out.data, pk->out.len, 0);
    gc__uwsgi_eof(&h.u, &h.p);
    int status = h.p.state == GC_HTTP_ERROR ? h.p.error_status : 0;
    ASSERT(status != 0 || h.p.state == GC_HTTP_READY);
    if (msg != NULL)
        snprintf(msg, cap, "%s", h.p.error_msg);
    h_free(&h);
    return status;
}

static void test_limits(void)
{
    char msg[256];
    gc__http_limits_t l;
    gc__http_limits_default(&l);
    packet_t pk;
    pk_init(&pk);
    pk_var(&pk, "HTTP_A", "1");
    pk_var(&pk, "HTTP_B", "2");
    pk_var(&pk, "CONTENT_TYPE", "x");
    pk_finish(&pk, 0, NULL);
    l.max_fields = 3;
    ASSERT_EQ_INT(refusal(&pk, &l, NULL, 0), 0);
    l.max_fields = 2;
    ASSERT_EQ_INT(refusal(&pk, &l, msg, sizeof(msg)), 431);
    ASSERT_EQ_STR(msg, "limit request headers fields");
    /* "AB: 1\r\n" is 7 bytes. */
    gc__buf_reset(&pk.vars);
    pk_var(&pk, "HTTP_AB", "1");
    pk_finish(&pk, 0, NULL);
    gc__http_limits_default(&l);
    l.max_field_size = 7;
    ASSERT_EQ_INT(refusal(&pk, &l, NULL, 0), 0);
    l.max_field_size = 6;
    ASSERT_EQ_INT(refusal(&pk, &l, NULL, 0), 431);
    /* "GET /abc HTTP/1.1" is 17 bytes. */
    gc__buf_reset(&pk.vars);
    pk_var(&pk, "PATH_INFO", "/abc");
    pk_finish(&pk, 0, NULL);
    gc__http_limits_default(&l);
    l.max_line = 17;
    ASSERT_EQ_INT(refusal(&pk, &l, NULL, 0), 0);
    l.max_line = 16;
    ASSERT_EQ_INT(refusal(&pk, &l, msg, sizeof(msg)), 400);
    ASSERT_EQ_STR(msg, "Request Line is too large (17 > 16)");
    /* At most 1000 variables, whatever the limits. */
    gc__buf_reset(&pk.vars);
    for (int i = 0; i < GC_UWSGI_MAX_VARS; i++)
        pk_var(&pk, "X", "");
    pk_finish(&pk, 0, NULL);
    ASSERT_EQ_INT(refusal(&pk, NULL, NULL, 0), 0);
    pk_var(&pk, "X", "");
    pk_finish(&pk, 0, NULL);
    ASSERT_EQ_INT(refusal(&pk, NULL, msg, sizeof(msg)), 400);
    ASSERT_EQ_STR(msg, "Invalid uWSGI header: more than 1000 variables");
    pk_free(&pk);
}

static void test_bad_modifier(void)
{
    char msg[256];
    packet_t pk;
    pk_init(&pk);
    nginx_get(&pk);
    pk_finish(&pk, 5, NULL);
    ASSERT_EQ_INT(refusal(&pk, NULL, msg, sizeof(msg)), 501);
    ASSERT_EQ_STR(msg, "Unsupported uWSGI modifier1: 5");
    pk_free(&pk);
}

/* A datasize that disagrees with the variables inside it. */
static void test_bad_sizes(void)
{
    static const struct {
        const char *bytes;
        size_t len;
        const char *why;
    } cases[] = {
        {"\x00\x01\x00\x00"
         "A",
         5, "truncated key size"},
        {"\x00\x03\x00\x00"
         "\x05\x00"
         "A",
         7, "truncated key"},
        {"\x00\x04\x00\x00"
         "\x01\x00"
         "A"
         "\x01",
         8, "truncated value size"},
        {"\x00\x07\x00\x00"
         "\x01\x00"
         "A"
         "\x09\x00"
         "BC",
         11, "truncated value"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        harness_t h;
        h_init(&h);
        ASSERT_EQ_INT(gc__uwsgi_feed(&h.u, &h.p, cases[i].bytes, cases[i].len), cases[i].len);
        ASSERT_EQ_INT(h.p.state, GC_HTTP_ERROR);
        ASSERT_EQ_INT(h.p.error_status, 400);
        char want[128];
        snprintf(want, sizeof(want), "Invalid uWSGI header: %s", cases[i].why);
        ASSERT_EQ_STR(h.p.error_msg, want);
        h_free(&h);
    }
}

/* The connection ends inside the header, the variables or the body. */
static void test_truncated(void)
{
    packet_t pk;
    pk_init(&pk);
    nginx_get(&pk);
    pk_var(&pk, "CONTENT_LENGTH", "4");
    pk_finish(&pk, 0, "body");
    for (size_t cut = 0; cut < pk.out.len; cut++) {
        harness_t h;
        h_init(&h);
        ASSERT_EQ_INT(gc__uwsgi_feed(&h.u, &h.p, pk.out.data, cut), cut);
        gc__uwsgi_eof(&h.u, &h.p);
        if (cut == 0) {
            ASSERT_EQ_INT(h.p.state, GC_HTTP_NEED_MORE); /* an idle close */
        } else {
            ASSERT_EQ_INT(h.p.state, GC_HTTP_ERROR);
            ASSERT_EQ_INT(h.p.error_status, 400);
            const char *want = cut < 4 ? "Invalid uWSGI header: incomplete header"
                               : cut < pk.out.len - 4
                                   ? "Invalid uWSGI header: incomplete vars block"
                                   : "Request body ended early";
            ASSERT(strncmp(h.p.error_msg, want, strlen(want)) == 0);
        }
        h_free(&h);
    }
    pk_free(&pk);
}

static void test_bad_variables(void)
{
    static const struct {
        const char *key, *value;
        int status;
    } cases[] = {
        {"CONTENT_LENGTH", "abc", 400},
        {"CONTENT_LENGTH", "-1", 400},
        {"CONTENT_LENGTH", "99999999999999999999999", 400},
        {"REQUEST_METHOD", "GE T", 400},
        {"REQUEST_METHOD", "", 400},
        {"HTTP_X_A", "a\r\nInjected: 1", 400},
        {"HTTP_X_A", "a\nb", 400},
        {"HTTP_X A", "v", 400},
        {"HTTP_X:A", "v", 400},
        {"QUERY_STRING", "a\r\nb", 400},
        {"PATH_INFO", "abc", 400},
        {"PATH_INFO", "http://example.com/", 400},
        /* Accepted: */
        {"CONTENT_LENGTH", "0", 0},
        {"PATH_INFO", "", 0},
        {"HTTP_", "ignored: no name", 0},
        {"REQUEST_METHOD", "PROPFIND", 0},
        {"HTTP_X_A", "tab\tand latin-1 \xe9", 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        packet_t pk;
        pk_init(&pk);
        pk_var(&pk, cases[i].key, cases[i].value);
        pk_finish(&pk, 0, NULL);
        int got = refusal(&pk, NULL, NULL, 0);
        if (got != cases[i].status)
            fprintf(stderr, "case %zu: %s=%s\n", i, cases[i].key, cases[i].value);
        ASSERT_EQ_INT(got, cases[i].status);
        pk_free(&pk);
    }
}

int main(int argc, char **argv)
{
    unit_init(argc, argv);
    RUN(test_nginx_get);
    RUN(test_post_body_and_what_follows);
    RUN(test_split_anywhere);
    RUN(test_two_packets);
    RUN(test_defaults_and_empty_packet);
    RUN(test_path_info_is_escaped);
    RUN(test_scheme);
    RUN(test_body_spools_to_a_file);
    RUN(test_limits);
    RUN(test_bad_modifier);
    RUN(test_bad_sizes);
    RUN(test_truncated);
    RUN(test_bad_variables);
    return unit_done();
}
