/* worker.c: the worker process: boot, accept, read and parse, stop (see worker.h).
 *
 * Reads land in one buffer shared by the worker's connections; the parser copies what
 * it keeps, and only bytes past the end of a request (pipelining) are saved on the
 * connection. A request is handed to the class's `run` only once it is complete, so a
 * slow client costs a few hundred bytes of memory and never a blocked Python call. */
#include "workers/worker.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <stdatomic.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "http/response.h"
#include "http/sink.h"
#include "log/log.h"
#include "arbiter/process.h"
#include "python/interp.h"
#include "python/logsetup.h"
#include "python/runtime.h"

static void worker_exit(gc__worker_t *w) __attribute__((noreturn));
static void drive(gc__conn_t *c);
static void accept_update(gc__worker_t *w);
static void out_release(gc__conn_t *c);
static void on_acceptable(uv_poll_t *h, int status, int events);
static void start_reading(gc__conn_t *c);
static void publish_conns(gc__worker_t *w);

/* --- connection lifetime ---------------------------------------------------------- */

static void on_conn_handle_closed(uv_handle_t *h)
{
    gc__conn_t *c = h->data;
    if (--c->open_handles > 0)
        return;
    gc__worker_t *w = c->w;
    if (c->prev)
        c->prev->next = c->next;
    else
        w->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    w->nconns--;
    w->nclosing--;
    publish_conns(w);
    out_release(c);
    gc__http_parser_free(&c->parser);
    gc__buf_free(&c->pending);
    gc__buf_free(&c->head);
    free(c);
    if (w->stopping && w->nconns == 0)
        worker_exit(w);
    accept_update(w);
}

void gc__conn_close(gc__conn_t *c)
{
    if (c->closing)
        return;
    if (c->busy) {
        c->close_after = 1; /* a thread or greenlet still uses it */
        return;
    }
    c->closing = 1;
    if (!c->lingering) { /* a lingering connection is counted already */
        c->w->nclosing++;
        publish_conns(c->w);
    }
    uv_close(&c->h.handle, on_conn_handle_closed);
    uv_close((uv_handle_t *)&c->timer, on_conn_handle_closed);
}

/* How long a connection we end may keep sending before it is closed regardless. */
#define GC_LINGER_MS 2000
/* How long an idle connection may still bring a request once the worker stops. */
#define GC_LAST_CALL_MS 1000

/* Bytes the kernel holds for us on the connection: a request we have not read yet. */
static int bytes_waiting(const gc__conn_t *c)
{
    int n = 0;
    return ioctl(c->fd, FIONREAD, &n) == 0 && n > 0;
}

static void on_timer(uv_timer_t *t);

/* Ends a connection whose client may still be sending, the way RFC 9112 section 9.6
 * asks: our side closes first (a FIN after the last response byte), then whatever the
 * client still sends is read and dropped until it closes too, for at most
 * GC_LINGER_MS. Closing at once with unread bytes makes the kernel answer with a
 * reset, which can destroy the end of a response still on its way and leaves the
 * client unable to tell whether its request was seen; a FIN before any response tells
 * it the request was not, so that it can retry it on a new connection. */
static void conn_linger(gc__conn_t *c)
{
    if (c->closing || c->lingering)
        return;
    if (c->busy) {
        c->close_after = 1;
        return;
    }
    if (shutdown(c->fd, SHUT_WR) < 0) {
        gc__conn_close(c);
        return;
    }
    c->lingering = 1;
    c->w->nclosing++; /* it no longer counts against --worker-connections */
    publish_conns(c->w);
    start_reading(c);
    uv_timer_start(&c->timer, on_timer, GC_LINGER_MS, 0);
}

/* Ends the connection after a response: lingers when the client may have sent more
 * (it asked to keep the connection, or bytes of a next request are here), else
 * closes at once, as after "Connection: close" from the client. */
static void conn_end(gc__conn_t *c)
{
    if (c->parser.req.keep_alive || c->pending.len > 0 || c->parser.started)
        conn_linger(c);
    else
        gc__conn_close(c);
}

static void arm_timer(gc__conn_t *c, int for_request);
static void last_call(gc__conn_t *c);

/* Sends a short error response for a request we will not pass on, then ends. */
static void answer_and_end(gc__conn_t *c, int status, const char *msg)
{
    gc__buf_t out;
    gc__buf_init(&out);
    if (gc__http_write_error(&out, status, msg) == 0) {
        gc__sink_t sink;
        gc__sink_init(&sink, c->fd, 1000);
        gc__sink_write(&sink, out.data, out.len);
    }
    gc__buf_free(&out);
    conn_linger(c);
}

static void on_timer(uv_timer_t *t)
{
    gc__conn_t *c = t->data;
    const gc__config_t *cfg = c->w->cfg;
    if (c->lingering) {
        gc__conn_close(c);
    } else if (c->timer_for_request && c->parser.headers_done) {
        /* A body that stopped arriving: a slow one that progresses is never cut (each
         * read restarts the timer), a stalled one gets a status and a warning. */
        gc__warning("Request body from %s stalled: no bytes for %lds after %llu received; "
                    "answering 408",
                    c->remote_addr, gc__cfg_int(cfg, GC_S_timeout),
                    (unsigned long long)c->parser.req.body.len);
        answer_and_end(c, 408, "Request Timeout");
    } else if (c->timer_for_request) {
        gc__debug("Closing connection from %s: request not received within %lds", c->remote_addr,
                  gc__cfg_int(cfg, GC_S_timeout));
        gc__conn_close(c);
    } else if (c->out.len > 0) {
        gc__debug("Closing connection to %s: response not read within %lds", c->remote_addr,
                  gc__cfg_int(cfg, GC_S_timeout));
        gc__conn_close(c);
    } else if (bytes_waiting(c)) {
        /* Idle, but a request has just arrived: the read that follows serves it. */
        arm_timer(c, 1);
    } else {
        conn_linger(c); /* a request may be on its way as we give up waiting */
    }
}

static void arm_timer(gc__conn_t *c, int for_request)
{
    long secs =
        for_request ? gc__cfg_int(c->w->cfg, GC_S_timeout) : gc__cfg_int(c->w->cfg, GC_S_keepalive);
    /* --keep-alive 0 means no idle wait between requests (the connection closes after
     * each response), not that a new connection may stay silent for ever. */
    if (!for_request && secs <= 0 && !c->answered)
        secs = gc__cfg_int(c->w->cfg, GC_S_timeout);
    c->timer_for_request = for_request;
    if (secs > 0)
        uv_timer_start(&c->timer, on_timer, (uint64_t)secs * 1000, 0);
    else
        uv_timer_stop(&c->timer);
}

/* Answers a request the parser refused, then ends the connection. */
static void reject(gc__conn_t *c)
{
    gc__http_parser_t *p = &c->parser;
    gc__debug("Invalid request from ip=%s: %s", c->remote_addr, p->error_msg);
    if (p->error_status > 0)
        answer_and_end(c, p->error_status, p->error_msg);
    else
        gc__conn_close(c);
}

/* The application reads a body the client has been holding back ("Expect:
 * 100-continue"): say "100 Continue", then read the body here and now, feeding the
 * parser until the request is complete. Runs where the application runs (any thread
 * or greenlet) and waits as the response's sink does, at most --timeout per read.
 * Bytes after the body (a pipelined request) stay in `pending` for later. */
