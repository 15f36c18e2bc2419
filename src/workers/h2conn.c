/* h2conn.c: HTTP/2 on a worker's connection: the glue between a connection's bytes,
 * the sans-IO session of src/h2/ and the worker classes.
 *
 * The session lives on the loop thread: the loop reads the connection, feeds the
 * session, and writes what it gives. Each stream whose request is complete becomes a
 * gc__conn_t of its own, a "stream", that the worker class runs exactly as it runs a
 * connection's request (gc__conn_respond, gc__conn_finish): its transport takes the
 * HTTP/1-shaped response the WSGI layer writes, and this file turns the head into
 * HTTP/2 fields and the rest into DATA. So the classes and the WSGI path need no
 * HTTP/2 of their own:
 *
 *   gthread, gevent  streams run concurrently; the application's writes land in the
 *                    stream's `out` (under the worker's h2news lock) and the loop moves
 *                    them into the session; a writer with GC_H2_MARK bytes waiting
 *                    waits on the stream's eventfd until the loop has taken them, and
 *                    the loop takes them while the stream's queue in the session is
 *                    below the mark (the client's flow-control window drains it);
 *   sync             streams run one after another, on the loop thread: a write goes
 *                    straight into the session, and when the client's window is full
 *                    the write reads and writes the connection itself (pump) until
 *                    there is room, deferring new streams until the running one ends.
 *
 * Memory per stream is bounded by twice the mark, whatever the response's size. */
#include "workers/internal.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "h2/h2.h"
#include "http/response.h"
#include "log/log.h"

/* Response bytes a stream may have waiting, in `out` and again in the session. */
#define GC_H2_MARK ((size_t)256 * 1024)
/* Bytes taken from the session per write to the socket. */
#define GC_H2_WRITE_MAX ((size_t)64 * 1024)

typedef struct gc__h2conn {
    gc__conn_t *conn; /* NULL once its handles have closed */
    gc__worker_t *w;
    gc__h2_session_t *s;
    gc__buf_t wbuf; /* frames taken from the session, not yet written */
    size_t wsent;
    gc__conn_t *streams;    /* every stream conn, by prev/next */
    gc__conn_queue_t ready; /* complete requests waiting to be dispatched */
    int running;            /* streams dispatched and not finished */
    int dispatching, pumping;
    int soon; /* in the worker's h2soon list: written at the end of this turn */
    struct gc__h2conn *soon_next;
    int closing; /* close once idle (GOAWAY sent) */
    int has_tls;
    gc__tls_info_t tls;
    gc__tls_peer_t peer; /* copies: the stream may outlive the connection */
} gc__h2conn_t;

static void flush(gc__h2conn_t *h);
static void flush_soon(gc__h2conn_t *h);
static void dispatch_ready(gc__h2conn_t *h);

/* The worker's news queue links streams by `newsnext`: a stream that posted news may
 * meanwhile be in a class's queue or the done queue, which use `qnext`. */
static void news_push(gc__conn_queue_t *q, gc__conn_t *sc)
{
    sc->newsnext = NULL;
    if (q->tail)
        q->tail->newsnext = sc;
    else
        q->head = sc;
    q->tail = sc;
}

/* --- the stream transport ------------------------------------------------------------ */

static ssize_t stream_recv(gc__transport_t *t, void *buf, size_t len)
{
    return 0; /* the body is complete before the request runs */
}

/* The first bytes of a response are the HTTP/1 head the WSGI layer wrote ("HTTP/1.1 200
 * OK\r\nName: value\r\n...\r\n\r\n"): made by us, so simple to take apart. Hands the
 * status and fields to the session. Returns 0 or a negative errno. */
