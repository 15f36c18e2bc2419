/* arbiter.c: the master process's loop (see arbiter.h).
 *
 * Everything happens in libuv callbacks on one thread: signals (uv_signal_t), a tick
 * once a second (heartbeats, recycling, promotion after a binary upgrade) and a kill
 * timer during stops. The arbiter never blocks on a worker.
 *
 * Recycling is make-before-break: a worker that reached --max-requests, and every
 * worker on HUP, is only marked "retiring"; replacements are forked at once, and the
 * retiring workers get TERM when every replacement has booted. Until then the old
 * ones keep accepting, so the listening sockets never go unserved. */
#include "arbiter/arbiter.h"

#include <Python.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

#include "arbiter/control.h"
#include "common/buf.h"
#include "common/clock.h"
#include "log/log.h"
#include "log/setup.h"
#include "log/statsd.h"
#include "proc/listen.h"
#include "proc/process.h"
#include "proc/scoreboard.h"
#include "python/config_file.h"
#include "python/interp.h"
#include "python/logbridge.h"
#include "python/runtime.h"
#include "workers/worker.h"
#include "wsgi/access.h"

enum { RUNNING = 0, STOP_GRACEFUL, STOP_QUICK };

/* Why the master itself sent a worker SIGKILL: its death is then no mystery, and the
 * log says so instead of suggesting the kernel's OOM killer. */
enum { KILLED_NOT = 0, KILLED_GRACEFUL_TIMEOUT, KILLED_WORKER_TIMEOUT };

/* The scoreboard has room for this many workers (TTIN stops there). */
#define MAX_WORKERS 1024

typedef struct {
    pid_t pid;
    unsigned age;
    int slot;
    int retiring; /* to be replaced; gets TERM once the replacements have booted */
    int term_sent;
    int aborted;    /* SIGABRT sent after a missed heartbeat; SIGKILL comes next */
    int killed;     /* KILLED_*: the master sent SIGKILL, and why */
    long kill_secs; /* the timeout (seconds) that had expired when it did */
    PyObject *obj;  /* owned: the Worker object hooks receive */
    uint64_t spawned_ms;
} child_t;

typedef struct {
    uv_loop_t *loop;
    gc__config_t *cfg;
    gc__config_t *owned_cfg; /* a config loaded on HUP, freed by the next one */
    int argc;
    char **argv; /* owned deep copy: process titles write over the original */
    char exe[PATH_MAX];
    char cwd[PATH_MAX];
    char proc_name[256];
    gc__listener_t *listeners;
    size_t nlisteners;
    int systemd; /* listeners came from systemd socket activation */
    child_t *workers;
    size_t nworkers;
    size_t cap;
    gc__scoreboard_t sb;
    long num_workers; /* the target */
    unsigned age;
    int stopping;
    int exit_code;
    const char *reason;  /* why the master halts, logged as "Reason: ..." */
    pid_t reexec_pid;    /* the new master forked by USR2 */
    pid_t reexec_parent; /* the old master, while we are the new one */
    const char *master_name;
    char *pidfile; /* the path we wrote (".2" before promotion), owned */
    PyObject *app; /* --preload: imported here, inherited by workers */
    uv_signal_t signals[11];
    uv_poll_t bell; /* the scoreboard's bell: a worker booted or wants replacing */
    uv_timer_t tick;
    uv_timer_t kill_timer;
    long kill_secs;              /* --graceful-timeout when the stop began */
    gc__control_t *control;      /* owned; NULL until started, or when disabled */
    int control_tried;           /* started once, not retried after a failure */
    gc__control_counts_t counts; /* for the control socket's `show stats` */
} arbiter_t;

static const int handled_signals[11] = {SIGTERM, SIGINT,  SIGQUIT, SIGCHLD,  SIGHUP, SIGTTIN,
                                        SIGTTOU, SIGUSR1, SIGUSR2, SIGWINCH, SIGALRM};

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

static void stop(arbiter_t *a, int how);

/* A master-side hook raised (src/python/runtime.h): as Gunicorn's master, this one
 * stops, with the exit status the exception gives. Gunicorn's leaves its workers to
 * notice they are orphans; this one stops them at once. */
static void hook_stop(arbiter_t *a, enum gc__hook_id id, int status)
{
    static char reason[64];
    if (a->reason == NULL) {
        snprintf(reason, sizeof(reason), "The %s hook stopped the master.", gc__hook_name(id));
        a->reason = reason;
        a->exit_code = status;
    }
    stop(a, STOP_QUICK);
}