int gc__conn_pull_body(void *ctx)
{
    static const char line[] = "HTTP/1.1 100 Continue\r\n\r\n";
    gc__conn_t *c = ctx;
    gc__http_parser_t *p = &c->parser;
    if (p->state != GC_HTTP_HEAD)
        return 0;
    c->continue_sent = 1;
    size_t spill_max = c->sink.spill_max;
    c->sink.spill_max = 0; /* the line must reach the client before we wait for it */
    int rc = gc__sink_write(&c->sink, line, sizeof(line) - 1);
    c->sink.spill_max = spill_max;
    if (rc < 0)
        return rc;
    gc__http_parser_resume_body(p);
    if (c->pending.len > 0) {
        size_t used = gc__http_parser_feed(p, c->pending.data, c->pending.len);
        gc__buf_consume(&c->pending, used);
    }
    int timeout_ms = (int)gc__cfg_int(c->w->cfg, GC_S_timeout) * 1000;
    gc__sink_io_enter(&c->sink);
    while (p->state == GC_HTTP_NEED_MORE && rc == 0) {
        if (gc__buf_reserve(&c->pending, 16 * 1024) < 0) {
            rc = -ENOMEM;
            break;
        }
        ssize_t r =
            recv(c->fd, c->pending.data + c->pending.len, c->pending.cap - c->pending.len, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            rc = c->sink.wait(&c->sink, c->fd, POLLIN, timeout_ms);
            continue;
        }
        if (r <= 0) {
            rc = r == 0 ? -ECONNRESET : -errno;
            break;
        }
        c->pending.len += (size_t)r;
        size_t used = gc__http_parser_feed(p, c->pending.data, c->pending.len);
        gc__buf_consume(&c->pending, used);
    }
    gc__sink_io_leave(&c->sink);
    if (rc < 0)
        return rc;
    if (p->state != GC_HTTP_READY) {
        gc__debug("Invalid request body from ip=%s: %s", c->remote_addr, p->error_msg);
        return -EPROTO;
    }
    return 0;
}

static void stop_reading(gc__conn_t *c)
{
    if (c->reading) {
        uv_read_stop(&c->h.stream);
        c->reading = 0;
    }
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    gc__conn_t *c = h->data;
    buf->base = c->w->readbuf;
    buf->len = sizeof(c->w->readbuf);
}

static size_t spill_room(const gc__worker_t *w);

/* Hands a complete request to the class. Until gc__conn_finish the connection is
 * busy: not read (an inline class never returns to the loop meanwhile), not closed,
 * its timer stopped. */
static void dispatch(gc__conn_t *c)
{
    gc__worker_t *w = c->w;
    if (!w->klass->runs_inline)
        stop_reading(c);
    uv_timer_stop(&c->timer);
    c->timer_for_request = 0;
    c->busy = 1;
    /* What a slow reader's response may leave for the loop to send is set aside now,
     * on the loop thread, so that concurrent requests stay within the budget. */
    c->spill_reserved = spill_room(w);
    w->out_bytes += c->spill_reserved;
    gc__view_t method = gc__http_method(&c->parser.req), target = gc__http_target(&c->parser.req);
    gc__slot_request_begin(w->slot, method.base, method.len, target.base, target.len,
                           gc__monotonic_ms());
    w->klass->run(c);
}

/* Looks at the parser after a feed: reject, dispatch, or wait for more bytes. Returns 1
 * when the connection should keep reading. */
static int after_feed(gc__conn_t *c)
{
    gc__http_parser_t *p = &c->parser;
    switch (p->state) {
    case GC_HTTP_ERROR:
        reject(c);
        return 0;
    case GC_HTTP_READY:
    case GC_HTTP_HEAD:
        dispatch(c);
        return 0;
    case GC_HTTP_NEED_MORE:
        /* The head must arrive within --timeout of its first byte; a body only has to
         * keep coming: every piece of it restarts the timer. */
        if (p->started && (!c->timer_for_request || p->headers_done))
            arm_timer(c, 1);
        return 1;
    }
    return 1;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    gc__conn_t *c = s->data;
    if (c->lingering) {
        if (nread < 0) /* the client has closed its side too */
            gc__conn_close(c);
        return; /* what it still sends is dropped */
    }
    if (nread < 0) {
        gc__http_parser_eof(&c->parser);
        if (c->parser.state == GC_HTTP_ERROR)
            gc__debug("Ignored premature client disconnection from %s.", c->remote_addr);
        gc__conn_close(c);
        return;
    }
    if (nread == 0)
        return;
    if (c->proxy_wait) {
        /* The connection's first bytes may be a PROXY protocol header. */
        int rc = gc__frontend_proxy_read(&c->w->front, c, buf->base, (size_t)nread);
        if (rc < 0) {
            reject(c);
        } else if (rc > 0) {
            if (!c->timer_for_request)
                arm_timer(c, 1);
        } else {
            drive(c);
        }
        return;
    }
    if (c->pending.len > 0) {
        if (gc__buf_append(&c->pending, buf->base, (size_t)nread) < 0) {
            gc__conn_close(c);
            return;
        }
        drive(c);
        return;
    }
    size_t used = gc__http_parser_feed(&c->parser, buf->base, (size_t)nread);
    if ((c->parser.state == GC_HTTP_READY || c->parser.state == GC_HTTP_HEAD) &&
        used < (size_t)nread &&
        gc__buf_append(&c->pending, buf->base + used, (size_t)nread - used) < 0) {
        gc__conn_close(c);
        return;
    }
    after_feed(c);
}

static void start_reading(gc__conn_t *c)
{
    if (!c->reading && !c->closing) {
        uv_read_start(&c->h.stream, on_alloc, on_read);
        c->reading = 1;
    }
}

/* Feeds saved pipelined bytes until a request needs more input. */
static void drive(gc__conn_t *c)
{
    while (!c->closing && c->pending.len > 0) {
        size_t used = gc__http_parser_feed(&c->parser, c->pending.data, c->pending.len);
        gc__buf_consume(&c->pending, used);
        if (!after_feed(c))
            return; /* dispatched (run will come back) or rejected */
    }
    if (!c->closing)
        start_reading(c);
}

/* --- responses the loop finishes ---------------------------------------------------- *
 *
 * When a client reads slowly, the sink keeps the last part of a response in memory
 * (its spill) rather than make the application wait, and the connection takes it over
 * here: the loop writes it in 64 KiB steps, each within --timeout, and only then goes
 * on to the next request or closes. A response keeps at most GC_SPILL_PER_RESPONSE
 * bytes and a worker at most GC_SPILL_PER_WORKER in all; past those the sink waits for
 * the socket as before. */
#define GC_SPILL_PER_RESPONSE ((size_t)1 << 20)
#define GC_SPILL_PER_WORKER ((size_t)32 << 20)
#define GC_OUT_STEP ((size_t)64 << 10)

static size_t spill_room(const gc__worker_t *w)
{
    size_t used = w->out_bytes;
    if (used >= GC_SPILL_PER_WORKER)
        return 0;
    size_t room = GC_SPILL_PER_WORKER - used;
    return room < GC_SPILL_PER_RESPONSE ? room : GC_SPILL_PER_RESPONSE;
}

static void out_release(gc__conn_t *c)
{
    c->w->out_bytes -= c->out.len;
    gc__buf_free(&c->out);
    c->out_sent = c->out_step = 0;
}

static void request_continue(gc__conn_t *c, int keep);
static void out_send(gc__conn_t *c);