static int respond_head(gc__conn_t *sc, const char *head, size_t len, int informational)
{
    gc__h2conn_t *h = sc->h2;
    const char *end = head + len, *p = memchr(head, ' ', len);
    if (p == NULL || end - p < 4)
        return -EPROTO;
    int status = (p[1] - '0') * 100 + (p[2] - '0') * 10 + (p[3] - '0');
    gc__h2_header_t fields[128];
    size_t n = 0;
    const char *line = memchr(p, '\n', (size_t)(end - p));
    while (line != NULL && ++line < end && n < sizeof(fields) / sizeof(fields[0])) {
        const char *eol = memchr(line, '\r', (size_t)(end - line));
        const char *colon = eol ? memchr(line, ':', (size_t)(eol - line)) : NULL;
        if (colon == NULL)
            break; /* the blank line */
        const char *v = colon + 1;
        while (v < eol && (*v == ' ' || *v == '\t'))
            v++;
        fields[n].name = gc__view(line, (size_t)(colon - line));
        fields[n].value = gc__view(v, (size_t)(eol - v));
        /* The Server line stays; Date stays; HTTP/1's framing goes (the session drops
         * the connection-specific fields itself). */
        n++;
        line = memchr(eol, '\n', (size_t)(end - eol));
    }
    if (informational)
        return gc__h2_send_informational(h->s, sc->stream, status, fields, n);
    int rc = gc__h2_respond(h->s, sc->stream, status, fields, n, 0);
    return rc == -EALREADY ? 0 : rc;
}

/* Response bytes of stream sc, in the order the WSGI layer wrote them, into the session
 * (loop thread). Returns 0 or a negative errno (the stream is gone: stop). */
static int feed_out(gc__conn_t *sc, const char *data, size_t len)
{
    gc__h2conn_t *h = sc->h2;
    if (h->s == NULL || sc->stream == NULL)
        return -EPIPE;
    if (!sc->head_done) {
        if (gc__buf_append(&sc->pending, data, len) < 0)
            return -ENOMEM;
        /* Heads until the final one: 103 Early Hints go out as informational
         * responses. */
        for (;;) {
            const char *hd = sc->pending.data;
            const char *blank = memmem(hd, sc->pending.len, "\r\n\r\n", 4);
            if (blank == NULL)
                return 0;
            size_t head_len = (size_t)(blank - hd) + 4;
            int informational = sc->pending.len > 9 && hd[9] == '1';
            int rc = respond_head(sc, hd, head_len, informational);
            if (rc < 0)
                return rc;
            if (informational) {
                gc__buf_consume(&sc->pending, head_len);
                continue;
            }
            sc->head_done = 1;
            size_t rest = sc->pending.len - head_len;
            rc = rest ? gc__h2_send_data(h->s, sc->stream, hd + head_len, rest, 0) : 0;
            gc__buf_free(&sc->pending);
            return rc;
        }
    }
    return len ? gc__h2_send_data(h->s, sc->stream, data, len, 0) : 0;
}

static size_t iov_total(const struct iovec *iov, int n)
{
    size_t total = 0;
    for (int i = 0; i < n; i++)
        total += iov[i].iov_len;
    return total;
}

/* The sync class, on the loop thread: reads what the client has sent (window updates,
 * new streams, which wait), without dispatching anything. */
static void pump(gc__h2conn_t *h)
{
    gc__conn_t *c = h->conn;
    if (c == NULL)
        return;
    h->pumping = 1;
    char *buf = h->w->open.readbuf;
    for (int round = 0; round < 16 && h->conn != NULL; round++) {
        ssize_t n = gc__transport_recv(&c->tr, buf, sizeof(h->w->open.readbuf));
        if (n == -EAGAIN)
            break;
        if (n <= 0 || gc__h2_feed(h->s, (const uint8_t *)buf, (size_t)n) < 0) {
            h->closing = 1;
            break;
        }
    }
    h->pumping = 0;
    flush(h);
}

static ssize_t writev_inline(gc__conn_t *sc, const struct iovec *iov, int n, size_t take)
{
    gc__h2conn_t *h = sc->h2;
    if (sc->dead || h->conn == NULL || sc->stream == NULL)
        return -EPIPE;
    if (gc__h2_stream_queued(sc->stream) >= GC_H2_MARK) {
        /* Full: send what the window allows, and read what the client sent (its
         * WINDOW_UPDATEs); if that made no room, wait for the socket. */
        pump(h);
        if (sc->dead || h->conn == NULL || sc->stream->closed)
            return -EPIPE;
        if (gc__h2_stream_queued(sc->stream) >= GC_H2_MARK) {
            sc->tr.fd = h->conn->tr.fd;
            sc->tr.want = POLLIN | (h->wsent < h->wbuf.len ? POLLOUT : 0);
            return -EAGAIN;
        }
    }
    /* Queued only: the frames go out when the stream ends or the queue is full, so that
     * the responses of several streams share records and system calls. */
    size_t left = take;
    for (int i = 0; i < n && left > 0; i++) {
        size_t k = iov[i].iov_len < left ? iov[i].iov_len : left;
        int rc = feed_out(sc, iov[i].iov_base, k);
        if (rc < 0)
            return rc == -ENOMEM ? -ENOMEM : -EPIPE;
        left -= k;
    }
    return (ssize_t)take;
}

