/* show.c: the answers of the control socket's show commands (see internal.h and
 * docs/control.md), and the JSON writers every answer uses.
 *
 * The data comes from the arbiter through gc__control_ops_t, from the scoreboard's
 * shared slots and from /proc, never from asking a worker: a worker stuck in a request
 * is shown as it is. Answers are written in C, field by field; strings go through
 * common/json.h, so that a request path (it can hold any byte) still gives valid JSON:
 * invalid UTF-8 becomes U+FFFD. */
#include "arbiter/internal.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/json.h"

/* --- JSON output ------------------------------------------------------------------ */

void gc__control_json_str(gc__buf_t *b, const char *s)
{
    if (s == NULL) {
        gc__buf_append_str(b, "null");
        return;
    }
    gc__buf_append(b, "\"", 1);
    gc__json_escape(b, s, strlen(s));
    gc__buf_append(b, "\"", 1);
}

void gc__control_json_key(gc__buf_t *b, int *first, const char *key)
{
    if (!*first)
        gc__buf_append_str(b, ", ");
    *first = 0;
    gc__control_json_str(b, key);
    gc__buf_append_str(b, ": ");
}

/* --- the data of the show commands ------------------------------------------------ */

static double secs(uint64_t from_ms, uint64_t to_ms)
{
    return to_ms > from_ms ? (double)(to_ms - from_ms) / 1000.0 : 0.0;
}

/* Resident set size in KiB from /proc/PID/statm, or -1. */
static long rss_kb(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%ld/statm", (long)pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    unsigned long size = 0, resident = 0;
    int n = fscanf(f, "%lu %lu", &size, &resident);
    fclose(f);
    if (n != 2)
        return -1;
    return (long)(resident * (unsigned long)sysconf(_SC_PAGESIZE) / 1024);
}

static const char *state_name(uint32_t state)
{
    switch (state) {
    case GC_SLOT_BOOTING:
        return "booting";
    case GC_SLOT_IDLE:
        return "idle";
    case GC_SLOT_BUSY:
        return "busy";
    case GC_SLOT_RETIRING:
        return "retiring";
    default:
        return "unknown";
    }
}

/* The workers, oldest first. Returns owned (free()), *n set; NULL with *n = 0 when
 * there are none or memory ran out. */
static gc__control_worker_t *snapshot(gc__control_t *ctl, size_t *n)
{
    size_t count = ctl->ops->workers(ctl->arg, NULL, 0);
    gc__control_worker_t *w = count ? calloc(count, sizeof(*w)) : NULL;
    *n = w ? ctl->ops->workers(ctl->arg, w, count) : 0;
    if (*n > count)
        *n = count;
    for (size_t i = 1; i < *n; i++) /* insertion sort by age: a few workers */
        for (size_t j = i; j > 0 && w[j - 1].age > w[j].age; j--) {
            gc__control_worker_t t = w[j];
            w[j] = w[j - 1];
            w[j - 1] = t;
        }
    return w;
}

static void worker_json(gc__control_t *ctl, gc__buf_t *b, const gc__control_worker_t *w,
                        uint64_t now)
{
    const gc__slot_t *s = &ctl->sb->slots[w->slot];
    uint32_t state = atomic_load(&s->state);
    uint64_t beat = atomic_load(&s->beat_ms);
    char method[16], path[240];
    uint64_t started = 0;
    int busy = gc__slot_read_request(s, method, sizeof(method), path, sizeof(path), &started);
    int first = 1;
    gc__buf_append_str(b, "{");
    gc__control_json_key(b, &first, "pid");
    gc__buf_printf(b, "%ld", (long)w->pid);
    gc__control_json_key(b, &first, "age");
    gc__buf_printf(b, "%u", w->age);
    gc__control_json_key(b, &first, "booted");
    gc__buf_append_str(b, state != GC_SLOT_BOOTING ? "true" : "false");
    gc__control_json_key(b, &first, "aborted");
    gc__buf_append_str(b, w->aborted ? "true" : "false");
    gc__control_json_key(b, &first, "last_heartbeat");
    gc__buf_printf(b, "%.3f", secs(beat, now));
    gc__control_json_key(b, &first, "state");
    gc__control_json_str(b, state_name(state));
    gc__control_json_key(b, &first, "uptime");
    gc__buf_printf(b, "%.3f", secs(w->spawned_ms, now));
    gc__control_json_key(b, &first, "requests");
    gc__buf_printf(b, "%llu", (unsigned long long)atomic_load(&s->requests));
    gc__control_json_key(b, &first, "in_flight");
    gc__buf_printf(b, "%u", (unsigned)atomic_load(&s->inflight));
    gc__control_json_key(b, &first, "current_request");
    if (busy) {
        gc__buf_append_str(b, "{\"method\": ");
        gc__control_json_str(b, method);
        gc__buf_append_str(b, ", \"path\": ");
        gc__control_json_str(b, path);
        gc__buf_printf(b, ", \"age\": %.3f}", secs(started, now));
    } else {
        gc__buf_append_str(b, "null");
    }
    gc__control_json_key(b, &first, "rss_kb");
    long rss = rss_kb(w->pid);
    if (rss >= 0)
        gc__buf_printf(b, "%ld", rss);
    else
        gc__buf_append_str(b, "null");
    gc__buf_append_str(b, "}");
}

