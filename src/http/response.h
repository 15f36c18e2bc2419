/* response.h: writing HTTP/1.x response heads, chunk framing and error pages.
 *
 * Pure C over byte views: the WSGI layer hands in the status and the application's
 * headers as views (pointing straight into Python's latin-1 string storage), and gets
 * back bytes ready for one writev. Validation lives here too, so a CR or LF from an
 * application can never split a response. Unit-tested in tests/unit/test_response.c. */
#ifndef GC_HTTP_RESPONSE_H
#define GC_HTTP_RESPONSE_H

#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"

#define GC_SERVER_NAME "gunicorn-c"

enum gc__http_connection {
    GC_CONN_CLOSE = 0,
    GC_CONN_KEEP_ALIVE = 1,
};

typedef struct {
    gc__view_t name;
    gc__view_t value;
} gc__http_header_t;

typedef struct {
    int minor;                        /* answer HTTP/1.<minor>, as the request asked */
    gc__view_t status;                /* "200 OK", already validated */
    const gc__http_header_t *headers; /* borrowed, already validated and filtered */
    size_t nheaders;
    enum gc__http_connection connection;
    int chunked;
    int64_t add_length; /* >= 0: the server adds "Content-Length: N" (the app gave none) */
} gc__http_head_t;

/* Appends the whole response head (status line, Server, Date, Connection, optional
 * Transfer-Encoding, the headers, and the blank line) to out. Returns 0 or -ENOMEM. */
int gc__http_write_head(gc__buf_t *out, const gc__http_head_t *h);

/* Writes "<hex>\r\n" for a chunk of n bytes into out (at least 20 bytes). Returns the
 * length written. */
size_t gc__http_chunk_prefix(char *out, uint64_t n);

/* The current time as an IMF-fixdate ("Thu, 26 Nov 2026 03:16:08 GMT"), recomputed at
 * most once a second. Returns a borrowed, NUL-terminated string of 29 bytes. */
const char *gc__http_date(void);

/* Token characters (RFC 9110) for header names and methods. */
int gc__http_is_token(gc__view_t v);
/* A field value holds no control characters other than HTAB (obs-text allowed). */
int gc__http_is_field_value(gc__view_t v);
/* A status is "NNN" or "NNN reason" with a printable reason. Sets *code. */
int gc__http_parse_status(gc__view_t v, int *code);
/* What a response header's name is to the server. */
enum gc__hop {
    GC_HOP_NONE = 0,     /* end to end: the application's to set */
    GC_HOP_BY_HOP,       /* connection, keep-alive, proxy-authenticate, proxy-authorization,
                          * te, trailers, transfer-encoding */
    GC_HOP_UPGRADE,      /* upgrade (hop-by-hop too; Gunicorn's access log keeps
                          * "Upgrade: websocket") */
    GC_HOP_SERVER_OWNED, /* server, date: the server writes them */
};
enum gc__hop gc__http_hop_kind(gc__view_t name);
/* Hop-by-hop or server-owned headers an application may not set (Gunicorn drops
 * them): any name gc__http_hop_kind does not call GC_HOP_NONE. */
int gc__http_is_hop_by_hop(gc__view_t name);
/* Responses to HEAD, and statuses 1xx, 204 and 304, carry no body. */
int gc__http_status_has_body(int code);

/* The reason phrase for a status code ("Bad Request"), or "Unknown". */
const char *gc__http_reason(int code);

/* Appends Gunicorn's HTML error page for `status` with `message` (HTML-escaped) and
 * Connection: close. Returns 0 or -ENOMEM. */
int gc__http_write_error(gc__buf_t *out, int status, const char *message);

#endif