static ssize_t stream_writev(gc__transport_t *t, const struct iovec *iov, int n)
{
    gc__conn_t *sc = t->ctx;
    gc__worker_t *w = sc->w;
    size_t total = iov_total(iov, n);
    size_t take = total < GC_H2_MARK ? total : GC_H2_MARK;
    if (take == 0)
        return 0;
    if (w->klass->runs_inline)
        return writev_inline(sc, iov, n, take);
    uint64_t ticks;
    if (sc->efd >= 0 && read(sc->efd, &ticks, sizeof(ticks)) < 0) { /* an old wake-up */
    }
    pthread_mutex_lock(&w->h2news.lock);
    if (sc->dead) {
        pthread_mutex_unlock(&w->h2news.lock);
        return -EPIPE;
    }
    if (sc->out.len >= GC_H2_MARK) {
        /* The eventfd is made the first time a writer must wait: most responses never
         * do, and it saves them two system calls. */
        if (sc->efd < 0)
            sc->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (sc->efd < 0) {
            pthread_mutex_unlock(&w->h2news.lock);
            return -errno;
        }
        sc->writer_waits = 1;
        pthread_mutex_unlock(&w->h2news.lock);
        t->fd = sc->efd;
        t->want = POLLIN;
        return -EAGAIN;
    }
    size_t left = take;
    int rc = 0;
    for (int i = 0; i < n && left > 0 && rc == 0; i++) {
        size_t k = iov[i].iov_len < left ? iov[i].iov_len : left;
        rc = gc__buf_append(&sc->out, iov[i].iov_base, k);
        left -= k;
    }
    int post = !sc->news_posted;
    if (post) {
        sc->news_posted = 1;
        news_push(&w->h2news.queue, sc);
    }
    pthread_mutex_unlock(&w->h2news.lock);
    if (post)
        uv_async_send(&w->h2news.async);
    return rc < 0 ? -ENOMEM : (ssize_t)take;
}

static int stream_readable_now(gc__transport_t *t)
{
    return 0;
}

static int stream_shutdown(gc__transport_t *t)
{
    return 0;
}

static void stream_close(gc__transport_t *t) {}

static const gc__transport_ops_t stream_ops = {
    .name = "h2 stream",
    .recv = stream_recv,
    .writev = stream_writev,
    .sendfile = NULL, /* files are read and written: the session frames every byte */
    .readable_now = stream_readable_now,
    .shutdown = stream_shutdown,
    .close = stream_close,
};

/* --- streams -------------------------------------------------------------------------- */

static void unlink_stream(gc__h2conn_t *h, gc__conn_t *sc)
{
    if (sc->prev)
        sc->prev->next = sc->next;
    else
        h->streams = sc->next;
    if (sc->next)
        sc->next->prev = sc->prev;
    sc->prev = sc->next = NULL;
}

static void free_stream_conn(gc__h2conn_t *h, gc__conn_t *sc)
{
    unlink_stream(h, sc);
    if (sc->stream != NULL && h->s != NULL)
        gc__h2_stream_release(h->s, sc->stream);
    if (sc->efd >= 0)
        close(sc->efd);
    gc__buf_free(&sc->out);
    gc__buf_free(&sc->pending);
    gc__buf_free(&sc->head);
    gc__buf_free(&sc->trailers);
    free(sc);
}

static void free_session(gc__h2conn_t *h)
{
    if (h->soon) { /* out of the worker's list of connections to write */
        gc__h2conn_t **p = &h->w->h2soon;
        while (*p != h)
            p = &(*p)->soon_next;
        *p = h->soon_next;
    }
    while (h->streams != NULL) /* none runs: those not dispatched */
        free_stream_conn(h, h->streams);
    gc__h2_free(h->s);
    gc__buf_free(&h->wbuf);
    free((void *)h->peer.verify);
    free((void *)h->peer.subject);
    free((void *)h->peer.issuer);
    free((void *)h->peer.serial);
    free((void *)h->peer.pem);
    free(h);
}

