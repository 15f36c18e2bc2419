/* worker.c: the worker process: boot, accept, read and parse, stop (see worker.h).
 *
 * Reads land in one buffer shared by the worker's connections; the parser copies what
 * it keeps, and only bytes past the end of a request (pipelining) are saved on the
 * connection. A request is handed to the class's `run` only once it is complete, so a
 * slow client costs a few hundred bytes of memory and never a blocked Python call. */
#include "workers/worker.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "http/response.h"
#include "http/sink.h"
#include "log/log.h"
#include "python/interp.h"

static void worker_exit(gc__worker_t *w) __attribute__((noreturn));
static void drive(gc__conn_t *c);

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
    gc__http_parser_free(&c->parser);
    gc__buf_free(&c->pending);
    free(c);
    if (w->stopping && w->nconns == 0)
        worker_exit(w);
}

void gc__conn_close(gc__conn_t *c)
{
    if (c->closing)
        return;
    c->closing = 1;
    uv_close(&c->h.handle, on_conn_handle_closed);
    uv_close((uv_handle_t *)&c->timer, on_conn_handle_closed);
}

static void on_timer(uv_timer_t *t)
{
    gc__conn_t *c = t->data;
    if (c->timer_for_request)
        gc__debug("Closing connection from %s: request not received within %lds",
                  c->remote_addr, gc__cfg_int(c->w->cfg, GC_S_timeout));
    gc__conn_close(c);
}

static void arm_timer(gc__conn_t *c, int for_request)
{
    long secs = for_request ? gc__cfg_int(c->w->cfg, GC_S_timeout)
                            : gc__cfg_int(c->w->cfg, GC_S_keepalive);
    c->timer_for_request = for_request;
    if (secs > 0)
        uv_timer_start(&c->timer, on_timer, (uint64_t)secs * 1000, 0);
    else
        uv_timer_stop(&c->timer);
}

/* Answers a request the parser refused, then closes. */
static void reject(gc__conn_t *c)
{
    gc__http_parser_t *p = &c->parser;
    gc__debug("Invalid request from ip=%s: %s", c->remote_addr, p->error_msg);
    if (p->error_status > 0) {
        gc__buf_t out;
        gc__buf_init(&out);
        if (gc__http_write_error(&out, p->error_status, p->error_msg) == 0) {
            gc__sink_t sink;
            gc__sink_init(&sink, c->fd, 1000);
            gc__sink_write(&sink, out.data, out.len);
        }
        gc__buf_free(&out);
    }
    gc__conn_close(c);
}