static void on_out_written(uv_write_t *req, int status)
{
    gc__conn_t *c = req->data;
    if (status < 0 || c->closing) {
        /* Cancelled by a close, or the client went away. */
        gc__conn_close(c);
        out_release(c);
        return;
    }
    c->out_sent += c->out_step;
    if (c->out_sent < c->out.len) {
        out_send(c);
        return;
    }
    out_release(c);
    uv_timer_stop(&c->timer);
    request_continue(c, c->keep_after_out);
}

static void out_send(gc__conn_t *c)
{
    size_t n = c->out.len - c->out_sent;
    c->out_step = n < GC_OUT_STEP ? n : GC_OUT_STEP;
    uv_buf_t b = uv_buf_init(c->out.data + c->out_sent, (unsigned int)c->out_step);
    c->out_req.data = c;
    if (uv_write(&c->out_req, &c->h.stream, &b, 1, on_out_written) < 0) {
        gc__conn_close(c);
        out_release(c);
        return;
    }
    long secs = gc__cfg_int(c->w->cfg, GC_S_timeout);
    c->timer_for_request = 0;
    if (secs > 0)
        uv_timer_start(&c->timer, on_timer, (uint64_t)secs * 1000, 0);
}

/* --- the request path every class shares ------------------------------------------ */

static void sink_unlock(gc__sink_t *s)
{
    s->io_state = PyEval_SaveThread();
}

static void sink_relock(gc__sink_t *s)
{
    PyEval_RestoreThread(s->io_state);
}

void gc__conn_sink_unlocked(gc__conn_t *c, gc__sink_t *sink)
{
    sink->wait = gc__sink_poll_wait;
    sink->io_enter = sink_unlock;
    sink->io_leave = sink_relock;
}

int gc__conn_respond(gc__conn_t *c, gc__buf_t *head)
{
    gc__worker_t *w = c->w;
    gc__sink_t *sink = &c->sink;
    /* A client that takes longer than --timeout to accept bytes loses the connection,
     * but one that reads slowly gets the end of its response from the loop (the
     * spill), so the application is not kept waiting for it. */
    gc__sink_init(sink, c->fd, (int)gc__cfg_int(w->cfg, GC_S_timeout) * 1000);
    sink->spill_max = c->spill_reserved;
    w->klass->sink_setup(c, sink);
    const gc__listener_t *l = c->listener;
    gc__wsgi_peer_t peer = {
        .remote_addr = l->is_unix ? "" : c->remote_addr,
        .remote_port = l->is_unix ? NULL : c->remote_port,
        .server_name = l->host,
        .server_port = l->port,
        .is_unix = l->is_unix,
        .pull_body = gc__conn_pull_body,
        .pull_ctx = c,
    };
    gc__frontend_peer(c, &peer);
    if (gc__log_enabled(GC_LOG_DEBUG)) {
        gc__view_t m = gc__http_method(&c->parser.req), t = gc__http_target(&c->parser.req);
        gc__debug("%.*s %.*s", (int)m.len, m.base, (int)t.len, t.base);
    }
    /* --keep-alive 0 turns keep-alive off (as in Gunicorn): answer "Connection: close"
     * rather than keep an idle connection with no timer to ever close it. */
    int keep = c->parser.req.keep_alive && !w->stopping && gc__cfg_int(w->cfg, GC_S_keepalive) > 0;
    enum gc__wsgi_outcome out = gc__wsgi_handle(&w->wsgi, &c->parser.req, &peer, sink, head, keep);
    /* A body the application never read is still on its way (or held back by the
     * client): the next request's start is unknown, so the connection ends. */
    int unread = c->parser.state != GC_HTTP_READY;
    return out == GC_WSGI_KEEP && keep && sink->error == 0 && !unread;
}

void gc__conn_finish(gc__conn_t *c, int keep)
{
    gc__worker_t *w = c->w;
    c->busy = 0;
    w->out_bytes -= c->spill_reserved;
    c->spill_reserved = 0;
    if (c->sink.error == 0) {
        out_release(c);
        if (gc__sink_take_spill(&c->sink, &c->out) > 0)
            w->out_bytes += c->out.len;
    }
    gc__sink_free(&c->sink);
    if (c->close_after) {
        c->close_after = 0;
        keep = 0;
    }
    gc__conn_request_done(c, keep);
}

void gc__conn_post_done(gc__conn_t *c, int keep)
{
    gc__worker_t *w = c->w;
    c->done_keep = keep;
    pthread_mutex_lock(&w->done_lock);
    gc__conn_queue_push(&w->done, c);
    pthread_mutex_unlock(&w->done_lock);
    uv_async_send(&w->done_async);
}

static void on_done(uv_async_t *h)
{
    gc__worker_t *w = h->data;
    pthread_mutex_lock(&w->done_lock);
    gc__conn_queue_t done = w->done;
    w->done.head = w->done.tail = NULL;
    pthread_mutex_unlock(&w->done_lock);
    for (gc__conn_t *c; (c = gc__conn_queue_pop(&done)) != NULL;)
        gc__conn_finish(c, c->done_keep);
}

int gc__worker_busy(const gc__worker_t *w)
{
    for (const gc__conn_t *c = w->conns; c; c = c->next)
        if (c->busy)
            return 1;
    return 0;
}

void gc__worker_gil(gc__worker_t *w)
{
    if (w->loop_tstate != NULL) {
        PyThreadState *ts = w->loop_tstate;
        w->loop_tstate = NULL;
        PyEval_RestoreThread(ts);
    }
}

static void on_gil_release(uv_prepare_t *h)
{
    gc__worker_t *w = h->data;
    if (w->loop_tstate == NULL)
        w->loop_tstate = PyEval_SaveThread();
}

void gc__conn_request_done(gc__conn_t *c, int keep)
{
    gc__worker_t *w = c->w;
    /* The loop's clock stood still while an inline class ran the application: timers
     * armed from here on must count from now, not from before the request. */
    uv_update_time(w->loop);
    w->requests++;
    c->answered = 1;
    gc__slot_request_end(w->slot, gc__monotonic_ms());
    /* A signal handler's exit wins even when the application swallowed its
     * SystemExit; otherwise the application raised SystemExit itself. */
    if (w->signal_exit >= 0)
        gc__worker_quit(w, w->signal_exit);
    if (w->wsgi.exit_code >= 0)
        gc__worker_quit(w, w->wsgi.exit_code);
    if (w->max_requests && w->requests >= w->max_requests && !w->retiring) {
        /* The arbiter boots a replacement, then sends us TERM: we keep serving until
         * then, so recycling never leaves the socket without a worker. */
        w->retiring = 1;
        gc__info("Autorestarting worker after current request.");
        atomic_store(&w->slot->state, GC_SLOT_RETIRING);
        gc__scoreboard_ring(w->bell);
    }
    if (c->out.len > 0 && !c->closing) {
        /* The end of the response is still to go out (the sink spilled it): the loop
         * sends it, then goes on. */
        c->keep_after_out = keep;
        stop_reading(c); /* still on after an inline run */
        out_send(c);
        return;
    }
    request_continue(c, keep);
}