static void on_request(void *user, gc__h2_stream_t *st)
{
    gc__h2conn_t *h = user;
    gc__conn_t *c = h->conn, *sc = calloc(1, sizeof(*sc));
    if (sc == NULL || c == NULL) {
        free(sc);
        gc__h2_reset(h->s, st, GC_H2_INTERNAL_ERROR);
        gc__h2_stream_release(h->s, st);
        return;
    }
    sc->w = h->w;
    sc->listener = c->listener;
    memcpy(sc->remote_addr, c->remote_addr, sizeof(sc->remote_addr));
    memcpy(sc->remote_port, c->remote_port, sizeof(sc->remote_port));
    sc->proxy = c->proxy;
    sc->h2 = h;
    sc->stream = st;
    sc->efd = -1;
    gc__buf_init(&sc->out);
    gc__buf_init(&sc->pending);
    gc__buf_init(&sc->head);
    gc__buf_init(&sc->trailers);
    sc->tr.ops = &stream_ops;
    sc->tr.fd = -1;
    sc->tr.ctx = sc;
    st->user = sc;
    sc->next = h->streams;
    if (h->streams)
        h->streams->prev = sc;
    h->streams = sc;
    if (st->body_done || st->error_status)
        gc__conn_queue_push(&h->ready, sc);
    else if (st->req.expect_continue)
        /* The body is read before the application runs: a client that waits for
         * "100 Continue" is told to go on at once. */
        gc__h2_send_informational(h->s, st, 100, NULL, 0);
}

static void on_body_done(void *user, gc__h2_stream_t *st)
{
    gc__h2conn_t *h = user;
    gc__conn_t *sc = st->user;
    if (sc != NULL && !st->error_status && sc->state == GC_CONN_WAITING)
        gc__conn_queue_push(&h->ready, sc);
}

/* The stream can no longer be answered (reset by the client, or its connection is
 * gone): the application's next write fails, and a writer waiting for room wakes to
 * find out. Any thread. */
static void kill_stream(gc__conn_t *sc)
{
    gc__worker_t *w = sc->w;
    pthread_mutex_lock(&w->h2news.lock);
    sc->dead = 1;
    if (sc->writer_waits && sc->efd >= 0)
        eventfd_write(sc->efd, 1);
    pthread_mutex_unlock(&w->h2news.lock);
}

/* A stream whose application runs on the loop (asgi.c) can no longer be answered: the
 * class hears it at once (http.disconnect), as it does for a connection. */
static void app_stream_gone(gc__conn_t *sc)
{
    if (sc->app == NULL || sc->app_gone || sc->w->klass->gone == NULL)
        return;
    sc->app_gone = 1;
    sc->w->klass->gone(sc);
}

static void on_stream_close(void *user, gc__h2_stream_t *st, uint32_t code)
{
    gc__conn_t *sc = st->user;
    if (sc == NULL || code == GC_H2_NO_ERROR)
        return;
    /* The client reset it: a running application's next write fails. */
    kill_stream(sc);
    app_stream_gone(sc);
}

/* Below this, a stream's application waiting for room (asgi.c) goes on. */
#define GC_H2_APP_LOW (GC_H2_MARK / 4)

static void on_data_sent(void *user, gc__h2_stream_t *st, size_t queued)
{
    (void)user;
    gc__conn_t *sc = st->user;
    if (sc == NULL || !sc->app_waits || queued > GC_H2_APP_LOW)
        return;
    sc->app_waits = 0;
    if (sc->w->klass->drained != NULL)
        sc->w->klass->drained(sc);
}

/* Answers a request the codec refused (431, 400 ...) on its stream alone. */
static void answer_error(gc__h2conn_t *h, gc__conn_t *sc)
{
    gc__buf_t out;
    gc__buf_init(&out);
    if (gc__http_write_error(&out, sc->stream->error_status, sc->stream->error_msg) == 0 &&
        feed_out(sc, out.data, out.len) == 0)
        gc__h2_send_data(h->s, sc->stream, NULL, 0, 1);
    gc__buf_free(&out);
    gc__debug("Invalid HTTP/2 request from ip=%s: %s", sc->remote_addr, sc->stream->error_msg);
    free_stream_conn(h, sc);
}

