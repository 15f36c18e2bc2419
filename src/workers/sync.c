/* sync.c: the sync worker class: the application runs on the worker's only thread,
 * one request at a time, right where the request was parsed.
 *
 * Unlike Gunicorn's sync worker, connections are kept alive and pipelined requests are
 * answered: while the application runs nothing else is read, but requests are read in
 * full by the event loop beforehand, so a slow client never holds the worker. */
#include "workers/worker.h"

#include <string.h>

static void sync_run(gc__conn_t *c)
{
    gc__worker_t *w = gc__conn_worker(c);
    gc__worker_gil(w);
    gc__conn_finish(c, gc__conn_respond(c, &w->head));
}

const gc__worker_class_t gc__sync_class = {
    .name = "sync",
    .run = sync_run,
    .sink_setup = gc__conn_sink_unlocked,
    .loop_releases_gil = 1,
    .runs_inline = 1,
};

/* Gunicorn's names for its classes are read by config.c (which has refused the
 * others); sync with threads > 1 is gthread, as in Gunicorn. */
const gc__worker_class_t *gc__worker_class_for(const gc__config_t *cfg)
{
    const char *name = gc__worker_class_canonical(gc__cfg_str(cfg, GC_S_worker_class));
    if (name != NULL && strcmp(name, "gthread") == 0)
        return &gc__gthread_class;
    if (name != NULL && strcmp(name, "gevent") == 0)
        return &gc__gevent_class;
    if (gc__cfg_int(cfg, GC_S_threads) > 1)
        return &gc__gthread_class;
    return &gc__sync_class;
}