/* After a response has gone out: close, or get ready for the next request. */
static void request_continue(gc__conn_t *c, int keep)
{
    gc__worker_t *w = c->w;
    if (c->closing)
        return;
    if (!keep) {
        conn_end(c);
        return;
    }
    gc__http_parser_next(&c->parser);
    c->continue_sent = 0;
    c->idle_since = uv_hrtime();
    arm_timer(c, 0);
    /* Stopping after a response that promised keep-alive: the client may be sending its
     * next request already, which is answered with "Connection: close". */
    if (w->stopping)
        last_call(c);
    drive(c);
    /* Idle now, the connection can make room for a new one at the limit. */
    if (w->accept_paused && !c->closing && !c->parser.started)
        accept_update(w);
}

/* Reads a connection just accepted at once, without waiting for the loop to report it
 * readable: its client has usually sent the request with the handshake. That saves a
 * turn of the loop, and means a sync worker starts serving what it accepts right
 * away: a connection it has taken never waits behind the application run by another
 * (a killed worker takes one request with it, not two). */
static void read_now(gc__conn_t *c)
{
    ssize_t n = recv(c->fd, c->w->readbuf, sizeof(c->w->readbuf), 0);
    if (n > 0) {
        uv_buf_t b = uv_buf_init(c->w->readbuf, (unsigned int)n);
        on_read(&c->h.stream, n, &b);
    }
    /* 0 (the client closed), an error, or nothing yet: the loop finds out as usual. */
}

/* TCP_NODELAY on a socket accepted from listener li: set once on the listener, it is
 * inherited on Linux, which the first connection checks; otherwise it is set on each. */
static void conn_nodelay(gc__worker_t *w, size_t li, gc__conn_t *c)
{
    if (w->nodelay_inherited[li])
        return;
    int on = 0;
    socklen_t len = sizeof(on);
    if (getsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &on, &len) == 0 && on)
        w->nodelay_inherited[li] = 1;
    else
        uv_tcp_nodelay(&c->h.tcp, 1);
}

/* Takes ownership of fd, a connection just accepted on listener `li`; peer is its
 * address as accept4 gave it (borrowed; NULL for a unix socket). */
static void conn_open(gc__worker_t *w, size_t li, int fd, const struct sockaddr_storage *peer)
{
    const gc__listener_t *l = &w->listeners[li];
    gc__conn_t *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        close(fd);
        return;
    }
    c->w = w;
    c->listener = l;
    int rc = l->is_unix ? uv_pipe_init(w->loop, &c->h.pipe, 0) : uv_tcp_init(w->loop, &c->h.tcp);
    if (rc == 0) {
        rc = l->is_unix ? uv_pipe_open(&c->h.pipe, fd) : uv_tcp_open(&c->h.tcp, fd);
        if (rc < 0) /* the handle never owned fd; closing it below leaves fd to us */
            close(fd);
    } else {
        close(fd);
        free(c);
        return;
    }
    c->h.handle.data = c;
    c->fd = fd;
    c->open_handles = 1;
    c->idle_since = uv_hrtime();
    gc__http_parser_init(&c->parser, &w->limits);
    gc__buf_init(&c->pending);
    c->next = w->conns;
    if (w->conns)
        w->conns->prev = c;
    w->conns = c;
    w->nconns++;
    publish_conns(w);
    uv_timer_init(w->loop, &c->timer);
    c->timer.data = c;
    c->open_handles = 2;
    if (rc < 0) {
        gc__conn_close(c);
        return;
    }
    if (!l->is_unix) {
        conn_nodelay(w, li, c);
        if (peer != NULL && peer->ss_family == AF_INET6) {
            const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)peer;
            uv_ip6_name(a, c->remote_addr, sizeof(c->remote_addr));
            snprintf(c->remote_port, sizeof(c->remote_port), "%u", ntohs(a->sin6_port));
        } else if (peer != NULL && peer->ss_family == AF_INET) {
            const struct sockaddr_in *a = (const struct sockaddr_in *)peer;
            uv_ip4_name(a, c->remote_addr, sizeof(c->remote_addr));
            snprintf(c->remote_port, sizeof(c->remote_port), "%u", ntohs(a->sin_port));
        }
    }
    gc__frontend_accept(&w->front, c);
    arm_timer(c, 0);
    start_reading(c);
    read_now(c);
}

/* --- the accept gate -------------------------------------------------------------- *
 *
 * A worker holds at most --worker-connections connections. Reads cost no Python, so
 * the limit is about descriptors and memory, not about the application: at the limit
 * the worker first ends the connection that has been idle longest between keep-alive
 * requests (its client reconnects when it needs to, and no request is lost: nothing
 * of a next request has arrived), else the one that has waited longest, and at least
 * GC_EVICT_SLOW_MS, for a whole request head: a client that sends its request at
 * once never waits that long, so this one is slow or silent, perhaps on purpose, and
 * a crowd of them must not keep every other client out for --timeout seconds. Only
 * when there is neither does it stop accepting, leaving new connections in the
 * kernel's backlog for other workers, until a connection closes or goes idle, or a
 * slow one has waited long enough (the once-a-second tick looks).
 *
 * The listeners are watched with uv_poll and accepted with accept4() by hand rather
 * than with uv_listen, because a libuv server handle cannot stop accepting without
 * being closed. Every worker watches the same sockets, so each new connection wakes
 * them all and one wins the accept (the others see EAGAIN): with a handful of workers
 * that costs a few system calls. A worker takes one connection per wake-up when it
 * shares the sockets, so that one worker does not swallow a burst that its siblings
 * could serve while it runs the application. */

#define GC_EVICT_SLOW_MS 1000

/* The connection to end at the limit (see above), or NULL. *slow says which kind. */
static gc__conn_t *evictable(gc__worker_t *w, int *slow)
{
    gc__conn_t *idle = NULL, *waiting = NULL;
    for (gc__conn_t *c = w->conns; c; c = c->next) {
        if (c->closing || c->lingering || c->busy || c->out.len > 0 || c->parser.headers_done)
            continue;
        if (c->answered && !c->parser.started && c->pending.len == 0) {
            if (idle == NULL || c->idle_since <= idle->idle_since) /* ties: the older */
                idle = c;
        } else if (waiting == NULL || c->idle_since < waiting->idle_since) {
            waiting = c;
        }
    }
    *slow = idle == NULL;
    if (idle != NULL)
        return idle;
    if (waiting != NULL && uv_hrtime() - waiting->idle_since >= GC_EVICT_SLOW_MS * 1000000ull)
        return waiting;
    return NULL;
}

/* 1 when a warning that a condition would repeat may be logged again (once a minute);
 * `at` is when it was last logged (loop time, ms). */
static int log_due(gc__worker_t *w, uint64_t *at)
{
    uint64_t now = uv_now(w->loop);
    if (*at != 0 && now - *at < 60000)
        return 0;
    *at = now;
    return 1;
}

/* Starts or stops watching the listening sockets. */
static void accept_watch(gc__worker_t *w, int on)
{
    for (size_t i = 0; i < w->nlisteners; i++) {
        if (uv_is_closing((uv_handle_t *)&w->accepts[i]))
            continue;
        if (on)
            uv_poll_start(&w->accepts[i], UV_READABLE, on_acceptable);
        else
            uv_poll_stop(&w->accepts[i]);
    }
}

static void accept_pause(gc__worker_t *w, int paused)
{
    if (w->accept_paused == paused)
        return;
    w->accept_paused = paused;
    /* Siblings step back for a worker that accepts, or steps back itself (below). */
    atomic_store_explicit(&w->slot->accepting, (uint32_t)!paused, memory_order_relaxed);
    if (!w->yielding)
        accept_watch(w, !paused);
}

