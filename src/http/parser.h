/* parser.h: HTTP/1.x request parsing on llhttp, with Gunicorn's limits.
 *
 * The parser turns bytes into whole requests. It copies the request line and the
 * header fields into the request's own `head` buffer (so the caller may reuse its read
 * buffer at once) and collects the body, decoded from chunked framing if needed, into
 * a gc__http_body_t that spills to an unlinked temporary file past a threshold. A
 * request is only handed on when it is complete: slow clients never reach Python.
 *
 * Feeding stops at the end of each request (pipelined bytes stay with the caller), so
 * requests on one connection are answered strictly in order.
 *
 * This file knows nothing about Python or sockets; it works on plain byte views and is
 * unit-tested on its own (tests/unit/test_http_parser.c). */
#ifndef GC_HTTP_PARSER_H
#define GC_HTTP_PARSER_H

#include <stdint.h>
#include <sys/types.h>

#include <llhttp.h>

#include "common/buf.h"

typedef struct {
    size_t max_line;                  /* limit_request_line: 0 means unlimited */
    size_t max_fields;                /* limit_request_fields */
    size_t max_field_size;            /* limit_request_field_size: bytes of one "Name: value\r\n" */
    size_t spool_threshold;           /* body bytes kept in memory before spilling to a file */
    int permit_obsolete_folding;      /* join folded header lines instead of refusing them */
    int permit_unconventional_method; /* lowercase, '#', any length: only a token needed */
    int casefold_method;              /* upper-case the method (after the checks) */
    int strip_header_spaces;          /* "Name : v" is "Name: v" instead of a 400 */
    int permit_unconventional_version; /* any HTTP/d.d, served with HTTP/1.x rules */
    int head_first; /* a request with a body is handed over at its head (GC_HTTP_HEAD),
                     * not only one that expects 100-continue (ASGI streams bodies) */
    /* header_map, forwarder_headers, secure_scheme_headers, SCRIPT_NAME (http/forward.h);
     * borrowed, NULL for Gunicorn's defaults. */
    const struct gc__forward_policy *forward;
} gc__http_limits_t;

/* Fills `l` with Gunicorn's defaults (4094, 100, 8190) and a 1 MiB spool threshold. */
void gc__http_limits_default(gc__http_limits_t *l);

/* A header field as offsets into gc__http_request_t.head. */
typedef struct {
    uint32_t name_off, name_len;
    uint32_t value_off, value_len;
    uint32_t folded; /* the value had obs-fold continuation lines */
} gc__http_field_t;

/* A request body: in memory until it passes the spool threshold, then in an unlinked
 * temporary file. Read back with gc__http_body_read. */
typedef struct {
    gc__buf_t mem;
    int fd; /* -1 while in memory */
    uint64_t len;
} gc__http_body_t;

typedef struct {
    gc__buf_t head; /* owns the bytes of method, target, names and values */
    uint32_t method_off, method_len;
    uint32_t target_off, target_len;
    gc__http_field_t *fields; /* owned array */
    size_t nfields, fields_cap;
    int major, minor;
    int keep_alive;         /* the client allows the connection to persist */
    int chunked;            /* the body came with chunked framing */
    int64_t content_length; /* -1 when absent */
    int expect_continue;    /* "Expect: 100-continue" on HTTP/1.1 */
    int body_pending;       /* handed over at GC_HTTP_HEAD: the body is still to be read */
    int close_delimited;    /* no chunked response: without a length the close ends the
                             * body (a uwsgi request: nginx does not decode chunks) */
    char version[12];       /* the version as sent, when it is not HTTP/1.0 or 1.1 */
    int url_scheme;         /* enum gc__url_scheme: set by a trusted front end's headers */
    int script_name;        /* index of the SCRIPT_NAME field in force, or -1 ($SCRIPT_NAME) */
    gc__http_body_t body;
} gc__http_request_t;

static inline gc__view_t gc__http_method(const gc__http_request_t *r)
{
    return gc__view(r->head.data + r->method_off, r->method_len);
}
static inline gc__view_t gc__http_target(const gc__http_request_t *r)
{
    return gc__view(r->head.data + r->target_off, r->target_len);
}
static inline gc__view_t gc__http_field_name(const gc__http_request_t *r, size_t i)
{
    return gc__view(r->head.data + r->fields[i].name_off, r->fields[i].name_len);
}
static inline gc__view_t gc__http_field_value(const gc__http_request_t *r, size_t i)
{
    return gc__view(r->head.data + r->fields[i].value_off, r->fields[i].value_len);
}

/* Returns the first field named `lower` (case-insensitive) or -1. */
ssize_t gc__http_find_field(const gc__http_request_t *r, const char *lower);

