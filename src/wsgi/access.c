/* access.c: the access log (see access.h).
 *
 * --access-logformat is Python %-formatting against a dict of atoms, as in Gunicorn.
 * Rather than build that dict for every request, the format is compiled once into a
 * list of segments (literal text, or one atom with its conversion spec), and each
 * request walks the list writing straight into a stack buffer. The common spec,
 * a bare `%(x)s`, is done in C; any other spec (`%(B)d`, `%(h)-15s`, `%(a)r`) hands
 * the atom's Python value to PyUnicode_Format, so it behaves as Python's would.
 *
 * Gunicorn's rules kept here:
 *   - an atom it does not know gives "-"; `{...}` names are matched lower-cased;
 *   - `"` in a string value is written as `\"` (values that are not strings, such as
 *     %(B)s or an environ value that is a tuple, are written as they are);
 *   - the atoms read from the environ (h u r m U q H f a, {x}e) read it after the
 *     application ran, so middleware that rewrites REMOTE_ADDR is seen;
 *   - header values are latin-1 strings, so a byte >= 0x80 is written as the UTF-8
 *     of that code point (what Python's text file writes);
 *   - a line for an error page we wrote (the application raised before sending its
 *     headers) is built as Gunicorn's handle_error builds it: status 500, 0 bytes,
 *     and a fresh environ, so no referer, user agent, user or PATH_INFO.
 * A format Python could never apply (a conversion without a name, an unknown
 * conversion, a `%` at the end) is refused at start-up instead of failing on every
 * request.
 *
 * --access-log-json ignores the format's text and writes one JSON object a line; the
 * format's {x}i, {x}o and {x}e atoms choose which headers and environ keys it adds. */
#include "wsgi/access.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "http/response.h"
#include "log/log.h"
#include "python/interp.h"
#include "python/pycompat.h"

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
} seg_t;

typedef struct {
    seg_t *segs;
    size_t n;
    int json;
} format_t;

static format_t fmt; /* the compiled format; replaced on HUP */

/* Atoms whose value in Gunicorn is an int (matters for %d and %r specs). */
static const char known_atoms[] = "hlutrsmUqHbBfaTMDLp";

/* --- compiling the format ------------------------------------------------------- */

static void format_free(format_t *f)
{
    for (size_t i = 0; i < f->n; i++) {
        free(f->segs[i].text);
        free(f->segs[i].spec);
    }
    free(f->segs);
    f->segs = NULL;
    f->n = 0;
}