static void set_num_workers(arbiter_t *a, long n)
{
    long old = a->num_workers;
    a->num_workers = n;
    gc__rt_set_long(gc__rt_server(), "num_workers", n);
    int status;
    if (n != old && gc__rt_nworkers_changed(n, old, &status) < 0)
        hook_stop(a, GC_HOOK_nworkers_changed, status);
}

/* --- spawning --------------------------------------------------------------------- */

static void close_handle(uv_handle_t *h, void *arg)
{
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

/* In the child: forget everything the arbiter's loop was watching, and serve. */
static void become_worker(arbiter_t *a, int slot, PyObject *obj)
{
    uv_loop_fork(a->loop);
    uv_walk(a->loop, close_handle, NULL);
    uv_run(a->loop, UV_RUN_NOWAIT);
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

/* fork() with CPython's fork hooks and every signal blocked: nothing may reach the
 * child before it has replaced the arbiter's handlers. The parent gets its mask back
 * at once; the child keeps signals blocked (*old holds the mask to restore). */
static pid_t fork_blocked(sigset_t *old)
{
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
    int slot = gc__scoreboard_claim(&a->sb, 0, gc__monotonic_ms());
    if (slot < 0) {
        gc__error("Cannot spawn a worker: all %d worker slots are in use", MAX_WORKERS);
        return -ENOSPC;
    }
    unsigned age = ++a->age;
    PyObject *obj = gc__rt_worker_new(age);
    int status;
    if (gc__rt_master_hook(GC_HOOK_pre_fork, obj, &status) < 0) {
        /* As in Gunicorn, the worker is not forked. */
        gc__scoreboard_release(&a->sb, slot);
        Py_XDECREF(obj);
        hook_stop(a, GC_HOOK_pre_fork, status);
        return -ECANCELED;
    }
    sigset_t old;
    pid_t pid = fork_blocked(&old);
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
    a->workers[a->nworkers++] = (child_t){
        .pid = pid, .age = age, .slot = slot, .obj = obj, .spawned_ms = gc__monotonic_ms()};
    a->counts.spawned++;
    return 0;
}

static void kill_all(arbiter_t *a, int sig)
{
    for (size_t i = 0; i < a->nworkers; i++)
        kill(a->workers[i].pid, sig);
}

/* SIGKILL from the master, remembered so that the reaper names the reason. */
static void kill_hard(child_t *c, int why, long secs)
{
    c->killed = why;
    c->kill_secs = secs;
    kill(c->pid, SIGKILL);
}

static int booted(const arbiter_t *a, const child_t *c)
{
    return atomic_load(&a->sb.slots[c->slot].state) != GC_SLOT_BOOTING;
}

/* Brings the worker set to the target: forks what is missing, retires the oldest
 * surplus, and sends TERM to retiring workers once every replacement has booted. */
static void manage_workers(arbiter_t *a)
{
    if (a->stopping)
        return;
    long active = 0;
    for (size_t i = 0; i < a->nworkers; i++)
        active += !a->workers[i].retiring;
    while (active < a->num_workers && spawn_worker(a) == 0)
        active++;
    while (active > a->num_workers) {
        child_t *oldest = NULL;
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
        child_t *c = &a->workers[i];
        if (c->retiring && !c->term_sent) {
            c->term_sent = 1;
            kill(c->pid, SIGTERM);
            a->counts.killed++;
        }
    }
}

/* --- stopping --------------------------------------------------------------------- */

static void on_kill_timer(uv_timer_t *t)
{
    arbiter_t *a = t->data;
    for (size_t i = 0; i < a->nworkers; i++)
        kill_hard(&a->workers[i], KILLED_GRACEFUL_TIMEOUT, a->kill_secs);
}

/* A unix socket file stays when another master shares it (USR2) or systemd owns it,
 * as in Gunicorn. */
static int may_unlink_sockets(const arbiter_t *a)
{
    return !a->reexec_pid && !a->reexec_parent && !a->systemd;
}

static void close_listeners(arbiter_t *a)
{
    int unlink_files = may_unlink_sockets(a);
    for (size_t i = 0; i < a->nlisteners; i++)
        gc__listener_close(&a->listeners[i], unlink_files);
}

static void stop(arbiter_t *a, int how)
{
    int first = a->stopping == RUNNING;
    if (!first && how <= a->stopping)
        return;
    a->stopping = how;
    if (first) {
        close_listeners(a);
        a->kill_secs = gc__cfg_int(a->cfg, GC_S_graceful_timeout);
        uv_timer_start(&a->kill_timer, on_kill_timer, (uint64_t)a->kill_secs * 1000, 0);
    }
    kill_all(a, how == STOP_GRACEFUL ? SIGTERM : SIGQUIT);
}

static void halt(arbiter_t *a, const char *reason, int code)
{
    if (a->reason == NULL) {
        a->reason = reason;
        a->exit_code = code;
    }
    stop(a, STOP_GRACEFUL);
}

static void log_exit(const child_t *c, int status)
{
    long pid = (long)c->pid;
    if (WIFSIGNALED(status)) {
        int sig = WTERMSIG(status);
        /* Gunicorn blames every SIGKILL on memory, its own kills included. A kill the
         * master sent says which timeout expired; only a SIGKILL from elsewhere (the
         * kernel's OOM killer, an operator) keeps the guess. */
        if (sig == SIGKILL && c->killed == KILLED_GRACEFUL_TIMEOUT)
            gc__error("Worker (pid:%ld) was sent SIGKILL by the master after the graceful "
                      "timeout (%lds)",
                      pid, c->kill_secs);
        else if (sig == SIGKILL && c->killed == KILLED_WORKER_TIMEOUT)
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

static void reap(arbiter_t *a)
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
        child_t c = a->workers[i];
        a->workers[i] = a->workers[--a->nworkers];
        gc__scoreboard_release(&a->sb, c.slot);
        log_exit(&c, status);
        gc__rt_set_bool(c.obj, "alive", 0);
        int hook_status;
        if (gc__rt_master_hook(GC_HOOK_child_exit, c.obj, &hook_status) < 0)
            hook_stop(a, GC_HOOK_child_exit, hook_status);
        Py_XDECREF(c.obj);
        if (WIFEXITED(status) && WEXITSTATUS(status) == GC_EXIT_WORKER_BOOT_ERROR)
            halt(a, "Worker failed to boot.", GC_EXIT_WORKER_BOOT_ERROR);
        else if (WIFEXITED(status) && WEXITSTATUS(status) == GC_EXIT_APP_LOAD_ERROR)
            halt(a, "App failed to load.", GC_EXIT_APP_LOAD_ERROR);
    }
}

/* --- the tick: heartbeats, retirements, promotion --------------------------------- */

static void check_timeouts(arbiter_t *a, uint64_t now)
{
    long timeout = gc__cfg_int(a->cfg, GC_S_timeout);
    if (timeout <= 0)
        return;
    for (size_t i = 0; i < a->nworkers; i++) {
        child_t *c = &a->workers[i];
        gc__slot_t *s = &a->sb.slots[c->slot];
        uint64_t beat = atomic_load(&s->beat_ms);
        if (now < beat || now - beat <= (uint64_t)timeout * 1000)
            continue;
        if (c->aborted) {
            kill_hard(c, KILLED_WORKER_TIMEOUT, timeout);
            continue;
        }
        c->aborted = 1;
        gc__critical("WORKER TIMEOUT (pid:%ld)", (long)c->pid);
        /* Unlike Gunicorn, say what the worker was doing: the scoreboard knows. */
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
        gc__rt_set_bool(c->obj, "aborted", 1);
        a->counts.killed++;
        kill(c->pid, GC_SIG_DUMP_STACK);
        kill(c->pid, SIGABRT);
    }
}

/* The old master is gone: take its names. The log line comes last, so whoever reads
 * it finds the pidfile and the title already in place. */
static void promote(arbiter_t *a)
{
    a->reexec_parent = 0;
    a->master_name = "Master";
    const char *configured = gc__cfg_str(a->cfg, GC_S_pidfile);
    if (a->pidfile && configured && gc__pidfile_rename(a->pidfile, configured) == 0) {
        free(a->pidfile);
        a->pidfile = strdup(configured);
    }
    size_t n = strlen(a->proc_name);
    if (n > 2 && strcmp(a->proc_name + n - 2, ".2") == 0)
        a->proc_name[n - 2] = '\0';
    gc__proctitle_set("gunicorn-c: master [%s]", a->proc_name);
    gc__info("Master has been promoted.");
}

/* Marks workers that reached --max-requests for replacement, and replaces them. */
static void mark_retiring(arbiter_t *a)
{
    for (size_t i = 0; i < a->nworkers; i++) {
        child_t *c = &a->workers[i];
        if (!c->retiring && atomic_load(&a->sb.slots[c->slot].state) == GC_SLOT_RETIRING)
            c->retiring = 1;
    }
}

static void on_tick(uv_timer_t *t)
{
    arbiter_t *a = t->data;
    if (a->reexec_parent && getppid() != a->reexec_parent)
        promote(a);
    check_timeouts(a, gc__monotonic_ms());
    if (gc__statsd_backlog_enabled()) {
        long queued = 0;
        for (size_t i = 0; i < a->nlisteners; i++)
            queued += gc__statsd_queued(a->listeners[i].fd);
        gc__statsd_backlog(queued);
    }
}

/* A worker rang: one has booted (retiring ones may now get TERM) or reached its
 * request limit (it needs a replacement). */
static void on_bell(uv_poll_t *h, int status, int events)
{
    arbiter_t *a = h->data;
    gc__scoreboard_drain(a->sb.bell);
}

/* --- listeners ------------------------------------------------------------------- */

/* How cfg's --bind addresses are bound. A unix socket file is given to the workers'
 * user and group, as Gunicorn does, so that a front end in that group can connect
 * while --umask keeps everyone else out; with --user alone the group is that user's
 * primary group, the one the workers switch to. */
static gc__bind_opts_t bind_opts(const gc__config_t *cfg)
{
    gc__bind_opts_t o = {
        .backlog = (int)gc__cfg_int(cfg, GC_S_backlog),
        .reuse_port = gc__cfg_int(cfg, GC_S_reuse_port) != 0,
        .umask = (int)gc__cfg_int(cfg, GC_S_umask),
        .uid = (uid_t)-1,
        .gid = (gid_t)-1,
    };
    if (cfg->v[GC_S_user].set)
        o.uid = (uid_t)gc__cfg_int(cfg, GC_S_user);
    if (cfg->v[GC_S_group].set) {
        o.gid = (gid_t)gc__cfg_int(cfg, GC_S_group);
    } else if (cfg->v[GC_S_user].set) {
        const struct passwd *pw = getpwuid(o.uid);
        if (pw != NULL)
            o.gid = pw->pw_gid;
    }
    return o;
}

static void log_listeners(arbiter_t *a, int with_pid)
{
    gc__buf_t urls;
    gc__buf_init(&urls);
    for (size_t i = 0; i < a->nlisteners; i++)
        gc__buf_printf(&urls, "%s%s", i ? "," : "", a->listeners[i].url);
    /* One line for all listeners, comma-joined, as Gunicorn logs them; at start with
     * the master's pid, after a HUP without (Gunicorn's two forms). */
    if (with_pid)
        gc__info("Listening at: %s (%ld)", urls.data ? urls.data : "", (long)getpid());
    else
        gc__info("Listening at: %s", urls.data ? urls.data : "");
    gc__buf_free(&urls);
}

static int same_binds(const gc__config_t *x, const gc__config_t *y)
{
    const gc__setting_value_t *a = &x->v[GC_S_bind], *b = &y->v[GC_S_bind];
    if (a->n != b->n)
        return 0;
    for (size_t i = 0; i < a->n; i++)
        if (strcmp(a->items[i], b->items[i]) != 0)
            return 0;
    return 1;
}

/* A HUP changed --bind: the listeners for addresses still wanted are kept (no port is
 * released, and no file replaced), the new addresses are bound with cfg's options,
 * and the listeners no longer wanted are closed, their socket files removed. The
 * workers being retired keep their own copies of the old sockets until they exit.
 * All or nothing: when an address cannot be bound the current listeners stay.
 * Returns 0 or a negative errno. */
static int rebind(arbiter_t *a, const gc__config_t *cfg)
{
    const gc__setting_value_t *bind = &cfg->v[GC_S_bind];
    size_t n = bind->n, i = 0;
    int rc = -ENOMEM;
    gc__listener_t *fresh = calloc(n ? n : 1, sizeof(*fresh));
    char *kept = calloc(a->nlisteners ? a->nlisteners : 1, 1); /* old listener reused */
    char *opened = calloc(n ? n : 1, 1);                       /* fresh one bound here */
    if (fresh == NULL || kept == NULL || opened == NULL)
        goto out;
    gc__bind_opts_t opts = bind_opts(cfg);
    for (i = 0; i < n; i++) {
        size_t j = 0;
        while (j < a->nlisteners &&
               (kept[j] || !gc__listener_matches(&a->listeners[j], bind->items[i])))
            j++;
        if (j < a->nlisteners) {
            fresh[i] = a->listeners[j]; /* takes over its fd and path */
            kept[j] = 1;
            continue;
        }
        rc = gc__listener_open(&fresh[i], bind->items[i], &opts);
        if (rc < 0)
            goto out;
        opened[i] = 1;
    }
    int unlink_files = may_unlink_sockets(a);
    for (size_t j = 0; j < a->nlisteners; j++)
        if (!kept[j])
            gc__listener_close(&a->listeners[j], unlink_files);
    free(a->listeners);
    a->listeners = fresh;
    a->nlisteners = n;
    fresh = NULL;
    rc = 0;
out:
    for (size_t k = 0; fresh && k < i; k++)
        if (opened[k])
            gc__listener_close(&fresh[k], 1);
    free(fresh);
    free(kept);
    free(opened);
    return rc;
}

/* --- signals ---------------------------------------------------------------------- */

/* The log destinations and the access line format, from the settings (at start and on
 * HUP). */
static int configure_logs(const gc__config_t *cfg, int reload)
{
    if (gc__logging_configure(cfg, reload) < 0)
        return -1;
    return gc__access_configure(cfg);
}

static void reload(arbiter_t *a)
{
    gc__info("Hang up: Master");
    a->counts.reloads++;
    /* Every source again, config file included, as Gunicorn does. A configuration
     * that fails to load changes nothing: the workers are still recycled, with the
     * configuration in force, so that a HUP always brings fresh application code. */
    gc__config_t *cfg = calloc(1, sizeof(*cfg));
    int rc = cfg ? gc__config_load(cfg, a->argc, a->argv) : -1;
    if (rc == GC_PARSE_OK)
        rc = gc__py_apply_env(cfg) == 0 ? GC_PARSE_OK : -1;
    if (rc != GC_PARSE_OK) {
        gc__error("Reload failed: the configuration is invalid; keeping the current one");
        if (cfg) {
            gc__config_free(cfg);
            free(cfg);
        }
    } else {
        configure_logs(cfg, 1);
        /* A changed --bind is bound now, before the new workers are forked. Under
         * systemd socket activation the sockets are systemd's and --bind is ignored. */
        if (!a->systemd && cfg->v[GC_S_bind].n > 0 && !same_binds(a->cfg, cfg)) {
            if (rebind(a, cfg) == 0) {
                log_listeners(a, 0);
            } else {
                /* The configuration records what is really bound, so that the next
                 * HUP tries the new addresses again. */
                gc__error("Reload: cannot bind the new addresses; keeping the current "
                          "listeners");
                gc__config_err_t err;
                const gc__setting_value_t *cur = &a->cfg->v[GC_S_bind];
                gc__config_set_list(cfg, GC_S_bind, (const char *const *)cur->items, cur->n, &err);
            }
        }
        a->cfg = cfg;
        if (a->owned_cfg) {
            gc__config_free(a->owned_cfg);
            free(a->owned_cfg);
        }
        a->owned_cfg = cfg;
        gc__rt_reconfigure(cfg);
    }
    int status;
    if (gc__rt_master_hook(GC_HOOK_on_reload, NULL, &status) < 0) {
        hook_stop(a, GC_HOOK_on_reload, status);
        return;
    }
    if (a->pidfile)
        gc__pidfile_write(a->pidfile, getpid());
    for (size_t i = 0; i < a->nworkers; i++)
        a->workers[i].retiring = 1;
    set_num_workers(a, gc__cfg_int(a->cfg, GC_S_workers));
}

static void forward_all(arbiter_t *a, int sig)
{
    for (size_t i = 0; i < a->nworkers; i++)
        kill(a->workers[i].pid, sig);
}

/* USR2: start a new master from the executable on disk, handing it our sockets. */
static void reexec(arbiter_t *a)
{
    if (a->reexec_pid) {
        gc__warning("USR2 signal ignored. Child exists.");
        return;
    }
    if (a->reexec_parent) {
        gc__warning("USR2 signal ignored. Parent exists.");
        return;
    }
    pid_t master = getpid();
    sigset_t old;
    pid_t pid = fork_blocked(&old);
    if (pid == 0) {
        /* A pre_exec hook that raises ends this new master before it executes; the
         * old one goes on. */
        int status;
        if (gc__rt_master_hook(GC_HOOK_pre_exec, NULL, &status) < 0) {
            fflush(NULL);
            _exit(status);
        }
        gc__buf_t fds;
        gc__buf_init(&fds);
        for (size_t i = 0; i < a->nlisteners; i++) {
            int fd = a->listeners[i].fd;
            fcntl(fd, F_SETFD, 0); /* survive exec */
            gc__buf_printf(&fds, "%s%d", i ? "," : "", fd);
        }
        char pidbuf[32];
        snprintf(pidbuf, sizeof(pidbuf), "%ld", (long)master);
        setenv("GUNICORN_PID", pidbuf, 1);
        setenv("GUNICORN_FD", fds.data ? fds.data : "", 1);
        if (chdir(a->cwd) < 0) {
            /* keep going: the new master resolves paths the way it would anyway */
        }
        for (int s = 1; s < NSIG; s++)
            signal(s, SIG_DFL);
        sigprocmask(SIG_SETMASK, &old, NULL);
        execv(a->exe, a->argv);
        gc__error("Cannot re-execute %s: %s", a->exe, strerror(errno));
        _exit(1);
    }
    if (pid < 0) {
        gc__error("Cannot fork a new master: %s", strerror(errno));
        return;
    }
    a->reexec_pid = pid;
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
    case SIGHUP:
        if (!a->stopping)
            reload(a);
        break;
    case SIGTTIN:
        if (!a->stopping && a->num_workers < MAX_WORKERS) {
            set_num_workers(a, a->num_workers + 1);
        }
        break;
    case SIGTTOU:
        if (!a->stopping && a->num_workers > 1) {
            set_num_workers(a, a->num_workers - 1);
        }
        break;
    case SIGUSR1:
        gc__logging_reopen();
        forward_all(a, SIGUSR1);
        break;
    case SIGUSR2:
        reexec(a);
        break;
    case SIGWINCH:
        if (gc__cfg_int(a->cfg, GC_S_daemon)) {
            gc__info("graceful stop of workers");
            set_num_workers(a, 0);
            if (a->stopping)
                break; /* the nworkers_changed hook stopped the master */
            kill_all(a, SIGTERM);
            for (size_t i = 0; i < a->nworkers; i++)
                a->workers[i].retiring = a->workers[i].term_sent = 1;
        } else {
            gc__debug("SIGWINCH ignored. Not daemonized");
        }
        break;
    default:
        break;
    }
}

/* --- the control socket's view of the arbiter ------------------------------------ */

static size_t ctl_workers(void *arg, gc__control_worker_t *out, size_t cap)
{
    arbiter_t *a = arg;
    for (size_t i = 0; i < a->nworkers && i < cap; i++) {
        const child_t *c = &a->workers[i];
        out[i] = (gc__control_worker_t){.pid = c->pid,
                                        .age = c->age,
                                        .slot = c->slot,
                                        .aborted = c->aborted,
                                        .retiring = c->retiring,
                                        .spawned_ms = c->spawned_ms};
    }
    return a->nworkers;
}

static void ctl_counts(void *arg, gc__control_counts_t *out)
{
    arbiter_t *a = arg;
    *out = a->counts;
    out->target = a->num_workers;
}

/* `worker add/remove`: as TTIN/TTOU, the loop forks or retires between two turns. */
static long ctl_scale(void *arg, long delta)
{
    arbiter_t *a = arg;
    if (a->stopping)
        return -1;
    long n = a->num_workers + delta;
    set_num_workers(a, n < 1 ? 1 : n > MAX_WORKERS ? MAX_WORKERS : n);
    return a->num_workers;
}

static int ctl_kill_worker(void *arg, pid_t pid)
{
    arbiter_t *a = arg;
    for (size_t i = 0; i < a->nworkers; i++)
        if (a->workers[i].pid == pid) {
            kill(pid, SIGTERM);
            a->counts.killed++;
            return 0;
        }
    return -ESRCH;
}

static const gc__config_t *ctl_config(void *arg)
{
    return ((arbiter_t *)arg)->cfg;
}

static const gc__listener_t *ctl_listeners(void *arg, size_t *n)
{
    arbiter_t *a = arg;
    *n = a->nlisteners;
    return a->listeners;
}

static const gc__control_ops_t control_ops = {
    .workers = ctl_workers,
    .counts = ctl_counts,
    .scale = ctl_scale,
    .kill_worker = ctl_kill_worker,
    .config = ctl_config,
    .listeners = ctl_listeners,
};

/* Opens the control socket once the first workers are forked. A new master started
 * by USR2 waits until it is promoted: until then the old master answers at the path,
 * and the new one never takes the socket from under a master still in charge. */
static void start_control(arbiter_t *a)
{
    if (a->control_tried || a->reexec_parent || a->stopping)
        return;
    a->control_tried = 1;
    if (gc__cfg_int(a->cfg, GC_S_control_socket_disable))
        return;
    const char *path = gc__cfg_str(a->cfg, GC_S_control_socket);
    if (path == NULL || *path == '\0')
        return;
    a->control = gc__control_start(
        a->loop, path, (int)gc__cfg_int(a->cfg, GC_S_control_socket_mode), &control_ops, a, &a->sb);
}

/* --- start-up --------------------------------------------------------------------- */

static char **copy_argv(int argc, char **argv)
{
    char **copy = calloc((size_t)argc + 1, sizeof(*copy));
    for (int i = 0; copy && i < argc; i++)
        copy[i] = strdup(argv[i]);
    return copy;
}

/* Listeners inherited from an old master (USR2) or systemd, or bound from --bind. */
static int open_listeners(arbiter_t *a)
{
    const char *inherited = getenv("GUNICORN_FD");
    int nsystemd = gc__systemd_listen_fds();
    size_t want = inherited ? 1 : nsystemd ? (size_t)nsystemd : a->cfg->v[GC_S_bind].n;
    if (inherited)
        for (const char *p = inherited; *p; p++)
            want += *p == ',';
    a->listeners = calloc(want ? want : 1, sizeof(*a->listeners));
    if (a->listeners == NULL)
        return -ENOMEM;
    if (inherited) {
        char *copy = strdup(inherited), *save = NULL;
        for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save))
            if (gc__listener_adopt(&a->listeners[a->nlisteners], atoi(tok)) == 0)
                a->nlisteners++;
        free(copy);
        unsetenv("GUNICORN_FD");
        return a->nlisteners ? 0 : -EBADF;
    }
    if (nsystemd) {
        a->systemd = 1;
        for (int i = 0; i < nsystemd; i++)
            if (gc__listener_adopt(&a->listeners[a->nlisteners], 3 + i) == 0)
                a->nlisteners++;
        return a->nlisteners ? 0 : -EBADF;
    }
    gc__bind_opts_t opts = bind_opts(a->cfg);
    for (size_t i = 0; i < a->cfg->v[GC_S_bind].n; i++) {
        if (gc__listener_open(&a->listeners[i], a->cfg->v[GC_S_bind].items[i], &opts) < 0)
            return -EADDRNOTAVAIL;
        a->nlisteners++;
    }
    return 0;
}

