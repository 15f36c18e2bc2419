/* tls.c: the process's TLS context from Python's ssl module (see tls.h). */
#include "python/tls.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/ssl.h>

#include "log/log.h"
#include "net/tls.h"
#include "python/config_file.h"
#include "python/runtime.h"

/* The start of CPython's _ssl._SSLContext object (Modules/_ssl.c): the object header,
 * then the OpenSSL context. Unchanged from Python 3.6 to 3.13; checked at run time. */
typedef struct {
    PyObject_HEAD SSL_CTX *ctx;
} py_ssl_context_head_t;

int gc__py_tls_enabled(const gc__config_t *cfg)
{
    return gc__cfg_str(cfg, GC_S_certfile) != NULL || gc__cfg_str(cfg, GC_S_keyfile) != NULL;
}

/* The ALPN protocols to offer: from http_protocols when it names h2 (Gunicorn's rule:
 * no ALPN without h2). A new list, or None. */
static PyObject *alpn_list(const gc__config_t *cfg, int h2)
{
    const gc__setting_value_t *v = &cfg->v[GC_S_http_protocols];
    if (!h2 || !gc__cfg_list_has(cfg, GC_S_http_protocols, "h2"))
        Py_RETURN_NONE;
    PyObject *list = PyList_New(0);
    for (size_t i = 0; list != NULL && i < v->n; i++) {
        const char *id = strcmp(v->items[i], "h1") == 0   ? "http/1.1"
                         : strcmp(v->items[i], "h2") == 0 ? "h2"
                                                          : NULL;
        PyObject *s = id ? PyUnicode_FromString(id) : NULL;
        if (id != NULL && (s == NULL || PyList_Append(list, s) < 0))
            Py_CLEAR(list);
        Py_XDECREF(s);
    }
    return list;
}

/* "ExcType: message" of the pending exception, into err (the exception stays set). */
static void exception_line(char *err, size_t cap)
{
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    const char *tname = type ? ((PyTypeObject *)type)->tp_name : "error";
    const char *dot = strrchr(tname, '.');
    PyObject *str = value ? PyObject_Str(value) : NULL;
    const char *msg = str ? PyUnicode_AsUTF8(str) : NULL;
    if (msg == NULL)
        PyErr_Clear();
    snprintf(err, cap, "%s%s%s", dot ? dot + 1 : tname, msg && *msg ? ": " : "", msg ? msg : "");
    Py_XDECREF(str);
    PyErr_Restore(type, value, tb);
}

int gc__py_tls_make(gc__py_tls_t *t, const gc__config_t *cfg, int h2, char *err, size_t cap)
{
    memset(t, 0, sizeof(*t));
    PyObject *fn = gc__rt_function("ssl_context");
    PyObject *cfgobj = fn ? gc__rt_config_new(cfg) : NULL;
    PyObject *alpn = cfgobj ? alpn_list(cfg, h2) : NULL;
    PyObject *hook = gc__config_object(GC_S_ssl_context);
    PyObject *res =
        alpn ? PyObject_CallFunctionObjArgs(fn, cfgobj, hook ? hook : Py_None, alpn, NULL) : NULL;
    Py_XDECREF(fn);
    Py_XDECREF(cfgobj);
    Py_XDECREF(alpn);
    if (res == NULL) {
        exception_line(err, cap);
        return -1;
    }
    PyObject *context = NULL;
    unsigned long long options = 0, version = 0;
    int verify = 0;
    if (!PyArg_ParseTuple(res, "OKiK", &context, &options, &verify, &version)) {
        Py_DECREF(res);
        exception_line(err, cap);
        return -1;
    }
    SSL_CTX *ctx = ((py_ssl_context_head_t *)context)->ctx;
    /* The same OpenSSL, and an object laid out as expected: the options and verify
     * mode Python reports are the ones this SSL_CTX has. */
    static const int modes[] = {SSL_VERIFY_NONE, SSL_VERIFY_PEER,
                                SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT};
    if (version != (unsigned long long)OpenSSL_version_num() || ctx == NULL ||
        (unsigned long long)SSL_CTX_get_options(ctx) != options || verify < 0 || verify > 2 ||
        SSL_CTX_get_verify_mode(ctx) != modes[verify]) {
        snprintf(err, cap,
                 "Python's ssl module uses another OpenSSL (0x%llx) than gunicorn-c (0x%lx): "
                 "TLS cannot be served",
                 version, (unsigned long)OpenSSL_version_num());
        Py_DECREF(res);
        return -1;
    }
    Py_INCREF(context);
    t->context = context;
    t->ctx = ctx;
    Py_DECREF(res);
    return 0;
}

void gc__py_tls_free(gc__py_tls_t *t)
{
    t->ctx = NULL;
    Py_CLEAR(t->context);
}

/* Gunicorn's start-up check of a file setting. */
static int file_exists(const gc__config_t *cfg, enum gc__setting_id id, const char *name)
{
    const char *path = gc__cfg_str(cfg, id);
    if (path != NULL && access(path, F_OK) != 0) {
        gc__error("%s \"%s\" does not exist", name, path);
        return -1;
    }
    return 0;
}

int gc__py_tls_check(const gc__config_t *cfg)
{
    if (!gc__py_tls_enabled(cfg))
        return 0;
    if (file_exists(cfg, GC_S_certfile, "certfile") < 0 ||
        file_exists(cfg, GC_S_keyfile, "keyfile") < 0)
        return -1;
    gc__py_tls_t t;
    char err[512];
    if (gc__py_tls_make(&t, cfg, 1, err, sizeof(err)) < 0) {
        PyErr_Clear();
        gc__error("Cannot make the TLS context: %s", err);
        return -1;
    }
    gc__py_tls_free(&t);
    gc__info("TLS: %s", gc__tls_kernel_available()
                            ? "kernel TLS is available: files go out with sendfile"
                            : "kernel TLS is not available: files are read and encrypted "
                              "in user space, without sendfile");
    return 0;
}
