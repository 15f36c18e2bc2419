/* arbiter.c: the master process's loop (see arbiter.h). */
#include "arbiter/arbiter.h"

#include <Python.h>
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

#include "arbiter/listen.h"
#include "common/buf.h"
#include "log/log.h"
#include "python/interp.h"
#include "workers/worker.h"

enum { RUNNING = 0, STOP_GRACEFUL, STOP_QUICK };

typedef struct {
    pid_t pid;
    unsigned age;
} child_t;

typedef struct {
    uv_loop_t *loop;
    gc__config_t *cfg;
    gc__listener_t *listeners;
    size_t nlisteners;
    child_t *workers;
    size_t nworkers;
    size_t cap;
    long num_workers; /* the target */
    unsigned age;
    int stopping;
    int exit_code;
    const char *reason; /* why the master halts, logged as "Reason: ..." */
    uv_signal_t signals[5];
    uv_timer_t kill_timer;
} arbiter_t;

static const int handled_signals[5] = {SIGTERM, SIGINT, SIGQUIT, SIGCHLD, SIGHUP};

static const char *signame(int sig)
{
    switch (sig) {
    case SIGTERM: return "term";
    case SIGINT: return "int";
    case SIGQUIT: return "quit";
    case SIGHUP: return "hup";
    case SIGKILL: return "SIGKILL";
    case SIGCHLD: return "chld";
    default: return "signal";
    }
}

static void close_handle(uv_handle_t *h, void *arg)
{
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

/* In the child: forget everything the arbiter's loop was watching. */
static void become_worker(arbiter_t *a)
{
    uv_loop_fork(a->loop);
    uv_walk(a->loop, close_handle, NULL);
    uv_run(a->loop, UV_RUN_NOWAIT);
    gc__worker_main(a->loop, a->cfg, a->listeners, a->nlisteners);
}

static int spawn_worker(arbiter_t *a)
{
    if (a->nworkers == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 8;
        child_t *w = realloc(a->workers, cap * sizeof(*w));
        if (w == NULL)
            return -ENOMEM;
        a->workers = w;
        a->cap = cap;
    }
    /* Signals stay blocked across fork, so none lands in the child before it has
     * replaced the arbiter's handlers with its own. */
    sigset_t all, old;
    sigfillset(&all);
    sigprocmask(SIG_BLOCK, &all, &old);
    PyOS_BeforeFork();
    pid_t pid = fork();
    if (pid == 0) {
        PyOS_AfterFork_Child();
        become_worker(a);
    }
    PyOS_AfterFork_Parent();
    sigprocmask(SIG_SETMASK, &old, NULL);
    if (pid < 0) {
        gc__error("Unable to fork a worker: %s", strerror(errno));
        return -errno;
    }
    a->workers[a->nworkers++] = (child_t){pid, ++a->age};
    return 0;
}

static void kill_all(arbiter_t *a, int sig)
{
    for (size_t i = 0; i < a->nworkers; i++)
        kill(a->workers[i].pid, sig);
}

static void on_kill_timer(uv_timer_t *t)
{
    arbiter_t *a = t->data;
    kill_all(a, SIGKILL);
}

static void close_listeners(arbiter_t *a)
{
    for (size_t i = 0; i < a->nlisteners; i++)
        gc__listener_close(&a->listeners[i], 1);
}

static void stop(arbiter_t *a, int how)
{
    int first = a->stopping == RUNNING;
    if (!first && how <= a->stopping)
        return;
    a->stopping = how;
    if (first) {
        close_listeners(a);
        long secs = gc__cfg_int(a->cfg, GC_S_graceful_timeout);
        uv_timer_start(&a->kill_timer, on_kill_timer, (uint64_t)secs * 1000, 0);
    }
    kill_all(a, how == STOP_GRACEFUL ? SIGTERM : SIGQUIT);
    if (a->nworkers == 0)
        uv_stop(a->loop);
}

static void halt(arbiter_t *a, const char *reason, int code)
{
    if (a->reason == NULL) {
        a->reason = reason;
        a->exit_code = code;
    }
    stop(a, STOP_GRACEFUL);
}

static void reap(arbiter_t *a)
{
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        size_t i;
        for (i = 0; i < a->nworkers && a->workers[i].pid != pid; i++)
            ;
        if (i == a->nworkers) {
            gc__debug("Reaped unknown child (pid:%ld)", (long)pid);
            continue;
        }
        a->workers[i] = a->workers[--a->nworkers];
        if (WIFSIGNALED(status)) {
            int sig = WTERMSIG(status);
            if (sig == SIGKILL)
                gc__error("Worker (pid:%ld) was sent SIGKILL! Perhaps out of memory?", (long)pid);
            else if (sig == SIGTERM)
                gc__info("Worker (pid:%ld) was sent SIGTERM!", (long)pid);
            else
                gc__warning("Worker (pid:%ld) was sent %s!", (long)pid, strsignal(sig));
        } else if (WIFEXITED(status) && WEXITSTATUS(status) != 0) {
            int code = WEXITSTATUS(status);
            gc__error("Worker (pid:%ld) exited with code %d.", (long)pid, code);
            if (code == GC_EXIT_WORKER_BOOT_ERROR)
                halt(a, "Worker failed to boot.", GC_EXIT_WORKER_BOOT_ERROR);
            else if (code == GC_EXIT_APP_LOAD_ERROR)
                halt(a, "App failed to load.", GC_EXIT_APP_LOAD_ERROR);
        }
    }
    if (a->stopping) {
        if (a->nworkers == 0)
            uv_stop(a->loop);
        return;
    }
    while ((long)a->nworkers < a->num_workers && spawn_worker(a) == 0)
        ;
}

