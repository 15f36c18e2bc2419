/* worker.c: the worker process: boot, signals, the tick, stopping (see worker.h; the
 * other jobs have a file each, listed in internal.h). */
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

#include "common/clock.h"
#include "log/log.h"
#include "log/setup.h"
#include "proc/process.h"
#include "python/interp.h"
#include "python/runtime.h"

/* --- stopping --------------------------------------------------------------------- */

void gc__worker_exit(gc__worker_t *w)
{
    gc__worker_gil(w);
    if (w->klass->leave != NULL && w->klass->leave(w))
        return;
    /* Python's finalization puts the default action back on signals it handled, so a
     * second INT/QUIT/ABRT (a terminal's ^C reaches master and workers alike, then the
     * master sends QUIT) would kill us mid-exit with a misleading message. Blocked,
     * they are dropped at _exit. */
    sigset_t quit_signals;
    sigemptyset(&quit_signals);
    sigaddset(&quit_signals, SIGINT);
    sigaddset(&quit_signals, SIGQUIT);
    sigaddset(&quit_signals, SIGABRT);
    sigaddset(&quit_signals, GC_SIG_KICK);
    sigprocmask(SIG_BLOCK, &quit_signals, NULL);
    /* The class first: on a quick stop it answers the requests still running in threads
     * or greenlets, before gc__worker_exit, the last hook, runs. */
    int finalize = w->klass->stop == NULL || w->klass->stop(w);
    if (w->hook_worker != NULL) {
        gc__rt_set_bool(w->hook_worker, "alive", 0);
        gc__rt_worker_hook(GC_HOOK_worker_exit, w->hook_worker);
        PyErr_Clear();
    }
    gc__info("Worker exiting (pid: %ld)", (long)getpid());
    /* Runs the application's atexit handlers, as Gunicorn's sys.exit does; but not
     * under code of the application still running in a thread or greenlet (a quick
     * stop, or the graceful timeout). */
    if (finalize) {
        gc__wsgi_state_free(&w->wsgi);
        gc__py_tls_free(&w->tls);
        Py_FinalizeEx();
    }
    fflush(NULL);
    _exit(w->exit_code);
}

void gc__worker_quit(gc__worker_t *w, int code)
{
    w->exit_code = code;
    gc__worker_exit(w);
}

static void on_deadline(uv_timer_t *t)
{
    gc__worker_exit(t->data);
}

void gc__worker_stop(gc__worker_t *w)
{
    if (w->stopping)
        return;
    gc__worker_gil(w);
    w->stopping = 1;
    gc__debug("Worker stopping gracefully with %zu open connection(s)",
              w->open.n - w->open.closing);
    gc__rt_set_bool(w->hook_worker, "alive", 0);
    gc__accept_close(w);
    gc__conns_last_call(w);
    if (w->open.n == 0)
        gc__worker_exit(w);
    long secs = gc__cfg_int(w->cfg, GC_S_graceful_timeout);
    uv_timer_start(&w->deadline, on_deadline, (uint64_t)(secs > 0 ? secs : 1) * 1000, 0);
}

static void on_signal(uv_signal_t *s, int signum)
{
    gc__worker_t *w = s->data;
    switch (signum) {
    case SIGTERM:
        gc__worker_stop(w);
        break;
    case SIGUSR1:
        gc__logging_reopen();
        break;
    case SIGWINCH:
        gc__debug("SIGWINCH ignored. Not a master");
        break;
    default:
        break;
    }
}

static void on_tick(uv_timer_t *t)
{
    gc__worker_t *w = t->data;
    gc__slot_beat(w->slot, gc__monotonic_ms());
    gc__accept_update(w); /* after running out of descriptors */
    if (getppid() != w->ppid) {
        gc__info("Parent changed, shutting down: %ld", (long)getpid());
        gc__worker_exit(w);
    }
}

/* --- boot ------------------------------------------------------------------------- */

