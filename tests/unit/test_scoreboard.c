/* test_scoreboard.c: the shared-memory worker table (src/proc/scoreboard.c).
 *
 * The arbiter claims and releases slots; a worker publishes its heartbeat and the
 * request it runs; the arbiter reads a slot's method and path through a seqlock while
 * the worker may be rewriting them. The torn-read test runs a writer thread that
 * rewrites one slot as fast as it can while this thread reads it, and checks that every
 * copy read is one the writer published whole, never half of one and half of the next.
 * The fork test checks that a slot written in a child is seen by the parent. */
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "proc/scoreboard.h"
#include "unit.h"

static void request_begin(gc__slot_t *s, const char *method, const char *path, uint64_t now)
{
    gc__slot_request_begin(s, method, strlen(method), path, strlen(path), now);
}

static int bell_rang(int bell)
{
    struct pollfd p = {.fd = bell, .events = POLLIN};
    return poll(&p, 1, 0) == 1 && (p.revents & POLLIN);
}

static void test_claim_and_release(void)
{
    gc__scoreboard_t sb;
    ASSERT_OK(gc__scoreboard_init(&sb, 3));
    ASSERT_EQ_INT(sb.nslots, 3);
    for (size_t i = 0; i < sb.nslots; i++)
        ASSERT_EQ_INT(atomic_load(&sb.slots[i].state), GC_SLOT_FREE);
    ASSERT_EQ_INT(gc__scoreboard_claim(&sb, 101, 1000), 0);
    ASSERT_EQ_INT(gc__scoreboard_claim(&sb, 102, 1001), 1);
    ASSERT_EQ_INT(gc__scoreboard_claim(&sb, 103, 1002), 2);
    ASSERT_EQ_INT(gc__scoreboard_claim(&sb, 104, 1003), -1); /* full */
    gc__slot_t *s = &sb.slots[1];
    ASSERT_EQ_INT(atomic_load(&s->pid), 102);
    ASSERT_EQ_INT(atomic_load(&s->state), GC_SLOT_BOOTING);
    ASSERT_EQ_INT(atomic_load(&s->beat_ms), 1001);

    /* A released slot is claimed again with its counters back to zero. */
    request_begin(s, "GET", "/", 1100);
    gc__slot_request_end(s, 1101);
    atomic_store(&s->conns, 7);
    gc__scoreboard_release(&sb, 1);
    ASSERT_EQ_INT(atomic_load(&s->state), GC_SLOT_FREE);
    ASSERT_EQ_INT(atomic_load(&s->pid), 0);
    gc__scoreboard_release(&sb, -1); /* out of range: ignored */
    gc__scoreboard_release(&sb, 3);
    ASSERT_EQ_INT(gc__scoreboard_claim(&sb, 105, 2000), 1);
    ASSERT_EQ_INT(atomic_load(&s->pid), 105);
    ASSERT_EQ_INT(atomic_load(&s->requests), 0);
    ASSERT_EQ_INT(atomic_load(&s->conns), 0);
    ASSERT_EQ_INT(atomic_load(&s->beat_ms), 2000);
    gc__scoreboard_free(&sb);
    ASSERT(sb.slots == NULL);
    ASSERT_EQ_INT(sb.bell, -1);
}

static void test_publish_and_read(void)
{
    gc__scoreboard_t sb;
    ASSERT_OK(gc__scoreboard_init(&sb, 1));
    ASSERT_EQ_INT(gc__scoreboard_claim(&sb, 42, 10), 0);
    gc__slot_t *s = &sb.slots[0];
    atomic_store(&s->state, GC_SLOT_IDLE);
    char method[16], path[240];
    uint64_t started = 99;
    ASSERT_EQ_INT(gc__slot_read_request(s, method, sizeof(method), path, sizeof(path), &started),
                  0); /* idle */

    gc__slot_beat(s, 20);
    ASSERT_EQ_INT(atomic_load(&s->beat_ms), 20);
    request_begin(s, "POST", "/upload?x=1", 30);
    ASSERT_EQ_INT(atomic_load(&s->state), GC_SLOT_BUSY);
    ASSERT_EQ_INT(atomic_load(&s->inflight), 1);
    ASSERT_EQ_INT(atomic_load(&s->beat_ms), 30);
    ASSERT_EQ_INT(gc__slot_read_request(s, method, sizeof(method), path, sizeof(path), &started),
                  1);
    ASSERT_EQ_STR(method, "POST");
    ASSERT_EQ_STR(path, "/upload?x=1");
    ASSERT_EQ_INT(started, 30);

    /* Smaller buffers on the reading side cut the copies, NUL-terminated. */
    char m2[3], p2[5];
    ASSERT_EQ_INT(gc__slot_read_request(s, m2, sizeof(m2), p2, sizeof(p2), &started), 1);
    ASSERT_EQ_STR(m2, "PO");
    ASSERT_EQ_STR(p2, "/upl");

    gc__slot_request_end(s, 40);
    ASSERT_EQ_INT(atomic_load(&s->state), GC_SLOT_IDLE);
    ASSERT_EQ_INT(atomic_load(&s->inflight), 0);
    ASSERT_EQ_INT(atomic_load(&s->requests), 1);
    ASSERT_EQ_INT(atomic_load(&s->beat_ms), 40);
    ASSERT_EQ_INT(gc__slot_read_request(s, method, sizeof(method), path, sizeof(path), &started),
                  0);

    /* A method and a path longer than the slot's fields are cut to fit. */
    char long_method[40], long_path[400];
    memset(long_method, 'M', sizeof(long_method) - 1);
    long_method[sizeof(long_method) - 1] = '\0';
    memset(long_path, 'p', sizeof(long_path) - 1);
    long_path[sizeof(long_path) - 1] = '\0';
    request_begin(s, long_method, long_path, 50);
    ASSERT_EQ_INT(gc__slot_read_request(s, method, sizeof(method), path, sizeof(path), &started),
                  1);
    ASSERT_EQ_INT(strlen(method), sizeof(s->method) - 1);
    ASSERT_EQ_INT(strlen(path), sizeof(s->path) - 1);
    ASSERT_EQ_MEM(path, strlen(path), long_path, sizeof(s->path) - 1);
    gc__slot_request_end(s, 60);
    gc__scoreboard_free(&sb);
}

