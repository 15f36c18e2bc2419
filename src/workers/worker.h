/* worker.h: a worker process and its client connections.
 *
 * Every worker class shares this machinery: a libuv loop accepts on the inherited
 * listeners, reads and parses requests in C (whole, before any Python runs), answers
 * malformed ones itself, and hands each complete request to the class (see
 * gc__worker_class_t). The sync class runs the application on the loop thread, one
 * request at a time and in turns (sync.c); gthread hands it to a pool of threads,
 * gevent to a greenlet. All three run
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
#include "net/tls.h"
#include "net/transport.h"
#include "proc/listen.h"
#include "proc/scoreboard.h"
#include "python/tls.h"
#include "workers/frontend.h"
#include "wsgi/wsgi.h"

/* Sent by the arbiter before SIGABRT to a worker that stopped beating: the worker
 * writes its Python stacks to the error log. */
#define GC_SIG_DUMP_STACK (SIGRTMIN + 3)
/* Sent by a worker to its own loop thread while an INT/QUIT/ABRT handler waits to run
 * (pysignals.c): it only interrupts a blocking system call. */
#define GC_SIG_KICK (SIGRTMIN + 4)

typedef struct gc__worker gc__worker_t;
typedef struct gc__conn gc__conn_t;

/* A FIFO of connections; its user holds whatever lock guards it. */
typedef struct {
    gc__conn_t *head, *tail;
} gc__conn_queue_t;

void gc__conn_queue_push(gc__conn_queue_t *q, gc__conn_t *c);
gc__conn_t *gc__conn_queue_pop(gc__conn_queue_t *q);

/* A worker class: how complete requests reach the application. */
typedef struct {
    const char *name; /* "sync", "gthread", "gevent" */
    /* Python's first action in the worker, right after fork (gevent patches here).
     * Returns 0 or -1 (logged). NULL: nothing. */
    int (*early)(gc__worker_t *w);
    /* After the application is loaded, before serving. Returns 0 or -1 (logged). */
    int (*start)(gc__worker_t *w);
    /* A complete request on conn, called on the loop thread; the connection is the
     * class's until it is handed back (gc__conn_finish, gc__conn_post_done). */
    void (*run)(gc__conn_t *conn);
    /* Sets up the sink of a response (its wait, its io hooks). */
    void (*sink_setup)(gc__conn_t *conn, gc__sink_t *sink);
    /* Runs the loop until the worker exits. NULL: uv_run. */
    void (*serve)(gc__worker_t *w);
    /* At exit, with the GIL. Returns 1 when Python may be finalized (nothing of the
     * application still runs), else 0. NULL: always 1. */
    int (*stop)(gc__worker_t *w);
    /* gc__worker_exit was called where the class cannot exit yet (inside its own event
     * loop): returns 1 when the class has arranged to call it again from serve, 0 to
     * exit now. NULL: exit now. */
    int (*leave)(gc__worker_t *w);
    /* For a class whose application writes from the loop (gc__conn_app_write): the
     * client of a running request went away, or what waited to be sent fell below the
     * low mark. NULL for the others. */
    void (*gone)(gc__conn_t *conn);
    void (*drained)(gc__conn_t *conn);
    /* Bytes of the body gc__conn_app_read_body asked for arrived, or it is complete, or
     * it failed (the parser's state says which). */
    void (*body_done)(gc__conn_t *conn);
    /* After gc__conn_app_stream: bytes read on the connection (a WebSocket's frames). */
    void (*stream_bytes)(gc__conn_t *conn, const char *data, size_t len);
    /* A request with a body is handed to run at its head, and its body read while the
     * application runs (gc__conn_app_read_body): ASGI streams bodies. */
    int streams_bodies;
    int multithread;       /* wsgi.multithread */
    int loop_releases_gil; /* the loop thread gives the GIL back before it waits */
    /* The application runs on the loop thread, which waits for nothing meanwhile: the
     * connection keeps its read watcher while the class has it, which saves two
     * epoll_ctl calls a request. */
    int runs_inline;
    /* run gets the request QUEUED and starts it itself (gc__conn_start), now or on a
     * later turn of the loop; otherwise the loop starts it before calling run. */
    int queues;
} gc__worker_class_t;

extern const gc__worker_class_t gc__sync_class, gc__gthread_class, gc__gevent_class, gc__asgi_class;

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

/* The accept gate (accept.c): one poll handle per listener, so that accepting can pause
 * at --worker-connections and resume below it, and the balance between workers. */
