/* gevent.c: the gevent worker class: one greenlet per request, C doing the I/O.
 *
 * The worker patches the standard library with gevent.monkey.patch_all() as its very
 * first Python action after fork (or the master does, before it imports a --preload
 * application), so no module sees the unpatched socket or time.
 *
 * The main greenlet drives the worker's libuv loop: it runs one non-blocking turn of
 * it, then parks on the gevent hub until the loop's epoll descriptor is readable or its
 * next timer is due. Reads, parsing, keep-alive, slow clients and the accept gate are
 * the shared machinery of conn.c and respond.c. A complete request runs in a greenlet of its own
 * (as gevent.spawn_raw would start it, and kept for the next request once it is
 * done) through gc__conn_respond; whenever a socket would block, the sink
 * (or the body reader) waits with gevent.socket.wait_write/wait_read, so the hub runs
 * other greenlets meanwhile. A finished greenlet posts its connection back to the loop.
 *
 * The heartbeat comes from the loop, that is from the main greenlet: a hub blocked by
 * a call that never yields (a C driver not made for gevent, unpatched sleep) stops it,
 * and the arbiter reports the stuck stack and replaces the worker as for a timeout.
 *
 * Quick stop (INT, QUIT, and ABRT after a timeout): the worker's Python handler raises
 * SystemExit wherever Python runs, which under gevent is usually the hub, and the hub
 * throws it into the main greenlet. The main greenlet then throws SystemExit into every
 * greenlet still running a request (see quick_stop), waits for them to unwind (each
 * answers its client with the 500 of the shared request path), and only then exits. */
#include "workers/worker.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdlib.h>

#include "common/clock.h"
#include "log/log.h"
#include "python/interp.h"
#include "python/pycompat.h"

/* At most this many finished greenlets wait for the next request. A greenlet that
 * starts afresh costs its creation and, on CPython 3.11+, an mmap'd frame stack; a
 * parked one keeps both. */
#define GEVENT_IDLE_MAX 64

