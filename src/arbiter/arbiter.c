/* arbiter.c: the master process's loop (see arbiter.h): gc__arbiter_run's three
 * phases (start, serve, finish), the signals, the tick and stopping. The other jobs
 * of the master are in the files internal.h lists.
 *
 * Everything happens in libuv callbacks on one thread: signals (uv_signal_t), a tick
 * once a second (heartbeats, promotion after a binary upgrade) and a kill timer during
 * stops. Callbacks only record what must change; workers are forked between two turns
 * of the loop (serve). The arbiter never blocks on a worker. This file is also the
 * layer's composition root: it registers the Python log bridge with the log layer. */
#include "arbiter/arbiter.h"
#include "arbiter/internal.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/clock.h"
#include "log/log.h"
#include "log/setup.h"
#include "log/statsd.h"
#include "proc/process.h"
#include "python/interp.h"
#include "python/logbridge.h"
#include "python/tls.h"
#include "workers/worker.h"

static const int handled_signals[] = {SIGTERM, SIGINT,  SIGQUIT, SIGCHLD,  SIGHUP, SIGTTIN,
                                      SIGTTOU, SIGUSR1, SIGUSR2, SIGWINCH, SIGALRM};

_Static_assert(sizeof(handled_signals) / sizeof(handled_signals[0]) ==
                   sizeof(((gc__arbiter_t *)0)->signals) / sizeof(uv_signal_t),
               "one uv_signal_t per handled signal");

static const char *signame(int sig)
{
    switch (sig) {
    case SIGTERM:
        return "term";
    case SIGINT:
        return "int";
    case SIGQUIT:
        return "quit";
    case SIGHUP:
        return "hup";
    case SIGTTIN:
        return "ttin";
    case SIGTTOU:
        return "ttou";
    case SIGUSR1:
        return "usr1";
    case SIGUSR2:
        return "usr2";
    case SIGWINCH:
        return "winch";
    case SIGCHLD:
        return "chld";
    default:
        return "signal";
    }
}

/* --- stopping --------------------------------------------------------------------- */

static void on_kill_timer(uv_timer_t *t)
{
    gc__arbiter_t *a = t->data;
    for (size_t i = 0; i < a->nworkers; i++)
        gc__arbiter_kill_hard(&a->workers[i], GC_KILLED_GRACEFUL_TIMEOUT, a->kill_secs);
}

/* Begins (or hardens) a stop: how is GC_ARBITER_STOP_GRACEFUL (TERM to the workers) or
 * GC_ARBITER_STOP_QUICK (QUIT). The first stop closes the listeners and arms the kill
 * timer; serve() ends when the last worker is reaped. */
static void stop(gc__arbiter_t *a, int how)
{
    int first = a->stopping == GC_ARBITER_RUNNING;
    if (!first && how <= a->stopping)
        return;
    a->stopping = how;
    if (first) {
        gc__arbiter_close_listeners(a);
        a->kill_secs = gc__cfg_int(a->cfg, GC_S_graceful_timeout);
        uv_timer_start(&a->kill_timer, on_kill_timer, (uint64_t)a->kill_secs * 1000, 0);
    }
    gc__arbiter_signal_workers(a, how == GC_ARBITER_STOP_GRACEFUL ? SIGTERM : SIGQUIT);
}

void gc__arbiter_halt(gc__arbiter_t *a, const char *reason, int code)
{
    if (a->reason == NULL) {
        a->reason = reason;
        a->exit_code = code;
    }
    stop(a, GC_ARBITER_STOP_GRACEFUL);
}

/* As Gunicorn's master, this one stops when a master-side hook raises. Gunicorn's
 * leaves its workers to notice they are orphans; this one stops them at once. */
void gc__arbiter_hook_stop(gc__arbiter_t *a, enum gc__hook_id id, int status)
{
    static char reason[64];
    if (a->reason == NULL) {
        snprintf(reason, sizeof(reason), "The %s hook stopped the master.", gc__hook_name(id));
        a->reason = reason;
        a->exit_code = status;
    }
    stop(a, GC_ARBITER_STOP_QUICK);
}

/* --- signals and the tick --------------------------------------------------------- */

/* WINCH: a daemon's workers stop gracefully and are not replaced (Gunicorn's "graceful
 * stop of workers"); in the foreground the terminal's resizes mean nothing. */
static void on_winch(gc__arbiter_t *a)
{
    if (!gc__cfg_int(a->cfg, GC_S_daemon)) {
        gc__debug("SIGWINCH ignored. Not daemonized");
        return;
    }
    gc__info("graceful stop of workers");
    gc__arbiter_set_num_workers(a, 0);
    if (a->stopping)
        return; /* the nworkers_changed hook stopped the master */
    gc__arbiter_signal_workers(a, SIGTERM);
    for (size_t i = 0; i < a->nworkers; i++)
        a->workers[i].retiring = a->workers[i].term_sent = 1;
}

