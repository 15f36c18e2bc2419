/* internal.h: what the files of a worker process share with each other, the
 * connection itself among them; worker classes use worker.h, where a connection is
 * opaque. One file per job:
 *
 *   conn.c       a connection's life: reading, parsing, dispatch, timers, the spill,
 *                the next request, closing (lingering close, last calls)
 *   respond.c    the request path every class shares; Python's lock on the loop
 *   accept.c     the accept gate: --worker-connections, room at the limit, running out
 *                of descriptors, balance between sibling workers
 *   pysignals.c  INT, QUIT, ABRT as Python-level handlers
 *   reload.c     --reload
 *   frontend.c   trust lists, header policy, the PROXY header on a connection
 *   worker.c     boot, libuv signals, the tick, stopping */
#ifndef GC_WORKERS_INTERNAL_H
#define GC_WORKERS_INTERNAL_H

#include <sys/socket.h>

#include "http/uwsgi.h"
#include "workers/worker.h"

/* Where a connection is in its life (conn.c moves it; docs/architecture.md draws it):
 *
 *   WAITING -> RECEIVING -> QUEUED -> RUNNING -> SENDING -> WAITING (keep-alive) ...
 *      any  -> LINGERING -> CLOSING,  any but QUEUED and RUNNING -> CLOSING
 *
 * From QUEUED to the end of RUNNING the class has the connection: it waits in a
 * class's queue, or another thread or greenlet uses it, so a close asked for meanwhile
 * waits for the request to end (close_after). Most classes start a request as soon as
 * they get it; sync keeps a kept-alive connection's request QUEUED until its turn. */
typedef enum {
    GC_CONN_WAITING = 0, /* no byte of a request yet: new, or idle under --keep-alive */
    GC_CONN_RECEIVING,   /* a request is arriving (head within --timeout, a body never
                          * stalling for --timeout) */
    GC_CONN_QUEUED,      /* the class has the request, not yet started (gc__conn_start):
                          * nothing is read, and no spill budget is set aside */
    GC_CONN_RUNNING,     /* the request runs: the loop neither reads nor closes */
    GC_CONN_SENDING,     /* the loop sends the end of the response the sink spilled */
    GC_CONN_LINGERING,   /* our side is shut (FIN sent); what the client still sends is
                          * read and dropped until it closes too (gc__conn_linger) */
    GC_CONN_CLOSING,     /* the handles are closing; freed when both have */
} gc__conn_state_t;

struct gc__conn {
    /* Readiness of the socket, for the loop: readable while reading, writable while the
     * loop sends the end of a response (the spill). The bytes themselves move through
     * the transport. */
    uv_poll_t poll;
    gc__transport_t tr; /* the plain socket, or a TLS session (net/)*/
    gc__conn_state_t state;
    uv_timer_t timer; /* idle keep-alive, or the deadline for a whole request */
    gc__worker_t *w;
    const gc__listener_t *listener; /* borrowed from the worker */
    gc__http_parser_t parser;
    /* With --protocol uwsgi: the packet state; the results go to `parser` (http/uwsgi.h). */
    gc__uwsgi_parser_t *uwsgi; /* owned; NULL for HTTP */
    gc__buf_t pending;         /* bytes read past the end of the current request */
    char remote_addr[64];
    char remote_port[8];
    int family;             /* the socket's address family (AF_UNIX for a unix socket) */
    gc__proxy_info_t proxy; /* what a PROXY protocol header said (protocol "" without) */
    int proxy_wait;         /* the first bytes may still be a PROXY header (workers/frontend.h) */
    int reading;
    int read_wants_out;    /* the transport's read waits for the socket to be writable */
    int watching;          /* the UV_READABLE/UV_WRITABLE events the poll handle has */
    int timer_for_request; /* the timer is the request deadline, not keep-alive */
    int continue_sent;
    int answered;        /* a response went out: idle now means between keep-alive requests */
    uint64_t idle_since; /* uv_hrtime() when the connection was opened or last went idle */
    /* The end of a response that the loop still writes (see gc__conn_take_spill). */
    gc__buf_t out;
    size_t out_sent;
    int out_blocked;        /* the transport wants readiness (tr.want) before more goes out */
    int keep_after_out;     /* SENDING: what comes after, keep-alive or the end */
    int open_handles;       /* freed when both handles have closed */
    int close_after;        /* a close was asked for while RUNNING: happens when it is done */
    int app_gone;           /* RUNNING under a class that reads meanwhile: the client left */
    int app_body;           /* ...and the body it waits for is arriving */
    int app_stream;         /* ...and the connection's bytes are the class's (WebSocket) */
    void *app;              /* the class's object for the request that runs (asgi.c) */
    gc__conn_t *batch_next; /* in the worker's batch (gc__worker_t.app_batch) */
    int batched;
    int batch_done;        /* ...and its request ended: gc__conn_app_done's keep + 1 */
    int done_keep;         /* the outcome posted with gc__conn_post_done */
    size_t spill_reserved; /* bytes of the worker's spill budget set aside for it */
    gc__sink_t sink;       /* the response's sink, while RUNNING */
    gc__buf_t head;        /* the gevent class's buffer for response heads */
    gc__conn_t *qnext;     /* in the worker's done queue or a class's queue */
    gc__conn_t *prev, *next;
    /* HTTP/2 (h2conn.c). On a connection that speaks it: its session. On a stream (a
     * gc__conn_t of its own that the classes run like a connection's request): the
     * session of its connection, the stream, and what the application has written that
     * the loop has not yet handed to the session (`out`, guarded by the worker's
     * h2 news lock; `efd` wakes a writer waiting for room). */
    struct gc__h2conn *h2;
    struct gc__h2_stream *stream;
    int efd;
    int writer_waits;   /* a writer waits on efd for room in `out` */
    int news_posted;    /* in the worker's h2 news queue */
    int dead;           /* its connection is gone: writes fail */
    int head_done;      /* the response head was handed to the session */
    int app_waits;      /* (asgi) the application waits for the stream's queue to drain */
    gc__buf_t trailers; /* "name\0value\0"... for gunicorn.http2.send_trailers */
    size_t ntrailers;
    gc__conn_t *newsnext; /* in the worker's h2 news queue */
};

