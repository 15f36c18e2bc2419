/* children.c: the workers as the master sees them (see internal.h): forking them,
 * reaping them, keeping their number at the target, recycling, and the heartbeat
 * timeouts.
 *
 * Recycling is make-before-break: a worker that reached --max-requests, and every
 * worker on HUP, is only marked "retiring"; replacements are forked at once, and the
 * retiring workers get TERM when every replacement has booted. Until then the old
 * ones keep accepting, so the listening sockets never go unserved.
 *
 * Forking happens only in gc__arbiter_manage_workers, which the loop calls between
 * two of its turns (arbiter.c says why). */
#include "arbiter/internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/clock.h"
#include "log/log.h"
#include "log/statsd.h"
#include "python/interp.h"
#include "workers/worker.h"

void gc__arbiter_set_num_workers(gc__arbiter_t *a, long n)
{
    long old = a->num_workers;
    a->num_workers = n;
    gc__rt_set_long(gc__rt_server(), "num_workers", n);
    int status;
    if (n != old && gc__rt_nworkers_changed(n, old, &status) < 0)
        gc__arbiter_hook_stop(a, GC_HOOK_nworkers_changed, status);
}

/* --- spawning --------------------------------------------------------------------- */

static void close_handle(uv_handle_t *h, void *arg)
{
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

/* In the child: forget everything the arbiter's loop was watching, and serve. */
static void become_worker(gc__arbiter_t *a, int slot, PyObject *obj)
{
    uv_loop_fork(a->loop);
    uv_walk(a->loop, close_handle, NULL);
    uv_run(a->loop, UV_RUN_NOWAIT);
    gc__arbiter_metrics_forget(a);
    /* Other workers' hook objects are of no use here. */
    gc__worker_boot_t boot = {
        .cfg = a->cfg,
        .listeners = a->listeners,
        .nlisteners = a->nlisteners,
        .slot = &a->sb.slots[slot],
        .slots = a->sb.slots,
        .nslots = a->sb.nslots,
        .hook_worker = obj,
        .app = a->app,
        .proc_name = a->proc_name,
        .bell = a->sb.bell,
    };
    gc__worker_main(a->loop, &boot);
}

/* What the master's Python has buffered for stdout and stderr (a hook's print(), the
 * lines of --spew) is written before a fork: otherwise each child would inherit a copy
 * of the buffer and write it again. */
static void flush_python_stdio(void)
{
    const char *names[] = {"stdout", "stderr"};
    for (size_t i = 0; i < 2; i++) {
        PyObject *stream = PySys_GetObject(names[i]); /* borrowed */
        PyObject *r =
            stream && stream != Py_None ? PyObject_CallMethod(stream, "flush", NULL) : NULL;
        Py_XDECREF(r);
        PyErr_Clear();
    }
}

pid_t gc__arbiter_fork(sigset_t *old)
{
    flush_python_stdio();
    GC_PY_ASSERT_CLEAN("before fork()");
    sigset_t all;
    sigfillset(&all);
    sigprocmask(SIG_BLOCK, &all, old);
    PyOS_BeforeFork();
    pid_t pid = fork();
    if (pid == 0) {
        PyOS_AfterFork_Child();
        return 0;
    }
    int err = errno;
    PyOS_AfterFork_Parent();
    sigprocmask(SIG_SETMASK, old, NULL);
    errno = err;
    return pid;
}

static int spawn_worker(gc__arbiter_t *a)
{
    if (a->nworkers == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 8;
        gc__child_t *w = realloc(a->workers, cap * sizeof(*w));
        if (w == NULL)
            return -ENOMEM;
        a->workers = w;
        a->cap = cap;
    }
    int slot = gc__scoreboard_claim(&a->sb, 0, gc__monotonic_ms());
    if (slot < 0) {
        gc__error("Cannot spawn a worker: all %d worker slots are in use", GC_ARBITER_MAX_WORKERS);
        return -ENOSPC;
    }
    unsigned age = ++a->age;
    PyObject *obj = gc__rt_worker_new(age);
    int status;
    if (gc__rt_master_hook(GC_HOOK_pre_fork, obj, &status) < 0) {
        /* As in Gunicorn, the worker is not forked. */
        gc__scoreboard_release(&a->sb, slot);
        Py_XDECREF(obj);
        gc__arbiter_hook_stop(a, GC_HOOK_pre_fork, status);
        return -ECANCELED;
    }
    sigset_t old;
    pid_t pid = gc__arbiter_fork(&old);
    if (pid == 0) {
        atomic_store(&a->sb.slots[slot].pid, (int32_t)getpid());
        become_worker(a, slot, obj);
    }
    if (pid < 0) {
        int err = errno;
        gc__error("Unable to fork a worker: %s", strerror(err));
        gc__scoreboard_release(&a->sb, slot);
        Py_XDECREF(obj);
        return -err;
    }
    atomic_store(&a->sb.slots[slot].pid, (int32_t)pid);
    gc__rt_set_long(obj, "pid", (long)pid);
    a->workers[a->nworkers++] = (gc__child_t){
        .pid = pid, .age = age, .slot = slot, .obj = obj, .spawned_ms = gc__monotonic_ms()};
    a->counts.spawned++;
    a->mcounts.boots++;
    return 0;
}

void gc__arbiter_signal_workers(gc__arbiter_t *a, int sig)
{
    for (size_t i = 0; i < a->nworkers; i++)
        kill(a->workers[i].pid, sig);
}

void gc__arbiter_kill_hard(gc__child_t *c, int why, long secs)
{
    c->killed = why;
    c->kill_secs = secs;
    kill(c->pid, SIGKILL);
}

static int booted(const gc__arbiter_t *a, const gc__child_t *c)
{
    return atomic_load(&a->sb.slots[c->slot].state) != GC_SLOT_BOOTING;
}

void gc__arbiter_manage_workers(gc__arbiter_t *a)
{
    if (a->stopping)
        return;
    long active = 0;
    for (size_t i = 0; i < a->nworkers; i++)
        active += !a->workers[i].retiring;
    while (active < a->num_workers && spawn_worker(a) == 0)
        active++;
    while (active > a->num_workers) {
        gc__child_t *oldest = NULL;
        for (size_t i = 0; i < a->nworkers; i++)
            if (!a->workers[i].retiring && (!oldest || a->workers[i].age < oldest->age))
                oldest = &a->workers[i];
        oldest->retiring = oldest->term_sent = 1;
        kill(oldest->pid, SIGTERM);
        a->counts.killed++;
        active--;
    }
    gc__statsd_workers(active); /* sent when it changed, as Gunicorn's gauge */
    int all_booted = 1;
    for (size_t i = 0; i < a->nworkers; i++)
        if (!a->workers[i].retiring && !booted(a, &a->workers[i]))
            all_booted = 0;
    for (size_t i = 0; all_booted && i < a->nworkers; i++) {
        gc__child_t *c = &a->workers[i];
        if (c->retiring && !c->term_sent) {
            c->term_sent = 1;
            kill(c->pid, SIGTERM);
            a->counts.killed++;
        }
    }
}

void gc__arbiter_mark_retiring(gc__arbiter_t *a)
{
    for (size_t i = 0; i < a->nworkers; i++) {
        gc__child_t *c = &a->workers[i];
        if (!c->retiring && atomic_load(&a->sb.slots[c->slot].state) == GC_SLOT_RETIRING)
            c->retiring = 1;
    }
}

/* --- reaping ---------------------------------------------------------------------- */

static void log_exit(const gc__child_t *c, int status)
{
    long pid = (long)c->pid;
    if (WIFSIGNALED(status)) {
        int sig = WTERMSIG(status);
        /* Gunicorn blames every SIGKILL on memory, its own kills included. A kill the
         * master sent says which timeout expired; only a SIGKILL from elsewhere (the
         * kernel's OOM killer, an operator) keeps the guess. */
        if (sig == SIGKILL && c->killed == GC_KILLED_GRACEFUL_TIMEOUT)
            gc__error("Worker (pid:%ld) was sent SIGKILL by the master after the graceful "
                      "timeout (%lds)",
                      pid, c->kill_secs);
        else if (sig == SIGKILL && c->killed == GC_KILLED_WORKER_TIMEOUT)
            gc__error("Worker (pid:%ld) was sent SIGKILL by the master after the worker "
                      "timeout (%lds)",
                      pid, c->kill_secs);
        else if (sig == SIGKILL)
            gc__error("Worker (pid:%ld) was sent SIGKILL! Perhaps out of memory?", pid);
        else if (sig == SIGTERM)
            gc__info("Worker (pid:%ld) was sent SIGTERM!", pid);
        else
            gc__warning("Worker (pid:%ld) was sent SIG%s!", pid, sigabbrev_np(sig));
    } else if (WIFEXITED(status) && WEXITSTATUS(status) != 0) {
        gc__error("Worker (pid:%ld) exited with code %d.", pid, WEXITSTATUS(status));
    }
}

/* A worker is gone: its slot is free, child_exit runs, and a worker that could not
 * boot or load the application stops the master. */
/* The metrics endpoint's counters: how the worker ended. */
static void count_exit(gc__arbiter_t *a, const gc__child_t *c, int status)
{
    gc__metrics_master_t *m = &a->mcounts;
    if (WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL && c->killed != GC_KILLED_NOT) {
        m->exits[GC_EXIT_KILLED]++;
        m->kills[c->killed == GC_KILLED_WORKER_TIMEOUT ? GC_KILL_TIMEOUT : GC_KILL_GRACEFUL]++;
    } else if (WIFSIGNALED(status)) {
        m->exits[GC_EXIT_SIGNAL]++;
    } else {
        m->exits[WEXITSTATUS(status) == 0 ? GC_EXIT_CLEAN : GC_EXIT_ERROR]++;
    }
}

static void worker_exited(gc__arbiter_t *a, gc__child_t c, int status)
{
    /* Its requests stay counted: the slot's counters join the totals before it is
     * free for another worker. */
    gc__counts_fold(&a->folded, &a->sb.slots[c.slot]);
    count_exit(a, &c, status);
    gc__scoreboard_release(&a->sb, c.slot);
    log_exit(&c, status);
    gc__rt_set_bool(c.obj, "alive", 0);
    int hook_status;
    if (gc__rt_master_hook(GC_HOOK_child_exit, c.obj, &hook_status) < 0)
        gc__arbiter_hook_stop(a, GC_HOOK_child_exit, hook_status);
    Py_XDECREF(c.obj);
    if (WIFEXITED(status) && WEXITSTATUS(status) == GC_EXIT_WORKER_BOOT_ERROR)
        gc__arbiter_halt(a, "Worker failed to boot.", GC_EXIT_WORKER_BOOT_ERROR);
    else if (WIFEXITED(status) && WEXITSTATUS(status) == GC_EXIT_APP_LOAD_ERROR)
        gc__arbiter_halt(a, "App failed to load.", GC_EXIT_APP_LOAD_ERROR);
}

void gc__arbiter_reap(gc__arbiter_t *a)
{
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        if (pid == a->reexec_pid) {
            gc__info("New master (pid:%ld) exited", (long)pid);
            a->reexec_pid = 0;
            continue;
        }
        size_t i;
        for (i = 0; i < a->nworkers && a->workers[i].pid != pid; i++)
            ;
        if (i == a->nworkers) {
            /* Not ours: an orphan re-parented to us when we run as PID 1. */
            gc__debug("Reaped unknown child (pid:%ld)", (long)pid);
            continue;
        }
        gc__child_t c = a->workers[i];
        a->workers[i] = a->workers[--a->nworkers];
        worker_exited(a, c, status);
    }
}

