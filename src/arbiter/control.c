/* control.c: the control socket (see control.h and docs/control.md).
 *
 * The listening socket is made here with socket(2)/bind(2) and handed to libuv with
 * uv_pipe_open, rather than with uv_pipe_bind: libuv unlinks the file of a bound pipe
 * when the handle closes, and every forked worker closes the arbiter's handles. The
 * file is ours to remove, and only while it is still the one we made.
 *
 * A client is a uv_pipe_t and an idle timer; both must have closed before its memory
 * goes. Frames are bounded (16 MiB, as Gunicorn), clients are bounded, and anything
 * malformed gets an error answer: nothing a client sends can stop the master. */
#include "arbiter/control.h"

#include <Python.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/clock.h"
#include "log/log.h"
#include "python/pycompat.h"

#define MAX_FRAME (16u * 1024 * 1024)
#define MAX_CLIENTS 32
#define IDLE_TIMEOUT_MS (300u * 1000)
#define MAX_WORDS 64

typedef struct client {
    uv_pipe_t pipe;
    uv_timer_t idle;
    gc__control_t *ctl;
    gc__buf_t in;
    int open_handles; /* freed when both handles have closed */
    int closing;
    int drop_after_write; /* an oversized frame: answer, then hang up */
    unsigned writes;      /* uv_write requests in flight */
    struct client *next;
} client_t;

struct gc__control {
    uv_pipe_t server;
    uv_loop_t *loop;
    char *path; /* owned, absolute */
    dev_t dev;  /* the socket file we made, so that we unlink only it */
    ino_t ino;
    const gc__control_ops_t *ops;
    void *arg;
    const gc__scoreboard_t *sb;
    client_t *clients;
    size_t nclients;
    PyObject *parse; /* owned: the request parser (PARSER_SOURCE) */
    char readbuf[65536];
};

static void on_server_closed(uv_handle_t *h)
{
    free(h->data);
}

typedef struct {
    uv_write_t req;
    client_t *client;
    size_t len;
    char data[]; /* the frame: length prefix and JSON */
} write_t;

/* Requests are parsed in Python: json for the framing's payload, shlex for the
 * command words, as Gunicorn splits them. Returns (id as JSON text, words or None,
 * error or None). */
static const char PARSER_SOURCE[] =
    "import json, shlex\n"
    "def parse(raw):\n"
    "    try:\n"
    "        req = json.loads(raw)\n"
    "    except (ValueError, RecursionError) as e:\n"
    "        return 'null', None, 'Invalid JSON: %s' % e\n"
    "    if not isinstance(req, dict):\n"
    "        return 'null', None, 'Invalid request: expected a JSON object'\n"
    "    try:\n"
    "        rid = json.dumps(req.get('id'))\n"
    "    except (ValueError, RecursionError):\n"
    "        rid = 'null'\n"
    "    cmd, args = req.get('command', ''), req.get('args', [])\n"
    "    if cmd is None:\n"
    "        cmd = ''\n"
    "    if args is None:\n"
    "        args = []\n"
    "    if not isinstance(cmd, str) or not isinstance(args, list):\n"
    "        return rid, None, 'Invalid request: command must be a string and args a list'\n"
    "    try:\n"
    "        words = shlex.split(cmd)\n"
    "    except ValueError as e:\n"
    "        return rid, None, 'Invalid argument: %s' % e\n"
    "    words += [a if isinstance(a, str) else json.dumps(a) for a in args]\n"
    "    return rid, words, None\n";

/* --- JSON output ------------------------------------------------------------------ */

/* Length of the valid UTF-8 sequence at p (at most n bytes), or 0. */
static size_t utf8_len(const unsigned char *p, size_t n)
{
    size_t len = p[0] >= 0xf0 && p[0] <= 0xf4   ? 4
                 : p[0] >= 0xe0                 ? 3
                 : p[0] >= 0xc2 && p[0] <= 0xdf ? 2
                                                : 0;
    if (len == 0 || len > n)
        return 0;
    for (size_t i = 1; i < len; i++)
        if ((p[i] & 0xc0) != 0x80)
            return 0;
    return len;
}

