/* test_http_parser.c: the llhttp glue in src/http/parser.c.
 *
 * Requests are fed whole and in small pieces (down to one byte at a time): a read can
 * end anywhere, and the parser must give the same request whatever the split. Each
 * request is summarised as text by describe() so that two parses compare in one
 * assertion. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "http/parser.h"
#include "unit.h"

#define LIT(s) (s), sizeof(s) - 1

static gc__http_limits_t limits;

/* Feeds data in pieces of `step` bytes (0: all at once) until the parser stops asking
 * for more. Returns the bytes consumed. */
static size_t feed_steps(gc__http_parser_t *p, const char *data, size_t len, size_t step)
{
    size_t off = 0;
    while (off < len && p->state == GC_HTTP_NEED_MORE) {
        size_t n = step == 0 || step > len - off ? len - off : step;
        size_t used = gc__http_parser_feed(p, data + off, n);
        ASSERT(used <= n);
        off += used;
        if (used < n)
            break; /* the request ended inside this piece */
    }
    return off;
}

/* Reads the whole body back through gc__http_body_read, in pieces of 1000 bytes. */
static char *read_body(const gc__http_body_t *b)
{
    char *out = malloc(b->len + 1);
    ASSERT(out != NULL);
    uint64_t off = 0;
    for (;;) {
        ssize_t n = gc__http_body_read(b, off, out + off, 1000);
        ASSERT(n >= 0);
        if (n == 0)
            break;
        off += (uint64_t)n;
    }
    ASSERT_EQ_INT(off, b->len);
    out[off] = '\0';
    return out;
}

/* A one-string summary of a parsed request: everything the WSGI layer reads. */
static void describe(const gc__http_request_t *r, gc__buf_t *out)
{
    gc__view_t m = gc__http_method(r), t = gc__http_target(r);
    gc__buf_printf(out, "%.*s %.*s HTTP/%d.%d ka=%d chunked=%d cl=%lld expect=%d\n", (int)m.len,
                   m.base, (int)t.len, t.base, r->major, r->minor, r->keep_alive, r->chunked,
                   (long long)r->content_length, r->expect_continue);
    for (size_t i = 0; i < r->nfields; i++) {
        gc__view_t n = gc__http_field_name(r, i), v = gc__http_field_value(r, i);
        gc__buf_printf(out, "[%.*s]=[%.*s]\n", (int)n.len, n.base, (int)v.len, v.base);
    }
    char *body = read_body(&r->body);
    gc__buf_printf(out, "body(%llu)=%s", (unsigned long long)r->body.len, body);
    free(body);
}

/* Parses `data` as one complete request fed in pieces of `step` and appends its summary
 * to out. */
static void parse_one(const char *data, size_t len, size_t step, gc__buf_t *out)
{
    gc__http_parser_t p;
    gc__http_parser_init(&p, &limits);
    size_t used = feed_steps(&p, data, len, step);
    if (p.state == GC_HTTP_ERROR)
        fprintf(stderr, "\nparse error %d: %s\n", p.error_status, p.error_msg);
    ASSERT_EQ_INT(p.state, GC_HTTP_READY);
    ASSERT_EQ_INT(used, len);
    describe(&p.req, out);
    gc__http_parser_free(&p);
}

/* Parses `data` expecting a refusal with `status`; returns the parser for more checks
 * (the caller frees it). */
static void parse_error(gc__http_parser_t *p, const char *data, size_t len, size_t step, int status)
{
    gc__http_parser_init(p, &limits);
    feed_steps(p, data, len, step);
    ASSERT_EQ_INT(p->state, GC_HTTP_ERROR);
    ASSERT_EQ_INT(p->error_status, status);
    ASSERT(p->error_msg[0] != '\0');
}

#define ASSERT_VIEW(v, s) ASSERT_MEM_STR((v).base, (v).len, (s))

static const char simple_get[] = "GET /path/to?q=1&r=%20 HTTP/1.1\r\n"
                                 "Host: example.com\r\n"
                                 "User-Agent: unit/1.0\r\n"
                                 "Accept: */*\r\n"
                                 "\r\n";

static void test_simple_get(void)
{
    gc__http_parser_t p;
    gc__http_parser_init(&p, &limits);
    size_t used = gc__http_parser_feed(&p, LIT(simple_get));
    ASSERT_EQ_INT(used, sizeof(simple_get) - 1);
    ASSERT_EQ_INT(p.state, GC_HTTP_READY);
    ASSERT_EQ_INT(p.error_status, 0);
    ASSERT(p.headers_done);

    const gc__http_request_t *r = &p.req;
    ASSERT_VIEW(gc__http_method(r), "GET");
    ASSERT_VIEW(gc__http_target(r), "/path/to?q=1&r=%20");
    ASSERT_EQ_INT(r->major, 1);
    ASSERT_EQ_INT(r->minor, 1);
    ASSERT_EQ_INT(r->keep_alive, 1);
    ASSERT_EQ_INT(r->chunked, 0);
    ASSERT_EQ_INT(r->content_length, -1);
    ASSERT_EQ_INT(r->expect_continue, 0);
    ASSERT_EQ_INT(r->body.len, 0);
    ASSERT_EQ_INT(r->body.fd, -1);

    ASSERT_EQ_INT(r->nfields, 3);
    ASSERT_VIEW(gc__http_field_name(r, 0), "Host");
    ASSERT_VIEW(gc__http_field_value(r, 0), "example.com");
    ASSERT_VIEW(gc__http_field_name(r, 1), "User-Agent");
    ASSERT_VIEW(gc__http_field_value(r, 1), "unit/1.0");
    ASSERT_VIEW(gc__http_field_name(r, 2), "Accept");
    ASSERT_VIEW(gc__http_field_value(r, 2), "*/*");

    /* Feeding more to a parser holding a ready request consumes nothing. */
    ASSERT_EQ_INT(gc__http_parser_feed(&p, LIT("GET")), 0);
    gc__http_parser_free(&p);
}

/* The summary must not depend on where the reads split the bytes. */
static void assert_split_invariant(const char *data, size_t len)
{
    static const size_t steps[] = {1, 2, 3, 5, 7, 13, 64};
    gc__buf_t whole, piece;
    gc__buf_init(&whole);
    parse_one(data, len, 0, &whole);
    for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
        gc__buf_init(&piece);
        parse_one(data, len, steps[i], &piece);
        ASSERT_EQ_MEM(piece.data, piece.len, whole.data, whole.len);
        gc__buf_free(&piece);
    }
    gc__buf_free(&whole);
}

