/* access_json.c: --access-log-json (see access_internal.h).
 *
 * The format's text is ignored: each line is one JSON object with the request's time,
 * client, request line, status, size, referer, user agent, duration and pid, and the
 * format's {x}i, {x}o and {x}e atoms choose which request headers, response headers
 * and environ keys it adds (each name once). An atom that is "-" when absent in the
 * text log is null here, and the status is a number when it is one. Strings are
 * escaped by common/json.h. */
#include "wsgi/access_internal.h"

#include "python/pystr.h"

static void json_key(gc__access_line_t *o, const char *key)
{
    if (o->buf.len > 0 && o->buf.data[o->buf.len - 1] != '{')
        put(o, ",", 1);
    put(o, "\"", 1);
    put_str(o, key);
    put(o, "\":", 2);
}

static void json_atom_str(gc__access_line_t *o, const gc__access_ctx_t *c, const char *key,
                          char atom)
{
    json_key(o, key);
    put(o, "\"", 1);
    gc__access_put_atom(o, c, atom, ESC_JSON);
    put(o, "\"", 1);
}

/* An atom that is "-" when absent in the text log is null in JSON. */
static void json_env_or_null(gc__access_line_t *o, const gc__access_ctx_t *c, const char *key,
                             PyObject *env_key)
{
    json_key(o, key);
    PyObject *v = c->error_page ? NULL : gc__access_env_get(c, env_key);
    if (v == NULL) {
        put(o, "null", 4);
        return;
    }
    put(o, "\"", 1);
    gc__access_put_obj(o, v, ESC_JSON);
    put(o, "\"", 1);
}

/* A {name} already given earlier in the format (JSON keys stay unique). */
static int seen_before(const gc__access_format_t *f, size_t i)
{
    const gc__access_seg_t *s = &f->segs[i];
    for (size_t j = 0; j < i; j++)
        if (f->segs[j].kind == s->kind && f->segs[j].len == s->len &&
            memcmp(f->segs[j].text, s->text, s->len) == 0)
            return 1;
    return 0;
}

static void json_group(gc__access_line_t *o, const gc__access_ctx_t *c,
                       const gc__access_format_t *f, const char *key, enum seg_kind kind)
{
    int any = 0;
    for (size_t i = 0; i < f->n; i++) {
        const gc__access_seg_t *s = &f->segs[i];
        if (s->kind != kind || seen_before(f, i))
            continue;
        if (!any) {
            json_key(o, key);
            put(o, "{", 1);
        } else {
            put(o, ",", 1);
        }
        any = 1;
        put(o, "\"", 1);
        gc__access_put_utf8(o, s->text, s->len, ESC_JSON);
        put(o, "\":", 2);
        gc__view_t v;
        PyObject *obj;
        int found = kind == SEG_REQ_HDR ? gc__access_find_req_header(c, s->text, s->len, &v)
                    : kind == SEG_RESP_HDR
                        ? gc__access_find_resp_header(c, s->text, s->len, &v)
                        : (obj = gc__access_find_environ(c, s->text, s->len)) != NULL;
        if (!found) {
            put(o, "null", 4);
        } else if (kind == SEG_ENVIRON) {
            put(o, "\"", 1);
            gc__access_put_obj(o, obj, ESC_JSON);
            put(o, "\"", 1);
        } else {
            put(o, "\"", 1);
            gc__access_put_latin1(o, v.base, v.len, ESC_JSON);
            put(o, "\"", 1);
        }
    }
    if (any)
        put(o, "}", 1);
}

void gc__access_format_json(gc__access_line_t *o, const gc__access_ctx_t *c,
                            const gc__access_format_t *f)
{
    char buf[6144];
    gc__view_t v;
    put(o, "{", 1);
    json_key(o, "time");
    put(o, "\"", 1);
    gc__access_put_time(o, &c->now, 1);
    put(o, "\"", 1);
    json_atom_str(o, c, "remote_addr", 'h');
    json_key(o, "remote_user");
    if (gc__access_basic_user(c, buf, sizeof(buf), &v)) {
        put(o, "\"", 1);
        gc__access_put_utf8(o, v.base, v.len, ESC_JSON);
        put(o, "\"", 1);
    } else {
        put(o, "null", 4);
    }
    json_atom_str(o, c, "request", 'r');
    json_atom_str(o, c, "method", 'm');
    json_key(o, "path");
    PyObject *path = c->error_page ? NULL : gc__access_env_get(c, GC_STR(PATH_INFO));
    if (path != NULL) {
        put(o, "\"", 1);
        gc__access_put_obj(o, path, ESC_JSON);
        put(o, "\"", 1);
    } else {
        put(o, "null", 4);
    }
    json_atom_str(o, c, "query", 'q');
    json_atom_str(o, c, "protocol", 'H');
    json_key(o, "status");
    v = gc__access_status_token(c, buf);
    int numeric = v.len > 0 && v.len < 10;
    for (size_t i = 0; i < v.len; i++)
        numeric = numeric && v.base[i] >= '0' && v.base[i] <= '9';
    if (numeric) {
        put(o, v.base, v.len);
    } else {
        put(o, "\"", 1);
        gc__access_put_latin1(o, v.base, v.len, ESC_JSON);
        put(o, "\"", 1);
    }
    json_key(o, "bytes");
    gc__access_put_atom(o, c, 'B', ESC_JSON);
    json_env_or_null(o, c, "referer", GC_STR(HTTP_REFERER));
    json_env_or_null(o, c, "user_agent", GC_STR(HTTP_USER_AGENT));
    json_key(o, "duration_us");
    gc__access_put_atom(o, c, 'D', ESC_JSON);
    json_key(o, "pid");
    put_u64(o, (uint64_t)gc__access_worker_pid());
    json_group(o, c, f, "request_headers", SEG_REQ_HDR);
    json_group(o, c, f, "response_headers", SEG_RESP_HDR);
    json_group(o, c, f, "environ", SEG_ENVIRON);
    put(o, "}", 1);
}