/* Appends s as a JSON string. Invalid UTF-8 (a request path can hold any byte)
 * becomes U+FFFD, so that the answer is always valid JSON. */
static void json_str(gc__buf_t *b, const char *s)
{
    if (s == NULL) {
        gc__buf_append_str(b, "null");
        return;
    }
    const unsigned char *p = (const unsigned char *)s;
    size_t n = strlen(s);
    gc__buf_append(b, "\"", 1);
    for (size_t i = 0; i < n;) {
        unsigned char ch = p[i];
        if (ch == '"' || ch == '\\') {
            char esc[2] = {'\\', (char)ch};
            gc__buf_append(b, esc, 2);
        } else if (ch == '\n') {
            gc__buf_append_str(b, "\\n");
        } else if (ch == '\t') {
            gc__buf_append_str(b, "\\t");
        } else if (ch < 0x20 || ch == 0x7f) {
            gc__buf_printf(b, "\\u%04x", ch);
        } else if (ch >= 0x80) {
            size_t len = utf8_len(p + i, n - i);
            if (len == 0) {
                gc__buf_append_str(b, "\\ufffd");
                i++;
                continue;
            }
            gc__buf_append(b, p + i, len);
            i += len;
            continue;
        } else {
            gc__buf_append(b, p + i, 1);
        }
        i++;
    }
    gc__buf_append(b, "\"", 1);
}

static void json_key(gc__buf_t *b, int *first, const char *key)
{
    if (!*first)
        gc__buf_append_str(b, ", ");
    *first = 0;
    json_str(b, key);
    gc__buf_append_str(b, ": ");
}

static double secs(uint64_t from_ms, uint64_t to_ms)
{
    return to_ms > from_ms ? (double)(to_ms - from_ms) / 1000.0 : 0.0;
}

/* --- the data of the show commands ------------------------------------------------ */

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
    json_key(b, &first, "pid");
    gc__buf_printf(b, "%ld", (long)w->pid);
    json_key(b, &first, "age");
    gc__buf_printf(b, "%u", w->age);
    json_key(b, &first, "booted");
    gc__buf_append_str(b, state != GC_SLOT_BOOTING ? "true" : "false");
    json_key(b, &first, "aborted");
    gc__buf_append_str(b, w->aborted ? "true" : "false");
    json_key(b, &first, "last_heartbeat");
    gc__buf_printf(b, "%.3f", secs(beat, now));
    json_key(b, &first, "state");
    json_str(b, state_name(state));
    json_key(b, &first, "uptime");
    gc__buf_printf(b, "%.3f", secs(w->spawned_ms, now));
    json_key(b, &first, "requests");
    gc__buf_printf(b, "%llu", (unsigned long long)atomic_load(&s->requests));
    json_key(b, &first, "in_flight");
    gc__buf_printf(b, "%u", (unsigned)atomic_load(&s->inflight));
    json_key(b, &first, "current_request");
    if (busy) {
        gc__buf_append_str(b, "{\"method\": ");
        json_str(b, method);
        gc__buf_append_str(b, ", \"path\": ");
        json_str(b, path);
        gc__buf_printf(b, ", \"age\": %.3f}", secs(started, now));
    } else {
        gc__buf_append_str(b, "null");
    }
    json_key(b, &first, "rss_kb");
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
            json_str(b, v->items[i]);
        }
        gc__buf_append_str(b, "]");
        break;
    case GC_T_STR:
    case GC_T_DICT:
    case GC_T_CALLABLE:
        json_str(b, v->s);
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
        json_key(b, &first, gc__setting_info(id)->name);
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
        json_str(b, l[i].url);
        gc__buf_printf(b, ", \"fd\": %d, \"type\": \"%s\"}", l[i].fd, type);
    }
    gc__buf_printf(b, "], \"count\": %zu}", n);
}

/* --- commands --------------------------------------------------------------------- */

