/* gevent.c: the gevent worker class: one greenlet per request, C doing the I/O.
 *
 * The worker patches the standard library with gevent.monkey.patch_all() as its very
 * first Python action after fork (or the master does, before it imports a --preload
 * application), so no module sees the unpatched socket or time.
 *
 * The main greenlet drives the worker's libuv loop: it runs one non-blocking turn of
 * it, then parks on the gevent hub until the loop's epoll descriptor is readable or its
 * next timer is due. Reads, parsing, keep-alive, slow clients and the accept gate are
 * the shared machinery of worker.c. A complete request runs in a greenlet of its own
 * (gevent.spawn_raw) through gc__conn_respond; whenever a socket would block, the sink
 * (or the body reader) waits with gevent.socket.wait_write/wait_read, so the hub runs
 * other greenlets meanwhile. A finished greenlet posts its connection back to the loop.
 *
 * The heartbeat comes from the loop, that is from the main greenlet: a hub blocked by
 * a call that never yields (a C driver not made for gevent, unpatched sleep) stops it,
 * and the arbiter reports the stuck stack and replaces the worker as for a timeout. */
#include "workers/worker.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>

#include "log/log.h"
#include "python/interp.h"
#include "python/pycompat.h"

typedef struct {
    PyObject *spawn_raw;  /* gevent.spawn_raw */
    PyObject *wait_read;  /* gevent.socket.wait_read */
    PyObject *wait_write; /* gevent.socket.wait_write */
    PyObject *serve;      /* the greenlets' function (serve_conn below) */
} gevent_t;

static gevent_t *state_of(gc__worker_t *w)
{
    return w->class_data;
}

/* Is gevent importable? The master asks before it forks, so that a missing package
 * is one clear line rather than workers failing to boot. */
int gc__gevent_available(void)
{
    PyObject *util = PyImport_ImportModule("importlib.util");
    PyObject *spec = util ? PyObject_CallMethod(util, "find_spec", "s", "gevent") : NULL;
    int ok = spec != NULL && spec != Py_None;
    Py_XDECREF(spec);
    Py_XDECREF(util);
    PyErr_Clear();
    return ok;
}

/* gevent.monkey.patch_all(), then gevent.reinit() for a forked child whose parent had
 * gevent's hub already. Returns 0 or -1 (logged). */
int gc__gevent_patch(void)
{
    PyObject *monkey = PyImport_ImportModule("gevent.monkey");
    PyObject *r = monkey ? PyObject_CallMethod(monkey, "patch_all", NULL) : NULL;
    Py_XDECREF(r);
    Py_XDECREF(monkey);
    if (r != NULL) {
        PyObject *gevent = PyImport_ImportModule("gevent");
        r = gevent ? PyObject_CallMethod(gevent, "reinit", NULL) : NULL;
        Py_XDECREF(r);
        Py_XDECREF(gevent);
    }
    if (r == NULL) {
        gc__py_log_exception(GC_LOG_ERROR, "Cannot patch the standard library with gevent");
        return -1;
    }
    return 0;
}

static int gevent_early(gc__worker_t *w)
{
    return gc__gevent_patch();
}

/* A greenlet's whole life: one request. */
static PyObject *serve_conn(PyObject *self, PyObject *arg)
{
    gc__conn_t *c = PyLong_AsVoidPtr(arg);
    if (c == NULL)
        return NULL;
    gc__conn_post_done(c, gc__conn_respond(c, &c->head));
    Py_RETURN_NONE;
}

static PyMethodDef serve_def = {"_gunicorn_c_request", serve_conn, METH_O, NULL};

static void gevent_run(gc__conn_t *c)
{
    gevent_t *g = state_of(c->w);
    PyObject *arg = PyLong_FromVoidPtr(c);
    PyObject *r = arg ? PyObject_CallFunctionObjArgs(g->spawn_raw, g->serve, arg, NULL) : NULL;
    Py_XDECREF(arg);
    if (r == NULL) {
        gc__py_log_exception(GC_LOG_ERROR, "Cannot start a greenlet");
        gc__sink_init(&c->sink, c->fd, 0);
        gc__conn_finish(c, 0);
        return;
    }
    Py_DECREF(r);
}

