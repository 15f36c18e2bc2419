/* sink.h: writing response bytes to a client socket.
 *
 * Sockets are non-blocking (libuv owns them). A sink writes as much as the kernel takes
 * and, when the socket would block, waits for it to become writable through `wait`,
 * which each worker class supplies: the sync and gthread workers poll(2) the socket,
 * the gevent worker parks the greenlet on the hub. A client that reads nothing for
 * `timeout_ms` loses its connection. After the first failure the sink stays failed and
 * every later write returns the same error, so callers check once at the end. */
#ifndef GC_HTTP_SINK_H
#define GC_HTTP_SINK_H

#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

typedef struct gc__sink gc__sink_t;

/* Waits until fd is writable or timeout_ms passes. Returns 0, -ETIMEDOUT or -errno. */
typedef int (*gc__sink_wait_fn)(gc__sink_t *sink, int fd, int timeout_ms);

struct gc__sink {
    int fd;              /* borrowed socket */
    int timeout_ms;      /* per wait; <= 0 waits forever */
    gc__sink_wait_fn wait;
    void *wait_data;     /* for the worker class's wait function */
    int error;           /* first failure (negative errno), 0 while healthy */
    uint64_t written;    /* bytes accepted by the kernel */
};

/* Initialises a sink on fd with the poll(2)-based wait. */
void gc__sink_init(gc__sink_t *s, int fd, int timeout_ms);

/* Writes every byte of iov[0..n). Returns 0 or the sink's error. */
int gc__sink_writev(gc__sink_t *s, const struct iovec *iov, int n);
int gc__sink_write(gc__sink_t *s, const void *p, size_t len);

/* Sends count bytes of in_fd from offset with sendfile(2). Returns 0 or the error. */
int gc__sink_sendfile(gc__sink_t *s, int in_fd, off_t offset, uint64_t count);

/* The default wait: poll(2) for POLLOUT. */
int gc__sink_poll_wait(gc__sink_t *s, int fd, int timeout_ms);

/* Errors that mean the client went away (EPIPE, ECONNRESET, timeouts): logged at
 * debug level, never as server errors. */
int gc__sink_is_disconnect(int err);

#endif
