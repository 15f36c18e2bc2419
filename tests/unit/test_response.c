/* test_response.c: response heads, chunk framing, validation and error pages
 * (src/http/response.c). The socket sink has its own tests (test_sink.c).
 *
 * Response bytes are compared byte for byte with what Gunicorn sends; only the Date
 * value changes from run to run, so it is checked for its IMF-fixdate shape and cut
 * out before the comparison. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "http/response.h"
#include "unit.h"

#define V(s) GC_VIEW_LIT(s)

/* Asserts that d holds an IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT". */
static void assert_imf_fixdate(const char *d)
{
    static const char *const days[] = {"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"};
    static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                         "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    /* D = digit; every other character must match the template exactly. */
    static const char shape[] = "___, DD ___ DDDD DD:DD:DD GMT";
    for (size_t i = 0; i < 29; i++) {
        if (shape[i] == 'D')
            ASSERT(d[i] >= '0' && d[i] <= '9');
        else if (shape[i] != '_')
            ASSERT_EQ_INT(d[i], shape[i]);
    }
    int day_ok = 0, month_ok = 0;
    for (size_t i = 0; i < 7; i++)
        day_ok |= memcmp(d, days[i], 3) == 0;
    for (size_t i = 0; i < 12; i++)
        month_ok |= memcmp(d + 8, months[i], 3) == 0;
    ASSERT(day_ok);
    ASSERT(month_ok);
    int hour = (d[17] - '0') * 10 + (d[18] - '0');
    int minute = (d[20] - '0') * 10 + (d[21] - '0');
    ASSERT(hour < 24);
    ASSERT(minute < 60);
}

/* Checks the Date line in a head, then replaces its value by "<date>" so the rest can be
 * compared exactly. */
static void mask_date(gc__buf_t *out)
{
    static const char prefix[] = "\r\nDate: ";
    char *p = memmem(out->data, out->len, prefix, sizeof(prefix) - 1);
    ASSERT(p != NULL);
    p += sizeof(prefix) - 1;
    ASSERT((size_t)(p - out->data) + 31 <= out->len);
    assert_imf_fixdate(p);
    ASSERT_EQ_MEM(p + 29, 2, "\r\n", 2);
    memcpy(p, "<date>", 6);
    memmove(p + 6, p + 29, out->len - (size_t)(p + 29 - out->data));
    out->len -= 23;
}

#define ASSERT_BUF(b, s) ASSERT_MEM_STR((b).data, (b).len, (s))

static void test_date(void)
{
    const char *d = gc__http_date();
    ASSERT_EQ_INT(strlen(d), 29);
    assert_imf_fixdate(d);
    /* The year is this year's (the cache is filled from the clock, not left empty). */
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    int year = atoi(d + 12);
    ASSERT(year == tm.tm_year + 1900 || year == tm.tm_year + 1900 - 1);
}

static void test_write_head_basic(void)
{
    const gc__http_header_t hs[] = {
        {V("Content-Type"), V("text/plain")}, {V("X-Zeta"), V("1")},       {V("X-Alpha"), V("")},
        {V("Set-Cookie"), V("a=1")},          {V("Set-Cookie"), V("b=2")},
    };
    gc__http_head_t h = {
        .minor = 1,
        .status = V("200 OK"),
        .headers = hs,
        .nheaders = 5,
        .connection = GC_CONN_KEEP_ALIVE,
        .chunked = 0,
        .add_length = -1,
    };
    gc__buf_t out;
    gc__buf_init(&out);
    ASSERT_OK(gc__http_write_head(&out, &h));
    mask_date(&out);
    ASSERT_BUF(out, "HTTP/1.1 200 OK\r\n"
                    "Server: gunicorn-c\r\n"
                    "Date: <date>\r\n"
                    "Connection: keep-alive\r\n"
                    "Content-Type: text/plain\r\n"
                    "X-Zeta: 1\r\n"
                    "X-Alpha: \r\n"
                    "Set-Cookie: a=1\r\n"
                    "Set-Cookie: b=2\r\n"
                    "\r\n");
    gc__buf_free(&out);
}

