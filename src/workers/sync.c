/* sync.c: the sync worker class: the application runs on the worker's only thread,
 * the loop's, one request at a time.
 *
 * Unlike Gunicorn's sync worker, connections are kept alive and pipelined requests are
 * answered: while the application runs nothing else is read, but requests are read in
 * full by the event loop beforehand, so a slow client never holds the worker.
 *
 * Requests take turns. Those of kept-alive connections wait in a FIFO, and the loop
 * runs them in order, looking (without blocking) for new events after each
 * GC_SYNC_TURN_NS of them: a connection whose next request arrived meanwhile joins the
 * tail, and the listeners get their turn. A connection's first request runs at once,
 * as it is accepted and read (conn.c, read_now), so that the worker never holds an
 * accepted connection unread while it runs the application for others: a worker killed
 * with SIGKILL takes one request with it (docs/http.md).
 *
 * Running every request inside its read callback, as this class once did, served the
 * whole batch of connections one poll found ready, back to back, in the kernel's order.
 * A request that arrived just after the poll waited for that batch, then for its place
 * in the next one (two rounds of every connection's request); and a worker that takes
 * one new connection per wake-up (accept.c) took 26 keep-alive connections in 26 ever
 * longer turns of a 10 ms application: the last first requests waited 3 s. */
#include "workers/worker.h"

#include <stdlib.h>
#include <string.h>

/* How much application time the loop spends on queued requests before it looks for
 * new events: a look per request would cost a fast application a system call and a
 * turn of the loop each; with this, a request that arrives meanwhile waits at most
 * this long (and the request under way) to join the queue. */
#define GC_SYNC_TURN_NS ((uint64_t)1000 * 1000)

typedef struct {
    gc__conn_queue_t waiting; /* kept-alive connections' requests, QUEUED, in arrival order */
    uv_idle_t turn;           /* active while one waits: the loop's poll does not block */
} sync_state_t;

static sync_state_t *state_of(gc__worker_t *w)
{
    return w->class_data;
}

/* Runs the request on c now, and hands the connection back. */
static void run_now(gc__worker_t *w, gc__conn_t *c)
{
    gc__conn_start(c);
    gc__worker_gil(w);
    gc__conn_finish(c, gc__conn_respond(c, &w->head));
}

static void on_turn(uv_idle_t *h)
{
    gc__worker_t *w = h->data;
    sync_state_t *s = state_of(w);
    uint64_t start = uv_hrtime();
    for (gc__conn_t *c; (c = gc__conn_queue_pop(&s->waiting)) != NULL;) {
        run_now(w, c); /* its next, pipelined, request may join the tail */
        if (uv_hrtime() - start >= GC_SYNC_TURN_NS)
            break;
    }
    if (s->waiting.head == NULL)
        uv_idle_stop(h);
}

static int sync_start(gc__worker_t *w)
{
    sync_state_t *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return -1;
    uv_idle_init(w->loop, &s->turn);
    s->turn.data = w;
    w->class_data = s;
    return 0;
}

static void sync_run(gc__conn_t *c)
{
    gc__worker_t *w = gc__conn_worker(c);
    if (gc__conn_first_request(c)) {
        run_now(w, c);
        return;
    }
    sync_state_t *s = state_of(w);
    gc__conn_queue_push(&s->waiting, c);
    uv_idle_start(&s->turn, on_turn); /* nothing when it is active already */
}

const gc__worker_class_t gc__sync_class = {
    .name = "sync",
    .start = sync_start,
    .run = sync_run,
    .sink_setup = gc__conn_sink_unlocked,
    .loop_releases_gil = 1,
    .runs_inline = 1,
    .queues = 1,
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
    if (name != NULL && strcmp(name, "asgi") == 0)
        return &gc__asgi_class;
    if (gc__cfg_int(cfg, GC_S_threads) > 1)
        return &gc__gthread_class;
    return &gc__sync_class;
}