/* --- sharing new connections between workers -------------------------------------- *
 *
 * Every worker waiting for events is woken for a new connection and the first to call
 * accept wins, so which worker gets a keep-alive connection is luck, and stays so for
 * the connection's life: 52 wrk connections split 42/10 between two sync workers
 * running a 10 ms application, and the clients of the fuller one waited four times as
 * long. So each worker publishes how many connections it holds in its scoreboard
 * slot, and before it accepts, looks for a sibling that holds fewer and can take the
 * connection soon: one watching the sockets and, for the sync class, either waiting
 * for events or running a request that began less than GC_YIELD_BUSY_MS ago while
 * holding at least two connections fewer. If there is one, it steps back from
 * accepting for GC_YIELD_MS and lets the sibling, woken by the same connection, take
 * it; then it looks again. A sibling stuck in a long request is never waited for. */
#define GC_YIELD_MS 1
#define GC_YIELD_BUSY_MS 20

static void publish_conns(gc__worker_t *w)
{
    atomic_store_explicit(&w->slot->conns, (uint32_t)(w->nconns - w->nclosing),
                          memory_order_relaxed);
}

static int sibling_takes(const gc__worker_t *w)
{
    uint32_t mine = (uint32_t)(w->nconns - w->nclosing);
    uint64_t now = 0;
    for (size_t i = 0; i < w->nslots; i++) {
        gc__slot_t *s = &w->slots[i];
        if (s == w->slot || !atomic_load_explicit(&s->accepting, memory_order_relaxed))
            continue;
        uint32_t st = atomic_load_explicit(&s->state, memory_order_relaxed);
        uint32_t theirs = atomic_load_explicit(&s->conns, memory_order_relaxed);
        if (theirs >= mine || (st != GC_SLOT_IDLE && st != GC_SLOT_BUSY))
            continue;
        if (st == GC_SLOT_IDLE || !w->klass->runs_inline)
            return 1;
        /* A sync sibling running the application takes the connection when it is done:
         * worth the wait when it holds clearly fewer connections (each of ours may have
         * a request queued) and its request is young. */
        if (now == 0)
            now = gc__monotonic_ms();
        uint64_t started = atomic_load_explicit(&s->started_ms, memory_order_relaxed);
        if (theirs + 1 < mine && started != 0 && now - started < GC_YIELD_BUSY_MS)
            return 1;
    }
    return 0;
}

static void on_yield_end(uv_timer_t *t)
{
    gc__worker_t *w = t->data;
    w->yielding = 0;
    if (!w->accept_paused && !w->stopping)
        accept_watch(w, 1);
}

static void accept_yield(gc__worker_t *w)
{
    w->yielding = 1;
    accept_watch(w, 0);
    uv_timer_start(&w->yield_timer, on_yield_end, GC_YIELD_MS, 0);
}

static void log_limit(gc__worker_t *w)
{
    if (log_due(w, &w->limit_logged_at)) {
        gc__warning("Worker connection limit reached (%zu open): new connections wait "
                    "until one closes (--worker-connections)",
                    w->max_conns);
    }
}

/* Resumes accepting when there is room again (called when a connection closes or
 * goes idle). */
static void accept_update(gc__worker_t *w)
{
    int slow;
    if (!w->accept_paused || w->stopping || w->accepts == NULL)
        return;
    if (w->nconns - w->nclosing < w->max_conns || evictable(w, &slow) != NULL) {
        if (w->out_of_files) {
            w->out_of_files = 0;
            gc__debug("Accepting connections again after running out of file descriptors");
        }
        accept_pause(w, 0);
    }
}

static void on_acceptable(uv_poll_t *h, int status, int events)
{
    gc__worker_t *w = h->data;
    size_t li = (size_t)(h - w->accepts);
    if (status < 0 || w->stopping)
        return;
    if (w->nslots > 1 && sibling_takes(w)) {
        accept_yield(w);
        return;
    }
    for (int n = 0; n < w->accept_batch; n++) {
        /* At the limit, an idle or slow connection makes room, but only once a new
         * connection has really been accepted (a sibling may have taken it). */
        gc__conn_t *victim = NULL;
        int slow = 0;
        if (w->nconns - w->nclosing >= w->max_conns && (victim = evictable(w, &slow)) == NULL) {
            log_limit(w);
            accept_pause(w, 1);
            return;
        }
        struct sockaddr_storage peer;
        socklen_t peer_len = sizeof(peer);
        peer.ss_family = AF_UNSPEC;
        int fd = accept4(w->listeners[li].fd, (struct sockaddr *)&peer, &peer_len,
                         SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0) {
            if (victim != NULL && slow) {
                gc__debug("Closing the connection from %s, which has not sent a whole "
                          "request for %.1fs, to make room (--worker-connections %zu)",
                          victim->remote_addr, (double)(uv_hrtime() - victim->idle_since) / 1e9,
                          w->max_conns);
                gc__conn_close(victim);
            } else if (victim != NULL) {
                gc__debug("Closing the idle keep-alive connection from %s to make room "
                          "(--worker-connections %zu)",
                          victim->remote_addr, w->max_conns);
                conn_linger(victim);
            }
            conn_open(w, li, fd, &peer);
            continue;
        }
        if (errno == EINTR || errno == ECONNABORTED)
            continue;
        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
            /* Out of descriptors: the socket stays readable, so polling on would spin.
             * A closing connection or the next tick resumes. */
            if (log_due(w, &w->nofile_logged_at))
                gc__warning("Cannot accept a connection: %s (accepting pauses until a "
                            "connection closes; logged once a minute)",
                            strerror(errno));
            w->out_of_files = 1;
            accept_pause(w, 1);
        }
        return; /* EAGAIN: another worker took it, or the backlog is empty */
    }
}

