/* test_sink.c: the sink's spill (src/http/sink.c): what a slow reader's socket does not
 * take is kept, in order and within spill_max, instead of waited for.
 *
 * Each test writes a known byte pattern into one end of a socketpair with a small send
 * buffer; a forked child reads the other end (late, slowly, or not until the parent
 * has finished) and checks every byte, so a lost, repeated or reordered piece fails the
 * child. The parent then sends what was spilled itself, as the worker's loop would. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "http/sink.h"
#include "unit.h"

static char pattern_at(size_t i)
{
    return (char)(i * 31 + i / 4093);
}

static void make_pair(int fds[2])
{
    ASSERT_OK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds));
    int fl = fcntl(fds[0], F_GETFL);
    ASSERT(fl >= 0);
    ASSERT_OK(fcntl(fds[0], F_SETFL, fl | O_NONBLOCK));
    int small = 4096;
    ASSERT_OK(setsockopt(fds[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small)));
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

static void wait_child_ok(pid_t pid)
{
    int status;
    while (waitpid(pid, &status, 0) < 0)
        ASSERT_EQ_INT(errno, EINTR);
    ASSERT(WIFEXITED(status));
    ASSERT_EQ_INT(WEXITSTATUS(status), 0);
}

static int wait_calls;

static int counting_wait(gc__sink_t *s, int fd, int timeout_ms)
{
    wait_calls++;
    return gc__sink_poll_wait(s, fd, timeout_ms);
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
    gc__sink_init(&s, fds[0], 5000);
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
    gc__sink_init(&s, fds[0], 10000);
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
    gc__sink_init(&s, fds[0], 5000);
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
    gc__sink_init(&s, fds[0], 100);
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
    signal(SIGPIPE, SIG_IGN);
    RUN(test_spill_instead_of_waiting);
    RUN(test_spill_is_bounded);
    RUN(test_spill_sendfile);
    RUN(test_no_spill_by_default);
    return unit_done();
}
