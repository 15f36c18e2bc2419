/* test_forward.c: header_map, forwarder_headers, secure_scheme_headers and SCRIPT_NAME
 * (src/http/forward.c), through the parser that applies them.
 *
 * Each request is parsed with a policy and a trusted or untrusted peer, whole and one
 * byte at a time (a header name can be split across reads), and the kept fields, the
 * scheme and the SCRIPT_NAME field are compared with what Gunicorn decides. */
#include <string.h>

#include "http/forward.h"
#include "http/parser.h"
#include "unit.h"

static gc__http_limits_t limits;

/* Parses `req` (fed `step` bytes at a time, 0: whole) from a peer `trusted` or not. */
static void parse(gc__http_parser_t *p, const gc__forward_policy_t *fp, int trusted,
                  const char *req, size_t step)
{
    limits.forward = fp;
    gc__http_parser_init(p, &limits);
    p->trusted = trusted;
    size_t len = strlen(req), off = 0;
    while (off < len && p->state == GC_HTTP_NEED_MORE) {
        size_t n = step == 0 || step > len - off ? len - off : step;
        size_t used = gc__http_parser_feed(p, req + off, n);
        off += used;
        if (used < n)
            break;
    }
}

/* The kept field names, joined with ",". */
static const char *names(const gc__http_request_t *r)
{
    static char out[512];
    size_t o = 0;
    out[0] = '\0';
    for (size_t i = 0; i < r->nfields; i++) {
        gc__view_t n = gc__http_field_name(r, i);
        o += (size_t)snprintf(out + o, sizeof(out) - o, "%s%.*s", i ? "," : "", (int)n.len, n.base);
    }
    return out;
}

/* Runs `req` whole and byte by byte; both must agree with the expected outcome. */
static void expect(const gc__forward_policy_t *fp, int trusted, const char *req, int status,
                   const char *kept, int scheme, const char *script_name)
{
    for (size_t step = 0; step <= 1; step++) {
        gc__http_parser_t p;
        parse(&p, fp, trusted, req, step);
        if (status) {
            ASSERT_EQ_INT(p.state, GC_HTTP_ERROR);
            ASSERT_EQ_INT(p.error_status, status);
        } else {
            ASSERT_EQ_INT(p.state, GC_HTTP_READY);
            ASSERT_EQ_STR(names(&p.req), kept);
            ASSERT_EQ_INT(p.req.url_scheme, scheme);
            if (script_name == NULL) {
                ASSERT_EQ_INT(p.req.script_name, -1);
            } else {
                ASSERT(p.req.script_name >= 0);
                gc__view_t v = gc__http_field_value(&p.req, (size_t)p.req.script_name);
                ASSERT_MEM_STR(v.base, v.len, script_name);
            }
        }
        gc__http_parser_free(&p);
    }
}

static void test_field_actions(void)
{
    const gc__forward_policy_t *d = gc__forward_policy_default();
    ASSERT_EQ_INT(gc__forward_field(d, 0, GC_VIEW_LIT("X-Foo")), GC_FORWARD_KEEP);
    ASSERT_EQ_INT(gc__forward_field(d, 1, GC_VIEW_LIT("X_Foo")), GC_FORWARD_DROP);
    ASSERT_EQ_INT(gc__forward_field(d, 0, GC_VIEW_LIT("SCRIPT_NAME")), GC_FORWARD_DROP);
    ASSERT_EQ_INT(gc__forward_field(d, 1, GC_VIEW_LIT("SCRIPT_NAME")), GC_FORWARD_KEEP);
    ASSERT_EQ_INT(gc__forward_field(d, 1, GC_VIEW_LIT("script_name")), GC_FORWARD_KEEP);
    ASSERT_EQ_INT(gc__forward_field(d, 1, GC_VIEW_LIT("Path_Info ")), GC_FORWARD_KEEP);
    ASSERT_EQ_INT(gc__forward_field(d, 1, GC_VIEW_LIT("REMOTE_USER")), GC_FORWARD_DROP);

    gc__forward_policy_t fp;
    ASSERT_OK(gc__forward_policy_init(&fp));
    fp.header_map = GC_HEADER_MAP_REFUSE;
    ASSERT_EQ_INT(gc__forward_field(&fp, 1, GC_VIEW_LIT("SCRIPT_NAME")), GC_FORWARD_REFUSE);
    ASSERT_OK(gc__forward_policy_add_forwarder(&fp, "*"));
    ASSERT_EQ_INT(gc__forward_field(&fp, 1, GC_VIEW_LIT("ANY_THING")), GC_FORWARD_KEEP);
    ASSERT_EQ_INT(gc__forward_field(&fp, 0, GC_VIEW_LIT("ANY_THING")), GC_FORWARD_REFUSE);
    fp.header_map = GC_HEADER_MAP_DANGEROUS;
    ASSERT_EQ_INT(gc__forward_field(&fp, 0, GC_VIEW_LIT("ANY_THING")), GC_FORWARD_KEEP);
    gc__forward_policy_free(&fp);
}