static const char *const HELP[][2] = {
    {"show all", "stats, workers and listeners together"},
    {"show workers", "every worker: pid, age, state, requests, current request, RSS"},
    {"show stats", "the master's counters and the workers' totals"},
    {"show config", "every setting with the value in force"},
    {"show listeners", "the listening sockets"},
    {"show dirty", "dirty arbiters (gunicorn-c has none)"},
    {"worker add [N]", "raise the number of workers by N (1)"},
    {"worker remove [N]", "lower the number of workers by N (1), never below 1"},
    {"worker kill PID", "send SIGTERM to one worker; the master replaces it"},
    {"reload", "reload the configuration and replace the workers (as SIGHUP)"},
    {"reopen", "reopen the log files (as SIGUSR1)"},
    {"shutdown [graceful|quick]", "stop the server (as SIGTERM, or SIGINT for quick)"},
    {"help", "this list"},
};

/* Parses a positive count; 0 when text is not one. */
static long parse_count(const char *text)
{
    char *end;
    errno = 0;
    long n = strtol(text, &end, 10);
    if (errno || end == text || *end || n < 1)
        return 0;
    return n > 1 << 20 ? 1 << 20 : n;
}

/* A command: writes its data to *b and returns NULL, or returns the error message
 * (static, or in err). words[0] is the command's name; n >= 1. */
typedef const char *command_fn(gc__control_t *ctl, char **words, size_t n, gc__buf_t *b, char *err,
                               size_t errcap);

