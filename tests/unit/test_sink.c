/* test_sink.c: the socket sink (src/http/sink.c): writes that resume exactly where the
 * kernel stopped, waits, sendfile, failures that stick, and the spill (what a slow
 * reader's socket does not take is kept, in order and within spill_max).
 *
 * Each test writes a known byte pattern into one end of a socketpair with a small send
 * buffer; a forked child reads the other end (late, slowly, or not until the parent
 * has finished) and checks every byte, so a lost, repeated or reordered piece fails the
 * child. The parent then sends what was spilled itself, as the worker's loop would. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

#include "http/sink.h"
#include "unit.h"

static pid_t reader(const int fds[2], size_t total, int delay_ms, int slow);

/* --- Writes, waits, sendfile and failures ------------------------------------ */

/* The byte at position i of the test stream: not periodic at any power of two, so a
 * lost, repeated or reordered piece shows up. */
static char pattern_at(size_t i)
{
    return (char)(i * 31 + i / 4093);
}

static void fill_pattern(char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        p[i] = pattern_at(i);
}

static void make_pair(int fds[2])
{
    ASSERT_OK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds));
    /* libuv hands the workers non-blocking sockets; the sink must cope with EAGAIN. */
    int fl = fcntl(fds[0], F_GETFL);
    ASSERT(fl >= 0);
    ASSERT_OK(fcntl(fds[0], F_SETFL, fl | O_NONBLOCK));
    int small = 4096;
    ASSERT_OK(setsockopt(fds[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small)));
}

/* Reads exactly n bytes from fd (blocking). */
static void read_exact(int fd, char *p, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, p + got, n - got);
        if (r < 0 && errno == EINTR)
            continue;
        ASSERT(r > 0);
        got += (size_t)r;
    }
}