/* The sink's wait: parks the greenlet on the hub until fd is ready. */
static int gevent_wait(gc__sink_t *s, int fd, int events, int timeout_ms)
{
    gevent_t *g = s->wait_data;
    PyObject *fn = (events & POLLOUT) ? g->wait_write : g->wait_read;
    PyObject *r = timeout_ms > 0 ? PyObject_CallFunction(fn, "id", fd, timeout_ms / 1000.0)
                                 : PyObject_CallFunction(fn, "i", fd);
    if (r != NULL) {
        Py_DECREF(r);
        return 0;
    }
    int rc = PyErr_ExceptionMatches(PyExc_TimeoutError) ? -ETIMEDOUT : -ECANCELED;
    PyErr_Clear();
    return rc;
}

static void gevent_sink_setup(gc__conn_t *c, gc__sink_t *sink)
{
    sink->wait = gevent_wait;
    sink->wait_data = state_of(c->w);
}

static int gevent_start(gc__worker_t *w)
{
    gevent_t *g = calloc(1, sizeof(*g));
    if (g == NULL)
        return -1;
    w->class_data = g;
    PyObject *gevent = PyImport_ImportModule("gevent");
    PyObject *gsocket = PyImport_ImportModule("gevent.socket");
    if (gevent != NULL && gsocket != NULL) {
        g->spawn_raw = PyObject_GetAttrString(gevent, "spawn_raw");
        g->wait_read = PyObject_GetAttrString(gsocket, "wait_read");
        g->wait_write = PyObject_GetAttrString(gsocket, "wait_write");
        g->serve = PyCFunction_New(&serve_def, NULL);
    }
    Py_XDECREF(gevent);
    Py_XDECREF(gsocket);
    if (!g->spawn_raw || !g->wait_read || !g->wait_write || !g->serve) {
        gc__py_log_exception(GC_LOG_ERROR, "Cannot start the gevent worker");
        return -1;
    }
    return 0;
}

/* The main greenlet: a turn of the loop, then the hub until the loop has work. */
static void gevent_serve(gc__worker_t *w)
{
    gevent_t *g = state_of(w);
    PyObject *fd = PyLong_FromLong(uv_backend_fd(w->loop));
    if (fd == NULL)
        gc__worker_quit(w, 1);
    for (;;) {
        uv_run(w->loop, UV_RUN_NOWAIT);
        int ms = uv_backend_timeout(w->loop);
        PyObject *timeout = ms < 0 ? Py_NewRef(Py_None) : PyFloat_FromDouble(ms / 1000.0);
        PyObject *r =
            timeout ? PyObject_CallFunctionObjArgs(g->wait_read, fd, timeout, NULL) : NULL;
        Py_XDECREF(timeout);
        if (r != NULL) {
            Py_DECREF(r);
            continue;
        }
        if (PyErr_ExceptionMatches(PyExc_TimeoutError)) {
            PyErr_Clear();
            continue;
        }
        /* A signal handler's SystemExit (INT, QUIT, ABRT), thrown here by the hub. */
        if (PyErr_ExceptionMatches(PyExc_SystemExit)) {
            PyErr_Clear();
            gc__worker_quit(w, w->signal_exit >= 0 ? w->signal_exit : 0);
        }
        gc__py_log_exception(GC_LOG_ERROR, "The gevent hub failed");
        gc__worker_quit(w, 1);
    }
}

/* Python may be finalized only when no greenlet still runs a request. */
static int gevent_stop(gc__worker_t *w)
{
    return !gc__worker_busy(w);
}

const gc__worker_class_t gc__gevent_class = {
    .name = "gevent",
    .early = gevent_early,
    .start = gevent_start,
    .run = gevent_run,
    .sink_setup = gevent_sink_setup,
    .serve = gevent_serve,
    .stop = gevent_stop,
    .multithread = 1, /* requests run concurrently, as Gunicorn says too */
};