static void dispatch_ready(gc__h2conn_t *h)
{
    if (h->dispatching || h->pumping)
        return;
    h->dispatching = 1;
    gc__worker_t *w = h->w;
    for (gc__conn_t *sc; h->conn != NULL && (sc = h->ready.head) != NULL;) {
        if (w->klass->runs_inline && h->running > 0)
            break; /* sync: one stream after another */
        gc__conn_queue_pop(&h->ready);
        gc__h2_stream_t *st = sc->stream;
        if (st->closed && st->close_code != GC_H2_NO_ERROR) {
            free_stream_conn(h, sc);
            continue;
        }
        if (st->error_status) {
            answer_error(h, sc);
            continue;
        }
        /* The request as the HTTP/1 parser would hand it over (borrowed from the
         * stream, which keeps it until release). */
        sc->parser.req = st->req;
        sc->parser.state = GC_HTTP_READY;
        sc->parser.limits = &w->limits;
        h->running++;
        uv_timer_stop(&h->conn->timer);
        gc__conn_dispatch(sc);
    }
    h->dispatching = 0;
    flush_soon(h);
}

/* Moves what a thread or greenlet wrote for stream sc into the session, as far as the
 * mark allows, and wakes a writer waiting for room. Loop thread. */
static int move_out(gc__conn_t *sc)
{
    gc__h2conn_t *h = sc->h2;
    gc__worker_t *w = h->w;
    int moved = 0;
    pthread_mutex_lock(&w->h2news.lock);
    if (sc->out.len > 0 && sc->stream != NULL) {
        size_t queued = gc__h2_stream_queued(sc->stream);
        size_t room = queued < GC_H2_MARK ? GC_H2_MARK - queued : 0;
        size_t k = sc->out.len < room ? sc->out.len : room;
        if (k > 0) {
            if (feed_out(sc, sc->out.data, k) < 0) {
                sc->dead = 1;
                k = sc->out.len;
            }
            gc__buf_consume(&sc->out, k);
            moved = 1;
        }
    }
    if (sc->writer_waits && (sc->out.len < GC_H2_MARK || sc->dead)) {
        sc->writer_waits = 0;
        eventfd_write(sc->efd, 1);
    }
    pthread_mutex_unlock(&w->h2news.lock);
    return moved;
}

void gc__h2conn_on_news(uv_async_t *a)
{
    gc__worker_t *w = a->data;
    pthread_mutex_lock(&w->h2news.lock);
    gc__conn_t *news = w->h2news.queue.head;
    w->h2news.queue.head = w->h2news.queue.tail = NULL;
    for (gc__conn_t *sc = news; sc; sc = sc->newsnext)
        sc->news_posted = 0;
    pthread_mutex_unlock(&w->h2news.lock);
    /* A stream finished meanwhile has been taken out of the queue (stream_finish). */
    for (gc__conn_t *sc = news, *next; sc; sc = next) {
        next = sc->newsnext;
        move_out(sc);
        flush_soon(sc->h2);
    }
}

/* --- for a class whose application writes from the loop (asgi.c) -------------------- *
 *
 * Its writes come on the loop thread, so they go straight into the session (no `out`,
 * no news) and out with the turn's other frames. The application awaits the class's
 * `drained` call once more than GC_H2_MARK bytes wait in the session (the client's
 * window holds them), made when they are down to GC_H2_APP_LOW. */

int gc__h2conn_app_write(gc__conn_t *sc, const struct iovec *iov, int n)
{
    gc__h2conn_t *h = sc->h2;
    if (sc->app_gone)
        return -1;
    if (sc->dead || h->conn == NULL || sc->stream == NULL || sc->stream->closed) {
        app_stream_gone(sc);
        return -1;
    }
    for (int i = 0; i < n; i++) {
        if (feed_out(sc, iov[i].iov_base, iov[i].iov_len) < 0) {
            app_stream_gone(sc);
            return -1;
        }
    }
    flush_soon(h);
    if (gc__h2_stream_queued(sc->stream) <= GC_H2_MARK)
        return 0;
    sc->app_waits = 1;
    return 1;
}