static void test_header_map_drop(void)
{
    const gc__forward_policy_t *d = gc__forward_policy_default();
    const char *req = "GET / HTTP/1.1\r\nHost: a\r\nX_Forwarded_For: 1.2.3.4\r\n"
                      "X-Forwarded-For: 5.6.7.8\r\nSCRIPT_NAME: /app\r\n\r\n";
    expect(d, 0, req, 0, "Host,X-Forwarded-For", GC_SCHEME_UNSET, NULL);
    /* A trusted front end may set the names in forwarder_headers, and only those. */
    req = "GET /app/x HTTP/1.1\r\nHost: a\r\nX_Forwarded_For: 1.2.3.4\r\n"
          "SCRIPT_NAME: /app\r\n\r\n";
    expect(d, 1, req, 0, "Host,SCRIPT_NAME", GC_SCHEME_UNSET, "/app");
}

static void test_header_map_refuse_and_dangerous(void)
{
    gc__forward_policy_t fp;
    ASSERT_OK(gc__forward_policy_init(&fp));
    ASSERT_OK(gc__forward_policy_add_forwarder(&fp, "SCRIPT_NAME"));
    fp.header_map = GC_HEADER_MAP_REFUSE;
    const char *req = "POST / HTTP/1.1\r\nHost: a\r\nTransfer_Encoding: chunked\r\n"
                      "Content-Length: 2\r\n\r\nok";
    expect(&fp, 0, req, 400, NULL, 0, NULL);
    gc__http_parser_t p;
    parse(&p, &fp, 0, req, 0);
    ASSERT_EQ_STR(p.error_msg, "Invalid HTTP header name: 'TRANSFER_ENCODING'");
    gc__http_parser_free(&p);
    /* Exempt from refuse when trusted and listed. */
    expect(&fp, 1, "GET /x HTTP/1.1\r\nHost: a\r\nSCRIPT_NAME: /x\r\n\r\n", 0, "Host,SCRIPT_NAME",
           GC_SCHEME_UNSET, "/x");

    /* dangerous keeps them; they do not frame the body (Gunicorn's valid/040_compat). */
    fp.header_map = GC_HEADER_MAP_DANGEROUS;
    expect(&fp, 0, req, 0, "Host,Transfer_Encoding,Content-Length", GC_SCHEME_UNSET, NULL);
    parse(&p, &fp, 0, req, 0);
    ASSERT(!p.req.chunked);
    ASSERT_EQ_INT(p.req.content_length, 2);
    gc__http_parser_free(&p);
    gc__forward_policy_free(&fp);
}

static void test_dropped_fields_do_not_count(void)
{
    gc__http_limits_t saved = limits;
    limits.max_fields = 2;
    const char *req = "GET / HTTP/1.1\r\nHost: a\r\nA_1: x\r\nA_2: x\r\nA_3: x\r\nB: y\r\n\r\n";
    expect(gc__forward_policy_default(), 0, req, 0, "Host,B", GC_SCHEME_UNSET, NULL);
    req = "GET / HTTP/1.1\r\nHost: a\r\nA_1: x\r\nB: y\r\nC: z\r\n\r\n";
    expect(gc__forward_policy_default(), 0, req, 431, NULL, 0, NULL);
    limits = saved;
}

