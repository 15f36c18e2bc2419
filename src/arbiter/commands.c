/* commands.c: the control socket's commands (see internal.h and docs/control.md), in
 * one table. A command writes its data as JSON, or returns an error message; control.c
 * frames either as the answer. The show command is show.c's.
 *
 * No command changes the arbiter's state directly: `worker add/remove/kill` go
 * through gc__control_ops_t, and reload, reopen and shutdown send the master the
 * signal that does the same. */
#include "arbiter/internal.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log/log.h"

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

/* Parses a whole decimal number. Returns 0, or -1 when text is not one. */
static int parse_long(const char *text, long *out)
{
    char *end;
    errno = 0;
    *out = strtol(text, &end, 10);
    return errno || end == text || *end ? -1 : 0;
}

/* Parses a positive count; 0 when text is not one. */
static long parse_count(const char *text)
{
    long n;
    if (parse_long(text, &n) < 0 || n < 1)
        return 0;
    return n > 1 << 20 ? 1 << 20 : n;
}

/* A command: writes its data to *b and returns NULL, or returns the error message
 * (static, or in err). words[0] is the command's name; n >= 1. */
typedef const char *command_fn(gc__control_t *ctl, char **words, size_t n, gc__buf_t *b, char *err,
                               size_t errcap);

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
    long pid;
    if (parse_long(words[2], &pid) < 0 || pid <= 0 || pid > INT_MAX) {
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
    gc__control_json_str(b, status);
    if (mode) {
        gc__buf_append_str(b, ", \"mode\": ");
        gc__control_json_str(b, mode);
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
        gc__control_json_key(b, &first, HELP[i][0]);
        gc__control_json_str(b, HELP[i][1]);
    }
    gc__buf_append_str(b, "}}");
    return NULL;
}

static const struct {
    const char *name;
    command_fn *run;
} COMMANDS[] = {
    {"show", gc__control_show}, {"worker", cmd_worker}, {"dirty", cmd_dirty},
    {"reload", cmd_reload},     {"reopen", cmd_reopen}, {"shutdown", cmd_shutdown},
    {"help", cmd_help},
};

const char *gc__control_run(gc__control_t *ctl, char **words, size_t n, gc__buf_t *b, char *err,
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
