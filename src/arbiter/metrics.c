/* metrics.c: the master's metrics and health endpoint (--metrics-bind; see internal.h
 * and docs/metrics.md).
 *
 * A small HTTP/1.1 server on the master's own loop, so that it answers while every
 * worker is stuck in the application: GET /metrics (the Prometheus text format, written
 * by proc/metrics.c from the scoreboard, the master's counters and /proc), GET /livez
 * (200 while the master runs) and GET /readyz (200 when the target number of workers
 * have booted and the master is not stopping, else 503). Other paths get 404, other
 * methods 405, malformed requests 400 (the project's parser, http/parser.h, reads them);
 * every answer closes the connection.
 *
 * The master must never wait on a client: sockets are non-blocking and watched with
 * uv_poll; each connection has a deadline (GC_METRICS_DEADLINE_MS) for the whole
 * exchange; at most GC_METRICS_MAX_CONNS are open at once (the listener is not watched
 * while at the cap, so later clients wait in its accept queue). A request body is never
 * read: the parser hands the request over at its head, and the answer goes out at once;
 * what the client still sends is read and dropped until it closes or the deadline
 * passes (a lingering close, so that unread bytes do not turn the close into a reset).
 *
 * The sockets are close-on-exec (a USR2 re-exec binds its own once promoted) and a
 * worker closes its inherited copies right after fork (gc__arbiter_metrics_forget). */
#include "arbiter/internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/clock.h"
#include "http/parser.h"
#include "http/response.h"
#include "log/log.h"
#include "proc/metrics.h"

#define GC_METRICS_MAX_CONNS 16
#define GC_METRICS_DEADLINE_MS 5000

enum { CONN_READING = 0, CONN_WRITING, CONN_DRAINING };

typedef struct metrics_conn {
    struct gc__metrics_server *srv;
    int fd;
    int state;
    int closing;
    uv_poll_t poll;
    uv_timer_t timer;
    int open_handles; /* handles still to be closed before it is freed */
    gc__http_parser_t parser;
    gc__buf_t out;
    size_t sent;
} metrics_conn_t;

struct gc__metrics_server {
    gc__arbiter_t *a;
    gc__listener_t listener;
    uv_poll_t poll;
    uv_timer_t retry; /* accept failed for want of descriptors or memory: try again */
    int watching;
    int closing;
    int live; /* handles and connections not yet freed: the server goes with the last */
    gc__http_limits_t limits;
    metrics_conn_t *conns[GC_METRICS_MAX_CONNS];
    size_t nconns;
    char python_version[32];
};

/* --- what the endpoints say ------------------------------------------------------- */

int gc__arbiter_ready(const gc__arbiter_t *a)
{
    if (a->stopping != GC_ARBITER_RUNNING || a->num_workers <= 0)
        return 0;
    long booted = 0;
    for (size_t i = 0; i < a->nworkers; i++) {
        const gc__child_t *c = &a->workers[i];
        uint32_t st = atomic_load(&a->sb.slots[c->slot].state);
        /* A worker being replaced still serves until it gets TERM, which comes only
         * once its replacement has booted: counting it keeps a rotation ready. */
        if (!c->term_sent && !c->aborted && st != GC_SLOT_BOOTING && st != GC_SLOT_FREE)
            booted++;
    }
    return booted >= a->num_workers;
}

