/* internal.h: what the files of the arbiter layer share with each other; arbiter.h and
 * control.h are the layer's public face. One file per job:
 *
 *   arbiter.c      gc__arbiter_run (start, serve, finish), the signals, the tick,
 *                  stopping
 *   children.c     the workers as the master sees them: forking, reaping, recycling,
 *                  timeouts
 *   upgrade.c      USR2: the new master forked and executed, its promotion
 *   hup.c          HUP: the configuration loaded again, the workers replaced
 *   listeners.c    the listening sockets: opened at start, rebound on HUP, closed
 *   control_ops.c  the arbiter's side of the control socket (gc__control_ops_t)
 *   metrics.c      --metrics-bind: /metrics, /livez and /readyz on the master's loop
 *
 * and the control socket (control.h):
 *
 *   control.c      the socket, its clients and the framing; requests parsed
 *   commands.c     the commands and their table
 *   show.c         the show commands' answers from the scoreboard and /proc; the JSON
 *                  writers every answer uses */
#ifndef GC_ARBITER_INTERNAL_H
#define GC_ARBITER_INTERNAL_H

#include <Python.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

#include "arbiter/control.h"
#include "common/buf.h"
#include "config/config.h"
#include "proc/listen.h"
#include "proc/metrics.h"
#include "proc/scoreboard.h"
#include "python/runtime.h"

/* --- the arbiter ------------------------------------------------------------------ */

/* The scoreboard has room for this many workers (TTIN stops there). */
#define GC_ARBITER_MAX_WORKERS 1024

/* gc__arbiter_t.stopping: how the master is stopping; a quick stop overrides a
 * graceful one, never the reverse. */
enum { GC_ARBITER_RUNNING = 0, GC_ARBITER_STOP_GRACEFUL, GC_ARBITER_STOP_QUICK };

/* Why the master itself sent a worker SIGKILL: its death is then no mystery, and the
 * log says so instead of suggesting the kernel's OOM killer. */
enum { GC_KILLED_NOT = 0, GC_KILLED_GRACEFUL_TIMEOUT, GC_KILLED_WORKER_TIMEOUT };

/* One worker. */
typedef struct {
    pid_t pid;
    unsigned age;
    int slot;
    int retiring; /* to be replaced; gets TERM once the replacements have booted */
    int term_sent;
    int aborted;    /* SIGABRT sent after a missed heartbeat; SIGKILL comes next */
    int killed;     /* GC_KILLED_*: the master sent SIGKILL, and why */
    long kill_secs; /* the timeout (seconds) that had expired when it did */
    PyObject *obj;  /* owned: the Worker object hooks receive */
    uint64_t spawned_ms;
} gc__child_t;

/* The master's state: one, static in gc__arbiter_run. */
typedef struct {
    uv_loop_t *loop;
    gc__config_t *cfg;       /* borrowed at start; owned_cfg after a HUP */
    gc__config_t *owned_cfg; /* a config loaded on HUP, freed by the next one */
    int argc;
    char **argv; /* owned deep copy: process titles write over the original */
    char exe[PATH_MAX];
    char cwd[PATH_MAX];
    char proc_name[256];
    gc__listener_t *listeners; /* owned */
    size_t nlisteners;
    int systemd;          /* listeners came from systemd socket activation */
    gc__child_t *workers; /* owned */
    size_t nworkers;
    size_t cap;
    gc__scoreboard_t sb;
    long num_workers; /* the target */
    unsigned age;
    int stopping; /* GC_ARBITER_RUNNING or GC_ARBITER_STOP_* */
    int exit_code;
    const char *reason;   /* why the master halts, logged as "Reason: ..." */
    int hook_ended_start; /* on_starting, when_ready or nworkers_changed raised: no on_exit */
    pid_t reexec_pid;     /* the new master forked by USR2 */
    pid_t reexec_parent;  /* the old master, while we are the new one */
    const char *master_name;
    char *pidfile;           /* the path we wrote (".2" before promotion), owned */
    PyObject *app;           /* --preload: imported here, inherited by workers */
    uv_signal_t signals[11]; /* one per signal handled (arbiter.c) */
    uv_poll_t bell;          /* the scoreboard's bell: a worker booted or wants replacing */
    uv_timer_t tick;
    uv_timer_t kill_timer;
    long kill_secs;                     /* --graceful-timeout when the stop began */
    gc__control_t *control;             /* owned; NULL until started, or when disabled */
    int control_tried;                  /* started once, not retried after a failure */
    gc__control_counts_t counts;        /* for the control socket's `show stats` */
    struct gc__metrics_server *metrics; /* owned; NULL until started, or when off */
    int metrics_tried;                  /* started once, not retried after a failure */
    gc__counts_t folded;                /* the request counters of exited workers */
    gc__metrics_master_t mcounts;       /* boots, exits, timeouts, kills */
} gc__arbiter_t;

/* arbiter.c */
/* A graceful stop with a reason and an exit status (the first reason given wins). */
void gc__arbiter_halt(gc__arbiter_t *a, const char *reason, int code);
/* A master-side hook raised (src/python/runtime.h): the master stops quickly, with the
 * exit status the exception gives. */
void gc__arbiter_hook_stop(gc__arbiter_t *a, enum gc__hook_id id, int status);

/* children.c */
/* fork() with CPython's fork hooks and every signal blocked: nothing may reach the
 * child before it has replaced the arbiter's handlers. The parent gets its mask back
 * at once; the child keeps signals blocked (*old holds the mask to restore). */