/* conn.c */
/* Takes ownership of fd, a connection just accepted on listener `li`; peer is its
 * address as accept4 gave it (borrowed; NULL for a unix socket). */
void gc__conn_open(gc__worker_t *w, size_t li, int fd, const struct sockaddr_storage *peer);
/* Ends a connection whose client may still be sending (RFC 9112 9.6). */
void gc__conn_linger(gc__conn_t *c);
/* Gives every connection idle between requests its last call (a graceful stop). */
void gc__conns_last_call(gc__worker_t *w);

/* h2conn.c: HTTP/2 on a connection (docs/architecture.md, "HTTP/2") */
/* After the TLS handshake chose "h2" (ALPN): the connection speaks HTTP/2 from its
 * first byte on. Returns 0, or -1 (logged) when the session cannot be made. */
int gc__h2conn_attach(gc__conn_t *c);
/* h2c Upgrade (RFC 7540 3.2): the connection's complete HTTP/1.1 request asked for it
 * and "101 Switching Protocols" went out; after gc__h2conn_attach, the request becomes
 * stream 1 and what the client sent after it is fed to the session. Returns 0 or a
 * negative errno (a bad HTTP2-Settings: close). */
int gc__h2conn_upgrade(gc__conn_t *c, gc__view_t settings_b64, int was_head);
/* Bytes read on such a connection. */
void gc__h2conn_on_bytes(gc__conn_t *c, const char *data, size_t len);
/* The socket is writable (the loop waited for it). */
void gc__h2conn_on_writable(gc__conn_t *c);
/* What the environ shows of a stream's TLS connection (NULL: not TLS). */
const gc__tls_info_t *gc__h2conn_tls(const gc__conn_t *stream, const gc__tls_peer_t **peer);
/* A stream's priority from its HEADERS frame (weight 1..256, the stream it depends on). */
void gc__h2conn_priority(const gc__conn_t *stream, int *weight, int *depends_on);
/* gunicorn.http2.send_trailers' fields, from where the application runs: kept for the
 * stream's end (a gc__wsgi_peer_t trailers callback; ctx is the stream). */
void gc__h2conn_trailers(void *stream, const gc__http_header_t *fields, size_t n);
/* Its idle timer fired. */
void gc__h2conn_on_timer(gc__conn_t *c);
/* The worker is stopping: GOAWAY, then close once the streams are done. */
void gc__h2conn_last_call(gc__conn_t *c);
/* The connection's handles have closed: streams still running keep the session until
 * they are done, and their writes fail. */
void gc__h2conn_detach(gc__conn_t *c);
/* A stream's request is done (gc__conn_finish on the loop thread). */
void gc__h2conn_stream_finish(gc__conn_t *stream, int keep);
/* Kills a running stream's connection (the gthread quick stop, gc__conn_abort). */
void gc__h2conn_abort(gc__conn_t *stream);
/* 1 while a stream of the connection runs. */
int gc__h2conn_busy(const gc__conn_t *c);
/* The loop's end of the news queue (gc__h2conn_t writers post to it). */
void gc__h2conn_on_news(uv_async_t *h);
/* For a class whose application writes from the loop (asgi.c), on a stream: what
 * gc__conn_app_write and its friends do on a connection (see conn.c). */
int gc__h2conn_app_write(gc__conn_t *stream, const struct iovec *iov, int n);
int gc__h2conn_app_congested(const gc__conn_t *stream);
/* The response was cut short: the stream ends with RST_STREAM, not END_STREAM. */
void gc__h2conn_app_cut(gc__conn_t *stream);

/* conn.c, for h2conn.c */
void gc__conn_watch_out(gc__conn_t *c, int blocked);
void gc__conn_arm_idle(gc__conn_t *c);
void gc__conn_count_request(gc__worker_t *w);
void gc__conn_dispatch(gc__conn_t *c);

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
/* Ends the worker process. Returns only when the class's `leave` defers the exit to
 * its serve (the asgi class, inside its asyncio loop), which calls it again. */
void gc__worker_exit(gc__worker_t *w);
/* The graceful stop (TERM, --reload, max-requests' TERM from the arbiter). */
void gc__worker_stop(gc__worker_t *w);

/* pysignals.c: installs the INT/QUIT/ABRT handlers and the wakeup fd. Returns 0 or -1. */
int gc__pysignals_install(gc__worker_t *w);

/* reload.c: watches every file the imported modules came from, and
 * --reload-extra-file, with the --reload-engine asked for; a change stops the worker
 * gracefully. An inotify engine that cannot be had exits the worker (status 3). */
void gc__reload_watch(gc__worker_t *w);

#endif
