/* forward.h: what a front end (a reverse proxy) may tell us through request headers.
 *
 * Three of Gunicorn's settings decide it, and all three hinge on whether the peer is a
 * trusted front end (its address is in forwarded_allow_ips, or it came over a unix
 * socket; the caller decides, see trust.h):
 *
 *   header_map + forwarder_headers: a header name holding "_" becomes the same environ
 *     key as its "-" twin (X_Forwarded_For and X-Forwarded-For are both
 *     HTTP_X_FORWARDED_FOR), so a client could pass off its own value as the proxy's.
 *     Such names are dropped (default), refused with 400, or kept ("dangerous"), except
 *     the names in forwarder_headers when the peer is trusted.
 *   secure_scheme_headers: from a trusted peer, X-Forwarded-Proto: https and its
 *     siblings set wsgi.url_scheme; headers that disagree are a 400.
 *   SCRIPT_NAME: $SCRIPT_NAME, or a SCRIPT_NAME header that survived the rule above; the
 *     request path must start with it (else 500, as Gunicorn's ConfigurationProblem).
 *
 * The parser applies these while it reads the head (http/parser.c), so a refused
 * request is answered before its body is read and dropped headers never count toward
 * limit_request_fields, as in Gunicorn. The policy is built once per worker.
 *
 * Pure C, no Python: unit-tested in tests/unit/test_forward.c. */
#ifndef GC_HTTP_FORWARD_H
#define GC_HTTP_FORWARD_H

#include <stddef.h>

#include "common/buf.h"
#include "http/parser.h"

enum gc__header_map {
    GC_HEADER_MAP_DROP = 0,
    GC_HEADER_MAP_REFUSE,
    GC_HEADER_MAP_DANGEROUS,
};

/* gc__http_request_t.url_scheme */
enum gc__url_scheme {
    GC_SCHEME_UNSET = 0, /* no scheme header from a trusted peer: the server's own */
    GC_SCHEME_HTTP,
    GC_SCHEME_HTTPS,
};

typedef struct {
    char *name;  /* owned */
    char *value; /* owned; NULL: never equal (a non-str value in the config file) */
} gc__scheme_header_t;

struct gc__forward_policy {
    enum gc__header_map header_map;
    char **forwarders; /* owned: names exempt from header_map for trusted peers */
    size_t nforwarders;
    int forwarders_any;           /* forwarder_headers holds "*" */
    gc__scheme_header_t *schemes; /* owned */
    size_t nschemes;
    char *script_name; /* owned: $SCRIPT_NAME, "" when unset */
};
typedef struct gc__forward_policy gc__forward_policy_t;

/* Gunicorn's defaults: drop; SCRIPT_NAME,PATH_INFO; the three X-Forwarded scheme
 * headers; no $SCRIPT_NAME. Static and shared: never free it. The parser uses it when
 * its limits name no policy. */
const gc__forward_policy_t *gc__forward_policy_default(void);

/* An empty policy (drop, no forwarders, no scheme headers, SCRIPT_NAME ""), filled in
 * with the calls below. Returns 0 or -ENOMEM; free with gc__forward_policy_free. */
int gc__forward_policy_init(gc__forward_policy_t *fp);
/* Copies `name` into forwarder_headers ("*" means every name). */
int gc__forward_policy_add_forwarder(gc__forward_policy_t *fp, const char *name);
/* Copies a secure_scheme_headers entry; value NULL never matches. */
int gc__forward_policy_add_scheme(gc__forward_policy_t *fp, const char *name, const char *value);
/* Copies the SCRIPT_NAME of the environment (NULL: ""). */
int gc__forward_policy_set_script_name(gc__forward_policy_t *fp, const char *script_name);
void gc__forward_policy_free(gc__forward_policy_t *fp);

enum gc__forward_action {
    GC_FORWARD_KEEP = 0,
    GC_FORWARD_DROP,
    GC_FORWARD_REFUSE,
};

/* What to do with a header field named `name` (trailing blanks ignored) from a peer
 * that is `trusted` or not. Names without "_" are always kept. */
enum gc__forward_action gc__forward_field(const gc__forward_policy_t *fp, int trusted,
                                          gc__view_t name);

/* On a complete, validated head: removes the fields gc__forward_field drops, sets
 * r->url_scheme from the scheme headers (trusted peers only) and r->script_name to the
 * SCRIPT_NAME field in force, and checks the path against the SCRIPT_NAME in force.
 * Returns 0, or -1 with *status (400 or 500) and Gunicorn's message in msg (`cap`
 * bytes). */
int gc__forward_check_head(const gc__forward_policy_t *fp, int trusted, gc__http_request_t *r,
                           int *status, char *msg, size_t cap);

/* Splits a request target as Gunicorn does: the path (absolute-form "http://h/p" gives
 * "/p"), and the query, without the fragment. Both are views into `target`. */
void gc__http_split_target(gc__view_t target, gc__view_t *path, gc__view_t *query);

#endif
