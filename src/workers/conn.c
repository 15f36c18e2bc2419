/* conn.c: a connection's life in the worker (see internal.h): reading and parsing,
 * dispatch to the class, the timers, the end of a response the loop still sends (the
 * spill), going on to the next request, and closing.
 *
 * Bytes move only through the connection's transport (net/transport.h); the loop
 * watches the socket's readiness with a uv_poll_t and calls the transport when it is
 * ready, so that a TLS session or an HTTP/2 stream can take the plain socket's place
 * without a change here or in the request path.
 *
 * Reads land in one buffer shared by the worker's connections; the parser copies what
 * it keeps, and only bytes past the end of a request (pipelining) are saved on the
 * connection. A request is handed to the class's `run` only once it is complete, so a
 * slow client costs a few hundred bytes of memory and never a blocked Python call. */
#include "workers/internal.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/clock.h"
#include "http/repr.h"
#include "http/response.h"
#include "http/sink.h"
#include "log/log.h"
#include "proc/process.h"

static void drive(gc__conn_t *c);
static void out_release(gc__conn_t *c);
static void start_reading(gc__conn_t *c);
static void arm_timer(gc__conn_t *c, int for_request);
static void last_call(gc__conn_t *c);

/* What a connection whose request runs may read ahead (the next request) before it
 * stops reading until the request is done (a class that reads meanwhile: ASGI). */
#define GC_APP_PENDING_MAX ((size_t)64 << 10)

/* How long an idle connection may still bring a request once the worker stops. */
#define GC_LAST_CALL_MS 1000

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
        w->open.list = c->next;
    if (c->next)
        c->next->prev = c->prev;
    w->open.n--;
    w->open.closing--;
    gc__accept_publish(w);
    if (c->h2 != NULL)
        gc__h2conn_detach(c);
    out_release(c);
    gc__http_parser_free(&c->parser);
    if (c->uwsgi != NULL) {
        gc__uwsgi_free(c->uwsgi);
        free(c->uwsgi);
    }
    gc__buf_free(&c->pending);
    gc__buf_free(&c->head);
    gc__transport_close(&c->tr);
    free(c);
    if (w->stopping && w->open.n == 0)
        gc__worker_exit(w);
    gc__accept_update(w);
}

void gc__conn_close(gc__conn_t *c)
{
    if (c->state == GC_CONN_CLOSING)
        return;
    if (c->state == GC_CONN_QUEUED || c->state == GC_CONN_RUNNING) {
        c->close_after = 1; /* in a class's queue, or a thread or greenlet uses it */
        return;
    }
    if (c->state != GC_CONN_LINGERING) { /* a lingering connection is counted already */
        c->w->open.closing++;
        gc__accept_publish(c->w);
    }
    c->state = GC_CONN_CLOSING;
    uv_close((uv_handle_t *)&c->poll, on_conn_handle_closed);
    uv_close((uv_handle_t *)&c->timer, on_conn_handle_closed);
}

/* How long a connection we end may keep sending before it is closed regardless. */
#define GC_LINGER_MS 2000

/* Bytes waiting for us on the connection: a request we have not read yet. */
static int bytes_waiting(gc__conn_t *c)
{
    return gc__transport_readable_now(&c->tr);
}

static void on_timer(uv_timer_t *t);

/* Ends a connection whose client may still be sending, the way RFC 9112 section 9.6
 * asks: our side closes first (a FIN after the last response byte), then whatever the
 * client still sends is read and dropped until it closes too, for at most
 * GC_LINGER_MS. Closing at once with unread bytes makes the kernel answer with a
 * reset, which can destroy the end of a response still on its way and leaves the
 * client unable to tell whether its request was seen; a FIN before any response tells
 * it the request was not, so that it can retry it on a new connection. */
void gc__conn_linger(gc__conn_t *c)
{
    if (c->state == GC_CONN_CLOSING || c->state == GC_CONN_LINGERING)
        return;
    if (c->state == GC_CONN_QUEUED || c->state == GC_CONN_RUNNING) {
        c->close_after = 1;
        return;
    }
    if (gc__transport_shutdown(&c->tr) < 0) {
        gc__conn_close(c);
        return;
    }
    c->state = GC_CONN_LINGERING;
    c->w->open.closing++; /* it no longer counts against --worker-connections */
    gc__accept_publish(c->w);
    start_reading(c);
    uv_timer_start(&c->timer, on_timer, GC_LINGER_MS, 0);
}

/* Ends the connection after a response: lingers when the client may have sent more
 * (it asked to keep the connection, or bytes of a next request are here), else
 * closes at once, as after "Connection: close" from the client. */
static void conn_end(gc__conn_t *c)
{
    /* A uwsgi front end has sent its whole packet and body and waits for the close
     * that ends the response: nothing of it is unread, so no reset can follow. */
    if (c->uwsgi != NULL && c->parser.state == GC_HTTP_READY && c->pending.len == 0 &&
        !bytes_waiting(c)) {
        gc__conn_close(c);
        return;
    }
    if (c->parser.req.keep_alive || c->pending.len > 0 || c->parser.started)
        gc__conn_linger(c);
    else
        gc__conn_close(c);
}

