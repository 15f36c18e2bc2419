/* control.h: the control socket, Gunicorn 26's `gunicornc` interface, in the master.
 *
 * A unix stream socket on the arbiter's loop. Each message, both ways, is a 4-byte
 * big-endian length and that many bytes of UTF-8 JSON. A request is
 * {"id": n, "command": "show workers", "args": [...]}; the answer is
 * {"id": n, "status": "ok", "data": {...}} or {"id": n, "status": "error", "error": "..."}.
 * The commands and their data are described in docs/control.md.
 *
 * The module only reads the arbiter's state through the callbacks of
 * gc__control_ops_t and changes it the way a signal would: `worker add` moves the
 * target count (the arbiter's loop forks, never a callback), `reload`, `reopen` and
 * `shutdown` send the master HUP, USR1, TERM or INT. Worker statistics come from the
 * scoreboard's shared slots and /proc, never from asking a worker.
 *
 * Requests are parsed with Python's json module (the master holds the GIL);
 * answers are written in C. */
#ifndef GC_ARBITER_CONTROL_H
#define GC_ARBITER_CONTROL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

#include "config/config.h"
#include "proc/listen.h"
#include "proc/scoreboard.h"

/* One worker as the arbiter knows it (the scoreboard slot says the rest). */
typedef struct {
    pid_t pid;
    unsigned age;        /* spawn order, as Gunicorn's worker.age */
    int slot;            /* index into the scoreboard */
    int aborted;         /* timed out: SIGABRT sent */
    int retiring;        /* being replaced */
    uint64_t spawned_ms; /* gc__monotonic_ms() when forked */
} gc__control_worker_t;

/* The master's counters for `show stats`. */
typedef struct {
    uint64_t started_ms; /* gc__monotonic_ms() at start-up */
    long target;         /* the number of workers wanted */
    long spawned;        /* workers forked since start-up */
    long killed;         /* workers the master sent a signal to stop them */
    long reloads;        /* HUPs handled */
} gc__control_counts_t;

/* What the control socket may ask of the arbiter. Every callback runs on the loop
 * thread, inside a libuv callback: none may fork. */
typedef struct {
    /* Copies up to cap workers into out; returns how many there are. */
    size_t (*workers)(void *arg, gc__control_worker_t *out, size_t cap);
    void (*counts)(void *arg, gc__control_counts_t *out);
    /* Moves the target by delta, never below 1 or above the scoreboard's size.
     * Returns the new target, or -1 while the master is stopping. */
    long (*scale)(void *arg, long delta);
    /* Sends SIGTERM to a worker of ours. Returns 0 or -ESRCH when pid is not one. */
    int (*kill_worker)(void *arg, pid_t pid);
    /* The configuration in force (it changes on HUP). Borrowed. */
    const gc__config_t *(*config)(void *arg);
    /* The listeners; *n is set to their number. Borrowed. */
    const gc__listener_t *(*listeners)(void *arg, size_t *n);
} gc__control_ops_t;

typedef struct gc__control gc__control_t;

/* Creates the socket at path (its parent made with mode 0700 when missing, an old
 * file there unlinked), sets its mode, and starts accepting on loop. ops, arg and sb
 * are borrowed for the life of the result. Returns owned (free with
 * gc__control_close), or NULL after logging why. */
gc__control_t *gc__control_start(uv_loop_t *loop, const char *path, int mode,
                                 const gc__control_ops_t *ops, void *arg,
                                 const gc__scoreboard_t *sb);

/* Stops accepting, drops every client and unlinks the socket file if it is still the
 * one we made (a newer master may have replaced it). Takes ownership of ctl: the
 * memory is freed by close callbacks, so the loop must run once more (UV_RUN_NOWAIT)
 * before it is closed. NULL is allowed. */
void gc__control_close(gc__control_t *ctl);

#endif