/* --- heartbeats ------------------------------------------------------------------- */

/* Unlike Gunicorn, say what a timed-out worker was doing: the scoreboard knows. */
static void log_timeout(const gc__child_t *c, const gc__slot_t *s, uint64_t now, long timeout)
{
    gc__critical("WORKER TIMEOUT (pid:%ld)", (long)c->pid);
    char method[16], path[240];
    uint64_t started;
    if (gc__slot_read_request(s, method, sizeof(method), path, sizeof(path), &started))
        gc__critical("Worker (pid:%ld) was serving \"%s %s\" for %.1fs; its Python stack "
                     "follows",
                     (long)c->pid, method, path, (double)(now - started) / 1000.0);
    else if (atomic_load(&s->state) == GC_SLOT_BOOTING)
        gc__critical("Worker (pid:%ld) was still booting (importing the application) "
                     "after %lds",
                     (long)c->pid, timeout);
}

void gc__arbiter_check_timeouts(gc__arbiter_t *a, uint64_t now)
{
    long timeout = gc__cfg_int(a->cfg, GC_S_timeout);
    if (timeout <= 0)
        return;
    for (size_t i = 0; i < a->nworkers; i++) {
        gc__child_t *c = &a->workers[i];
        gc__slot_t *s = &a->sb.slots[c->slot];
        uint64_t beat = atomic_load(&s->beat_ms);
        if (now < beat || now - beat <= (uint64_t)timeout * 1000)
            continue;
        if (c->aborted) {
            gc__arbiter_kill_hard(c, GC_KILLED_WORKER_TIMEOUT, timeout);
            continue;
        }
        c->aborted = 1;
        a->mcounts.timeouts++;
        log_timeout(c, s, now, timeout);
        gc__rt_set_bool(c->obj, "aborted", 1);
        a->counts.killed++;
        kill(c->pid, GC_SIG_DUMP_STACK);
        kill(c->pid, SIGABRT);
    }
}