/* Sends a short error response for a request we will not pass on, then ends. */
static void answer_and_end(gc__conn_t *c, int status, const char *msg)
{
    gc__buf_t out;
    gc__buf_init(&out);
    if (gc__http_write_error(&out, status, msg) == 0) {
        gc__sink_t sink;
        gc__sink_init(&sink, &c->tr, 1000);
        gc__sink_write(&sink, out.data, out.len);
    }
    gc__buf_free(&out);
    gc__conn_linger(c);
}

static void app_gone(gc__conn_t *c);

static void on_timer(uv_timer_t *t)
{
    gc__conn_t *c = t->data;
    const gc__config_t *cfg = c->w->cfg;
    if (c->state == GC_CONN_LINGERING) {
        gc__conn_close(c);
    } else if (c->h2 != NULL) {
        gc__h2conn_on_timer(c);
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
    } else if (c->state == GC_CONN_SENDING) {
        gc__debug("Closing connection to %s: response not read within %lds", c->remote_addr,
                  gc__cfg_int(cfg, GC_S_timeout));
        gc__conn_close(c);
    } else if (c->state == GC_CONN_RUNNING) {
        gc__debug("Connection to %s: response not read within %lds", c->remote_addr,
                  gc__cfg_int(cfg, GC_S_timeout));
        app_gone(c);
    } else if (bytes_waiting(c)) {
        /* Idle, but a request has just arrived: the read that follows serves it. */
        arm_timer(c, 1);
    } else {
        gc__conn_linger(c); /* a request may be on its way as we give up waiting */
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
        ssize_t r = gc__transport_recv(&c->tr, c->pending.data + c->pending.len,
                                       c->pending.cap - c->pending.len);
        if (r == -EAGAIN) {
            rc = c->sink.wait(&c->sink, c->tr.fd, c->tr.want, timeout_ms);
            continue;
        }
        if (r <= 0) {
            rc = r == 0 ? -ECONNRESET : (int)r;
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

static void on_io(uv_poll_t *h, int status, int events);

/* Gives the poll handle the events the connection waits for now. */
static void watch(gc__conn_t *c)
{
    int events = c->reading ? (c->read_wants_out ? UV_WRITABLE : UV_READABLE) : 0;
    if (c->out_blocked)
        events |= c->tr.want == POLLIN ? UV_READABLE : UV_WRITABLE;
    if (events == c->watching || c->state == GC_CONN_CLOSING)
        return;
    if (events == 0)
        uv_poll_stop(&c->poll);
    else if (uv_poll_start(&c->poll, events, on_io) < 0)
        return; /* not possible on a socket libuv has accepted for polling */
    c->watching = events;
}

static void stop_reading(gc__conn_t *c)
{
    if (c->reading) {
        c->reading = 0;
        watch(c);
    }
}

static size_t spill_room(const gc__worker_t *w);

void gc__conn_start(gc__conn_t *c)
{
    gc__worker_t *w = c->w;
    c->state = GC_CONN_RUNNING;
    /* What a slow reader's response may leave for the loop to send is set aside now,
     * on the loop thread, so that concurrent requests stay within the budget (a request
     * still waiting in a queue holds none of it). */
    c->spill_reserved = c->stream != NULL ? 0 : spill_room(w); /* a stream buffers in h2conn.c */
    w->open.spill_bytes += c->spill_reserved;
    gc__view_t method = gc__http_method(&c->parser.req), target = gc__http_target(&c->parser.req);
    gc__slot_request_begin(w->slot, method.base, method.len, target.base, target.len,
                           gc__monotonic_ms());
}

/* Hands a complete request to the class. Until gc__conn_finish the connection is the
 * class's: not read (an inline class keeps its read watcher, and on_io stops it if
 * bytes arrive while the request is QUEUED), not closed, its timer stopped. A class
 * that queues starts the request itself when its turn comes; the others get it
 * started. */
static int h2c_upgrade(gc__conn_t *c);

static void dispatch(gc__conn_t *c)
{
    gc__worker_t *w = c->w;
    if (w->h2c_upgrade && c->parser.trusted && c->parser.state == GC_HTTP_READY && h2c_upgrade(c))
        return;
    /* A class that reads while the request runs (ASGI) keeps its watcher: stopping it
     * here and starting it again in gc__conn_app_listen cost three epoll_ctl calls a
     * request. */
    if (!w->klass->runs_inline && !w->klass->streams_bodies)
        stop_reading(c);
    uv_timer_stop(&c->timer);
    c->timer_for_request = 0;
    c->state = GC_CONN_QUEUED;
    if (!w->klass->queues)
        gc__conn_start(c);
    w->klass->run(c);
}

/* "Upgrade: h2c" with HTTP2-Settings on an HTTP/1.1 request (RFC 7540 3.2), from a
 * trusted peer on an --http2-cleartext upgrade port: "101 Switching Protocols", then the
 * connection speaks HTTP/2 and the request is its stream 1. Returns 1 when the request
 * was taken that way (or the connection closed), 0 for an ordinary request. */
static int h2c_upgrade(gc__conn_t *c)
{
    gc__http_request_t *r = &c->parser.req;
    ssize_t up = gc__http_find_field(r, "upgrade");
    ssize_t hs = gc__http_find_field(r, "http2-settings");
    if (up < 0 || hs < 0 || r->major != 1 || r->minor != 1 ||
        !gc__view_ieq(gc__http_field_value(r, (size_t)up), "h2c"))
        return 0;
    char settings[1024];
    gc__view_t v = gc__http_field_value(r, (size_t)hs);
    if (v.len >= sizeof(settings)) {
        answer_and_end(c, 400, "Invalid HTTP2-Settings");
        return 1;
    }
    memcpy(settings, v.base, v.len); /* the request moves into the stream below */
    gc__view_t m = gc__http_method(r);
    int was_head = m.len == 4 && memcmp(m.base, "HEAD", 4) == 0;
    static const char switching[] =
        "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n";
    gc__sink_t sink;
    gc__sink_init(&sink, &c->tr, 1000);
    int rc = gc__sink_write(&sink, switching, sizeof(switching) - 1);
    gc__sink_free(&sink);
    if (rc < 0 || gc__h2conn_attach(c) < 0 ||
        gc__h2conn_upgrade(c, gc__view(settings, v.len), was_head) < 0) {
        gc__debug("h2c upgrade from %s failed", c->remote_addr);
        gc__conn_close(c);
    }
    return 1;
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
        if (p->started)
            c->state = GC_CONN_RECEIVING;
        return 1;
    }
    return 1;
}

/* Feeds a connection's bytes to its parser: the HTTP/1 one, or with --protocol uwsgi
 * the uwsgi one, which leaves its results in c->parser all the same. */
static size_t parse(gc__conn_t *c, const char *data, size_t len)
{
    if (c->uwsgi != NULL)
        return gc__uwsgi_feed(c->uwsgi, &c->parser, data, len);
    return gc__http_parser_feed(&c->parser, data, len);
}

/* The client closed (or the connection failed): a request cut short is an error. */
static void parse_eof(gc__conn_t *c)
{
    if (c->uwsgi != NULL)
        gc__uwsgi_eof(c->uwsgi, &c->parser);
    else
        gc__http_parser_eof(&c->parser);
}

/* The client connection preface of HTTP/2 (RFC 9113 3.4). */
static const char h2_preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/* The first bytes of a connection from a trusted peer on an h2c prior-knowledge port
 * (Gunicorn's rule, in "both" mode too): the preface makes it HTTP/2, anything else
 * gets Gunicorn's 400. Until the preface is whole, its bytes wait in `pending`. */
static void h2c_preface(gc__conn_t *c, const char *base, size_t n)
{
    if (gc__buf_append(&c->pending, base, n) < 0) {
        gc__conn_close(c);
        return;
    }
    size_t have = c->pending.len, want = sizeof(h2_preface) - 1;
    size_t cmp = have < want ? have : want;
    if (memcmp(c->pending.data, h2_preface, cmp) == 0) {
        if (have < want)
            return; /* a prefix so far */
        if (gc__h2conn_attach(c) < 0) {
            gc__conn_close(c);
            return;
        }
        gc__buf_t bytes = c->pending;
        gc__buf_init(&c->pending);
        gc__h2conn_on_bytes(c, bytes.data, bytes.len);
        gc__buf_free(&bytes);
        return;
    }
    char shown[128], msg[200];
    gc__http_repr(shown, sizeof(shown), gc__view(c->pending.data, cmp));
    snprintf(msg, sizeof(msg), "Expected HTTP/2 connection preface, got b%s", shown);
    gc__debug("Invalid request from ip=%s: %s", c->remote_addr, msg);
    c->parser.started = 1; /* linger: the client may still be sending */
    answer_and_end(c, 400, msg);
}

/* What a read brought: nread bytes at base, or the end of the stream (nread <= 0: the
 * client closed, or the connection failed). */
static void on_bytes(gc__conn_t *c, const char *base, ssize_t nread)
{
    if (c->state == GC_CONN_LINGERING) {
        if (nread <= 0) /* the client has closed its side too */
            gc__conn_close(c);
        return; /* what it still sends is dropped */
    }
    if (c->h2 != NULL) {
        if (nread < 0)
            gc__debug("HTTP/2 connection from %s: %s%s%s", c->remote_addr, strerror((int)-nread),
                      gc__transport_is_tls(&c->tr) ? ": " : "",
                      gc__transport_is_tls(&c->tr) ? gc__tls_error(&c->tr) : "");
        if (nread <= 0)
            gc__conn_close(c);
        else
            gc__h2conn_on_bytes(c, base, (size_t)nread);
        return;
    }
    if (nread > 0 && c->w->h2c && c->uwsgi == NULL && c->parser.trusted && !c->answered &&
        !c->parser.started) {
        /* h2c with prior knowledge: a trusted peer opens with the connection preface. */
        h2c_preface(c, base, (size_t)nread);
        return;
    }
    if (nread > 0 && c->w->http2 && c->uwsgi == NULL && !c->answered && !c->parser.started &&
        c->pending.len == 0 && gc__transport_is_tls(&c->tr)) {
        /* The handshake is done: ALPN may have chosen HTTP/2. */
        gc__tls_info_t info;
        gc__tls_info(&c->tr, &info);
        if (strcmp(info.alpn, "h2") == 0) {
            if (gc__h2conn_attach(c) < 0)
                gc__conn_close(c);
            else
                gc__h2conn_on_bytes(c, base, (size_t)nread);
            return;
        }
    }
    if (c->state == GC_CONN_RUNNING) {
        /* A class that keeps reading while its request runs (ASGI): the end of the
         * stream is the client gone; bytes are the body it waits for
         * (gc__conn_app_read_body), or the next request, kept for later. */
        if (nread <= 0) {
            app_gone(c);
            return;
        }
        if (c->app_stream) {
            c->w->klass->stream_bytes(c, base, (size_t)nread);
            return;
        }
        if (c->app_body) {
            size_t used = parse(c, base, (size_t)nread);
            if (used < (size_t)nread &&
                gc__buf_append(&c->pending, base + used, (size_t)nread - used) < 0) {
                app_gone(c);
                return;
            }
            if (c->parser.state != GC_HTTP_NEED_MORE)
                c->app_body = 0;
            c->w->klass->body_done(c);
            return;
        }
        if (gc__buf_append(&c->pending, base, (size_t)nread) < 0) {
            app_gone(c);
            return;
        }
        if (c->pending.len > GC_APP_PENDING_MAX)
            stop_reading(c);
        return;
    }
    if (nread <= 0) {
        parse_eof(c);
        if (c->parser.state == GC_HTTP_ERROR && c->uwsgi != NULL && nread == 0) {
            /* A uwsgi packet cut short by a front end that only shut its sending side:
             * it may still read the answer (Gunicorn answers too, with a 500). */
            reject(c);
            return;
        }
        if (c->parser.state == GC_HTTP_ERROR)
            gc__debug("Ignored premature client disconnection from %s.", c->remote_addr);
        gc__conn_close(c);
        return;
    }
    if (c->proxy_wait) {
        /* The connection's first bytes may be a PROXY protocol header. */
        int rc = gc__frontend_proxy_read(&c->w->front, c, base, (size_t)nread);
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
        if (gc__buf_append(&c->pending, base, (size_t)nread) < 0) {
            gc__conn_close(c);
            return;
        }
        drive(c);
        return;
    }
    size_t used = parse(c, base, (size_t)nread);
    if ((c->parser.state == GC_HTTP_READY || c->parser.state == GC_HTTP_HEAD) &&
        used < (size_t)nread &&
        gc__buf_append(&c->pending, base + used, (size_t)nread - used) < 0) {
        gc__conn_close(c);
        return;
    }
    after_feed(c);
}

/* The socket is readable: reads what is there (once, or a few times while each read
 * fills the buffer, as a large upload does). */
static void read_some(gc__conn_t *c)
{
    char *buf = c->w->open.readbuf;
    for (int round = 0; round < 4 && c->reading && c->state != GC_CONN_CLOSING; round++) {
        ssize_t n = gc__transport_recv(&c->tr, buf, sizeof(c->w->open.readbuf));
        if (n == -EAGAIN) {
            /* A TLS read can need the socket writable (a handshake message to send). */
            int out = c->tr.want == POLLOUT;
            if (out != c->read_wants_out) {
                c->read_wants_out = out;
                watch(c);
            }
            return;
        }
        if (n < 0 && gc__transport_is_tls(&c->tr) && !gc__tls_established(&c->tr)) {
            gc__debug("TLS handshake with %s failed: %s",
                      c->remote_addr[0] ? c->remote_addr : "unix socket", gc__tls_error(&c->tr));
            gc__conn_close(c);
            return;
        }
        on_bytes(c, buf, n);
        /* More now only if the read filled the buffer, or a TLS session holds bytes
         * already decrypted, which no readiness of the socket would announce. */
        if (n < (ssize_t)sizeof(c->w->open.readbuf) &&
            (n <= 0 || gc__transport_buffered(&c->tr) == 0))
            return;
    }
}

static void out_flush(gc__conn_t *c);

static void on_io(uv_poll_t *h, int status, int events)
{
    gc__conn_t *c = h->data;
    if (status < 0) {
        gc__conn_close(c);
        return;
    }
    if (c->state == GC_CONN_QUEUED) {
        /* Its request waits for its turn: what else the client sends (a pipelined
         * request, the end of the stream) stays in the socket until that is done. */
        stop_reading(c);
        return;
    }
    if (c->h2 != NULL) {
        if (c->out_blocked && (events & UV_WRITABLE))
            gc__h2conn_on_writable(c);
    } else if (c->out_blocked) {
        out_flush(c);
    }
    if (c->reading && c->state != GC_CONN_CLOSING &&
        (events & (c->read_wants_out ? UV_WRITABLE : UV_READABLE)))
        read_some(c);
}

static void start_reading(gc__conn_t *c)
{
    if (!c->reading && c->state != GC_CONN_CLOSING) {
        c->reading = 1;
        watch(c);
    }
}

/* Feeds saved pipelined bytes until a request needs more input. */
static void drive(gc__conn_t *c)
{
    while (c->state != GC_CONN_CLOSING && c->pending.len > 0) {
        size_t used = parse(c, c->pending.data, c->pending.len);
        gc__buf_consume(&c->pending, used);
        if (!after_feed(c))
            return; /* dispatched (run will come back) or rejected */
    }
    if (c->state != GC_CONN_CLOSING)
        start_reading(c);
}

/* --- responses the loop finishes ---------------------------------------------------- *
 *
 * When a client reads slowly, the sink keeps the last part of a response in memory
 * (its spill) rather than make the application wait, and the connection takes it over
 * here: the loop writes it as the socket takes it, with --timeout to make each bit of
 * progress, and only then goes on to the next request or closes. A response keeps at most
 * GC_SPILL_PER_RESPONSE bytes and a worker at most GC_SPILL_PER_WORKER in all; past those the sink
 * waits for the socket as before. */
#define GC_SPILL_PER_RESPONSE ((size_t)1 << 20)
#define GC_SPILL_PER_WORKER ((size_t)32 << 20)

static size_t spill_room(const gc__worker_t *w)
{
    size_t used = w->open.spill_bytes;
    if (used >= GC_SPILL_PER_WORKER)
        return 0;
    size_t room = GC_SPILL_PER_WORKER - used;
    return room < GC_SPILL_PER_RESPONSE ? room : GC_SPILL_PER_RESPONSE;
}

static void out_release(gc__conn_t *c)
{
    c->w->open.spill_bytes -= c->out.len;
    gc__buf_free(&c->out);
    c->out_sent = 0;
    c->out_blocked = 0;
}

static void request_continue(gc__conn_t *c, int keep);
static void app_flush(gc__conn_t *c);

/* Sends what the spill left, as far as the transport takes it now; waits for readiness
 * for the rest (with --timeout for each bit of progress). When all is out, goes on. */
static void out_flush(gc__conn_t *c)
{
    if (c->state == GC_CONN_RUNNING) {
        app_flush(c);
        return;
    }
    int progress = 0;
    while (c->out_sent < c->out.len) {
        struct iovec iov = {.iov_base = c->out.data + c->out_sent,
                            .iov_len = c->out.len - c->out_sent};
        ssize_t n = gc__transport_writev(&c->tr, &iov, 1);
        if (n == -EAGAIN)
            break;
        if (n < 0) { /* the client went away */
            out_release(c);
            gc__conn_close(c);
            return;
        }
        c->out_sent += (size_t)n;
        progress = 1;
    }
    if (c->out_sent < c->out.len) {
        c->out_blocked = 1;
        watch(c);
        long secs = gc__cfg_int(c->w->cfg, GC_S_timeout);
        if (progress || !uv_is_active((uv_handle_t *)&c->timer)) {
            c->timer_for_request = 0;
            if (secs > 0)
                uv_timer_start(&c->timer, on_timer, (uint64_t)secs * 1000, 0);
        }
        return;
    }
    out_release(c);
    watch(c);
    uv_timer_stop(&c->timer);
    request_continue(c, c->keep_after_out);
}

/* The application took the connection (gunicorn.socket) and its request is over:
 * the connection leaves the worker without a shutdown or a lingering close, which
 * would end it for the application too. Its socket object holds a duplicate of the
 * descriptor, so the client is disconnected only when the application closes or drops
 * it. What the client had sent beyond the request is the application's loss. */
static void taken_release(gc__conn_t *c)
{
    gc__worker_t *w = c->w;
    c->state = GC_CONN_WAITING;
    w->open.spill_bytes -= c->spill_reserved;
    c->spill_reserved = 0;
    gc__sink_free(&c->sink);
    if (c->pending.len > 0)
        gc__debug("Dropped %zu bytes that came after a request whose application took the "
                  "connection",
                  c->pending.len);
    c->close_after = 0;
    c->answered = 1;
    gc__conn_count_request(w);
    gc__conn_close(c);
}

void gc__conn_finish(gc__conn_t *c, int keep)
{
    gc__worker_t *w = c->w;
    if (c->stream != NULL) {
        gc__h2conn_stream_finish(c, keep);
        return;
    }
    if (keep == GC_CONN_TAKEN) {
        taken_release(c);
        return;
    }
    c->state = GC_CONN_WAITING; /* until request_done says where it goes */
    w->open.spill_bytes -= c->spill_reserved;
    c->spill_reserved = 0;
    if (c->sink.error == 0) {
        out_release(c);
        if (gc__sink_take_spill(&c->sink, &c->out) > 0)
            w->open.spill_bytes += c->out.len;
    }
    gc__sink_free(&c->sink);
    if (c->close_after) {
        c->close_after = 0;
        keep = 0;
    }
    gc__conn_request_done(c, keep);
}

void gc__conn_request_done(gc__conn_t *c, int keep)
{
    c->answered = 1;
    gc__conn_count_request(c->w);
    if (c->out.len > 0 && c->state != GC_CONN_CLOSING) {
        /* The end of the response is still to go out (the sink spilled it): the loop
         * sends it, then goes on. */
        c->keep_after_out = keep;
        c->state = GC_CONN_SENDING;
        stop_reading(c); /* still on after an inline run */
        out_flush(c);
        return;
    }
    request_continue(c, keep);
}

/* A request has been answered (on a connection or an HTTP/2 stream): the counts, the
 * scoreboard, and what they may set off (an exit asked for, --max-requests). */
void gc__conn_count_request(gc__worker_t *w)
{
    /* The loop's clock stood still while an inline class ran the application: timers
     * armed from here on must count from now, not from before the request. (Other
     * classes run it elsewhere while the loop, and its clock, go on.) */
    if (w->klass->runs_inline)
        uv_update_time(w->loop);
    w->requests++;
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
}

/* After a response has gone out: close, or get ready for the next request. */
static void request_continue(gc__conn_t *c, int keep)
{
    gc__worker_t *w = c->w;
    if (c->state == GC_CONN_CLOSING)
        return;
    if (!keep) {
        conn_end(c);
        return;
    }
    gc__http_parser_next(&c->parser);
    if (c->uwsgi != NULL)
        gc__uwsgi_next(c->uwsgi);
    c->state = GC_CONN_WAITING;
    c->continue_sent = 0;
    c->idle_since = uv_hrtime();
    arm_timer(c, 0);
    /* Stopping after a response that promised keep-alive: the client may be sending its
     * next request already, which is answered with "Connection: close". */
    if (w->stopping)
        last_call(c);
    drive(c);
    /* Idle now, the connection can make room for a new one at the limit. */
    if (w->acc.paused && c->state == GC_CONN_WAITING)
        gc__accept_update(w);
}

/* Reads a connection just accepted at once, without waiting for the loop to report it
 * readable: its client has usually sent the request with the handshake. That saves a
 * turn of the loop, and means a sync worker starts serving what it accepts right
 * away: a connection it has taken never waits behind the application run by another
 * (a killed worker takes one request with it, not two). */
static void read_now(gc__conn_t *c)
{
    read_some(c); /* nothing there yet (-EAGAIN): the loop finds out as usual */
}

/* TCP_NODELAY on a socket accepted from listener li: set once on the listener, it is
 * inherited on Linux, which the first connection checks; otherwise it is set on each. */
static void conn_nodelay(gc__worker_t *w, size_t li, gc__conn_t *c)
{
    if (w->acc.nodelay_inherited[li])
        return;
    int on = 0;
    socklen_t len = sizeof(on);
    if (getsockopt(c->tr.fd, IPPROTO_TCP, TCP_NODELAY, &on, &len) == 0 && on)
        w->acc.nodelay_inherited[li] = 1;
    else
        setsockopt(c->tr.fd, IPPROTO_TCP, TCP_NODELAY, &(int){1}, sizeof(int));
}

/* Takes ownership of fd, a connection just accepted on listener `li`; peer is its
 * address as accept4 gave it (borrowed; NULL for a unix socket). */
void gc__conn_open(gc__worker_t *w, size_t li, int fd, const struct sockaddr_storage *peer)
{
    const gc__listener_t *l = &w->listeners[li];
    gc__conn_t *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        close(fd);
        return;
    }
    c->w = w;
    c->listener = l;
    /* accept4 made fd non-blocking; the transport owns it from here on. Under TLS the
     * handshake is the first thing the loop reads (read_now, below). */
    if (w->tls.ctx == NULL) {
        gc__transport_socket(&c->tr, fd);
    } else if (gc__transport_tls(&c->tr, fd, w->tls.ctx, &w->tls_opt) < 0) {
        free(c);
        return;
    }
    if (uv_poll_init_socket(w->loop, &c->poll, fd) < 0) {
        gc__transport_close(&c->tr);
        free(c);
        return;
    }
    c->poll.data = c;
    c->open_handles = 1;
    c->idle_since = uv_hrtime();
    gc__http_parser_init(&c->parser, &w->limits);
    if (w->front.uwsgi && (c->uwsgi = malloc(sizeof(*c->uwsgi))) != NULL)
        gc__uwsgi_init(c->uwsgi);
    gc__buf_init(&c->pending);
    c->next = w->open.list;
    if (w->open.list)
        w->open.list->prev = c;
    w->open.list = c;
    w->open.n++;
    gc__accept_publish(w);
    uv_timer_init(w->loop, &c->timer);
    c->timer.data = c;
    c->open_handles = 2;
    c->family = l->is_unix ? AF_UNIX : peer != NULL ? peer->ss_family : AF_INET;
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
    if (w->front.uwsgi && c->uwsgi == NULL) {
        gc__conn_close(c); /* out of memory */
        return;
    }
    if (c->parser.state == GC_HTTP_ERROR) { /* a peer refused at once (uwsgi_allow_ips) */
        reject(c);
        return;
    }
    arm_timer(c, 0);
    start_reading(c);
    read_now(c);
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

/* Gives every connection idle between requests its last call (a graceful stop). */
void gc__conns_last_call(gc__worker_t *w)
{
    /* A connection idle between requests (or not yet read from) is not closed at once:
     * its client may have sent a request that is still on its way, and closing under
     * it would fail that request with no way to know it was never seen. Each gets a
     * last call of at most GC_LAST_CALL_MS: a request that arrives meanwhile is
     * answered with "Connection: close", and a connection still silent then is ended
     * the way RFC 9112 9.6 asks (gc__conn_linger). Requests being received, queued or
     * run finish within the graceful timeout, also with "Connection: close". */
    uv_update_time(w->loop);
    for (gc__conn_t *c = w->open.list; c; c = c->next) {
        if (c->h2 != NULL && c->state != GC_CONN_CLOSING && c->state != GC_CONN_LINGERING) {
            /* Its GOAWAY dance (gc__h2_goaway) waits for the client's answer: this many
             * milliseconds at most once no stream runs. */
            gc__h2conn_last_call(c);
            if (c->state != GC_CONN_CLOSING && c->state != GC_CONN_LINGERING && !gc__h2conn_busy(c))
                last_call(c);
            continue;
        }
        if (c->state != GC_CONN_WAITING)
            continue;
        if (c->pending.len > 0 || bytes_waiting(c)) {
            arm_timer(c, 1); /* a request is here: the next read serves it */
            continue;
        }
        last_call(c);
    }
}

/* --- for a class whose application writes from the loop (asgi.c) ---------------------- *
 *
 * The application runs on the loop's thread, in coroutines, so nothing may wait: what it
 * sends goes out as far as the socket takes it and the rest waits in `out`, which the
 * loop sends as the socket becomes writable (--timeout for each bit of progress, as for
 * the spill). Past GC_APP_OUT_HIGH bytes waiting, the application is told to wait for
 * the class's `drained` call, made once they are below GC_APP_OUT_LOW. The connection is
 * read meanwhile: the end of the stream is the client gone (the class's `gone`). */
#define GC_APP_OUT_HIGH ((size_t)256 << 10)
#define GC_APP_OUT_LOW ((size_t)64 << 10)

static size_t app_waiting(const gc__conn_t *c)
{
    return c->out.len - c->out_sent;
}

static void app_gone(gc__conn_t *c)
{
    if (c->app_gone)
        return;
    c->app_gone = 1;
    stop_reading(c);
    uv_timer_stop(&c->timer);
    if (c->out_blocked) {
        c->out_blocked = 0;
        watch(c);
    }
    if (c->w->klass->gone != NULL)
        c->w->klass->gone(c);
}

static void app_flush(gc__conn_t *c)
{
    size_t before = app_waiting(c);
    while (app_waiting(c) > 0) {
        struct iovec iov = {.iov_base = c->out.data + c->out_sent, .iov_len = app_waiting(c)};
        ssize_t n = gc__transport_writev(&c->tr, &iov, 1);
        if (n == -EAGAIN)
            break;
        if (n < 0) {
            app_gone(c);
            return;
        }
        c->out_sent += (size_t)n;
    }
    size_t left = app_waiting(c);
    if (left == 0) {
        out_release(c);
        watch(c);
        uv_timer_stop(&c->timer);
    } else {
        c->out_blocked = 1;
        watch(c);
        long secs = gc__cfg_int(c->w->cfg, GC_S_timeout);
        if (secs > 0 && (left < before || !uv_is_active((uv_handle_t *)&c->timer)))
            uv_timer_start(&c->timer, on_timer, (uint64_t)secs * 1000, 0);
    }
    if (before > GC_APP_OUT_LOW && left <= GC_APP_OUT_LOW && c->w->klass->drained != NULL)
        c->w->klass->drained(c);
}

static void batch_push(gc__conn_t *c)
{
    if (c->batched)
        return;
    c->batched = 1;
    c->batch_next = c->w->batch;
    c->w->batch = c;
}

static void app_done_now(gc__conn_t *c, int keep);

void gc__conns_app_flush(gc__worker_t *w)
{
    gc__conn_t *list = w->batch;
    w->batch = NULL;
    while (list != NULL) {
        gc__conn_t *c = list;
        list = c->batch_next;
        c->batched = 0;
        if (!c->app_gone)
            app_flush(c);
        if (c->batch_done) {
            int keep = c->batch_done - 1;
            c->batch_done = 0;
            app_done_now(c, keep);
        }
    }
}

int gc__conn_app_write(gc__conn_t *c, const struct iovec *iov, int n)
{
    if (c->stream != NULL) /* an HTTP/2 stream: into its session */
        return gc__h2conn_app_write(c, iov, n);
    if (c->app_gone)
        return -1;
    size_t total = 0;
    for (int i = 0; i < n; i++)
        total += iov[i].iov_len;
    size_t done = 0;
    if (app_waiting(c) == 0 && !c->w->app_batch) {
        ssize_t w = gc__transport_writev(&c->tr, iov, n);
        if (w < 0 && w != -EAGAIN) {
            app_gone(c);
            return -1;
        }
        done = w > 0 ? (size_t)w : 0;
    }
    if (done < total) {
        if (gc__buf_reserve(&c->out, total - done) < 0) {
            app_gone(c);
            return -1;
        }
        size_t skip = done;
        for (int i = 0; i < n; i++) {
            size_t len = iov[i].iov_len;
            if (skip >= len) {
                skip -= len;
                continue;
            }
            gc__buf_append(&c->out, (const char *)iov[i].iov_base + skip, len - skip);
            skip = 0;
        }
        c->w->open.spill_bytes += total - done;
        if (c->w->app_batch) {
            batch_push(c);
        } else {
            app_flush(c);
            if (c->app_gone)
                return -1;
        }
    }
    return app_waiting(c) > GC_APP_OUT_HIGH;
}

int gc__conn_app_congested(const gc__conn_t *c)
{
    if (c->stream != NULL)
        return gc__h2conn_app_congested(c);
    return !c->app_gone && app_waiting(c) > GC_APP_OUT_LOW;
}

int gc__conn_app_gone(const gc__conn_t *c)
{
    return c->app_gone;
}

void gc__conn_app_listen(gc__conn_t *c)
{
    if (c->stream != NULL)
        return; /* its connection reads, for every stream */
    if (c->pending.len <= GC_APP_PENDING_MAX)
        start_reading(c);
}

void gc__conn_app_read_body(gc__conn_t *c)
{
    if (c->stream != NULL) { /* an HTTP/2 stream runs with its body complete */
        c->w->klass->body_done(c);
        return;
    }
    gc__http_parser_resume_body(&c->parser);
    if (c->pending.len > 0) {
        size_t used = parse(c, c->pending.data, c->pending.len);
        gc__buf_consume(&c->pending, used);
    }
    if (c->parser.state != GC_HTTP_NEED_MORE) {
        c->w->klass->body_done(c);
        return;
    }
    c->app_body = 1;
    start_reading(c);
}

void gc__conn_app_stream(gc__conn_t *c)
{
    if (c->stream != NULL)
        return; /* (no WebSocket over HTTP/2 streams) */
    c->app_stream = 1;
    if (c->pending.len > 0) {
        gc__buf_t held = c->pending;
        gc__buf_init(&c->pending);
        c->w->klass->stream_bytes(c, held.data, held.len);
        gc__buf_free(&held);
    }
    if (!c->app_gone)
        start_reading(c);
}

void gc__conn_app_abandon(gc__conn_t *c)
{
    app_gone(c);
}

void gc__conn_app_pause_body(gc__conn_t *c, int pause)
{
    if (c->stream != NULL)
        return;
    if (pause)
        stop_reading(c);
    else if (!c->app_gone)
        start_reading(c);
}

void gc__conn_app_cut(gc__conn_t *c)
{
    if (c->stream != NULL)
        gc__h2conn_app_cut(c);
    /* (on a connection, the keep-alive the class gives up ends it) */
}

void gc__conn_app_done(gc__conn_t *c, int keep)
{
    if (c->stream != NULL) {
        c->app_gone = 0;
        c->app_waits = 0;
        gc__conn_finish(c, keep);
        return;
    }
    if (c->batched) { /* its bytes go first, with the batch */
        c->batch_done = keep + 1;
        return;
    }
    app_done_now(c, keep);
}

static void app_done_now(gc__conn_t *c, int keep)
{
    c->app_body = 0;
    if (c->app_stream) {
        c->app_stream = 0;
        keep = 0; /* the connection spoke another protocol: it ends here */
    }
    if (c->app_gone || c->close_after)
        keep = 0;
    c->close_after = 0;
    c->app_gone = 0;
    uv_timer_stop(&c->timer);
    c->state = GC_CONN_WAITING;
    c->w->open.spill_bytes -= c->spill_reserved; /* set aside by gc__conn_start, unused */
    c->spill_reserved = 0;
    c->out_blocked = 0;
    gc__conn_request_done(c, keep);
}

/* --- for h2conn.c ------------------------------------------------------------------- */

/* Whether the connection waits for the socket to take more bytes (HTTP/2's writes). */
void gc__conn_watch_out(gc__conn_t *c, int blocked)
{
    if (c->out_blocked != blocked) {
        c->out_blocked = blocked;
        watch(c);
    }
}

/* The idle wait between requests (--keep-alive), as after an HTTP/1 response. */
void gc__conn_arm_idle(gc__conn_t *c)
{
    if (c->state != GC_CONN_CLOSING && c->state != GC_CONN_LINGERING)
        arm_timer(c, 0);
}

/* Hands a complete request to the class, as dispatch does for a connection's (an
 * HTTP/2 stream has neither reading nor a timer of its own). */
void gc__conn_dispatch(gc__conn_t *c)
{
    gc__worker_t *w = c->w;
    c->state = GC_CONN_QUEUED;
    if (!w->klass->queues)
        gc__conn_start(c);
    w->klass->run(c);
}