static void test_write_head_variants(void)
{
    const gc__http_header_t hs[] = {{V("Content-Type"), V("text/html")}};
    gc__http_head_t h = {
        .minor = 0,
        .status = V("404 Not Found"),
        .headers = hs,
        .nheaders = 1,
        .connection = GC_CONN_CLOSE,
        .chunked = 0,
        .add_length = 1234567890123LL,
    };
    gc__buf_t out;

    /* HTTP/1.0, close, and the server's own Content-Length before the app's headers. */
    gc__buf_init(&out);
    ASSERT_OK(gc__http_write_head(&out, &h));
    mask_date(&out);
    ASSERT_BUF(out, "HTTP/1.0 404 Not Found\r\n"
                    "Server: gunicorn-c\r\n"
                    "Date: <date>\r\n"
                    "Connection: close\r\n"
                    "Content-Length: 1234567890123\r\n"
                    "Content-Type: text/html\r\n"
                    "\r\n");
    gc__buf_free(&out);

    /* Chunked, no headers at all, Content-Length 0 is still written. */
    h.minor = 1;
    h.status = V("201 Created");
    h.nheaders = 0;
    h.headers = NULL;
    h.connection = GC_CONN_KEEP_ALIVE;
    h.chunked = 1;
    h.add_length = -1;
    gc__buf_init(&out);
    ASSERT_OK(gc__http_write_head(&out, &h));
    mask_date(&out);
    ASSERT_BUF(out, "HTTP/1.1 201 Created\r\n"
                    "Server: gunicorn-c\r\n"
                    "Date: <date>\r\n"
                    "Connection: keep-alive\r\n"
                    "Transfer-Encoding: chunked\r\n"
                    "\r\n");
    gc__buf_free(&out);

    h.chunked = 0;
    h.add_length = 0;
    h.status = V("204");
    gc__buf_init(&out);
    ASSERT_OK(gc__http_write_head(&out, &h));
    mask_date(&out);
    ASSERT_BUF(out, "HTTP/1.1 204\r\n"
                    "Server: gunicorn-c\r\n"
                    "Date: <date>\r\n"
                    "Connection: keep-alive\r\n"
                    "Content-Length: 0\r\n"
                    "\r\n");

    /* The head is appended: what the buffer held before stays in front. */
    size_t first = out.len;
    ASSERT_OK(gc__http_write_head(&out, &h));
    ASSERT_EQ_INT(out.len, first + first + 23);
    ASSERT_EQ_MEM(out.data + first, 9, "HTTP/1.1 ", 9);
    gc__buf_free(&out);

    /* Many big headers grow the buffer as needed. */
    enum { N = 200 };
    gc__http_header_t many[N];
    char value[1000];
    memset(value, 'x', sizeof(value));
    for (size_t i = 0; i < N; i++)
        many[i] = (gc__http_header_t){V("X-Big"), gc__view(value, sizeof(value))};
    h.headers = many;
    h.nheaders = N;
    gc__buf_init(&out);
    ASSERT_OK(gc__http_write_head(&out, &h));
    ASSERT(out.len > N * (sizeof(value) + 9));
    ASSERT_EQ_MEM(out.data + out.len - 4, 4, "\r\n\r\n", 4);
    gc__buf_free(&out);
}

static void test_chunk_prefix(void)
{
    char out[20];
    ASSERT_EQ_INT(gc__http_chunk_prefix(out, 0), 3);
    ASSERT_EQ_MEM(out, 3, "0\r\n", 3);
    ASSERT_EQ_INT(gc__http_chunk_prefix(out, 255), 4);
    ASSERT_EQ_MEM(out, 4, "FF\r\n", 4);
    ASSERT_EQ_INT(gc__http_chunk_prefix(out, 1), 3);
    ASSERT_EQ_MEM(out, 3, "1\r\n", 3);
    ASSERT_EQ_INT(gc__http_chunk_prefix(out, 4096), 6);
    ASSERT_EQ_MEM(out, 6, "1000\r\n", 6);
    ASSERT_EQ_INT(gc__http_chunk_prefix(out, 0xDEADBEEFULL), 10);
    ASSERT_EQ_MEM(out, 10, "DEADBEEF\r\n", 10);
    ASSERT_EQ_INT(gc__http_chunk_prefix(out, UINT64_MAX), 18);
    ASSERT_EQ_MEM(out, 18, "FFFFFFFFFFFFFFFF\r\n", 18);
}

