/* accept.c: the accept gate of a worker (see internal.h): --worker-connections, what
 * makes room at the limit, running out of descriptors, and sharing new connections
 * between sibling workers. */
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
#include "log/log.h"
#include "proc/process.h"

static void on_acceptable(uv_poll_t *h, int status, int events);

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
    for (gc__conn_t *c = w->open.list; c; c = c->next) {
        if ((c->state != GC_CONN_WAITING && c->state != GC_CONN_RECEIVING) ||
            c->parser.headers_done)
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
        if (uv_is_closing((uv_handle_t *)&w->acc.polls[i]))
            continue;
        if (on)
            uv_poll_start(&w->acc.polls[i], UV_READABLE, on_acceptable);
        else
            uv_poll_stop(&w->acc.polls[i]);
    }
}

static void accept_pause(gc__worker_t *w, int paused)
{
    if (w->acc.paused == paused)
        return;
    w->acc.paused = paused;
    /* Siblings step back for a worker that accepts, or steps back itself (below). */
    atomic_store_explicit(&w->slot->accepting, (uint32_t)!paused, memory_order_relaxed);
    if (!w->acc.yielding)
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

void gc__accept_publish(gc__worker_t *w)
{
    atomic_store_explicit(&w->slot->conns, (uint32_t)(w->open.n - w->open.closing),
                          memory_order_relaxed);
}

static int sibling_takes(const gc__worker_t *w)
{
    uint32_t mine = (uint32_t)(w->open.n - w->open.closing);
    uint64_t now = 0;
    for (size_t i = 0; i < w->acc.nslots; i++) {
        gc__slot_t *s = &w->acc.slots[i];
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
    w->acc.yielding = 0;
    if (!w->acc.paused && !w->stopping)
        accept_watch(w, 1);
}

static void accept_yield(gc__worker_t *w)
{
    w->acc.yielding = 1;
    accept_watch(w, 0);
    uv_timer_start(&w->acc.yield_timer, on_yield_end, GC_YIELD_MS, 0);
}

static void log_limit(gc__worker_t *w)
{
    if (log_due(w, &w->acc.limit_logged_at)) {
        gc__warning("Worker connection limit reached (%zu open): new connections wait "
                    "until one closes (--worker-connections)",
                    w->acc.max_conns);
    }
}

/* Resumes accepting when there is room again (called when a connection closes or
 * goes idle). */
void gc__accept_update(gc__worker_t *w)
{
    int slow;
    if (!w->acc.paused || w->stopping || w->acc.polls == NULL)
        return;
    if (w->open.n - w->open.closing < w->acc.max_conns || evictable(w, &slow) != NULL) {
        if (w->acc.out_of_files) {
            w->acc.out_of_files = 0;
            gc__debug("Accepting connections again after running out of file descriptors");
        }
        accept_pause(w, 0);
    }
}

static void on_acceptable(uv_poll_t *h, int status, int events)
{
    gc__worker_t *w = h->data;
    size_t li = (size_t)(h - w->acc.polls);
    if (status < 0 || w->stopping)
        return;
    if (w->acc.nslots > 1 && sibling_takes(w)) {
        accept_yield(w);
        return;
    }
    for (int n = 0; n < w->acc.batch; n++) {
        /* At the limit, an idle or slow connection makes room, but only once a new
         * connection has really been accepted (a sibling may have taken it). */
        gc__conn_t *victim = NULL;
        int slow = 0;
        if (w->open.n - w->open.closing >= w->acc.max_conns &&
            (victim = evictable(w, &slow)) == NULL) {
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
                          w->acc.max_conns);
                gc__conn_close(victim);
            } else if (victim != NULL) {
                gc__debug("Closing the idle keep-alive connection from %s to make room "
                          "(--worker-connections %zu)",
                          victim->remote_addr, w->acc.max_conns);
                gc__conn_linger(victim);
            }
            gc__conn_open(w, li, fd, &peer);
            continue;
        }
        if (errno == EINTR || errno == ECONNABORTED)
            continue;
        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
            /* Out of descriptors: the socket stays readable, so polling on would spin.
             * A closing connection or the next tick resumes. */
            if (log_due(w, &w->acc.nofile_logged_at))
                gc__warning("Cannot accept a connection: %s (accepting pauses until a "
                            "connection closes; logged once a minute)",
                            strerror(errno));
            w->acc.out_of_files = 1;
            accept_pause(w, 1);
        }
        return; /* EAGAIN: another worker took it, or the backlog is empty */
    }
}

/* Starts watching every listener. Returns 0 or a negative errno. */
int gc__accept_start(gc__worker_t *w)
{
    w->acc.polls = calloc(w->nlisteners ? w->nlisteners : 1, sizeof(*w->acc.polls));
    w->acc.nodelay_inherited = calloc(w->nlisteners ? w->nlisteners : 1, 1);
    if (w->acc.polls == NULL || w->acc.nodelay_inherited == NULL)
        return -ENOMEM;
    long max = gc__cfg_int(w->cfg, GC_S_worker_connections);
    w->acc.max_conns = max > 0 ? (size_t)max : 1;
    /* Every connection is a descriptor: the soft limit (often 1024) goes up to the hard
     * one, which is what the hard limit is for. */
    long nofile = gc__nofile_raise();
    if (nofile > 0 && (size_t)nofile < w->acc.max_conns + 64)
        gc__warning("The open file limit (%ld) is too low for --worker-connections %zu", nofile,
                    w->acc.max_conns);
    w->acc.batch = gc__cfg_int(w->cfg, GC_S_workers) > 1 ? 1 : 64;
    uv_timer_init(w->loop, &w->acc.yield_timer);
    w->acc.yield_timer.data = w;
    uv_unref((uv_handle_t *)&w->acc.yield_timer);
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
        int rc = uv_poll_init(w->loop, &w->acc.polls[i], fd);
        if (rc < 0)
            return rc;
        w->acc.polls[i].data = w;
        if ((rc = uv_poll_start(&w->acc.polls[i], UV_READABLE, on_acceptable)) < 0)
            return rc;
    }
    atomic_store_explicit(&w->slot->accepting, 1, memory_order_relaxed);
    return 0;
}

void gc__accept_close(gc__worker_t *w)
{
    atomic_store_explicit(&w->slot->accepting, 0, memory_order_relaxed);
    uv_timer_stop(&w->acc.yield_timer);
    for (size_t i = 0; w->acc.polls && i < w->nlisteners; i++)
        if (!uv_is_closing((uv_handle_t *)&w->acc.polls[i]))
            uv_close((uv_handle_t *)&w->acc.polls[i], NULL);
}