int gc__h2conn_app_congested(const gc__conn_t *sc)
{
    return !sc->app_gone && !sc->dead && sc->stream != NULL &&
           gc__h2_stream_queued(sc->stream) > GC_H2_APP_LOW;
}

void gc__h2conn_app_cut(gc__conn_t *sc)
{
    kill_stream(sc);
}

void gc__h2conn_trailers(void *stream, const gc__http_header_t *fields, size_t n)
{
    gc__conn_t *sc = stream;
    gc__buf_reset(&sc->trailers);
    sc->ntrailers = 0;
    for (size_t i = 0; i < n; i++) {
        if (gc__buf_append(&sc->trailers, fields[i].name.base, fields[i].name.len) < 0 ||
            gc__buf_append(&sc->trailers, "", 1) < 0 ||
            gc__buf_append(&sc->trailers, fields[i].value.base, fields[i].value.len) < 0 ||
            gc__buf_append(&sc->trailers, "", 1) < 0) {
            sc->ntrailers = 0;
            return;
        }
        sc->ntrailers++;
    }
}

/* The stream's body ends with the trailer fields the application gave (loop thread).
 * Returns 0, or -1 when they could not be sent (the body then simply ends). */
static int send_trailers(gc__conn_t *sc)
{
    gc__h2_header_t fields[64];
    size_t n = sc->ntrailers < 64 ? sc->ntrailers : 64;
    const char *p = sc->trailers.data;
    for (size_t i = 0; i < n; i++) {
        size_t nl = strlen(p);
        fields[i].name = gc__view(p, nl);
        p += nl + 1;
        size_t vl = strlen(p);
        fields[i].value = gc__view(p, vl);
        p += vl + 1;
    }
    return gc__h2_send_trailers(sc->h2->s, sc->stream, fields, n) < 0 ? -1 : 0;
}

void gc__h2conn_stream_finish(gc__conn_t *sc, int keep)
{
    gc__h2conn_t *h = sc->h2;
    gc__worker_t *w = sc->w;
    gc__conn_count_request(w);
    /* What the application wrote last, whatever the mark: the response ends here. */
    pthread_mutex_lock(&w->h2news.lock);
    int failed = sc->sink.error != 0 || sc->dead;
    if (!failed && sc->out.len > 0 && feed_out(sc, sc->out.data, sc->out.len) < 0)
        failed = 1;
    gc__buf_reset(&sc->out);
    int posted = sc->news_posted;
    pthread_mutex_unlock(&w->h2news.lock);
    gc__sink_free(&sc->sink);
    if (h->s != NULL && sc->stream != NULL) {
        if (failed || !sc->head_done)
            gc__h2_reset(h->s, sc->stream, GC_H2_INTERNAL_ERROR);
        else if (sc->ntrailers == 0 || send_trailers(sc) < 0)
            gc__h2_send_data(h->s, sc->stream, NULL, 0, 1);
    }
    h->running--;
    if (posted) {
        /* Still in the news queue: out of it before it is freed. */
        pthread_mutex_lock(&w->h2news.lock);
        gc__conn_queue_t keepq = {NULL, NULL};
        for (gc__conn_t *x = w->h2news.queue.head, *next; x; x = next) {
            next = x->newsnext;
            if (x != sc)
                news_push(&keepq, x);
        }
        w->h2news.queue = keepq;
        pthread_mutex_unlock(&w->h2news.lock);
    }
    free_stream_conn(h, sc);
    if (h->conn == NULL) {
        if (h->running == 0)
            free_session(h);
        return;
    }
    if (h->running == 0)
        gc__conn_arm_idle(h->conn);
    if (h->dispatching)
        return; /* an inline class: dispatch_ready goes on, and flushes at its end */
    dispatch_ready(h);
    flush_soon(h);
}

/* --- the connection ---------------------------------------------------------------- */

static void end_connection(gc__h2conn_t *h)
{
    if (h->conn != NULL)
        gc__conn_linger(h->conn);
}