static int write_metrics(struct gc__metrics_server *srv, gc__buf_t *body)
{
    gc__arbiter_t *a = srv->a;
    gc__metrics_snapshot_t s = {
        .requests = a->folded,
        .master = a->mcounts,
        .target_workers = a->num_workers,
        .ready = gc__arbiter_ready(a),
        .uptime_seconds = (double)(gc__monotonic_ms() - a->counts.started_ms) / 1000.0,
        .version = GC_VERSION,
        .python_version = srv->python_version,
    };
    gc__metrics_worker_t *ws = calloc(a->nworkers ? a->nworkers : 1, sizeof(*ws));
    gc__metrics_listener_t *ls = calloc(a->nlisteners ? a->nlisteners : 1, sizeof(*ls));
    int rc = -ENOMEM;
    if (ws == NULL || ls == NULL)
        goto out;
    for (size_t i = 0; i < a->nworkers; i++) {
        const gc__child_t *c = &a->workers[i];
        const gc__slot_t *slot = &a->sb.slots[c->slot];
        gc__counts_fold(&s.requests, slot);
        s.inflight += atomic_load_explicit(&slot->inflight, memory_order_relaxed);
        ws[i] = (gc__metrics_worker_t){
            .pid = c->pid,
            .state = atomic_load_explicit(&slot->state, memory_order_relaxed),
            .requests = atomic_load_explicit(&slot->requests, memory_order_relaxed),
            .rss_bytes = gc__metrics_rss(c->pid),
        };
    }
    size_t nl = 0;
    for (size_t i = 0; i < a->nlisteners; i++) {
        if (a->listeners[i].fd < 0)
            continue; /* closed: the master is stopping */
        ls[nl].url = a->listeners[i].url;
        gc__metrics_listen_queue(a->listeners[i].fd, &ls[nl].queued, &ls[nl].limit);
        nl++;
    }
    s.workers = ws;
    s.nworkers = a->nworkers;
    s.listeners = ls;
    s.nlisteners = nl;
    rc = gc__metrics_write(body, &s);
out:
    free(ws);
    free(ls);
    return rc;
}

/* The whole answer to a request (or a parse error) in c->out. */
static void answer(metrics_conn_t *c)
{
    gc__http_parser_t *p = &c->parser;
    gc__buf_t body;
    gc__buf_init(&body);
    int status = 200;
    const char *type = "text/plain; charset=utf-8";
    gc__http_header_t extra[2];
    size_t nextra = 0;
    if (p->state == GC_HTTP_ERROR) {
        /* Gunicorn's error page for what the parser refused (400, 431, ...). */
        gc__http_write_error(&c->out, p->error_status ? p->error_status : 400, p->error_msg);
        return;
    }
    gc__view_t method = gc__http_method(&p->req), target = gc__http_target(&p->req);
    const char *q = memchr(target.base, '?', target.len);
    size_t plen = q ? (size_t)(q - target.base) : target.len;
#define PATH_IS(lit) (plen == sizeof(lit) - 1 && memcmp(target.base, lit, plen) == 0)
    int known = PATH_IS("/metrics") || PATH_IS("/livez") || PATH_IS("/readyz");
    if (!known) {
        status = 404;
        gc__buf_append_str(&body, "Not Found: /metrics, /livez and /readyz are served here\n");
    } else if (!(method.len == 3 && memcmp(method.base, "GET", 3) == 0)) {
        status = 405;
        extra[nextra++] = (gc__http_header_t){GC_VIEW_LIT("Allow"), GC_VIEW_LIT("GET")};
        gc__buf_append_str(&body, "Method Not Allowed: GET only\n");
    } else if (PATH_IS("/metrics")) {
        type = "text/plain; version=0.0.4; charset=utf-8";
        if (write_metrics(c->srv, &body) < 0) {
            status = 500;
            gc__buf_reset(&body);
            gc__buf_append_str(&body, "Out of memory\n");
        }
    } else if (PATH_IS("/livez")) {
        gc__buf_append_str(&body, "live\n");
    } else if (gc__arbiter_ready(c->srv->a)) {
        gc__buf_append_str(&body, "ready\n");
    } else {
        status = 503;
        gc__buf_append_str(&body, c->srv->a->stopping ? "not ready: stopping\n"
                                                      : "not ready: workers booting\n");
    }
#undef PATH_IS
    extra[nextra++] =
        (gc__http_header_t){GC_VIEW_LIT("Content-Type"), gc__view(type, strlen(type))};
    char line[64];
    snprintf(line, sizeof(line), "%d %s", status, gc__http_reason(status));
    gc__http_head_t head = {
        .minor = p->req.minor,
        .status = gc__view(line, strlen(line)),
        .headers = extra,
        .nheaders = nextra,
        .connection = GC_CONN_CLOSE,
        .add_length = (int64_t)body.len,
    };
    if (gc__http_write_head(&c->out, &head) < 0 || gc__buf_append(&c->out, body.data, body.len) < 0)
        gc__buf_reset(&c->out); /* nothing to send: the connection just closes */
    gc__buf_free(&body);
}

/* --- connections ------------------------------------------------------------------ */

static void watch_listener(struct gc__metrics_server *srv);

