/* access_atoms.c: the values of the access log's atoms, and how a value is written
 * into a line (see access_internal.h).
 *
 * Gunicorn's rules kept here:
 *   - `"` in a string value is written as `\"` (values that are not strings, such as
 *     %(B)s or an environ value that is a tuple, are written as they are);
 *   - the atoms read from the environ (h u r m U q H f a, {x}e) read it after the
 *     application ran, so middleware that rewrites REMOTE_ADDR is seen;
 *   - header values are latin-1 strings, so a byte >= 0x80 is written as the UTF-8
 *     of that code point (what Python's text file writes);
 *   - a line for an error page we wrote (the application raised before sending its
 *     headers) is built as Gunicorn's handle_error builds it: status 500, 0 bytes,
 *     and a fresh environ, so no referer, user agent, user or PATH_INFO. */
#include "wsgi/access_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <strings.h>
#include <sys/types.h>
#include <unistd.h>

#include "common/json.h"
#include "http/response.h"
#include "python/pystr.h"

/* --- writing values ------------------------------------------------------------------ */

static void put_fmt(gc__access_line_t *o, const char *f, ...) __attribute__((format(printf, 2, 3)));
static void put_fmt(gc__access_line_t *o, const char *f, ...)
{
    char tmp[64];
    va_list ap;
    va_start(ap, f);
    int n = vsnprintf(tmp, sizeof(tmp), f, ap);
    va_end(ap);
    if (n > 0)
        put(o, tmp, (size_t)n < sizeof(tmp) ? (size_t)n : sizeof(tmp) - 1);
}

/* ASCII or UTF-8 bytes, escaped as `e` says. */
static void put_escaped(gc__access_line_t *o, const char *s, size_t n, enum gc__access_esc e)
{
    if (e == ESC_JSON) {
        if (!o->oom && gc__json_escape(&o->buf, s, n) < 0)
            o->oom = 1;
        return;
    }
    const char *quote;
    while (e == ESC_QUOTE && (quote = memchr(s, '"', n)) != NULL) {
        put(o, s, (size_t)(quote - s));
        put(o, "\\\"", 2);
        n -= (size_t)(quote - s) + 1;
        s = quote + 1;
    }
    put(o, s, n);
}

void gc__access_put_latin1(gc__access_line_t *o, const char *s, size_t n, enum gc__access_esc e)
{
    size_t i = 0;
    while (i < n) {
        size_t ascii = i;
        while (ascii < n && (unsigned char)s[ascii] < 0x80)
            ascii++;
        put_escaped(o, s + i, ascii - i, e);
        if (ascii == n)
            break;
        unsigned char c = (unsigned char)s[ascii];
        char two[2] = {(char)(0xc0 | (c >> 6)), (char)(0x80 | (c & 0x3f))};
        put(o, two, 2);
        i = ascii + 1;
    }
}

void gc__access_put_utf8(gc__access_line_t *o, const char *s, size_t n, enum gc__access_esc e)
{
    put_escaped(o, s, n, e);
}

void gc__access_put_obj(gc__access_line_t *o, PyObject *v, enum gc__access_esc e)
{
    PyObject *s = NULL;
    if (PyUnicode_Check(v)) {
        if (PyUnicode_KIND(v) == PyUnicode_1BYTE_KIND) {
            /* Every environ and header value we make: no Python call, no copy. */
            gc__access_put_latin1(o, (const char *)PyUnicode_1BYTE_DATA(v),
                                  (size_t)PyUnicode_GET_LENGTH(v), e);
            return;
        }
    } else {
        if (e == ESC_QUOTE)
            e = ESC_NONE;
        v = s = PyObject_Str(v);
        if (s == NULL) {
            PyErr_Clear();
            put(o, "-", 1);
            return;
        }
    }
    Py_ssize_t n;
    const char *u = PyUnicode_AsUTF8AndSize(v, &n);
    if (u != NULL) {
        gc__access_put_utf8(o, u, (size_t)n, e);
    } else {
        /* Lone surrogates: written as escapes rather than losing the line. */
        PyErr_Clear();
        PyObject *b = PyUnicode_AsEncodedString(v, "utf-8", "backslashreplace");
        if (b != NULL)
            gc__access_put_utf8(o, PyBytes_AS_STRING(b), (size_t)PyBytes_GET_SIZE(b), e);
        else
            PyErr_Clear();
        Py_XDECREF(b);
    }
    Py_XDECREF(s);
}

