/* environ.c: building the PEP 3333 environ for one request.
 *
 * The constant keys (wsgi.version, wsgi.errors, SERVER_SOFTWARE ...) live in a base
 * dict made once per worker and copied per request; the per-request keys are set with
 * interned key objects. Header names become HTTP_* keys. Which headers arrive here at
 * all (names holding "_"), the scheme a trusted front end asked for, and the SCRIPT_NAME
 * in force were settled by the parser (http/forward.h), which also refused a path
 * outside SCRIPT_NAME; this file only turns them into Python values. */
#include "wsgi/environ.h"

#include "http/forward.h"
#include "log/log.h"
#include "python/pystr.h"

static int set_str(PyObject *env, PyObject *key, const char *s, Py_ssize_t len)
{
    PyObject *v = PyUnicode_DecodeLatin1(s, len, NULL);
    if (v == NULL)
        return -1;
    int rc = PyDict_SetItem(env, key, v);
    Py_DECREF(v);
    return rc;
}

static int set_long(PyObject *env, PyObject *key, long value)
{
    PyObject *v = PyLong_FromLong(value);
    if (v == NULL)
        return -1;
    int rc = PyDict_SetItem(env, key, v);
    Py_DECREF(v);
    return rc;
}

/* A C string under `key`; nothing when it is NULL. */
static int set_cstr(PyObject *env, PyObject *key, const char *s)
{
    return s == NULL ? 0 : set_str(env, key, s, (Py_ssize_t)strlen(s));
}

/* What a TLS connection adds (docs/tls.md): the protocol and cipher, and the client's
 * certificate under the names mod_ssl and nginx users know. */
static int set_tls(PyObject *env, const gc__wsgi_peer_t *peer)
{
    const gc__tls_peer_t *cp = peer->tls_peer;
    if (set_cstr(env, GC_STR(SSL_PROTOCOL), peer->tls->protocol) < 0 ||
        set_cstr(env, GC_STR(SSL_CIPHER), peer->tls->cipher) < 0 || cp == NULL)
        return cp == NULL ? 0 : -1;
    if (set_cstr(env, GC_STR(SSL_CLIENT_VERIFY), cp->verify) < 0 ||
        set_cstr(env, GC_STR(SSL_CLIENT_S_DN), cp->subject) < 0 ||
        set_cstr(env, GC_STR(SSL_CLIENT_I_DN), cp->issuer) < 0 ||
        set_cstr(env, GC_STR(SSL_CLIENT_M_SERIAL), cp->serial) < 0 ||
        set_cstr(env, GC_STR(SSL_CLIENT_CERT), cp->pem) < 0)
        return -1;
    return 0;
}

/* SERVER_PROTOCOL: interned for HTTP/1.0 and 1.1; an unconventional version (allowed
 * by --permit-unconventional-http-version) as sent. */
static int set_protocol(PyObject *env, const gc__http_request_t *req)
{
    if (req->version[0] != '\0')
        return set_str(env, GC_STR(SERVER_PROTOCOL), req->version,
                       (Py_ssize_t)strlen(req->version));
    return PyDict_SetItem(env, GC_STR(SERVER_PROTOCOL),
                          req->minor >= 1 ? GC_STR(HTTP_1_1) : GC_STR(HTTP_1_0));
}

/* Sets HTTP_* (and CONTENT_TYPE / CONTENT_LENGTH) keys from the header fields. */
static int set_headers(PyObject *env, const gc__http_request_t *req, const char **host,
                       size_t *host_len)
{
    char key[300];
    for (size_t i = 0; i < req->nfields; i++) {
        gc__view_t name = gc__http_field_name(req, i);
        gc__view_t value = gc__http_field_value(req, i);
        if (name.len == 0 || name.len > sizeof(key) - 6)
            continue;
        PyObject *k;
        if (gc__view_ieq(name, "content-type")) {
            k = GC_STR(CONTENT_TYPE);
            Py_INCREF(k);
        } else if (gc__view_ieq(name, "content-length")) {
            k = GC_STR(CONTENT_LENGTH);
            Py_INCREF(k);
        } else {
            memcpy(key, "HTTP_", 5);
            for (size_t j = 0; j < name.len; j++) {
                char c = name.base[j];
                key[5 + j] = c == '-' ? '_' : (c >= 'a' && c <= 'z') ? (char)(c - 32) : c;
            }
            if (name.len == 4 && memcmp(key + 5, "HOST", 4) == 0) {
                *host = value.base;
                *host_len = value.len;
            }
            k = PyUnicode_FromStringAndSize(key, (Py_ssize_t)(5 + name.len));
            if (k == NULL)
                return -1;
        }
        PyObject *v = PyUnicode_DecodeLatin1(value.base, (Py_ssize_t)value.len, NULL);
        if (v == NULL) {
            Py_DECREF(k);
            return -1;
        }
        /* A repeated header joins its values with "," as Gunicorn does. */
        PyObject *old = PyDict_GetItemWithError(env, k);
        if (old != NULL) {
            PyObject *joined = PyUnicode_FromFormat("%U,%U", old, v);
            Py_DECREF(v);
            v = joined;
        }
        int rc = v == NULL || PyErr_Occurred() ? -1 : PyDict_SetItem(env, k, v);
        Py_DECREF(k);
        Py_XDECREF(v);
        if (rc < 0)
            return -1;
    }
    return 0;
}

