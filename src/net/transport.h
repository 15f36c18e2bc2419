/* transport.h: how a connection's bytes cross the wire: the seam between the HTTP code
 * and the socket.
 *
 * Everything above this layer (the request reader in workers/conn.c, the response sink
 * in http/sink.c, the spill the event loop sends) moves bytes only through a
 * gc__transport_t: plain TCP and unix sockets today (socket.c), a TLS session or an
 * HTTP/2 stream tomorrow, without a change to the WSGI path.
 *
 * The interface is the one a non-blocking socket has, so that every worker class keeps
 * waiting the way it does now (a libuv poll watcher, poll(2), gevent's hub): each call
 * moves what it can at once and never blocks; when it cannot progress it returns
 * -EAGAIN and sets `want` to the readiness it needs before a retry (POLLIN or POLLOUT:
 * a TLS write can need the socket readable). Waiting is the caller's business, on
 * `fd`.
 *
 * socket.c is the plain socket; tls.h the TLS session over one.
 *
 * A transport is used by one thread at a time: the loop thread, or the thread or
 * greenlet running the request while the connection is busy. */
#ifndef GC_NET_TRANSPORT_H
#define GC_NET_TRANSPORT_H

#include <stddef.h>
#include <sys/types.h>
#include <sys/uio.h>

typedef struct gc__transport gc__transport_t;

typedef struct {
    const char *name; /* "socket", "tls" */
    /* Reads up to len bytes. Returns how many (> 0), 0 when the peer has closed its
     * side, or a negative errno (-EAGAIN: nothing yet; see `want`). */
    ssize_t (*recv)(gc__transport_t *t, void *buf, size_t len);
    /* Writes from iov[0..n). Returns how many bytes were taken (> 0) or a negative
     * errno (-EAGAIN: none; see `want`). */
    ssize_t (*writev)(gc__transport_t *t, const struct iovec *iov, int n);
    /* Sends up to count bytes of in_fd from *offset, advancing it (sendfile(2)).
     * Returns as writev. NULL when the bytes must pass through user space (a TLS
     * session): the caller then reads the file and writes. */
    ssize_t (*sendfile)(gc__transport_t *t, int in_fd, off_t *offset, size_t count);
    /* 1 when recv would return bytes (or the end) without waiting: unread bytes in the
     * kernel, or decrypted ones the transport holds. */
    int (*readable_now)(gc__transport_t *t);
    /* Bytes read from the socket and held in user space, which a wait on the socket
     * would not see (a TLS record decrypted but not yet returned). NULL: never any. */
    size_t (*buffered)(gc__transport_t *t);
    /* Ends our direction (TCP: a FIN); the peer's may stay open. Returns 0 or a
     * negative errno. */
    int (*shutdown)(gc__transport_t *t);
    /* Releases what the transport holds and closes the socket. */
    void (*close)(gc__transport_t *t);
} gc__transport_ops_t;

struct gc__transport {
    const gc__transport_ops_t *ops;
    int fd;    /* the socket: what waits are made on */
    int want;  /* after -EAGAIN: POLLIN or POLLOUT, the readiness to wait for */
    void *ctx; /* the transport's own state; NULL for a plain socket */
};

/* A plain stream socket (TCP or unix), non-blocking; the transport owns fd. */
void gc__transport_socket(gc__transport_t *t, int fd);

static inline ssize_t gc__transport_recv(gc__transport_t *t, void *buf, size_t len)
{
    return t->ops->recv(t, buf, len);
}
static inline ssize_t gc__transport_writev(gc__transport_t *t, const struct iovec *iov, int n)
{
    return t->ops->writev(t, iov, n);
}
static inline int gc__transport_readable_now(gc__transport_t *t)
{
    return t->ops->readable_now(t);
}
static inline size_t gc__transport_buffered(gc__transport_t *t)
{
    return t->ops->buffered != NULL ? t->ops->buffered(t) : 0;
}
static inline int gc__transport_shutdown(gc__transport_t *t)
{
    return t->ops->shutdown(t);
}
static inline void gc__transport_close(gc__transport_t *t)
{
    t->ops->close(t);
}

#endif