/* --- the atoms ------------------------------------------------------------------- */

PyObject *gc__access_env_get(const gc__access_ctx_t *c, PyObject *key)
{
    if (c->env == NULL)
        return NULL;
    PyObject *v = PyDict_GetItemWithError(c->env, key);
    if (v == NULL)
        PyErr_Clear();
    return v;
}

static gc__view_t req_protocol(const gc__http_request_t *req)
{
    if (req->version[0] != '\0')
        return gc__view(req->version, strlen(req->version));
    return req->minor >= 1 ? GC_VIEW_LIT("HTTP/1.1") : GC_VIEW_LIT("HTTP/1.0");
}

static gc__view_t req_query(const gc__http_request_t *req)
{
    gc__view_t t = gc__http_target(req);
    const char *q = memchr(t.base, '?', t.len);
    if (q == NULL)
        return gc__view("", 0);
    const char *end = memchr(q, '#', t.len - (size_t)(q - t.base));
    return gc__view(q + 1, (size_t)((end ? end : t.base + t.len) - q - 1));
}

/* An environ-backed atom: the environ's value when there is one, else `fallback`
 * (latin-1 bytes), else "None" (Python's %s of environ.get()'s None). */
static void put_env(gc__access_line_t *o, const gc__access_ctx_t *c, PyObject *key,
                    const gc__view_t *fallback, const char *missing, enum gc__access_esc e)
{
    PyObject *v = gc__access_env_get(c, key);
    if (v != NULL)
        gc__access_put_obj(o, v, e);
    else if (fallback != NULL)
        gc__access_put_latin1(o, fallback->base, fallback->len, e);
    else
        put_str(o, missing);
}

static int b64val(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    return c == '+' ? 62 : c == '/' ? 63 : -1;
}

/* Decodes base64 as Python's b64decode does by default: characters outside the
 * alphabet are skipped, and the padding must come out right. Returns the length or
 * -1. */
static ssize_t b64decode(const char *s, size_t n, char *dst, size_t cap)
{
    unsigned acc = 0;
    int bits = 0, quads = 0, pad = 0;
    size_t len = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '=') {
            /* Padding ends the data when it completes a quad. */
            if (quads % 4 >= 2 && (quads + ++pad) % 4 == 0)
                return len;
            continue;
        }
        int v = b64val(ch);
        if (v < 0)
            continue;
        if (pad)
            pad = 0;
        acc = (acc << 6) | (unsigned)v;
        bits += 6;
        quads++;
        if (bits >= 8) {
            bits -= 8;
            if (len == cap)
                return -1;
            dst[len++] = (char)((acc >> bits) & 0xff);
        }
    }
    return quads % 4 == 0 ? (ssize_t)len : -1;
}

/* The user of "Authorization: Basic <base64 of user:password>", as Gunicorn finds
 * it; the user's UTF-8 bytes go to *user. Returns 1 when there is one. */
