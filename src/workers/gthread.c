/* gthread.c: the gthread worker class: the event loop owns every socket and N threads
 * (--threads) run the application.
 *
 * The loop thread reads and parses requests as for the sync class and queues each
 * complete one; a pool thread takes it, runs it with the GIL (gc__conn_respond, whose
 * sink gives the GIL back around every system call), and posts the connection back to
 * the loop, which sends what a slow reader left and goes on with keep-alive. Threads
 * never touch libuv. The heartbeat comes from the loop thread, so a long request does
 * not stop it (as in Gunicorn's gthread worker); --worker-connections bounds open
 * connections, idle ones included, through the accept gate (accept.c).
 *
 * A quick stop (INT, QUIT, ABRT) cannot interrupt the application here: Python raises
 * a signal handler's SystemExit only in the main thread, which is the loop thread, and
 * a pool thread blocked in a system call (time.sleep, a socket read) would not see an
 * asynchronous exception anyway. So the loop thread answers for the pool threads
 * instead (abandon_requests): a request whose response has not started gets the 500,
 * its socket is shut down so the thread still running it can add nothing, and the
 * worker exits under the threads. To tell "not started" safely, each thread says what
 * it is doing (pool_thread_t); the loop thread reads that under the pool's lock and
 * Python's lock, which a thread holds whenever it is not inside a system call. */
#include "workers/worker.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "http/sink.h"
#include "log/log.h"
#include "python/runtime.h"

typedef struct {
    pthread_t id;
    gc__worker_t *w;
    gc__buf_t head; /* this thread's buffer for response heads */
    int started;
    /* The request the thread has taken, or NULL. Set under the pool's lock, cleared
     * under the GIL: abandon_requests holds both. */
    gc__conn_t *conn;
    int responding;       /* gc__conn_respond has set up the sink (under the GIL) */
    int in_io;            /* in a system call on the socket, without the GIL */
    int claimed;          /* the loop thread has answered conn: do not run it */
    PyThreadState *io_ts; /* the thread's state while in_io */
} pool_thread_t;

/* The pool thread running on this thread, or NULL (the loop thread). */
static _Thread_local pool_thread_t *this_thread;

typedef struct {
    pthread_mutex_t lock;
    pthread_cond_t ready;
    gc__conn_queue_t waiting; /* requests waiting for a thread */
    int stop;
    size_t nthreads;
    pool_thread_t *threads;
} pool_t;

static pool_t *pool_of(gc__worker_t *w)
{
    return w->class_data;
}

static void *thread_main(void *arg)
{
    pool_thread_t *t = arg;
    pool_t *pool = pool_of(t->w);
    this_thread = t;
    PyGILState_STATE gs = PyGILState_Ensure();
    if (gc__cfg_int(t->w->cfg, GC_S_spew))
        gc__rt_spew(); /* a tracer is per thread: the loop thread's is not ours */
    PyThreadState *ts = PyEval_SaveThread();
    for (;;) {
        pthread_mutex_lock(&pool->lock);
        while (pool->waiting.head == NULL && !pool->stop)
            pthread_cond_wait(&pool->ready, &pool->lock);
        gc__conn_t *c = gc__conn_queue_pop(&pool->waiting);
        t->conn = c;
        pthread_mutex_unlock(&pool->lock);
        if (c == NULL)
            break; /* stopping, and nothing left to run */
        PyEval_RestoreThread(ts);
        int keep = 0;
        if (t->claimed)
            gc__conn_skip_request(c); /* answered by the loop thread: not run */
        else
            keep = gc__conn_respond(c, &t->head);
        t->conn = NULL;
        t->responding = t->claimed = 0;
        ts = PyEval_SaveThread();
        gc__conn_post_done(c, keep);
    }
    PyEval_RestoreThread(ts);
    PyGILState_Release(gs);
    return NULL;
}

static int gthread_start(gc__worker_t *w)
{
    long n = gc__cfg_int(w->cfg, GC_S_threads);
    pool_t *pool = calloc(1, sizeof(*pool));
    if (pool == NULL)
        return -1;
    pool->nthreads = n > 0 ? (size_t)n : 1;
    pool->threads = calloc(pool->nthreads, sizeof(*pool->threads));
    if (pool->threads == NULL) {
        free(pool);
        return -1;
    }
    pthread_mutex_init(&pool->lock, NULL);
    pthread_cond_init(&pool->ready, NULL);
    w->class_data = pool;
    /* Python's own threads get 8 MiB stacks here; the application's code runs on these
     * ones, so they get as much. */
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, (size_t)8 << 20);
    for (size_t i = 0; i < pool->nthreads; i++) {
        pool_thread_t *t = &pool->threads[i];
        t->w = w;
        gc__buf_init(&t->head);
        int rc = pthread_create(&t->id, &attr, thread_main, t);
        if (rc != 0) {
            pthread_attr_destroy(&attr);
            gc__error("Cannot start a worker thread: %s", strerror(rc));
            return -1;
        }
        t->started = 1;
    }
    pthread_attr_destroy(&attr);
    return 0;
}