static void on_signal(uv_signal_t *s, int signum)
{
    gc__arbiter_t *a = s->data;
    if (signum == SIGCHLD) {
        gc__arbiter_reap(a);
        return;
    }
    gc__info("Handling signal: %s", signame(signum));
    switch (signum) {
    case SIGTERM:
        stop(a, GC_ARBITER_STOP_GRACEFUL);
        break;
    case SIGINT:
    case SIGQUIT:
        stop(a, GC_ARBITER_STOP_QUICK);
        break;
    case SIGHUP:
        if (!a->stopping)
            gc__arbiter_reload(a);
        break;
    case SIGTTIN:
        if (!a->stopping && a->num_workers < GC_ARBITER_MAX_WORKERS)
            gc__arbiter_set_num_workers(a, a->num_workers + 1);
        break;
    case SIGTTOU:
        if (!a->stopping && a->num_workers > 1)
            gc__arbiter_set_num_workers(a, a->num_workers - 1);
        break;
    case SIGUSR1:
        gc__logging_reopen();
        gc__arbiter_signal_workers(a, SIGUSR1);
        break;
    case SIGUSR2:
        gc__arbiter_reexec(a);
        break;
    case SIGWINCH:
        on_winch(a);
        break;
    default:
        break;
    }
}

static void on_tick(uv_timer_t *t)
{
    gc__arbiter_t *a = t->data;
    gc__arbiter_check_promotion(a);
    gc__arbiter_check_timeouts(a, gc__monotonic_ms());
    if (gc__statsd_backlog_enabled()) {
        long queued = 0;
        for (size_t i = 0; i < a->nlisteners; i++)
            queued += gc__statsd_queued(a->listeners[i].fd);
        gc__statsd_backlog(queued);
    }
}

/* A worker rang: one has booted (retiring ones may now get TERM) or reached its
 * request limit (it needs a replacement). The loop's next turn sees to both. */
static void on_bell(uv_poll_t *h, int status, int events)
{
    gc__arbiter_t *a = h->data;
    gc__scoreboard_drain(a->sb.bell);
}

/* The signal handlers, the bell, the tick and the kill timer. Only the signals keep
 * the loop alive. */
static void watch(gc__arbiter_t *a)
{
    for (size_t i = 0; i < sizeof(handled_signals) / sizeof(handled_signals[0]); i++) {
        uv_signal_init(a->loop, &a->signals[i]);
        a->signals[i].data = a;
        uv_signal_start(&a->signals[i], on_signal, handled_signals[i]);
    }
    if (a->sb.bell >= 0 && uv_poll_init(a->loop, &a->bell, a->sb.bell) == 0) {
        a->bell.data = a;
        uv_poll_start(&a->bell, UV_READABLE, on_bell);
        uv_unref((uv_handle_t *)&a->bell);
    }
    uv_timer_init(a->loop, &a->kill_timer);
    a->kill_timer.data = a;
    uv_unref((uv_handle_t *)&a->kill_timer);
    uv_timer_init(a->loop, &a->tick);
    a->tick.data = a;
    uv_timer_start(&a->tick, on_tick, 1000, 1000);
    uv_unref((uv_handle_t *)&a->tick);
}

/* --- start ------------------------------------------------------------------------ */

/* The master's own facts: argv (copied: process titles write over the original), its
 * executable and directory (for USR2), its name for process titles. */
static void init(gc__arbiter_t *a, gc__config_t *cfg, int argc, char **argv)
{
    a->cfg = cfg;
    a->loop = uv_default_loop();
    a->argc = argc;
    a->argv = calloc((size_t)argc + 1, sizeof(*a->argv));
    for (int i = 0; a->argv && i < argc; i++)
        a->argv[i] = strdup(argv[i]);
    a->master_name = "Master";
    a->num_workers = gc__cfg_int(cfg, GC_S_workers);
    a->counts.started_ms = gc__monotonic_ms();
    ssize_t n = readlink("/proc/self/exe", a->exe, sizeof(a->exe) - 1);
    a->exe[n > 0 ? n : 0] = '\0';
    if (getcwd(a->cwd, sizeof(a->cwd)) == NULL)
        strcpy(a->cwd, "/");
    const char *name = gc__cfg_str(cfg, GC_S_proc_name);
    /* Gunicorn's default_proc_name is APP_MODULE (or the --paste ini file). */
    const char *fallback = gc__cfg_str(cfg, GC_S_default_proc_name);
    snprintf(a->proc_name, sizeof(a->proc_name), "%s",
             name           ? name
             : fallback     ? fallback
             : cfg->app_uri ? cfg->app_uri
                            : "gunicorn-c");
}

