/* sink.c: non-blocking socket writes with a pluggable wait (see sink.h). */
#include "http/sink.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <unistd.h>

void gc__sink_init(gc__sink_t *s, int fd, int timeout_ms)
{
    memset(s, 0, sizeof(*s));
    s->fd = fd;
    s->timeout_ms = timeout_ms;
    s->wait = gc__sink_poll_wait;
}

int gc__sink_poll_wait(gc__sink_t *s, int fd, int timeout_ms)
{
    struct pollfd pfd = {.fd = fd, .events = POLLOUT};
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

int gc__sink_writev(gc__sink_t *s, const struct iovec *iov_in, int n)
{
    if (s->error)
        return s->error;
    struct iovec iov[16];
    if (n > 16)
        n = 16; /* callers never pass more; keep the copy on the stack */
    memcpy(iov, iov_in, (size_t)n * sizeof(*iov));
    struct iovec *cur = iov;
    while (n > 0) {
        if (cur->iov_len == 0) {
            cur++, n--;
            continue;
        }
        /* MSG_NOSIGNAL would need sendmsg; SIGPIPE is ignored process-wide instead. */
        ssize_t w = writev(s->fd, cur, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                int rc = s->wait(s, s->fd, s->timeout_ms);
                if (rc < 0)
                    return s->error = rc;
                continue;
            }
            return s->error = -errno;
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

int gc__sink_write(gc__sink_t *s, const void *p, size_t len)
{
    struct iovec iov = {.iov_base = (void *)p, .iov_len = len};
    return gc__sink_writev(s, &iov, 1);
}

int gc__sink_sendfile(gc__sink_t *s, int in_fd, off_t offset, uint64_t count)
{
    if (s->error)
        return s->error;
    while (count > 0) {
        size_t chunk = count > (1u << 30) ? (1u << 30) : (size_t)count;
        ssize_t w = sendfile(s->fd, in_fd, &offset, chunk);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN) {
                int rc = s->wait(s, s->fd, s->timeout_ms);
                if (rc < 0)
                    return s->error = rc;
                continue;
            }
            return s->error = -errno;
        }
        if (w == 0)
            break; /* the file is shorter than promised */
        s->written += (uint64_t)w;
        count -= (uint64_t)w;
    }
    return 0;
}