static void send_continue(gc__conn_t *c)
{
    static const char line[] = "HTTP/1.1 100 Continue\r\n\r\n";
    gc__sink_t sink;
    gc__sink_init(&sink, c->fd, 1000);
    c->continue_sent = 1;
    if (gc__sink_write(&sink, line, sizeof(line) - 1) < 0)
        gc__conn_close(c);
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
        stop_reading(c);
        uv_timer_stop(&c->timer);
        c->timer_for_request = 0;
        c->w->run(c);
        return 0;
    case GC_HTTP_NEED_MORE:
        if (p->started && !c->timer_for_request)
            arm_timer(c, 1);
        if (p->headers_done && p->req.expect_continue && !c->continue_sent)
            send_continue(c);
        return 1;
    }
    return 1;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    gc__conn_t *c = s->data;
    if (nread < 0) {
        gc__http_parser_eof(&c->parser);
        if (c->parser.state == GC_HTTP_ERROR)
            gc__debug("Ignored premature client disconnection from %s.", c->remote_addr);
        gc__conn_close(c);
        return;
    }
    if (nread == 0)
        return;
    if (c->pending.len > 0) {
        if (gc__buf_append(&c->pending, buf->base, (size_t)nread) < 0) {
            gc__conn_close(c);
            return;
        }
        drive(c);
        return;
    }
    size_t used = gc__http_parser_feed(&c->parser, buf->base, (size_t)nread);
    if (c->parser.state == GC_HTTP_READY && used < (size_t)nread &&
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

void gc__conn_request_done(gc__conn_t *c, int keep)
{
    gc__worker_t *w = c->w;
    w->requests++;
    if (!keep || w->stopping || c->closing) {
        gc__conn_close(c);
        return;
    }
    gc__http_parser_next(&c->parser);
    c->continue_sent = 0;
    arm_timer(c, 0);
    drive(c);
}

static void on_connection(uv_stream_t *server, int status)
{
    gc__worker_t *w = server->data;
    if (status < 0 || w->stopping)
        return;
    gc__conn_t *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return;
    const gc__listener_t *l = &w->listeners[0];
    for (size_t i = 0; i < w->nlisteners; i++)
        if (&w->servers[i].stream == server)
            l = &w->listeners[i];
    c->w = w;
    c->listener = l;
    int rc = l->is_unix ? uv_pipe_init(w->loop, &c->h.pipe, 0) : uv_tcp_init(w->loop, &c->h.tcp);
    if (rc < 0) {
        free(c);
        return;
    }
    c->h.handle.data = c;
    c->open_handles = 1;
    gc__http_parser_init(&c->parser, &w->limits);
    gc__buf_init(&c->pending);
    c->next = w->conns;
    if (w->conns)
        w->conns->prev = c;
    w->conns = c;
    w->nconns++;
    uv_timer_init(w->loop, &c->timer);
    c->timer.data = c;
    c->open_handles = 2;
    if (uv_accept(server, &c->h.stream) < 0) {
        /* Another worker took it first (every worker watches the same socket). */
        gc__conn_close(c);
        return;
    }
    uv_fileno(&c->h.handle, &c->fd);
    if (!l->is_unix) {
        struct sockaddr_storage ss;
        int len = sizeof(ss);
        uv_tcp_nodelay(&c->h.tcp, 1);
        if (uv_tcp_getpeername(&c->h.tcp, (struct sockaddr *)&ss, &len) == 0) {
            if (ss.ss_family == AF_INET6) {
                struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
                uv_ip6_name(a, c->remote_addr, sizeof(c->remote_addr));
                snprintf(c->remote_port, sizeof(c->remote_port), "%u", ntohs(a->sin6_port));
            } else {
                struct sockaddr_in *a = (struct sockaddr_in *)&ss;
                uv_ip4_name(a, c->remote_addr, sizeof(c->remote_addr));
                snprintf(c->remote_port, sizeof(c->remote_port), "%u", ntohs(a->sin_port));
            }
        }
    }
    arm_timer(c, 0);
    start_reading(c);
}

/* --- stopping --------------------------------------------------------------------- */

static void close_servers(gc__worker_t *w)
{
    for (size_t i = 0; i < w->nlisteners; i++)
        if (!uv_is_closing(&w->servers[i].handle))
            uv_close(&w->servers[i].handle, NULL);
}

static void worker_exit(gc__worker_t *w)
{
    gc__info("Worker exiting (pid: %ld)", (long)getpid());
    gc__wsgi_state_free(&w->wsgi);
    /* Runs the application's atexit handlers, as Gunicorn's sys.exit does. */
    Py_FinalizeEx();
    fflush(NULL);
    _exit(w->exit_code);
}

static void on_deadline(uv_timer_t *t)
{
    worker_exit(t->data);
}

static void graceful_stop(gc__worker_t *w)
{
    if (w->stopping)
        return;
    w->stopping = 1;
    close_servers(w);
    /* Idle connections (between requests) close now; a request being received may
     * finish within the graceful timeout. */
    for (gc__conn_t *c = w->conns, *next; c; c = next) {
        next = c->next;
        if (!c->parser.started)
            gc__conn_close(c);
    }
    if (w->nconns == 0)
        worker_exit(w);
    long secs = gc__cfg_int(w->cfg, GC_S_graceful_timeout);
    uv_timer_start(&w->deadline, on_deadline, (uint64_t)(secs > 0 ? secs : 1) * 1000, 0);
}

static void on_signal(uv_signal_t *s, int signum)
{
    gc__worker_t *w = s->data;
    if (signum == SIGTERM)
        graceful_stop(w);
    else
        worker_exit(w); /* INT, QUIT: quick */
}

static void on_tick(uv_timer_t *t)
{
    gc__worker_t *w = t->data;
    if (getppid() != w->ppid) {
        gc__info("Parent changed, shutting down: %ld", (long)getpid());
        worker_exit(w);
    }
}

/* --- boot ------------------------------------------------------------------------- */

void gc__worker_main(uv_loop_t *loop, const gc__config_t *cfg, gc__listener_t *listeners,
                     size_t nlisteners)
{
    static gc__worker_t worker;
    gc__worker_t *w = &worker;
    w->loop = loop;
    w->cfg = cfg;
    w->listeners = listeners;
    w->nlisteners = nlisteners;
    w->ppid = getppid();
    w->run = gc__sync_run;
    gc__http_limits_default(&w->limits);
    long line = gc__cfg_int(cfg, GC_S_limit_request_line);
    w->limits.max_line = line > 8190 ? 8190 : (size_t)line;
    long fields = gc__cfg_int(cfg, GC_S_limit_request_fields);
    w->limits.max_fields = fields <= 0 || fields > 32768 ? 32768 : (size_t)fields;
    long fsize = gc__cfg_int(cfg, GC_S_limit_request_field_size);
    w->limits.max_field_size = fsize <= 0 ? 8190 : (size_t)fsize;

    gc__info("Booting worker with pid: %ld", (long)getpid());

    uv_signal_init(loop, &w->sig_term);
    uv_signal_init(loop, &w->sig_int);
    uv_signal_init(loop, &w->sig_quit);
    w->sig_term.data = w->sig_int.data = w->sig_quit.data = w;
    uv_signal_start(&w->sig_term, on_signal, SIGTERM);
    uv_signal_start(&w->sig_int, on_signal, SIGINT);
    uv_signal_start(&w->sig_quit, on_signal, SIGQUIT);
    sigset_t all;
    sigfillset(&all);
    sigprocmask(SIG_UNBLOCK, &all, NULL);

    PyObject *app = NULL;
    int rc = gc__py_load_app(cfg->app_uri, &app);
    if (rc != 0) {
        gc__info("Worker exiting (pid: %ld)", (long)getpid());
        fflush(NULL);
        _exit(rc);
    }
    gc__wsgi_options_t opt = {
        .multithread = 0,
        .multiprocess = gc__cfg_int(cfg, GC_S_workers) > 1,
        .sendfile = 1,
    };
    if (gc__wsgi_state_init(&w->wsgi, app, &opt) < 0) {
        gc__py_log_exception(GC_LOG_ERROR, "Exception in worker process");
        _exit(GC_EXIT_WORKER_BOOT_ERROR);
    }
    Py_DECREF(app);

    w->servers = calloc(nlisteners, sizeof(*w->servers));
    for (size_t i = 0; i < nlisteners; i++) {
        int err = listeners[i].is_unix ? uv_pipe_init(loop, &w->servers[i].pipe, 0)
                                       : uv_tcp_init(loop, &w->servers[i].tcp);
        if (err == 0)
            err = listeners[i].is_unix ? uv_pipe_open(&w->servers[i].pipe, listeners[i].fd)
                                       : uv_tcp_open(&w->servers[i].tcp, listeners[i].fd);
        w->servers[i].handle.data = w;
        if (err == 0)
            err = uv_listen(&w->servers[i].stream, (int)gc__cfg_int(cfg, GC_S_backlog),
                            on_connection);
        if (err < 0) {
            gc__error("Cannot listen on %s: %s", listeners[i].url, uv_strerror(err));
            _exit(GC_EXIT_WORKER_BOOT_ERROR);
        }
    }
    uv_timer_init(loop, &w->tick);
    uv_timer_init(loop, &w->deadline);
    w->tick.data = w->deadline.data = w;
    uv_timer_start(&w->tick, on_tick, 1000, 1000);
    uv_unref((uv_handle_t *)&w->tick);

    uv_run(loop, UV_RUN_DEFAULT);
    worker_exit(w);
}
