/* worker.h: a worker process and its client connections.
 *
 * Every worker class shares this machinery: a libuv loop accepts on the inherited
 * listeners, reads and parses requests in C (whole, before any Python runs), answers
 * malformed ones itself, and hands each complete request to the class's `run`
 * function. The sync class runs the application right there, one request at a time;
 * other classes will hand it to threads or greenlets. Only `run` differs. */
#ifndef GC_WORKERS_WORKER_H
#define GC_WORKERS_WORKER_H

#include <signal.h>
#include <sys/types.h>
#include <uv.h>

#include "arbiter/listen.h"
#include "arbiter/scoreboard.h"
#include "config/config.h"
#include "http/parser.h"
#include "workers/frontend.h"
#include "wsgi/wsgi.h"

/* Sent by the arbiter before SIGABRT to a worker that stopped beating: the worker
 * writes its Python stacks to the error log. */
#define GC_SIG_DUMP_STACK (SIGRTMIN + 3)

typedef struct gc__worker gc__worker_t;
typedef struct gc__conn gc__conn_t;

struct gc__conn {
    union {
        uv_handle_t handle;
        uv_stream_t stream;
        uv_tcp_t tcp;
        uv_pipe_t pipe;
    } h;
    uv_timer_t timer; /* idle keep-alive, or the deadline for a whole request */
    gc__worker_t *w;
    const gc__listener_t *listener; /* borrowed from the worker */
    gc__http_parser_t parser;
    gc__buf_t pending; /* bytes read past the end of the current request */
    char remote_addr[64];
    char remote_port[8];
    gc__proxy_info_t proxy; /* what a PROXY protocol header said (protocol "" without) */
    int proxy_wait;         /* the first bytes may still be a PROXY header (workers/frontend.h) */
    int fd;
    int reading;
    int timer_for_request; /* the timer is the request deadline, not keep-alive */
    int continue_sent;
    int answered;        /* a response went out: idle now means between keep-alive requests */
    uint64_t idle_since; /* uv_hrtime() when the connection last went idle (keep-alive) */
    /* The end of a response that the loop still writes (see gc__conn_take_spill). */
    gc__buf_t out;
    size_t out_sent, out_step;
    uv_write_t out_req;
    int keep_after_out;
    int closing;
    int open_handles; /* freed when both handles have closed */
    gc__conn_t *prev, *next;
};

/* What the arbiter hands a freshly forked worker. Everything is borrowed and lives as
 * long as the process. */
typedef struct {
    const gc__config_t *cfg;
    gc__listener_t *listeners;
    size_t nlisteners;
    gc__slot_t *slot;      /* this worker's scoreboard slot */
    PyObject *hook_worker; /* the Worker object hooks receive, or NULL */
    PyObject *app;         /* the preloaded application, or NULL to import it */
    const char *proc_name;
    int bell; /* the scoreboard's bell (gc__scoreboard_ring), or -1 */
} gc__worker_boot_t;

struct gc__worker {
    uv_loop_t *loop;
    gc__slot_t *slot;
    PyObject *hook_worker;
    uint64_t max_requests; /* 0: unlimited; includes the jitter */
    int retiring;
    const gc__config_t *cfg;
    gc__listener_t *listeners; /* borrowed from the arbiter (inherited by fork) */
    size_t nlisteners;
    /* Accepting (see "the accept gate" in worker.c): one poll handle per listener, so
     * that accepting can pause at --worker-connections and resume below it. */
    uv_poll_t *accepts; /* owned, one per listener */
    size_t max_conns;   /* --worker-connections */
    size_t nclosing;    /* connections closed but not yet freed (still in nconns) */
    size_t out_bytes;   /* response bytes held for slow readers, all connections */
    int accept_paused;
    int accept_batch;         /* connections taken per wake-up: 1 when workers share a socket */
    uint64_t limit_logged_at; /* when the limit was last logged (loop time, ms) */
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
    /* Runs one complete request found on conn (the class-specific part). */
    void (*run)(gc__conn_t *conn);
};

/* Runs a worker in a freshly forked child: boots (imports the app), serves until told
 * to stop, and exits the process. `loop` is the arbiter's loop, already prepared with
 * uv_loop_fork and emptied of the arbiter's handles. Never returns. */
void gc__worker_main(uv_loop_t *loop, const gc__worker_boot_t *boot) __attribute__((noreturn));

/* Finishes a request that `run` handled: sends nothing itself; either closes the
 * connection or goes on with the next request (pipelined bytes, then reading). */
void gc__conn_request_done(gc__conn_t *conn, int keep);
void gc__conn_close(gc__conn_t *conn);
/* How many bytes of a response a sink may spill for the loop to send later (its
 * spill_max), within the per-response and per-worker bounds. */
size_t gc__conn_spill_room(const gc__conn_t *conn);
/* Takes over what the sink spilled: gc__conn_request_done then sends it before the
 * connection goes on. Call after the response, before gc__conn_request_done. */
void gc__conn_take_spill(gc__conn_t *conn, gc__sink_t *sink);
/* Reads the rest of a request that was handed over at GC_HTTP_HEAD (a gc__wsgi_pull_fn
 * with the connection as context). */
int gc__conn_pull_body(void *conn);

/* The sync class's run function. */
void gc__sync_run(gc__conn_t *conn);

#endif