static void on_signal(uv_signal_t *s, int signum)
{
    arbiter_t *a = s->data;
    if (signum == SIGCHLD) {
        reap(a);
        return;
    }
    gc__info("Handling signal: %s", signame(signum));
    switch (signum) {
    case SIGTERM:
        stop(a, STOP_GRACEFUL);
        break;
    case SIGINT:
    case SIGQUIT:
        stop(a, STOP_QUICK);
        break;
    default:
        break;
    }
}

int gc__arbiter_run(gc__config_t *cfg, int argc, char **argv)
{
    static arbiter_t arbiter;
    arbiter_t *a = &arbiter;
    a->cfg = cfg;
    a->loop = uv_default_loop();
    a->num_workers = gc__cfg_int(cfg, GC_S_workers);
    int rc = 1;

    /* A client closing early must not kill the writer with SIGPIPE. */
    signal(SIGPIPE, SIG_IGN);
    gc__info("Starting gunicorn-c %s", GC_VERSION);

    const gc__setting_value_t *binds = &cfg->v[GC_S_bind];
    a->listeners = calloc(binds->n, sizeof(*a->listeners));
    if (a->listeners == NULL)
        goto out;
    gc__buf_t urls;
    gc__buf_init(&urls);
    for (size_t i = 0; i < binds->n; i++) {
        if (gc__listener_open(&a->listeners[i], binds->items[i],
                              (int)gc__cfg_int(cfg, GC_S_backlog)) < 0) {
            gc__buf_free(&urls);
            goto out;
        }
        a->nlisteners++;
        if ((i > 0 && gc__buf_append(&urls, ",", 1) < 0) ||
            gc__buf_append_str(&urls, a->listeners[i].url) < 0 ||
            gc__buf_reserve(&urls, 1) < 0) {
            gc__buf_free(&urls);
            goto out;
        }
        urls.data[urls.len] = '\0';
    }
    /* One line for all listeners, comma-joined, as Gunicorn logs them. */
    gc__info("Listening at: %s (%ld)", urls.data ? urls.data : "", (long)getpid());
    gc__buf_free(&urls);
    gc__info("Using worker: %s", gc__cfg_str(cfg, GC_S_worker_class));

    for (size_t i = 0; i < sizeof(handled_signals) / sizeof(handled_signals[0]); i++) {
        uv_signal_init(a->loop, &a->signals[i]);
        a->signals[i].data = a;
        uv_signal_start(&a->signals[i], on_signal, handled_signals[i]);
    }
    uv_timer_init(a->loop, &a->kill_timer);
    a->kill_timer.data = a;
    uv_unref((uv_handle_t *)&a->kill_timer);

    for (long i = 0; i < a->num_workers; i++)
        if (spawn_worker(a) < 0)
            goto out;

    uv_run(a->loop, UV_RUN_DEFAULT);
    rc = a->exit_code;
    gc__info("Shutting down: Master");
    if (a->reason)
        gc__info("Reason: %s", a->reason);
out:
    kill_all(a, SIGKILL);
    close_listeners(a);
    free(a->listeners);
    free(a->workers);
    return rc;
}