typedef struct {
    PyObject *greenlet;       /* greenlet.greenlet */
    PyObject *getcurrent;     /* greenlet.getcurrent */
    PyObject *switch_;        /* greenlet.greenlet.switch, unbound */
    PyObject *hub;            /* the worker thread's gevent hub */
    PyObject *run_callback;   /* hub.loop.run_callback */
    PyObject *io;             /* hub.loop.io */
    PyObject *timer;          /* hub.loop.timer */
    PyObject *str_start;      /* "start", interned */
    PyObject *str_stop;       /* "stop", interned */
    PyObject *str_gr_context; /* "gr_context", interned */
    PyObject *wait_read;      /* gevent.socket.wait_read */
    PyObject *wait_write;     /* gevent.socket.wait_write */
    PyObject *serve;          /* the greenlets' function (serve_conns below) */
    PyObject *interrupt;      /* the quick stop's callback (interrupt_request) */
    PyObject *wake;           /* the main greenlet's switch */
    /* Every greenlet running a request, keyed by its connection's address (an int). */
    PyObject *running;
    int quitting;                    /* the main greenlet waits for running requests to unwind */
    PyObject *idle[GEVENT_IDLE_MAX]; /* owned: parked greenlets, newest last */
    int n_idle;
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

/* Has the hub switch to the main greenlet (which waits in quick_stop). */
static void wake_main(gevent_t *g)
{
    PyObject *r = PyObject_CallOneArg(g->run_callback, g->wake);
    if (r == NULL)
        gc__py_log_exception(GC_LOG_ERROR, "Cannot wake the main greenlet");
    Py_XDECREF(r);
}

/* A hub callback, bound to the worker's gevent_t: throws SystemExit into the greenlet
 * running the request on the connection `key` (an int), unless it has finished
 * meanwhile; SystemExit(1) when `abort` is true (ABRT), else SystemExit() (INT, QUIT),
 * as the worker's handlers raise them. The greenlet runs until it waits again or has
 * answered (a 500, through the request path's error handling) and parked; then the
 * throw returns here. */
static PyObject *interrupt_request(PyObject *self, PyObject *args)
{
    gevent_t *g = PyCapsule_GetPointer(self, NULL);
    PyObject *key;
    int abort_ = 0;
    if (g == NULL || !PyArg_ParseTuple(args, "Op", &key, &abort_))
        return NULL;
    PyObject *gl = PyDict_GetItemWithError(g->running, key); /* borrowed */
    if (gl == NULL) {
        if (PyErr_Occurred())
            return NULL;
        Py_RETURN_NONE;
    }
    Py_INCREF(gl);
    /* A new exception for each greenlet: each unwinds with a traceback of its own. */
    PyObject *exc = abort_ ? PyObject_CallFunction(PyExc_SystemExit, "i", 1)
                           : PyObject_CallNoArgs(PyExc_SystemExit);
    PyObject *r = exc ? PyObject_CallMethod(gl, "throw", "O", exc) : NULL;
    Py_XDECREF(exc);
    Py_DECREF(gl);
    if (r == NULL) {
        /* Nothing a request raises gets this far (the request path turns it into a 500);
         * never hand the hub an exception it would pass on to the main greenlet. */
        gc__py_log_exception(GC_LOG_ERROR, "Cannot interrupt a request");
        Py_RETURN_NONE;
    }
    return r;
}

static PyMethodDef interrupt_def = {"_gunicorn_c_interrupt", interrupt_request, METH_VARARGS, NULL};

/* A greenlet's life: a request, then, while fewer than GEVENT_IDLE_MAX others wait,
 * parked on the idle list until gevent_run hands it the next one. arg is the
 * connection's address (a borrowed int); a parked greenlet is woken with the next. */
static PyObject *serve_conns(PyObject *self, PyObject *arg)
{
    PyObject *owned = NULL; /* the int of a request after the first */
    for (;;) {
        gc__conn_t *c = PyLong_AsVoidPtr(arg);
        Py_XDECREF(owned);
        if (c == NULL)
            return NULL;
        gevent_t *g = state_of(gc__conn_worker(c));
        int keep = gc__conn_respond(c, gc__conn_head_buf(c));
        /* No longer interruptible: a SystemExit thrown from here on would escape the
         * request path and kill the greenlet. */
        if (PyDict_DelItem(g->running, arg) < 0)
            PyErr_Clear();
        if (g->quitting && PyDict_GET_SIZE(g->running) == 0)
            wake_main(g);
        gc__conn_post_done(c, keep);
        if (g->n_idle == GEVENT_IDLE_MAX)
            break;
        PyObject *me = PyObject_CallNoArgs(g->getcurrent);
        if (me == NULL)
            return NULL;
        /* The next request starts with fresh context variables, as in a new greenlet. */
        if (PyObject_SetAttr(me, g->str_gr_context, Py_None) < 0) {
            Py_DECREF(me);
            return NULL;
        }
        g->idle[g->n_idle++] = me; /* takes ownership */
        /* Straight to the hub, as gevent's own waits do; gevent_run switches back. */
        owned = PyObject_CallOneArg(g->switch_, g->hub);
        if (owned == NULL)
            return NULL; /* GreenletExit: the worker is going away */
        arg = owned;
    }
    Py_RETURN_NONE;
}

static PyMethodDef serve_def = {"_gunicorn_c_request", serve_conns, METH_O, NULL};

static void gevent_run(gc__conn_t *c)
{
    gevent_t *g = state_of(gc__conn_worker(c));
    PyObject *gl = g->n_idle > 0
                       ? g->idle[--g->n_idle]
                       : PyObject_CallFunctionObjArgs(g->greenlet, g->serve, g->hub, NULL);
    PyObject *arg = gl ? PyLong_FromVoidPtr(c) : NULL;
    /* Listed as running first: a quick stop may interrupt it from the moment it runs. */
    int listed = arg != NULL && PyDict_SetItem(g->running, arg, gl) == 0;
    PyObject *r =
        listed ? PyObject_CallFunctionObjArgs(g->run_callback, g->switch_, gl, arg, NULL) : NULL;
    if (r == NULL) {
        gc__py_log_exception(GC_LOG_ERROR, "Cannot start a greenlet");
        if (listed && PyDict_DelItem(g->running, arg) < 0)
            PyErr_Clear();
    }
    Py_XDECREF(arg);
    Py_XDECREF(gl); /* the callback holds it until it runs */
    if (r == NULL) {
        gc__conn_skip_request(c);
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
    sink->wait_data = state_of(gc__conn_worker(c));
}

static int gevent_start(gc__worker_t *w)
{
    gevent_t *g = calloc(1, sizeof(*g));
    if (g == NULL)
        return -1;
    w->class_data = g;
    PyObject *gevent = PyImport_ImportModule("gevent");
    PyObject *gsocket = PyImport_ImportModule("gevent.socket");
    PyObject *greenlet = PyImport_ImportModule("greenlet");
    PyObject *loop = NULL;
    if (gevent != NULL && gsocket != NULL && greenlet != NULL) {
        g->greenlet = PyObject_GetAttrString(greenlet, "greenlet");
        g->getcurrent = PyObject_GetAttrString(greenlet, "getcurrent");
        g->switch_ = g->greenlet ? PyObject_GetAttrString(g->greenlet, "switch") : NULL;
        g->hub = PyObject_CallMethod(gevent, "get_hub", NULL);
        loop = g->hub ? PyObject_GetAttrString(g->hub, "loop") : NULL;
        g->run_callback = loop ? PyObject_GetAttrString(loop, "run_callback") : NULL;
        g->io = loop ? PyObject_GetAttrString(loop, "io") : NULL;
        g->timer = loop ? PyObject_GetAttrString(loop, "timer") : NULL;
        g->str_start = PyUnicode_InternFromString("start");
        g->str_stop = PyUnicode_InternFromString("stop");
        g->str_gr_context = PyUnicode_InternFromString("gr_context");
        g->wait_read = PyObject_GetAttrString(gsocket, "wait_read");
        g->wait_write = PyObject_GetAttrString(gsocket, "wait_write");
        g->serve = PyCFunction_New(&serve_def, NULL);
        PyObject *self = PyCapsule_New(g, NULL, NULL);
        g->interrupt = self ? PyCFunction_New(&interrupt_def, self) : NULL;
        Py_XDECREF(self);
        g->running = PyDict_New();
        /* Called on the main greenlet, which gevent_serve runs on. */
        PyObject *me = g->getcurrent ? PyObject_CallNoArgs(g->getcurrent) : NULL;
        g->wake = me ? PyObject_GetAttrString(me, "switch") : NULL;
        Py_XDECREF(me);
    }
    Py_XDECREF(loop);
    Py_XDECREF(gevent);
    Py_XDECREF(gsocket);
    Py_XDECREF(greenlet);
    if (!g->greenlet || !g->getcurrent || !g->switch_ || !g->hub || !g->run_callback || !g->io ||
        !g->timer || !g->str_start || !g->str_stop || !g->str_gr_context || !g->wait_read ||
        !g->wait_write || !g->serve || !g->interrupt || !g->running || !g->wake) {
        gc__py_log_exception(GC_LOG_ERROR, "Cannot start the gevent worker");
        return -1;
    }
    return 0;
}

/* Stops a watcher without losing the exception pending, if any (a watcher's stop, like
 * any call, must not run with one set). Returns 0, or -1 with the stop's exception when
 * none was pending. */
static int watcher_stop(gevent_t *g, PyObject *watcher)
{
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyObject *r = PyObject_CallMethodNoArgs(watcher, g->str_stop);
    Py_XDECREF(r);
    if (type == NULL)
        return r != NULL ? 0 : -1;
    if (r == NULL)
        gc__py_log_exception(GC_LOG_ERROR, "Cannot stop a gevent watcher");
    PyErr_Restore(type, value, tb);
    return -1;
}

/* Parks the main greenlet on the hub until the loop's epoll descriptor is readable
 * (io, started with g->wake; NULL: not watched), something else switches to it (a
 * greenlet's wake_main) or ms milliseconds have passed (ms < 0: no limit). The
 * watchers run only during the wait, so that Python code the loop runs cannot be woken
 * by them. Returns 0, or -1 with the exception the hub threw in (a signal handler's
 * SystemExit), which the watchers are stopped without losing. */
static int main_wait(gevent_t *g, PyObject *io, int ms)
{
    PyObject *timer = NULL, *r = NULL;
    int rc = -1;
    if (ms >= 0) {
        timer = PyObject_CallFunction(g->timer, "d", ms / 1000.0);
        r = timer ? PyObject_CallMethodOneArg(timer, g->str_start, g->wake) : NULL;
        if (r == NULL)
            goto out;
        Py_DECREF(r);
    }
    if (io != NULL) {
        r = PyObject_CallMethodOneArg(io, g->str_start, g->wake);
        if (r == NULL)
            goto out;
        Py_DECREF(r);
    }
    r = PyObject_CallOneArg(g->switch_, g->hub);
    rc = r != NULL ? 0 : -1;
    Py_XDECREF(r);
    if (io != NULL && watcher_stop(g, io) < 0)
        rc = -1;
out:
    if (timer != NULL) {
        if (watcher_stop(g, timer) < 0)
            rc = -1;
        Py_DECREF(timer);
    }
    return rc;
}

/* The quick stop (INT, QUIT, ABRT), on the main greenlet: SystemExit is thrown into
 * every greenlet still running a request, from the hub (a greenlet must be resumed
 * from where it waits), and the main greenlet waits until the last one has unwound and
 * answered, at most --graceful-timeout. More signals meanwhile change nothing. */
static void quick_stop(gc__worker_t *w)
{
    gevent_t *g = state_of(w);
    if (g->quitting || PyDict_GET_SIZE(g->running) == 0)
        return;
    g->quitting = 1;
    PyObject *abort_ = PyBool_FromLong(w->signal_exit > 0); /* ABRT, not INT or QUIT */
    PyObject *keys = PyDict_Keys(g->running);
    for (Py_ssize_t i = 0; keys != NULL && i < PyList_GET_SIZE(keys); i++) {
        PyObject *r = PyObject_CallFunctionObjArgs(g->run_callback, g->interrupt,
                                                   PyList_GET_ITEM(keys, i), abort_, NULL);
        if (r == NULL)
            break;
        Py_DECREF(r);
    }
    Py_XDECREF(keys);
    Py_DECREF(abort_);
    if (PyErr_Occurred()) {
        gc__py_log_exception(GC_LOG_ERROR, "Cannot interrupt the running requests");
        return;
    }
    long secs = gc__cfg_int(w->cfg, GC_S_graceful_timeout);
    uint64_t deadline = gc__monotonic_ms() + (uint64_t)(secs > 0 ? secs : 1) * 1000;
    while (PyDict_GET_SIZE(g->running) > 0) {
        uint64_t now = gc__monotonic_ms();
        if (now >= deadline) {
            gc__warning("%zd request(s) still running after the graceful timeout; exiting",
                        PyDict_GET_SIZE(g->running));
            return;
        }
        uint64_t left = deadline - now;
        if (main_wait(g, NULL, left > INT_MAX ? INT_MAX : (int)left) < 0) {
            if (!PyErr_ExceptionMatches(PyExc_SystemExit)) {
                gc__py_log_exception(GC_LOG_ERROR, "The gevent hub failed");
                return;
            }
            PyErr_Clear(); /* another INT, QUIT or ABRT */
        }
    }
}

/* The main greenlet: a turn of the loop, then the hub until the loop has work. */
static void gevent_serve(gc__worker_t *w)
{
    gevent_t *g = state_of(w);
    PyObject *io = PyObject_CallFunction(g->io, "ii", uv_backend_fd(w->loop), 1);
    if (io == NULL) {
        gc__py_log_exception(GC_LOG_ERROR, "Cannot watch the loop from gevent");
        gc__worker_quit(w, 1);
    }
    for (;;) {
        uv_run(w->loop, UV_RUN_NOWAIT);
        /* A handler that ran during the turn, its SystemExit taken by the code it hit. */
        if (w->signal_exit >= 0)
            break;
        if (main_wait(g, io, uv_backend_timeout(w->loop)) == 0)
            continue;
        /* A signal handler's SystemExit (INT, QUIT, ABRT), thrown here by the hub. */
        if (PyErr_ExceptionMatches(PyExc_SystemExit)) {
            PyErr_Clear();
            break;
        }
        gc__py_log_exception(GC_LOG_ERROR, "The gevent hub failed");
        gc__worker_quit(w, 1);
    }
    quick_stop(w);
    gc__worker_quit(w, w->signal_exit >= 0 ? w->signal_exit : 0);
}

/* Python may be finalized only when no greenlet still runs a request. A quick stop that
 * reached the worker elsewhere (a handler run by the loop, or inside a request) ends up
 * here: the other requests are interrupted first. */
static int gevent_stop(gc__worker_t *w)
{
    gevent_t *g = state_of(w);
    if (g == NULL || g->running == NULL)
        return 1;
    if (w->signal_exit >= 0)
        quick_stop(w);
    return PyDict_GET_SIZE(g->running) == 0;
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