int gc__access_basic_user(const gc__access_ctx_t *c, char *buf, size_t cap, gc__view_t *user)
{
    PyObject *v = c->error_page ? NULL : gc__access_env_get(c, GC_STR(HTTP_AUTHORIZATION));
    if (v == NULL || !PyUnicode_Check(v) || PyUnicode_KIND(v) != PyUnicode_1BYTE_KIND)
        return 0;
    const char *s = (const char *)PyUnicode_1BYTE_DATA(v);
    size_t n = (size_t)PyUnicode_GET_LENGTH(v);
    if (n < 5 || strncasecmp(s, "basic", 5) != 0)
        return 0;
    const char *sp = memchr(s, ' ', n);
    if (sp == NULL)
        return 0;
    const char *b = sp + 1, *end = s + n;
    /* .strip() then .encode('utf-8'): a latin-1 byte >= 0x80 is not base64 anyway. */
    ssize_t len = b64decode(b, (size_t)(end - b), buf, cap);
    if (len < 0 || !gc__utf8_valid(buf, (size_t)len))
        return 0;
    const char *colon = memchr(buf, ':', (size_t)len);
    if (colon == NULL)
        return 0;
    *user = gc__view(buf, (size_t)(colon - buf));
    return 1;
}

/* The status's first token, as Gunicorn's status.split(None, 1)[0]. */
gc__view_t gc__access_status_token(const gc__access_ctx_t *c, char *buf)
{
    if (c->error_page || c->rec->status == NULL || !PyUnicode_Check(c->rec->status) ||
        PyUnicode_KIND(c->rec->status) != PyUnicode_1BYTE_KIND) {
        snprintf(buf, 8, "%d", c->rec->status_code);
        return gc__view(buf, strlen(buf));
    }
    const char *s = (const char *)PyUnicode_1BYTE_DATA(c->rec->status);
    size_t n = (size_t)PyUnicode_GET_LENGTH(c->rec->status), i = 0;
    while (i < n && strchr(" \t\r\n\v\f", s[i]))
        i++;
    size_t j = i;
    while (j < n && !strchr(" \t\r\n\v\f", s[j]))
        j++;
    return gc__view(s + i, j - i);
}

static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                   "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

/* The local time as [26/Nov/2026:13:08:02 +0000] (the C locale's month names, as
 * Python's strftime), or for JSON as 2026-11-26T13:08:02.123+00:00. Both texts are
 * made once a second per thread. */
void gc__access_put_time(gc__access_line_t *o, const struct timespec *now, int iso)
{
    static _Thread_local time_t cached_sec = -1;
    static _Thread_local char clf[48], iso_date[32], iso_zone[24];
    static _Thread_local size_t clf_len, iso_date_len;
    if (now->tv_sec != cached_sec) {
        struct tm tm;
        localtime_r(&now->tv_sec, &tm);
        long off = tm.tm_gmtoff / 60;
        char sign = off < 0 ? '-' : '+';
        if (off < 0)
            off = -off;
        int n = snprintf(clf, sizeof(clf), "[%02d/%s/%04d:%02d:%02d:%02d %c%02ld%02ld]", tm.tm_mday,
                         months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec,
                         sign, off / 60, off % 60);
        clf_len = n > 0 && (size_t)n < sizeof(clf) ? (size_t)n : 0;
        n = snprintf(iso_date, sizeof(iso_date), "%04d-%02d-%02dT%02d:%02d:%02d", tm.tm_year + 1900,
                     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
        iso_date_len = n > 0 && (size_t)n < sizeof(iso_date) ? (size_t)n : 0;
        snprintf(iso_zone, sizeof(iso_zone), "%c%02ld:%02ld", sign, off / 60, off % 60);
        cached_sec = now->tv_sec;
    }
    if (!iso) {
        put(o, clf, clf_len);
        return;
    }
    long ms = now->tv_nsec / 1000000;
    char frac[5] = {'.', (char)('0' + ms / 100), (char)('0' + ms / 10 % 10), (char)('0' + ms % 10),
                    0};
    put(o, iso_date, iso_date_len);
    put(o, frac, 4);
    put_str(o, iso_zone);
}

static int name_ieq(const char *s, size_t n, const char *lower, size_t ln)
{
    if (n != ln)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (ch >= 'A' && ch <= 'Z')
            ch = (char)(ch + 32);
        if (ch != lower[i])
            return 0;
    }
    return 1;
}