static void test_byte_by_byte(void)
{
    gc__buf_t whole;
    gc__buf_init(&whole);
    parse_one(LIT(simple_get), 0, &whole);
    ASSERT_MEM_STR(whole.data, whole.len,
                   "GET /path/to?q=1&r=%20 HTTP/1.1 ka=1 chunked=0 cl=-1 expect=0\n"
                   "[Host]=[example.com]\n"
                   "[User-Agent]=[unit/1.0]\n"
                   "[Accept]=[*/*]\n"
                   "body(0)=");
    gc__buf_free(&whole);
    assert_split_invariant(LIT(simple_get));

    /* Empty values and many fields, also split everywhere. */
    static const char many[] =
        "DELETE /x HTTP/1.1\r\n"
        "Host: h\r\n"
        "X-Empty:\r\n"
        "X-Spaces:    \r\n"
        "X-A: 1\r\n"
        "x-b:2\r\n"
        "X-Long: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n"
        "\r\n";
    gc__buf_init(&whole);
    parse_one(LIT(many), 1, &whole);
    ASSERT_MEM_STR(whole.data, whole.len,
                   "DELETE /x HTTP/1.1 ka=1 chunked=0 cl=-1 expect=0\n"
                   "[Host]=[h]\n"
                   "[X-Empty]=[]\n"
                   "[X-Spaces]=[]\n"
                   "[X-A]=[1]\n"
                   "[x-b]=[2]\n"
                   "[X-Long]=[aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa]\n"
                   "body(0)=");
    gc__buf_free(&whole);
    assert_split_invariant(LIT(many));
}

static void test_value_whitespace_stripped(void)
{
    static const char req[] = "GET / HTTP/1.1\r\n"
                              "Host:   example.com  \t \r\n"
                              "X-Inner: a  b\t\r\n"
                              "X-Tab:\tv\t\r\n"
                              "\r\n";
    gc__buf_t out;
    gc__buf_init(&out);
    parse_one(LIT(req), 0, &out);
    ASSERT_MEM_STR(out.data, out.len,
                   "GET / HTTP/1.1 ka=1 chunked=0 cl=-1 expect=0\n"
                   "[Host]=[example.com]\n"
                   "[X-Inner]=[a  b]\n"
                   "[X-Tab]=[v]\n"
                   "body(0)=");
    gc__buf_free(&out);
    assert_split_invariant(LIT(req));
}

static void test_post_content_length(void)
{
    static const char req[] = "POST /submit HTTP/1.1\r\n"
                              "Host: x\r\n"
                              "Content-Type: text/plain\r\n"
                              "Content-Length: 11\r\n"
                              "\r\n"
                              "hello world";
    gc__http_parser_t p;
    gc__http_parser_init(&p, &limits);
    ASSERT_EQ_INT(gc__http_parser_feed(&p, LIT(req)), sizeof(req) - 1);
    ASSERT_EQ_INT(p.state, GC_HTTP_READY);
    ASSERT_VIEW(gc__http_method(&p.req), "POST");
    ASSERT_EQ_INT(p.req.content_length, 11);
    ASSERT_EQ_INT(p.req.chunked, 0);
    ASSERT_EQ_INT(p.req.body.len, 11);
    ASSERT_EQ_INT(p.req.body.fd, -1);
    char buf[32];
    ASSERT_EQ_INT(gc__http_body_read(&p.req.body, 0, buf, sizeof(buf)), 11);
    ASSERT_EQ_MEM(buf, 11, "hello world", 11);
    /* Reads at an offset, cut to the end, and past the end. */
    ASSERT_EQ_INT(gc__http_body_read(&p.req.body, 6, buf, 3), 3);
    ASSERT_EQ_MEM(buf, 3, "wor", 3);
    ASSERT_EQ_INT(gc__http_body_read(&p.req.body, 9, buf, 100), 2);
    ASSERT_EQ_MEM(buf, 2, "ld", 2);
    ASSERT_EQ_INT(gc__http_body_read(&p.req.body, 11, buf, 100), 0);
    ASSERT_EQ_INT(gc__http_body_read(&p.req.body, 500, buf, 100), 0);
    gc__http_parser_free(&p);

    /* Until the last body byte arrives the request is not handed on. */
    gc__http_parser_init(&p, &limits);
    ASSERT_EQ_INT(gc__http_parser_feed(&p, req, sizeof(req) - 2), sizeof(req) - 2);
    ASSERT_EQ_INT(p.state, GC_HTTP_NEED_MORE);
    ASSERT(p.headers_done);
    ASSERT_EQ_INT(gc__http_parser_feed(&p, req + sizeof(req) - 2, 1), 1);
    ASSERT_EQ_INT(p.state, GC_HTTP_READY);
    gc__http_parser_free(&p);

    assert_split_invariant(LIT(req));
}

static const char chunked_req[] = "POST /c HTTP/1.1\r\n"
                                  "Host: x\r\n"
                                  "Transfer-Encoding: chunked\r\n"
                                  "\r\n"
                                  "5\r\nhello\r\n"
                                  "6;name=value\r\n world\r\n"
                                  "1A\r\nabcdefghijklmnopqrstuvwxyz\r\n"
                                  "0\r\n"
                                  "\r\n";

static void test_chunked_body(void)
{
    gc__buf_t out;
    gc__buf_init(&out);
    parse_one(LIT(chunked_req), 0, &out);
    ASSERT_MEM_STR(out.data, out.len,
                   "POST /c HTTP/1.1 ka=1 chunked=1 cl=-1 expect=0\n"
                   "[Host]=[x]\n"
                   "[Transfer-Encoding]=[chunked]\n"
                   "body(37)=hello worldabcdefghijklmnopqrstuvwxyz");
    gc__buf_free(&out);
    assert_split_invariant(LIT(chunked_req));
}

/* Trailer fields after a chunked body are not request headers: Gunicorn keeps them
 * apart (req.trailers) and never puts them in the environ, so a trailer must not be
 * able to add or override a header such as Content-Length. */
static void test_chunked_trailers_not_headers(void)
{
    static const char req[] = "POST /t HTTP/1.1\r\n"
                              "Host: x\r\n"
                              "Transfer-Encoding: chunked\r\n"
                              "\r\n"
                              "3\r\nabc\r\n"
                              "0\r\n"
                              "X-Content-Length: 999\r\n"
                              "X-Checksum: 1234  \r\n"
                              "\r\n";
    gc__buf_t out;
    gc__buf_init(&out);
    parse_one(LIT(req), 0, &out);
    ASSERT_MEM_STR(out.data, out.len,
                   "POST /t HTTP/1.1 ka=1 chunked=1 cl=-1 expect=0\n"
                   "[Host]=[x]\n"
                   "[Transfer-Encoding]=[chunked]\n"
                   "body(3)=abc");
    gc__buf_free(&out);
    assert_split_invariant(LIT(req));
}