static char *dup_n(const char *s, size_t n)
{
    char *p = malloc(n + 1);
    if (p == NULL) {
        fprintf(stderr, "gunicorn-c: out of memory\n");
        abort();
    }
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

static void add_seg(format_t *f, seg_t s)
{
    seg_t *grown = realloc(f->segs, (f->n + 1) * sizeof(*grown));
    if (grown == NULL) {
        fprintf(stderr, "gunicorn-c: out of memory\n");
        abort();
    }
    f->segs = grown;
    f->segs[f->n++] = s;
}

static void add_text(format_t *f, const char *s, size_t n)
{
    if (n == 0)
        return;
    if (f->n > 0 && f->segs[f->n - 1].kind == SEG_TEXT) {
        seg_t *last = &f->segs[f->n - 1];
        char *joined = realloc(last->text, last->len + n + 1);
        if (joined == NULL) {
            fprintf(stderr, "gunicorn-c: out of memory\n");
            abort();
        }
        memcpy(joined + last->len, s, n);
        last->len += n;
        joined[last->len] = '\0';
        last->text = joined;
        return;
    }
    add_seg(f, (seg_t){.kind = SEG_TEXT, .text = dup_n(s, n), .len = n});
}

static void classify(seg_t *s, const char *key, size_t n)
{
    if (n == 1 && strchr(known_atoms, key[0]) != NULL) {
        s->kind = SEG_ATOM;
        s->atom = key[0];
        return;
    }
    /* "{name}i": Gunicorn lower-cases the whole key before the lookup. */
    if (n >= 3 && key[0] == '{' && key[n - 2] == '}' && strchr("ioe", key[n - 1] | 0x20)) {
        char kind = (char)(key[n - 1] | 0x20);
        s->kind = kind == 'i' ? SEG_REQ_HDR : kind == 'o' ? SEG_RESP_HDR : SEG_ENVIRON;
        s->text = dup_n(key + 1, n - 3);
        s->len = n - 3;
        for (size_t i = 0; i < s->len; i++)
            if (s->text[i] >= 'A' && s->text[i] <= 'Z')
                s->text[i] = (char)(s->text[i] + 32);
        return;
    }
    s->kind = SEG_UNKNOWN;
}

/* Parses `src` into `f`. Returns 0, or -1 with a message in err. */
static int compile(format_t *f, const char *src, char *err, size_t errlen)
{
    const char *p = src, *text = src;
    while ((p = strchr(p, '%')) != NULL) {
        add_text(f, text, (size_t)(p - text));
        const char *start = p++;
        if (*p == '%') {
            add_text(f, "%", 1);
            text = ++p;
            continue;
        }
        if (*p != '(') {
            snprintf(err, errlen, "'%%%.1s' at offset %zu has no name: write %%(h)s and the like",
                     p, (size_t)(start - src));
            return -1;
        }
        /* Python's rule: the name runs to the matching parenthesis. */
        const char *key = ++p;
        int depth = 1;
        for (; *p && depth > 0; p++)
            depth += *p == '(' ? 1 : *p == ')' ? -1 : 0;
        if (depth > 0) {
            snprintf(err, errlen, "unclosed '%%(' at offset %zu", (size_t)(start - src));
            return -1;
        }
        size_t keylen = (size_t)(p - 1 - key);
        const char *spec = p;
        while (*p && strchr("#0- +", *p))
            p++;
        while (*p >= '0' && *p <= '9')
            p++;
        if (*p == '.') {
            p++;
            while (*p >= '0' && *p <= '9')
                p++;
        }
        while (*p && strchr("hlL", *p))
            p++;
        if (*p == '\0' || strchr("diouxXeEfFgGcrsa%", *p) == NULL) {
            snprintf(err, errlen, "unsupported conversion after %%(%.*s) at offset %zu",
                     (int)keylen, key, (size_t)(start - src));
            return -1;
        }
        p++;
        if (p[-1] == '%') { /* "%(x)%" is a "%" to Python */
            add_text(f, "%", 1);
            text = p;
            continue;
        }
        seg_t s = {0};
        classify(&s, key, keylen);
        if (!(p - spec == 1 && *spec == 's')) {
            char *sp = malloc((size_t)(p - spec) + 2);
            if (sp == NULL) {
                fprintf(stderr, "gunicorn-c: out of memory\n");
                abort();
            }
            sp[0] = '%';
            memcpy(sp + 1, spec, (size_t)(p - spec));
            sp[p - spec + 1] = '\0';
            s.spec = sp;
        }
        add_seg(f, s);
        text = p;
    }
    add_text(f, text, strlen(text));
    return 0;
}

int gc__access_configure(const gc__config_t *cfg)
{
    const char *src = gc__cfg_str(cfg, GC_S_access_log_format);
    format_t next = {0};
    char err[256];
    if (compile(&next, src ? src : "", err, sizeof(err)) < 0) {
        format_free(&next);
        gc__error("Invalid access log format '%s': %s", src, err);
        return -1;
    }
    next.json = gc__cfg_int(cfg, GC_S_access_log_json) != 0;
    format_free(&fmt);
    fmt = next;
    return 0;
}

int gc__access_log_enabled(void)
{
    return gc__log_access_enabled();
}

/* --- the output buffer ------------------------------------------------------------ */

/* A line is built on the stack; only a huge one (long headers in many atoms) moves to
 * the heap. After a failed allocation the line is dropped. */
typedef struct {
    char *data;
    size_t len, cap;
    int heap, oom;
} out_t;

static int out_room(out_t *o, size_t n)
{
    if (o->len + n <= o->cap)
        return 1;
    if (o->oom)
        return 0;
    size_t cap = o->cap * 2;
    while (cap < o->len + n)
        cap *= 2;
    char *p = o->heap ? realloc(o->data, cap) : malloc(cap);
    if (p == NULL) {
        o->oom = 1;
        return 0;
    }
    if (!o->heap)
        memcpy(p, o->data, o->len);
    o->data = p;
    o->cap = cap;
    o->heap = 1;
    return 1;
}

static void put(out_t *o, const char *s, size_t n)
{
    if (out_room(o, n)) {
        memcpy(o->data + o->len, s, n);
        o->len += n;
    }
}

static void puts_(out_t *o, const char *s)
{
    put(o, s, strlen(s));
}

static void put_fmt(out_t *o, const char *f, ...) __attribute__((format(printf, 2, 3)));
static void put_fmt(out_t *o, const char *f, ...)
{
    char tmp[64];
    va_list ap;
    va_start(ap, f);
    int n = vsnprintf(tmp, sizeof(tmp), f, ap);
    va_end(ap);
    if (n > 0)
        put(o, tmp, (size_t)n < sizeof(tmp) ? (size_t)n : sizeof(tmp) - 1);
}

static void put_u64(out_t *o, uint64_t v)
{
    char tmp[24], *p = tmp + sizeof(tmp);
    do {
        *--p = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    put(o, p, (size_t)(tmp + sizeof(tmp) - p));
}

/* How a value's bytes are written: as the text log does (`"` becomes `\"` when
 * `quote` is set), or as the inside of a JSON string. */
enum esc { ESC_NONE, ESC_QUOTE, ESC_JSON };

static void put_byte_esc(out_t *o, unsigned char c, enum esc e)
{
    if (e == ESC_QUOTE && c == '"') {
        put(o, "\\\"", 2);
    } else if (e == ESC_JSON && (c < 0x20 || c == '"' || c == '\\' || c == 0x7f)) {
        switch (c) {
        case '"':
            put(o, "\\\"", 2);
            break;
        case '\\':
            put(o, "\\\\", 2);
            break;
        case '\n':
            put(o, "\\n", 2);
            break;
        case '\r':
            put(o, "\\r", 2);
            break;
        case '\t':
            put(o, "\\t", 2);
            break;
        default:
            put_fmt(o, "\\u%04x", c);
            break;
        }
    } else {
        put(o, (const char *)&c, 1);
    }
}

/* Bytes that are latin-1 code points (header values, environ strs): a byte >= 0x80
 * becomes its two-byte UTF-8 form. */
static void put_latin1(out_t *o, const char *s, size_t n, enum esc e)
{
    if (!out_room(o, n))
        return;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x80) {
            put_byte_esc(o, c, e);
        } else {
            char two[2] = {(char)(0xc0 | (c >> 6)), (char)(0x80 | (c & 0x3f))};
            put(o, two, 2);
        }
    }
}