/* The connections with frames to write, once the turn's events are all in: the
 * responses of several streams finished in one turn (their bytes and their ends arrive
 * as separate events from the threads) share one write. */
static void on_check(uv_check_t *ch)
{
    gc__worker_t *w = ch->data;
    uv_check_stop(ch);
    while (w->h2soon != NULL) {
        gc__h2conn_t *h = w->h2soon;
        w->h2soon = h->soon_next;
        h->soon = 0;
        flush(h);
    }
}

static void flush_soon(gc__h2conn_t *h)
{
    if (h->soon)
        return;
    h->soon = 1;
    h->soon_next = h->w->h2soon;
    h->w->h2soon = h;
    uv_check_start(&h->w->h2check, on_check);
}

/* Writes what the session has for the client, as far as the socket takes it; then
 * closes the connection when the session is over. */
static void flush(gc__h2conn_t *h)
{
    gc__conn_t *c = h->conn;
    if (c == NULL || c->state == GC_CONN_CLOSING || c->state == GC_CONN_LINGERING)
        return;
    /* Moving a stream's bytes in lets the session send more, and sending makes room
     * to move more in: round after round until neither happens. */
    for (int round = 0; round < 1024; round++) {
        int moved = 0, wrote = 0;
        if (!h->w->klass->runs_inline)
            for (gc__conn_t *sc = h->streams; sc; sc = sc->next)
                if (sc->state != GC_CONN_WAITING) /* dispatched */
                    moved |= move_out(sc);
        for (;;) {
            if (h->wsent == h->wbuf.len) {
                gc__buf_reset(&h->wbuf);
                h->wsent = 0;
                ssize_t n = gc__h2_send_into(h->s, &h->wbuf, GC_H2_WRITE_MAX);
                if (n < 0) {
                    gc__debug("HTTP/2 session with %s failed: %s", c->remote_addr,
                              strerror((int)-n));
                    gc__conn_close(c);
                    return;
                }
                if (n == 0)
                    break;
            }
            struct iovec iov = {h->wbuf.data + h->wsent, h->wbuf.len - h->wsent};
            ssize_t w = gc__transport_writev(&c->tr, &iov, 1);
            if (w == -EAGAIN) {
                gc__conn_watch_out(c, 1);
                return;
            }
            if (w < 0) {
                gc__debug("Ignored client disconnection: %s%s%s", strerror((int)-w),
                          gc__transport_is_tls(&c->tr) ? ": " : "",
                          gc__transport_is_tls(&c->tr) ? gc__tls_error(&c->tr) : "");
                gc__conn_close(c);
                return;
            }
            h->wsent += (size_t)w;
            wrote = 1;
        }
        if (!moved && !wrote)
            break;
    }
    gc__conn_watch_out(c, 0);
    if ((!gc__h2_want_read(h->s) && !gc__h2_want_write(h->s)) ||
        ((h->closing || h->w->stopping) && h->running == 0 && gc__h2_idle(h->s) &&
         !gc__h2_draining(h->s)))
        end_connection(h);
}

int gc__h2conn_attach(gc__conn_t *c)
{
    gc__worker_t *w = c->w;
    const gc__config_t *cfg = w->cfg;
    gc__h2conn_t *h = calloc(1, sizeof(*h));
    if (h == NULL)
        return -1;
    gc__h2_settings_t set;
    gc__h2_settings_default(&set);
    set.max_concurrent_streams = (uint32_t)gc__cfg_int(cfg, GC_S_http2_max_concurrent_streams);
    set.initial_window_size = (uint32_t)gc__cfg_int(cfg, GC_S_http2_initial_window_size);
    set.max_frame_size = (uint32_t)gc__cfg_int(cfg, GC_S_http2_max_frame_size);
    set.max_header_list_size = (uint32_t)gc__cfg_int(cfg, GC_S_http2_max_header_list_size);
    set.http = w->limits;
    set.trusted = c->parser.trusted;
    static const gc__h2_callbacks_t cb = {
        .on_request = on_request,
        .on_body_done = on_body_done,
        .on_stream_close = on_stream_close,
        .on_data_sent = on_data_sent,
    };
    h->s = gc__h2_new(&set, &cb, h);
    if (h->s == NULL) {
        free(h);
        gc__error("Cannot start an HTTP/2 session: out of memory");
        return -1;
    }
    h->conn = c;
    h->w = w;
    gc__buf_init(&h->wbuf);
    if (gc__transport_is_tls(&c->tr)) {
        h->has_tls = 1;
        gc__tls_info(&c->tr, &h->tls);
        const gc__tls_peer_t *p = gc__tls_peer(&c->tr);
        h->peer.verify = strdup(p->verify);
        h->peer.subject = p->subject ? strdup(p->subject) : NULL;
        h->peer.issuer = p->issuer ? strdup(p->issuer) : NULL;
        h->peer.serial = p->serial ? strdup(p->serial) : NULL;
        h->peer.pem = p->pem ? strdup(p->pem) : NULL;
    }
    c->h2 = h;
    gc__conn_arm_idle(c);
    return 0;
}

