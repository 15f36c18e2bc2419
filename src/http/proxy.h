/* proxy.h: the PROXY protocol (HAProxy's proxy-protocol.txt), versions 1 and 2.
 *
 * A load balancer that speaks it sends one header at the very start of the TCP
 * connection, before any HTTP, saying who the real client is. The worker looks at the
 * first bytes of each connection (only when --proxy-protocol is not off), and this
 * module says whether they are a PROXY header, whether it is complete, and what it
 * holds. Bytes that are not a PROXY header are left alone and parsed as HTTP, as
 * Gunicorn does.
 *
 * Detection and parsing are separate steps because the peer must be checked against
 * proxy_allow_ips (403) between them: a peer that may not send the header is refused
 * whether or not its header is well formed.
 *
 * Pure C, no Python: unit-tested in tests/unit/test_proxy.c. */
#ifndef GC_HTTP_PROXY_H
#define GC_HTTP_PROXY_H

#include <stddef.h>
#include <sys/types.h>

/* --proxy-protocol. */
enum gc__proxy_mode {
    GC_PROXY_OFF = 0,
    GC_PROXY_V1,   /* only "PROXY " text headers */
    GC_PROXY_V2,   /* only binary headers */
    GC_PROXY_AUTO, /* either */
};

/* The mode named by the setting's (already validated) value: off, v1, v2 or auto. */
enum gc__proxy_mode gc__proxy_mode_from_name(const char *name);

enum gc__proxy_kind {
    GC_PROXY_MORE = 0, /* the bytes so far could still start a header: read more */
    GC_PROXY_NONE,     /* not a PROXY header: plain HTTP */
    GC_PROXY_IS_V1,
    GC_PROXY_IS_V2,
};

/* Looks at the first `len` bytes of a connection. Never needs more than 12 bytes to
 * decide, and decides as soon as the bytes differ from both signatures. */
enum gc__proxy_kind gc__proxy_detect(enum gc__proxy_mode mode, const char *data, size_t len);

/* The longest v1 line we wait for, CRLF included. The protocol's own limit is 107
 * bytes; this also leaves room for the longest forms inet_pton accepts. */
#define GC_PROXY_V1_MAX 256

/* What a PROXY header said. */
typedef struct {
    char protocol[8];  /* "TCP4", "TCP6", "LOCAL" or "UNSPEC" ("" before a header) */
    int has_addresses; /* 0 for LOCAL and UNSPEC: the connection's own addresses stand */
    char src_addr[48], dst_addr[48]; /* the client, and the proxy's address it reached */
    char src_port[6], dst_port[6];   /* decimal, without leading zeros */
} gc__proxy_info_t;

/* Parses a header that gc__proxy_detect classified as `kind` (GC_PROXY_IS_V1 or
 * GC_PROXY_IS_V2). Returns the header's length in bytes (what to discard before the
 * HTTP request), 0 when more bytes are needed, or -1 when it is malformed, with
 * Gunicorn's error page text in `why` (`cap` bytes). On success `info` is filled in. */
ssize_t gc__proxy_parse(enum gc__proxy_kind kind, const char *data, size_t len,
                        gc__proxy_info_t *info, char *why, size_t cap);

#endif
