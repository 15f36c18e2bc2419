/* scoreboard.h: the shared-memory table of workers (heartbeats and current requests).
 *
 * One MAP_SHARED anonymous mapping, made by the arbiter before the first fork, holds a
 * slot per worker. A worker writes only its own slot, with relaxed atomic stores and no
 * system call: a heartbeat is one store of the loop's cached clock. The arbiter reads
 * every slot once a second to find workers that stopped beating, and can say what each
 * was doing: Gunicorn's heartbeat is a temp file touched with utime(2), which stalls on
 * slow disks and knows nothing about the request. */
#ifndef GC_PROC_SCOREBOARD_H
#define GC_PROC_SCOREBOARD_H

#include <stdatomic.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/buf.h"

/* --- request counters (the metrics endpoint, src/arbiter/metrics.c) ------------------
 *
 * Each worker counts its requests by status class, by method and by duration in its
 * own slot: a few relaxed atomic additions at a request's end, no lock and no system
 * call. The arbiter adds the counters of every live slot to the totals it folded in
 * from workers that have exited (gc__counts_fold), so nothing is lost to a rotation. */

/* Status classes: [0] no response began (the client left, the worker was stopped), then
 * 1xx to 5xx; anything outside 100..599 counts as [0]. */
#define GC_COUNT_STATUS 6
/* Methods: GET HEAD POST PUT DELETE PATCH OPTIONS, and [7] any other. */
#define GC_COUNT_METHODS 8
/* Duration buckets (not cumulative): one per bound of gc__count_bounds_us, and the
 * last for longer requests (+Inf). */
#define GC_COUNT_BUCKETS 14

/* The upper bounds (microseconds, inclusive) of the first GC_COUNT_BUCKETS - 1
 * buckets: 1 ms to 10 s. */
extern const uint64_t gc__count_bounds_us[GC_COUNT_BUCKETS - 1];
/* The method names, in counter order ("other" last). */
extern const char *const gc__count_methods[GC_COUNT_METHODS];

/* A worker's counters, in its slot. */
typedef struct {
    _Atomic uint64_t status[GC_COUNT_STATUS];
    _Atomic uint64_t method[GC_COUNT_METHODS];
    _Atomic uint64_t bucket[GC_COUNT_BUCKETS];
    _Atomic uint64_t duration_us; /* the sum */
} gc__slot_counts_t;

/* The same as plain numbers: a snapshot, or the arbiter's totals. */
typedef struct {
    uint64_t status[GC_COUNT_STATUS];
    uint64_t method[GC_COUNT_METHODS];
    uint64_t bucket[GC_COUNT_BUCKETS];
    uint64_t duration_us;
} gc__counts_t;

enum gc__slot_state {
    GC_SLOT_FREE = 0,
    GC_SLOT_BOOTING, /* forked, importing the application */
    GC_SLOT_IDLE,    /* booted, waiting for requests */
    GC_SLOT_BUSY,    /* running the application */
    GC_SLOT_RETIRING /* asked to be replaced (max_requests): still serving */
};

typedef struct {
    _Atomic int32_t pid;
    _Atomic uint32_t state;
    _Atomic uint64_t beat_ms;    /* monotonic milliseconds of the last heartbeat */
    _Atomic uint64_t requests;   /* requests served */
    _Atomic uint64_t started_ms; /* when the current request reached the application */
    _Atomic uint32_t seq;        /* odd while `method`/`path` are being rewritten */
    _Atomic uint32_t inflight;   /* requests running now (gthread and gevent: several) */
    _Atomic uint32_t conns;      /* open connections: siblings balance on it (accept.c) */
    _Atomic uint32_t accepting;  /* 1 while the worker watches the listening sockets */
    char method[16];
    char path[240];
    gc__slot_counts_t counts; /* requests by status class, method and duration */
} gc__slot_t;

typedef struct {
    gc__slot_t *slots; /* the shared mapping */
    size_t nslots;
    /* An eventfd (or -1) a worker rings when it has booted or wants to be replaced,
     * so that recycling does not wait for the arbiter's next tick: at a few hundred
     * requests a second, a second's delay lets a worker serve far past its limit. */
    int bell;
} gc__scoreboard_t;

/* Maps a table of n slots and makes the bell (-1 if it cannot). Returns 0 or a
 * negative errno. */
int gc__scoreboard_init(gc__scoreboard_t *sb, size_t n);
void gc__scoreboard_free(gc__scoreboard_t *sb);

/* Claims a free slot for pid (arbiter side). Returns its index or -1 when full. */
int gc__scoreboard_claim(gc__scoreboard_t *sb, pid_t pid, uint64_t now_ms);
void gc__scoreboard_release(gc__scoreboard_t *sb, int slot);

/* Worker side: wakes the arbiter. Never blocks; a failure only delays the arbiter
 * until its next tick. */
void gc__scoreboard_ring(int bell);
/* Arbiter side: resets the bell after it rang. */
void gc__scoreboard_drain(int bell);

/* Worker side: heartbeat, and the request now running (method/path views, copied and
 * truncated), or none. */
void gc__slot_beat(gc__slot_t *s, uint64_t now_ms);
void gc__slot_request_begin(gc__slot_t *s, const char *method, size_t mlen, const char *path,
                            size_t plen, uint64_t now_ms);
void gc__slot_request_end(gc__slot_t *s, uint64_t now_ms);

/* Worker side, at a request's end (any thread): counts it by status code (0: no
 * response began), method (the view is borrowed) and duration. */
void gc__slot_count(gc__slot_t *s, gc__view_t method, int status, uint64_t duration_us);
/* The counter index of a method (GC_COUNT_METHODS - 1 for any other). */
int gc__count_method_index(const char *method, size_t mlen);

/* Arbiter side: adds slot s's counters to *into (a live slot's snapshot, or the
 * totals when its worker has exited). */
void gc__counts_fold(gc__counts_t *into, const gc__slot_t *s);

/* Arbiter side: copies the current request's method and path consistently. Returns 1
 * when the worker is running a request (and fills the buffers), else 0. */
int gc__slot_read_request(const gc__slot_t *s, char *method, size_t mcap, char *path, size_t pcap,
                          uint64_t *started_ms);

#endif