static void test_is_token(void)
{
    ASSERT(gc__http_is_token(V("Content-Type")));
    ASSERT(gc__http_is_token(V("x")));
    ASSERT(gc__http_is_token(V("!#$%&'*+-.^_`|~09azAZ")));
    ASSERT(!gc__http_is_token(V("")));
    ASSERT(!gc__http_is_token(V("Bad Name")));
    ASSERT(!gc__http_is_token(V("Name:")));
    ASSERT(!gc__http_is_token(V("a\tb")));
    ASSERT(!gc__http_is_token(V("a\r\nb")));
    ASSERT(!gc__http_is_token(V("(x)")));
    ASSERT(!gc__http_is_token(V("a\"b")));
    ASSERT(!gc__http_is_token(V("a/b")));
    ASSERT(!gc__http_is_token(V("a@b")));
    ASSERT(!gc__http_is_token(V("caf\xc3\xa9")));
    /* A NUL inside the view is not a token character. */
    ASSERT(!gc__http_is_token(gc__view("a\0b", 3)));
    ASSERT(!gc__http_is_token(V("\x7f")));
}

static void test_is_field_value(void)
{
    ASSERT(gc__http_is_field_value(V("")));
    ASSERT(gc__http_is_field_value(V("text/html; charset=utf-8")));
    ASSERT(gc__http_is_field_value(V("a\tb")));
    ASSERT(gc__http_is_field_value(V(" leading and trailing ")));
    ASSERT(gc__http_is_field_value(V("obs-text \x80\xa9\xff")));
    ASSERT(!gc__http_is_field_value(V("a\rb")));
    ASSERT(!gc__http_is_field_value(V("a\nb")));
    ASSERT(!gc__http_is_field_value(V("x\r\nSet-Cookie: evil=1")));
    ASSERT(!gc__http_is_field_value(gc__view("a\0b", 3)));
    ASSERT(!gc__http_is_field_value(V("a\x7f")));
    ASSERT(!gc__http_is_field_value(V("\x01")));
    ASSERT(!gc__http_is_field_value(V("\x1f")));
}

static void test_parse_status(void)
{
    int code = 0;
    ASSERT(gc__http_parse_status(V("200 OK"), &code));
    ASSERT_EQ_INT(code, 200);
    ASSERT(gc__http_parse_status(V("404"), &code));
    ASSERT_EQ_INT(code, 404);
    ASSERT(gc__http_parse_status(V("599 Custom Reason With Spaces"), &code));
    ASSERT_EQ_INT(code, 599);
    ASSERT(gc__http_parse_status(V("100 Continue"), &code));
    ASSERT_EQ_INT(code, 100);

    code = -7;
    ASSERT(!gc__http_parse_status(V("20"), &code));
    ASSERT(!gc__http_parse_status(V(""), &code));
    ASSERT(!gc__http_parse_status(V("2000 X"), &code));
    ASSERT(!gc__http_parse_status(V("abc"), &code));
    ASSERT(!gc__http_parse_status(V("abc OK"), &code));
    ASSERT(!gc__http_parse_status(V("2x0 OK"), &code));
    ASSERT(!gc__http_parse_status(V("200\r\nX: y"), &code));
    ASSERT(!gc__http_parse_status(V("200 OK\r\nX: y"), &code));
    ASSERT(!gc__http_parse_status(V("200 O\nK"), &code));
    ASSERT(!gc__http_parse_status(V("200-OK"), &code));
    ASSERT(!gc__http_parse_status(V("099 Low"), &code));
    /* A refused status leaves *code alone. */
    ASSERT_EQ_INT(code, -7);
}

static void test_is_hop_by_hop(void)
{
    static const char *const hop[] = {
        "connection", "keep-alive", "proxy-authenticate", "proxy-authorization",
        "te",         "trailers",   "transfer-encoding",  "upgrade",
        "server",     "date",
    };
    for (size_t i = 0; i < sizeof(hop) / sizeof(hop[0]); i++) {
        char upper[32];
        size_t n = strlen(hop[i]);
        for (size_t j = 0; j <= n; j++)
            upper[j] = (char)(hop[i][j] >= 'a' && hop[i][j] <= 'z' ? hop[i][j] - 32 : hop[i][j]);
        ASSERT(gc__http_is_hop_by_hop(gc__view(hop[i], n)));
        ASSERT(gc__http_is_hop_by_hop(gc__view(upper, n)));
    }
    ASSERT(gc__http_is_hop_by_hop(V("Transfer-Encoding")));
    ASSERT(gc__http_is_hop_by_hop(V("Keep-Alive")));
    ASSERT(gc__http_is_hop_by_hop(V("TE")));

    ASSERT(!gc__http_is_hop_by_hop(V("content-type")));
    ASSERT(!gc__http_is_hop_by_hop(V("Content-Length")));
    ASSERT(!gc__http_is_hop_by_hop(V("Set-Cookie")));
    ASSERT(!gc__http_is_hop_by_hop(V("t")));
    ASSERT(!gc__http_is_hop_by_hop(V("")));
    ASSERT(!gc__http_is_hop_by_hop(V("tex")));
    ASSERT(!gc__http_is_hop_by_hop(V("connections")));
    ASSERT(!gc__http_is_hop_by_hop(V("x-connection")));
    ASSERT(!gc__http_is_hop_by_hop(V("proxy-authorization-x")));
}