/* Starts watching every listener. Returns 0 or a negative errno. */
static int accept_start(gc__worker_t *w)
{
    w->accepts = calloc(w->nlisteners ? w->nlisteners : 1, sizeof(*w->accepts));
    w->nodelay_inherited = calloc(w->nlisteners ? w->nlisteners : 1, 1);
    if (w->accepts == NULL || w->nodelay_inherited == NULL)
        return -ENOMEM;
    long max = gc__cfg_int(w->cfg, GC_S_worker_connections);
    w->max_conns = max > 0 ? (size_t)max : 1;
    /* Every connection is a descriptor: the soft limit (often 1024) goes up to the hard
     * one, which is what the hard limit is for. */
    long nofile = gc__nofile_raise();
    if (nofile > 0 && (size_t)nofile < w->max_conns + 64)
        gc__warning("The open file limit (%ld) is too low for --worker-connections %zu", nofile,
                    w->max_conns);
    w->accept_batch = gc__cfg_int(w->cfg, GC_S_workers) > 1 ? 1 : 64;
    uv_timer_init(w->loop, &w->yield_timer);
    w->yield_timer.data = w;
    uv_unref((uv_handle_t *)&w->yield_timer);
    for (size_t i = 0; i < w->nlisteners; i++) {
        int fd = w->listeners[i].fd;
        int flags = fcntl(fd, F_GETFL);
        /* Shared by every worker: accept4 must fail with EAGAIN, never block, when a
         * sibling won the race. */
        if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
            return -errno;
        /* As uv_listen did: an adopted socket (fd://, systemd) gets our backlog too. */
        if (listen(fd, (int)gc__cfg_int(w->cfg, GC_S_backlog)) < 0)
            return -errno;
        int on = 1;
        if (!w->listeners[i].is_unix)
            (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
        int rc = uv_poll_init(w->loop, &w->accepts[i], fd);
        if (rc < 0)
            return rc;
        w->accepts[i].data = w;
        if ((rc = uv_poll_start(&w->accepts[i], UV_READABLE, on_acceptable)) < 0)
            return rc;
    }
    atomic_store_explicit(&w->slot->accepting, 1, memory_order_relaxed);
    return 0;
}

/* --- stopping --------------------------------------------------------------------- */

static void close_servers(gc__worker_t *w)
{
    atomic_store_explicit(&w->slot->accepting, 0, memory_order_relaxed);
    uv_timer_stop(&w->yield_timer);
    for (size_t i = 0; w->accepts && i < w->nlisteners; i++)
        if (!uv_is_closing((uv_handle_t *)&w->accepts[i]))
            uv_close((uv_handle_t *)&w->accepts[i], NULL);
}

static void worker_exit(gc__worker_t *w)
{
    gc__worker_gil(w);
    /* Python's finalization puts the default action back on signals it handled, so a
     * second INT/QUIT/ABRT (a terminal's ^C reaches master and workers alike, then the
     * master sends QUIT) would kill us mid-exit with a misleading message. Blocked,
     * they are dropped at _exit. */
    sigset_t quit_signals;
    sigemptyset(&quit_signals);
    sigaddset(&quit_signals, SIGINT);
    sigaddset(&quit_signals, SIGQUIT);
    sigaddset(&quit_signals, SIGABRT);
    sigprocmask(SIG_BLOCK, &quit_signals, NULL);
    /* The class first: on a quick stop it answers the requests still running in threads
     * or greenlets, before worker_exit, the last hook, runs. */
    int finalize = w->klass->stop == NULL || w->klass->stop(w);
    if (w->hook_worker != NULL) {
        gc__rt_set_bool(w->hook_worker, "alive", 0);
        gc__rt_worker_hook(GC_HOOK_worker_exit, w->hook_worker);
        PyErr_Clear();
    }
    gc__info("Worker exiting (pid: %ld)", (long)getpid());
    /* Runs the application's atexit handlers, as Gunicorn's sys.exit does; but not
     * under code of the application still running in a thread or greenlet (a quick
     * stop, or the graceful timeout). */
    if (finalize) {
        gc__wsgi_state_free(&w->wsgi);
        Py_FinalizeEx();
    }
    fflush(NULL);
    _exit(w->exit_code);
}

void gc__worker_quit(gc__worker_t *w, int code)
{
    w->exit_code = code;
    worker_exit(w);
}

static void on_deadline(uv_timer_t *t)
{
    worker_exit(t->data);
}

/* Shortens the idle wait of a connection to GC_LAST_CALL_MS (the worker is stopping). */
static void last_call(gc__conn_t *c)
{
    uint64_t due = uv_timer_get_due_in(&c->timer);
    if (!uv_is_active((uv_handle_t *)&c->timer) || due > GC_LAST_CALL_MS) {
        c->timer_for_request = 0;
        uv_timer_start(&c->timer, on_timer, GC_LAST_CALL_MS, 0);
    }
}

static void graceful_stop(gc__worker_t *w)
{
    if (w->stopping)
        return;
    gc__worker_gil(w);
    w->stopping = 1;
    gc__debug("Worker stopping gracefully with %zu open connection(s)", w->nconns - w->nclosing);
    gc__rt_set_bool(w->hook_worker, "alive", 0);
    close_servers(w);
    /* A connection idle between requests (or not yet read from) is not closed at once:
     * its client may have sent a request that is still on its way, and closing under
     * it would fail that request with no way to know it was never seen. Each gets a
     * last call of at most GC_LAST_CALL_MS: a request that arrives meanwhile is
     * answered with "Connection: close", and a connection still silent then is ended
     * the way RFC 9112 9.6 asks (conn_linger). Requests being received or run finish
     * within the graceful timeout, also with "Connection: close". */
    uv_update_time(w->loop);
    for (gc__conn_t *c = w->conns; c; c = c->next) {
        if (c->busy || c->closing || c->lingering || c->parser.started || c->out.len > 0)
            continue;
        if (c->pending.len > 0 || bytes_waiting(c)) {
            arm_timer(c, 1); /* a request is here: the next read serves it */
            continue;
        }
        last_call(c);
    }
    if (w->nconns == 0)
        worker_exit(w);
    long secs = gc__cfg_int(w->cfg, GC_S_graceful_timeout);
    uv_timer_start(&w->deadline, on_deadline, (uint64_t)(secs > 0 ? secs : 1) * 1000, 0);
}

static void on_signal(uv_signal_t *s, int signum)
{
    gc__worker_t *w = s->data;
    switch (signum) {
    case SIGTERM:
        graceful_stop(w);
        break;
    case SIGUSR1:
        gc__logging_reopen();
        break;
    case SIGWINCH:
        gc__debug("SIGWINCH ignored. Not a master");
        break;
    default:
        break;
    }
}

static void on_tick(uv_timer_t *t)
{
    gc__worker_t *w = t->data;
    gc__slot_beat(w->slot, gc__monotonic_ms());
    accept_update(w); /* after running out of descriptors */
    if (getppid() != w->ppid) {
        gc__info("Parent changed, shutting down: %ld", (long)getpid());
        worker_exit(w);
    }
}

/* --- INT, QUIT, ABRT: signals that must interrupt the application -------------------- */

/* These three are Python-level handlers, not libuv ones: a libuv handler runs only
 * when the loop does, so a worker busy in a long request would finish it before
 * noticing a quick stop (INT/QUIT) or a timeout (ABRT). Python runs its handlers at
 * the next bytecode, even inside time.sleep, and raising SystemExit there unwinds the
 * application (its finally blocks run); the request gets a 500. Python runs them only
 * on the main thread: requests in gevent's other greenlets or in gthread's threads are
 * answered by the class's `stop` as the worker exits (gevent.c, gthread.c). */

/* INT, QUIT: the quick stop. worker_int, then SystemExit(0). */
static PyObject *on_quit(PyObject *self, PyObject *args)
{
    gc__worker_t *w = (gc__worker_t *)PyCapsule_GetPointer(self, NULL);
    if (w != NULL && w->signal_exit < 0) {
        w->signal_exit = 0;
        gc__rt_set_bool(w->hook_worker, "alive", 0);
        gc__rt_worker_hook(GC_HOOK_worker_int, w->hook_worker);
    }
    PyErr_Clear();
    PyErr_SetNone(PyExc_SystemExit); /* SystemExit() exits with status 0 */
    return NULL;
}

/* ABRT, what the arbiter sends a worker that stopped beating: worker_abort, then
 * SystemExit(1), so the stuck code's traceback reaches the log. */
static PyObject *on_abort(PyObject *self, PyObject *args)
{
    gc__worker_t *w = (gc__worker_t *)PyCapsule_GetPointer(self, NULL);
    if (w != NULL && w->signal_exit < 0) {
        w->signal_exit = 1;
        gc__rt_set_bool(w->hook_worker, "alive", 0);
        gc__rt_set_bool(w->hook_worker, "aborted", 1);
        gc__rt_worker_hook(GC_HOOK_worker_abort, w->hook_worker);
    }
    PyErr_Clear();
    PyObject *code = PyLong_FromLong(1);
    if (code != NULL) {
        PyErr_SetObject(PyExc_SystemExit, code);
        Py_DECREF(code); /* PyErr_SetObject does not steal it */
    }
    return NULL;
}

static PyMethodDef quit_def = {"_on_quit", on_quit, METH_VARARGS, NULL};
static PyMethodDef abort_def = {"_on_sigabrt", on_abort, METH_VARARGS, NULL};

/* A handler has run (Python wrote to the wakeup fd) while the loop was idle. */
static void on_wakeup(uv_poll_t *h, int status, int events)
{
    gc__worker_t *w = h->data;
    char buf[64];
    while (read(w->wakeup_fds[0], buf, sizeof(buf)) > 0)
        ;
    gc__worker_gil(w);
    /* signal_exit is set too when a handler already ran in Python code of the loop
     * thread (a hook, a logging handler) that swallowed its SystemExit. */
    if (PyErr_CheckSignals() < 0 || w->signal_exit >= 0) {
        PyErr_Clear();
        gc__worker_quit(w, w->signal_exit >= 0 ? w->signal_exit : 1);
    }
}

/* signal.signal(signum, a function bound to w). Returns 0 or -1 with an exception. */
static int set_handler(PyObject *signal_mod, int signum, PyMethodDef *def, gc__worker_t *w)
{
    PyObject *capsule = PyCapsule_New(w, NULL, NULL);
    PyObject *handler = capsule ? PyCFunction_New(def, capsule) : NULL;
    Py_XDECREF(capsule);
    if (handler == NULL)
        return -1;
    PyObject *r = PyObject_CallMethod(signal_mod, "signal", "iO", signum, handler);
    Py_DECREF(handler);
    Py_XDECREF(r);
    return r ? 0 : -1;
}

/* Installs the INT/QUIT/ABRT handlers and the wakeup fd. A timed-out worker gets two
 * signals: GC_SIG_DUMP_STACK runs faulthandler's handler, which writes every thread's
 * Python stack to the error log at once, even when the code is stuck in C
 * (faulthandler refuses to chain on SIGABRT, a fatal signal); then SIGABRT. Returns 0
 * or -1. */
static int install_python_handlers(gc__worker_t *w)
{
    PyObject *r = NULL;
    PyObject *signal_mod = PyImport_ImportModule("signal");
    if (signal_mod != NULL && set_handler(signal_mod, SIGINT, &quit_def, w) == 0 &&
        set_handler(signal_mod, SIGQUIT, &quit_def, w) == 0 &&
        set_handler(signal_mod, SIGABRT, &abort_def, w) == 0)
        r = PyObject_CallMethod(signal_mod, "set_wakeup_fd", "i", w->wakeup_fds[1]);
    Py_XDECREF(r);
    Py_XDECREF(signal_mod);
    if (r != NULL) {
        PyObject *fh = PyImport_ImportModule("faulthandler");
        r = fh ? PyObject_CallMethod(fh, "register", "iiii", GC_SIG_DUMP_STACK, gc__log_fd(), 1, 0)
               : NULL;
        Py_XDECREF(r);
        Py_XDECREF(fh);
    }
    if (r == NULL) {
        gc__py_log_exception(GC_LOG_WARNING, "Cannot install the worker's signal handlers");
        return -1;
    }
    return 0;
}

/* --- --reload: watch the application's files ------------------------------------- */

static void on_file_changed(uv_fs_event_t *h, const char *filename, int events, int status)
{
    gc__worker_t *w = h->loop->data;
    gc__info("Worker reloading: %s modified", (const char *)h->data);
    graceful_stop(w);
}

static int add_path(char ***paths, size_t *n, size_t *cap, const char *path)
{
    if (*n == *cap) {
        size_t ncap = *cap ? *cap * 2 : 64;
        char **p = realloc(*paths, ncap * sizeof(*p));
        if (p == NULL)
            return -ENOMEM;
        *paths = p;
        *cap = ncap;
    }
    if (((*paths)[*n] = strdup(path)) == NULL)
        return -ENOMEM;
    (*n)++;
    return 0;
}

/* Watches every file the imported modules came from, plus --reload-extra-file. The
 * paths are gathered first: libuv handles must not move once initialised. */
static void watch_sources(gc__worker_t *w)
{
    char **paths = NULL;
    size_t n = 0, cap = 0;
    PyObject *values = PyDict_Values(PyImport_GetModuleDict());
    for (Py_ssize_t i = 0; values && i < PyList_GET_SIZE(values); i++) {
        PyObject *file = PyObject_GetAttrString(PyList_GET_ITEM(values, i), "__file__");
        const char *path = file && PyUnicode_Check(file) ? PyUnicode_AsUTF8(file) : NULL;
        if (path != NULL && access(path, R_OK) == 0)
            add_path(&paths, &n, &cap, path);
        Py_XDECREF(file);
        PyErr_Clear();
    }
    Py_XDECREF(values);
    const gc__setting_value_t *extra = &w->cfg->v[GC_S_reload_extra_files];
    for (size_t i = 0; i < extra->n; i++)
        add_path(&paths, &n, &cap, extra->items[i]);
    w->watches = calloc(n ? n : 1, sizeof(*w->watches));
    w->loop->data = w;
    for (size_t i = 0; w->watches && i < n; i++) {
        uv_fs_event_t *h = &w->watches[w->nwatches];
        if (uv_fs_event_init(w->loop, h) < 0)
            continue;
        h->data = paths[i]; /* the handle keeps the path for its log line */
        uv_fs_event_start(h, on_file_changed, paths[i], 0);
        w->nwatches++;
    }
    free(paths);
    gc__debug("Watching %zu files for changes", w->nwatches);
}

/* --- boot ------------------------------------------------------------------------- */

static void set_limits(gc__worker_t *w, const gc__config_t *cfg)
{
    gc__http_limits_default(&w->limits);
    long line = gc__cfg_int(cfg, GC_S_limit_request_line);
    w->limits.max_line = line > 8190 ? 8190 : (size_t)line;
    long fields = gc__cfg_int(cfg, GC_S_limit_request_fields);
    w->limits.max_fields = fields <= 0 || fields > 32768 ? 32768 : (size_t)fields;
    long fsize = gc__cfg_int(cfg, GC_S_limit_request_field_size);
    w->limits.max_field_size = fsize <= 0 ? 8190 : (size_t)fsize;
    w->limits.permit_obsolete_folding = gc__cfg_int(cfg, GC_S_permit_obsolete_folding) != 0;
    w->limits.permit_unconventional_method =
        gc__cfg_int(cfg, GC_S_permit_unconventional_http_method) != 0;
    w->limits.casefold_method = gc__cfg_int(cfg, GC_S_casefold_http_method) != 0;
    w->limits.strip_header_spaces = gc__cfg_int(cfg, GC_S_strip_header_spaces) != 0;
    w->limits.permit_unconventional_version =
        gc__cfg_int(cfg, GC_S_permit_unconventional_http_version) != 0;
}

/* --no-sendfile (sendfile = False) turns sendfile(2) off. Unset, $SENDFILE decides as
 * in Gunicorn: y, 1, yes or true (any case) turn it on, any other value off, and it is
 * on when the variable is absent. Gunicorn also turns it off for `sendfile = True`
 * (any value but None); here True means on. */
static int sendfile_enabled(const gc__config_t *cfg)
{
    const gc__setting_value_t *v = &cfg->v[GC_S_sendfile];
    if (!v->none)
        return v->i != 0;
    const char *env = getenv("SENDFILE");
    if (env == NULL)
        return 1;
    return strcasecmp(env, "y") == 0 || strcasecmp(env, "1") == 0 || strcasecmp(env, "yes") == 0 ||
           strcasecmp(env, "true") == 0;
}

/* Switches to --user / --group when they differ from ours. */
static void drop_privileges(const gc__config_t *cfg)
{
    const char *user = gc__cfg_str(cfg, GC_S_user), *group = gc__cfg_str(cfg, GC_S_group);
    if (user == NULL && group == NULL)
        return;
    uid_t uid = getuid();
    gid_t gid = getgid();
    if ((user && gc__lookup_uid(user, &uid, group ? NULL : &gid) < 0) ||
        (group && gc__lookup_gid(group, &gid) < 0)) {
        gc__error("No such user or group: %s", user ? user : group);
        _exit(GC_EXIT_WORKER_BOOT_ERROR);
    }
    int rc = gc__drop_privileges(uid, gid, gc__cfg_int(cfg, GC_S_initgroups) != 0);
    if (rc < 0) {
        gc__error("Cannot switch to user %ld, group %ld: %s", (long)uid, (long)gid, strerror(-rc));
        _exit(GC_EXIT_WORKER_BOOT_ERROR);
    }
}

void gc__worker_main(uv_loop_t *loop, const gc__worker_boot_t *boot)
{
    static gc__worker_t worker;
    gc__worker_t *w = &worker;
    const gc__config_t *cfg = boot->cfg;
    w->loop = loop;
    w->cfg = cfg;
    w->listeners = boot->listeners;
    w->nlisteners = boot->nlisteners;
    w->slot = boot->slot;
    w->slots = boot->slots;
    w->nslots = boot->slots != NULL ? boot->nslots : 0;
    w->hook_worker = boot->hook_worker;
    w->ppid = getppid();
    w->signal_exit = -1;
    w->bell = boot->bell;
    w->klass = gc__worker_class_for(cfg);
    /* gevent patches the standard library here, before any hook or import: modules
     * imported later see the patched socket, time, threading. */
    if (w->klass->early != NULL && w->klass->early(w) < 0)
        _exit(GC_EXIT_WORKER_BOOT_ERROR);
    set_limits(w, cfg);
    if (gc__frontend_init(&w->front, cfg) < 0)
        _exit(GC_EXIT_WORKER_BOOT_ERROR);
    w->limits.forward = &w->front.forward;
    long maxr = gc__cfg_int(cfg, GC_S_max_requests);
    if (maxr > 0) {
        long jitter = gc__cfg_int(cfg, GC_S_max_requests_jitter);
        srandom((unsigned)getpid() ^ (unsigned)gc__monotonic_ms());
        w->max_requests = (uint64_t)maxr + (jitter > 0 ? (uint64_t)(random() % (jitter + 1)) : 0);
    }

    gc__proctitle_set("gunicorn-c: worker [%s]", boot->proc_name);
    gc__info("Booting worker with pid: %ld", (long)getpid());
    gc__rt_set_long(w->hook_worker, "pid", (long)getpid());
    gc__rt_worker_hook(GC_HOOK_post_fork, w->hook_worker);

    uv_signal_t *sigs[] = {&w->sig_term, &w->sig_usr1, &w->sig_winch};
    int nums[] = {SIGTERM, SIGUSR1, SIGWINCH};
    for (size_t i = 0; i < sizeof(nums) / sizeof(nums[0]); i++) {
        uv_signal_init(loop, sigs[i]);
        sigs[i]->data = w;
        uv_signal_start(sigs[i], on_signal, nums[i]);
    }
    if (pipe2(w->wakeup_fds, O_NONBLOCK | O_CLOEXEC) == 0) {
        uv_poll_init(loop, &w->wakeup, w->wakeup_fds[0]);
        w->wakeup.data = w;
        uv_poll_start(&w->wakeup, UV_READABLE, on_wakeup);
        uv_unref((uv_handle_t *)&w->wakeup);
        install_python_handlers(w);
    }
    sigset_t all;
    sigfillset(&all);
    sigprocmask(SIG_UNBLOCK, &all, NULL);
    drop_privileges(cfg);

    PyObject *app = boot->app;
    if (app != NULL) {
        Py_INCREF(app);
    } else {
        int rc = gc__py_load_app(cfg->app_uri, &app);
        if (rc != 0) {
            gc__info("Worker exiting (pid: %ld)", (long)getpid());
            fflush(NULL);
            /* A SystemExit from our own INT/QUIT/ABRT handler (a quick stop, or a
             * timeout while importing) is no boot error: exit 3 would make the master
             * halt the whole server. */
            _exit(w->signal_exit >= 0 ? w->signal_exit : rc);
        }
    }
    gc__wsgi_options_t opt = {
        .multithread = w->klass->multithread,
        .multiprocess = gc__cfg_int(cfg, GC_S_workers) > 1,
        .sendfile = sendfile_enabled(cfg),
    };
    if (gc__wsgi_state_init(&w->wsgi, app, &opt) < 0) {
        gc__py_log_exception(GC_LOG_ERROR, "Exception in worker process");
        _exit(GC_EXIT_WORKER_BOOT_ERROR);
    }
    Py_DECREF(app);
    w->wsgi.hook_worker = w->hook_worker;

    pthread_mutex_init(&w->done_lock, NULL);
    uv_async_init(loop, &w->done_async, on_done);
    w->done_async.data = w; /* referenced: the loop lives while requests run elsewhere */
    if (w->klass->loop_releases_gil) {
        uv_prepare_init(loop, &w->gil_release);
        w->gil_release.data = w;
        uv_prepare_start(&w->gil_release, on_gil_release);
        uv_unref((uv_handle_t *)&w->gil_release);
    }
    if (w->klass->start != NULL && w->klass->start(w) < 0)
        _exit(GC_EXIT_WORKER_BOOT_ERROR);

    int err = accept_start(w);
    if (err < 0) {
        gc__error("Cannot accept connections: %s", uv_strerror(err));
        _exit(GC_EXIT_WORKER_BOOT_ERROR);
    }
    uv_timer_init(loop, &w->tick);
    uv_timer_init(loop, &w->deadline);
    w->tick.data = w->deadline.data = w;
    /* The heartbeat: the arbiter reads it from the scoreboard. A request that runs
     * longer than --timeout stops it, as in Gunicorn's sync worker. */
    long timeout = gc__cfg_int(cfg, GC_S_timeout);
    uint64_t every = timeout > 0 && timeout < 2 ? 500 : 1000;
    uv_timer_start(&w->tick, on_tick, every, every);
    uv_unref((uv_handle_t *)&w->tick);
    if (gc__cfg_int(cfg, GC_S_reload))
        watch_sources(w);

    gc__rt_set_bool(w->hook_worker, "booted", 1);
    gc__rt_worker_hook(GC_HOOK_post_worker_init, w->hook_worker);
    PyErr_Clear();
    gc__slot_beat(w->slot, gc__monotonic_ms());
    atomic_store(&w->slot->state, GC_SLOT_IDLE);
    gc__scoreboard_ring(w->bell); /* retiring workers may now be stopped */

    if (w->klass->serve != NULL)
        w->klass->serve(w);
    else
        uv_run(loop, UV_RUN_DEFAULT);
    worker_exit(w);
}