/* Bytes already in UTF-8. */
static void put_utf8(out_t *o, const char *s, size_t n, enum esc e)
{
    if (e == ESC_NONE) {
        put(o, s, n);
        return;
    }
    for (size_t i = 0; i < n; i++)
        put_byte_esc(o, (unsigned char)s[i], e);
}

/* A Python object as %s writes it: a str escaped, anything else through str() and
 * not escaped (Gunicorn escapes only the values that are strings). */
static void put_obj(out_t *o, PyObject *v, enum esc e)
{
    PyObject *s = NULL;
    if (PyUnicode_Check(v)) {
        if (PyUnicode_KIND(v) == PyUnicode_1BYTE_KIND) {
            /* Every environ and header value we make: no Python call, no copy. */
            put_latin1(o, (const char *)PyUnicode_1BYTE_DATA(v), (size_t)PyUnicode_GET_LENGTH(v),
                       e);
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
        put_utf8(o, u, (size_t)n, e);
    } else {
        /* Lone surrogates: written as escapes rather than losing the line. */
        PyErr_Clear();
        PyObject *b = PyUnicode_AsEncodedString(v, "utf-8", "backslashreplace");
        if (b != NULL)
            put_utf8(o, PyBytes_AS_STRING(b), (size_t)PyBytes_GET_SIZE(b), e);
        else
            PyErr_Clear();
        Py_XDECREF(b);
    }
    Py_XDECREF(s);
}

/* --- the atoms -------------------------------------------------------------------- */

/* One request's sources. */
typedef struct {
    const gc__reqlog_t *rec;
    PyObject *env;  /* borrowed; NULL when the line follows Gunicorn's fresh environ */
    int error_page; /* the line for our own 500 page */
    struct timespec now;
} ctx_t;

enum env_key {
    K_REMOTE_ADDR,
    K_HTTP_AUTHORIZATION,
    K_REQUEST_METHOD,
    K_RAW_URI,
    K_SERVER_PROTOCOL,
    K_PATH_INFO,
    K_QUERY_STRING,
    K_HTTP_REFERER,
    K_HTTP_USER_AGENT,
    K__COUNT
};
static const char *const env_key_names[K__COUNT] = {
    "REMOTE_ADDR", "HTTP_AUTHORIZATION", "REQUEST_METHOD", "RAW_URI",         "SERVER_PROTOCOL",
    "PATH_INFO",   "QUERY_STRING",       "HTTP_REFERER",   "HTTP_USER_AGENT",
};
static PyObject *env_keys[K__COUNT]; /* owned, interned: made on first use (GIL held) */

/* environ.get(key), borrowed, or NULL. */
static PyObject *env_get(const ctx_t *c, enum env_key k)
{
    if (c->env == NULL)
        return NULL;
    if (env_keys[k] == NULL &&
        (env_keys[k] = PyUnicode_InternFromString(env_key_names[k])) == NULL) {
        PyErr_Clear();
        return NULL;
    }
    PyObject *v = PyDict_GetItemWithError(c->env, env_keys[k]);
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
static void put_env(out_t *o, const ctx_t *c, enum env_key k, const gc__view_t *fallback,
                    const char *missing, enum esc e)
{
    PyObject *v = env_get(c, k);
    if (v != NULL)
        put_obj(o, v, e);
    else if (fallback != NULL)
        put_latin1(o, fallback->base, fallback->len, e);
    else
        puts_(o, missing);
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

/* Checks that s is valid UTF-8 (Gunicorn decodes the credentials as UTF-8). */
static int utf8_valid(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned char ch = s[i];
        size_t more;
        unsigned cp, min;
        if (ch < 0x80) {
            i++;
            continue;
        } else if ((ch & 0xe0) == 0xc0) {
            more = 1, cp = ch & 0x1f, min = 0x80;
        } else if ((ch & 0xf0) == 0xe0) {
            more = 2, cp = ch & 0x0f, min = 0x800;
        } else if ((ch & 0xf8) == 0xf0) {
            more = 3, cp = ch & 0x07, min = 0x10000;
        } else {
            return 0;
        }
        if (i + more >= n)
            return 0;
        for (size_t j = 1; j <= more; j++) {
            if ((s[i + j] & 0xc0) != 0x80)
                return 0;
            cp = (cp << 6) | (s[i + j] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return 0;
        i += more + 1;
    }
    return 1;
}

/* The user of "Authorization: Basic <base64 of user:password>", as Gunicorn finds
 * it; the user's UTF-8 bytes go to *user. Returns 1 when there is one. */
static int basic_user(const ctx_t *c, char *buf, size_t cap, gc__view_t *user)
{
    PyObject *v = c->error_page ? NULL : env_get(c, K_HTTP_AUTHORIZATION);
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
    if (len < 0 || !utf8_valid((const unsigned char *)buf, (size_t)len))
        return 0;
    const char *colon = memchr(buf, ':', (size_t)len);
    if (colon == NULL)
        return 0;
    *user = gc__view(buf, (size_t)(colon - buf));
    return 1;
}

/* The status's first token, as Gunicorn's status.split(None, 1)[0]. */
static gc__view_t status_token(const ctx_t *c, char *buf)
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
static void put_time(out_t *o, const struct timespec *now, int iso)
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
    puts_(o, iso_zone);
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
static int find_req_header(const ctx_t *c, const char *name, size_t len, gc__view_t *value)
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
static int find_resp_header(const ctx_t *c, const char *name, size_t len, gc__view_t *value)
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
static PyObject *find_environ(const ctx_t *c, const char *name, size_t len)
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
static uint64_t body_bytes(const ctx_t *c)
{
    return c->error_page ? 0 : c->rec->body_bytes;
}

/* The worker's pid, read once (only workers write access lines, and they do not
 * fork). */
static long worker_pid(void)
{
    static _Thread_local long pid;
    if (pid == 0)
        pid = (long)getpid();
    return pid;
}

static uint64_t dur_s(const ctx_t *c)
{
    return c->rec->duration_us / 1000000u;
}

/* Writes one atom with a plain %s, escaped as `e` says. */
static void put_atom(out_t *o, const ctx_t *c, char atom, enum esc e)
{
    const gc__reqlog_t *rec = c->rec;
    const gc__http_request_t *req = rec->req;
    gc__view_t v;
    char buf[512];
    switch (atom) {
    case 'h':
        if (c->error_page || c->env == NULL)
            put_latin1(o, rec->peer->remote_addr, strlen(rec->peer->remote_addr), e);
        else
            put_env(o, c, K_REMOTE_ADDR, NULL, "-", e);
        break;
    case 'l':
        put(o, "-", 1);
        break;
    case 'u': {
        char cred[6144]; /* a whole header value, base64-decoded */
        if (basic_user(c, cred, sizeof(cred), &v))
            put_utf8(o, v.base, v.len, e);
        else
            put(o, "-", 1);
        break;
    }
    case 't':
        put_time(o, &c->now, 0);
        break;
    case 'r': {
        gc__view_t m = gc__http_method(req), t = gc__http_target(req), p = req_protocol(req);
        put_env(o, c, K_REQUEST_METHOD, &m, NULL, e);
        put(o, " ", 1);
        put_env(o, c, K_RAW_URI, &t, NULL, e);
        put(o, " ", 1);
        put_env(o, c, K_SERVER_PROTOCOL, &p, NULL, e);
        break;
    }
    case 's':
        v = status_token(c, buf);
        put_latin1(o, v.base, v.len, e);
        break;
    case 'm':
        v = gc__http_method(req);
        put_env(o, c, K_REQUEST_METHOD, c->env ? NULL : &v, "None", e);
        break;
    case 'U':
        put_env(o, c, K_PATH_INFO, NULL, "None", e);
        break;
    case 'q':
        v = req_query(req);
        put_env(o, c, K_QUERY_STRING, c->env ? NULL : &v, "None", e);
        break;
    case 'H':
        v = req_protocol(req);
        put_env(o, c, K_SERVER_PROTOCOL, c->env ? NULL : &v, "None", e);
        break;
    case 'b':
    case 'B':
        put_u64(o, body_bytes(c));
        break;
    case 'f':
        put_env(o, c, K_HTTP_REFERER, NULL, "-", e);
        break;
    case 'a':
        put_env(o, c, K_HTTP_USER_AGENT, NULL, "-", e);
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
        put_fmt(o, "<%ld>", worker_pid());
        break;
    default:
        put(o, "-", 1);
        break;
    }
}

/* Writes one segment's value with a plain %s. */
static void put_seg(out_t *o, const ctx_t *c, const seg_t *s, enum esc e)
{
    gc__view_t v;
    PyObject *obj;
    switch (s->kind) {
    case SEG_ATOM:
        put_atom(o, c, s->atom, e);
        break;
    case SEG_REQ_HDR:
        if (find_req_header(c, s->text, s->len, &v))
            put_latin1(o, v.base, v.len, e);
        else
            put(o, "-", 1);
        break;
    case SEG_RESP_HDR:
        if (find_resp_header(c, s->text, s->len, &v))
            put_latin1(o, v.base, v.len, e);
        else
            put(o, "-", 1);
        break;
    case SEG_ENVIRON:
        if ((obj = find_environ(c, s->text, s->len)) != NULL)
            put_obj(o, obj, e);
        else
            put(o, "-", 1);
        break;
    default:
        put(o, "-", 1);
        break;
    }
}

/* The atom's value as the Python object Gunicorn's dict holds (after its `"`
 * escaping), for a spec other than %s. Returns owned, or NULL with an exception. */
static PyObject *seg_value(const ctx_t *c, const seg_t *s)
{
    const gc__reqlog_t *rec = c->rec;
    if (s->kind == SEG_ATOM) {
        switch (s->atom) {
        case 'B':
            return PyLong_FromUnsignedLongLong(body_bytes(c));
        case 'T':
            return PyLong_FromUnsignedLongLong(dur_s(c));
        case 'M':
            return PyLong_FromUnsignedLongLong(rec->duration_us / 1000u);
        case 'D':
            return PyLong_FromUnsignedLongLong(rec->duration_us);
        case 'm':
        case 'U':
        case 'q':
        case 'H': {
            enum env_key k = s->atom == 'm'   ? K_REQUEST_METHOD
                             : s->atom == 'U' ? K_PATH_INFO
                             : s->atom == 'q' ? K_QUERY_STRING
                                              : K_SERVER_PROTOCOL;
            if (c->env != NULL && env_get(c, k) == NULL)
                Py_RETURN_NONE;
            if (c->env == NULL && s->atom == 'U')
                Py_RETURN_NONE;
            break;
        }
        default:
            break;
        }
    } else if (s->kind == SEG_ENVIRON) {
        PyObject *v = find_environ(c, s->text, s->len);
        if (v != NULL && !PyUnicode_Check(v))
            return Py_NewRef(v);
    }
    char stack[1024];
    out_t o = {stack, 0, sizeof(stack), 0, 0};
    put_seg(&o, c, s, ESC_QUOTE);
    PyObject *str = o.oom ? PyErr_NoMemory()
                          : PyUnicode_DecodeUTF8(o.data, (Py_ssize_t)o.len, "surrogateescape");
    if (o.heap)
        free(o.data);
    return str;
}

/* A segment with a spec other than %s: Python formats it. Returns 0, or -1 with an
 * exception set (Gunicorn then writes no line either). */
static int put_spec(out_t *o, const ctx_t *c, const seg_t *s)
{
    PyObject *value = seg_value(c, s), *args = NULL, *spec = NULL, *text = NULL;
    int rc = -1;
    if (value == NULL)
        goto out;
    if ((args = PyTuple_Pack(1, value)) == NULL || (spec = PyUnicode_FromString(s->spec)) == NULL)
        goto out;
    if ((text = PyUnicode_Format(spec, args)) == NULL)
        goto out;
    put_obj(o, text, ESC_NONE);
    rc = 0;
out:
    Py_XDECREF(text);
    Py_XDECREF(spec);
    Py_XDECREF(args);
    Py_XDECREF(value);
    return rc;
}

/* --- JSON ------------------------------------------------------------------------- */

static void json_key(out_t *o, const char *key)
{
    if (o->len > 0 && o->data[o->len - 1] != '{')
        put(o, ",", 1);
    put(o, "\"", 1);
    puts_(o, key);
    put(o, "\":", 2);
}

static void json_atom_str(out_t *o, const ctx_t *c, const char *key, char atom)
{
    json_key(o, key);
    put(o, "\"", 1);
    put_atom(o, c, atom, ESC_JSON);
    put(o, "\"", 1);
}

/* An atom that is "-" when absent in the text log is null in JSON. */
static void json_env_or_null(out_t *o, const ctx_t *c, const char *key, enum env_key k)
{
    json_key(o, key);
    PyObject *v = c->error_page ? NULL : env_get(c, k);
    if (v == NULL) {
        put(o, "null", 4);
        return;
    }
    put(o, "\"", 1);
    put_obj(o, v, ESC_JSON);
    put(o, "\"", 1);
}

/* A {name} already given earlier in the format (JSON keys stay unique). */
static int seen_before(size_t i)
{
    const seg_t *s = &fmt.segs[i];
    for (size_t j = 0; j < i; j++)
        if (fmt.segs[j].kind == s->kind && fmt.segs[j].len == s->len &&
            memcmp(fmt.segs[j].text, s->text, s->len) == 0)
            return 1;
    return 0;
}

static void json_group(out_t *o, const ctx_t *c, const char *key, enum seg_kind kind)
{
    int any = 0;
    for (size_t i = 0; i < fmt.n; i++) {
        const seg_t *s = &fmt.segs[i];
        if (s->kind != kind || seen_before(i))
            continue;
        if (!any) {
            json_key(o, key);
            put(o, "{", 1);
        } else {
            put(o, ",", 1);
        }
        any = 1;
        put(o, "\"", 1);
        put_utf8(o, s->text, s->len, ESC_JSON);
        put(o, "\":", 2);
        gc__view_t v;
        PyObject *obj;
        int found = kind == SEG_REQ_HDR    ? find_req_header(c, s->text, s->len, &v)
                    : kind == SEG_RESP_HDR ? find_resp_header(c, s->text, s->len, &v)
                                           : (obj = find_environ(c, s->text, s->len)) != NULL;
        if (!found) {
            put(o, "null", 4);
        } else if (kind == SEG_ENVIRON) {
            put(o, "\"", 1);
            put_obj(o, obj, ESC_JSON);
            put(o, "\"", 1);
        } else {
            put(o, "\"", 1);
            put_latin1(o, v.base, v.len, ESC_JSON);
            put(o, "\"", 1);
        }
    }
    if (any)
        put(o, "}", 1);
}

static void format_json(out_t *o, const ctx_t *c)
{
    char buf[6144];
    gc__view_t v;
    put(o, "{", 1);
    json_key(o, "time");
    put(o, "\"", 1);
    put_time(o, &c->now, 1);
    put(o, "\"", 1);
    json_atom_str(o, c, "remote_addr", 'h');
    json_key(o, "remote_user");
    if (basic_user(c, buf, sizeof(buf), &v)) {
        put(o, "\"", 1);
        put_utf8(o, v.base, v.len, ESC_JSON);
        put(o, "\"", 1);
    } else {
        put(o, "null", 4);
    }
    json_atom_str(o, c, "request", 'r');
    json_atom_str(o, c, "method", 'm');
    json_key(o, "path");
    PyObject *path = c->error_page ? NULL : env_get(c, K_PATH_INFO);
    if (path != NULL) {
        put(o, "\"", 1);
        put_obj(o, path, ESC_JSON);
        put(o, "\"", 1);
    } else {
        put(o, "null", 4);
    }
    json_atom_str(o, c, "query", 'q');
    json_atom_str(o, c, "protocol", 'H');
    json_key(o, "status");
    v = status_token(c, buf);
    int numeric = v.len > 0 && v.len < 10;
    for (size_t i = 0; i < v.len; i++)
        numeric = numeric && v.base[i] >= '0' && v.base[i] <= '9';
    if (numeric) {
        put(o, v.base, v.len);
    } else {
        put(o, "\"", 1);
        put_latin1(o, v.base, v.len, ESC_JSON);
        put(o, "\"", 1);
    }
    json_key(o, "bytes");
    put_atom(o, c, 'B', ESC_JSON);
    json_env_or_null(o, c, "referer", K_HTTP_REFERER);
    json_env_or_null(o, c, "user_agent", K_HTTP_USER_AGENT);
    json_key(o, "duration_us");
    put_atom(o, c, 'D', ESC_JSON);
    json_key(o, "pid");
    put_u64(o, (uint64_t)worker_pid());
    json_group(o, c, "request_headers", SEG_REQ_HDR);
    json_group(o, c, "response_headers", SEG_RESP_HDR);
    json_group(o, c, "environ", SEG_ENVIRON);
    put(o, "}", 1);
}

/* --- a request's line ------------------------------------------------------------- */

void gc__access_log_request(const gc__reqlog_t *rec)
{
    char stack[2048];
    out_t o = {stack, 0, sizeof(stack), 0, 0};
    ctx_t c = {.rec = rec, .env = rec->environ, .error_page = rec->status == NULL};
    /* Gunicorn's line for its own error page is built from a fresh environ. */
    if (c.error_page)
        c.env = NULL;
    if (c.env != NULL && !PyDict_Check(c.env))
        c.env = NULL;
    clock_gettime(CLOCK_REALTIME, &c.now);

    if (fmt.json) {
        format_json(&o, &c);
    } else {
        for (size_t i = 0; i < fmt.n; i++) {
            const seg_t *s = &fmt.segs[i];
            if (s->kind == SEG_TEXT)
                put(&o, s->text, s->len);
            else if (s->spec == NULL)
                put_seg(&o, &c, s, ESC_QUOTE);
            else if (put_spec(&o, &c, s) < 0) {
                gc__py_log_exception(GC_LOG_ERROR, "Cannot format the access log line");
                PyErr_Clear();
                goto out;
            }
        }
    }
    if (!o.oom)
        gc__log_access_write(o.data, o.len);
out:
    if (o.heap)
        free(o.data);
}