/* gthread and gevent run several requests at once: the slot stays busy, showing the
 * latest, until the last ends; a retiring worker stays retiring throughout. */
static void test_requests_at_once_and_retiring(void)
{
    gc__scoreboard_t sb;
    ASSERT_OK(gc__scoreboard_init(&sb, 1));
    ASSERT_EQ_INT(gc__scoreboard_claim(&sb, 7, 0), 0);
    gc__slot_t *s = &sb.slots[0];
    char method[16], path[240];
    uint64_t started;
    request_begin(s, "GET", "/a", 100);
    request_begin(s, "GET", "/b", 200);
    ASSERT_EQ_INT(atomic_load(&s->inflight), 2);
    gc__slot_request_end(s, 300);
    ASSERT_EQ_INT(atomic_load(&s->state), GC_SLOT_BUSY);
    ASSERT_EQ_INT(atomic_load(&s->requests), 1);
    ASSERT_EQ_INT(gc__slot_read_request(s, method, sizeof(method), path, sizeof(path), &started),
                  1);
    ASSERT_EQ_STR(path, "/b");
    gc__slot_request_end(s, 400);
    ASSERT_EQ_INT(atomic_load(&s->state), GC_SLOT_IDLE);
    ASSERT_EQ_INT(atomic_load(&s->requests), 2);
    gc__slot_request_end(s, 500); /* one end too many never wraps the count below 0 */
    ASSERT_EQ_INT(atomic_load(&s->inflight), 0);

    atomic_store(&s->state, GC_SLOT_RETIRING);
    request_begin(s, "GET", "/c", 600);
    ASSERT_EQ_INT(atomic_load(&s->state), GC_SLOT_RETIRING);
    gc__slot_request_end(s, 700);
    ASSERT_EQ_INT(atomic_load(&s->state), GC_SLOT_RETIRING);
    gc__scoreboard_free(&sb);
}

static void test_bell(void)
{
    gc__scoreboard_t sb;
    ASSERT_OK(gc__scoreboard_init(&sb, 1));
    ASSERT(sb.bell >= 0);
    ASSERT(!bell_rang(sb.bell));
    gc__scoreboard_ring(sb.bell);
    gc__scoreboard_ring(sb.bell);
    ASSERT(bell_rang(sb.bell));
    gc__scoreboard_drain(sb.bell); /* one drain resets however many rings */
    ASSERT(!bell_rang(sb.bell));
    gc__scoreboard_drain(sb.bell); /* nothing to drain: no block, no error */
    gc__scoreboard_ring(-1);       /* no bell: nothing happens */
    gc__scoreboard_drain(-1);
    gc__scoreboard_free(&sb);
}

/* The slot a worker writes after fork is the arbiter's: one MAP_SHARED mapping. */
static void test_slots_are_shared_across_fork(void)
{
    gc__scoreboard_t sb;
    ASSERT_OK(gc__scoreboard_init(&sb, 2));
    pid_t pid = fork();
    ASSERT(pid >= 0);
    if (pid == 0) {
        gc__slot_t *s = &sb.slots[1];
        gc__slot_beat(s, 77);
        request_begin(s, "PUT", "/from-the-child", 78);
        gc__scoreboard_ring(sb.bell);
        _exit(0);
    }
    int status = 0;
    ASSERT_EQ_INT(waitpid(pid, &status, 0), pid);
    ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    ASSERT(bell_rang(sb.bell));
    char method[16], path[240];
    uint64_t started = 0;
    ASSERT_EQ_INT(
        gc__slot_read_request(&sb.slots[1], method, sizeof(method), path, sizeof(path), &started),
        1);
    ASSERT_EQ_STR(method, "PUT");
    ASSERT_EQ_STR(path, "/from-the-child");
    ASSERT_EQ_INT(started, 78);
    gc__scoreboard_free(&sb);
}

