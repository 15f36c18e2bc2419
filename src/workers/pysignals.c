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
#include <sys/syscall.h>
#include <time.h>
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

/* --- the kick: a signal that arrived where it could interrupt nothing ---------------- *
 *
 * Python's C-level handler only records a signal; the Python-level one runs at the next
 * bytecode, or when a blocking system call fails with EINTR (PEP 475). A signal that
 * lands after the interpreter's last check and before the call blocks (between
 * time.sleep's argument parsing and its clock_nanosleep), or one the kernel delivers to
 * another thread of the application, interrupts nothing: the call blocks for its whole
 * duration with the handler pending. So our C handler wraps Python's and, the first
 * time, starts a timer that sends the loop thread GC_SIG_KICK every GC_KICK_MS until
 * the Python-level handler has run. The kick's handler does nothing and is installed
 * without SA_RESTART, so whatever call blocks fails with EINTR and Python runs the
 * pending handler. */
#define GC_KICK_MS 50

static struct sigaction py_actions[SIGABRT + 1]; /* Python's handlers for INT, QUIT, ABRT */
static gc__worker_t *kick_worker;
static timer_t kick_timer;
static volatile sig_atomic_t kick_ready, kick_armed;

static void kick_every(long ms)
{
    struct itimerspec its = {{0, ms * 1000000L}, {0, ms * 1000000L}};
    if (timer_settime(kick_timer, 0, &its, NULL) == 0) /* async-signal-safe */
        kick_armed = ms > 0;
}

static void on_kick(int signum)
{
    int saved = errno;
    if (kick_worker->signal_exit >= 0) /* the handler has run: nothing to interrupt */
        kick_every(0);
    errno = saved;
}

static void on_stop_signal(int signum)
{
    int saved = errno;
    py_actions[signum].sa_handler(signum);
    if (kick_ready && !kick_armed && kick_worker->signal_exit < 0)
        kick_every(GC_KICK_MS);
    errno = saved;
}

/* Puts on_stop_signal in front of the C handler Python installed for each signal. */
static void install_kick(gc__worker_t *w)
{
    static const int sigs[] = {SIGINT, SIGQUIT, SIGABRT};
    struct sigevent ev;
    memset(&ev, 0, sizeof(ev));
    ev.sigev_notify = SIGEV_THREAD_ID; /* the loop thread, where Python runs handlers */
    ev.sigev_signo = GC_SIG_KICK;
#ifndef sigev_notify_thread_id
#define sigev_notify_thread_id _sigev_un._tid
#endif
    ev.sigev_notify_thread_id = (pid_t)syscall(SYS_gettid);
    struct sigaction kick = {.sa_handler = on_kick}; /* no SA_RESTART: calls fail */
    sigemptyset(&kick.sa_mask);
    if (timer_create(CLOCK_MONOTONIC, &ev, &kick_timer) < 0 ||
        sigaction(GC_SIG_KICK, &kick, NULL) < 0)
        return;
    kick_worker = w;
    for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
        struct sigaction *py = &py_actions[sigs[i]];
        if (sigaction(sigs[i], NULL, py) < 0 || (py->sa_flags & SA_SIGINFO) ||
            py->sa_handler == SIG_DFL || py->sa_handler == SIG_IGN)
            continue;
        struct sigaction ours = *py;
        ours.sa_handler = on_stop_signal;
        sigaction(sigs[i], &ours, NULL);
    }
    kick_ready = 1;
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
    if (install_handlers(w) < 0)
        return -1;
    install_kick(w);
    return 0;
}
