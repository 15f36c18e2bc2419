/* metrics.h: the Prometheus text exposition of the master's metrics endpoint.
 *
 * Pure C, no sockets and no Python: the arbiter fills a gc__metrics_snapshot_t from the
 * scoreboard, its own counters and /proc, and gc__metrics_write turns it into the text
 * format (version 0.0.4) that Prometheus scrapes, every name prefixed `gunicorn_c_`, each
 * family with its HELP and TYPE lines. The server that answers /metrics, /livez and
 * /readyz is src/arbiter/metrics.c; docs/metrics.md says what each metric means.
 * Unit-tested in tests/unit/test_metrics.c. */
#ifndef GC_PROC_METRICS_H
#define GC_PROC_METRICS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/buf.h"
#include "proc/scoreboard.h"

/* How a worker ended, as gunicorn_c_worker_exits_total{reason} counts it. */
enum gc__exit_reason {
    GC_EXIT_CLEAN = 0, /* exit status 0: a graceful stop, a rotation */
    GC_EXIT_ERROR,     /* another exit status (a boot failure, an application's exit) */
    GC_EXIT_SIGNAL,    /* a signal the master did not send as SIGKILL (the OOM killer...) */
    GC_EXIT_KILLED,    /* SIGKILL from the master (gc__kill_reason says why) */
    GC_EXIT__COUNT
};

/* Why the master sent SIGKILL, as gunicorn_c_worker_kills_total{reason} counts it. */
enum gc__kill_reason {
    GC_KILL_TIMEOUT = 0, /* missed heartbeats past --timeout, still stuck after SIGABRT */
    GC_KILL_GRACEFUL,    /* still running when --graceful-timeout expired */
    GC_KILL__COUNT
};

/* The counters the arbiter keeps itself. */
typedef struct {
    uint64_t boots; /* workers forked */
    uint64_t exits[GC_EXIT__COUNT];
    uint64_t timeouts; /* heartbeat timeouts (SIGABRT sent) */
    uint64_t kills[GC_KILL__COUNT];
} gc__metrics_master_t;

typedef struct {
    pid_t pid;
    uint32_t state;    /* enum gc__slot_state */
    uint64_t requests; /* served by this worker */
    int64_t rss_bytes; /* -1: unknown (the process is gone) */
} gc__metrics_worker_t;

typedef struct {
    const char *url; /* borrowed: "http://127.0.0.1:8000", "unix:/run/app.sock" */
    long queued;     /* connections waiting to be accepted; -1: not known */
    long limit;      /* the accept queue's limit; -1: not known */
} gc__metrics_listener_t;

/* Everything one scrape shows. Pointers are borrowed for the call. */
typedef struct {
    gc__counts_t requests; /* every worker's, exited ones included */
    uint64_t inflight;
    const gc__metrics_worker_t *workers;
    size_t nworkers;
    const gc__metrics_listener_t *listeners;
    size_t nlisteners;
    gc__metrics_master_t master;
    long target_workers;
    int ready; /* what /readyz answers: 1 (200) or 0 (503) */
    double uptime_seconds;
    const char *version;        /* gunicorn-c's */
    const char *python_version; /* the embedded CPython's, "3.13.5" */
} gc__metrics_snapshot_t;

/* Appends the exposition of s to out. Returns 0 or -ENOMEM. */
int gc__metrics_write(gc__buf_t *out, const gc__metrics_snapshot_t *s);

/* Appends v to out as a label value: backslash, double quote and newline escaped. */
void gc__metrics_label_value(gc__buf_t *out, const char *v);

/* The resident set size of pid in bytes, from /proc/PID/statm; -1 when it cannot be read. */
int64_t gc__metrics_rss(pid_t pid);

/* The accept queue of listening socket fd: its length and its limit (Linux reports both
 * for a listening TCP socket through TCP_INFO, as tcpi_unacked and tcpi_sacked). Returns
 * 0, or -ENOTSUP for any other socket (a unix socket: Linux has no such count short of
 * a sock_diag netlink query). */
int gc__metrics_listen_queue(int fd, long *queued, long *limit);

#endif
