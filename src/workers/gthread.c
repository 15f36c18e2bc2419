/* gthread.c: the gthread worker class: the event loop owns every socket and N threads
 * (--threads) run the application.
 *
 * The loop thread reads and parses requests as for the sync class and queues each
 * complete one; a pool thread takes it, runs it with the GIL (gc__conn_respond, whose
 * sink gives the GIL back around every system call), and posts the connection back to
 * the loop, which sends what a slow reader left and goes on with keep-alive. Threads
 * never touch libuv. The heartbeat comes from the loop thread, so a long request does
 * not stop it (as in Gunicorn's gthread worker); --worker-connections bounds open
 * connections, idle ones included, through the accept gate (worker.c). */
#include "workers/worker.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "log/log.h"

typedef struct {
    pthread_t id;
    gc__worker_t *w;
    gc__buf_t head; /* this thread's buffer for response heads */
    int started;
} pool_thread_t;

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
    PyGILState_STATE gs = PyGILState_Ensure();
    PyThreadState *ts = PyEval_SaveThread();
    for (;;) {
        pthread_mutex_lock(&pool->lock);
        while (pool->waiting.head == NULL && !pool->stop)
            pthread_cond_wait(&pool->ready, &pool->lock);
        gc__conn_t *c = gc__conn_queue_pop(&pool->waiting);
        pthread_mutex_unlock(&pool->lock);
        if (c == NULL)
            break; /* stopping, and nothing left to run */
        PyEval_RestoreThread(ts);
        int keep = gc__conn_respond(c, &t->head);
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

static void gthread_run(gc__conn_t *c)
{
    pool_t *pool = pool_of(c->w);
    pthread_mutex_lock(&pool->lock);
    gc__conn_queue_push(&pool->waiting, c);
    pthread_cond_signal(&pool->ready);
    pthread_mutex_unlock(&pool->lock);
}

/* Joins the threads when none runs a request; otherwise leaves them (the process is
 * about to _exit) and says Python must not be finalized under them. */
static int gthread_stop(gc__worker_t *w)
{
    pool_t *pool = pool_of(w);
    if (pool == NULL)
        return 1;
    if (gc__worker_busy(w))
        return 0;
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
    .sink_setup = gc__conn_sink_unlocked,
    .stop = gthread_stop,
    .multithread = 1,
    .loop_releases_gil = 1,
};
