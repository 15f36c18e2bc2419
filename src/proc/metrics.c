/* metrics.c: the Prometheus text exposition (see metrics.h). */
#include "proc/metrics.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static const char *const exit_reasons[GC_EXIT__COUNT] = {"clean", "error", "signal", "killed"};
static const char *const kill_reasons[GC_KILL__COUNT] = {"timeout", "graceful_timeout"};
static const char *const status_classes[GC_COUNT_STATUS] = {"none", "1xx", "2xx",
                                                            "3xx",  "4xx", "5xx"};
static const char *const slot_states[] = {"free", "booting", "idle", "busy", "retiring"};

void gc__metrics_label_value(gc__buf_t *out, const char *v)
{
    for (const char *p = v; *p; p++) {
        if (*p == '\\')
            gc__buf_append(out, "\\\\", 2);
        else if (*p == '"')
            gc__buf_append(out, "\\\"", 2);
        else if (*p == '\n')
            gc__buf_append(out, "\\n", 2);
        else
            gc__buf_append(out, p, 1);
    }
}

/* The HELP and TYPE lines of a family. */
static void family(gc__buf_t *b, const char *name, const char *type, const char *help)
{
    gc__buf_printf(b, "# HELP gunicorn_c_%s %s\n# TYPE gunicorn_c_%s %s\n", name, help, name, type);
}

/* One sample with one label (or none when label is NULL). */
static void sample(gc__buf_t *b, const char *name, const char *label, const char *value, uint64_t n)
{
    gc__buf_printf(b, "gunicorn_c_%s", name);
    if (label != NULL) {
        gc__buf_printf(b, "{%s=\"", label);
        gc__metrics_label_value(b, value);
        gc__buf_append_str(b, "\"}");
    }
    gc__buf_printf(b, " %" PRIu64 "\n", n);
}

static void requests(gc__buf_t *b, const gc__metrics_snapshot_t *s)
{
    const gc__counts_t *c = &s->requests;
    family(b, "requests_total", "counter",
           "Requests that reached the application, by the class of the status answered "
           "(none: no response began).");
    for (int i = 0; i < GC_COUNT_STATUS; i++)
        sample(b, "requests_total", "status_class", status_classes[i], c->status[i]);
    family(b, "requests_by_method_total", "counter",
           "Requests that reached the application, by method (other: any method not listed).");
    for (int i = 0; i < GC_COUNT_METHODS; i++)
        sample(b, "requests_by_method_total", "method", gc__count_methods[i], c->method[i]);
    family(b, "requests_in_flight", "gauge", "Requests the workers are running now.");
    sample(b, "requests_in_flight", NULL, NULL, s->inflight);

    family(b, "request_duration_seconds", "histogram",
           "Time from a request's hand-over to the application to the end of its response.");
    uint64_t cumulative = 0;
    for (int i = 0; i < GC_COUNT_BUCKETS; i++) {
        cumulative += c->bucket[i];
        if (i < GC_COUNT_BUCKETS - 1)
            gc__buf_printf(b, "gunicorn_c_request_duration_seconds_bucket{le=\"%g\"} %" PRIu64 "\n",
                           (double)gc__count_bounds_us[i] / 1e6, cumulative);
        else
            gc__buf_printf(b,
                           "gunicorn_c_request_duration_seconds_bucket{le=\"+Inf\"} %" PRIu64 "\n",
                           cumulative);
    }
    gc__buf_printf(b, "gunicorn_c_request_duration_seconds_sum %.6f\n",
                   (double)c->duration_us / 1e6);
    gc__buf_printf(b, "gunicorn_c_request_duration_seconds_count %" PRIu64 "\n", cumulative);
}