/* {name}i: the last request header of that name (Gunicorn's dict keeps the last). */
int gc__access_find_req_header(const gc__access_ctx_t *c, const char *name, size_t len,
                               gc__view_t *value)
{
    const gc__http_request_t *req = c->rec->req;
    int found = 0;
    for (size_t i = 0; i < req->nfields; i++) {
        gc__view_t nv = gc__http_field_name(req, i);
        if (name_ieq(nv.base, nv.len, name, len)) {
            *value = gc__http_field_value(req, i);
            found = 1;
        }
    }
    return found;
}

/* Gunicorn keeps hop-by-hop headers out of the response's header list, except
 * "Upgrade: websocket". */
static int hoppish(const char *n, size_t len, const char *v, size_t vlen)
{
    enum gc__hop kind = gc__http_hop_kind(gc__view(n, len));
    return kind == GC_HOP_BY_HOP || (kind == GC_HOP_UPGRADE && !name_ieq(v, vlen, "websocket", 9));
}

/* {name}o: the last response header of that name, its value stripped of spaces and
 * tabs. Borrowed latin-1 bytes of the app's str. */
int gc__access_find_resp_header(const gc__access_ctx_t *c, const char *name, size_t len,
                                gc__view_t *value)
{
    PyObject *list = c->error_page ? NULL : c->rec->headers;
    if (list == NULL || !PyList_Check(list))
        return 0;
    int found = 0;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(list); i++) {
        PyObject *item = PyList_GET_ITEM(list, i);
        if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) != 2)
            continue;
        PyObject *k = PyTuple_GET_ITEM(item, 0), *v = PyTuple_GET_ITEM(item, 1);
        /* start_response checked both are latin-1 strs. */
        if (!PyUnicode_Check(k) || PyUnicode_KIND(k) != PyUnicode_1BYTE_KIND ||
            !PyUnicode_Check(v) || PyUnicode_KIND(v) != PyUnicode_1BYTE_KIND)
            continue;
        const char *ks = (const char *)PyUnicode_1BYTE_DATA(k);
        const char *vs = (const char *)PyUnicode_1BYTE_DATA(v);
        size_t kn = (size_t)PyUnicode_GET_LENGTH(k), vn = (size_t)PyUnicode_GET_LENGTH(v);
        while (vn > 0 && (vs[0] == ' ' || vs[0] == '\t'))
            vs++, vn--;
        while (vn > 0 && (vs[vn - 1] == ' ' || vs[vn - 1] == '\t'))
            vn--;
        if (name_ieq(ks, kn, name, len) && !hoppish(ks, kn, vs, vn)) {
            *value = gc__view(vs, vn);
            found = 1;
        }
    }
    return found;
}

/* {name}e: the environ value whose key lower-cased is `name` (the last one in the
 * dict's order, as Gunicorn's dict update keeps). Borrowed, or NULL. */
PyObject *gc__access_find_environ(const gc__access_ctx_t *c, const char *name, size_t len)
{
    /* The keys of the fresh environ Gunicorn logs its error page with. */
    static const char *const fresh[] = {
        "wsgi.errors",     "wsgi.version",      "wsgi.multithread",      "wsgi.multiprocess",
        "wsgi.run_once",   "wsgi.file_wrapper", "wsgi.input_terminated", "wsgi.input",
        "gunicorn.socket", "server_software",   "request_method",        "query_string",
        "raw_uri",         "server_protocol",   "remote_addr",           "remote_port",
    };
    PyObject *env = c->rec->environ, *key, *value, *found = NULL;
    Py_ssize_t pos = 0;
    if (env == NULL || !PyDict_Check(env))
        return NULL;
    if (c->error_page) {
        size_t i = 0;
        while (i < sizeof(fresh) / sizeof(fresh[0]) &&
               !name_ieq(fresh[i], strlen(fresh[i]), name, len))
            i++;
        if (i == sizeof(fresh) / sizeof(fresh[0]))
            return NULL;
    }
    while (PyDict_Next(env, &pos, &key, &value)) {
        if (PyUnicode_Check(key) && PyUnicode_KIND(key) == PyUnicode_1BYTE_KIND &&
            name_ieq((const char *)PyUnicode_1BYTE_DATA(key), (size_t)PyUnicode_GET_LENGTH(key),
                     name, len))
            found = value;
    }
    return found;
}

