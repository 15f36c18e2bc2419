/* frontend.h: a worker's view of the proxies in front of it.
 *
 * Built once per worker from the settings: the trust lists (forwarded_allow_ips,
 * proxy_allow_ips), the header policy the parser applies (header_map,
 * forwarder_headers, secure_scheme_headers, $SCRIPT_NAME; http/forward.h) and the
 * PROXY protocol mode. Per connection it decides, at accept, whether the peer is a
 * trusted front end, and reads the PROXY header off the first bytes before any HTTP
 * is parsed (http/proxy.h). docs/http.md describes the behaviour. */
#ifndef GC_WORKERS_FRONTEND_H
#define GC_WORKERS_FRONTEND_H

#include <stddef.h>

#include "config/config.h"
#include "http/forward.h"
#include "http/proxy.h"
#include "http/trust.h"
#include "wsgi/wsgi.h"

typedef struct {
    gc__forward_policy_t forward; /* the parser borrows it through its limits */
    gc__trust_list_t forwarded_allow;
    gc__trust_list_t proxy_allow;
    enum gc__proxy_mode proxy_mode;
    int uwsgi;                    /* --protocol uwsgi: connections speak uwsgi packets */
    gc__trust_list_t uwsgi_allow; /* uwsgi_allow_ips: who may send them over TCP */
} gc__frontend_t;

/* Builds everything from cfg, converting secure_scheme_headers from the config file's
 * dict. Needs the GIL. Returns 0, or -1 after logging why. */
int gc__frontend_init(gc__frontend_t *f, const gc__config_t *cfg);

struct gc__conn;

/* At accept, once the peer's address is known: marks the connection's parser as
 * trusted or not, and whether a PROXY header may come first. With --protocol uwsgi, a
 * TCP peer not in uwsgi_allow_ips is refused: the parser's state is then
 * GC_HTTP_ERROR with 403, to answer before anything is read. */
void gc__frontend_accept(const gc__frontend_t *f, struct gc__conn *c);

/* While the connection may still start with a PROXY header: appends the `len` bytes
 * just read to c->pending and looks at what has arrived. Returns 1 to wait for more
 * bytes, 0 when the PROXY phase is over (c->pending holds the HTTP bytes, possibly
 * none), or -1 when the connection must be refused (c->parser.error_status and
 * error_msg say how). */
int gc__frontend_proxy_read(const gc__frontend_t *f, struct gc__conn *c, const char *data,
                            size_t len);

/* Puts what the connection's PROXY header said into `peer`: the client's address and
 * port replace the socket's, and PROXY_PROTOCOL / PROXY_ADDR / PROXY_PORT are added. No
 * change without a header. The strings stay owned by the connection. */
void gc__frontend_peer(const struct gc__conn *c, gc__wsgi_peer_t *peer);

#endif