static void test_pipelined(void)
{
    static const char two[] = "POST /a HTTP/1.1\r\nHost: one\r\nContent-Length: 3\r\n\r\nxyz"
                              "GET /b HTTP/1.1\r\nHost: two\r\n\r\n";
    const size_t first_len =
        strlen("POST /a HTTP/1.1\r\nHost: one\r\nContent-Length: 3\r\n\r\nxyz");
    gc__http_parser_t p;
    gc__http_parser_init(&p, &limits);

    size_t used = gc__http_parser_feed(&p, LIT(two));
    ASSERT_EQ_INT(used, first_len);
    ASSERT_EQ_INT(p.state, GC_HTTP_READY);
    ASSERT_VIEW(gc__http_target(&p.req), "/a");
    ASSERT_VIEW(gc__http_field_value(&p.req, 0), "one");
    char body[4];
    ASSERT_EQ_INT(gc__http_body_read(&p.req.body, 0, body, sizeof(body)), 3);
    ASSERT_EQ_MEM(body, 3, "xyz", 3);

    gc__http_parser_next(&p);
    ASSERT_EQ_INT(p.state, GC_HTTP_NEED_MORE);
    size_t rest = sizeof(two) - 1 - used;
    ASSERT_EQ_INT(gc__http_parser_feed(&p, two + used, rest), rest);
    ASSERT_EQ_INT(p.state, GC_HTTP_READY);
    ASSERT_VIEW(gc__http_method(&p.req), "GET");
    ASSERT_VIEW(gc__http_target(&p.req), "/b");
    ASSERT_EQ_INT(p.req.nfields, 1);
    ASSERT_VIEW(gc__http_field_value(&p.req, 0), "two");
    ASSERT_EQ_INT(p.req.content_length, -1);
    ASSERT_EQ_INT(p.req.body.len, 0);

    /* The connection is idle again after the second request. */
    gc__http_parser_next(&p);
    gc__http_parser_eof(&p);
    ASSERT_EQ_INT(p.state, GC_HTTP_NEED_MORE);
    ASSERT_EQ_INT(p.error_status, 0);
    gc__http_parser_free(&p);

    /* The same two requests arriving one byte at a time. */
    gc__http_parser_init(&p, &limits);
    size_t off = 0;
    int done = 0;
    while (off < sizeof(two) - 1) {
        off += gc__http_parser_feed(&p, two + off, 1);
        if (p.state == GC_HTTP_READY) {
            done++;
            ASSERT_VIEW(gc__http_target(&p.req), done == 1 ? "/a" : "/b");
            ASSERT_EQ_INT(off, done == 1 ? first_len : sizeof(two) - 1);
            gc__http_parser_next(&p);
        }
        ASSERT(p.state != GC_HTTP_ERROR);
    }
    ASSERT_EQ_INT(done, 2);
    gc__http_parser_free(&p);
}

/* Gunicorn has no protocol upgrades: a request with "Connection: Upgrade" or a CONNECT
 * is an ordinary request, and the bytes after it are read as the next request. */
static void test_upgrade_reads_on(void)
{
    static const char *const first[] = {
        "GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
        "POST /u HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: h2c\r\nContent-Length: "
        "3\r\n\r\nabc",
    };
    static const char second[] = "GET /next HTTP/1.1\r\nHost: h\r\n\r\n";
    for (size_t i = 0; i < sizeof(first) / sizeof(first[0]); i++) {
        for (size_t step = 0; step <= 1; step++) {
            gc__buf_t in;
            gc__buf_init(&in);
            gc__buf_append_str(&in, first[i]);
            gc__buf_append_str(&in, second);
            gc__http_parser_t p;
            gc__http_parser_init(&p, &limits);
            size_t used = feed_steps(&p, in.data, in.len, step);
            ASSERT_EQ_INT(p.state, GC_HTTP_READY);
            ASSERT_EQ_INT(used, strlen(first[i]));
            ASSERT(gc__http_method(&p.req).len > 0);
            gc__http_parser_next(&p);
            ASSERT_EQ_INT(feed_steps(&p, in.data + used, in.len - used, step), in.len - used);
            ASSERT_EQ_INT(p.state, GC_HTTP_READY);
            ASSERT_VIEW(gc__http_target(&p.req), "/next");
            ASSERT_EQ_INT(p.req.keep_alive, 1);
            gc__http_parser_next(&p);
            /* Whatever follows is HTTP too, and bytes of another protocol are refused. */
            ASSERT_EQ_INT(gc__http_parser_feed(&p, LIT("\x81\x85ws-frame")), 10);
            ASSERT_EQ_INT(p.state, GC_HTTP_ERROR);
            ASSERT_EQ_INT(p.error_status, 400);
            gc__http_parser_free(&p);
            gc__buf_free(&in);
        }
    }
}

static int keep_alive_of(const char *req)
{
    gc__http_parser_t p;
    gc__http_parser_init(&p, &limits);
    ASSERT_EQ_INT(gc__http_parser_feed(&p, req, strlen(req)), strlen(req));
    ASSERT_EQ_INT(p.state, GC_HTTP_READY);
    int ka = p.req.keep_alive;
    gc__http_parser_free(&p);
    return ka;
}

static void test_keep_alive(void)
{
    ASSERT_EQ_INT(keep_alive_of("GET / HTTP/1.0\r\n\r\n"), 0);
    ASSERT_EQ_INT(keep_alive_of("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"), 1);
    ASSERT_EQ_INT(keep_alive_of("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"), 1);
    ASSERT_EQ_INT(keep_alive_of("GET / HTTP/1.1\r\nHost: h\r\n\r\n"), 1);
    ASSERT_EQ_INT(keep_alive_of("GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"), 0);

    gc__http_parser_t p;
    gc__http_parser_init(&p, &limits);
    gc__http_parser_feed(&p, LIT("GET / HTTP/1.0\r\n\r\n"));
    ASSERT_EQ_INT(p.req.major, 1);
    ASSERT_EQ_INT(p.req.minor, 0);
    gc__http_parser_free(&p);
}

/* A request line of exactly `n` bytes (without CRLF): "GET /aaa...a HTTP/1.1". */
static char *request_with_line(size_t n)
{
    size_t target = n - strlen("GET ") - strlen(" HTTP/1.1");
    char *s = malloc(n + 64);
    ASSERT(s != NULL);
    strcpy(s, "GET /");
    memset(s + 5, 'a', target - 1);
    strcpy(s + 4 + target, " HTTP/1.1\r\nHost: h\r\n\r\n");
    return s;
}