/* Gunicorn's line for its error page counts what a fresh Response sent: 0. */
uint64_t gc__access_body_bytes(const gc__access_ctx_t *c)
{
    return c->error_page ? 0 : c->rec->body_bytes;
}

/* The worker's pid, read once (only workers write access lines, and they do not
 * fork). */
long gc__access_worker_pid(void)
{
    static _Thread_local long pid;
    if (pid == 0)
        pid = (long)getpid();
    return pid;
}

static uint64_t dur_s(const gc__access_ctx_t *c)
{
    return c->rec->duration_us / 1000000u;
}

/* Writes one atom with a plain %s, escaped as `e` says. */
void gc__access_put_atom(gc__access_line_t *o, const gc__access_ctx_t *c, char atom,
                         enum gc__access_esc e)
{
    const gc__reqlog_t *rec = c->rec;
    const gc__http_request_t *req = rec->req;
    gc__view_t v;
    char buf[512];
    switch (atom) {
    case 'h':
        if (c->error_page || c->env == NULL)
            gc__access_put_latin1(o, rec->peer->remote_addr, strlen(rec->peer->remote_addr), e);
        else
            put_env(o, c, GC_STR(REMOTE_ADDR), NULL, "-", e);
        break;
    case 'l':
        put(o, "-", 1);
        break;
    case 'u': {
        char cred[6144]; /* a whole header value, base64-decoded */
        if (gc__access_basic_user(c, cred, sizeof(cred), &v))
            gc__access_put_utf8(o, v.base, v.len, e);
        else
            put(o, "-", 1);
        break;
    }
    case 't':
        gc__access_put_time(o, &c->now, 0);
        break;
    case 'r': {
        gc__view_t m = gc__http_method(req), t = gc__http_target(req), p = req_protocol(req);
        put_env(o, c, GC_STR(REQUEST_METHOD), &m, NULL, e);
        put(o, " ", 1);
        put_env(o, c, GC_STR(RAW_URI), &t, NULL, e);
        put(o, " ", 1);
        put_env(o, c, GC_STR(SERVER_PROTOCOL), &p, NULL, e);
        break;
    }
    case 's':
        v = gc__access_status_token(c, buf);
        gc__access_put_latin1(o, v.base, v.len, e);
        break;
    case 'm':
        v = gc__http_method(req);
        put_env(o, c, GC_STR(REQUEST_METHOD), c->env ? NULL : &v, "None", e);
        break;
    case 'U':
        put_env(o, c, GC_STR(PATH_INFO), NULL, "None", e);
        break;
    case 'q':
        v = req_query(req);
        put_env(o, c, GC_STR(QUERY_STRING), c->env ? NULL : &v, "None", e);
        break;
    case 'H':
        v = req_protocol(req);
        put_env(o, c, GC_STR(SERVER_PROTOCOL), c->env ? NULL : &v, "None", e);
        break;
    case 'b':
    case 'B':
        put_u64(o, gc__access_body_bytes(c));
        break;
    case 'f':
        put_env(o, c, GC_STR(HTTP_REFERER), NULL, "-", e);
        break;
    case 'a':
        put_env(o, c, GC_STR(HTTP_USER_AGENT), NULL, "-", e);
        break;
    case 'T':
        put_u64(o, dur_s(c));
        break;
    case 'M':
        put_u64(o, (rec->duration_us / 1000u));
        break;
    case 'D':
        put_u64(o, rec->duration_us);
        break;
    case 'L':
        put_fmt(o, "%llu.%06llu", (unsigned long long)dur_s(c),
                (unsigned long long)(rec->duration_us % 1000000u));
        break;
    case 'p':
        put_fmt(o, "<%ld>", gc__access_worker_pid());
        break;
    default:
        put(o, "-", 1);
        break;
    }
}