static void test_dropped_fields_are_still_checked(void)
{
    /* As in Gunicorn, a field is validated before header_map drops it. */
    const char *req = "GET / HTTP/1.1\r\nHost: a\r\nX_Foo: a\x01"
                      "b\r\n\r\n";
    expect(gc__forward_policy_default(), 0, req, 400, NULL, 0, NULL);
}

static void test_scheme_headers(void)
{
    const gc__forward_policy_t *d = gc__forward_policy_default();
    const char *https = "GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-Proto: https\r\n\r\n";
    expect(d, 1, https, 0, "Host,X-Forwarded-Proto", GC_SCHEME_HTTPS, NULL);
    /* From an untrusted peer the header is only a header. */
    expect(d, 0, https, 0, "Host,X-Forwarded-Proto", GC_SCHEME_UNSET, NULL);
    /* The value must match exactly, case included. */
    expect(d, 1, "GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-Proto: HTTPS\r\n\r\n", 0,
           "Host,X-Forwarded-Proto", GC_SCHEME_HTTP, NULL);
    expect(d, 1, "GET / HTTP/1.1\r\nHost: a\r\nx-forwarded-ssl: on\r\n\r\n", 0,
           "Host,x-forwarded-ssl", GC_SCHEME_HTTPS, NULL);
    expect(d, 1,
           "GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-Protocol: ssl\r\n"
           "X-Forwarded-Proto: https\r\nX-Forwarded-Ssl: on\r\n\r\n",
           0, "Host,X-Forwarded-Protocol,X-Forwarded-Proto,X-Forwarded-Ssl", GC_SCHEME_HTTPS, NULL);
    /* Agreeing on http is fine; disagreeing is a 400 (Gunicorn's requests/invalid/019). */
    expect(d, 1,
           "GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-Proto: http\r\n"
           "X-Forwarded-Ssl: off\r\n\r\n",
           0, "Host,X-Forwarded-Proto,X-Forwarded-Ssl", GC_SCHEME_HTTP, NULL);
    const char *bad = "GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-Proto: https\r\n"
                      "X-Forwarded-Ssl: off\r\n\r\n";
    expect(d, 1, bad, 400, NULL, 0, NULL);
    gc__http_parser_t p;
    parse(&p, d, 1, bad, 0);
    ASSERT_EQ_STR(p.error_msg, "Contradictory scheme headers");
    gc__http_parser_free(&p);
    expect(d, 0, bad, 0, "Host,X-Forwarded-Proto,X-Forwarded-Ssl", GC_SCHEME_UNSET, NULL);
    /* Repeated, the same header is judged line by line. */
    expect(d, 1,
           "GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-Proto: https\r\n"
           "X-Forwarded-Proto: http\r\n\r\n",
           400, NULL, 0, NULL);

    /* A config-file dict; a NULL value (not a str) never matches. */
    gc__forward_policy_t fp;
    ASSERT_OK(gc__forward_policy_init(&fp));
    ASSERT_OK(gc__forward_policy_add_scheme(&fp, "X-Scheme", "secure"));
    ASSERT_OK(gc__forward_policy_add_scheme(&fp, "X-Odd", NULL));
    expect(&fp, 1, "GET / HTTP/1.1\r\nHost: a\r\nX-Scheme: secure\r\n\r\n", 0, "Host,X-Scheme",
           GC_SCHEME_HTTPS, NULL);
    expect(&fp, 1, "GET / HTTP/1.1\r\nHost: a\r\nX-Odd: 1\r\n\r\n", 0, "Host,X-Odd", GC_SCHEME_HTTP,
           NULL);
    expect(&fp, 1, "GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-Proto: https\r\n\r\n", 0,
           "Host,X-Forwarded-Proto", GC_SCHEME_UNSET, NULL);
    gc__forward_policy_free(&fp);
}

