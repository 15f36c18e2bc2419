/* test_transport.c: the plain-socket transport (src/net/socket.c), the seam every
 * connection's bytes cross: non-blocking calls that say what they wait for, the end of
 * the peer's stream, half close, and close. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "net/transport.h"
#include "unit.h"

static void make_pair(int fds[2])
{
    ASSERT_OK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds));
    int fl = fcntl(fds[0], F_GETFL);
    ASSERT(fl >= 0);
    ASSERT_OK(fcntl(fds[0], F_SETFL, fl | O_NONBLOCK));
}

static void test_recv_says_what_it_waits_for(void)
{
    int fds[2];
    make_pair(fds);
    gc__transport_t t;
    gc__transport_socket(&t, fds[0]);
    char buf[16];
    ASSERT(!gc__transport_readable_now(&t));
    ASSERT_EQ_INT(gc__transport_recv(&t, buf, sizeof(buf)), -EAGAIN);
    ASSERT_EQ_INT(t.want, POLLIN);
    ASSERT_EQ_INT(write(fds[1], "hello", 5), 5);
    ASSERT(gc__transport_readable_now(&t));
    ASSERT_EQ_INT(gc__transport_recv(&t, buf, sizeof(buf)), 5);
    ASSERT_MEM_STR(buf, 5, "hello");
    ASSERT(!gc__transport_readable_now(&t));
    /* The peer's end of stream is 0, not an error. */
    close(fds[1]);
    ASSERT_EQ_INT(gc__transport_recv(&t, buf, sizeof(buf)), 0);
    gc__transport_close(&t);
    ASSERT_EQ_INT(t.fd, -1);
    ASSERT(fcntl(fds[0], F_GETFD) < 0); /* the transport owned the descriptor */
}

static void test_writev_until_full(void)
{
    int fds[2];
    make_pair(fds);
    int small = 4096;
    ASSERT_OK(setsockopt(fds[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small)));
    gc__transport_t t;
    gc__transport_socket(&t, fds[0]);
    static char block[8192];
    memset(block, 'x', sizeof(block));
    struct iovec iov[2] = {{block, 10}, {block, sizeof(block)}};
    size_t total = 0;
    ssize_t n;
    while ((n = gc__transport_writev(&t, iov, 2)) > 0)
        total += (size_t)n;
    ASSERT_EQ_INT(n, -EAGAIN);
    ASSERT_EQ_INT(t.want, POLLOUT);
    ASSERT(total > 0);
    /* Once the peer has gone, a write fails with the errno, not -EAGAIN. */
    close(fds[1]);
    n = gc__transport_writev(&t, iov, 2);
    ASSERT(n == -EPIPE || n == -ECONNRESET);
    gc__transport_close(&t);
}

static void test_shutdown_is_a_half_close(void)
{
    int fds[2];
    make_pair(fds);
    gc__transport_t t;
    gc__transport_socket(&t, fds[0]);
    ASSERT_OK(gc__transport_shutdown(&t));
    char buf[8];
    ASSERT_EQ_INT(read(fds[1], buf, sizeof(buf)), 0); /* the peer sees our end */
    ASSERT_EQ_INT(write(fds[1], "more", 4), 4);       /* and may still send */
    ASSERT_EQ_INT(gc__transport_recv(&t, buf, sizeof(buf)), 4);
    ASSERT_MEM_STR(buf, 4, "more");
    gc__transport_close(&t);
    close(fds[1]);
}

int main(int argc, char **argv)
{
    unit_init(argc, argv);
    signal(SIGPIPE, SIG_IGN); /* as the server: a write to a gone peer is -EPIPE */
    RUN(test_recv_says_what_it_waits_for);
    RUN(test_writev_until_full);
    RUN(test_shutdown_is_a_half_close);
    return unit_done();
}
