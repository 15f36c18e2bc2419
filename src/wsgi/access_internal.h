/* access_internal.h: what the files of the access log share (access.h is the API).
 * One file per job:
 *
 *   access.c        the format: compiled once into segments; a request's text line
 *                   written segment by segment, specs other than %s through Python
 *   access_atoms.c  where each atom's value comes from (the environ, the request and
 *                   response headers, Basic auth, the status, the clock) and how a
 *                   value is written into a line: as it is, with `"` escaped, or JSON
 *   access_json.c   --access-log-json: one JSON object a line
 *
 * Everything here needs the GIL. */
#ifndef GC_WSGI_ACCESS_INTERNAL_H
#define GC_WSGI_ACCESS_INTERNAL_H

#include <stdint.h>
#include <string.h>
#include <time.h>

#include "common/buf.h"
#include "wsgi/access.h"

/* --- the compiled format (access.c) ------------------------------------------------ */

enum seg_kind {
    SEG_TEXT,     /* literal text */
    SEG_ATOM,     /* one of Gunicorn's one-letter atoms (seg.atom) */
    SEG_REQ_HDR,  /* {name}i */
    SEG_RESP_HDR, /* {name}o */
    SEG_ENVIRON,  /* {name}e */
    SEG_UNKNOWN,  /* any other name: "-" */
};

typedef struct {
    enum seg_kind kind;
    char atom;
    char *text; /* owned: the literal, or the lower-cased {name} */
    size_t len;
    char *spec; /* owned: "%-10s" and the like; NULL for a plain %s */
} gc__access_seg_t;

typedef struct {
    gc__access_seg_t *segs; /* owned */
    size_t n;
    int json;
} gc__access_format_t;

/* --- a line being built -------------------------------------------------------------- */

/* The line's bytes, and whether an allocation failed: the line is then dropped rather
 * than written in part. */
typedef struct {
    gc__buf_t buf;
    int oom;
} gc__access_line_t;

static inline void put(gc__access_line_t *o, const char *s, size_t n)
{
    if (!o->oom && gc__buf_append(&o->buf, s, n) < 0)
        o->oom = 1;
}

static inline void put_str(gc__access_line_t *o, const char *s)
{
    put(o, s, strlen(s));
}

static inline void put_u64(gc__access_line_t *o, uint64_t v)
{
    char tmp[24], *p = tmp + sizeof(tmp);
    do {
        *--p = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    put(o, p, (size_t)(tmp + sizeof(tmp) - p));
}

/* How a value's bytes are written: as they are, as the text log writes strings (`"`
 * becomes `\"`), or as the inside of a JSON string (common/json.h). */
enum gc__access_esc { ESC_NONE, ESC_QUOTE, ESC_JSON };

/* Bytes that are latin-1 code points (header values, environ strs): a byte >= 0x80
 * becomes its two-byte UTF-8 form. */
void gc__access_put_latin1(gc__access_line_t *o, const char *s, size_t n, enum gc__access_esc e);
/* Bytes already in UTF-8. */
void gc__access_put_utf8(gc__access_line_t *o, const char *s, size_t n, enum gc__access_esc e);
/* A Python object (borrowed) as %s writes it: a str escaped, anything else through
 * str() and not escaped with ESC_QUOTE (Gunicorn escapes only the values that are
 * strings). */
void gc__access_put_obj(gc__access_line_t *o, PyObject *v, enum gc__access_esc e);

/* --- one request's values (access_atoms.c) ------------------------------------------- */

/* One request's sources. */
typedef struct {
    const gc__reqlog_t *rec;
    PyObject *env;  /* borrowed; NULL when the line follows Gunicorn's fresh environ */
    int error_page; /* the line for our own 500 page */
    struct timespec now;
} gc__access_ctx_t;

/* environ.get(key) (key: an interned str of python/pystr.h), borrowed, or NULL. */
PyObject *gc__access_env_get(const gc__access_ctx_t *c, PyObject *key);
/* Writes one atom as a plain %s would, escaped as `e` says. */
void gc__access_put_atom(gc__access_line_t *o, const gc__access_ctx_t *c, char atom,
                         enum gc__access_esc e);
/* The user of "Authorization: Basic <base64 of user:password>", as Gunicorn finds
 * it: its UTF-8 bytes, decoded into buf, go to *user. Returns 1 when there is one. */
int gc__access_basic_user(const gc__access_ctx_t *c, char *buf, size_t cap, gc__view_t *user);
/* The status's first token, as Gunicorn's status.split(None, 1)[0]; buf (8 bytes or
 * more) holds the code's digits when there is no status line. */
gc__view_t gc__access_status_token(const gc__access_ctx_t *c, char *buf);
/* The local time as [26/Nov/2026:13:08:02 +0000], or with iso as
 * 2026-11-26T13:08:02.123+00:00. */
void gc__access_put_time(gc__access_line_t *o, const struct timespec *now, int iso);
/* {name}i and {name}o (name lower-cased): the header's value, borrowed latin-1 bytes.
 * Return 1 when there is one. */
int gc__access_find_req_header(const gc__access_ctx_t *c, const char *name, size_t len,
                               gc__view_t *value);
int gc__access_find_resp_header(const gc__access_ctx_t *c, const char *name, size_t len,
                                gc__view_t *value);
/* {name}e: the environ value whose key lower-cased is `name`. Borrowed, or NULL. */
PyObject *gc__access_find_environ(const gc__access_ctx_t *c, const char *name, size_t len);
/* %(B)s: the body bytes sent (0 for our error page, as Gunicorn counts it). */
uint64_t gc__access_body_bytes(const gc__access_ctx_t *c);
/* The worker's pid, read once per thread. */
long gc__access_worker_pid(void);

/* --- JSON (access_json.c) ------------------------------------------------------------ */

/* Writes the JSON object for c; f's {x}i, {x}o and {x}e atoms choose the headers and
 * environ keys it adds. */
void gc__access_format_json(gc__access_line_t *o, const gc__access_ctx_t *c,
                            const gc__access_format_t *f);

#endif
