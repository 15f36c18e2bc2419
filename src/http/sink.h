/* sink.h: writing response bytes to a client connection.
 *
 * A sink writes through the connection's transport (net/transport.h: a plain socket
 * today), which never blocks. It writes as much as the transport takes and, when it
 * would block, waits for the readiness the transport wants through `wait`,
 * which each worker class supplies: the sync and gthread workers poll(2) the socket
 * (without Python's lock: see io_enter), the gevent worker parks the greenlet on the
 * hub. A client that reads nothing for
 * `timeout_ms` loses its connection. After the first failure the sink stays failed and
 * every later write returns the same error, so callers check once at the end.
 *
 * A sink may also *spill*: when the socket would block and the rest of the response
 * written so far fits in `spill_max` bytes, the sink keeps that rest in memory and
 * returns at once instead of waiting, and later writes queue behind it. The worker
 * takes the spilled bytes when the application is done (gc__sink_take_spill) and lets
 * its event loop drain them, so a client that reads slowly holds a little memory
 * instead of the application. Only what does not fit makes the sink wait. */
#ifndef GC_HTTP_SINK_H
#define GC_HTTP_SINK_H

#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "common/buf.h"
#include "net/transport.h"

typedef struct gc__sink gc__sink_t;

/* Waits until fd is ready for `events` (POLLIN or POLLOUT) or timeout_ms passes.
 * Returns 0, -ETIMEDOUT or -errno. */
typedef int (*gc__sink_wait_fn)(gc__sink_t *sink, int fd, int events, int timeout_ms);
/* Called around the system calls of one write (and its waits): the worker classes
 * whose loop thread must not hold Python's lock meanwhile release it here. */
typedef void (*gc__sink_io_fn)(gc__sink_t *sink);

struct gc__sink {
    gc__transport_t *tr; /* borrowed: the connection's */
    int timeout_ms;      /* per wait; <= 0 waits forever */
    gc__sink_wait_fn wait;
    void *wait_data;                   /* for the worker class's wait function */
    gc__sink_io_fn io_enter, io_leave; /* both NULL, or both set */
    void *io_state;                    /* for io_enter/io_leave */
    int error;                         /* first failure (negative errno), 0 while healthy */
    uint64_t written;                  /* bytes accepted: by the kernel, or into the spill */
    size_t spill_max;                  /* 0 (the default): never spill, always wait */
    gc__buf_t spill;                   /* owned: accepted bytes the socket did not take yet */
    size_t spill_off;                  /* how much of `spill` has gone out since */
};

/* Initialises a sink on a transport with the poll(2)-based wait, without spilling. */
void gc__sink_init(gc__sink_t *s, gc__transport_t *tr, int timeout_ms);
/* Frees what the sink still holds (spilled bytes nobody took). */
void gc__sink_free(gc__sink_t *s);
/* Moves the bytes still to be written into `out` (which must be empty; the caller
 * owns them afterwards). Returns how many there are. */
size_t gc__sink_take_spill(gc__sink_t *s, gc__buf_t *out);

/* Writes every byte of iov[0..n). Returns 0 or the sink's error. */
int gc__sink_writev(gc__sink_t *s, const struct iovec *iov, int n);
int gc__sink_write(gc__sink_t *s, const void *p, size_t len);

/* Writes out what is spilled, waiting as writes do, and spills no more from then on
 * (the connection is about to change hands: gunicorn.socket). Returns 0 or the
 * sink's error. */
int gc__sink_flush(gc__sink_t *s);
/* Sends count bytes of in_fd from offset: with sendfile(2) where the transport can,
 * else read and written. Returns 0 or the error. */
int gc__sink_sendfile(gc__sink_t *s, int in_fd, off_t offset, uint64_t count);

/* The default wait: poll(2). */
int gc__sink_poll_wait(gc__sink_t *s, int fd, int events, int timeout_ms);

/* Brackets system calls made outside the sink on its behalf (reading a request body
 * with the same wait, say). */
static inline void gc__sink_io_enter(gc__sink_t *s)
{
    if (s->io_enter)
        s->io_enter(s);
}
static inline void gc__sink_io_leave(gc__sink_t *s)
{
    if (s->io_leave)
        s->io_leave(s);
}

/* Errors that mean the client went away (EPIPE, ECONNRESET, timeouts): logged at
 * debug level, never as server errors. */
int gc__sink_is_disconnect(int err);

#endif
