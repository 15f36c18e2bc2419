/* access.c: the access log (see access.h); its files share access_internal.h.
 *
 * --access-logformat is Python %-formatting against a dict of atoms, as in Gunicorn.
 * Rather than build that dict for every request, the format is compiled once into a
 * list of segments (literal text, or one atom with its conversion spec), and each
 * request walks the list writing into one buffer. The common spec, a bare `%(x)s`, is
 * done in C (access_atoms.c); any other spec (`%(B)d`, `%(h)-15s`, `%(a)r`) hands the
 * atom's Python value to PyUnicode_Format, so it behaves as Python's would.
 *
 * An atom Gunicorn does not know gives "-"; `{...}` names are matched lower-cased. A
 * format Python could never apply (a conversion without a name, an unknown
 * conversion, a `%` at the end) is refused at start-up instead of failing on every
 * request.
 *
 * --access-log-json ignores the format's text and writes one JSON object a line
 * (access_json.c); the format's {x}i, {x}o and {x}e atoms choose which headers and
 * environ keys it adds. */
#include "wsgi/access_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log/log.h"
#include "python/interp.h"
#include "python/pycompat.h"
#include "python/pystr.h"

static gc__access_format_t fmt; /* the compiled format; replaced on HUP */

/* The one-letter atoms Gunicorn knows. */
static const char known_atoms[] = "hlutrsmUqHbBfaTMDLp";

/* --- compiling the format ------------------------------------------------------- */

static void format_free(gc__access_format_t *f)
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

static void add_seg(gc__access_format_t *f, gc__access_seg_t s)
{
    gc__access_seg_t *grown = realloc(f->segs, (f->n + 1) * sizeof(*grown));
    if (grown == NULL) {
        fprintf(stderr, "gunicorn-c: out of memory\n");
        abort();
    }
    f->segs = grown;
    f->segs[f->n++] = s;
}

static void add_text(gc__access_format_t *f, const char *s, size_t n)
{
    if (n == 0)
        return;
    if (f->n > 0 && f->segs[f->n - 1].kind == SEG_TEXT) {
        gc__access_seg_t *last = &f->segs[f->n - 1];
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
    add_seg(f, (gc__access_seg_t){.kind = SEG_TEXT, .text = dup_n(s, n), .len = n});
}

static void classify(gc__access_seg_t *s, const char *key, size_t n)
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
static int compile(gc__access_format_t *f, const char *src, char *err, size_t errlen)
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
        gc__access_seg_t s = {0};
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
    gc__access_format_t next = {0};
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

/* Writes one segment's value with a plain %s. */
static void put_seg(gc__access_line_t *o, const gc__access_ctx_t *c, const gc__access_seg_t *s,
                    enum gc__access_esc e)
{
    gc__view_t v;
    PyObject *obj;
    switch (s->kind) {
    case SEG_ATOM:
        gc__access_put_atom(o, c, s->atom, e);
        break;
    case SEG_REQ_HDR:
        if (gc__access_find_req_header(c, s->text, s->len, &v))
            gc__access_put_latin1(o, v.base, v.len, e);
        else
            put(o, "-", 1);
        break;
    case SEG_RESP_HDR:
        if (gc__access_find_resp_header(c, s->text, s->len, &v))
            gc__access_put_latin1(o, v.base, v.len, e);
        else
            put(o, "-", 1);
        break;
    case SEG_ENVIRON:
        if ((obj = gc__access_find_environ(c, s->text, s->len)) != NULL)
            gc__access_put_obj(o, obj, e);
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
static PyObject *seg_value(const gc__access_ctx_t *c, const gc__access_seg_t *s)
{
    const gc__reqlog_t *rec = c->rec;
    if (s->kind == SEG_ATOM) {
        switch (s->atom) {
        case 'B':
            return PyLong_FromUnsignedLongLong(gc__access_body_bytes(c));
        case 'T':
            return PyLong_FromUnsignedLongLong(rec->duration_us / 1000000u);
        case 'M':
            return PyLong_FromUnsignedLongLong(rec->duration_us / 1000u);
        case 'D':
            return PyLong_FromUnsignedLongLong(rec->duration_us);
        case 'm':
        case 'U':
        case 'q':
        case 'H': {
            PyObject *k = s->atom == 'm'   ? GC_STR(REQUEST_METHOD)
                          : s->atom == 'U' ? GC_STR(PATH_INFO)
                          : s->atom == 'q' ? GC_STR(QUERY_STRING)
                                           : GC_STR(SERVER_PROTOCOL);
            if (c->env != NULL && gc__access_env_get(c, k) == NULL)
                Py_RETURN_NONE;
            if (c->env == NULL && s->atom == 'U')
                Py_RETURN_NONE;
            break;
        }
        default:
            break;
        }
    } else if (s->kind == SEG_ENVIRON) {
        PyObject *v = gc__access_find_environ(c, s->text, s->len);
        if (v != NULL && !PyUnicode_Check(v))
            return Py_NewRef(v);
    }
    gc__access_line_t o = {.oom = 0};
    gc__buf_init(&o.buf);
    put_seg(&o, c, s, ESC_QUOTE);
    PyObject *str = o.oom ? PyErr_NoMemory()
                          : PyUnicode_DecodeUTF8(o.buf.data ? o.buf.data : "",
                                                 (Py_ssize_t)o.buf.len, "surrogateescape");
    gc__buf_free(&o.buf);
    return str;
}

/* A segment with a spec other than %s: Python formats it. Returns 0, or -1 with an
 * exception set (Gunicorn then writes no line either). */
static int put_spec(gc__access_line_t *o, const gc__access_ctx_t *c, const gc__access_seg_t *s)
{
    PyObject *value = seg_value(c, s), *args = NULL, *spec = NULL, *text = NULL;
    int rc = -1;
    if (value == NULL)
        goto out;
    if ((args = PyTuple_Pack(1, value)) == NULL || (spec = PyUnicode_FromString(s->spec)) == NULL)
        goto out;
    if ((text = PyUnicode_Format(spec, args)) == NULL)
        goto out;
    gc__access_put_obj(o, text, ESC_NONE);
    rc = 0;
out:
    Py_XDECREF(text);
    Py_XDECREF(spec);
    Py_XDECREF(args);
    Py_XDECREF(value);
    return rc;
}

/* --- a request's line ------------------------------------------------------------- */

void gc__access_log_request(const gc__reqlog_t *rec)
{
    gc__access_line_t o = {.oom = 0};
    gc__buf_init(&o.buf);
    /* Room for a usual line at once, so that it is built with one allocation. */
    if (gc__buf_reserve(&o.buf, 1024) < 0)
        o.oom = 1;
    gc__access_ctx_t c = {.rec = rec, .env = rec->environ, .error_page = rec->status == NULL};
    /* Gunicorn's line for its own error page is built from a fresh environ. */
    if (c.error_page)
        c.env = NULL;
    if (c.env != NULL && !PyDict_Check(c.env))
        c.env = NULL;
    clock_gettime(CLOCK_REALTIME, &c.now);

    if (fmt.json) {
        gc__access_format_json(&o, &c, &fmt);
    } else {
        for (size_t i = 0; i < fmt.n; i++) {
            const gc__access_seg_t *s = &fmt.segs[i];
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
        gc__log_access_write(o.buf.data, o.buf.len);
out:
    gc__buf_free(&o.buf);
}