pid_t gc__arbiter_fork(sigset_t *old);
/* Sets the target number of workers and runs the nworkers_changed hook. */
void gc__arbiter_set_num_workers(gc__arbiter_t *a, long n);
/* Brings the worker set to the target: forks what is missing, retires the oldest
 * surplus, and sends TERM to retiring workers once every replacement has booted.
 * Forks: call only between two turns of the loop, never from a callback. */
void gc__arbiter_manage_workers(gc__arbiter_t *a);
/* Marks workers that reached --max-requests for replacement. */
void gc__arbiter_mark_retiring(gc__arbiter_t *a);
/* Reaps every exited child (SIGCHLD), running child_exit for workers. */
void gc__arbiter_reap(gc__arbiter_t *a);
/* Aborts workers whose heartbeat is older than --timeout, and kills those already
 * aborted. */
void gc__arbiter_check_timeouts(gc__arbiter_t *a, uint64_t now);
/* Sends sig to every worker. */
void gc__arbiter_signal_workers(gc__arbiter_t *a, int sig);
/* SIGKILL from the master, remembered so that the reaper names the reason (GC_KILLED_*)
 * and the timeout that expired. */
void gc__arbiter_kill_hard(gc__child_t *c, int why, long secs);

/* upgrade.c */
/* At start: when GUNICORN_PID names our parent, we are the new master of a USR2 and
 * take the names "Master.2" and "<proc_name>.2" until promoted. */
void gc__arbiter_inherit(gc__arbiter_t *a);
/* USR2: forks and executes a new master from the executable on disk, handing it our
 * sockets. */
void gc__arbiter_reexec(gc__arbiter_t *a);
/* Each tick: a new master whose old one has gone takes its names. */
void gc__arbiter_check_promotion(gc__arbiter_t *a);

/* hup.c */
/* HUP: every source of settings again, the logs reconfigured, a changed --bind rebound,
 * and every worker replaced. */
void gc__arbiter_reload(gc__arbiter_t *a);
/* The log destinations and the access line format, from cfg (at start and on HUP).
 * Returns 0 or -1. */
int gc__arbiter_configure_logs(const gc__config_t *cfg, int reload);

/* listeners.c */
/* Listeners inherited from an old master (USR2) or systemd, or bound from --bind.
 * Returns 0 or a negative errno. */
int gc__arbiter_open_listeners(gc__arbiter_t *a);
/* Closes every listener, removing unix socket files unless another master or systemd
 * shares them. */
void gc__arbiter_close_listeners(gc__arbiter_t *a);
/* Logs "Listening at: ...": with the master's pid at start, without after a HUP. */
void gc__arbiter_log_listeners(const gc__arbiter_t *a, int with_pid);
/* Makes the listeners match cfg's --bind, all or nothing. Returns 0 or a negative
 * errno (the current listeners then stay). */
int gc__arbiter_rebind(gc__arbiter_t *a, const gc__config_t *cfg);

/* control_ops.c */
/* Opens the control socket once, when the first workers are forked (a new master of a
 * USR2 waits until it is promoted). */
void gc__arbiter_start_control(gc__arbiter_t *a);

/* metrics.c */
/* Opens --metrics-bind once, when the first workers are forked (a new master of a USR2
 * waits until it is promoted); a failure is logged and the master runs without it. */
void gc__arbiter_start_metrics(gc__arbiter_t *a);
/* Closes it and its connections (the close callbacks free them: run the loop once). */
void gc__arbiter_stop_metrics(gc__arbiter_t *a);
/* In a new worker: closes the descriptors it inherited (its loop's handles are gone). */
void gc__arbiter_metrics_forget(gc__arbiter_t *a);
/* What /readyz answers: 1 when the target number of workers have booted and serve
 * (not timed out, not sent TERM) and the master is not stopping. */
int gc__arbiter_ready(const gc__arbiter_t *a);

/* --- the control socket ----------------------------------------------------------- */

struct gc__control_client; /* control.c */

struct gc__control {
    uv_pipe_t server;
    uv_loop_t *loop;
    char *path; /* owned, absolute */
    dev_t dev;  /* the socket file we made, so that we unlink only it */
    ino_t ino;
    const gc__control_ops_t *ops;
    void *arg;
    const gc__scoreboard_t *sb;
    struct gc__control_client *clients;
    size_t nclients;
    PyObject *parse; /* owned: the request parser (control.c) */
    char readbuf[65536];
};

/* commands.c */
/* Runs one command (words[0] is its name; n may be 0). Writes its data to *b and
 * returns NULL, or returns the error message (static, or in err). */
const char *gc__control_run(gc__control_t *ctl, char **words, size_t n, gc__buf_t *b, char *err,
                            size_t errcap);

/* show.c */
/* The show command (n >= 1), as gc__control_run's commands. */
const char *gc__control_show(gc__control_t *ctl, char **words, size_t n, gc__buf_t *b, char *err,
                             size_t errcap);
/* Appends s (borrowed; NULL gives null) as a JSON string; invalid UTF-8 becomes
 * U+FFFD (common/json.h). */
void gc__control_json_str(gc__buf_t *b, const char *s);
/* Appends `"key": ` to an object, after ", " unless *first (which it clears). */
void gc__control_json_key(gc__buf_t *b, int *first, const char *key);

#endif
