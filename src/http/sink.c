/* sink.c: non-blocking writes through a transport, with a pluggable wait and a bounded
 * spill (see sink.h). */
#include "http/sink.h"

#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

void gc__sink_init(gc__sink_t *s, gc__transport_t *tr, int timeout_ms)
{
    memset(s, 0, sizeof(*s));
    s->tr = tr;
    s->timeout_ms = timeout_ms;
    s->wait = gc__sink_poll_wait;
    gc__buf_init(&s->spill);
}

void gc__sink_free(gc__sink_t *s)
{
    gc__buf_free(&s->spill);
    s->spill_off = 0;
}

static size_t spilled(const gc__sink_t *s)
{
    return s->spill.len - s->spill_off;
}

size_t gc__sink_take_spill(gc__sink_t *s, gc__buf_t *out)
{
    gc__buf_consume(&s->spill, s->spill_off);
    s->spill_off = 0;
    *out = s->spill;
    gc__buf_init(&s->spill);
    return out->len;
}

int gc__sink_poll_wait(gc__sink_t *s, int fd, int events, int timeout_ms)
{
    struct pollfd pfd = {.fd = fd, .events = (short)events};
    for (;;) {
        int n = poll(&pfd, 1, timeout_ms > 0 ? timeout_ms : -1);
        if (n > 0)
            return 0;
        if (n == 0)
            return -ETIMEDOUT;
        if (errno != EINTR)
            return -errno;
    }
}

int gc__sink_is_disconnect(int err)
{
    return err == -EPIPE || err == -ECONNRESET || err == -ETIMEDOUT || err == -ENOTCONN ||
           err == -ESHUTDOWN;
}

static size_t iov_total(const struct iovec *iov, int n)
{
    size_t total = 0;
    for (int i = 0; i < n; i++)
        total += iov[i].iov_len;
    return total;
}

/* Drops the part of the spill already written, so the buffer never holds more than
 * spill_max bytes, and makes room for `more`. Returns 0 or the sink's error. */
static int spill_room(gc__sink_t *s, size_t more)
{
    gc__buf_consume(&s->spill, s->spill_off);
    s->spill_off = 0;
    if (gc__buf_reserve(&s->spill, more) < 0)
        return s->error = -ENOMEM;
    return 0;
}

/* Keeps iov[0..n) in the spill. Returns 0 or the sink's error. */
static int spill_iov(gc__sink_t *s, const struct iovec *iov, int n)
{
    size_t total = iov_total(iov, n);
    if (spill_room(s, total) < 0)
        return s->error;
    for (int i = 0; i < n; i++)
        gc__buf_append(&s->spill, iov[i].iov_base, iov[i].iov_len);
    s->written += total;
    return 0;
}

/* Writes spilled bytes until at most `keep` are left, waiting for the socket; with
 * keep = SIZE_MAX, writes what the socket takes now without waiting. Returns 0 or
 * the sink's error. */
static int flush_spill(gc__sink_t *s, size_t keep)
{
    int block = keep != SIZE_MAX;
    while (spilled(s) > (block ? keep : 0)) {
        struct iovec iov = {.iov_base = s->spill.data + s->spill_off, .iov_len = spilled(s)};
        ssize_t w = gc__transport_writev(s->tr, &iov, 1);
        if (w < 0) {
            if (w != -EAGAIN)
                return s->error = (int)w;
            if (!block)
                return 0;
            int rc = s->wait(s, s->tr->fd, s->tr->want, s->timeout_ms);
            if (rc < 0)
                return s->error = rc;
            continue;
        }
        s->spill_off += (size_t)w;
    }
    if (spilled(s) == 0) {
        gc__buf_reset(&s->spill);
        s->spill_off = 0;
    }
    return 0;
}

/* Before new bytes go out: writes what is spilled, and returns 1 when the new `more`
 * bytes are to queue behind what is still spilled (after waiting until they fit), 0
 * when the socket is free for them, or the error. */
static int before_write(gc__sink_t *s, uint64_t more)
{
    if (spilled(s) == 0)
        return 0;
    int rc = flush_spill(s, SIZE_MAX);
    if (rc < 0 || spilled(s) == 0)
        return rc;
    if (more > s->spill_max)
        rc = flush_spill(s, 0); /* they will never fit: the socket first */
    else
        rc = flush_spill(s, s->spill_max - (size_t)more);
    if (rc < 0)
        return rc;
    return spilled(s) > 0;
}