int gc__h2conn_upgrade(gc__conn_t *c, gc__view_t settings_b64, int was_head)
{
    gc__h2conn_t *h = c->h2;
    gc__h2_stream_t *st = NULL;
    int rc = gc__h2_upgrade(h->s, settings_b64, was_head, &c->parser.req, &st);
    if (rc < 0)
        return rc;
    on_request(h, st);        /* stream 1: the request that asked for the upgrade, complete */
    if (c->pending.len > 0) { /* the client's preface and frames, already read */
        gc__buf_t bytes = c->pending;
        gc__buf_init(&c->pending);
        gc__h2conn_on_bytes(c, bytes.data, bytes.len);
        gc__buf_free(&bytes);
    } else {
        dispatch_ready(h);
        flush(h);
    }
    return 0;
}

const gc__tls_info_t *gc__h2conn_tls(const gc__conn_t *sc, const gc__tls_peer_t **peer)
{
    const gc__h2conn_t *h = sc->h2;
    if (!h->has_tls)
        return NULL;
    *peer = &h->peer;
    return &h->tls;
}

void gc__h2conn_on_bytes(gc__conn_t *c, const char *data, size_t len)
{
    gc__h2conn_t *h = c->h2;
    if (gc__h2_feed(h->s, (const uint8_t *)data, len) < 0) {
        gc__debug("HTTP/2 connection from %s ended: a protocol error or abuse", c->remote_addr);
        h->closing = 1;
    }
    dispatch_ready(h);
    flush_soon(h);
}

void gc__h2conn_on_writable(gc__conn_t *c)
{
    flush(c->h2);
}

void gc__h2conn_on_timer(gc__conn_t *c)
{
    gc__h2conn_t *h = c->h2;
    if (h->running > 0)
        return;
    /* Idle past --keep-alive: tell the client, then close. */
    gc__h2_terminate(h->s, GC_H2_NO_ERROR);
    h->closing = 1;
    flush(h);
    end_connection(h);
}

void gc__h2conn_last_call(gc__conn_t *c)
{
    gc__h2conn_t *h = c->h2;
    gc__h2_goaway(h->s);
    h->closing = 1;
    flush(h);
}

int gc__h2conn_busy(const gc__conn_t *c)
{
    return c->h2 != NULL && c->h2->running > 0;
}

void gc__h2conn_detach(gc__conn_t *c)
{
    gc__h2conn_t *h = c->h2;
    c->h2 = NULL;
    h->conn = NULL;
    /* Streams that have not run go now; running ones fail their next write and are
     * freed when their class hands them back. */
    gc__conn_t *next;
    for (gc__conn_t *sc = h->streams; sc; sc = next) {
        next = sc->next;
        if (sc->state == GC_CONN_WAITING) {
            free_stream_conn(h, sc);
            continue;
        }
        kill_stream(sc);
        app_stream_gone(sc);
    }
    h->ready.head = h->ready.tail = NULL;
    if (h->running == 0)
        free_session(h);
}

void gc__h2conn_abort(gc__conn_t *sc)
{
    gc__h2conn_t *h = sc->h2;
    kill_stream(sc);
    if (h->conn != NULL)
        shutdown(h->conn->tr.fd, SHUT_RDWR);
}

void gc__h2conn_priority(const gc__conn_t *sc, int *weight, int *depends_on)
{
    *weight = sc->stream->weight;
    *depends_on = (int)sc->stream->depends_on;
}
