/* sync.c: the sync worker class: the application runs on the worker's only thread,
 * one request at a time, right where the request was parsed.
 *
 * Unlike Gunicorn's sync worker, connections are kept alive and pipelined requests are
 * answered: while the application runs nothing else is read, but requests are read in
 * full by the event loop beforehand, so a slow client never holds the worker. */
#include "workers/worker.h"

#include "http/sink.h"
#include "log/log.h"

void gc__sync_run(gc__conn_t *c)
{
    gc__worker_t *w = c->w;
    gc__sink_t sink;
    /* A client that takes longer than --timeout to accept bytes loses the connection. */
    gc__sink_init(&sink, c->fd, (int)gc__cfg_int(w->cfg, GC_S_timeout) * 1000);
    /* ... but a client that reads slowly gets the end of its response from the loop,
     * so the application is not kept waiting for it. */
    sink.spill_max = gc__conn_spill_room(c);
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
    gc__view_t method = gc__http_method(&c->parser.req), target = gc__http_target(&c->parser.req);
    gc__slot_request_begin(w->slot, method.base, method.len, target.base, target.len,
                           gc__monotonic_ms());
    gc__debug("%.*s %.*s", (int)method.len, method.base, (int)target.len, target.base);
    /* --keep-alive 0 turns keep-alive off (as in Gunicorn): answer "Connection: close"
     * rather than keep an idle connection with no timer to ever close it. */
    int keep = c->parser.req.keep_alive && !w->stopping && gc__cfg_int(w->cfg, GC_S_keepalive) > 0;
    enum gc__wsgi_outcome out = gc__wsgi_handle(&w->wsgi, &c->parser.req, &peer, &sink, keep);
    /* A body the application never read is still on its way (or held back by the
     * client): the next request's start is unknown, so the connection ends. */
    int unread = c->parser.state != GC_HTTP_READY;
    if (sink.error == 0)
        gc__conn_take_spill(c, &sink);
    gc__sink_free(&sink);
    gc__conn_request_done(c, out == GC_WSGI_KEEP && keep && sink.error == 0 && !unread);
}