static int writev_io(gc__sink_t *s, const struct iovec *iov_in, int n)
{
    if (s->error)
        return s->error;
    if (n > 16)
        n = 16; /* callers never pass more; keep the copy on the stack */
    int queued = before_write(s, iov_total(iov_in, n));
    if (queued != 0)
        return queued < 0 ? queued : spill_iov(s, iov_in, n);
    struct iovec iov[16];
    memcpy(iov, iov_in, (size_t)n * sizeof(*iov));
    struct iovec *cur = iov;
    while (n > 0) {
        if (cur->iov_len == 0) {
            cur++, n--;
            continue;
        }
        ssize_t w = gc__transport_writev(s->tr, cur, n);
        if (w < 0) {
            if (w != -EAGAIN)
                return s->error = (int)w;
            /* The rest fits in the spill: the event loop will send it later. */
            if (s->spill_max > 0 && iov_total(cur, n) <= s->spill_max)
                return spill_iov(s, cur, n);
            int rc = s->wait(s, s->tr->fd, s->tr->want, s->timeout_ms);
            if (rc < 0)
                return s->error = rc;
            continue;
        }
        s->written += (uint64_t)w;
        size_t left = (size_t)w;
        while (n > 0 && left >= cur->iov_len) {
            left -= cur->iov_len;
            cur++, n--;
        }
        if (n > 0) {
            cur->iov_base = (char *)cur->iov_base + left;
            cur->iov_len -= left;
        }
    }
    return 0;
}

int gc__sink_writev(gc__sink_t *s, const struct iovec *iov, int n)
{
    if (s->error)
        return s->error;
    gc__sink_io_enter(s);
    int rc = writev_io(s, iov, n);
    gc__sink_io_leave(s);
    return rc;
}

int gc__sink_flush(gc__sink_t *s)
{
    s->spill_max = 0;
    if (s->error || spilled(s) == 0)
        return s->error;
    gc__sink_io_enter(s);
    int rc = flush_spill(s, 0);
    gc__sink_io_leave(s);
    return rc;
}

int gc__sink_write(gc__sink_t *s, const void *p, size_t len)
{
    struct iovec iov = {.iov_base = (void *)p, .iov_len = len};
    return gc__sink_writev(s, &iov, 1);
}

/* Copies count bytes of in_fd from offset into the spill (fewer if the file is
 * shorter). Returns 0 or the sink's error. */
static int spill_file(gc__sink_t *s, int in_fd, off_t offset, uint64_t count)
{
    if (spill_room(s, (size_t)count) < 0)
        return s->error;
    while (count > 0) {
        ssize_t r = pread(in_fd, s->spill.data + s->spill.len, (size_t)count, offset);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return s->error = -errno;
        if (r == 0)
            break; /* the file is shorter than promised */
        s->spill.len += (size_t)r;
        s->written += (uint64_t)r;
        offset += r;
        count -= (uint64_t)r;
    }
    return 0;
}

/* A transport without sendfile (bytes that must pass through user space): the file is
 * read in pieces and written. */
static int copy_file(gc__sink_t *s, int in_fd, off_t offset, uint64_t count)
{
    char piece[16 * 1024];
    while (count > 0) {
        size_t want = count < sizeof(piece) ? (size_t)count : sizeof(piece);
        ssize_t r = pread(in_fd, piece, want, offset);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return s->error = -errno;
        if (r == 0)
            break; /* the file is shorter than promised */
        struct iovec iov = {.iov_base = piece, .iov_len = (size_t)r};
        int rc = writev_io(s, &iov, 1);
        if (rc < 0)
            return rc;
        offset += r;
        count -= (uint64_t)r;
    }
    return 0;
}

static int sendfile_io(gc__sink_t *s, int in_fd, off_t offset, uint64_t count)
{
    if (s->error)
        return s->error;
    if (s->tr->ops->sendfile == NULL)
        return copy_file(s, in_fd, offset, count);
    int queued = before_write(s, count);
    if (queued != 0)
        return queued < 0 ? queued : spill_file(s, in_fd, offset, count);
    while (count > 0) {
        size_t chunk = count > (1u << 30) ? (1u << 30) : (size_t)count;
        ssize_t w = s->tr->ops->sendfile(s->tr, in_fd, &offset, chunk);
        if (w < 0) {
            if (w != -EAGAIN)
                return s->error = (int)w;
            /* The tail fits in the spill: read it now, let the loop send it. */
            if (s->spill_max > 0 && count <= s->spill_max)
                return spill_file(s, in_fd, offset, count);
            int rc = s->wait(s, s->tr->fd, s->tr->want, s->timeout_ms);
            if (rc < 0)
                return s->error = rc;
            continue;
        }
        if (w == 0)
            break; /* the file is shorter than promised */
        s->written += (uint64_t)w;
        count -= (uint64_t)w;
    }
    return 0;
}

int gc__sink_sendfile(gc__sink_t *s, int in_fd, off_t offset, uint64_t count)
{
    if (s->error)
        return s->error;
    gc__sink_io_enter(s);
    int rc = sendfile_io(s, in_fd, offset, count);
    gc__sink_io_leave(s);
    return rc;
}
