/* worker.h: a worker process and its client connections.
 *
 * Every worker class shares this machinery: a libuv loop accepts on the inherited
 * listeners, reads and parses requests in C (whole, before any Python runs), answers
 * malformed ones itself, and hands each complete request to the class (see
 * gc__worker_class_t). The sync class runs the application right there, one request
 * at a time; gthread hands it to a pool of threads, gevent to a greenlet. All three run
 * it with gc__conn_respond, the one request path, and give the connection back with
 * gc__conn_finish (on the loop thread) or gc__conn_post_done (from anywhere).
 *
 * Python's lock: the loop thread holds the GIL only while a callback needs Python
 * (gc__worker_gil takes it) and gives it back before the loop waits for events, so
 * threads the application starts, and gthread's pool, run while the loop is idle.
 * Sinks give it back around their system calls too (gc__conn_sink_unlocked). */
#ifndef GC_WORKERS_WORKER_H
#define GC_WORKERS_WORKER_H

#include <Python.h>
#include <pthread.h>
#include <signal.h>
#include <sys/types.h>
#include <uv.h>

#include "config/config.h"
#include "http/parser.h"
#include "net/transport.h"
#include "proc/listen.h"
#include "proc/scoreboard.h"
#include "workers/frontend.h"
#include "wsgi/wsgi.h"

/* Sent by the arbiter before SIGABRT to a worker that stopped beating: the worker
 * writes its Python stacks to the error log. */
#define GC_SIG_DUMP_STACK (SIGRTMIN + 3)

typedef struct gc__worker gc__worker_t;
typedef struct gc__conn gc__conn_t;

struct gc__conn {
    /* Readiness of the socket, for the loop: readable while reading, writable while the
     * loop sends the end of a response (the spill). The bytes themselves move through
     * the transport. */
    uv_poll_t poll;
    gc__transport_t tr; /* the plain socket today (net/transport.h) */
    uv_timer_t timer;   /* idle keep-alive, or the deadline for a whole request */
    gc__worker_t *w;
    const gc__listener_t *listener; /* borrowed from the worker */
    gc__http_parser_t parser;
    gc__buf_t pending; /* bytes read past the end of the current request */
    char remote_addr[64];
    char remote_port[8];
    gc__proxy_info_t proxy; /* what a PROXY protocol header said (protocol "" without) */
    int proxy_wait;         /* the first bytes may still be a PROXY header (workers/frontend.h) */
    int reading;
    int watching;          /* the UV_READABLE/UV_WRITABLE events the poll handle has */
    int timer_for_request; /* the timer is the request deadline, not keep-alive */
    int continue_sent;
    int answered;        /* a response went out: idle now means between keep-alive requests */
    uint64_t idle_since; /* uv_hrtime() when the connection was opened or last went idle */
    /* Our side is shut (FIN sent); what the client still sends is read and dropped until
     * it closes too (see gc__conn_linger in conn.c). */
    int lingering;
    /* The end of a response that the loop still writes (see gc__conn_take_spill). */
    gc__buf_t out;
    size_t out_sent;
    int out_blocked; /* the transport wants readiness (tr.want) before more goes out */
    int keep_after_out;
    int closing;
    int open_handles; /* freed when both handles have closed */
    /* While the class runs a request (busy), the loop leaves the connection alone:
     * it neither reads nor closes it. */
    int busy;
    int close_after;       /* a close was asked for while busy: happens when it is done */
    int done_keep;         /* the outcome posted with gc__conn_post_done */
    size_t spill_reserved; /* bytes of the worker's spill budget set aside for it */
    gc__sink_t sink;       /* the response's sink, while busy */
    gc__buf_t head;        /* the gevent class's buffer for response heads */
    gc__conn_t *qnext;     /* in the worker's done queue or a class's queue */
    gc__conn_t *prev, *next;
};

/* A FIFO of connections linked through qnext; its user holds whatever lock guards it. */
typedef struct {
    gc__conn_t *head, *tail;
} gc__conn_queue_t;