typedef struct {
    uv_poll_t *polls; /* owned, one per listener */
    /* Owned, one per listener: 1 once an accepted socket was seen to inherit the
     * listener's TCP_NODELAY (Linux does), which saves a setsockopt per connection. */
    unsigned char *nodelay_inherited;
    size_t max_conns; /* --worker-connections */
    int paused;
    int batch;                 /* connections taken per wake-up: 1 when workers share a socket */
    uint64_t limit_logged_at;  /* when the limit was last logged (loop time, ms) */
    uint64_t nofile_logged_at; /* ... and running out of descriptors */
    int out_of_files;          /* accepting paused by EMFILE/ENFILE/ENOBUFS/ENOMEM */
    gc__slot_t *slots;         /* every worker's slot, for the balance; nslots 0: none */
    size_t nslots;
    uv_timer_t yield_timer; /* ends a step back from accepting */
    int yielding;
} gc__accept_gate_t;

/* The open connections (conn.c). */
typedef struct {
    gc__conn_t *list;        /* every open connection */
    size_t n;                /* including those closing */
    size_t closing;          /* closed or lingering, not yet freed */
    size_t spill_bytes;      /* response bytes held for slow readers, all connections */
    char readbuf[64 * 1024]; /* shared by all connections: reads are copied out at once */
} gc__conn_set_t;

/* Signals (worker.c, pysignals.c). */
typedef struct {
    uv_signal_t term, usr1, winch;
    uv_poll_t wakeup; /* Python's signal wakeup fd: INT, QUIT, ABRT run their handlers */
    int wakeup_fds[2];
} gc__worker_signals_t;

/* Connections whose request ran elsewhere (gc__conn_post_done), for the loop
 * (respond.c). */
typedef struct {
    uv_async_t async;
    pthread_mutex_t lock;
    gc__conn_queue_t queue;
} gc__done_queue_t;

struct gc__worker {
    uv_loop_t *loop;
    const gc__config_t *cfg;
    const char *app_uri;
    pid_t ppid;
    gc__slot_t *slot; /* ours in the scoreboard */
    int bell;         /* the scoreboard's bell, or -1 */
    PyObject *hook_worker;
    gc__listener_t *listeners; /* borrowed from the arbiter (inherited by fork) */
    size_t nlisteners;
    gc__accept_gate_t acc;
    gc__conn_set_t open;
    gc__http_limits_t limits;
    gc__frontend_t front; /* trust lists, header policy, PROXY mode */
    gc__wsgi_state_t wsgi;
    gc__py_tls_t tls; /* --certfile/--keyfile: the context TLS sessions are made from */
    gc__tls_options_t tls_opt;
    int http2;       /* h2 is offered (ALPN over TLS): connections that choose it speak it */
    int h2c;         /* --http2-cleartext prior-knowledge or both, without TLS: a trusted peer
                      * must open with HTTP/2's connection preface */
    int h2c_upgrade; /* --http2-cleartext upgrade: a trusted peer's "Upgrade: h2c" */
    const gc__worker_class_t *klass;
    void *class_data; /* the class's own state */
    gc__buf_t head;   /* the loop thread's buffer for response heads (sync) */
    uint64_t requests;
    uint64_t max_requests; /* 0: unlimited; includes the jitter */
    int retiring;
    int stopping;
    int exit_code;
    /* Set by the Python-level INT/QUIT (0) and ABRT (1) handlers, which raise
     * SystemExit wherever Python is running; -1 until one has run. */
    int signal_exit;
    gc__worker_signals_t sig;
    uv_timer_t tick;            /* once a second: is the arbiter still our parent? */
    uv_timer_t deadline;        /* graceful stop: the longest we wait for requests */
    struct gc__reload *reload;  /* --reload's watcher (reload.c) */
    PyThreadState *loop_tstate; /* the loop thread's state while it has given the GIL back */
    uv_prepare_t gil_release;   /* gives the GIL back before the loop waits */
    gc__done_queue_t done;
    gc__done_queue_t h2news; /* HTTP/2 streams with response bytes for the loop */
    uv_check_t h2check;      /* writes the HTTP/2 connections of h2soon, once a turn */
    struct gc__h2conn *h2soon;
    /* A class whose application writes from outside libuv's turn (asgi.c) sets
     * app_batch meanwhile: the connections it writes to keep the bytes (and the end of
     * their request) in `batch` until the class calls gc__conns_app_flush (asgi.c: in the
     * turn it asks asyncio for among the tasks' callbacks, not in the one that reads),
     * so that the responses of the tasks that ran go out together, as uvloop does (each
     * write to an idle client costs a wake-up of it). */
    int app_batch;
    struct gc__conn *batch;
};

