/* access.h: the access log, written by C (Gunicorn's --access-logformat atoms, or one
 * JSON object a line with --access-log-json).
 *
 * gc__wsgi_handle fills a gc__reqlog_t when a request ends and hands it to
 * gc__access_log_request (and its status and duration to StatsD). Lines go out
 * through gc__log_access_write (log/log.h), which knows the destinations. */
#ifndef GC_WSGI_ACCESS_H
#define GC_WSGI_ACCESS_H

#include <Python.h>
#include <stdint.h>

#include "config/config.h"
#include "http/parser.h"
#include "wsgi/wsgi.h"

/* One finished request. Everything is borrowed for the call; needs the GIL. */
typedef struct {
    const gc__http_request_t *req; /* method, target, version, request headers */
    const gc__wsgi_peer_t *peer;   /* remote address and port ("" for unix sockets) */
    PyObject *environ;             /* the environ the app got, or NULL */
    PyObject *status;              /* the status line the app gave (str), or NULL */
    PyObject *headers;             /* the app's response headers (list), or NULL */
    int status_code;               /* what went out: the app's, or 500 for our error page */
    uint64_t body_bytes;           /* response body bytes sent */
    uint64_t duration_us;          /* from the call of the app to the end of the response */
} gc__reqlog_t;

/* Reads the access log settings (format, JSON). Returns 0, or -1 after logging. */
int gc__access_configure(const gc__config_t *cfg);
/* 1 when lines are to be written (an access log destination is set). */
int gc__access_log_enabled(void);
/* Formats and writes the line for `rec`. A record without `status` is the line for
 * our own 500 page, which is built as Gunicorn's handle_error builds it (0 bytes, no
 * referer, user agent or user). Needs the GIL; never leaves a Python exception set. */
void gc__access_log_request(const gc__reqlog_t *rec);

#endif