static void test_limit_request_line(void)
{
    gc__http_parser_t p;
    /* Gunicorn's limit counts the line without its CRLF; a line at the limit passes. */
    char *ok = request_with_line(limits.max_line);
    gc__http_parser_init(&p, &limits);
    ASSERT_EQ_INT(gc__http_parser_feed(&p, ok, strlen(ok)), strlen(ok));
    ASSERT_EQ_INT(p.state, GC_HTTP_READY);
    ASSERT_EQ_INT(gc__http_target(&p.req).len, limits.max_line - 13);
    gc__http_parser_free(&p);
    free(ok);

    char *big = request_with_line(limits.max_line + 1);
    for (size_t step = 0; step <= 1; step++) {
        parse_error(&p, big, strlen(big), step, 400);
        ASSERT(strstr(p.error_msg, "Request Line is too large") != NULL);
        gc__http_parser_free(&p);
    }
    free(big);

    /* The limit stops a client that never ends its line, long before it would. */
    char *endless = malloc(1 << 20);
    ASSERT(endless != NULL);
    memcpy(endless, "GET /", 5);
    memset(endless + 5, 'b', (1 << 20) - 5);
    parse_error(&p, endless, 1 << 20, 0, 400);
    ASSERT(strstr(p.error_msg, "Request Line is too large") != NULL);
    ASSERT(p.req.head.len <= limits.max_line);
    gc__http_parser_free(&p);
    free(endless);

    /* 0 means unlimited. */
    gc__http_limits_t unlimited = limits;
    unlimited.max_line = 0;
    char *huge = request_with_line(20000);
    gc__http_parser_init(&p, &unlimited);
    ASSERT_EQ_INT(gc__http_parser_feed(&p, huge, strlen(huge)), strlen(huge));
    ASSERT_EQ_INT(p.state, GC_HTTP_READY);
    gc__http_parser_free(&p);
    free(huge);
}

/* A request with n fields "X-Field-<i>: v". */
static void request_with_fields(gc__buf_t *out, size_t n)
{
    gc__buf_append_str(out, "GET / HTTP/1.0\r\n");
    for (size_t i = 0; i < n; i++)
        gc__buf_printf(out, "X-Field-%zu: v\r\n", i);
    gc__buf_append_str(out, "\r\n");
}

static void test_limit_request_fields(void)
{
    gc__http_parser_t p;
    gc__buf_t req;

    /* Exactly max_fields is allowed. */
    gc__buf_init(&req);
    request_with_fields(&req, limits.max_fields);
    gc__http_parser_init(&p, &limits);
    ASSERT_EQ_INT(gc__http_parser_feed(&p, req.data, req.len), req.len);
    ASSERT_EQ_INT(p.state, GC_HTTP_READY);
    ASSERT_EQ_INT(p.req.nfields, limits.max_fields);
    gc__http_parser_free(&p);
    gc__buf_free(&req);

    gc__buf_init(&req);
    request_with_fields(&req, limits.max_fields + 1);
    for (size_t step = 0; step <= 1; step++) {
        parse_error(&p, req.data, req.len, step, 431);
        ASSERT_EQ_STR(p.error_msg, "limit request headers fields");
        gc__http_parser_free(&p);
    }
    gc__buf_free(&req);
}

static void test_limit_field_size(void)
{
    gc__http_parser_t p;
    gc__buf_t req;
    /* "X-Big: " + value + "\r\n" is exactly max_field_size bytes: allowed. */
    size_t vlen = limits.max_field_size - strlen("X-Big: \r\n");
    char *value = malloc(vlen + 2);
    ASSERT(value != NULL);
    memset(value, 'v', vlen + 1);
    value[vlen] = '\0';

    gc__buf_init(&req);
    gc__buf_printf(&req, "GET / HTTP/1.0\r\nX-Big: %s\r\n\r\n", value);
    gc__http_parser_init(&p, &limits);
    ASSERT_EQ_INT(gc__http_parser_feed(&p, req.data, req.len), req.len);
    ASSERT_EQ_INT(p.state, GC_HTTP_READY);
    ASSERT_EQ_INT(gc__http_field_value(&p.req, 0).len, vlen);
    gc__http_parser_free(&p);
    gc__buf_free(&req);

    /* One byte more in the value is refused, whole or byte by byte. */
    value[vlen] = 'v';
    value[vlen + 1] = '\0';
    gc__buf_init(&req);
    gc__buf_printf(&req, "GET / HTTP/1.0\r\nX-Big: %s\r\n\r\n", value);
    for (size_t step = 0; step <= 1; step++) {
        parse_error(&p, req.data, req.len, step, 431);
        ASSERT_EQ_STR(p.error_msg, "limit request headers fields size");
        gc__http_parser_free(&p);
    }
    gc__buf_free(&req);

    /* A name alone can pass the limit too: "<name>: v\r\n" is one byte too long. */
    size_t nlen = limits.max_field_size - strlen(": v\r\n") + 1;
    gc__buf_init(&req);
    gc__buf_append_str(&req, "GET / HTTP/1.1\r\n");
    for (size_t i = 0; i < nlen; i++)
        gc__buf_append(&req, "N", 1);
    gc__buf_append_str(&req, ": v\r\n\r\n");
    parse_error(&p, req.data, req.len, 0, 431);
    gc__http_parser_free(&p);
    gc__buf_free(&req);
    free(value);
}

static void test_expect(void)
{
    static const char cont[] = "PUT /up HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\n"
                               "Content-Length: 4\r\n\r\n";
    gc__http_parser_t p;
    gc__http_parser_init(&p, &limits);
    /* The head is handed over alone (GC_HTTP_HEAD): the application decides whether
     * the body is wanted, and only then does the worker say "100 Continue". */
    ASSERT_EQ_INT(gc__http_parser_feed(&p, LIT(cont)), sizeof(cont) - 1);
    ASSERT_EQ_INT(p.state, GC_HTTP_HEAD);
    ASSERT(p.headers_done);
    ASSERT_EQ_INT(p.req.expect_continue, 1);
    ASSERT_EQ_INT(p.req.body_pending, 1);
    ASSERT_EQ_INT(gc__http_parser_feed(&p, LIT("data")), 0); /* paused until resumed */
    gc__http_parser_resume_body(&p);
    ASSERT_EQ_INT(gc__http_parser_feed(&p, LIT("data")), 4);
    ASSERT_EQ_INT(p.state, GC_HTTP_READY);
    ASSERT_EQ_INT(p.req.body_pending, 0);
    ASSERT_EQ_INT(p.req.body.len, 4);
    gc__http_parser_free(&p);

    /* Case does not matter; a body sent along anyway stays unparsed until resumed. */
    static const char eager[] = "PUT / HTTP/1.1\r\nHost: h\r\nexpect: 100-Continue\r\n"
                                "Content-Length: 1\r\n\r\nx";
    gc__http_parser_init(&p, &limits);
    ASSERT_EQ_INT(gc__http_parser_feed(&p, LIT(eager)), sizeof(eager) - 2);
    ASSERT_EQ_INT(p.state, GC_HTTP_HEAD);
    ASSERT_EQ_INT(p.req.expect_continue, 1);
    gc__http_parser_resume_body(&p);
    ASSERT_EQ_INT(gc__http_parser_feed(&p, LIT("x")), 1);
    ASSERT_EQ_INT(p.state, GC_HTTP_READY);
    gc__http_parser_free(&p);

    /* Without a body there is nothing to wait for. */
    gc__http_parser_init(&p, &limits);
    gc__http_parser_feed(&p, LIT("GET / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\n\r\n"));
    ASSERT_EQ_INT(p.state, GC_HTTP_READY);
    ASSERT_EQ_INT(p.req.expect_continue, 0);
    gc__http_parser_free(&p);

    /* Anything else cannot be met. */
    parse_error(
        &p,
        LIT("PUT / HTTP/1.1\r\nHost: h\r\nExpect: something-else\r\nContent-Length: 1\r\n\r\nx"), 0,
        417);
    ASSERT(strstr(p.error_msg, "something-else") != NULL);
    gc__http_parser_free(&p);
}