static inline void gc__conn_queue_push(gc__conn_queue_t *q, gc__conn_t *c)
{
    c->qnext = NULL;
    if (q->tail)
        q->tail->qnext = c;
    else
        q->head = c;
    q->tail = c;
}

static inline gc__conn_t *gc__conn_queue_pop(gc__conn_queue_t *q)
{
    gc__conn_t *c = q->head;
    if (c != NULL && (q->head = c->qnext) == NULL)
        q->tail = NULL;
    return c;
}

/* A worker class: how complete requests reach the application. */
typedef struct {
    const char *name; /* "sync", "gthread", "gevent" */
    /* Python's first action in the worker, right after fork (gevent patches here).
     * Returns 0 or -1 (logged). NULL: nothing. */
    int (*early)(gc__worker_t *w);
    /* After the application is loaded, before serving. Returns 0 or -1 (logged). */
    int (*start)(gc__worker_t *w);
    /* A complete request on conn, called on the loop thread with the connection busy. */
    void (*run)(gc__conn_t *conn);
    /* Sets up the sink of a response (its wait, its io hooks). */
    void (*sink_setup)(gc__conn_t *conn, gc__sink_t *sink);
    /* Runs the loop until the worker exits. NULL: uv_run. */
    void (*serve)(gc__worker_t *w);
    /* At exit, with the GIL. Returns 1 when Python may be finalized (nothing of the
     * application still runs), else 0. NULL: always 1. */
    int (*stop)(gc__worker_t *w);
    int multithread;       /* wsgi.multithread */
    int loop_releases_gil; /* the loop thread gives the GIL back before it waits */
    /* run has finished the request (gc__conn_finish) when it returns: the connection
     * keeps its read watcher meanwhile, which saves two epoll_ctl calls a request. */
    int runs_inline;
} gc__worker_class_t;

extern const gc__worker_class_t gc__sync_class, gc__gthread_class, gc__gevent_class;

/* The class for the settings: worker_class (a name Gunicorn knows, already
 * validated) and threads (sync with threads > 1 is gthread, as in Gunicorn). */
const gc__worker_class_t *gc__worker_class_for(const gc__config_t *cfg);

/* What the arbiter hands a freshly forked worker. Everything is borrowed and lives as
 * long as the process. */
typedef struct {
    const gc__config_t *cfg;
    gc__listener_t *listeners;
    size_t nlisteners;
    gc__slot_t *slot;  /* this worker's scoreboard slot */
    gc__slot_t *slots; /* every worker's slot (the accept balance reads them) */
    size_t nslots;
    PyObject *hook_worker; /* the Worker object hooks receive, or NULL */
    PyObject *app;         /* the preloaded application, or NULL to import it */
    const char *proc_name;
    int bell; /* the scoreboard's bell (gc__scoreboard_ring), or -1 */
} gc__worker_boot_t;

