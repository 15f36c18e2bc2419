/* log.c: the error log and the access log's destinations (see log.h).
 *
 * The default path is plain C: a line is formatted into one stack buffer and written
 * with one write(2), with no lock and no Python. Syslog copies and the Python logging
 * route are checked with one branch each and cost nothing when off. */
#include "log/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "log/syslog.h"

static int threshold = GC_LOG_INFO;
static int log_fd = STDERR_FILENO;
static char *log_path;     /* owned; NULL while logging to stderr */
static int access_fd = -1; /* -1: no access log */
static char *access_path;  /* owned; NULL for stdout or none */
static void (*observer)(int level);
static int captured; /* --capture-output: fds 1 and 2 follow log_fd */
static int syslog_error, syslog_access;
static gc__log_route_fn route;     /* the Python logging route, or NULL */
static int route_access;           /* the route takes access lines too */
static _Thread_local int in_route; /* this thread is inside route(): write directly */

static int open_append(const char *path)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    return fd < 0 ? -errno : fd;
}

/* Opens `path` for appending as *fd and remembers it in *saved (for reopening). A
 * descriptor that is already one of our files keeps its number (dup2), so whatever
 * holds it (faulthandler, captured stdout) follows the new file. Returns 0 or -errno. */
static int open_file(const char *path, int *fd, char **saved)
{
    int nfd = open_append(path);
    if (nfd < 0)
        return nfd;
    char *copy = strdup(path);
    if (copy == NULL) {
        close(nfd);
        return -ENOMEM;
    }
    free(*saved);
    *saved = copy;
    if (*fd > STDERR_FILENO) {
        dup2(nfd, *fd);
        close(nfd);
    } else {
        *fd = nfd;
    }
    return 0;
}

int gc__log_open(const char *path)
{
    if (path == NULL || strcmp(path, "-") == 0) {
        if (log_fd != STDERR_FILENO)
            close(log_fd);
        log_fd = STDERR_FILENO;
        free(log_path);
        log_path = NULL;
        return 0;
    }
    return open_file(path, &log_fd, &log_path);
}

int gc__log_access_open(const char *path)
{
    if (path == NULL || strcmp(path, "-") == 0) {
        if (access_fd > STDERR_FILENO)
            close(access_fd);
        access_fd = path ? STDOUT_FILENO : -1;
        free(access_path);
        access_path = NULL;
        return 0;
    }
    return open_file(path, &access_fd, &access_path);
}

int gc__log_access_enabled(void)
{
    return access_fd >= 0 || syslog_access || (route != NULL && route_access);
}

static void write_fd(int fd, const char *p, size_t n);

void gc__log_access_write(const char *line, size_t len)
{
    if (route != NULL && route_access && !in_route) {
        in_route = 1;
        route(GC_LOG_INFO, line, len, 1);
        in_route = 0;
        return;
    }
    gc__log_write_access(line, len);
}

void gc__log_write_access(const char *line, size_t len)
{
    if (syslog_access)
        gc__syslog_send(GC_SYSLOG_ACCESS, GC_LOG_INFO, line, len);
    if (access_fd < 0)
        return;
    char stackbuf[4096];
    char *p = len + 1 <= sizeof(stackbuf) ? stackbuf : malloc(len + 1);
    if (p == NULL)
        return;
    memcpy(p, line, len);
    p[len] = '\n';
    write_fd(access_fd, p, len + 1);
    if (p != stackbuf)
        free(p);
}

void gc__log_set_observer(void (*fn)(int level))
{
    observer = fn;
}

void gc__log_capture(int on)
{
    captured = on && log_path != NULL;
    if (captured) {
        dup2(log_fd, STDOUT_FILENO);
        dup2(log_fd, STDERR_FILENO);
    }
}

void gc__log_set_syslog(int error, int access)
{
    syslog_error = error;
    syslog_access = access;
}

void gc__log_set_route(gc__log_route_fn fn, int access_on)
{
    route = fn;
    route_access = fn != NULL && access_on;
}

int gc__log_reopen(void)
{
    if (access_path != NULL) {
        int afd = open_append(access_path);
        if (afd >= 0) {
            dup2(afd, access_fd);
            close(afd);
        }
    }
    if (log_path == NULL)
        return 0;
    int fd = open_append(log_path);
    if (fd < 0)
        return fd;
    /* dup2 keeps the number: anything holding log_fd now writes to the new file. */
    dup2(fd, log_fd);
    close(fd);
    gc__log_capture(captured);
    return 0;
}

int gc__log_fd(void)
{
    return log_fd;
}