static void on_conn_closed(uv_handle_t *h)
{
    metrics_conn_t *c = h->data;
    if (--c->open_handles > 0)
        return;
    struct gc__metrics_server *srv = c->srv;
    gc__http_parser_free(&c->parser);
    gc__buf_free(&c->out);
    free(c);
    srv->live--;
    if (srv->closing) {
        if (srv->live == 0)
            free(srv);
        return;
    }
    watch_listener(srv); /* below the cap again */
}

static void conn_close(metrics_conn_t *c)
{
    if (c->closing)
        return;
    c->closing = 1;
    struct gc__metrics_server *srv = c->srv;
    for (size_t i = 0; i < srv->nconns; i++)
        if (srv->conns[i] == c) {
            srv->conns[i] = srv->conns[--srv->nconns];
            break;
        }
    uv_close((uv_handle_t *)&c->poll, on_conn_closed);
    uv_close((uv_handle_t *)&c->timer, on_conn_closed);
    close(c->fd);
    c->fd = -1;
}

static void on_conn_io(uv_poll_t *h, int status, int events);

/* Sends what is left of the answer; when it is out, half-closes and drains. */
static void conn_send(metrics_conn_t *c)
{
    while (c->sent < c->out.len) {
        ssize_t n = send(c->fd, c->out.data + c->sent, c->out.len - c->sent, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            uv_poll_start(&c->poll, UV_WRITABLE, on_conn_io);
            return;
        }
        if (n < 0) {
            conn_close(c);
            return;
        }
        c->sent += (size_t)n;
    }
    shutdown(c->fd, SHUT_WR);
    c->state = CONN_DRAINING;
    uv_poll_start(&c->poll, UV_READABLE, on_conn_io);
}

static void conn_read(metrics_conn_t *c)
{
    char buf[4096];
    for (;;) {
        ssize_t n = recv(c->fd, buf, sizeof(buf), 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n <= 0) {
            if (c->state == CONN_READING && n == 0) {
                /* A request cut short gets its 400; an empty connection just ends. */
                gc__http_parser_eof(&c->parser);
                if (c->parser.state == GC_HTTP_ERROR) {
                    answer(c);
                    c->state = CONN_WRITING;
                    conn_send(c);
                    return;
                }
            }
            conn_close(c);
            return;
        }
        if (c->state != CONN_READING)
            continue; /* draining: what comes after the request is dropped */
        gc__http_parser_feed(&c->parser, buf, (size_t)n);
        if (c->parser.state != GC_HTTP_NEED_MORE) {
            answer(c);
            c->state = CONN_WRITING;
            conn_send(c);
            return;
        }
    }
}

static void on_conn_io(uv_poll_t *h, int status, int events)
{
    metrics_conn_t *c = h->data;
    if (status < 0) {
        conn_close(c);
        return;
    }
    if (c->state == CONN_WRITING && (events & UV_WRITABLE))
        conn_send(c);
    else if (events & UV_READABLE)
        conn_read(c);
}

static void on_conn_deadline(uv_timer_t *t)
{
    metrics_conn_t *c = t->data;
    conn_close(c);
}

static void conn_open(struct gc__metrics_server *srv, int fd)
{
    metrics_conn_t *c = calloc(1, sizeof(*c));
    if (c == NULL || uv_poll_init(srv->a->loop, &c->poll, fd) < 0) {
        free(c);
        close(fd);
        return;
    }
    c->srv = srv;
    c->fd = fd;
    c->poll.data = c;
    uv_timer_init(srv->a->loop, &c->timer);
    c->timer.data = c;
    c->open_handles = 2;
    gc__http_parser_init(&c->parser, &srv->limits);
    gc__buf_init(&c->out);
    srv->conns[srv->nconns++] = c;
    srv->live++;
    uv_timer_start(&c->timer, on_conn_deadline, GC_METRICS_DEADLINE_MS, 0);
    uv_poll_start(&c->poll, UV_READABLE, on_conn_io);
    conn_read(c); /* the request is often there already */
}

/* --- the listener ----------------------------------------------------------------- */

static void on_retry(uv_timer_t *t)
{
    watch_listener(t->data);
}

