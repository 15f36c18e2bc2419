/* respond.c: the request path every worker class shares (gc__conn_respond and the
 * hand-back to the loop), and Python's lock on the loop thread (see worker.h). */
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
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/clock.h"
#include "http/response.h"
#include "http/sink.h"
#include "log/log.h"
#include "proc/process.h"

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
    gc__sink_init(sink, &c->tr, (int)gc__cfg_int(w->cfg, GC_S_timeout) * 1000);
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
        .socket_fd = -1,
        .socket_family = c->family,
    };
    gc__frontend_peer(c, &peer);
    gc__tls_info_t tls;
    if (c->stream != NULL) {
        peer.tls = gc__h2conn_tls(c, &peer.tls_peer);
        peer.http2 = 1;
        gc__h2conn_priority(c, &peer.h2_weight, &peer.h2_depends_on);
        peer.trailers = gc__h2conn_trailers;
        peer.trailers_ctx = c;
    } else if (gc__transport_is_tls(&c->tr)) {
        gc__tls_info(&c->tr, &tls);
        peer.tls = &tls;
        peer.tls_peer = gc__tls_peer(&c->tr);
    } else {
        peer.socket_fd = c->tr.fd; /* gunicorn.socket: plain connections only */
    }
    if (gc__log_enabled(GC_LOG_DEBUG)) {
        gc__view_t m = gc__http_method(&c->parser.req), t = gc__http_target(&c->parser.req);
        gc__debug("%.*s %.*s", (int)m.len, m.base, (int)t.len, t.base);
    }
    /* --keep-alive 0 turns keep-alive off (as in Gunicorn): answer "Connection: close"
     * rather than keep an idle connection with no timer to ever close it. */
    int keep = c->parser.req.keep_alive && !w->stopping && gc__cfg_int(w->cfg, GC_S_keepalive) > 0;
    int status = 0;
    peer.status_out = &status;
    uint64_t t0 = gc__monotonic_us();
    enum gc__wsgi_outcome out = gc__wsgi_handle(&w->wsgi, &c->parser.req, &peer, sink, head, keep);
    gc__slot_count(w->slot, gc__http_method(&c->parser.req), status, gc__monotonic_us() - t0);
    if (out == GC_WSGI_TAKEN)
        return GC_CONN_TAKEN;
    /* A body the application never read is still on its way (or held back by the
     * client): the next request's start is unknown, so the connection ends. */
    int unread = c->parser.state != GC_HTTP_READY;
    return out == GC_WSGI_KEEP && keep && sink->error == 0 && !unread;
}

void gc__conn_post_done(gc__conn_t *c, int keep)
{
    gc__worker_t *w = c->w;
    c->done_keep = keep;
    pthread_mutex_lock(&w->done.lock);
    gc__conn_queue_push(&w->done.queue, c);
    pthread_mutex_unlock(&w->done.lock);
    uv_async_send(&w->done.async);
}

void gc__worker_on_done(uv_async_t *h)
{
    gc__worker_t *w = h->data;
    pthread_mutex_lock(&w->done.lock);
    gc__conn_queue_t done = w->done.queue;
    w->done.queue.head = w->done.queue.tail = NULL;
    pthread_mutex_unlock(&w->done.lock);
    for (gc__conn_t *c; (c = gc__conn_queue_pop(&done)) != NULL;)
        gc__conn_finish(c, c->done_keep);
}

void gc__conn_queue_push(gc__conn_queue_t *q, gc__conn_t *c)
{
    c->qnext = NULL;
    if (q->tail)
        q->tail->qnext = c;
    else
        q->head = c;
    q->tail = c;
}

gc__conn_t *gc__conn_queue_pop(gc__conn_queue_t *q)
{
    gc__conn_t *c = q->head;
    if (c != NULL && (q->head = c->qnext) == NULL)
        q->tail = NULL;
    return c;
}

gc__worker_t *gc__conn_worker(const gc__conn_t *c)
{
    return c->w;
}

const gc__http_request_t *gc__conn_request(const gc__conn_t *c)
{
    return &c->parser.req;
}

int gc__conn_first_request(const gc__conn_t *c)
{
    return !c->answered;
}

uint64_t gc__conn_bytes_sent(const gc__conn_t *c)
{
    return c->sink.written;
}

gc__buf_t *gc__conn_head_buf(gc__conn_t *c)
{
    return &c->head;
}

void gc__conn_skip_request(gc__conn_t *c)
{
    gc__sink_init(&c->sink, &c->tr, 0); /* nothing to send: the finish finds it empty */
}

void gc__conn_abort(gc__conn_t *c, int answer)
{
    if (answer) {
        gc__buf_t out;
        gc__buf_init(&out);
        if (gc__http_write_error(&out, 500, "") == 0) {
            gc__sink_t sink;
            gc__sink_init(&sink, &c->tr, 1000);
            gc__sink_write(&sink, out.data, out.len);
            gc__sink_free(&sink);
        }
        gc__buf_free(&out);
    }
    /* The socket under any transport: whoever uses it next fails at once (a stream's
     * is its connection's). */
    if (c->stream == NULL)
        shutdown(c->tr.fd, SHUT_RDWR);
    else if (c->h2 != NULL)
        gc__h2conn_abort(c);
}

int gc__worker_busy(const gc__worker_t *w)
{
    for (const gc__conn_t *c = w->open.list; c; c = c->next)
        if (c->state == GC_CONN_RUNNING || gc__h2conn_busy(c))
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

void gc__worker_on_gil_release(uv_prepare_t *h)
{
    gc__worker_t *w = h->data;
    if (w->loop_tstate == NULL)
        w->loop_tstate = PyEval_SaveThread();
}