static const struct {
    const char *name;
    const char *label;
    int level;
} levels[] = {
    {"debug", "DEBUG", GC_LOG_DEBUG},          {"info", "INFO", GC_LOG_INFO},
    {"warning", "WARNING", GC_LOG_WARNING},    {"error", "ERROR", GC_LOG_ERROR},
    {"critical", "CRITICAL", GC_LOG_CRITICAL},
};

int gc__log_set_level_name(const char *name)
{
    for (size_t i = 0; i < sizeof(levels) / sizeof(levels[0]); i++) {
        if (strcasecmp(name, levels[i].name) == 0) {
            threshold = levels[i].level;
            return 0;
        }
    }
    return -EINVAL;
}

void gc__log_set_level(int level)
{
    threshold = level;
}

int gc__log_enabled(int level)
{
    return level >= threshold;
}

static const char *label_of(int level)
{
    for (size_t i = 0; i < sizeof(levels) / sizeof(levels[0]); i++)
        if (levels[i].level == level)
            return levels[i].label;
    return "INFO";
}

/* Formats "[time] [pid] [LEVEL] " into out; returns its length. */
static size_t format_prefix(char *out, size_t cap, int level)
{
    time_t now = time(NULL);
    struct tm tm;
    localtime_r(&now, &tm);
    char when[64];
    strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S %z", &tm);
    int n = snprintf(out, cap, "[%s] [%ld] [%s] ", when, (long)getpid(), label_of(level));
    return n < 0 ? 0 : (size_t)n;
}

static void write_fd(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return;
        }
        p += w;
        n -= (size_t)w;
    }
}

static void write_all(const char *p, size_t n)
{
    write_fd(log_fd, p, n);
}

/* Writes a formatted line (`prefix` bytes of "[time] [pid] [LEVEL] ", the message,
 * a newline) to the file, and the message to syslog. */
static void emit(int level, const char *line, size_t n, size_t prefix)
{
    write_all(line, n);
    if (syslog_error)
        gc__syslog_send(GC_SYSLOG_ERROR, level, line + prefix, n - prefix - 1);
}

static void to_route(int level, const char *msg, size_t len)
{
    in_route = 1;
    route(level, msg, len, 0);
    in_route = 0;
}

void gc__log_write_error(int level, const char *msg, size_t len)
{
    char stackbuf[4096];
    size_t n = format_prefix(stackbuf, 256, level);
    size_t total = n + len + 1;
    char *p = total <= sizeof(stackbuf) ? stackbuf : malloc(total);
    if (p == NULL)
        return;
    if (p != stackbuf)
        memcpy(p, stackbuf, n);
    memcpy(p + n, msg, len);
    p[n + len] = '\n';
    emit(level, p, total, n);
    if (p != stackbuf)
        free(p);
}

void gc__log(int level, const char *fmt, ...)
{
    /* Before the threshold: Gunicorn's StatsD counts the calls, shown or not. */
    if (observer != NULL)
        observer(level);
    if (level == GC_LOG_EXCEPTION)
        level = GC_LOG_ERROR;
    if (level < threshold)
        return;
    char line[4096];
    int direct = route == NULL || in_route;
    size_t n = direct ? format_prefix(line, sizeof(line), level) : 0, prefix = n;
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof(line) - n - 1, fmt, ap);
    va_end(ap);
    if (m < 0)
        m = 0;
    n += (size_t)m < sizeof(line) - n - 1 ? (size_t)m : sizeof(line) - n - 2;
    if (direct) {
        line[n++] = '\n';
        emit(level, line, n, prefix);
    } else {
        to_route(level, line, n);
    }
}

void gc__log_block(int level, const char *header, const char *text)
{
    /* Before the threshold: Gunicorn's StatsD counts the calls, shown or not. */
    if (observer != NULL)
        observer(level);
    if (level == GC_LOG_EXCEPTION)
        level = GC_LOG_ERROR;
    if (level < threshold)
        return;
    size_t hl = strlen(header), tl = strlen(text);
    while (tl > 0 && text[tl - 1] == '\n')
        tl--;
    char stackbuf[8192];
    size_t total = tl > 0 ? hl + 1 + tl : hl;
    char *p = total <= sizeof(stackbuf) ? stackbuf : malloc(total);
    if (p != NULL) {
        memcpy(p, header, hl);
        p[hl] = '\n';
        memcpy(p + hl + 1, text, tl);
        if (route == NULL || in_route)
            gc__log_write_error(level, p, total);
        else
            to_route(level, p, total);
        if (p != stackbuf)
            free(p);
    }
}
