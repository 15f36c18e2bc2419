/* wsgi.h: the WSGI side of a request (PEP 3333), shared by every worker class.
 *
 * One gc__wsgi_state_t per worker holds the application and the constant part of the
 * environ; its keys and the other strings used on every request are interned once for
 * the process (python/pystr.h). gc__wsgi_handle turns one parsed request into an
 * environ, calls the application, and streams its answer through a sink; the worker
 * class only supplies the request, the peer and the sink. All functions here need the
 * GIL. */
#ifndef GC_WSGI_WSGI_H
#define GC_WSGI_WSGI_H

#include <Python.h>

#include "common/buf.h"
#include "http/parser.h"
#include "http/response.h"
#include "http/sink.h"
#include "net/tls.h"

typedef struct gc__wsgi_input gc__wsgi_input_t;

typedef struct {
    PyObject *app;          /* owned */
    PyObject *environ_base; /* owned: the keys every environ shares */
    PyObject *script_name;  /* owned: $SCRIPT_NAME or "" */
    int sendfile;           /* wsgi.file_wrapper may use sendfile(2) */
    int https;              /* the server's own scheme is https (TLS) */
    PyObject *hook_worker;  /* borrowed: the `worker` of pre/post_request hooks */
    int exit_code;          /* >= 0 once the app raised SystemExit (SIGABRT): quit */
    gc__buf_t scratch;      /* reused buffer for decoding (never held across I/O) */
    /* gunicorn.socket's classes and release function (runtime.py's socket_classes),
     * made at the first request that offers one: owned, or NULL. */
    PyObject *socket_unopened;
    PyObject *socket_opened;
    PyObject *socket_release;
} gc__wsgi_state_t;

/* Fetches the rest of a request body that was not read before the application ran
 * (the client sent "Expect: 100-continue"). Returns 0 or a negative errno. */
typedef int (*gc__wsgi_pull_fn)(void *ctx);

/* Where a request came from and arrived. Strings are borrowed for the call. */
typedef struct {
    gc__wsgi_pull_fn pull_body; /* NULL when the body is already complete */
    void *pull_ctx;
    const char *remote_addr; /* "" for unix sockets */
    const char *remote_port; /* NULL for unix sockets */
    const char *server_name;
    const char *server_port;
    int is_unix;
    /* From a PROXY protocol header ("TCP4", "TCP6", "LOCAL", "UNSPEC"), or NULL. The
     * caller has already put the client's address in remote_addr/remote_port. */
    const char *proxy_protocol;
    const char *proxy_addr, *proxy_port; /* NULL when the header carried no addresses */
    /* A TLS connection: what the handshake agreed on, and the client's certificate
     * (the SSL_* keys of docs/tls.md); NULL over plain TCP. */
    const gc__tls_info_t *tls;
    const gc__tls_peer_t *tls_peer;
    /* An HTTP/2 stream: its priority (RFC 7540 weight 1..256, the stream it depends
     * on), for Gunicorn's gunicorn.http2.priority_* keys. */
    int http2;
    int h2_weight;
    int h2_depends_on;
    /* HTTP/2: receives the trailer fields the application gave
     * gunicorn.http2.send_trailers, once its response body is complete (called where
     * the application runs; fields borrowed for the call). NULL: no such key. */
    void (*trailers)(void *ctx, const gc__http_header_t *fields, size_t n);
    void *trailers_ctx;
    /* gunicorn.socket: the connection's descriptor and its family (AF_INET, AF_INET6,
     * AF_UNIX), or -1 when no socket is offered (TLS, HTTP/2 streams). */
    int socket_fd;
    int socket_family;
    /* Where gc__wsgi_handle stores the response's status code (0: no response began),
     * for the scoreboard's counters; NULL: nowhere. */
    int *status_out;
} gc__wsgi_peer_t;

typedef struct {
    int multithread;
    int multiprocess;
    int sendfile;
    int https; /* TLS serves every listener: wsgi.url_scheme "https", HTTPS "on" */
} gc__wsgi_options_t;

/* Builds the state around `app` (borrowed; a new reference is kept). Returns 0, or -1
 * with a Python exception set. */
int gc__wsgi_state_init(gc__wsgi_state_t *st, PyObject *app, const gc__wsgi_options_t *opt);
void gc__wsgi_state_free(gc__wsgi_state_t *st);

enum gc__wsgi_outcome {
    GC_WSGI_KEEP = 0,  /* the response is complete and framed: the connection may go on */
    GC_WSGI_CLOSE = 1, /* close the connection after this response */
    GC_WSGI_TAKEN = 2, /* the application took the connection through gunicorn.socket:
                        * nothing more is ours to write; the connection is released
                        * without a shutdown, the application's socket holds it open */
};

/* Calls the application for `req` and writes its whole response to `sink`. Never
 * leaves a Python exception set: application errors become a 500 (or a closed
 * connection once headers are out) and a logged traceback. `keep_alive` says whether
 * the server is willing to keep the connection. `head` is the caller's buffer for the
 * response head: it must stay put while the sink waits, so each thread or greenlet
 * that runs requests at the same time brings its own. */
enum gc__wsgi_outcome gc__wsgi_handle(gc__wsgi_state_t *st, gc__http_request_t *req,
                                      const gc__wsgi_peer_t *peer, gc__sink_t *sink,
                                      gc__buf_t *head, int keep_alive);

/* Types, made ready by gc__wsgi_state_init. */
int gc__wsgi_types_ready(void);
/* wsgi.input over a request body. Returns a new reference or NULL. The body is
 * borrowed until gc__wsgi_input_detach, after which reads return b"". With `pull`, the
 * body is fetched on the first read. */
PyObject *gc__wsgi_input_new(const gc__http_body_t *body, gc__wsgi_pull_fn pull, void *ctx);
void gc__wsgi_input_detach(PyObject *input);
/* Why fetching a held-back body failed (a negative errno, -ECONNRESET when the client
 * left), or 0: tells a client that went away from an application error. */
int gc__wsgi_input_error(PyObject *input);
extern PyTypeObject gc__wsgi_filewrapper_type;
/* For a FileWrapper over a real file: its descriptor and the wrapped object. */
int gc__wsgi_filewrapper_fd(PyObject *wrapper, gc__wsgi_state_t *st);

#endif