static void test_sink_writev(void)
{
    int fds[2];
    make_pair(fds);
    gc__sink_t s;
    gc__transport_t tr;
    gc__transport_socket(&tr, fds[0]);
    gc__sink_init(&s, &tr, 1000);
    ASSERT_EQ_INT(s.tr->fd, fds[0]);
    ASSERT_EQ_INT(s.error, 0);
    ASSERT_EQ_INT(s.written, 0);

    struct iovec iov[] = {
        {"HTTP/1.1 200 OK\r\n", 17},
        {"", 0},
        {"Content-Length: 5\r\n\r\n", 21},
        {"hello", 5},
        {"", 0},
    };
    ASSERT_OK(gc__sink_writev(&s, iov, 5));
    ASSERT_EQ_INT(s.written, 43);
    ASSERT_OK(gc__sink_write(&s, "!", 1));
    ASSERT_OK(gc__sink_write(&s, "", 0));
    ASSERT_OK(gc__sink_writev(&s, iov, 0));
    ASSERT_EQ_INT(s.written, 44);
    /* The caller's iovecs are left untouched. */
    ASSERT_EQ_INT(iov[0].iov_len, 17);
    ASSERT_EQ_INT(iov[3].iov_len, 5);

    char buf[64];
    read_exact(fds[1], buf, 44);
    ASSERT_EQ_MEM(buf, 44, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello!", 44);
    close(fds[0]);
    close(fds[1]);
}

static int wait_calls;
static int io_depth, io_enters, waits_outside_io;

static int counting_wait(gc__sink_t *s, int fd, int events, int timeout_ms)
{
    wait_calls++;
    if (s->io_enter != NULL && io_depth != 1)
        waits_outside_io++;
    ASSERT_EQ_INT(events, POLLOUT);
    return gc__sink_poll_wait(s, fd, events, timeout_ms);
}

/* The io hooks (what gives Python's lock back in the workers) bracket every write and
 * every wait, once, and never nest. */
static void io_enter(gc__sink_t *s)
{
    ASSERT_EQ_INT(io_depth, 0);
    io_depth++;
    io_enters++;
}

static void io_leave(gc__sink_t *s)
{
    ASSERT_EQ_INT(io_depth, 1);
    io_depth--;
}

/* A child that starts reading after the writer has filled the socket buffer, then
 * reads slowly (see reader below). */
static pid_t slow_reader(const int fds[2], size_t total)
{
    return reader(fds, total, 100, 1);
}

static void wait_child_ok(pid_t pid)
{
    int status;
    while (waitpid(pid, &status, 0) < 0)
        ASSERT_EQ_INT(errno, EINTR);
    ASSERT(WIFEXITED(status));
    ASSERT_EQ_INT(WEXITSTATUS(status), 0);
}

static void test_sink_partial_writes(void)
{
    /* Five iovecs of odd sizes, 3 MB in all: the kernel takes a few KB per writev, so
     * writes end inside iovecs and the sink must resume exactly there. */
    static const size_t sizes[] = {17, 1000003, 1, 2097133, 5000};
    size_t total = 0;
    for (size_t i = 0; i < 5; i++)
        total += sizes[i];
    char *data = malloc(total);
    ASSERT(data != NULL);
    fill_pattern(data, total);
    struct iovec iov[5];
    size_t off = 0;
    for (size_t i = 0; i < 5; i++) {
        iov[i] = (struct iovec){data + off, sizes[i]};
        off += sizes[i];
    }

    int fds[2];
    make_pair(fds);
    pid_t pid = slow_reader(fds, total);
    close(fds[1]);

    gc__sink_t s;
    gc__transport_t tr;
    gc__transport_socket(&tr, fds[0]);
    gc__sink_init(&s, &tr, 10000);
    s.wait = counting_wait;
    s.io_enter = io_enter;
    s.io_leave = io_leave;
    wait_calls = io_enters = waits_outside_io = 0;
    ASSERT_OK(gc__sink_writev(&s, iov, 5));
    ASSERT_EQ_INT(s.written, total);
    ASSERT_EQ_INT(s.error, 0);
    ASSERT(wait_calls > 0);
    ASSERT_EQ_INT(io_enters, 1);
    ASSERT_EQ_INT(io_depth, 0);
    ASSERT_EQ_INT(waits_outside_io, 0);
    /* A failed sink makes no system call, so it does not enter either. */
    s.error = -EPIPE;
    ASSERT_EQ_INT(gc__sink_write(&s, "x", 1), -EPIPE);
    ASSERT_EQ_INT(io_enters, 1);
    close(fds[0]);
    wait_child_ok(pid);
    free(data);
}

/* sendfile(2) through the socket transport; with `copied`, through a transport that has
 * no sendfile (as a TLS session will), so the sink reads the file and writes. */
static void sendfile_case(int copied)
{
    enum { SIZE = 300000 };
    char *data = malloc(SIZE);
    ASSERT(data != NULL);
    fill_pattern(data, SIZE);
    FILE *f = tmpfile();
    ASSERT(f != NULL);
    /* Pad the front so the send starts at an offset. */
    ASSERT_EQ_INT(fwrite("skip", 1, 4, f), 4);
    ASSERT_EQ_INT(fwrite(data, 1, SIZE, f), SIZE);
    ASSERT_OK(fflush(f));

    int fds[2];
    make_pair(fds);
    pid_t pid = slow_reader(fds, SIZE);
    close(fds[1]);
    gc__sink_t s;
    gc__transport_t tr;
    gc__transport_socket(&tr, fds[0]);
    gc__transport_ops_t no_sendfile = *tr.ops;
    no_sendfile.sendfile = NULL;
    if (copied)
        tr.ops = &no_sendfile;
    gc__sink_init(&s, &tr, 10000);
    ASSERT_OK(gc__sink_sendfile(&s, fileno(f), 4, SIZE));
    ASSERT_EQ_INT(s.written, SIZE);
    close(fds[0]);
    wait_child_ok(pid);
    fclose(f);
    free(data);
}

static void test_sink_sendfile(void)
{
    sendfile_case(0);
}

static void test_sink_sendfile_copied(void)
{
    sendfile_case(1);
}

static void test_sink_timeout(void)
{
    int fds[2];
    make_pair(fds);
    gc__sink_t s;
    gc__transport_t tr;
    gc__transport_socket(&tr, fds[0]);
    gc__sink_init(&s, &tr, 50);
    /* Nobody reads fds[1]: the buffer fills and the wait times out. */
    size_t n = 4 << 20;
    char *data = calloc(1, n);
    ASSERT(data != NULL);
    ASSERT_EQ_INT(gc__sink_write(&s, data, n), -ETIMEDOUT);
    ASSERT_EQ_INT(s.error, -ETIMEDOUT);
    ASSERT(s.written > 0);
    ASSERT(s.written < n);
    ASSERT(gc__sink_is_disconnect(s.error));
    /* The sink stays failed. */
    uint64_t before = s.written;
    ASSERT_EQ_INT(gc__sink_write(&s, "x", 1), -ETIMEDOUT);
    ASSERT_EQ_INT(s.written, before);
    free(data);
    close(fds[0]);
    close(fds[1]);
}

static void test_sink_epipe(void)
{
    int fds[2];
    make_pair(fds);
    close(fds[1]);
    gc__sink_t s;
    gc__transport_t tr;
    gc__transport_socket(&tr, fds[0]);
    gc__sink_init(&s, &tr, 1000);
    ASSERT_EQ_INT(gc__sink_write(&s, "hello", 5), -EPIPE);
    ASSERT_EQ_INT(s.error, -EPIPE);
    ASSERT_EQ_INT(s.written, 0);
    ASSERT(gc__sink_is_disconnect(s.error));
    /* Later writes and sendfile report the first failure without touching the socket. */
    struct iovec iov = {"again", 5};
    ASSERT_EQ_INT(gc__sink_writev(&s, &iov, 1), -EPIPE);
    ASSERT_EQ_INT(gc__sink_sendfile(&s, 0, 0, 10), -EPIPE);
    close(fds[0]);

    /* The peer going away in the middle of a big write. */
    make_pair(fds);
    pid_t pid = fork();
    ASSERT(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        char buf[1000];
        ssize_t r = read(fds[1], buf, sizeof(buf));
        _exit(r > 0 ? 0 : 1);
    }
    close(fds[1]);
    size_t n = 8 << 20;
    char *data = calloc(1, n);
    ASSERT(data != NULL);
    gc__transport_socket(&tr, fds[0]);
    gc__sink_init(&s, &tr, 5000);
    int rc = gc__sink_write(&s, data, n);
    ASSERT(rc == -EPIPE || rc == -ECONNRESET);
    ASSERT(gc__sink_is_disconnect(rc));
    ASSERT(s.written < n);
    wait_child_ok(pid);
    free(data);
    close(fds[0]);
}

static void test_sink_is_disconnect(void)
{
    ASSERT(gc__sink_is_disconnect(-EPIPE));
    ASSERT(gc__sink_is_disconnect(-ECONNRESET));
    ASSERT(gc__sink_is_disconnect(-ETIMEDOUT));
    ASSERT(gc__sink_is_disconnect(-ENOTCONN));
    ASSERT(!gc__sink_is_disconnect(0));
    ASSERT(!gc__sink_is_disconnect(-ENOMEM));
    ASSERT(!gc__sink_is_disconnect(-EBADF));
    ASSERT(!gc__sink_is_disconnect(EPIPE));
}

/* A child that waits `delay_ms`, then reads `total` pattern bytes (pausing between
 * reads when `slow`) and the end of the stream. Exits 0 when all matched. */
static pid_t reader(const int fds[2], size_t total, int delay_ms, int slow)
{
    pid_t pid = fork();
    ASSERT(pid >= 0);
    if (pid > 0)
        return pid;
    close(fds[0]);
    alarm(30);
    usleep((useconds_t)delay_ms * 1000);
    char buf[1500];
    size_t off = 0;
    while (off < total) {
        ssize_t r = read(fds[1], buf, sizeof(buf));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            _exit(2);
        for (ssize_t i = 0; i < r; i++)
            if (buf[i] != pattern_at(off + (size_t)i))
                _exit(1);
        off += (size_t)r;
        if (slow)
            usleep(50);
    }
    char extra;
    _exit(read(fds[1], &extra, 1) == 0 ? 0 : 3);
}

/* Sends what the sink spilled, blocking, as the worker's loop would. */
static void send_spill(gc__sink_t *s, int fd)
{
    gc__buf_t rest;
    size_t n = gc__sink_take_spill(s, &rest);
    ASSERT_EQ_INT(s->spill.len, 0);
    int fl = fcntl(fd, F_GETFL);
    ASSERT_OK(fcntl(fd, F_SETFL, fl & ~O_NONBLOCK));
    size_t off = 0;
    while (off < n) {
        ssize_t w = write(fd, rest.data + off, n - off);
        ASSERT(w > 0);
        off += (size_t)w;
    }
    gc__buf_free(&rest);
}

static char *pattern(size_t n)
{
    char *p = malloc(n);
    ASSERT(p != NULL);
    for (size_t i = 0; i < n; i++)
        p[i] = pattern_at(i);
    return p;
}

static void test_spill_instead_of_waiting(void)
{
    /* Nobody reads until the writer is done: 300 KB in uneven writes all return at
     * once; the kernel holds a little, the spill the rest, in order. */
    enum { TOTAL = 300000 };
    char *data = pattern(TOTAL);
    int fds[2];
    make_pair(fds);
    pid_t pid = reader(fds, TOTAL, 300, 0);
    close(fds[1]);
    gc__sink_t s;
    gc__transport_t tr;
    gc__transport_socket(&tr, fds[0]);
    gc__sink_init(&s, &tr, 5000);
    s.wait = counting_wait;
    s.spill_max = 1 << 20;
    wait_calls = 0;
    size_t off = 0, step = 1;
    while (off < TOTAL) {
        size_t n = TOTAL - off < step ? TOTAL - off : step;
        ASSERT_OK(gc__sink_write(&s, data + off, n));
        off += n;
        step = step * 3 + 7;
    }
    ASSERT_EQ_INT(wait_calls, 0);
    ASSERT_EQ_INT(s.written, TOTAL);
    ASSERT(s.spill.len - s.spill_off > 0);
    ASSERT(s.spill.len <= s.spill_max);
    send_spill(&s, fds[0]);
    gc__sink_free(&s);
    close(fds[0]);
    wait_child_ok(pid);
    free(data);
}

static void test_spill_is_bounded(void)
{
    /* 3 MB through a 64 KiB spill to a slow reader: the sink waits whenever the spill
     * would pass its bound, and ends with no more than the bound kept. */
    enum { TOTAL = 3000000, PIECE = 40000 };
    char *data = pattern(TOTAL);
    int fds[2];
    make_pair(fds);
    pid_t pid = reader(fds, TOTAL, 50, 1);
    close(fds[1]);
    gc__sink_t s;
    gc__transport_t tr;
    gc__transport_socket(&tr, fds[0]);
    gc__sink_init(&s, &tr, 10000);
    s.wait = counting_wait;
    s.spill_max = 64 * 1024;
    wait_calls = 0;
    for (size_t off = 0; off < TOTAL; off += PIECE) {
        struct iovec iov[2] = {
            {data + off, PIECE / 2},
            {data + off + PIECE / 2, TOTAL - off < PIECE ? TOTAL - off - PIECE / 2 : PIECE / 2},
        };
        ASSERT_OK(gc__sink_writev(&s, iov, 2));
        ASSERT(s.spill.len - s.spill_off <= s.spill_max);
        ASSERT(s.spill.cap <= 2 * s.spill_max);
    }
    ASSERT(wait_calls > 0);
    ASSERT_EQ_INT(s.written, TOTAL);
    send_spill(&s, fds[0]);
    gc__sink_free(&s);
    close(fds[0]);
    wait_child_ok(pid);
    free(data);
}

static void test_spill_sendfile(void)
{
    /* A file whose tail does not fit in the socket is read into the spill, and a write
     * after it queues behind. */
    enum { FILE_SIZE = 200000, TAIL = 5000 };
    char *data = pattern(FILE_SIZE + TAIL);
    FILE *f = tmpfile();
    ASSERT(f != NULL);
    ASSERT_EQ_INT(fwrite("pad", 1, 3, f), 3);
    ASSERT_EQ_INT(fwrite(data, 1, FILE_SIZE, f), FILE_SIZE);
    ASSERT_OK(fflush(f));
    int fds[2];
    make_pair(fds);
    pid_t pid = reader(fds, FILE_SIZE + TAIL, 300, 0);
    close(fds[1]);
    gc__sink_t s;
    gc__transport_t tr;
    gc__transport_socket(&tr, fds[0]);
    gc__sink_init(&s, &tr, 5000);
    s.wait = counting_wait;
    s.spill_max = 512 * 1024;
    wait_calls = 0;
    ASSERT_OK(gc__sink_sendfile(&s, fileno(f), 3, FILE_SIZE));
    ASSERT_OK(gc__sink_write(&s, data + FILE_SIZE, TAIL));
    ASSERT_EQ_INT(wait_calls, 0);
    ASSERT_EQ_INT(s.written, FILE_SIZE + TAIL);
    send_spill(&s, fds[0]);
    gc__sink_free(&s);
    close(fds[0]);
    fclose(f);
    wait_child_ok(pid);
    free(data);
}

static void test_no_spill_by_default(void)
{
    /* spill_max 0: the sink waits, and a reader that never comes times it out. */
    int fds[2];
    make_pair(fds);
    gc__sink_t s;
    gc__transport_t tr;
    gc__transport_socket(&tr, fds[0]);
    gc__sink_init(&s, &tr, 100);
    char block[65536];
    memset(block, 'x', sizeof(block));
    int rc = 0;
    for (int i = 0; i < 64 && rc == 0; i++)
        rc = gc__sink_write(&s, block, sizeof(block));
    ASSERT_EQ_INT(rc, -ETIMEDOUT);
    ASSERT_EQ_INT(s.spill.len, 0);
    ASSERT(gc__sink_is_disconnect(rc));
    gc__sink_free(&s);
    close(fds[0]);
    close(fds[1]);
}

int main(int argc, char **argv)
{
    unit_init(argc, argv);
    /* As in the workers: a write to a closed socket fails with EPIPE, not a signal. */
    signal(SIGPIPE, SIG_IGN);
    /* A sink bug tends to hang rather than fail: let the alarm turn that into a failure. */
    alarm(120);
    RUN(test_sink_writev);
    RUN(test_sink_partial_writes);
    RUN(test_sink_sendfile);
    RUN(test_sink_sendfile_copied);
    RUN(test_sink_timeout);
    RUN(test_sink_epipe);
    RUN(test_sink_is_disconnect);
    RUN(test_spill_instead_of_waiting);
    RUN(test_spill_is_bounded);
    RUN(test_spill_sendfile);
    RUN(test_no_spill_by_default);
    return unit_done();
}
