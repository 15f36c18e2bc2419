/* response.c: response heads, chunk framing, the cached Date and error pages (see
 * response.h). */
#include "http/response.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static int is_tchar(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return 1;
    return c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

int gc__http_is_token(gc__view_t v)
{
    if (v.len == 0)
        return 0;
    for (size_t i = 0; i < v.len; i++)
        if (!is_tchar((unsigned char)v.base[i]))
            return 0;
    return 1;
}

int gc__http_is_field_value(gc__view_t v)
{
    for (size_t i = 0; i < v.len; i++) {
        unsigned char c = (unsigned char)v.base[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return 0;
    }
    return 1;
}

int gc__http_parse_status(gc__view_t v, int *code)
{
    if (v.len < 3 || (v.len > 3 && v.base[3] != ' '))
        return 0;
    int n = 0;
    for (int i = 0; i < 3; i++) {
        if (v.base[i] < '0' || v.base[i] > '9')
            return 0;
        n = n * 10 + (v.base[i] - '0');
    }
    if (n < 100)
        return 0;
    if (!gc__http_is_field_value(v))
        return 0;
    *code = n;
    return 1;
}

enum gc__hop gc__http_hop_kind(gc__view_t name)
{
    static const struct {
        const char *name;
        enum gc__hop kind;
    } names[] = {
        {"connection", GC_HOP_BY_HOP},
        {"keep-alive", GC_HOP_BY_HOP},
        {"proxy-authenticate", GC_HOP_BY_HOP},
        {"proxy-authorization", GC_HOP_BY_HOP},
        {"te", GC_HOP_BY_HOP},
        {"trailers", GC_HOP_BY_HOP},
        {"transfer-encoding", GC_HOP_BY_HOP},
        {"upgrade", GC_HOP_UPGRADE},
        {"server", GC_HOP_SERVER_OWNED},
        {"date", GC_HOP_SERVER_OWNED},
    };
    /* Quick reject on length: most application headers match none of these. */
    if (name.len < 2 || name.len > 19)
        return GC_HOP_NONE;
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (gc__view_ieq(name, names[i].name))
            return names[i].kind;
    return GC_HOP_NONE;
}

int gc__http_is_hop_by_hop(gc__view_t name)
{
    return gc__http_hop_kind(name) != GC_HOP_NONE;
}

int gc__http_status_has_body(int code)
{
    return !(code < 200 || code == 204 || code == 304);
}

const char *gc__http_reason(int code)
{
    /* The IANA registry's phrases, as Python's http.HTTPStatus has them (what
     * Gunicorn's error pages and uvicorn's status lines say). */
    switch (code) {
    case 100:
        return "Continue";
    case 101:
        return "Switching Protocols";
    case 102:
        return "Processing";
    case 103:
        return "Early Hints";
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 202:
        return "Accepted";
    case 203:
        return "Non-Authoritative Information";
    case 204:
        return "No Content";
    case 205:
        return "Reset Content";
    case 206:
        return "Partial Content";
    case 207:
        return "Multi-Status";
    case 208:
        return "Already Reported";
    case 226:
        return "IM Used";
    case 300:
        return "Multiple Choices";
    case 301:
        return "Moved Permanently";
    case 302:
        return "Found";
    case 303:
        return "See Other";
    case 304:
        return "Not Modified";
    case 305:
        return "Use Proxy";
    case 307:
        return "Temporary Redirect";
    case 308:
        return "Permanent Redirect";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 402:
        return "Payment Required";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 406:
        return "Not Acceptable";
    case 407:
        return "Proxy Authentication Required";
    case 408:
        return "Request Timeout";
    case 409:
        return "Conflict";
    case 410:
        return "Gone";
    case 411:
        return "Length Required";
    case 412:
        return "Precondition Failed";
    case 413:
        return "Request Entity Too Large";
    case 414:
        return "Request-URI Too Long";
    case 415:
        return "Unsupported Media Type";
    case 416:
        return "Requested Range Not Satisfiable";
    case 417:
        return "Expectation Failed";
    case 418:
        return "I'm a Teapot";
    case 421:
        return "Misdirected Request";
    case 422:
        return "Unprocessable Entity";
    case 423:
        return "Locked";
    case 424:
        return "Failed Dependency";
    case 425:
        return "Too Early";
    case 426:
        return "Upgrade Required";
    case 428:
        return "Precondition Required";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 451:
        return "Unavailable For Legal Reasons";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    case 505:
        return "HTTP Version Not Supported";
    case 506:
        return "Variant Also Negotiates";
    case 507:
        return "Insufficient Storage";
    case 508:
        return "Loop Detected";
    case 510:
        return "Not Extended";
    case 511:
        return "Network Authentication Required";
    default:
        return "Unknown";
    }
}

const char *gc__http_date(void)
{
    static char cached[32];
    static time_t cached_at = -1;
    time_t now = time(NULL);
    if (now != cached_at) {
        struct tm tm;
        gmtime_r(&now, &tm);
        strftime(cached, sizeof(cached), "%a, %d %b %Y %H:%M:%S GMT", &tm);
        cached_at = now;
    }
    return cached;
}

#define APPEND_LIT(out, s) gc__buf_append((out), (s), sizeof(s) - 1)

int gc__http_write_head(gc__buf_t *out, const gc__http_head_t *h)
{
    /* The fixed parts (status line prefix, Server, Date, Connection, Transfer-Encoding,
     * a 19-digit Content-Length and the blank line) take at most 159 bytes. */
    size_t need = 160 + h->status.len;
    for (size_t i = 0; i < h->nheaders; i++)
        need += h->headers[i].name.len + h->headers[i].value.len + 4;
    if (gc__buf_reserve(out, need) < 0)
        return -ENOMEM;
    /* Everything below fits in the reserved space, so the appends cannot fail. */
    APPEND_LIT(out, "HTTP/1.");
    char minor = (char)('0' + (h->minor > 0 ? 1 : 0));
    gc__buf_append(out, &minor, 1);
    gc__buf_append(out, " ", 1);
    gc__buf_append(out, h->status.base, h->status.len);
    APPEND_LIT(out, "\r\nServer: " GC_SERVER_NAME "\r\nDate: ");
    gc__buf_append(out, gc__http_date(), 29);
    if (h->connection == GC_CONN_CLOSE)
        APPEND_LIT(out, "\r\nConnection: close\r\n");
    else
        APPEND_LIT(out, "\r\nConnection: keep-alive\r\n");
    if (h->chunked)
        APPEND_LIT(out, "Transfer-Encoding: chunked\r\n");
    if (h->add_length >= 0) {
        char num[32];
        int n = snprintf(num, sizeof(num), "Content-Length: %lld\r\n", (long long)h->add_length);
        gc__buf_append(out, num, (size_t)n);
    }
    for (size_t i = 0; i < h->nheaders; i++) {
        gc__buf_append(out, h->headers[i].name.base, h->headers[i].name.len);
        APPEND_LIT(out, ": ");
        gc__buf_append(out, h->headers[i].value.base, h->headers[i].value.len);
        APPEND_LIT(out, "\r\n");
    }
    APPEND_LIT(out, "\r\n");
    return 0;
}

size_t gc__http_chunk_prefix(char *out, uint64_t n)
{
    int len = snprintf(out, 20, "%llX\r\n", (unsigned long long)n);
    return len < 0 ? 0 : (size_t)len;
}

static int append_escaped(gc__buf_t *out, const char *s)
{
    for (; *s; s++) {
        int rc;
        switch (*s) {
        case '&':
            rc = APPEND_LIT(out, "&amp;");
            break;
        case '<':
            rc = APPEND_LIT(out, "&lt;");
            break;
        case '>':
            rc = APPEND_LIT(out, "&gt;");
            break;
        case '"':
            rc = APPEND_LIT(out, "&quot;");
            break;
        case '\'':
            rc = APPEND_LIT(out, "&#x27;");
            break;
        default:
            rc = gc__buf_append(out, s, 1);
            break;
        }
        if (rc < 0)
            return -ENOMEM;
    }
    return 0;
}

int gc__http_write_error(gc__buf_t *out, int status, const char *message)
{
    const char *reason = gc__http_reason(status);
    gc__buf_t body;
    gc__buf_init(&body);
    int rc = -ENOMEM;
    if (gc__buf_printf(&body,
                       "<html>\n  <head>\n    <title>%s</title>\n  </head>\n  <body>\n"
                       "    <h1><p>%s</p></h1>\n    ",
                       reason, reason) < 0)
        goto out;
    if (append_escaped(&body, message) < 0)
        goto out;
    if (APPEND_LIT(&body, "\n  </body>\n</html>\n") < 0)
        goto out;
    if (gc__buf_printf(out,
                       "HTTP/1.1 %d %s\r\nConnection: close\r\nContent-Type: text/html\r\n"
                       "Content-Length: %zu\r\n\r\n",
                       status, reason, body.len) < 0)
        goto out;
    rc = gc__buf_append(out, body.data, body.len);
out:
    gc__buf_free(&body);
    return rc;
}