static void show_workers(gc__control_t *ctl, gc__buf_t *b)
{
    size_t n;
    gc__control_worker_t *w = snapshot(ctl, &n);
    uint64_t now = gc__monotonic_ms();
    gc__buf_append_str(b, "{\"workers\": [");
    for (size_t i = 0; i < n; i++) {
        if (i)
            gc__buf_append_str(b, ", ");
        worker_json(ctl, b, &w[i], now);
    }
    gc__buf_printf(b, "], \"count\": %zu}", n);
    free(w);
}

static void show_stats(gc__control_t *ctl, gc__buf_t *b)
{
    gc__control_counts_t c = {0};
    ctl->ops->counts(ctl->arg, &c);
    size_t n;
    gc__control_worker_t *w = snapshot(ctl, &n);
    uint64_t now = gc__monotonic_ms(), requests = 0;
    unsigned busy = 0, idle = 0, booting = 0, in_flight = 0;
    for (size_t i = 0; i < n; i++) {
        const gc__slot_t *s = &ctl->sb->slots[w[i].slot];
        uint32_t state = atomic_load(&s->state);
        requests += atomic_load(&s->requests);
        in_flight += atomic_load(&s->inflight);
        busy += state == GC_SLOT_BUSY || (state == GC_SLOT_RETIRING && atomic_load(&s->inflight));
        idle += state == GC_SLOT_IDLE;
        booting += state == GC_SLOT_BOOTING;
    }
    free(w);
    gc__buf_printf(b,
                   "{\"uptime\": %.3f, \"pid\": %ld, \"workers_current\": %zu, "
                   "\"workers_target\": %ld, \"workers_spawned\": %ld, \"workers_killed\": %ld, "
                   "\"reloads\": %ld, \"dirty_arbiter_pid\": null, \"workers_busy\": %u, "
                   "\"workers_idle\": %u, \"workers_booting\": %u, \"requests\": %llu, "
                   "\"in_flight\": %u}",
                   secs(c.started_ms, now), (long)getpid(), n, c.target, c.spawned, c.killed,
                   c.reloads, busy, idle, booting, (unsigned long long)requests, in_flight);
}

static void config_value_json(gc__buf_t *b, const gc__config_t *cfg, int id)
{
    const gc__setting_value_t *v = &cfg->v[id];
    switch (gc__setting_info(id)->type) {
    case GC_T_INT:
        gc__buf_printf(b, "%ld", v->i);
        break;
    case GC_T_BOOL:
        gc__buf_append_str(b, v->none ? "null" : v->i ? "true" : "false");
        break;
    case GC_T_LIST:
        gc__buf_append_str(b, "[");
        for (size_t i = 0; i < v->n; i++) {
            if (i)
                gc__buf_append_str(b, ", ");
            gc__control_json_str(b, v->items[i]);
        }
        gc__buf_append_str(b, "]");
        break;
    case GC_T_STR:
    case GC_T_DICT:
    case GC_T_CALLABLE:
        gc__control_json_str(b, v->s);
        break;
    }
}

/* Every setting with its value in force: more than Gunicorn's fixed subset, and in
 * the same names as --print-config. */
static void show_config(gc__control_t *ctl, gc__buf_t *b)
{
    const gc__config_t *cfg = ctl->ops->config(ctl->arg);
    int first = 1;
    gc__buf_append_str(b, "{");
    for (int id = 0; id < GC_S__COUNT; id++) {
        gc__control_json_key(b, &first, gc__setting_info(id)->name);
        config_value_json(b, cfg, id);
    }
    gc__buf_append_str(b, "}");
}

static void show_listeners(gc__control_t *ctl, gc__buf_t *b)
{
    size_t n = 0;
    const gc__listener_t *l = ctl->ops->listeners(ctl->arg, &n);
    gc__buf_append_str(b, "{\"listeners\": [");
    for (size_t i = 0; i < n; i++) {
        const char *type = l[i].is_unix ? "unix" : strchr(l[i].host, ':') ? "tcp6" : "tcp";
        gc__buf_append_str(b, i ? ", {\"address\": " : "{\"address\": ");
        gc__control_json_str(b, l[i].url);
        gc__buf_printf(b, ", \"fd\": %d, \"type\": \"%s\"}", l[i].fd, type);
    }
    gc__buf_printf(b, "], \"count\": %zu}", n);
}

/* --- the command ----------------------------------------------------------------- */

const char *gc__control_show(gc__control_t *ctl, char **words, size_t n, gc__buf_t *b, char *err,
                             size_t errcap)
{
    if (n < 2)
        return "Invalid argument: Missing show target "
               "(all|workers|dirty|config|stats|listeners)";
    const char *what = words[1];
    if (strcmp(what, "workers") == 0) {
        show_workers(ctl, b);
    } else if (strcmp(what, "stats") == 0) {
        show_stats(ctl, b);
    } else if (strcmp(what, "config") == 0) {
        show_config(ctl, b);
    } else if (strcmp(what, "listeners") == 0) {
        show_listeners(ctl, b);
    } else if (strcmp(what, "dirty") == 0) {
        gc__buf_append_str(b, "{\"enabled\": false, \"pid\": null, \"workers\": [], "
                              "\"count\": 0}");
    } else if (strcmp(what, "all") == 0) {
        gc__buf_append_str(b, "{\"stats\": ");
        show_stats(ctl, b);
        gc__buf_append_str(b, ", \"workers\": ");
        show_workers(ctl, b);
        gc__buf_append_str(b, ", \"listeners\": ");
        show_listeners(ctl, b);
        gc__buf_append_str(b, "}");
    } else {
        snprintf(err, errcap, "Invalid argument: Unknown show target: %s", what);
        return err;
    }
    return NULL;
}