static void set_limits(gc__worker_t *w, const gc__config_t *cfg)
{
    gc__http_limits_default(&w->limits);
    long line = gc__cfg_int(cfg, GC_S_limit_request_line);
    w->limits.max_line = line > 8190 ? 8190 : (size_t)line;
    long fields = gc__cfg_int(cfg, GC_S_limit_request_fields);
    w->limits.max_fields = fields <= 0 || fields > 32768 ? 32768 : (size_t)fields;
    long fsize = gc__cfg_int(cfg, GC_S_limit_request_field_size);
    w->limits.max_field_size = fsize <= 0 ? 8190 : (size_t)fsize;
    w->limits.permit_obsolete_folding = gc__cfg_int(cfg, GC_S_permit_obsolete_folding) != 0;
    w->limits.permit_unconventional_method =
        gc__cfg_int(cfg, GC_S_permit_unconventional_http_method) != 0;
    w->limits.casefold_method = gc__cfg_int(cfg, GC_S_casefold_http_method) != 0;
    w->limits.head_first = w->klass->streams_bodies;
    w->limits.strip_header_spaces = gc__cfg_int(cfg, GC_S_strip_header_spaces) != 0;
    w->limits.permit_unconventional_version =
        gc__cfg_int(cfg, GC_S_permit_unconventional_http_version) != 0;
}

/* --no-sendfile (sendfile = False) turns sendfile(2) off. Unset, $SENDFILE decides as
 * in Gunicorn: y, 1, yes or true (any case) turn it on, any other value off, and it is
 * on when the variable is absent. Gunicorn also turns it off for `sendfile = True`
 * (any value but None); here True means on. */
static int sendfile_enabled(const gc__config_t *cfg)
{
    const gc__setting_value_t *v = &cfg->v[GC_S_sendfile];
    if (!v->none)
        return v->i != 0;
    const char *env = getenv("SENDFILE");
    if (env == NULL)
        return 1;
    return strcasecmp(env, "y") == 0 || strcasecmp(env, "1") == 0 || strcasecmp(env, "yes") == 0 ||
           strcasecmp(env, "true") == 0;
}

/* Switches to --user / --group when they differ from ours. */
static void drop_privileges(const gc__config_t *cfg)
{
    const char *user = gc__cfg_str(cfg, GC_S_user), *group = gc__cfg_str(cfg, GC_S_group);
    if (user == NULL && group == NULL)
        return;
    uid_t uid = getuid();
    gid_t gid = getgid();
    if ((user && gc__lookup_uid(user, &uid, group ? NULL : &gid) < 0) ||
        (group && gc__lookup_gid(group, &gid) < 0)) {
        gc__error("No such user or group: %s", user ? user : group);
        _exit(GC_EXIT_WORKER_BOOT_ERROR);
    }
    int rc = gc__drop_privileges(uid, gid, gc__cfg_int(cfg, GC_S_initgroups) != 0);
    if (rc < 0) {
        gc__error("Cannot switch to user %ld, group %ld: %s", (long)uid, (long)gid, strerror(-rc));
        _exit(GC_EXIT_WORKER_BOOT_ERROR);
    }
}

/* The worker's own state from what the arbiter handed over, the class's first step
 * (gevent patches here, before any hook or import: modules imported later see the
 * patched socket, time, threading) and the limits. */
static void init_worker(gc__worker_t *w, uv_loop_t *loop, const gc__worker_boot_t *boot)
{
    const gc__config_t *cfg = boot->cfg;
    w->loop = loop;
    w->cfg = cfg;
    w->listeners = boot->listeners;
    w->nlisteners = boot->nlisteners;
    w->slot = boot->slot;
    w->acc.slots = boot->slots;
    w->acc.nslots = boot->slots != NULL ? boot->nslots : 0;
    w->hook_worker = boot->hook_worker;
    w->ppid = getppid();
    w->signal_exit = -1;
    w->bell = boot->bell;
    w->klass = gc__worker_class_for(cfg);
    if (w->klass->early != NULL && w->klass->early(w) < 0)
        _exit(GC_EXIT_WORKER_BOOT_ERROR);
    set_limits(w, cfg);
    if (gc__frontend_init(&w->front, cfg) < 0)
        _exit(GC_EXIT_WORKER_BOOT_ERROR);
    w->limits.forward = &w->front.forward;
    long maxr = gc__cfg_int(cfg, GC_S_max_requests);
    if (maxr > 0) {
        long jitter = gc__cfg_int(cfg, GC_S_max_requests_jitter);
        srandom((unsigned)getpid() ^ (unsigned)gc__monotonic_ms());
        w->max_requests = (uint64_t)maxr + (jitter > 0 ? (uint64_t)(random() % (jitter + 1)) : 0);
    }
}