static void test_script_name(void)
{
    gc__forward_policy_t fp;
    ASSERT_OK(gc__forward_policy_init(&fp));
    ASSERT_OK(gc__forward_policy_add_forwarder(&fp, "SCRIPT_NAME"));
    ASSERT_OK(gc__forward_policy_set_script_name(&fp, "/env"));
    /* $SCRIPT_NAME: a plain prefix test on the raw path. */
    expect(&fp, 0, "GET /env/x HTTP/1.1\r\nHost: a\r\n\r\n", 0, "Host", 0, NULL);
    expect(&fp, 0, "GET /environment HTTP/1.1\r\nHost: a\r\n\r\n", 0, "Host", 0, NULL);
    expect(&fp, 0, "GET http://h/env?q HTTP/1.1\r\nHost: a\r\n\r\n", 0, "Host", 0, NULL);
    expect(&fp, 0, "GET /other HTTP/1.1\r\nHost: a\r\n\r\n", 500, NULL, 0, NULL);
    expect(&fp, 0, "GET /%65nv HTTP/1.1\r\nHost: a\r\n\r\n", 500, NULL, 0, NULL);
    gc__http_parser_t p;
    parse(&p, &fp, 0, "GET /other?x HTTP/1.1\r\nHost: a\r\n\r\n", 0);
    ASSERT_EQ_STR(p.error_msg, "Configuration problem: Request path '/other' does not start "
                               "with SCRIPT_NAME '/env'");
    gc__http_parser_free(&p);
    /* A trusted front end's header replaces it; the last one wins; "" turns it off. */
    expect(&fp, 1, "GET /hdr/x HTTP/1.1\r\nHost: a\r\nSCRIPT_NAME: /hdr\r\n\r\n", 0,
           "Host,SCRIPT_NAME", 0, "/hdr");
    expect(&fp, 1, "GET /two HTTP/1.1\r\nHost: a\r\nscript_name: /one\r\nSCRIPT_NAME: /two\r\n\r\n",
           0, "Host,script_name,SCRIPT_NAME", 0, "/two");
    expect(&fp, 1, "GET /x HTTP/1.1\r\nHost: a\r\nSCRIPT_NAME:\r\n\r\n", 0, "Host,SCRIPT_NAME", 0,
           "");
    expect(&fp, 1, "GET /env/x HTTP/1.1\r\nHost: a\r\nSCRIPT_NAME: /hdr\r\n\r\n", 500, NULL, 0,
           NULL);
    /* An untrusted peer's header is dropped: $SCRIPT_NAME stands. */
    expect(&fp, 0, "GET /env/x HTTP/1.1\r\nHost: a\r\nSCRIPT_NAME: /hdr\r\n\r\n", 0, "Host", 0,
           NULL);
    /* "Script-Name" is another header altogether. */
    expect(&fp, 1, "GET /env HTTP/1.1\r\nHost: a\r\nScript-Name: /hdr\r\n\r\n", 0,
           "Host,Script-Name", 0, NULL);
    gc__forward_policy_free(&fp);
}

static void test_split_target(void)
{
    gc__view_t path, query;
    gc__http_split_target(GC_VIEW_LIT("/a/b?x=1#frag"), &path, &query);
    ASSERT_MEM_STR(path.base, path.len, "/a/b");
    ASSERT_MEM_STR(query.base, query.len, "x=1");
    gc__http_split_target(GC_VIEW_LIT("http://u:p@h:8/p/q?z"), &path, &query);
    ASSERT_MEM_STR(path.base, path.len, "/p/q");
    ASSERT_MEM_STR(query.base, query.len, "z");
    gc__http_split_target(GC_VIEW_LIT("//a/b"), &path, &query);
    ASSERT_MEM_STR(path.base, path.len, "//a/b");
    ASSERT_EQ_INT(query.len, 0);
}

int main(int argc, char **argv)
{
    unit_init(argc, argv);
    gc__http_limits_default(&limits);
    RUN(test_field_actions);
    RUN(test_header_map_drop);
    RUN(test_header_map_refuse_and_dangerous);
    RUN(test_dropped_fields_do_not_count);
    RUN(test_dropped_fields_are_still_checked);
    RUN(test_scheme_headers);
    RUN(test_script_name);
    RUN(test_split_target);
    return unit_done();
}