static void test_content_length_with_chunked(void)
{
    gc__http_parser_t p;
    parse_error(&p,
                LIT("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n"
                    "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"),
                0, 400);
    gc__http_parser_free(&p);
    parse_error(&p,
                LIT("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n"
                    "Content-Length: 5\r\n\r\n5\r\nhello\r\n0\r\n\r\n"),
                1, 400);
    gc__http_parser_free(&p);
}

static void test_invalid_requests(void)
{
    static const char *const bad[] = {
        "\x01\x02\x03 garbage\r\n\r\n",
        "get / HTTP/1.1\r\n\r\n",
        "GET / HTTP/9.9x\r\n\r\n",
        "GET / FOO/1.1\r\n\r\n",
        "GET  HTTP/1.1\r\n\r\n",
        "GET / HTTP/1.1\r\nBad Name: v\r\n\r\n",
        "GET / HTTP/1.1\r\nHost : h\r\n\r\n",
        "POST / HTTP/1.1\r\nTransfer-Encoding : chunked\r\nContent-Length: 3\r\n\r\nabc",
        "GET / HTTP/1.1\r\nX: a\x01b\r\n\r\n",
        "GET / HTTP/1.1\r\nX: a\rb\r\n\r\n",
        "POST / HTTP/1.1\r\nContent-Length: abc\r\n\r\n",
        "POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
        "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        for (size_t step = 0; step <= 1; step++) {
            gc__http_parser_t p;
            gc__http_parser_init(&p, &limits);
            feed_steps(&p, bad[i], strlen(bad[i]), step);
            if (p.state != GC_HTTP_ERROR)
                fprintf(stderr, "\naccepted: %s\n", bad[i]);
            ASSERT_EQ_INT(p.state, GC_HTTP_ERROR);
            ASSERT_EQ_INT(p.error_status, 400);
            ASSERT(p.error_msg[0] != '\0');
            /* An errored parser stays errored. */
            ASSERT_EQ_INT(gc__http_parser_feed(&p, LIT("GET / HTTP/1.1\r\n\r\n")), 0);
            ASSERT_EQ_INT(p.state, GC_HTTP_ERROR);
            gc__http_parser_free(&p);
        }
    }

    /* A NUL in a value, and the message for a name that is no token. */
    gc__http_parser_t p;
    parse_error(&p, LIT("GET / HTTP/1.1\r\nX: a\0b\r\n\r\n"), 0, 400);
    gc__http_parser_free(&p);
    parse_error(&p, LIT("GET / HTTP/1.1\r\nHost: h\r\nBad Name: v\r\n\r\n"), 0, 400);
    ASSERT_EQ_STR(p.error_msg, "Invalid HTTP header name: 'Bad Name'");
    gc__http_parser_free(&p);
}

/* --- stricter parsing (docs/http.md, "Where we are stricter than Gunicorn") ------------ */

/* `req` is refused with `status` whether it arrives whole, in pieces or byte by byte. */
static void expect_refused(const char *req, size_t len, int status)
{
    static const size_t steps[] = {0, 1, 2, 7};
    for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
        gc__http_parser_t p;
        gc__http_parser_init(&p, &limits);
        feed_steps(&p, req, len, steps[i]);
        if (p.state != GC_HTTP_ERROR || p.error_status != status)
            fprintf(stderr, "\nstep %zu: state %d status %d (%s) for: %.*s\n", steps[i], p.state,
                    p.error_status, p.error_msg, (int)(len > 300 ? 300 : len), req);
        ASSERT_EQ_INT(p.state, GC_HTTP_ERROR);
        ASSERT_EQ_INT(p.error_status, status);
        gc__http_parser_free(&p);
    }
}

#define REFUSED(s, status) expect_refused(LIT(s), status)