PyObject *gc__wsgi_environ(gc__wsgi_state_t *st, const gc__http_request_t *req,
                           const gc__wsgi_peer_t *peer, PyObject *input)
{
    PyObject *env = PyDict_Copy(st->environ_base);
    if (env == NULL)
        return NULL;
    gc__view_t method = gc__http_method(req), target = gc__http_target(req);
    gc__view_t path, query;
    gc__http_split_target(target, &path, &query);

    if (set_str(env, GC_STR(REQUEST_METHOD), method.base, (Py_ssize_t)method.len) < 0 ||
        set_str(env, GC_STR(RAW_URI), target.base, (Py_ssize_t)target.len) < 0 ||
        set_str(env, GC_STR(QUERY_STRING), query.base, (Py_ssize_t)query.len) < 0 ||
        set_protocol(env, req) < 0 || PyDict_SetItem(env, GC_STR(wsgi_input), input) < 0)
        goto fail;

    /* SCRIPT_NAME comes from a kept SCRIPT_NAME header or the environment; the raw
     * path starts with it (the parser refused it otherwise), and PATH_INFO is the rest,
     * percent-decoded and seen as latin-1 (PEP 3333's "bytes in a str"). */
    gc__view_t sn = gc__view(NULL, 0);
    if (req->script_name >= 0) {
        sn = gc__http_field_value(req, (size_t)req->script_name);
        if (set_str(env, GC_STR(SCRIPT_NAME), sn.base, (Py_ssize_t)sn.len) < 0)
            goto fail;
    } else {
        sn = gc__view((const char *)PyUnicode_1BYTE_DATA(st->script_name),
                      (size_t)PyUnicode_GET_LENGTH(st->script_name));
    }
    if (sn.len > 0 && sn.len <= path.len && memcmp(path.base, sn.base, sn.len) == 0)
        path = gc__view(path.base + sn.len, path.len - sn.len);
    if (gc__http_percent_decode(&st->scratch, path) < 0) {
        PyErr_NoMemory();
        goto fail;
    }
    if (set_str(env, GC_STR(PATH_INFO), st->scratch.data, (Py_ssize_t)st->scratch.len) < 0)
        goto fail;
    if (req->url_scheme != GC_SCHEME_UNSET &&
        PyDict_SetItem(env, GC_STR(wsgi_url_scheme),
                       req->url_scheme == GC_SCHEME_HTTPS ? GC_STR(https) : GC_STR(http)) < 0)
        goto fail;

    const char *host = NULL;
    size_t host_len = 0;
    if (set_headers(env, req, &host, &host_len) < 0)
        goto fail;

    if (set_str(env, GC_STR(REMOTE_ADDR), peer->remote_addr,
                (Py_ssize_t)strlen(peer->remote_addr)) < 0)
        goto fail;
    if (peer->remote_port && set_str(env, GC_STR(REMOTE_PORT), peer->remote_port,
                                     (Py_ssize_t)strlen(peer->remote_port)) < 0)
        goto fail;
    if (peer->proxy_protocol && set_str(env, GC_STR(PROXY_PROTOCOL), peer->proxy_protocol,
                                        (Py_ssize_t)strlen(peer->proxy_protocol)) < 0)
        goto fail;
    if (peer->proxy_addr && (set_str(env, GC_STR(PROXY_ADDR), peer->proxy_addr,
                                     (Py_ssize_t)strlen(peer->proxy_addr)) < 0 ||
                             set_str(env, GC_STR(PROXY_PORT), peer->proxy_port,
                                     (Py_ssize_t)strlen(peer->proxy_port)) < 0))
        goto fail;

    if (peer->tls != NULL && set_tls(env, peer) < 0)
        goto fail;
    if (peer->http2 && (set_long(env, GC_STR(h2_priority_weight), peer->h2_weight) < 0 ||
                        set_long(env, GC_STR(h2_priority_depends_on), peer->h2_depends_on) < 0))
        goto fail;

    if (peer->is_unix && host != NULL) {
        /* A unix socket has no address of its own: take SERVER_NAME from Host. */
        const char *colon = host_len && host[0] != '[' ? memchr(host, ':', host_len) : NULL;
        if (host_len && host[0] == '[') {
            const char *rb = memchr(host, ']', host_len);
            colon = rb && rb + 1 < host + host_len && rb[1] == ':' ? rb + 1 : NULL;
        }
        size_t nlen = colon ? (size_t)(colon - host) : host_len;
        /* Without a port in Host, the scheme's (a front end may have said https). */
        int https =
            req->url_scheme == GC_SCHEME_HTTPS || (req->url_scheme == GC_SCHEME_UNSET && st->https);
        const char *port = colon ? colon + 1 : https ? "443" : "80";
        size_t port_len = colon ? host_len - nlen - 1 : strlen(port);
        if (set_str(env, GC_STR(SERVER_NAME), host, (Py_ssize_t)nlen) < 0 ||
            set_str(env, GC_STR(SERVER_PORT), port, (Py_ssize_t)port_len) < 0)
            goto fail;
    } else {
        if (set_str(env, GC_STR(SERVER_NAME), peer->server_name,
                    (Py_ssize_t)strlen(peer->server_name)) < 0 ||
            set_str(env, GC_STR(SERVER_PORT), peer->server_port,
                    (Py_ssize_t)strlen(peer->server_port)) < 0)
            goto fail;
    }
    return env;
fail:
    Py_DECREF(env);
    return NULL;
}