/* TERM, USR1, WINCH on the loop; INT, QUIT, ABRT as Python-level handlers. */
static void install_signals(gc__worker_t *w)
{
    uv_signal_t *sigs[] = {&w->sig.term, &w->sig.usr1, &w->sig.winch};
    int nums[] = {SIGTERM, SIGUSR1, SIGWINCH};
    for (size_t i = 0; i < sizeof(nums) / sizeof(nums[0]); i++) {
        uv_signal_init(w->loop, sigs[i]);
        sigs[i]->data = w;
        uv_signal_start(sigs[i], on_signal, nums[i]);
    }
    gc__pysignals_install(w);
    sigset_t all;
    sigfillset(&all);
    sigprocmask(SIG_UNBLOCK, &all, NULL);
}

/* The application (preloaded, or imported now) and the WSGI state around it. Exits the
 * process as Gunicorn does when it cannot be had. */
static void load_app(gc__worker_t *w, const gc__worker_boot_t *boot)
{
    const gc__config_t *cfg = w->cfg;
    PyObject *app = boot->app;
    if (app != NULL) {
        Py_INCREF(app);
    } else {
        int rc = gc__py_load_app(cfg->app_uri, &app);
        if (rc != 0) {
            gc__info("Worker exiting (pid: %ld)", (long)getpid());
            fflush(NULL);
            /* A SystemExit from our own INT/QUIT/ABRT handler (a quick stop, or a
             * timeout while importing) is no boot error: exit 3 would make the master
             * halt the whole server. */
            _exit(w->signal_exit >= 0 ? w->signal_exit : rc);
        }
    }
    gc__wsgi_options_t opt = {
        .multithread = w->klass->multithread,
        .multiprocess = gc__cfg_int(cfg, GC_S_workers) > 1,
        .sendfile = sendfile_enabled(cfg),
        .https = gc__py_tls_enabled(cfg),
    };
    if (gc__wsgi_state_init(&w->wsgi, app, &opt) < 0) {
        gc__py_log_exception(GC_LOG_ERROR, "Exception in worker process");
        _exit(GC_EXIT_WORKER_BOOT_ERROR);
    }
    Py_DECREF(app);
    w->wsgi.hook_worker = w->hook_worker;
}

/* What a connection may speak. Under --certfile/--keyfile: the TLS context every
 * connection's session is made from, built by Python's ssl module and the ssl_context
 * hook in each worker (a HUP's new workers read the certificate files again), and h2
 * by ALPN. Without TLS: h2c, from --http2-cleartext. */
static void init_protocols(gc__worker_t *w)
{
    const gc__config_t *cfg = w->cfg;
    int h2 = gc__cfg_list_has(cfg, GC_S_http_protocols, "h2");
    if (!gc__py_tls_enabled(cfg)) {
        /* h2c (Gunicorn's HEAD): prior knowledge; "both" sniffs for it too. */
        const char *mode = gc__cfg_str(cfg, GC_S_http2_cleartext);
        w->h2c = h2 && mode != NULL &&
                 (strcmp(mode, "prior-knowledge") == 0 || strcmp(mode, "both") == 0);
        /* Under "both" a trusted peer must send the preface (Gunicorn's rule), so the
         * Upgrade handshake is only for "upgrade". */
        w->h2c_upgrade = h2 && mode != NULL && strcmp(mode, "upgrade") == 0;
        return;
    }
    char err[512];
    if (gc__py_tls_make(&w->tls, cfg, h2, err, sizeof(err)) < 0) {
        if (PyErr_Occurred())
            gc__py_log_exception(GC_LOG_ERROR, "Exception in worker process");
        gc__error("Cannot make the TLS context: %s", err);
        _exit(GC_EXIT_WORKER_BOOT_ERROR);
    }
    w->tls_opt.suppress_ragged_eofs = (int)gc__cfg_int(cfg, GC_S_suppress_ragged_eofs);
    w->tls_opt.ktls = gc__tls_kernel_available() && sendfile_enabled(cfg);
    w->http2 = h2;
}