static const char *cmd_show(gc__control_t *ctl, char **words, size_t n, gc__buf_t *b, char *err,
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

static const char *cmd_dirty(gc__control_t *ctl, char **words, size_t n, gc__buf_t *b, char *err,
                             size_t errcap)
{
    if (n < 2)
        return "Invalid argument: Missing dirty action (add|remove)";
    if (strcmp(words[1], "add") != 0 && strcmp(words[1], "remove") != 0) {
        snprintf(err, errcap, "Invalid argument: Unknown dirty action: %s", words[1]);
        return err;
    }
    return "Command failed: gunicorn-c has no dirty arbiter";
}

static const char *worker_scale(gc__control_t *ctl, char **words, size_t n, gc__buf_t *b, char *err,
                                size_t errcap)
{
    const char *action = words[1];
    int add = strcmp(action, "add") == 0;
    long count = n > 2 ? parse_count(words[2]) : 1;
    if (count == 0) {
        snprintf(err, errcap, "Invalid argument: Invalid count: %s", words[2]);
        return err;
    }
    gc__control_counts_t c = {0};
    ctl->ops->counts(ctl->arg, &c);
    long total = ctl->ops->scale(ctl->arg, add ? count : -count);
    if (total < 0)
        return "Command failed: the server is shutting down";
    gc__info("Control: worker %s %ld (workers: %ld -> %ld)", action, count, c.target, total);
    gc__buf_printf(b, "{\"%s\": %ld, \"previous\": %ld, \"total\": %ld}", add ? "added" : "removed",
                   add ? total - c.target : c.target - total, c.target, total);
    return NULL;
}

static const char *worker_kill(gc__control_t *ctl, char **words, size_t n, gc__buf_t *b, char *err,
                               size_t errcap)
{
    if (n < 3)
        return "Invalid argument: Missing PID";
    char *end;
    errno = 0;
    long pid = strtol(words[2], &end, 10);
    if (errno || end == words[2] || *end || pid <= 0 || pid > INT_MAX) {
        snprintf(err, errcap, "Invalid argument: Invalid PID: %s", words[2]);
        return err;
    }
    if (ctl->ops->kill_worker(ctl->arg, (pid_t)pid) < 0) {
        snprintf(err, errcap, "Command failed: No worker with PID %ld", pid);
        return err;
    }
    gc__info("Control: sent SIGTERM to worker (pid:%ld)", pid);
    gc__buf_printf(b, "{\"killed\": %ld}", pid);
    return NULL;
}

static const char *cmd_worker(gc__control_t *ctl, char **words, size_t n, gc__buf_t *b, char *err,
                              size_t errcap)
{
    if (n < 2)
        return "Invalid argument: Missing worker action (add|remove|kill)";
    if (strcmp(words[1], "add") == 0 || strcmp(words[1], "remove") == 0)
        return worker_scale(ctl, words, n, b, err, errcap);
    if (strcmp(words[1], "kill") == 0)
        return worker_kill(ctl, words, n, b, err, errcap);
    snprintf(err, errcap, "Invalid argument: Unknown worker action: %s", words[1]);
    return err;
}

/* reload, reopen, shutdown act exactly as the signals do, logged and handled by the
 * arbiter's loop after this answer is queued, as Gunicorn's control server signals
 * itself. */
static const char *signal_self(gc__buf_t *b, int sig, const char *status, const char *mode)
{
    gc__buf_append_str(b, "{\"status\": ");
    json_str(b, status);
    if (mode) {
        gc__buf_append_str(b, ", \"mode\": ");
        json_str(b, mode);
    }
    gc__buf_append_str(b, "}");
    kill(getpid(), sig);
    return NULL;
}

static const char *cmd_reload(gc__control_t *ctl, char **words, size_t n, gc__buf_t *b, char *err,
                              size_t errcap)
{
    return signal_self(b, SIGHUP, "reloading", NULL);
}

static const char *cmd_reopen(gc__control_t *ctl, char **words, size_t n, gc__buf_t *b, char *err,
                              size_t errcap)
{
    return signal_self(b, SIGUSR1, "reopening", NULL);
}

static const char *cmd_shutdown(gc__control_t *ctl, char **words, size_t n, gc__buf_t *b, char *err,
                                size_t errcap)
{
    const char *mode = n > 1 ? words[1] : "graceful";
    if (strcmp(mode, "graceful") == 0)
        return signal_self(b, SIGTERM, "shutting down", mode);
    if (strcmp(mode, "quick") == 0)
        return signal_self(b, SIGINT, "shutting down", mode);
    snprintf(err, errcap, "Invalid argument: Unknown shutdown mode: %s (graceful|quick)", mode);
    return err;
}

static const char *cmd_help(gc__control_t *ctl, char **words, size_t n, gc__buf_t *b, char *err,
                            size_t errcap)
{
    int first = 1;
    gc__buf_append_str(b, "{\"commands\": {");
    for (size_t i = 0; i < sizeof(HELP) / sizeof(HELP[0]); i++) {
        json_key(b, &first, HELP[i][0]);
        json_str(b, HELP[i][1]);
    }
    gc__buf_append_str(b, "}}");
    return NULL;
}

static const struct {
    const char *name;
    command_fn *run;
} COMMANDS[] = {
    {"show", cmd_show},     {"worker", cmd_worker}, {"dirty", cmd_dirty},
    {"reload", cmd_reload}, {"reopen", cmd_reopen}, {"shutdown", cmd_shutdown},
    {"help", cmd_help},
};

/* Runs one command. Writes its data to *b and returns NULL, or returns the error
 * message (static, or in err). */
static const char *run_command(gc__control_t *ctl, char **words, size_t n, gc__buf_t *b, char *err,
                               size_t errcap)
{
    if (n == 0)
        return "Empty command";
    for (size_t i = 0; i < sizeof(COMMANDS) / sizeof(COMMANDS[0]); i++)
        if (strcmp(words[0], COMMANDS[i].name) == 0)
            return COMMANDS[i].run(ctl, words, n, b, err, errcap);
    snprintf(err, errcap, "Invalid argument: Unknown command: %s", words[0]);
    return err;
}

/* --- clients ---------------------------------------------------------------------- */

static void on_client_closed(uv_handle_t *h)
{
    client_t *c = h->data;
    if (--c->open_handles > 0)
        return;
    gc__buf_free(&c->in);
    free(c);
}

static void client_close(client_t *c)
{
    if (c->closing)
        return;
    c->closing = 1;
    gc__control_t *ctl = c->ctl;
    for (client_t **p = &ctl->clients; *p; p = &(*p)->next)
        if (*p == c) {
            *p = c->next;
            ctl->nclients--;
            break;
        }
    uv_close((uv_handle_t *)&c->pipe, on_client_closed);
    uv_close((uv_handle_t *)&c->idle, on_client_closed);
}

static void on_written(uv_write_t *req, int status)
{
    write_t *w = req->data;
    client_t *c = w->client;
    free(w);
    /* ECANCELED: the handle is closing (a forked worker closes everything it
     * inherited); the client is not ours to touch any more. */
    if (status == UV_ECANCELED)
        return;
    c->writes--;
    if (status < 0 || (c->drop_after_write && c->writes == 0))
        client_close(c);
}

/* Queues one frame: the 4-byte big-endian length, then the JSON. */
static void send_frame(client_t *c, const gc__buf_t *json)
{
    size_t len = json->len;
    write_t *w = malloc(sizeof(*w) + 4 + len);
    if (w == NULL) {
        client_close(c);
        return;
    }
    w->client = c;
    w->len = 4 + len;
    w->data[0] = (char)(len >> 24);
    w->data[1] = (char)(len >> 16);
    w->data[2] = (char)(len >> 8);
    w->data[3] = (char)len;
    memcpy(w->data + 4, json->data, len);
    w->req.data = w;
    uv_buf_t buf = uv_buf_init(w->data, (unsigned)w->len);
    if (uv_write(&w->req, (uv_stream_t *)&c->pipe, &buf, 1, on_written) < 0) {
        free(w);
        client_close(c);
        return;
    }
    c->writes++;
}

static void send_error(client_t *c, const char *rid, const char *message)
{
    gc__buf_t out;
    gc__buf_init(&out);
    gc__buf_printf(&out, "{\"id\": %s, \"status\": \"error\", \"error\": ", rid ? rid : "null");
    json_str(&out, message);
    gc__buf_append_str(&out, "}");
    send_frame(c, &out);
    gc__buf_free(&out);
}

/* One request's payload: parse, run, answer. */
static void handle_message(client_t *c, const char *payload, size_t len)
{
    gc__control_t *ctl = c->ctl;
    char *rid = NULL, *words[MAX_WORDS];
    size_t nwords = 0;
    const char *error = NULL;
    char err[512];
    PyObject *raw = PyBytes_FromStringAndSize(payload, (Py_ssize_t)len);
    PyObject *res = raw ? PyObject_CallOneArg(ctl->parse, raw) : NULL;
    Py_XDECREF(raw);
    if (res == NULL || !PyTuple_Check(res) || PyTuple_GET_SIZE(res) != 3) {
        PyErr_Clear();
        Py_XDECREF(res);
        send_error(c, NULL, "Command failed: cannot parse the request");
        return;
    }
    /* Borrowed from res until it goes. */
    PyObject *prid = PyTuple_GET_ITEM(res, 0), *pwords = PyTuple_GET_ITEM(res, 1),
             *perr = PyTuple_GET_ITEM(res, 2);
    const char *s = PyUnicode_Check(prid) ? PyUnicode_AsUTF8(prid) : NULL;
    rid = strdup(s ? s : "null");
    if (perr != Py_None) {
        s = PyUnicode_AsUTF8(perr);
        snprintf(err, sizeof(err), "%s", s ? s : "Invalid request");
        error = err;
    } else if (PyList_Check(pwords)) {
        Py_ssize_t n = PyList_GET_SIZE(pwords);
        if (n > MAX_WORDS) {
            error = "Invalid argument: too many words";
            n = 0;
        }
        for (Py_ssize_t i = 0; i < n && error == NULL; i++) {
            /* A lone surrogate (\ud800 in the JSON) cannot be UTF-8. */
            s = PyUnicode_AsUTF8(PyList_GET_ITEM(pwords, i));
            if (s == NULL)
                error = "Invalid argument: not valid UTF-8";
            else if ((words[nwords] = strdup(s)) == NULL)
                error = "Command failed: out of memory";
            else
                nwords++;
        }
    }
    PyErr_Clear();
    Py_DECREF(res);

    gc__buf_t data, out;
    gc__buf_init(&data);
    gc__buf_init(&out);
    if (error == NULL)
        error = run_command(ctl, words, nwords, &data, err, sizeof(err));
    if (error != NULL || rid == NULL) {
        send_error(c, rid, error ? error : "Command failed: out of memory");
    } else {
        gc__buf_printf(&out, "{\"id\": %s, \"status\": \"ok\", \"data\": ", rid);
        gc__buf_append(&out, data.data, data.len);
        gc__buf_append_str(&out, "}");
        send_frame(c, &out);
    }
    gc__buf_free(&data);
    gc__buf_free(&out);
    for (size_t i = 0; i < nwords; i++)
        free(words[i]);
    free(rid);
}

static void on_idle(uv_timer_t *t)
{
    client_close(t->data);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    client_t *c = h->data;
    *buf = uv_buf_init(c->ctl->readbuf, sizeof(c->ctl->readbuf));
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    client_t *c = s->data;
    if (nread < 0) {
        client_close(c);
        return;
    }
    if (nread == 0 || c->drop_after_write)
        return;
    uv_timer_again(&c->idle);
    if (gc__buf_append(&c->in, buf->base, (size_t)nread) < 0) {
        client_close(c);
        return;
    }
    while (!c->closing && c->in.len >= 4) {
        const unsigned char *p = (const unsigned char *)c->in.data;
        uint32_t len = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
        if (len > MAX_FRAME) {
            /* The stream cannot be resynchronised: answer and hang up. */
            send_error(c, NULL, "Invalid request: message too large");
            c->drop_after_write = 1;
            uv_read_stop(s);
            if (c->writes == 0)
                client_close(c);
            return;
        }
        if (c->in.len < 4 + (size_t)len)
            break;
        handle_message(c, c->in.data + 4, len);
        gc__buf_consume(&c->in, 4 + (size_t)len);
    }
}

static void on_connection(uv_stream_t *server, int status)
{
    gc__control_t *ctl = server->data;
    if (status < 0)
        return;
    client_t *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return;
    c->ctl = ctl;
    gc__buf_init(&c->in);
    uv_pipe_init(ctl->loop, &c->pipe, 0);
    uv_timer_init(ctl->loop, &c->idle);
    c->pipe.data = c->idle.data = c;
    c->open_handles = 2;
    c->next = ctl->clients;
    ctl->clients = c;
    ctl->nclients++;
    if (uv_accept(server, (uv_stream_t *)&c->pipe) < 0 || ctl->nclients > MAX_CLIENTS) {
        client_close(c);
        return;
    }
    /* A connected client must not keep a stopping master's loop alive. */
    uv_unref((uv_handle_t *)&c->pipe);
    uv_unref((uv_handle_t *)&c->idle);
    uv_timer_start(&c->idle, on_idle, IDLE_TIMEOUT_MS, IDLE_TIMEOUT_MS);
    uv_read_start((uv_stream_t *)&c->pipe, on_alloc, on_read);
}

/* --- start and stop --------------------------------------------------------------- */

/* mkdir -p with mode 0700 for the directories it creates. */
static int make_parents(char *path)
{
    for (char *p = path + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        int rc = mkdir(path, 0700);
        *p = '/';
        if (rc < 0 && errno != EEXIST)
            return -errno;
    }
    return 0;
}

static PyObject *make_parser(void)
{
    PyObject *globals = PyDict_New(), *result = NULL, *fn = NULL;
    if (globals == NULL)
        goto out;
    if (PyDict_SetItemString(globals, "__builtins__", PyEval_GetBuiltins()) < 0)
        goto out;
    result = PyRun_String(PARSER_SOURCE, Py_file_input, globals, globals);
    if (result == NULL)
        goto out;
    fn = PyDict_GetItemString(globals, "parse"); /* borrowed */
    Py_XINCREF(fn);
out:
    if (fn == NULL)
        PyErr_Clear();
    Py_XDECREF(result);
    Py_XDECREF(globals);
    return fn;
}

gc__control_t *gc__control_start(uv_loop_t *loop, const char *path, int mode,
                                 const gc__control_ops_t *ops, void *arg,
                                 const gc__scoreboard_t *sb)
{
    gc__control_t *ctl = NULL;
    char *abs = NULL;
    int fd = -1;
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    struct stat st;
    const char *why = NULL;
    int err = 0;

    if (path[0] == '/') {
        abs = strdup(path);
    } else {
        char cwd[PATH_MAX];
        if (getcwd(cwd, sizeof(cwd)) != NULL) {
            abs = malloc(strlen(cwd) + strlen(path) + 2);
            if (abs)
                sprintf(abs, "%s/%s", cwd, path);
        }
    }
    if (abs == NULL) {
        why = "cannot resolve the path";
        goto fail;
    }
    if (strlen(abs) >= sizeof(sun.sun_path)) {
        why = "the path is too long for a unix socket";
        goto fail;
    }
    strcpy(sun.sun_path, abs);
    if ((err = make_parents(abs)) < 0) {
        why = "cannot create its directory";
        goto fail;
    }
    /* An old socket (a master that did not exit cleanly) is replaced; anything else
     * at that path is not ours to delete. */
    if (lstat(abs, &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            why = "a file that is not a socket is in the way";
            goto fail;
        }
        unlink(abs);
    }
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        err = -errno;
        why = "socket";
        goto fail;
    }
    /* Nobody else may connect between bind and chmod. */
    mode_t old = umask((mode_t)(~mode & 0777));
    int rc = bind(fd, (struct sockaddr *)&sun, sizeof(sun));
    err = rc < 0 ? -errno : 0;
    umask(old);
    if (rc < 0) {
        why = "bind";
        goto fail;
    }
    if (chmod(abs, (mode_t)mode) < 0 || lstat(abs, &st) < 0 || listen(fd, 16) < 0) {
        err = -errno;
        unlink(abs);
        why = "chmod/listen";
        goto fail;
    }
    ctl = calloc(1, sizeof(*ctl));
    if (ctl == NULL || (ctl->parse = make_parser()) == NULL) {
        unlink(abs);
        why = "out of memory";
        goto fail;
    }
    ctl->loop = loop;
    ctl->path = abs;
    ctl->dev = st.st_dev;
    ctl->ino = st.st_ino;
    ctl->ops = ops;
    ctl->arg = arg;
    ctl->sb = sb;
    uv_pipe_init(loop, &ctl->server, 0);
    ctl->server.data = ctl;
    err = uv_pipe_open(&ctl->server, fd);
    if (err == 0) {
        /* The handle owns fd now: closing it closes the socket. A uv_pipe_open that
         * failed did not take it, and it is closed below. */
        fd = -1;
        err = uv_listen((uv_stream_t *)&ctl->server, 16, on_connection);
    }
    if (err < 0) {
        ctl->path = NULL;
        unlink(abs);
        why = uv_strerror(err);
        err = 0;
        Py_CLEAR(ctl->parse);
        uv_close((uv_handle_t *)&ctl->server, on_server_closed);
        goto fail_handle;
    }
    /* The control socket must not keep the loop alive on its own. */
    uv_unref((uv_handle_t *)&ctl->server);
    gc__debug("Control socket listening at %s", abs);
    return ctl;

fail:
    if (ctl) {
        Py_XDECREF(ctl->parse);
        free(ctl);
    }
fail_handle:
    gc__warning("Cannot open the control socket %s: %s%s%s", abs ? abs : path, why, err ? ": " : "",
                err ? strerror(-err) : "");
    if (fd >= 0)
        close(fd);
    free(abs);
    /* After fail_handle, ctl is freed by the handle's close callback. */
    return NULL;
}

void gc__control_close(gc__control_t *ctl)
{
    if (ctl == NULL)
        return;
    while (ctl->clients)
        client_close(ctl->clients);
    struct stat st;
    if (lstat(ctl->path, &st) == 0 && st.st_dev == ctl->dev && st.st_ino == ctl->ino)
        unlink(ctl->path);
    free(ctl->path);
    ctl->path = NULL;
    Py_CLEAR(ctl->parse);
    uv_close((uv_handle_t *)&ctl->server, on_server_closed);
}
