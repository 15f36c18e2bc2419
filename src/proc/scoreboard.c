/* scoreboard.c: shared-memory worker table (see scoreboard.h). */
#include "proc/scoreboard.h"

#include <errno.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

const uint64_t gc__count_bounds_us[GC_COUNT_BUCKETS - 1] = {
    1000,   2500,   5000,    10000,   25000,   50000,   100000,
    250000, 500000, 1000000, 2500000, 5000000, 10000000};
const char *const gc__count_methods[GC_COUNT_METHODS] = {"GET",    "HEAD",  "POST",    "PUT",
                                                         "DELETE", "PATCH", "OPTIONS", "other"};

int gc__scoreboard_init(gc__scoreboard_t *sb, size_t n)
{
    sb->bell = -1;
    void *p = mmap(NULL, n * sizeof(gc__slot_t), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                   -1, 0);
    if (p == MAP_FAILED)
        return -errno;
    sb->slots = p; /* mmap gives zeroed pages: every slot starts GC_SLOT_FREE */
    sb->nslots = n;
    /* Workers keep it across fork; close-on-exec keeps it from a USR2 re-exec. Without
     * it (-1) everything still works, a tick later. */
    sb->bell = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    return 0;
}

void gc__scoreboard_free(gc__scoreboard_t *sb)
{
    if (sb->slots != NULL)
        munmap(sb->slots, sb->nslots * sizeof(gc__slot_t));
    sb->slots = NULL;
    sb->nslots = 0;
    if (sb->bell >= 0)
        close(sb->bell);
    sb->bell = -1;
}

void gc__scoreboard_ring(int bell)
{
    uint64_t one = 1;
    if (bell >= 0 && write(bell, &one, sizeof(one)) < 0) {
        /* EAGAIN: the counter is full, so the arbiter is about to wake anyway. */
    }
}

void gc__scoreboard_drain(int bell)
{
    uint64_t count;
    if (bell >= 0 && read(bell, &count, sizeof(count)) < 0) {
        /* EAGAIN: a spurious wake-up; nothing to reset. */
    }
}

int gc__scoreboard_claim(gc__scoreboard_t *sb, pid_t pid, uint64_t now_ms)
{
    for (size_t i = 0; i < sb->nslots; i++) {
        gc__slot_t *s = &sb->slots[i];
        if (atomic_load(&s->state) != GC_SLOT_FREE)
            continue;
        atomic_store(&s->beat_ms, now_ms);
        atomic_store(&s->requests, 0);
        atomic_store(&s->started_ms, 0);
        atomic_store(&s->inflight, 0);
        atomic_store(&s->conns, 0);
        atomic_store(&s->accepting, 0);
        /* Only the arbiter writes a free slot; the worker that used it is gone. */
        memset(&s->counts, 0, sizeof(s->counts));
        atomic_store(&s->pid, (int32_t)pid);
        atomic_store(&s->state, GC_SLOT_BOOTING);
        return (int)i;
    }
    return -1;
}

void gc__scoreboard_release(gc__scoreboard_t *sb, int slot)
{
    if (slot < 0 || (size_t)slot >= sb->nslots)
        return;
    atomic_store(&sb->slots[slot].pid, 0);
    atomic_store(&sb->slots[slot].state, GC_SLOT_FREE);
}

void gc__slot_beat(gc__slot_t *s, uint64_t now_ms)
{
    atomic_store_explicit(&s->beat_ms, now_ms, memory_order_relaxed);
}

static void copy_field(char *dst, size_t cap, const char *src, size_t len)
{
    if (len >= cap)
        len = cap - 1;
    memcpy(dst, src, len);
    dst[len] = '\0';
}

void gc__slot_request_begin(gc__slot_t *s, const char *method, size_t mlen, const char *path,
                            size_t plen, uint64_t now_ms)
{
    /* A seqlock: the arbiter retries a read that overlapped this write. */
    atomic_fetch_add_explicit(&s->seq, 1, memory_order_acq_rel);
    copy_field(s->method, sizeof(s->method), method, mlen);
    copy_field(s->path, sizeof(s->path), path, plen);
    /* Inside the lock, so that a reader never pairs this path with the previous
     * request's start. */
    atomic_store_explicit(&s->started_ms, now_ms, memory_order_relaxed);
    atomic_fetch_add_explicit(&s->seq, 1, memory_order_acq_rel);
    atomic_store_explicit(&s->beat_ms, now_ms, memory_order_relaxed);
    atomic_fetch_add_explicit(&s->inflight, 1, memory_order_relaxed);
    uint32_t st = atomic_load_explicit(&s->state, memory_order_relaxed);
    if (st != GC_SLOT_RETIRING)
        atomic_store_explicit(&s->state, GC_SLOT_BUSY, memory_order_relaxed);
}