/* Everything the loop runs besides connections: the done queue, the GIL's release,
 * the class, accepting, the heartbeat tick, --reload. */
static void start_loop(gc__worker_t *w)
{
    uv_loop_t *loop = w->loop;
    pthread_mutex_init(&w->done.lock, NULL);
    uv_async_init(loop, &w->done.async, gc__worker_on_done);
    w->done.async.data = w; /* referenced: the loop lives while requests run elsewhere */
    pthread_mutex_init(&w->h2news.lock, NULL);
    uv_async_init(loop, &w->h2news.async, gc__h2conn_on_news);
    w->h2news.async.data = w;
    uv_check_init(loop, &w->h2check);
    w->h2check.data = w;
    if (w->klass->loop_releases_gil) {
        uv_prepare_init(loop, &w->gil_release);
        w->gil_release.data = w;
        uv_prepare_start(&w->gil_release, gc__worker_on_gil_release);
        uv_unref((uv_handle_t *)&w->gil_release);
    }
    if (w->klass->start != NULL && w->klass->start(w) < 0)
        _exit(GC_EXIT_WORKER_BOOT_ERROR);
    int err = gc__accept_start(w);
    if (err < 0) {
        gc__error("Cannot accept connections: %s", uv_strerror(err));
        _exit(GC_EXIT_WORKER_BOOT_ERROR);
    }
    uv_timer_init(loop, &w->tick);
    uv_timer_init(loop, &w->deadline);
    w->tick.data = w->deadline.data = w;
    /* The heartbeat: the arbiter reads it from the scoreboard. A request that runs
     * longer than --timeout stops it, as in Gunicorn's sync worker. */
    long timeout = gc__cfg_int(w->cfg, GC_S_timeout);
    uint64_t every = timeout > 0 && timeout < 2 ? 500 : 1000;
    uv_timer_start(&w->tick, on_tick, every, every);
    uv_unref((uv_handle_t *)&w->tick);
    if (gc__cfg_int(w->cfg, GC_S_reload))
        gc__reload_watch(w);
}

void gc__worker_main(uv_loop_t *loop, const gc__worker_boot_t *boot)
{
    static gc__worker_t worker;
    gc__worker_t *w = &worker;
    init_worker(w, loop, boot);

    gc__proctitle_set("gunicorn-c: worker [%s]", boot->proc_name);
    gc__info("Booting worker with pid: %ld", (long)getpid());
    gc__rt_set_long(w->hook_worker, "pid", (long)getpid());
    gc__rt_worker_hook(GC_HOOK_post_fork, w->hook_worker);
    install_signals(w);
    drop_privileges(w->cfg);
    load_app(w, boot);
    init_protocols(w);
    start_loop(w);

    gc__rt_set_bool(w->hook_worker, "booted", 1);
    gc__rt_worker_hook(GC_HOOK_post_worker_init, w->hook_worker);
    PyErr_Clear();
    gc__slot_beat(w->slot, gc__monotonic_ms());
    atomic_store(&w->slot->state, GC_SLOT_IDLE);
    gc__scoreboard_ring(w->bell); /* retiring workers may now be stopped */

    if (w->klass->serve != NULL)
        w->klass->serve(w);
    else
        uv_run(loop, UV_RUN_DEFAULT);
    gc__worker_exit(w);
    _exit(w->exit_code); /* (gc__worker_exit does not return here) */
}
