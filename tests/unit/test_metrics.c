/* test_metrics.c: the request counters of a scoreboard slot (src/proc/scoreboard.c) and
 * the Prometheus text exposition (src/proc/metrics.c).
 *
 * A slot counts each request by status class, method and duration bucket; the arbiter
 * folds a slot into its totals. The writer's text is checked line by line for what the
 * format requires: HELP and TYPE before each family's samples, cumulative buckets ending
 * at +Inf equal to _count, escaped label values. (The integration tests parse the same
 * text with prometheus_client's parser.) */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "proc/metrics.h"
#include "proc/scoreboard.h"
#include "unit.h"

static void count(gc__slot_t *s, const char *method, int status, uint64_t us)
{
    gc__slot_count(s, gc__view(method, strlen(method)), status, us);
}

static void test_method_index(void)
{
    static const char *const names[] = {"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"};
    for (int i = 0; i < 7; i++)
        ASSERT_EQ_INT(gc__count_method_index(names[i], strlen(names[i])), i);
    ASSERT_EQ_STR(gc__count_methods[GC_COUNT_METHODS - 1], "other");
    ASSERT_EQ_INT(gc__count_method_index("get", 3), GC_COUNT_METHODS - 1);
    ASSERT_EQ_INT(gc__count_method_index("PURGE", 5), GC_COUNT_METHODS - 1);
    ASSERT_EQ_INT(gc__count_method_index("GETS", 4), GC_COUNT_METHODS - 1);
    ASSERT_EQ_INT(gc__count_method_index("PROPFIND", 8), GC_COUNT_METHODS - 1);
    ASSERT_EQ_INT(gc__count_method_index("", 0), GC_COUNT_METHODS - 1);
}

static void test_slot_counts_and_fold(void)
{
    gc__scoreboard_t sb;
    ASSERT_OK(gc__scoreboard_init(&sb, 2));
    int i = gc__scoreboard_claim(&sb, 100, 1);
    gc__slot_t *s = &sb.slots[i];
    count(s, "GET", 200, 500);      /* first bucket (<= 1 ms) */
    count(s, "GET", 404, 1000);     /* still the first: bounds are inclusive */
    count(s, "POST", 500, 1001);    /* the second */
    count(s, "PURGE", 0, 20000000); /* no response; past 10 s: +Inf */
    count(s, "PUT", 99, 3000);      /* outside 100..599: "none" */
    gc__counts_t c = {0};
    gc__counts_fold(&c, s);
    ASSERT_EQ_INT(c.status[0], 2);
    ASSERT_EQ_INT(c.status[2], 1);
    ASSERT_EQ_INT(c.status[4], 1);
    ASSERT_EQ_INT(c.status[5], 1);
    ASSERT_EQ_INT(c.method[0], 2);
    ASSERT_EQ_INT(c.method[2], 1);
    ASSERT_EQ_INT(c.method[3], 1);
    ASSERT_EQ_INT(c.method[GC_COUNT_METHODS - 1], 1);
    ASSERT_EQ_INT(c.bucket[0], 2);
    ASSERT_EQ_INT(c.bucket[1], 1);
    ASSERT_EQ_INT(c.bucket[2], 1);
    ASSERT_EQ_INT(c.bucket[GC_COUNT_BUCKETS - 1], 1);
    ASSERT_EQ_INT(c.duration_us, 500 + 1000 + 1001 + 20000000 + 3000);
    /* Folding adds: the totals keep an exited worker's counts beside a live one's. */
    gc__counts_fold(&c, s);
    ASSERT_EQ_INT(c.status[2], 2);
    /* A slot claimed again starts from zero. */
    gc__scoreboard_release(&sb, i);
    i = gc__scoreboard_claim(&sb, 101, 2);
    gc__counts_t fresh = {0};
    gc__counts_fold(&fresh, &sb.slots[i]);
    ASSERT_EQ_INT(fresh.status[2], 0);
    ASSERT_EQ_INT(fresh.bucket[0], 0);
    ASSERT_EQ_INT(fresh.duration_us, 0);
    gc__scoreboard_free(&sb);
}

/* The line that starts with `prefix`, copied into line; 0 when there is none. */
static int find_line(const char *text, const char *prefix, char *line, size_t cap)
{
    for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
        if (strncmp(p, prefix, strlen(prefix)) == 0) {
            size_t n = strcspn(p, "\n");
            snprintf(line, cap, "%.*s", (int)n, p);
            return 1;
        }
    }
    return 0;
}