struct gc__worker {
    uv_loop_t *loop;
    gc__slot_t *slot;
    gc__slot_t *slots; /* every worker's slot, for the accept balance; nslots 0: none */
    size_t nslots;
    uv_timer_t yield_timer; /* ends a step back from accepting (see accept.c) */
    int yielding;
    PyObject *hook_worker;
    uint64_t max_requests; /* 0: unlimited; includes the jitter */
    int retiring;
    const gc__config_t *cfg;
    gc__listener_t *listeners; /* borrowed from the arbiter (inherited by fork) */
    size_t nlisteners;
    /* Accepting (see "the accept gate" in accept.c): one poll handle per listener, so
     * that accepting can pause at --worker-connections and resume below it. */
    uv_poll_t *accepts; /* owned, one per listener */
    /* Owned, one per listener: 1 once an accepted socket was seen to inherit the
     * listener's TCP_NODELAY (Linux does), which saves a setsockopt per connection. */
    unsigned char *nodelay_inherited;
    size_t max_conns; /* --worker-connections */
    size_t nclosing;  /* connections closed but not yet freed (still in nconns) */
    size_t out_bytes; /* response bytes held for slow readers, all connections */
    int accept_paused;
    int accept_batch;          /* connections taken per wake-up: 1 when workers share a socket */
    uint64_t limit_logged_at;  /* when the limit was last logged (loop time, ms) */
    uint64_t nofile_logged_at; /* ... and running out of descriptors */
    int out_of_files;          /* accepting paused by EMFILE/ENFILE/ENOBUFS/ENOMEM */
    gc__http_limits_t limits;
    gc__frontend_t front; /* trust lists, header policy, PROXY mode */
    gc__wsgi_state_t wsgi;
    const char *app_uri;
    pid_t ppid;
    int stopping;
    int exit_code;
    /* Set by the Python-level INT/QUIT (0) and ABRT (1) handlers, which raise
     * SystemExit wherever Python is running; -1 until one has run. */
    int signal_exit;
    int bell;
    uint64_t requests;
    gc__conn_t *conns; /* every open connection */
    size_t nconns;
    uv_signal_t sig_term, sig_usr1, sig_winch;
    uv_poll_t wakeup; /* Python's signal wakeup fd: INT, QUIT, ABRT run their handlers */
    int wakeup_fds[2];
    uv_fs_event_t *watches; /* --reload: one per watched file */
    size_t nwatches;
    uv_timer_t tick;         /* once a second: is the arbiter still our parent? */
    uv_timer_t deadline;     /* graceful stop: the longest we wait for requests */
    char readbuf[64 * 1024]; /* shared by all connections: reads are copied out at once */
    const gc__worker_class_t *klass;
    void *class_data;           /* the class's own state */
    gc__buf_t head;             /* the loop thread's buffer for response heads (sync) */
    PyThreadState *loop_tstate; /* the loop thread's state while it has given the GIL back */
    uv_prepare_t gil_release;   /* gives the GIL back before the loop waits */
    /* Connections whose request ran elsewhere (gc__conn_post_done), for the loop. */
    uv_async_t done_async;
    pthread_mutex_t done_lock;
    gc__conn_queue_t done;
};

/* Runs a worker in a freshly forked child: boots (imports the app), serves until told
 * to stop, and exits the process. `loop` is the arbiter's loop, already prepared with
 * uv_loop_fork and emptied of the arbiter's handles. Never returns. */
void gc__worker_main(uv_loop_t *loop, const gc__worker_boot_t *boot) __attribute__((noreturn));

/* Exits the worker process (worker_exit hook, finalization) with `code`. */
void gc__worker_quit(gc__worker_t *w, int code) __attribute__((noreturn));
/* gevent (gevent.c): is the package importable; patch the standard library (0 or -1,
 * logged). The master patches before it imports a --preload application. */
int gc__gevent_available(void);
int gc__gevent_patch(void);

/* 1 while a request runs in a thread or greenlet. */
int gc__worker_busy(const gc__worker_t *w);
/* Takes the GIL on the loop thread if it has given it back (see the top). */
void gc__worker_gil(gc__worker_t *w);

/* Runs the application for the request on conn and writes the response: the request
 * path every class shares. Needs the GIL; runs on any thread. `head` is the caller's
 * buffer for the response head. Returns 1 when the connection may go on to another
 * request. */
int gc__conn_respond(gc__conn_t *conn, gc__buf_t *head);
/* Hands a connection back after gc__conn_respond, on the loop thread: takes over what
 * the sink spilled, then closes or goes on with the next request. */
void gc__conn_finish(gc__conn_t *conn, int keep);
/* The same from any thread or greenlet: queues conn for the loop, which finishes it. */
void gc__conn_post_done(gc__conn_t *conn, int keep);
/* A sink that waits with poll(2) and gives the GIL back around its system calls (the
 * sync and gthread classes). */
void gc__conn_sink_unlocked(gc__conn_t *conn, gc__sink_t *sink);

/* Finishes a request: sends nothing itself; either closes the connection or goes on
 * with the next request (pipelined bytes, then reading). */
void gc__conn_request_done(gc__conn_t *conn, int keep);
void gc__conn_close(gc__conn_t *conn);
/* Reads the rest of a request that was handed over at GC_HTTP_HEAD (a gc__wsgi_pull_fn
 * with the connection as context). */
int gc__conn_pull_body(void *conn);

#endif
