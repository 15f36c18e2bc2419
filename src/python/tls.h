/* tls.h: the TLS context of a process, taken from Python's ssl module.
 *
 * Gunicorn makes an ssl.SSLContext (ssl.create_default_context, the certificate
 * chain, cert_reqs, ca_certs, ciphers, ALPN) and lets the ssl_context hook replace or
 * change it. gunicorn-c does the same in Python (runtime.py's ssl_context) and then
 * serves TLS in C with the OpenSSL context inside that object: both link the same
 * libssl.so.3, so nothing the context says is lost in translation (protocol floor,
 * ciphers, verify mode, chains, ALPN). The object's layout (the SSL_CTX pointer right
 * after the object header) is checked against what Python reports of it before use. */
#ifndef GC_PYTHON_TLS_H
#define GC_PYTHON_TLS_H

#include <Python.h>

#include "config/config.h"

struct ssl_ctx_st;

typedef struct {
    PyObject *context;      /* owned: the ssl.SSLContext, kept alive while ctx is used */
    struct ssl_ctx_st *ctx; /* borrowed from it */
} gc__py_tls_t;

/* 1 when cfg turns TLS on (certfile or keyfile set), as in Gunicorn. */
int gc__py_tls_enabled(const gc__config_t *cfg);

/* Makes the context from cfg and the ssl_context hook; h2 = 0 leaves HTTP/2 out of
 * ALPN whatever http_protocols says. Needs the GIL. Returns 0, or -1 with the reason in
 * err (one line) and, when it came from Python, the exception still set for the caller
 * to log or clear. */
int gc__py_tls_make(gc__py_tls_t *t, const gc__config_t *cfg, int h2, char *err, size_t cap);

void gc__py_tls_free(gc__py_tls_t *t);

/* Checks at start-up what Gunicorn checks (certfile and keyfile exist), then makes the
 * context once and drops it, so that a bad certificate, key or hook is one error line
 * and exit status 1 instead of workers that cannot boot. Returns 0 or -1 (logged). */
int gc__py_tls_check(const gc__config_t *cfg);

#endif