static void on_accept(uv_poll_t *h, int status, int events)
{
    struct gc__metrics_server *srv = h->data;
    while (status == 0 && srv->nconns < GC_METRICS_MAX_CONNS) {
        int fd = accept4(srv->listener.fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0) {
            conn_open(srv, fd);
            continue;
        }
        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
            /* The connection stays queued and the socket readable: rather than spin on
             * it, stop watching for a second. */
            uv_poll_stop(&srv->poll);
            srv->watching = 0;
            uv_timer_start(&srv->retry, on_retry, 1000, 0);
            return;
        }
        if (errno != EINTR && errno != ECONNABORTED)
            break; /* EAGAIN: none left */
    }
    watch_listener(srv);
}

/* Watches the listener only below the connection cap (the others wait in its queue)
 * and not while an accept failure's pause lasts. */
static void watch_listener(struct gc__metrics_server *srv)
{
    int want = !srv->closing && srv->nconns < GC_METRICS_MAX_CONNS &&
               !uv_is_active((uv_handle_t *)&srv->retry);
    if (want && !srv->watching)
        uv_poll_start(&srv->poll, UV_READABLE, on_accept);
    else if (!want && srv->watching)
        uv_poll_stop(&srv->poll);
    srv->watching = want;
}

void gc__arbiter_start_metrics(gc__arbiter_t *a)
{
    if (a->metrics_tried || a->reexec_parent || a->stopping)
        return;
    a->metrics_tried = 1;
    const char *addr = gc__cfg_str(a->cfg, GC_S_metrics_bind);
    if (addr == NULL || *addr == '\0')
        return;
    struct gc__metrics_server *srv = calloc(1, sizeof(*srv));
    if (srv == NULL)
        return;
    srv->a = a;
    srv->listener.fd = -1;
    gc__bind_opts_t opts = {.backlog = 64,
                            .umask = (int)gc__cfg_int(a->cfg, GC_S_umask),
                            .uid = (uid_t)-1,
                            .gid = (gid_t)-1};
    if (strncmp(addr, "fd://", 5) == 0 || gc__listener_open(&srv->listener, addr, &opts) < 0) {
        gc__error("Cannot serve metrics at %s: the master runs without them", addr);
        free(srv);
        return;
    }
    int fd = srv->listener.fd;
    fcntl(fd, F_SETFD, FD_CLOEXEC);
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    gc__http_limits_default(&srv->limits);
    srv->limits.head_first = 1; /* a body is never read: the answer goes out at the head */
    const char *v = Py_GetVersion();
    size_t n = strcspn(v, " ");
    snprintf(srv->python_version, sizeof(srv->python_version), "%.*s", (int)n, v);
    uv_poll_init(a->loop, &srv->poll, fd);
    srv->poll.data = srv;
    uv_unref((uv_handle_t *)&srv->poll);
    uv_timer_init(a->loop, &srv->retry);
    srv->retry.data = srv;
    uv_unref((uv_handle_t *)&srv->retry);
    srv->live = 2;
    watch_listener(srv);
    a->metrics = srv;
    gc__info("Serving metrics and health at: %s", srv->listener.url);
}

/* Close callbacks run in no set order: the server is freed by whichever of its
 * handles' and connections' callbacks comes last. */
static void on_server_closed(uv_handle_t *h)
{
    struct gc__metrics_server *srv = h->data;
    if (--srv->live == 0)
        free(srv);
}

void gc__arbiter_stop_metrics(gc__arbiter_t *a)
{
    struct gc__metrics_server *srv = a->metrics;
    if (srv == NULL)
        return;
    a->metrics = NULL;
    srv->closing = 1;
    while (srv->nconns > 0)
        conn_close(srv->conns[0]);
    uv_close((uv_handle_t *)&srv->poll, on_server_closed);
    uv_close((uv_handle_t *)&srv->retry, on_server_closed);
    gc__listener_close(&srv->listener, 1);
}

void gc__arbiter_metrics_forget(gc__arbiter_t *a)
{
    struct gc__metrics_server *srv = a->metrics;
    if (srv == NULL)
        return;
    /* In a new worker: the loop's handles are closed already (uv_walk); only the
     * descriptors are left, and the socket file is not ours to remove. */
    for (size_t i = 0; i < srv->nconns; i++)
        if (srv->conns[i]->fd >= 0)
            close(srv->conns[i]->fd);
    if (srv->listener.fd >= 0)
        close(srv->listener.fd);
    a->metrics = NULL;
}
