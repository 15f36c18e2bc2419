/* frontend.c: trust lists, header policy and the PROXY protocol for a worker (see
 * frontend.h).
 *
 * Everything that depends on settings is parsed here once, when the worker starts, so
 * that a connection costs one address comparison at accept and a request nothing more
 * than what the parser does with the policy. */
#include "workers/frontend.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log/log.h"
#include "python/config_file.h"
#include "python/interp.h"
#include "workers/internal.h"

/* secure_scheme_headers from the config file's dict. Entries that cannot match any
 * request header are kept harmless: a key that is not a latin-1 str is skipped, a value
 * that is not one never matches (the header then means http, as in Gunicorn, where
 * `value == configured` is False). Returns 0 or -1 with a Python exception set. */
static int add_scheme_headers(gc__forward_policy_t *fp, PyObject *dict)
{
    PyObject *key, *value;
    Py_ssize_t pos = 0;
    while (PyDict_Next(dict, &pos, &key, &value)) { /* borrowed references */
        if (!PyUnicode_Check(key))
            continue;
        PyObject *k = PyUnicode_AsLatin1String(key);
        if (k == NULL) {
            PyErr_Clear();
            continue;
        }
        PyObject *v = PyUnicode_Check(value) ? PyUnicode_AsLatin1String(value) : NULL;
        PyErr_Clear();
        int rc = gc__forward_policy_add_scheme(fp, PyBytes_AS_STRING(k),
                                               v ? PyBytes_AS_STRING(v) : NULL);
        Py_DECREF(k);
        Py_XDECREF(v);
        if (rc < 0) {
            PyErr_NoMemory();
            return -1;
        }
    }
    return 0;
}

static int init_policy(gc__forward_policy_t *fp, const gc__config_t *cfg)
{
    if (gc__forward_policy_init(fp) < 0)
        return -1;
    const char *map = gc__cfg_str(cfg, GC_S_header_map);
    if (map && strcmp(map, "refuse") == 0)
        fp->header_map = GC_HEADER_MAP_REFUSE;
    else if (map && strcmp(map, "dangerous") == 0)
        fp->header_map = GC_HEADER_MAP_DANGEROUS;
    const gc__setting_value_t *fw = &cfg->v[GC_S_forwarder_headers];
    for (size_t i = 0; i < fw->n; i++)
        if (gc__forward_policy_add_forwarder(fp, fw->items[i]) < 0)
            return -1;
    /* The same source as the environ's SCRIPT_NAME (wsgi.c). */
    if (gc__forward_policy_set_script_name(fp, getenv("SCRIPT_NAME")) < 0)
        return -1;
    PyObject *dict = gc__config_object(GC_S_secure_scheme_headers); /* borrowed */
    if (dict != NULL && PyDict_Check(dict))
        return add_scheme_headers(fp, dict) < 0 ? -1 : 0;
    const gc__forward_policy_t *def = gc__forward_policy_default();
    for (size_t i = 0; i < def->nschemes; i++)
        if (gc__forward_policy_add_scheme(fp, def->schemes[i].name, def->schemes[i].value) < 0)
            return -1;
    return 0;
}

int gc__frontend_init(gc__frontend_t *f, const gc__config_t *cfg)
{
    memset(f, 0, sizeof(*f));
    char err[256];
    int rc = gc__trust_init(&f->forwarded_allow, cfg->v[GC_S_forwarded_allow_ips].items,
                            cfg->v[GC_S_forwarded_allow_ips].n, err, sizeof(err));
    if (rc == -EINVAL) {
        gc__error("Invalid forwarded_allow_ips: %s", err);
        return -1;
    }
    if (rc == 0) {
        rc = gc__trust_init(&f->proxy_allow, cfg->v[GC_S_proxy_allow_ips].items,
                            cfg->v[GC_S_proxy_allow_ips].n, err, sizeof(err));
        if (rc == -EINVAL) {
            gc__error("Invalid proxy_allow_ips: %s", err);
            return -1;
        }
    }
    if (rc < 0 || init_policy(&f->forward, cfg) < 0) {
        if (PyErr_Occurred())
            gc__py_log_exception(GC_LOG_ERROR, "Cannot read secure_scheme_headers");
        else
            gc__error("Out of memory while reading the proxy settings");
        return -1;
    }
    f->proxy_mode = gc__proxy_mode_from_name(gc__cfg_str(cfg, GC_S_proxy_protocol));
    const char *protocol = gc__cfg_str(cfg, GC_S_protocol);
    f->uwsgi = protocol != NULL && strcmp(protocol, "uwsgi") == 0;
    rc = gc__trust_init(&f->uwsgi_allow, cfg->v[GC_S_uwsgi_allow_ips].items,
                        cfg->v[GC_S_uwsgi_allow_ips].n, err, sizeof(err));
    if (rc == -EINVAL) {
        gc__error("Invalid uwsgi_allow_ips: %s", err);
        return -1;
    }
    if (rc < 0) {
        gc__error("Out of memory while reading the proxy settings");
        return -1;
    }
    return 0;
}