/* Runs a worker in a freshly forked child: boots (imports the app), serves until told
 * to stop, and exits the process. `loop` is the arbiter's loop, already prepared with
 * uv_loop_fork and emptied of the arbiter's handles. Never returns. */
void gc__worker_main(uv_loop_t *loop, const gc__worker_boot_t *boot) __attribute__((noreturn));

/* Exits the worker process (worker_exit hook, finalization) with `code`. */
/* (Returns only as gc__worker_exit may: under the asgi class, inside its loop.) */
void gc__worker_quit(gc__worker_t *w, int code);
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
 * request, 0 when it ends, GC_CONN_TAKEN when the application took it
 * (gunicorn.socket); the class passes the value on to gc__conn_finish as it is. */
int gc__conn_respond(gc__conn_t *conn, gc__buf_t *head);
#define GC_CONN_TAKEN 2

/* A class whose application runs on the loop thread without ever waiting (ASGI):
 * gc__conn_app_write sends bytes now, as far as the socket takes them, and keeps the
 * rest for the loop; it returns -1 when the client is gone, 1 when so much waits that
 * the application should wait for the class's `drained`, else 0. gc__conn_app_listen
 * keeps reading the connection while its request runs (the end of the stream calls the
 * class's `gone`). gc__conn_app_done hands the connection back (what still waits to be
 * sent goes out first); keep says whether it may serve another request. An HTTP/2
 * stream (conn->stream) works the same way with the session of its connection in the
 * socket's place: its body is complete when it runs, and its end goes to h2conn.c. */
int gc__conn_app_write(gc__conn_t *conn, const struct iovec *iov, int n);
int gc__conn_app_congested(const gc__conn_t *conn);
int gc__conn_app_gone(const gc__conn_t *conn);
void gc__conn_app_listen(gc__conn_t *conn);
/* Reads the body of a request handed over at its head (streams_bodies) while it runs,
 * calling the class's body_done as it arrives; gc__conn_app_pause_body(conn, 1) stops
 * reading it while the application is behind, (conn, 0) goes on. */
void gc__conn_app_read_body(gc__conn_t *conn);
void gc__conn_app_pause_body(gc__conn_t *conn, int pause);
/* The connection now speaks another protocol (a WebSocket after its 101): everything
 * read on it, what is already read included, goes to the class's stream_bytes; it ends
 * when the request does. */
void gc__conn_app_stream(gc__conn_t *conn);
/* The request cannot go on (its body was malformed): the connection is treated as gone
 * (the class's `gone` runs) and ends when the application is done. */
void gc__conn_app_abandon(gc__conn_t *conn);
/* The response was cut short (the application failed after it began, or sent less
 * than its Content-Length): on an HTTP/2 stream it ends with RST_STREAM rather than
 * END_STREAM; on a connection, keep = 0 at gc__conn_app_done says it. */
void gc__conn_app_cut(gc__conn_t *conn);
void gc__conn_app_done(gc__conn_t *conn, int keep);
/* Sends what the connections written to under app_batch keep, and ends the requests
 * that ended meanwhile (see gc__worker_t.app_batch). */
void gc__conns_app_flush(gc__worker_t *w);
/* The request on conn starts, on the loop thread: the connection goes from QUEUED to
 * RUNNING, takes its share of the spill budget, and the scoreboard slot shows the
 * request. Only a class that queues (gc__worker_class_t.queues) calls it. */
void gc__conn_start(gc__conn_t *conn);
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

/* A connection is the connection code's own (internal.h); a class sees it through
 * these. */
gc__worker_t *gc__conn_worker(const gc__conn_t *c);
/* 1 when the connection's request is its first (no response has gone out on it). */
int gc__conn_first_request(const gc__conn_t *c);
/* The request the connection is running. */
const gc__http_request_t *gc__conn_request(const gc__conn_t *c);
/* Response bytes accepted so far (0: the response has not started). */
uint64_t gc__conn_bytes_sent(const gc__conn_t *c);
/* The class's buffer on the connection for response heads (gevent's greenlets). */
gc__buf_t *gc__conn_head_buf(gc__conn_t *c);
/* The class will not run the request (the worker is stopping, or it could not be
 * started): gets the connection ready to be handed back with keep 0. */
void gc__conn_skip_request(gc__conn_t *c);
/* Kills the connection from the loop thread while another thread may use it: with
 * `answer`, first a 500 (a few hundred bytes the socket takes at once); then the socket
 * is shut in both directions, so that the thread fails whatever it does next. */
void gc__conn_abort(gc__conn_t *c, int answer);

#endif
