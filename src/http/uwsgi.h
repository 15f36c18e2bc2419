/* uwsgi.h: the uwsgi binary protocol's request packets (what nginx's uwsgi_pass sends),
 * parsed into the same gc__http_request_t the HTTP/1 parser makes.
 *
 * A packet is a 4-byte header, modifier1 (0 for a WSGI request), datasize (uint16
 * little-endian) and modifier2, then `datasize` bytes of variables, each a uint16 LE key
 * length, the key, a uint16 LE value length and the value; then the request body,
 * exactly CONTENT_LENGTH bytes. The variables are CGI's: REQUEST_METHOD, PATH_INFO,
 * QUERY_STRING, HTTP_* for the request's header fields, CONTENT_TYPE, CONTENT_LENGTH,
 * HTTPS. The request is built from them as Gunicorn 26.1 builds it:
 *
 *   method    REQUEST_METHOD (GET when absent); it must be a token.
 *   target    PATH_INFO (/ when absent or empty; else it must start with /: 400),
 *             percent-encoded where it must be so
 *             that the environ's decoding gives back exactly what the front end sent,
 *             then "?" QUERY_STRING when that is not empty. (Gunicorn decodes nginx's
 *             already decoded PATH_INFO a second time: /a%2541 reaches it as /aA.)
 *   fields    HTTP_NAME_PARTS as NAME-PARTS, then CONTENT_TYPE and CONTENT_LENGTH as
 *             CONTENT-TYPE and CONTENT-LENGTH, in packet order.
 *   scheme    https when HTTPS is on, 1 or true (any case); else wsgi.url_scheme's
 *             value when that variable is http or https; else the server's.
 *   version   HTTP/1.1 always.
 *   body      CONTENT_LENGTH bytes (empty or absent: none), spooled past the limits'
 *             threshold with gc__http_body_append.
 *
 * Every request says keep_alive = 0 and close_delimited = 1: nginx (1.22 measured)
 * never reuses a uwsgi upstream connection and does not decode a chunked response,
 * so a response without a length is ended by closing the connection.
 *
 * Limits (a packet is at most 65,539 bytes before its body): at most 1000 variables
 * (Gunicorn's); limit_request_fields counts the header fields; limit_request_field_size
 * bounds "NAME: value\r\n" of each; limit_request_line bounds "METHOD target
 * HTTP/1.1". Refusals: 400 for a malformed packet or variable, 501 for a modifier1
 * other than 0, 431 for a limit. (Gunicorn answers every one of them with 500.)
 *
 * The parser writes its results into a gc__http_parser_t, the connection's (its `req`,
 * `state`, `started`, `headers_done`, `error_status` and `error_msg`, with the meaning
 * parser.h gives them), so that the code that reads a parser's results serves both
 * protocols; its llhttp is not used. gc__http_parser_next then clears the request, and
 * gc__uwsgi_next the packet state.
 *
 * Python-free and sans-IO: unit-tested in tests/unit/test_uwsgi.c and fuzzed by
 * tests/fuzz/fuzz_uwsgi.c. */
#ifndef GC_HTTP_UWSGI_H
#define GC_HTTP_UWSGI_H

#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "http/parser.h"

/* Gunicorn's bound on the variables of one packet. */
#define GC_UWSGI_MAX_VARS 1000

typedef struct {
    uint8_t hdr[4];
    size_t hdr_len;     /* bytes of the 4-byte header received */
    size_t datasize;    /* the variables block's size, from the header */
    gc__buf_t vars;     /* the variables block while it arrives */
    uint64_t body_left; /* body bytes still to come */
} gc__uwsgi_parser_t;

void gc__uwsgi_init(gc__uwsgi_parser_t *u);
void gc__uwsgi_free(gc__uwsgi_parser_t *u);

/* Feeds bytes of the connection. Returns how many were consumed (bytes after a complete
 * request are not); p->state says what follows: GC_HTTP_NEED_MORE, GC_HTTP_READY with
 * p->req complete, or GC_HTTP_ERROR with p->error_status and p->error_msg. p's limits
 * (borrowed at gc__http_parser_init) apply. */
size_t gc__uwsgi_feed(gc__uwsgi_parser_t *u, gc__http_parser_t *p, const char *data, size_t len);

/* The end of input: a packet or body cut short becomes a 400 (p->started says whether
 * one had begun; an idle connection closing is not an error). */
void gc__uwsgi_eof(gc__uwsgi_parser_t *u, gc__http_parser_t *p);

/* Gets ready for the next packet; call it with gc__http_parser_next(p). */
void gc__uwsgi_next(gc__uwsgi_parser_t *u);

#endif