void gc__frontend_accept(const gc__frontend_t *f, gc__conn_t *c)
{
    /* A unix socket's peer is on this machine and could only be reached through the
     * file system's permissions: Gunicorn trusts it for everything. */
    int is_unix = c->listener->is_unix;
    c->parser.trusted = is_unix || gc__trust_match(&f->forwarded_allow, c->remote_addr);
    c->proxy_wait = f->proxy_mode != GC_PROXY_OFF;
    /* uwsgi: the packet says who the client is and whether it came over HTTPS, so only
     * the front ends listed may send one (a unix socket's peer always may, as in
     * Gunicorn). Networks work here; Gunicorn compares address strings. */
    if (f->uwsgi && !is_unix && !gc__trust_match(&f->uwsgi_allow, c->remote_addr)) {
        gc__debug("uwsgi request from %s refused: not in uwsgi_allow_ips", c->remote_addr);
        c->parser.state = GC_HTTP_ERROR;
        c->parser.error_status = 403;
        snprintf(c->parser.error_msg, sizeof(c->parser.error_msg),
                 "Forbidden uWSGI request from %s", c->remote_addr);
    }
}

static int refuse(gc__conn_t *c, int status, const char *msg)
{
    c->parser.error_status = status;
    snprintf(c->parser.error_msg, sizeof(c->parser.error_msg), "%s", msg);
    c->proxy_wait = 0;
    return -1;
}

int gc__frontend_proxy_read(const gc__frontend_t *f, gc__conn_t *c, const char *data, size_t len)
{
    if (gc__buf_append(&c->pending, data, len) < 0)
        return refuse(c, 500, "Out of memory while reading the request");
    enum gc__proxy_kind kind = gc__proxy_detect(f->proxy_mode, c->pending.data, c->pending.len);
    if (kind == GC_PROXY_MORE)
        return 1;
    if (kind == GC_PROXY_NONE) {
        c->proxy_wait = 0; /* plain HTTP, as Gunicorn allows */
        return 0;
    }
    /* Checked before the header is parsed, as in Gunicorn: a peer that may not speak
     * for clients gets 403 whatever it sent. */
    if (!c->listener->is_unix && !gc__trust_match(&f->proxy_allow, c->remote_addr)) {
        gc__debug("PROXY protocol header from %s refused: not in proxy_allow_ips", c->remote_addr);
        return refuse(c, 403, "Request forbidden");
    }
    char why[sizeof(c->parser.error_msg)];
    ssize_t n = gc__proxy_parse(kind, c->pending.data, c->pending.len, &c->proxy, why, sizeof(why));
    if (n == 0)
        return 1;
    if (n < 0)
        return refuse(c, 400, why);
    gc__buf_consume(&c->pending, (size_t)n);
    c->proxy_wait = 0;
    if (c->proxy.has_addresses)
        gc__debug("PROXY %s header from %s: client %s port %s, proxy %s port %s", c->proxy.protocol,
                  c->remote_addr, c->proxy.src_addr, c->proxy.src_port, c->proxy.dst_addr,
                  c->proxy.dst_port);
    else
        gc__debug("PROXY %s header from %s", c->proxy.protocol, c->remote_addr);
    return 0;
}

void gc__frontend_peer(const gc__conn_t *c, gc__wsgi_peer_t *peer)
{
    const gc__proxy_info_t *pi = &c->proxy;
    if (pi->protocol[0] == '\0')
        return;
    peer->proxy_protocol = pi->protocol;
    /* LOCAL and UNSPEC say nothing about the client: the connection's own address
     * stands (Gunicorn puts None in REMOTE_ADDR and "None" in REMOTE_PORT here). */
    if (!pi->has_addresses)
        return;
    peer->remote_addr = pi->src_addr;
    peer->remote_port = pi->src_port;
    peer->proxy_addr = pi->dst_addr;
    peer->proxy_port = pi->dst_port;
}