/* --daemon. Returns 0 (in the daemon) or -1. */
static int daemonize(const gc__config_t *cfg)
{
    if (getenv("NOTIFY_SOCKET")) {
        /* The process systemd started is about to exit: a READY from its grandchild
         * would only confuse the service manager. */
        gc__warning("Ignoring NOTIFY_SOCKET: --daemon detaches from systemd");
        unsetenv("NOTIFY_SOCKET");
    }
    GC_PY_ASSERT_CLEAN("before the daemon's fork()");
    PyOS_BeforeFork();
    int drc = gc__daemonize((int)gc__cfg_int(cfg, GC_S_enable_stdio_inheritance));
    PyOS_AfterFork_Child();
    if (drc < 0)
        return -1;
    umask(022);
    gc__logging_after_daemon(); /* --capture-output: 1 and 2 back onto the log */
    return 0;
}

/* The process itself: logs, daemon, title (over the original argv), the worker table.
 * Returns 0, or -1 when the master cannot start (nothing to undo then, and no hook has
 * run). */
static int prepare(gc__arbiter_t *a, int argc, char **argv)
{
    /* A client closing early must not kill the writer with SIGPIPE. */
    signal(SIGPIPE, SIG_IGN);
    gc__logging_set_bridge(&gc__python_log_bridge);
    if (gc__arbiter_configure_logs(a->cfg, 0) < 0)
        return -1;
    if (gc__cfg_int(a->cfg, GC_S_daemon) && daemonize(a->cfg) < 0)
        return -1;
    gc__arbiter_inherit(a);
    gc__proctitle_init(argc, argv);
    gc__proctitle_set("gunicorn-c: master [%s]", a->proc_name);

    gc__info("Starting gunicorn-c %s", GC_VERSION);
    if (gc__scoreboard_init(&a->sb, GC_ARBITER_MAX_WORKERS) < 0) {
        fprintf(stderr, "Error: cannot map the worker table\n");
        return -1;
    }
    return 0;
}

/* --pidfile (".2" appended for the new master of a USR2). Returns 0, or -1 when
 * another master holds it; a pidfile that cannot be written is only a warning. */
static int write_pidfile(gc__arbiter_t *a)
{
    const char *pidfile = gc__cfg_str(a->cfg, GC_S_pidfile);
    if (pidfile == NULL)
        return 0;
    gc__buf_t path;
    gc__buf_init(&path);
    gc__buf_printf(&path, "%s%s", pidfile, a->reexec_parent ? ".2" : "");
    int prc = gc__pidfile_write(path.data, getpid());
    if (prc == -EEXIST) {
        gc__error("Already running on PID (or pid file '%s' is stale)", path.data);
        gc__buf_free(&path);
        return -1;
    }
    if (prc < 0) {
        gc__warning("Cannot write the pid file %s: %s", path.data, strerror(-prc));
        gc__buf_free(&path);
    } else {
        a->pidfile = path.data; /* takes ownership */
    }
    return 0;
}

/* Names the worker class, checks that gevent is there when it is asked for, and
 * imports the application with --preload. Returns 0 or -1. */
static int prepare_app(gc__arbiter_t *a)
{
    gc__config_t *cfg = a->cfg;
    /* As Gunicorn: sync with --threads above 1 is named for what runs, gthread. */
    const char *wc = gc__cfg_str(cfg, GC_S_worker_class);
    size_t wl = wc ? strlen(wc) : 0;
    int sync_named =
        wc && (strcmp(wc, "sync") == 0 || (wl >= 10 && strcmp(wc + wl - 10, "SyncWorker") == 0));
    gc__info("Using worker: %s",
             sync_named && gc__cfg_int(cfg, GC_S_threads) > 1 ? "gthread" : (wc ? wc : "sync"));
    if (wc != NULL && strncmp(wc, "uvicorn.workers.", 16) == 0)
        gc__info("%s is uvicorn's worker class for Gunicorn: gunicorn-c runs its own asgi worker "
                 "(-k asgi) instead; docs/asgi.md says how they differ",
                 wc);
    if (gc__worker_class_for(cfg) == &gc__gevent_class) {
        if (!gc__gevent_available()) {
            gc__error("The gevent worker needs the gevent package, which this Python cannot "
                      "import: install it (Debian: python3-gevent)");
            return -1;
        }
        /* A preloaded application is imported here: patch first, as the workers do. */
        if (gc__cfg_int(cfg, GC_S_preload_app) && gc__gevent_patch() < 0)
            return -1;
    }
    if (gc__cfg_int(cfg, GC_S_preload_app) && gc__py_load_app(cfg->app_uri, &a->app) != 0)
        return -1;
    return 0;
}