static void test_exposition(void)
{
    gc__metrics_worker_t workers[] = {
        {.pid = 11, .state = GC_SLOT_IDLE, .requests = 5, .rss_bytes = 4096},
        {.pid = 12, .state = GC_SLOT_BUSY, .requests = 2, .rss_bytes = -1},
    };
    gc__metrics_listener_t listeners[] = {
        {.url = "http://127.0.0.1:8000", .queued = 3, .limit = 128},
        {.url = "unix:/run/a\"b\\c\nd.sock", .queued = 7, .limit = 9},
        {.url = "unix:/run/x.sock", .queued = -1, .limit = -1},
    };
    gc__metrics_snapshot_t s = {
        .inflight = 2,
        .workers = workers,
        .nworkers = 2,
        .listeners = listeners,
        .nlisteners = 3,
        .master = {.boots = 3, .exits = {1, 0, 0, 1}, .timeouts = 1, .kills = {1, 0}},
        .target_workers = 2,
        .ready = 1,
        .uptime_seconds = 12.5,
        .version = "1.2.3",
        .python_version = "3.11.2",
    };
    s.requests.status[2] = 6;
    s.requests.status[5] = 1;
    s.requests.method[0] = 7;
    s.requests.bucket[0] = 4;
    s.requests.bucket[3] = 2;
    s.requests.bucket[GC_COUNT_BUCKETS - 1] = 1;
    s.requests.duration_us = 31500000;
    gc__buf_t b;
    gc__buf_init(&b);
    ASSERT_OK(gc__metrics_write(&b, &s));
    ASSERT_OK(gc__buf_append(&b, "", 1));
    const char *t = b.data;
    char line[256];

    /* Every sample belongs to a family announced just before by HELP and TYPE. */
    char family[128] = "";
    for (const char *p = t; *p;) {
        size_t n = strcspn(p, "\n");
        ASSERT(p[n] == '\n'); /* every line ends with a newline, the last one too */
        if (strncmp(p, "# HELP gunicorn_c_", 18) == 0) {
            snprintf(family, sizeof(family), "%.*s", (int)strcspn(p + 7, " "), p + 7);
        } else if (strncmp(p, "# TYPE ", 7) == 0) {
            ASSERT(strncmp(p + 7, family, strlen(family)) == 0);
        } else {
            ASSERT(family[0] != '\0');
            ASSERT(strncmp(p, family, strlen(family)) == 0);
        }
        p += n + 1;
    }

    ASSERT(find_line(t, "# TYPE gunicorn_c_requests_total counter", line, sizeof(line)));
    ASSERT(find_line(t, "gunicorn_c_requests_total{status_class=\"2xx\"}", line, sizeof(line)));
    ASSERT_EQ_STR(line, "gunicorn_c_requests_total{status_class=\"2xx\"} 6");
    ASSERT(find_line(t, "gunicorn_c_requests_by_method_total{method=\"GET\"}", line, sizeof(line)));
    ASSERT_EQ_STR(line, "gunicorn_c_requests_by_method_total{method=\"GET\"} 7");
    ASSERT(find_line(t, "gunicorn_c_requests_in_flight ", line, sizeof(line)));
    ASSERT_EQ_STR(line, "gunicorn_c_requests_in_flight 2");
    /* The histogram: cumulative, +Inf equal to the count. */
    ASSERT(
        find_line(t, "# TYPE gunicorn_c_request_duration_seconds histogram", line, sizeof(line)));
    ASSERT(find_line(t, "gunicorn_c_request_duration_seconds_bucket{le=\"0.001\"}", line,
                     sizeof(line)));
    ASSERT_EQ_STR(line, "gunicorn_c_request_duration_seconds_bucket{le=\"0.001\"} 4");
    ASSERT(find_line(t, "gunicorn_c_request_duration_seconds_bucket{le=\"0.005\"}", line,
                     sizeof(line)));
    ASSERT_EQ_STR(line, "gunicorn_c_request_duration_seconds_bucket{le=\"0.005\"} 4");
    ASSERT(find_line(t, "gunicorn_c_request_duration_seconds_bucket{le=\"0.01\"}", line,
                     sizeof(line)));
    ASSERT_EQ_STR(line, "gunicorn_c_request_duration_seconds_bucket{le=\"0.01\"} 6");
    ASSERT(
        find_line(t, "gunicorn_c_request_duration_seconds_bucket{le=\"10\"}", line, sizeof(line)));
    ASSERT_EQ_STR(line, "gunicorn_c_request_duration_seconds_bucket{le=\"10\"} 6");
    ASSERT(find_line(t, "gunicorn_c_request_duration_seconds_bucket{le=\"+Inf\"}", line,
                     sizeof(line)));
    ASSERT_EQ_STR(line, "gunicorn_c_request_duration_seconds_bucket{le=\"+Inf\"} 7");
    ASSERT(find_line(t, "gunicorn_c_request_duration_seconds_count ", line, sizeof(line)));
    ASSERT_EQ_STR(line, "gunicorn_c_request_duration_seconds_count 7");
    ASSERT(find_line(t, "gunicorn_c_request_duration_seconds_sum ", line, sizeof(line)));
    ASSERT_EQ_STR(line, "gunicorn_c_request_duration_seconds_sum 31.500000");
    /* The master's counters. */
    ASSERT(find_line(t, "gunicorn_c_worker_exits_total{reason=\"killed\"}", line, sizeof(line)));
    ASSERT_EQ_STR(line, "gunicorn_c_worker_exits_total{reason=\"killed\"} 1");
    ASSERT(find_line(t, "gunicorn_c_worker_kills_total{reason=\"timeout\"}", line, sizeof(line)));
    ASSERT_EQ_STR(line, "gunicorn_c_worker_kills_total{reason=\"timeout\"} 1");
    ASSERT(find_line(t, "gunicorn_c_workers{state=\"busy\"}", line, sizeof(line)));
    ASSERT_EQ_STR(line, "gunicorn_c_workers{state=\"busy\"} 1");
    /* Per worker; an unknown RSS is left out rather than shown as 0. */
    ASSERT(find_line(t, "gunicorn_c_worker_resident_memory_bytes{pid=\"11\"} 4096", line,
                     sizeof(line)));
    ASSERT(
        !find_line(t, "gunicorn_c_worker_resident_memory_bytes{pid=\"12\"}", line, sizeof(line)));
    ASSERT(find_line(t, "gunicorn_c_worker_requests_total{pid=\"12\"} 2", line, sizeof(line)));
    /* Listeners: label values escaped; an unknown queue left out. */
    ASSERT(find_line(t, "gunicorn_c_listen_backlog{listener=\"http://127.0.0.1:8000\"} 3", line,
                     sizeof(line)));
    ASSERT(find_line(t, "gunicorn_c_listen_backlog{listener=\"unix:/run/a\\\"b\\\\c\\nd.sock\"} 7",
                     line, sizeof(line)));
    ASSERT(!find_line(t, "gunicorn_c_listen_backlog{listener=\"unix:/run/x.sock\"}", line,
                      sizeof(line)));
    ASSERT(find_line(t, "gunicorn_c_listen_backlog_limit{listener=\"http://127.0.0.1:8000\"} 128",
                     line, sizeof(line)));
    ASSERT(find_line(t, "gunicorn_c_ready 1", line, sizeof(line)));
    ASSERT(find_line(t, "gunicorn_c_uptime_seconds 12.500", line, sizeof(line)));
    ASSERT(find_line(t, "gunicorn_c_build_info{version=\"1.2.3\",python_version=\"3.11.2\"} 1",
                     line, sizeof(line)));
    gc__buf_free(&b);
}

static void test_rss_and_queue(void)
{
    ASSERT(gc__metrics_rss(getpid()) > 0);
    ASSERT_EQ_INT(gc__metrics_rss(-1), -1);
    long q = 0, l = 0;
    ASSERT_EQ_INT(gc__metrics_listen_queue(0, &q, &l), -ENOTSUP); /* not a TCP socket */
    ASSERT_EQ_INT(q, -1);
    ASSERT_EQ_INT(l, -1);
}

int main(int argc, char **argv)
{
    unit_init(argc, argv);
    RUN(test_method_index);
    RUN(test_slot_counts_and_fold);
    RUN(test_exposition);
    RUN(test_rss_and_queue);
    return unit_done();
}
