/* pysignals.c: INT, QUIT and ABRT in a worker, as Python-level handlers (see below). */
#include "workers/internal.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log/log.h"
#include "python/interp.h"
#include "python/runtime.h"

/* --- INT, QUIT, ABRT: signals that must interrupt the application -------------------- */

/* These three are Python-level handlers, not libuv ones: a libuv handler runs only
 * when the loop does, so a worker busy in a long request would finish it before
 * noticing a quick stop (INT/QUIT) or a timeout (ABRT). Python runs its handlers at
 * the next bytecode, even inside time.sleep, and raising SystemExit there unwinds the
 * application (its finally blocks run); the request gets a 500. Python runs them only
 * on the main thread: requests in gevent's other greenlets or in gthread's threads are
 * answered by the class's `stop` as the worker exits (gevent.c, gthread.c). */

/* INT, QUIT: the quick stop. worker_int, then SystemExit(0). */
static PyObject *on_quit(PyObject *self, PyObject *args)
{
    gc__worker_t *w = (gc__worker_t *)PyCapsule_GetPointer(self, NULL);
    if (w != NULL && w->signal_exit < 0) {
        w->signal_exit = 0;
        gc__rt_set_bool(w->hook_worker, "alive", 0);
        gc__rt_worker_hook(GC_HOOK_worker_int, w->hook_worker);
    }
    PyErr_Clear();
    PyErr_SetNone(PyExc_SystemExit); /* SystemExit() exits with status 0 */
    return NULL;
}

/* ABRT, what the arbiter sends a worker that stopped beating: worker_abort, then
 * SystemExit(1), so the stuck code's traceback reaches the log. */
static PyObject *on_abort(PyObject *self, PyObject *args)
{
    gc__worker_t *w = (gc__worker_t *)PyCapsule_GetPointer(self, NULL);
    if (w != NULL && w->signal_exit < 0) {
        w->signal_exit = 1;
        gc__rt_set_bool(w->hook_worker, "alive", 0);
        gc__rt_set_bool(w->hook_worker, "aborted", 1);
        gc__rt_worker_hook(GC_HOOK_worker_abort, w->hook_worker);
    }
    PyErr_Clear();
    PyObject *code = PyLong_FromLong(1);
    if (code != NULL) {
        PyErr_SetObject(PyExc_SystemExit, code);
        Py_DECREF(code); /* PyErr_SetObject does not steal it */
    }
    return NULL;
}

static PyMethodDef quit_def = {"_on_quit", on_quit, METH_VARARGS, NULL};
static PyMethodDef abort_def = {"_on_sigabrt", on_abort, METH_VARARGS, NULL};

/* A handler has run (Python wrote to the wakeup fd) while the loop was idle. */
static void on_wakeup(uv_poll_t *h, int status, int events)
{
    gc__worker_t *w = h->data;
    char buf[64];
    while (read(w->sig.wakeup_fds[0], buf, sizeof(buf)) > 0)
        ;
    gc__worker_gil(w);
    /* signal_exit is set too when a handler already ran in Python code of the loop
     * thread (a hook, a logging handler) that swallowed its SystemExit. */
    if (PyErr_CheckSignals() < 0 || w->signal_exit >= 0) {
        PyErr_Clear();
        gc__worker_quit(w, w->signal_exit >= 0 ? w->signal_exit : 1);
    }
}

/* signal.signal(signum, a function bound to w). Returns 0 or -1 with an exception. */
static int set_handler(PyObject *signal_mod, int signum, PyMethodDef *def, gc__worker_t *w)
{
    PyObject *capsule = PyCapsule_New(w, NULL, NULL);
    PyObject *handler = capsule ? PyCFunction_New(def, capsule) : NULL;
    Py_XDECREF(capsule);
    if (handler == NULL)
        return -1;
    PyObject *r = PyObject_CallMethod(signal_mod, "signal", "iO", signum, handler);
    Py_DECREF(handler);
    Py_XDECREF(r);
    return r ? 0 : -1;
}

/* Installs the INT/QUIT/ABRT handlers and the wakeup fd. A timed-out worker gets two
 * signals: GC_SIG_DUMP_STACK runs faulthandler's handler, which writes every thread's
 * Python stack to the error log at once, even when the code is stuck in C
 * (faulthandler refuses to chain on SIGABRT, a fatal signal); then SIGABRT. Returns 0
 * or -1. */
static int install_handlers(gc__worker_t *w)
{
    PyObject *r = NULL;
    PyObject *signal_mod = PyImport_ImportModule("signal");
    if (signal_mod != NULL && set_handler(signal_mod, SIGINT, &quit_def, w) == 0 &&
        set_handler(signal_mod, SIGQUIT, &quit_def, w) == 0 &&
        set_handler(signal_mod, SIGABRT, &abort_def, w) == 0)
        r = PyObject_CallMethod(signal_mod, "set_wakeup_fd", "i", w->sig.wakeup_fds[1]);
    Py_XDECREF(r);
    Py_XDECREF(signal_mod);
    if (r != NULL) {
        PyObject *fh = PyImport_ImportModule("faulthandler");
        r = fh ? PyObject_CallMethod(fh, "register", "iiii", GC_SIG_DUMP_STACK, gc__log_fd(), 1, 0)
               : NULL;
        Py_XDECREF(r);
        Py_XDECREF(fh);
    }
    if (r == NULL) {
        gc__py_log_exception(GC_LOG_WARNING, "Cannot install the worker's signal handlers");
        return -1;
    }
    return 0;
}

int gc__pysignals_install(gc__worker_t *w)
{
    if (pipe2(w->sig.wakeup_fds, O_NONBLOCK | O_CLOEXEC) < 0)
        return -1;
    uv_poll_init(w->loop, &w->sig.wakeup, w->sig.wakeup_fds[0]);
    w->sig.wakeup.data = w;
    uv_poll_start(&w->sig.wakeup, UV_READABLE, on_wakeup);
    uv_unref((uv_handle_t *)&w->sig.wakeup);
    return install_handlers(w);
}
