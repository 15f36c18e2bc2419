/* internal.h: what the files of a worker process share with each other; worker
 * classes use worker.h. One file per job:
 *
 *   conn.c       a connection's life: reading, parsing, dispatch, timers, the spill,
 *                the next request, closing (lingering close, last calls)
 *   respond.c    the request path every class shares; Python's lock on the loop
 *   accept.c     the accept gate: --worker-connections, room at the limit, running out
 *                of descriptors, balance between sibling workers
 *   pysignals.c  INT, QUIT, ABRT as Python-level handlers
 *   reload.c     --reload
 *   worker.c     boot, libuv signals, the tick, stopping */
#ifndef GC_WORKERS_INTERNAL_H
#define GC_WORKERS_INTERNAL_H

#include <sys/socket.h>

#include "workers/worker.h"

/* conn.c */
/* Takes ownership of fd, a connection just accepted on listener `li`; peer is its
 * address as accept4 gave it (borrowed; NULL for a unix socket). */
void gc__conn_open(gc__worker_t *w, size_t li, int fd, const struct sockaddr_storage *peer);
/* Ends a connection whose client may still be sending (RFC 9112 9.6). */
void gc__conn_linger(gc__conn_t *c);
/* Gives every connection idle between requests its last call (a graceful stop). */
void gc__conns_last_call(gc__worker_t *w);

/* accept.c */
/* Starts watching every listener. Returns 0 or a negative errno. */
int gc__accept_start(gc__worker_t *w);
/* Resumes accepting when there is room again (a connection closed or went idle). */
void gc__accept_update(gc__worker_t *w);
/* Stops accepting for good (a stopping worker). */
void gc__accept_close(gc__worker_t *w);
/* Publishes the worker's open connections in its scoreboard slot. */
void gc__accept_publish(gc__worker_t *w);

/* respond.c: the loop's callbacks for requests finished elsewhere, and for giving the
 * GIL back before it waits. */
void gc__worker_on_done(uv_async_t *h);
void gc__worker_on_gil_release(uv_prepare_t *h);

/* worker.c */
void gc__worker_exit(gc__worker_t *w) __attribute__((noreturn));
/* The graceful stop (TERM, --reload, max-requests' TERM from the arbiter). */
void gc__worker_stop(gc__worker_t *w);

/* pysignals.c: installs the INT/QUIT/ABRT handlers and the wakeup fd. Returns 0 or -1. */
int gc__pysignals_install(gc__worker_t *w);

/* reload.c: watches every file the imported modules came from, and
 * --reload-extra-file. */
void gc__reload_watch(gc__worker_t *w);

#endif