/* The sink's io hooks: give the GIL back around system calls, as
 * gc__conn_sink_unlocked does, and say so for abandon_requests. */
static void io_unlock(gc__sink_t *s)
{
    pool_thread_t *t = s->io_state;
    t->in_io = 1;
    t->io_ts = PyEval_SaveThread();
}

static void io_relock(gc__sink_t *s)
{
    pool_thread_t *t = s->io_state;
    PyEval_RestoreThread(t->io_ts);
    t->in_io = 0;
}

/* Called by gc__conn_respond on the pool thread, with the GIL, before the request runs. */
static void gthread_sink_setup(gc__conn_t *c, gc__sink_t *sink)
{
    pool_thread_t *t = this_thread;
    if (t == NULL) {
        gc__conn_sink_unlocked(c, sink);
        return;
    }
    sink->wait = gc__sink_poll_wait;
    sink->io_enter = io_unlock;
    sink->io_leave = io_relock;
    sink->io_state = t;
    t->responding = 1;
}

static void gthread_run(gc__conn_t *c)
{
    pool_t *pool = pool_of(gc__conn_worker(c));
    pthread_mutex_lock(&pool->lock);
    gc__conn_queue_push(&pool->waiting, c);
    pthread_cond_signal(&pool->ready);
    pthread_mutex_unlock(&pool->lock);
}

/* Logs that the request on c was abandoned; `what` says how. */
static void log_abandoned(gc__conn_t *c, const char *what)
{
    const gc__http_request_t *req = gc__conn_request(c);
    gc__view_t m = gc__http_method(req), t = gc__http_target(req);
    gc__error("Request %.*s %.*s abandoned as the worker exits%s", (int)m.len, m.base,
              (int)(t.len > 400 ? 400 : t.len), t.base, what);
}

/* Answers the request on c with a 500 from the loop thread and shuts the socket down,
 * so that the thread running it, if any, fails whatever it writes later. Runs no Python
 * code: nothing gives the GIL away between abandon_requests' check and the write. */
static void answer_500(gc__conn_t *c)
{
    gc__conn_abort(c, 1);
}

/* The quick stop (INT, QUIT, ABRT) with requests in the pool; on the loop thread, with
 * the GIL (see the top of the file). Requests still queued and requests whose response
 * has not started get a 500; a request whose response has started, or whose thread is
 * in the middle of a read or write on the socket, has its connection closed. Each
 * thread's state is checked and acted on before anything is logged: logging may run
 * Python code (a logging handler), which lets the threads run for a while. */
static void abandon_requests(pool_t *pool)
{
    pthread_mutex_lock(&pool->lock);
    pool->stop = 1; /* a thread that finishes takes nothing more */
    for (gc__conn_t *c; (c = gc__conn_queue_pop(&pool->waiting)) != NULL;) {
        answer_500(c);
        log_abandoned(c, " before a thread took it: answered 500");
    }
    for (size_t i = 0; i < pool->nthreads; i++) {
        pool_thread_t *t = &pool->threads[i];
        gc__conn_t *c = t->conn;
        if (c == NULL) {
            continue;
        } else if (!t->responding) {
            t->claimed = 1; /* taken, but waiting for the GIL: it will not run */
            answer_500(c);
            log_abandoned(c, " before its thread started it: answered 500");
        } else if (!t->in_io && gc__conn_bytes_sent(c) == 0) {
            answer_500(c);
            log_abandoned(c, " while its thread runs it (threads cannot be interrupted): "
                             "answered 500");
        } else if (!t->in_io) {
            gc__conn_abort(c, 0);
            log_abandoned(c, " after its response started: connection closed");
        } else {
            gc__conn_abort(c, 0);
            /* The thread may be reading the body into the parser: not a word of it. */
            gc__error("A request abandoned as the worker exits during a read or write: "
                      "connection closed");
        }
    }
    pthread_mutex_unlock(&pool->lock);
}

/* Joins the threads when none runs a request; otherwise leaves them (the process is
 * about to _exit) and says Python must not be finalized under them. A quick stop
 * answers their requests first. */
static int gthread_stop(gc__worker_t *w)
{
    pool_t *pool = pool_of(w);
    if (pool == NULL)
        return 1;
    if (gc__worker_busy(w)) {
        if (w->signal_exit >= 0)
            abandon_requests(pool);
        return 0;
    }
    pthread_mutex_lock(&pool->lock);
    pool->stop = 1;
    pthread_cond_broadcast(&pool->ready);
    pthread_mutex_unlock(&pool->lock);
    PyThreadState *ts = PyEval_SaveThread();
    for (size_t i = 0; i < pool->nthreads; i++)
        if (pool->threads[i].started)
            pthread_join(pool->threads[i].id, NULL);
    PyEval_RestoreThread(ts);
    return 1;
}

const gc__worker_class_t gc__gthread_class = {
    .name = "gthread",
    .start = gthread_start,
    .run = gthread_run,
    .sink_setup = gthread_sink_setup,
    .stop = gthread_stop,
    .multithread = 1,
    .loop_releases_gil = 1,
};