/* Copies up to n body bytes starting at `off` into dst. Returns the count (0 at the
 * end) or a negative errno. */
ssize_t gc__http_body_read(const gc__http_body_t *b, uint64_t off, char *dst, size_t n);

/* Appends body bytes, first moving the body to an unlinked temporary file when it would
 * pass `spool_threshold` bytes in memory (0: every byte goes to the file). Returns 0,
 * -ENOMEM (memory) or another negative errno (the temporary file: -EIO for any failure
 * that is not the file's own errno). Shared by the HTTP/1 parser and src/h2. */
int gc__http_body_append(gc__http_body_t *b, const char *at, size_t len, size_t spool_threshold);
/* Percent-decodes v into out (reset first), as urllib.parse.unquote_to_bytes: an
 * escape that is not two hex digits stays as it is. Returns 0 or -ENOMEM. Shared by
 * the WSGI environ's PATH_INFO and the ASGI scope's path. */
int gc__http_percent_decode(gc__buf_t *out, gc__view_t v);
/* Makes room for one more field in r->fields (every parser that builds a request: the
 * HTTP/1 one, uwsgi, HTTP/2). Returns 0 or -ENOMEM. */
int gc__http_fields_reserve(gc__http_request_t *r);

enum gc__http_state {
    GC_HTTP_NEED_MORE = 0, /* feed more bytes */
    GC_HTTP_READY,         /* p->req holds a whole request */
    GC_HTTP_HEAD,          /* p->req holds the head of a request that said "Expect:
                            * 100-continue": the client waits for our word before it sends
                            * the body, so the application runs first and decides */
    GC_HTTP_ERROR,         /* p->error_status / p->error_msg say why; close afterwards */
};

typedef struct {
    llhttp_t ll;
    const gc__http_limits_t *limits; /* borrowed; must outlive the parser */
    gc__http_request_t req;
    enum gc__http_state state;
    int headers_done; /* the head of the current request has been parsed */
    int in_value;     /* the last callback was part of a header value */
    int started;      /* some byte of the current request has been seen */
    int folded;       /* a header line of the current request was folded (obs-fold) */
    int trusted;      /* the peer is a trusted front end (set by the caller, kept across
                       * requests): see http/forward.h */
    size_t ndropped;  /* fields of this head that header_map drops */
    int line_started; /* the method has been checked and handed to llhttp */
    char method[24];  /* the method while it arrives (checked by us, not llhttp) */
    size_t method_len;
    int substituted;       /* llhttp was given a stand-in for a method it does not know */
    int line_done;         /* --permit-unconventional-http-version: the line went to llhttp */
    gc__buf_t line;        /* ... and the request line while it arrives; later a chunk-size
                            * line while it arrives */
    int chunk_line;        /* the next bytes are a chunk-size line, read by us, not llhttp */
    int last_chunk;        /* the size line of the last chunk (0) went to llhttp: trailers */
    size_t ntrailers;      /* trailer fields of this request so far */
    char trailer_name[24]; /* the current trailer field's name (its first bytes) */
    size_t trailer_name_len, trailer_size;
    const char *scan_pos;  /* the framing bytes of this feed before it are checked for CR */
    int cr_pending;        /* the last framing byte checked was a CR */
    uint64_t chunk_left;   /* data bytes of the current chunk still to come */
    int expect_crlf;       /* the CRLF after a chunk's data: bytes of it still to check */
    const char *feed_data; /* the buffer being fed, to look one byte behind a piece */
    const char *feed_end;  /* ... and its end, to look ahead for a chunk-size line */
    char prev_last;        /* the last byte of the previous feed */
    int error_status;      /* 400, 431, 501 ... when state is GC_HTTP_ERROR */
    char error_msg[256];
} gc__http_parser_t;

/* Prepares a parser. The limits are borrowed. */
void gc__http_parser_init(gc__http_parser_t *p, const gc__http_limits_t *limits);
/* Releases everything the parser owns (including a spooled body file). */
void gc__http_parser_free(gc__http_parser_t *p);

/* Feeds bytes. Returns how many were consumed; the rest (after a complete request)
 * belong to the next request and must be fed again after gc__http_parser_next. Check
 * p->state afterwards. */
size_t gc__http_parser_feed(gc__http_parser_t *p, const char *data, size_t len);

/* Signals end of input. A request cut off mid-way becomes an error only if it had
 * started; an idle connection closing is not an error. */
void gc__http_parser_eof(gc__http_parser_t *p);

/* After GC_HTTP_HEAD: goes on parsing the body of the same request (feed it bytes until
 * GC_HTTP_READY). */
void gc__http_parser_resume_body(gc__http_parser_t *p);

/* Forgets the current request and gets ready for the next one on the connection. */
void gc__http_parser_next(gc__http_parser_t *p);

#endif
