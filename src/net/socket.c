/* socket.c: the plain-socket transport (see transport.h): TCP and unix stream sockets,
 * one system call per operation, nothing held in user space. */
#include "net/transport.h"

#include <errno.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <unistd.h>

static ssize_t sock_recv(gc__transport_t *t, void *buf, size_t len)
{
    for (;;) {
        ssize_t n = recv(t->fd, buf, len, 0);
        if (n >= 0)
            return n;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            t->want = POLLIN;
            return -EAGAIN;
        }
        return -errno;
    }
}

static ssize_t sock_writev(gc__transport_t *t, const struct iovec *iov, int n)
{
    for (;;) {
        /* MSG_NOSIGNAL would need sendmsg; SIGPIPE is ignored process-wide instead. */
        ssize_t w = writev(t->fd, iov, n);
        if (w >= 0)
            return w;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            t->want = POLLOUT;
            return -EAGAIN;
        }
        return -errno;
    }
}

static ssize_t sock_sendfile(gc__transport_t *t, int in_fd, off_t *offset, size_t count)
{
    for (;;) {
        ssize_t w = sendfile(t->fd, in_fd, offset, count);
        if (w >= 0)
            return w;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            t->want = POLLOUT;
            return -EAGAIN;
        }
        return -errno;
    }
}

static int sock_readable_now(gc__transport_t *t)
{
    int n = 0;
    return ioctl(t->fd, FIONREAD, &n) == 0 && n > 0;
}

static int sock_shutdown(gc__transport_t *t)
{
    return shutdown(t->fd, SHUT_WR) == 0 ? 0 : -errno;
}

static void sock_close(gc__transport_t *t)
{
    if (t->fd >= 0)
        close(t->fd);
    t->fd = -1;
}

static const gc__transport_ops_t socket_ops = {
    .name = "socket",
    .recv = sock_recv,
    .writev = sock_writev,
    .sendfile = sock_sendfile,
    .readable_now = sock_readable_now,
    .shutdown = sock_shutdown,
    .close = sock_close,
};

void gc__transport_socket(gc__transport_t *t, int fd)
{
    t->ops = &socket_ops;
    t->fd = fd;
    t->want = 0;
    t->ctx = NULL;
}