static void test_strict_host(void)
{
    REFUSED("GET / HTTP/1.1\r\nHost: user@example.com\r\n\r\n", 400);
    REFUSED("GET / HTTP/1.1\r\nHost: example.com/x\r\n\r\n", 400);
    REFUSED("GET / HTTP/1.1\r\nHost: a, b\r\n\r\n", 400);
    REFUSED("GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400);
    REFUSED("GET / HTTP/1.1\r\nHost: a:b\r\n\r\n", 400);
    REFUSED("GET / HTTP/1.1\r\nHost: a:123456\r\n\r\n", 400);
    REFUSED("GET / HTTP/1.1\r\nHost: :80\r\n\r\n", 400);
    REFUSED("GET / HTTP/1.1\r\nHost: [::1\r\n\r\n", 400);
    REFUSED("GET / HTTP/1.1\r\nHost: [zz::1]\r\n\r\n", 400);
    REFUSED("GET / HTTP/1.1\r\nHost: a%4\r\n\r\n", 400);
    REFUSED("GET / HTTP/1.1\r\nHost: caf\xc3\xa9.example\r\n\r\n", 400);
    /* Empty: the target has no authority, so the URI would have an empty host. */
    REFUSED("GET / HTTP/1.1\r\nHost:\r\n\r\n", 400);
    REFUSED("GET / HTTP/1.0\r\nHost: \r\n\r\n", 400);
    REFUSED("OPTIONS * HTTP/1.1\r\nHost:\r\n\r\n", 400);

    gc__http_parser_t p;
    parse_error(&p, LIT("GET / HTTP/1.1\r\nHost: user@h\r\n\r\n"), 0, 400);
    ASSERT_EQ_STR(p.error_msg, "Invalid Host header: 'user@h'");
    gc__http_parser_free(&p);

    static const char *const good[] = {
        "GET / HTTP/1.1\r\nHost: example.com\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: example.com:8080\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: 127.0.0.1:80\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: [::1]:8000\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: [v1.fe80::a+en1]\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: xn--caf-dma.example%2D1\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: h:\r\n\r\n",
        "GET / HTTP/1.0\r\n\r\n",
        /* An absolute-form target carries the authority: an empty Host goes with it. */
        "GET http://example.com/x HTTP/1.1\r\nHost:\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        assert_split_invariant(good[i], strlen(good[i]));
}

static void test_strict_target(void)
{
    REFUSED("GET /caf\xc3\xa9 HTTP/1.1\r\nHost: h\r\n\r\n", 400);
    REFUSED("GET /\xc0\xaf HTTP/1.1\r\nHost: h\r\n\r\n", 400);
    REFUSED("GET /a\tb HTTP/1.1\r\nHost: h\r\n\r\n", 400);
    REFUSED("GET /a\x01b HTTP/1.1\r\nHost: h\r\n\r\n", 400);
    REFUSED("GET /a\x7f HTTP/1.1\r\nHost: h\r\n\r\n", 400);
    REFUSED("GET /?q=\xff HTTP/1.1\r\nHost: h\r\n\r\n", 400);
    REFUSED("GET s://]ufd/: HTTP/1.1\r\nHost: h\r\n\r\n", 400);
    REFUSED("GET 1http://h/ HTTP/1.1\r\nHost: h\r\n\r\n", 400);
    REFUSED("GET http://user:pw@h/ HTTP/1.1\r\nHost: h\r\n\r\n", 400);
    REFUSED("GET http:///x HTTP/1.1\r\nHost: h\r\n\r\n", 400);
    REFUSED("GET http://h:x/ HTTP/1.1\r\nHost: h\r\n\r\n", 400);

    gc__http_parser_t p;
    parse_error(&p, LIT("GET /caf\xc3\xa9 HTTP/1.1\r\nHost: h\r\n\r\n"), 0, 400);
    ASSERT_EQ_STR(p.error_msg, "Invalid HTTP request line: byte 0xc3 in the target");
    gc__http_parser_free(&p);

    static const char *const good[] = {
        "GET /caf%C3%A9?x=%2F&y=a+b HTTP/1.1\r\nHost: h\r\n\r\n",
        "GET /a{b}|c^d HTTP/1.1\r\nHost: h\r\n\r\n",
        "GET http://example.com:8080/p?q=1 HTTP/1.1\r\nHost: example.com:8080\r\n\r\n",
        "GET https://[::1]/ HTTP/1.1\r\nHost: [::1]\r\n\r\n",
        "GET http://h HTTP/1.1\r\nHost: h\r\n\r\n",
        "GET ws://u@h.example/x HTTP/1.1\r\nHost: h\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        assert_split_invariant(good[i], strlen(good[i]));
}

static void test_bare_cr_refuses_whole_message(void)
{
    /* llhttp's loose mode would end the head at "S" and answer a prefix. */
    REFUSED("GET / HTTP/1.1\r\nHost: h\r\n\rSome-Header: x\r\n\r\n", 400);
    REFUSED("GET / HTTP/1.1\r\nHost: h\r\n\rGET /x HTTP/1.1\r\nHost: h\r\n\r\n", 400);
    REFUSED("GET / HTTP/1.1\r\nHost: h\r\nX: y\r\rZ: 1\r\n\r\n", 400);
    REFUSED("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\n\rX\r\n\r\nx", 400);
    /* The same after a chunked body's last chunk, and after chunk data. */
    REFUSED("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
            "3\r\nabc\r\n0\r\n\rGET /x HTTP/1.1\r\nHost: h\r\n\r\n",
            400);
    REFUSED("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
            "3\r\nabc\r\r0\r\n\r\n",
            400);
    /* A CR inside a body is data. */
    static const char body_cr[] = "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\na\rb";
    assert_split_invariant(LIT(body_cr));
    static const char chunk_cr[] =
        "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
        "3\r\n\r\rb\r\n0\r\n\r\n";
    assert_split_invariant(LIT(chunk_cr));
}

static void test_transfer_encoding_empty(void)
{
    REFUSED("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding:\r\n\r\n", 400);
    REFUSED("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: \r\nContent-Length: 3\r\n\r\nabc",
            400);
    REFUSED("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: ,chunked\r\n\r\n0\r\n\r\n", 400);
    /* Identity is no coding any more (RFC 9112 section 6.3: chunked must be last), with
     * or without a Content-Length. */
    REFUSED("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: identity\r\n"
            "Content-Length: 3\r\n\r\nabc",
            400);
    REFUSED("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: identity\r\n\r\nabc", 400);
    /* An unknown coding stays 501. */
    REFUSED("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: frob\r\n\r\n", 501);
}

static void test_forbidden_trailers(void)
{
    static const char *const names[] = {
        "Content-Length", "transfer-encoding", "Host",       "Authorization", "TE", "Trailer",
        "Cookie",         "Content-Type",      "Connection", "Expect"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        gc__buf_t in;
        gc__buf_init(&in);
        gc__buf_printf(&in,
                       "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                       "3\r\nabc\r\n0\r\n%s: 1\r\n\r\n",
                       names[i]);
        expect_refused(in.data, in.len, 400);
        gc__buf_free(&in);
    }
    gc__http_parser_t p;
    parse_error(&p,
                LIT("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                    "0\r\ncontent-length: 5\r\n\r\n"),
                0, 400);
    ASSERT_EQ_STR(p.error_msg,
                  "Invalid HTTP header name: 'CONTENT-LENGTH' (not allowed in a trailer)");
    gc__http_parser_free(&p);
    /* Trailers follow the header rules and limits. */
    REFUSED("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
            "0\r\nBad Name: 1\r\n\r\n",
            400);
    REFUSED("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
            "0\r\nX: a\x01b\r\n\r\n",
            400);
    gc__buf_t many;
    gc__buf_init(&many);
    gc__buf_append_str(&many,
                       "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n");
    for (int i = 0; i <= 100; i++)
        gc__buf_printf(&many, "X-T%d: v\r\n", i);
    gc__buf_append_str(&many, "\r\n");
    expect_refused(many.data, many.len, 431);
    gc__buf_free(&many);
    /* A long trailer name that starts like a forbidden one is allowed. */
    static const char ok[] = "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                             "0\r\nContent-Length-Of-Something-Else: 1\r\nX-Sum: 2\r\n\r\n";
    assert_split_invariant(LIT(ok));
}

static void test_connect_not_implemented(void)
{
    REFUSED("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", 501);
    REFUSED("CONNECT example.com:443 HTTP/1.0\r\n\r\n", 501);
}

static void test_unknown_http1_minor_version(void)
{
    REFUSED("GET / HTTP/1.2\r\nHost: h\r\n\r\n", 505);
    REFUSED("GET / HTTP/1.9\r\nHost: h\r\n\r\n", 505);
    /* Other majors are not HTTP/1 at all: 400, as in Gunicorn. */
    REFUSED("GET / HTTP/2.0\r\nHost: h\r\n\r\n", 400);
    REFUSED("GET / HTTP/3.1\r\nHost: h\r\n\r\n", 400);
    gc__http_parser_t p;
    parse_error(&p, LIT("GET / HTTP/1.2\r\nHost: h\r\n\r\n"), 0, 505);
    ASSERT_EQ_STR(p.error_msg, "HTTP Version Not Supported: HTTP/1.2");
    gc__http_parser_free(&p);
    /* --permit-unconventional-http-version serves it with HTTP/1.1 rules. */
    limits.permit_unconventional_version = 1;
    gc__buf_t out;
    gc__buf_init(&out);
    parse_one(LIT("GET / HTTP/1.2\r\nHost: h\r\n\r\n"), 1, &out);
    ASSERT_MEM_STR(out.data, out.len,
                   "GET / HTTP/1.1 ka=1 chunked=0 cl=-1 expect=0\n[Host]=[h]\nbody(0)=");
    gc__buf_free(&out);
    limits.permit_unconventional_version = 0;
}

static void test_chunk_extensions(void)
{
    static const char *const good[] = {
        "5; some; parameters=stuff\r\nhello\r\n0\r\n\r\n",
        "5 ; a = b\r\nhello\r\n0 ;last\r\n\r\n",
        "5\t;\ta\t=\t\"x y\\\"z\"\r\nhello\r\n0\r\n\r\n",
        "5;a;b=c;d=\"\"\r\nhello\r\n0\r\n\r\n",
        "00000000000000000005\r\nhello\r\n0\r\n\r\n",
        /* Later chunks: lines of digits alone (read by llhttp when they are in the
         * buffer) and lines with extensions or many digits (read by us). */
        "2\r\nhe\r\n3\r\nllo\r\n0\r\n\r\n",
        "2\r\nhe\r\n3 ; a = b\r\nllo\r\n0\r\n\r\n",
        "2\r\nhe\r\n00000000000000000003\r\nllo\r\n0 ;z\r\nX-T: 1\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        gc__buf_t in, out;
        gc__buf_init(&in);
        gc__buf_init(&out);
        gc__buf_printf(&in, "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n%s",
                       good[i]);
        parse_one(in.data, in.len, 0, &out);
        ASSERT(strstr(out.data, "body(5)=hello") != NULL);
        assert_split_invariant(in.data, in.len);
        gc__buf_free(&in);
        gc__buf_free(&out);
    }
    static const char *const bad[] = {
        "5;a\nhello\r\n0\r\n\r\n",            /* bare LF */
        "5;a\rb\r\nhello\r\n0\r\n\r\n",       /* bare CR */
        "5\r\r\nhello\r\n0\r\n\r\n",          /* CR CR LF */
        " 5\r\nhello\r\n0\r\n\r\n",           /* whitespace before the size */
        "5 \r\nhello\r\n0\r\n\r\n",           /* ... after it, without ";" */
        "5;\r\nhello\r\n0\r\n\r\n",           /* no name */
        "5;a=\r\nhello\r\n0\r\n\r\n",         /* no value */
        "5;a=\"x\r\nhello\r\n0\r\n\r\n",      /* unterminated quoted-string */
        "5;a b\r\nhello\r\n0\r\n\r\n",        /* two names */
        "5;a=b c\r\nhello\r\n0\r\n\r\n",      /* two values */
        "5;a=\"\x01\"\r\nhello\r\n0\r\n\r\n", /* control byte in a quoted value */
        "0x5\r\nhello\r\n0\r\n\r\n",
        "-5\r\nhello\r\n0\r\n\r\n",
        "fffffffffffffffff\r\nhello\r\n0\r\n\r\n", /* past 64 bits */
        "5\r\nhelloXX0\r\n\r\n",                   /* data not followed by CRLF */
        /* The same shapes in a later chunk, whose line llhttp may read itself. */
        "3\r\nabc\r\n 5\r\nhello\r\n0\r\n\r\n",
        "3\r\nabc\r\n5\r\r\nhello\r\n0\r\n\r\n",
        "3\r\nabcXX5\r\nhello\r\n0\r\n\r\n",
        "3\r\nabc\r\nfffffffffffffffff\r\nhello\r\n0\r\n\r\n",
        "3\r\nabc\r\n5;a\nhello\r\n0\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        gc__buf_t in;
        gc__buf_init(&in);
        gc__buf_printf(&in, "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n%s",
                       bad[i]);
        expect_refused(in.data, in.len, 400);
        gc__buf_free(&in);
    }
    /* A size line is bounded. */
    gc__buf_t in;
    gc__buf_init(&in);
    gc__buf_append_str(&in, "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5");
    for (int i = 0; i < 1100; i++)
        gc__buf_append_str(&in, ";a=b");
    gc__buf_append_str(&in, "\r\nhello\r\n0\r\n\r\n");
    expect_refused(in.data, in.len, 400);
    gc__buf_free(&in);
}

static void test_eof(void)
{
    gc__http_parser_t p;

    /* Nothing received: a client closing an idle connection is not an error. */
    gc__http_parser_init(&p, &limits);
    gc__http_parser_eof(&p);
    ASSERT_EQ_INT(p.state, GC_HTTP_NEED_MORE);
    ASSERT_EQ_INT(p.error_status, 0);
    gc__http_parser_free(&p);

    /* Half a head. */
    gc__http_parser_init(&p, &limits);
    ASSERT_EQ_INT(gc__http_parser_feed(&p, LIT("GET / HTTP/1.1\r\nHost: ex")), 24);
    ASSERT_EQ_INT(p.state, GC_HTTP_NEED_MORE);
    gc__http_parser_eof(&p);
    ASSERT_EQ_INT(p.state, GC_HTTP_ERROR);
    ASSERT_EQ_INT(p.error_status, 400);
    gc__http_parser_free(&p);

    /* A body shorter than its Content-Length. */
    gc__http_parser_init(&p, &limits);
    gc__http_parser_feed(&p, LIT("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\nabc"));
    ASSERT_EQ_INT(p.state, GC_HTTP_NEED_MORE);
    gc__http_parser_eof(&p);
    ASSERT_EQ_INT(p.state, GC_HTTP_ERROR);
    gc__http_parser_free(&p);

    /* A ready request is not undone by the client closing after it. */
    gc__http_parser_init(&p, &limits);
    gc__http_parser_feed(&p, LIT("GET / HTTP/1.1\r\nHost: h\r\n\r\n"));
    gc__http_parser_eof(&p);
    ASSERT_EQ_INT(p.state, GC_HTTP_READY);
    ASSERT_EQ_INT(p.error_status, 0);
    gc__http_parser_free(&p);
}

static int fd_is_open(int fd)
{
    return fcntl(fd, F_GETFD) != -1 || errno != EBADF;
}

/* A 100 KB body, fed in uneven pieces, with `chunked` framing or a Content-Length. */
static void spool_case(int chunked, size_t step)
{
    enum { BODY = 100 * 1024 };
    gc__http_limits_t small = limits;
    small.spool_threshold = 16;

    char *body = malloc(BODY);
    ASSERT(body != NULL);
    for (size_t i = 0; i < BODY; i++)
        body[i] = (char)('A' + (i * 7 + i / 251) % 26);

    gc__buf_t req;
    gc__buf_init(&req);
    if (chunked) {
        gc__buf_append_str(&req,
                           "POST /up HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n");
        for (size_t off = 0; off < BODY; off += 3000) {
            size_t n = BODY - off < 3000 ? BODY - off : 3000;
            gc__buf_printf(&req, "%zx\r\n", n);
            gc__buf_append(&req, body + off, n);
            gc__buf_append_str(&req, "\r\n");
        }
        gc__buf_append_str(&req, "0\r\n\r\n");
    } else {
        gc__buf_printf(&req, "POST /up HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n\r\n", BODY);
        gc__buf_append(&req, body, BODY);
    }

    gc__http_parser_t p;
    gc__http_parser_init(&p, &small);
    ASSERT_EQ_INT(feed_steps(&p, req.data, req.len, step), req.len);
    ASSERT_EQ_INT(p.state, GC_HTTP_READY);
    ASSERT(p.req.body.fd >= 0);
    ASSERT_EQ_INT(p.req.body.len, BODY);
    ASSERT_EQ_INT(p.req.body.mem.len, 0);

    char *got = read_body(&p.req.body);
    ASSERT_EQ_MEM(got, BODY, body, BODY);
    free(got);

    char piece[10];
    ASSERT_EQ_INT(gc__http_body_read(&p.req.body, 12345, piece, sizeof(piece)), 10);
    ASSERT_EQ_MEM(piece, 10, body + 12345, 10);
    ASSERT_EQ_INT(gc__http_body_read(&p.req.body, BODY - 4, piece, sizeof(piece)), 4);
    ASSERT_EQ_MEM(piece, 4, body + BODY - 4, 4);
    ASSERT_EQ_INT(gc__http_body_read(&p.req.body, BODY, piece, sizeof(piece)), 0);

    /* The next request starts in memory again; the file is closed. */
    int fd = p.req.body.fd;
    gc__http_parser_next(&p);
    ASSERT(!fd_is_open(fd));
    ASSERT_EQ_INT(p.req.body.fd, -1);
    ASSERT_EQ_INT(p.req.body.len, 0);
    gc__http_parser_feed(&p, LIT("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc"));
    ASSERT_EQ_INT(p.state, GC_HTTP_READY);
    ASSERT_EQ_INT(p.req.body.fd, -1);
    got = read_body(&p.req.body);
    ASSERT_EQ_STR(got, "abc");
    free(got);

    gc__http_parser_free(&p);
    gc__buf_free(&req);
    free(body);
}

static void test_body_spooling(void)
{
    spool_case(0, 0);
    spool_case(0, 4093);
    spool_case(1, 0);
    spool_case(1, 1);

    /* A body at the threshold stays in memory. */
    gc__http_limits_t small = limits;
    small.spool_threshold = 16;
    gc__http_parser_t p;
    gc__http_parser_init(&p, &small);
    gc__http_parser_feed(
        &p, LIT("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 16\r\n\r\n0123456789abcdef"));
    ASSERT_EQ_INT(p.state, GC_HTTP_READY);
    ASSERT_EQ_INT(p.req.body.fd, -1);
    ASSERT_EQ_INT(p.req.body.len, 16);
    gc__http_parser_free(&p);

    /* A spooled body's file is closed by gc__http_parser_free. */
    gc__http_parser_init(&p, &small);
    gc__http_parser_feed(
        &p, LIT("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 17\r\n\r\n0123456789abcdefg"));
    ASSERT_EQ_INT(p.state, GC_HTTP_READY);
    int fd = p.req.body.fd;
    ASSERT(fd >= 0);
    gc__http_parser_free(&p);
    ASSERT(!fd_is_open(fd));
}

static void test_find_field(void)
{
    gc__http_parser_t p;
    gc__http_parser_init(&p, &limits);
    gc__http_parser_feed(&p, LIT("GET / HTTP/1.1\r\nHost: h\r\nCONTENT-type: text/x\r\n"
                                 "X-Dup: 1\r\nx-dup: 2\r\n\r\n"));
    ASSERT_EQ_INT(p.state, GC_HTTP_READY);
    ASSERT_EQ_INT(gc__http_find_field(&p.req, "host"), 0);
    ASSERT_EQ_INT(gc__http_find_field(&p.req, "content-type"), 1);
    ASSERT_EQ_INT(gc__http_find_field(&p.req, "x-dup"), 2);
    ASSERT_EQ_INT(gc__http_find_field(&p.req, "content"), -1);
    ASSERT_EQ_INT(gc__http_find_field(&p.req, "content-type-x"), -1);
    ASSERT_EQ_INT(gc__http_find_field(&p.req, "x-missing"), -1);
    gc__http_parser_free(&p);
}

int main(int argc, char **argv)
{
    unit_init(argc, argv);
    gc__http_limits_default(&limits);
    ASSERT_EQ_INT(limits.max_line, 4094);
    ASSERT_EQ_INT(limits.max_fields, 100);
    ASSERT_EQ_INT(limits.max_field_size, 8190);

    RUN(test_simple_get);
    RUN(test_byte_by_byte);
    RUN(test_value_whitespace_stripped);
    RUN(test_post_content_length);
    RUN(test_chunked_body);
    RUN(test_chunked_trailers_not_headers);
    RUN(test_pipelined);
    RUN(test_upgrade_reads_on);
    RUN(test_keep_alive);
    RUN(test_limit_request_line);
    RUN(test_limit_request_fields);
    RUN(test_limit_field_size);
    RUN(test_expect);
    RUN(test_content_length_with_chunked);
    RUN(test_invalid_requests);
    RUN(test_strict_host);
    RUN(test_strict_target);
    RUN(test_bare_cr_refuses_whole_message);
    RUN(test_transfer_encoding_empty);
    RUN(test_forbidden_trailers);
    RUN(test_connect_not_implemented);
    RUN(test_unknown_http1_minor_version);
    RUN(test_chunk_extensions);
    RUN(test_eof);
    RUN(test_body_spooling);
    RUN(test_find_field);
    return unit_done();
}