static void workers(gc__buf_t *b, const gc__metrics_snapshot_t *s)
{
    const gc__metrics_master_t *m = &s->master;
    family(b, "worker_boots_total", "counter", "Worker processes the master has forked.");
    sample(b, "worker_boots_total", NULL, NULL, m->boots);
    family(b, "worker_exits_total", "counter",
           "Worker processes that ended, by how: clean (exit status 0), error (another "
           "status), signal (a signal the master did not send), killed (SIGKILL from the "
           "master).");
    for (int i = 0; i < GC_EXIT__COUNT; i++)
        sample(b, "worker_exits_total", "reason", exit_reasons[i], m->exits[i]);
    family(b, "worker_timeouts_total", "counter",
           "Workers whose heartbeat was older than --timeout (each was sent SIGABRT).");
    sample(b, "worker_timeouts_total", NULL, NULL, m->timeouts);
    family(b, "worker_kills_total", "counter",
           "Workers the master ended with SIGKILL, by the timeout that expired.");
    for (int i = 0; i < GC_KILL__COUNT; i++)
        sample(b, "worker_kills_total", "reason", kill_reasons[i], m->kills[i]);

    uint64_t by_state[5] = {0};
    for (size_t i = 0; i < s->nworkers; i++)
        if (s->workers[i].state < 5)
            by_state[s->workers[i].state]++;
    family(b, "workers", "gauge", "Worker processes, by the state of their scoreboard slot.");
    for (int i = 1; i < 5; i++)
        sample(b, "workers", "state", slot_states[i], by_state[i]);
    family(b, "workers_target", "gauge", "The number of workers the master keeps running.");
    gc__buf_printf(b, "gunicorn_c_workers_target %ld\n", s->target_workers);

    family(b, "worker_resident_memory_bytes", "gauge",
           "Each worker's resident set size (/proc/PID/statm).");
    for (size_t i = 0; i < s->nworkers; i++)
        if (s->workers[i].rss_bytes >= 0)
            gc__buf_printf(b, "gunicorn_c_worker_resident_memory_bytes{pid=\"%ld\"} %" PRId64 "\n",
                           (long)s->workers[i].pid, s->workers[i].rss_bytes);
    family(b, "worker_requests_total", "counter", "Requests each live worker has served.");
    for (size_t i = 0; i < s->nworkers; i++)
        gc__buf_printf(b, "gunicorn_c_worker_requests_total{pid=\"%ld\"} %" PRIu64 "\n",
                       (long)s->workers[i].pid, s->workers[i].requests);
}

static void listeners(gc__buf_t *b, const gc__metrics_snapshot_t *s)
{
    family(b, "listen_backlog", "gauge",
           "Connections waiting in a listening TCP socket's accept queue (Linux TCP_INFO; "
           "unix sockets are not reported).");
    for (size_t i = 0; i < s->nlisteners; i++)
        if (s->listeners[i].queued >= 0)
            sample(b, "listen_backlog", "listener", s->listeners[i].url,
                   (uint64_t)s->listeners[i].queued);
    family(b, "listen_backlog_limit", "gauge",
           "The accept queue's limit of a listening TCP socket (the effective listen() "
           "backlog).");
    for (size_t i = 0; i < s->nlisteners; i++)
        if (s->listeners[i].limit >= 0)
            sample(b, "listen_backlog_limit", "listener", s->listeners[i].url,
                   (uint64_t)s->listeners[i].limit);
}

int gc__metrics_write(gc__buf_t *b, const gc__metrics_snapshot_t *s)
{
    requests(b, s);
    workers(b, s);
    listeners(b, s);
    family(b, "ready", "gauge",
           "1 when /readyz answers 200: the target number of workers have booted and the "
           "server is not stopping.");
    sample(b, "ready", NULL, NULL, (uint64_t)(s->ready != 0));
    family(b, "uptime_seconds", "gauge", "Seconds since the master started.");
    gc__buf_printf(b, "gunicorn_c_uptime_seconds %.3f\n", s->uptime_seconds);
    family(b, "build_info", "gauge", "Always 1; the labels say what runs.");
    gc__buf_append_str(b, "gunicorn_c_build_info{version=\"");
    gc__metrics_label_value(b, s->version ? s->version : "");
    gc__buf_append_str(b, "\",python_version=\"");
    gc__metrics_label_value(b, s->python_version ? s->python_version : "");
    gc__buf_append_str(b, "\"} 1\n");
    /* A piece that could not be appended leaves the buffer as it was; a buffer that
     * cannot grow any more by now says the text is incomplete. */
    return gc__buf_reserve(b, 1) < 0 ? -ENOMEM : 0;
}

int64_t gc__metrics_rss(pid_t pid)
{
    char path[64], text[128];
    snprintf(path, sizeof(path), "/proc/%ld/statm", (long)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, text, sizeof(text) - 1);
    close(fd);
    if (n <= 0)
        return -1;
    text[n] = '\0';
    unsigned long size, resident;
    if (sscanf(text, "%lu %lu", &size, &resident) != 2)
        return -1;
    return (int64_t)resident * (int64_t)sysconf(_SC_PAGESIZE);
}

int gc__metrics_listen_queue(int fd, long *queued, long *limit)
{
#ifdef TCP_INFO
    struct tcp_info ti;
    socklen_t len = sizeof(ti);
    memset(&ti, 0, sizeof(ti));
    /* On a listening socket Linux puts the accept queue's length in tcpi_unacked and
     * its limit in tcpi_sacked. A unix socket fails with EOPNOTSUPP. */
    if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) == 0 && ti.tcpi_state == TCP_LISTEN) {
        *queued = (long)ti.tcpi_unacked;
        *limit = (long)ti.tcpi_sacked;
        return 0;
    }
#else
    (void)fd;
#endif
    *queued = *limit = -1;
    return -ENOTSUP;
}