int gc__arbiter_run(gc__config_t *cfg, int argc, char **argv)
{
    static arbiter_t arbiter;
    arbiter_t *a = &arbiter;
    int rc = 1, status;
    int call_on_exit = 1; /* not when on_starting or when_ready ended the start */
    a->cfg = cfg;
    a->loop = uv_default_loop();
    a->argc = argc;
    a->argv = copy_argv(argc, argv);
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

    /* A client closing early must not kill the writer with SIGPIPE. */
    signal(SIGPIPE, SIG_IGN);
    gc__logging_set_bridge(&gc__python_log_bridge);
    if (configure_logs(cfg, 0) < 0)
        return 1;
    if (gc__cfg_int(cfg, GC_S_daemon)) {
        if (getenv("NOTIFY_SOCKET")) {
            /* The process systemd started is about to exit: a READY from its
             * grandchild would only confuse the service manager. */
            gc__warning("Ignoring NOTIFY_SOCKET: --daemon detaches from systemd");
            unsetenv("NOTIFY_SOCKET");
        }
        GC_PY_ASSERT_CLEAN("before the daemon's fork()");
        PyOS_BeforeFork();
        int drc = gc__daemonize();
        PyOS_AfterFork_Child();
        if (drc < 0)
            return 1;
        umask(022);
        gc__logging_after_daemon(); /* --capture-output: 1 and 2 back onto the log */
    }
    const char *inherited_pid = getenv("GUNICORN_PID");
    if (inherited_pid != NULL) {
        a->reexec_parent = (pid_t)atol(inherited_pid);
        unsetenv("GUNICORN_PID");
        if (a->reexec_parent != getppid())
            a->reexec_parent = 0;
    }
    if (a->reexec_parent) {
        a->master_name = "Master.2";
        strncat(a->proc_name, ".2", sizeof(a->proc_name) - strlen(a->proc_name) - 1);
    }
    gc__proctitle_init(argc, argv);
    gc__proctitle_set("gunicorn-c: master [%s]", a->proc_name);

    gc__info("Starting gunicorn-c %s", GC_VERSION);
    if (gc__scoreboard_init(&a->sb, MAX_WORKERS) < 0) {
        fprintf(stderr, "Error: cannot map the worker table\n");
        return 1;
    }
    if (gc__rt_start(cfg) < 0)
        goto out;
    const char *pidfile = gc__cfg_str(cfg, GC_S_pidfile);
    if (pidfile != NULL) {
        gc__buf_t path;
        gc__buf_init(&path);
        gc__buf_printf(&path, "%s%s", pidfile, a->reexec_parent ? ".2" : "");
        int prc = gc__pidfile_write(path.data, getpid());
        if (prc == -EEXIST) {
            gc__error("Already running on PID (or pid file '%s' is stale)", path.data);
            gc__buf_free(&path);
            goto out;
        }
        if (prc < 0)
            gc__warning("Cannot write the pid file %s: %s", path.data, strerror(-prc));
        else
            a->pidfile = path.data; /* takes ownership */
        if (prc < 0)
            gc__buf_free(&path);
    }
    gc__rt_set_long(gc__rt_server(), "pid", (long)getpid());
    if (gc__rt_master_hook(GC_HOOK_on_starting, NULL, &status) < 0) {
        rc = status;
        call_on_exit = 0;
        goto out;
    }
    if (open_listeners(a) < 0)
        goto out;
    log_listeners(a, 1);
    /* As Gunicorn: sync with --threads above 1 is named for what runs, gthread. */
    const char *wc = gc__cfg_str(cfg, GC_S_worker_class);
    size_t wl = wc ? strlen(wc) : 0;
    int sync_named =
        wc && (strcmp(wc, "sync") == 0 || (wl >= 10 && strcmp(wc + wl - 10, "SyncWorker") == 0));
    gc__info("Using worker: %s",
             sync_named && gc__cfg_int(cfg, GC_S_threads) > 1 ? "gthread" : (wc ? wc : "sync"));
    if (gc__worker_class_for(cfg) == &gc__gevent_class) {
        if (!gc__gevent_available()) {
            gc__error("The gevent worker needs the gevent package, which this Python cannot "
                      "import: install it (Debian: python3-gevent)");
            goto out;
        }
        /* A preloaded application is imported here: patch first, as the workers do. */
        if (gc__cfg_int(cfg, GC_S_preload_app) && gc__gevent_patch() < 0)
            goto out;
    }
    if (gc__cfg_int(cfg, GC_S_preload_app)) {
        int lrc = gc__py_load_app(cfg->app_uri, &a->app);
        if (lrc != 0)
            goto out;
    }

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

    gc__sd_notify("READY=1\nSTATUS=gunicorn-c arbiter booted");
    if (gc__rt_master_hook(GC_HOOK_when_ready, NULL, &status) < 0) {
        rc = status;
        call_on_exit = 0;
        goto out;
    }
    /* The first nworkers_changed (old value None) is part of the start, as in Gunicorn,
     * where it runs before on_starting. server.num_workers already holds the value. */
    if (gc__rt_nworkers_changed(a->num_workers, -1, &status) < 0) {
        rc = status;
        call_on_exit = 0;
        goto out;
    }
    /* Callbacks only record what must change; workers are forked here, between two
     * turns of the loop. A child forked inside a callback would inherit a loop that is
     * in the middle of running, and libuv cannot be re-entered there. */
    for (;;) {
        if (a->stopping) {
            if (a->nworkers == 0)
                break;
        } else {
            mark_retiring(a);
            manage_workers(a);
            start_control(a);
        }
        GC_PY_ASSERT_CLEAN("as the master's loop waits");
        uv_run(a->loop, UV_RUN_ONCE);
    }
    rc = a->exit_code;
    gc__info("Shutting down: %s", a->master_name);
    if (a->reason)
        gc__info("Reason: %s", a->reason);
out:
    kill_all(a, SIGKILL);
    close_listeners(a);
    if (a->control) {
        gc__control_close(a->control);
        a->control = NULL;
        uv_run(a->loop, UV_RUN_NOWAIT); /* its close callbacks free it */
    }
    if (a->pidfile)
        gc__pidfile_remove(a->pidfile, getpid());
    if (call_on_exit && gc__rt_master_hook(GC_HOOK_on_exit, NULL, &status) < 0)
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