/* A hook raised during the start: the start ends with the status it gave, and
 * on_exit does not run. Returns -1 for start() to return. */
static int hook_ended_start(gc__arbiter_t *a, int status, int *rc)
{
    *rc = status;
    a->hook_ended_start = 1;
    return -1;
}

/* The hook runtime, the pidfile, on_starting, the listeners, the application, the
 * handles, when_ready. Returns 0 when the master may serve, or -1 with *rc set. */
static int start(gc__arbiter_t *a, int *rc)
{
    int status;
    *rc = 1;
    if (gc__rt_start(a->cfg) < 0 || write_pidfile(a) < 0)
        return -1;
    if (gc__cfg_int(a->cfg, GC_S_spew))
        gc__rt_spew(); /* the workers inherit it: fork keeps this thread's tracer */
    gc__rt_set_long(gc__rt_server(), "pid", (long)getpid());
    if (gc__rt_master_hook(GC_HOOK_on_starting, NULL, &status) < 0)
        return hook_ended_start(a, status, rc);
    if (gc__py_tls_check(a->cfg) < 0)
        return -1;
    if (gc__arbiter_open_listeners(a) < 0)
        return -1;
    gc__arbiter_log_listeners(a, 1);
    if (prepare_app(a) < 0)
        return -1;
    watch(a);
    gc__sd_notify("READY=1\nSTATUS=gunicorn-c arbiter booted");
    if (gc__rt_master_hook(GC_HOOK_when_ready, NULL, &status) < 0)
        return hook_ended_start(a, status, rc);
    /* The first nworkers_changed (old value None) is part of the start, as in Gunicorn,
     * where it runs before on_starting. server.num_workers already holds the value. */
    if (gc__rt_nworkers_changed(a->num_workers, -1, &status) < 0)
        return hook_ended_start(a, status, rc);
    return 0;
}

/* --- serve and finish ------------------------------------------------------------- */

/* Runs until the master has stopped and its last worker is reaped. Callbacks only
 * record what must change; workers are forked here, between two turns of the loop. A
 * child forked inside a callback would inherit a loop that is in the middle of
 * running, and libuv cannot be re-entered there. Returns the exit status. */
static int serve(gc__arbiter_t *a)
{
    for (;;) {
        if (a->stopping) {
            if (a->nworkers == 0)
                break;
        } else {
            gc__arbiter_mark_retiring(a);
            gc__arbiter_manage_workers(a);
            gc__arbiter_start_control(a);
            gc__arbiter_start_metrics(a);
        }
        GC_PY_ASSERT_CLEAN("as the master's loop waits");
        uv_run(a->loop, UV_RUN_ONCE);
    }
    gc__info("Shutting down: %s", a->master_name);
    if (a->reason)
        gc__info("Reason: %s", a->reason);
    return a->exit_code;
}

/* Whatever start() got to is undone: workers left (after a failed start) are killed,
 * the sockets and the pidfile removed, on_exit run. Returns rc, or on_exit's status
 * when it raised. */
static int finish(gc__arbiter_t *a, int rc)
{
    int status;
    gc__arbiter_signal_workers(a, SIGKILL);
    gc__arbiter_close_listeners(a);
    if (a->control) {
        gc__control_close(a->control);
        a->control = NULL;
        uv_run(a->loop, UV_RUN_NOWAIT); /* its close callbacks free it */
    }
    if (a->metrics) {
        gc__arbiter_stop_metrics(a);
        uv_run(a->loop, UV_RUN_NOWAIT);
    }
    if (a->pidfile)
        gc__pidfile_remove(a->pidfile, getpid());
    if (!a->hook_ended_start && gc__rt_master_hook(GC_HOOK_on_exit, NULL, &status) < 0)
        rc = status;
    Py_CLEAR(a->app);
    for (size_t i = 0; i < a->nworkers; i++)
        Py_CLEAR(a->workers[i].obj);
    free(a->pidfile);
    free(a->listeners);
    free(a->workers);
    gc__scoreboard_free(&a->sb);
    for (int i = 0; a->argv && i < a->argc; i++)
        free(a->argv[i]);
    free(a->argv);
    return rc;
}

int gc__arbiter_run(gc__config_t *cfg, int argc, char **argv)
{
    static gc__arbiter_t arbiter;
    gc__arbiter_t *a = &arbiter;
    init(a, cfg, argc, argv);
    if (prepare(a, argc, argv) < 0)
        return 1;
    int rc;
    if (start(a, &rc) == 0)
        rc = serve(a);
    return finish(a, rc);
}