static void test_status_has_body(void)
{
    ASSERT(!gc__http_status_has_body(100));
    ASSERT(!gc__http_status_has_body(101));
    ASSERT(!gc__http_status_has_body(199));
    ASSERT(!gc__http_status_has_body(204));
    ASSERT(!gc__http_status_has_body(304));
    ASSERT(gc__http_status_has_body(200));
    ASSERT(gc__http_status_has_body(201));
    ASSERT(gc__http_status_has_body(205));
    ASSERT(gc__http_status_has_body(301));
    ASSERT(gc__http_status_has_body(404));
    ASSERT(gc__http_status_has_body(500));
}

static void test_reason(void)
{
    ASSERT_EQ_STR(gc__http_reason(400), "Bad Request");
    ASSERT_EQ_STR(gc__http_reason(417), "Expectation Failed");
    ASSERT_EQ_STR(gc__http_reason(431), "Request Header Fields Too Large");
    ASSERT_EQ_STR(gc__http_reason(500), "Internal Server Error");
    ASSERT_EQ_STR(gc__http_reason(501), "Not Implemented");
    ASSERT_EQ_STR(gc__http_reason(204), "No Content");
    ASSERT_EQ_STR(gc__http_reason(408), "Request Timeout");
    ASSERT_EQ_STR(gc__http_reason(103), "Early Hints");
    ASSERT_EQ_STR(gc__http_reason(799), "Unknown");
}

static void test_write_error(void)
{
    static const char body[] = "<html>\n"
                               "  <head>\n"
                               "    <title>Bad Request</title>\n"
                               "  </head>\n"
                               "  <body>\n"
                               "    <h1><p>Bad Request</p></h1>\n"
                               "    a&lt;b&gt;&amp;&#x27;&quot;\n"
                               "  </body>\n"
                               "</html>\n";
    char expected[1024];
    snprintf(expected, sizeof(expected),
             "HTTP/1.1 400 Bad Request\r\n"
             "Connection: close\r\n"
             "Content-Type: text/html\r\n"
             "Content-Length: %zu\r\n"
             "\r\n"
             "%s",
             sizeof(body) - 1, body);
    /* The length printed is the body's: 148 bytes, as Python's len(html) in Gunicorn. */
    ASSERT_EQ_INT(sizeof(body) - 1, 148);

    gc__buf_t out;
    gc__buf_init(&out);
    ASSERT_OK(gc__http_write_error(&out, 400, "a<b>&'\""));
    ASSERT_BUF(out, expected);
    gc__buf_free(&out);

    /* An empty message, another status, and appending after earlier bytes. */
    static const char body431[] = "<html>\n"
                                  "  <head>\n"
                                  "    <title>Request Header Fields Too Large</title>\n"
                                  "  </head>\n"
                                  "  <body>\n"
                                  "    <h1><p>Request Header Fields Too Large</p></h1>\n"
                                  "    \n"
                                  "  </body>\n"
                                  "</html>\n";
    snprintf(expected, sizeof(expected),
             "previous"
             "HTTP/1.1 431 Request Header Fields Too Large\r\n"
             "Connection: close\r\n"
             "Content-Type: text/html\r\n"
             "Content-Length: %zu\r\n"
             "\r\n"
             "%s",
             sizeof(body431) - 1, body431);
    gc__buf_init(&out);
    gc__buf_append_str(&out, "previous");
    ASSERT_OK(gc__http_write_error(&out, 431, ""));
    ASSERT_BUF(out, expected);
    gc__buf_free(&out);
}

int main(int argc, char **argv)
{
    unit_init(argc, argv);
    /* As in the workers: a write to a closed socket fails with EPIPE, not a signal. */
    signal(SIGPIPE, SIG_IGN);
    /* A sink bug tends to hang rather than fail: let the alarm turn that into a failure. */
    alarm(120);

    RUN(test_date);
    RUN(test_write_head_basic);
    RUN(test_write_head_variants);
    RUN(test_chunk_prefix);
    RUN(test_is_token);
    RUN(test_is_field_value);
    RUN(test_parse_status);
    RUN(test_is_hop_by_hop);
    RUN(test_status_has_body);
    RUN(test_reason);
    RUN(test_write_error);
    return unit_done();
}