/* --- the seqlock under a concurrent writer --------------------------------------- */

/* What the writer publishes as its k-th request (k >= 1): a method and a path of
 * lengths and letters that vary with k, the path naming k, so that a copy made of two
 * publications can be told from each. The lengths run past both fields' sizes, so
 * cut copies are checked too. */
static void publication(uint64_t k, char *method, size_t mcap, char *path, size_t pcap)
{
    char letter = (char)('A' + k % 26);
    size_t mlen = 1 + k % 20, plen = k % 300;
    if (mlen >= mcap)
        mlen = mcap - 1;
    memset(method, letter, mlen);
    method[mlen] = '\0';
    int n = snprintf(path, pcap, "/%llu/", (unsigned long long)k);
    size_t at = (size_t)n;
    for (size_t i = 0; i < plen && at + 1 < pcap; i++)
        path[at++] = (char)(letter + 32); /* lower case */
    path[at] = '\0';
}

struct writer {
    gc__slot_t *slot;
    atomic_int stop;
    atomic_uint_fast64_t published; /* the last k whose begin returned */
};

static void *writer_main(void *arg)
{
    struct writer *w = arg;
    char method[64], path[512];
    for (uint64_t k = 1; !atomic_load(&w->stop); k++) {
        publication(k, method, sizeof(method), path, sizeof(path));
        /* The start time is k: never 0 (which means "not running"), and it tells the
         * reader which publication the time came from. */
        request_begin(w->slot, method, path, k);
        atomic_store(&w->published, k);
    }
    return NULL;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void test_reader_never_sees_a_torn_slot(void)
{
    gc__scoreboard_t sb;
    ASSERT_OK(gc__scoreboard_init(&sb, 1));
    ASSERT_EQ_INT(gc__scoreboard_claim(&sb, 1, 0), 0);
    struct writer w = {.slot = &sb.slots[0]};
    atomic_init(&w.stop, 0);
    atomic_init(&w.published, 0);
    pthread_t t;
    ASSERT_OK(pthread_create(&t, NULL, writer_main, &w));

    /* Reads until enough of them have succeeded while the writer was running, or the
     * time is up (a slow or busy machine). */
    uint64_t reads = 0, good = 0, last_k = 0;
    double deadline = now_s() + 5.0;
    while ((good < 20000 || reads < 200000) && now_s() < deadline) {
        char method[16], path[240], want_method[16], want_path[240];
        uint64_t started = 0;
        reads++;
        uint64_t before = atomic_load(&w.published);
        if (!gc__slot_read_request(&sb.slots[0], method, sizeof(method), path, sizeof(path),
                                   &started))
            continue; /* nothing yet, or a hundred tries overlapped writes: allowed */
        unsigned long long k = 0;
        ASSERT_EQ_INT(sscanf(path, "/%llu/", &k), 1);
        publication(k, want_method, sizeof(want_method), want_path, sizeof(want_path));
        ASSERT_EQ_STR(method, want_method);
        ASSERT_EQ_STR(path, want_path);
        /* The copy is never older than what was published before the read began, and
         * publications come in order. */
        ASSERT(k >= before);
        ASSERT(k >= last_k);
        /* The start time is written inside the seqlock too: it is request k's. (It
         * was stored after the lock once, and a reader could pair request k with the
         * start of request k - 1.) */
        ASSERT_EQ_INT(started, k);
        last_k = k;
        good++;
    }
    atomic_store(&w.stop, 1);
    ASSERT_OK(pthread_join(t, NULL));
    printf("(%llu of %llu reads, %llu writes) ", (unsigned long long)good,
           (unsigned long long)reads, (unsigned long long)atomic_load(&w.published));
    /* The two really ran side by side: the reads saw many different publications. */
    ASSERT(good > 1000);
    ASSERT(last_k > 1000);
    gc__scoreboard_free(&sb);
}

int main(int argc, char **argv)
{
    unit_init(argc, argv);
    RUN(test_claim_and_release);
    RUN(test_publish_and_read);
    RUN(test_requests_at_once_and_retiring);
    RUN(test_bell);
    RUN(test_slots_are_shared_across_fork);
    RUN(test_reader_never_sees_a_torn_slot);
    return unit_done();
}