void gc__slot_request_end(gc__slot_t *s, uint64_t now_ms)
{
    /* With several requests at once (gthread, gevent) the slot stays busy, showing
     * the latest one, until the last ends. */
    uint32_t running = atomic_load_explicit(&s->inflight, memory_order_relaxed);
    if (running > 0)
        atomic_store_explicit(&s->inflight, --running, memory_order_relaxed);
    atomic_fetch_add_explicit(&s->requests, 1, memory_order_relaxed);
    atomic_store_explicit(&s->beat_ms, now_ms, memory_order_relaxed);
    if (running > 0)
        return;
    atomic_store_explicit(&s->started_ms, 0, memory_order_release);
    uint32_t st = atomic_load_explicit(&s->state, memory_order_relaxed);
    if (st != GC_SLOT_RETIRING)
        atomic_store_explicit(&s->state, GC_SLOT_IDLE, memory_order_relaxed);
}

int gc__count_method_index(const char *m, size_t n)
{
    /* By length first: at most two comparisons on the request path. */
    static const signed char by_len[8][2] = {{-1, -1}, {-1, -1}, {-1, -1}, {0, 3},
                                             {1, 2},   {5, -1},  {4, -1},  {6, -1}};
    for (int k = 0; n < 8 && k < 2 && by_len[n][k] >= 0; k++)
        if (memcmp(gc__count_methods[by_len[n][k]], m, n) == 0)
            return by_len[n][k];
    return GC_COUNT_METHODS - 1;
}

void gc__slot_count(gc__slot_t *s, gc__view_t method, int status, uint64_t duration_us)
{
    gc__slot_counts_t *c = &s->counts;
    int cls = status >= 100 && status < 600 ? status / 100 : 0;
    int b = 0;
    while (b < GC_COUNT_BUCKETS - 1 && duration_us > gc__count_bounds_us[b])
        b++;
    /* Relaxed: each is a counter on its own; the arbiter needs no order between them. */
    atomic_fetch_add_explicit(&c->status[cls], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&c->method[gc__count_method_index(method.base, method.len)], 1,
                              memory_order_relaxed);
    atomic_fetch_add_explicit(&c->bucket[b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&c->duration_us, duration_us, memory_order_relaxed);
}

void gc__counts_fold(gc__counts_t *into, const gc__slot_t *s)
{
    const gc__slot_counts_t *c = &s->counts;
    for (int i = 0; i < GC_COUNT_STATUS; i++)
        into->status[i] += atomic_load_explicit(&c->status[i], memory_order_relaxed);
    for (int i = 0; i < GC_COUNT_METHODS; i++)
        into->method[i] += atomic_load_explicit(&c->method[i], memory_order_relaxed);
    for (int i = 0; i < GC_COUNT_BUCKETS; i++)
        into->bucket[i] += atomic_load_explicit(&c->bucket[i], memory_order_relaxed);
    into->duration_us += atomic_load_explicit(&c->duration_us, memory_order_relaxed);
}

int gc__slot_read_request(const gc__slot_t *s, char *method, size_t mcap, char *path, size_t pcap,
                          uint64_t *started_ms)
{
    for (int attempt = 0; attempt < 100; attempt++) {
        uint32_t before = atomic_load_explicit(&s->seq, memory_order_acquire);
        if (before & 1)
            continue;
        uint64_t started = atomic_load_explicit(&s->started_ms, memory_order_relaxed);
        copy_field(method, mcap, s->method, strnlen(s->method, sizeof(s->method)));
        copy_field(path, pcap, s->path, strnlen(s->path, sizeof(s->path)));
        /* The copies above must be done before seq is read again. */
        atomic_thread_fence(memory_order_acquire);
        if (atomic_load_explicit(&s->seq, memory_order_relaxed) != before)
            continue;
        *started_ms = started;
        return started != 0;
    }
    return 0;
}
