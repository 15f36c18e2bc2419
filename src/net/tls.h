/* tls.h: the TLS transport: a server-side TLS session (OpenSSL) over a non-blocking
 * socket, behind the same interface as the plain socket (transport.h).
 *
 * The session is made from an SSL_CTX the caller owns: gunicorn-c takes it from the
 * ssl.SSLContext that Python's ssl module built (the default one, or whatever the
 * ssl_context hook returned), so that everything the context says (protocol floor,
 * ciphers, verify mode, certificate chains, ALPN) governs the handshake. The handshake
 * runs inside the first recv (or writev) like any other progress: it never blocks, and
 * a client that stalls in it costs what a silent plain client costs.
 *
 * What the handshake settled (protocol, cipher, ALPN, the client's certificate) is
 * read with gc__tls_info and gc__tls_peer once it is done. */
#ifndef GC_NET_TLS_H
#define GC_NET_TLS_H

#include <stddef.h>

#include "net/transport.h"

struct ssl_ctx_st; /* OpenSSL's SSL_CTX */

typedef struct {
    int suppress_ragged_eofs; /* a peer closing without close_notify is a plain end */
    int ktls;                 /* ask OpenSSL for kernel TLS (sendfile then stays on) */
} gc__tls_options_t;

/* Wraps fd (non-blocking, accepted) in a server TLS session on ctx (borrowed: the
 * session holds its own reference). The transport owns fd from here on, even on
 * failure, when fd is closed. Returns 0 or -ENOMEM. */
int gc__transport_tls(gc__transport_t *t, int fd, struct ssl_ctx_st *ctx,
                      const gc__tls_options_t *opt);

/* 1 when t is a TLS transport. */
int gc__transport_is_tls(const gc__transport_t *t);

/* Drives the handshake on. Returns 1 once it is done, -EAGAIN while it needs the
 * socket (t->want), or a negative errno when it failed (gc__tls_error says why). */
int gc__tls_handshake(gc__transport_t *t);

/* 1 once the handshake is done. */
int gc__tls_established(const gc__transport_t *t);

/* Why the last operation failed, in OpenSSL's words ("" when it did not). */
const char *gc__tls_error(const gc__transport_t *t);

/* What the handshake agreed on; strings are static or owned by the transport. */
typedef struct {
    const char *protocol; /* "TLSv1.3" */
    const char *cipher;   /* "TLS_AES_256_GCM_SHA384" */
    const char *alpn;     /* the ALPN protocol chosen ("h2", "http/1.1"), or "" */
} gc__tls_info_t;
void gc__tls_info(const gc__transport_t *t, gc__tls_info_t *out);

/* The client's certificate, as the environ shows it (the names mod_ssl and nginx use):
 * the verification result ("SUCCESS", "NONE", or "FAILED:<reason>"), subject and
 * issuer in RFC 2253 form, the serial number in hex, and the PEM. Formatted on the
 * first call, then owned by the transport; the strings are NULL when the client sent
 * no certificate (verify is then "NONE"). */
typedef struct {
    const char *verify;
    const char *subject;
    const char *issuer;
    const char *serial;
    const char *pem;
} gc__tls_peer_t;
const gc__tls_peer_t *gc__tls_peer(gc__transport_t *t);

/* 1 when this machine's kernel can do TLS (the "tls" upper-layer protocol is
 * available), which OpenSSL can use for sendfile under TLS. */
int gc__tls_kernel_available(void);

#endif
