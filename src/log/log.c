/* log.c: the error log (see log.h). */
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

static int threshold = GC_LOG_INFO;
static int log_fd = STDERR_FILENO;
static char *log_path;     /* owned; NULL while logging to stderr */
static int access_fd = -1; /* -1: no access log */
static char *access_path;  /* owned; NULL for stdout or none */
static void (*observer)(int level);

static int open_append(const char *path)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    return fd < 0 ? -errno : fd;
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
    int fd = open_append(path);
    if (fd < 0)
        return fd;
    char *copy = strdup(path);
    if (copy == NULL) {
        close(fd);
        return -ENOMEM;
    }
    free(log_path);
    log_path = copy;
    if (log_fd == STDERR_FILENO) {
        log_fd = fd;
    } else {
        dup2(fd, log_fd);
        close(fd);
    }
    return 0;
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
    int fd = open_append(path);
    if (fd < 0)
        return fd;
    char *copy = strdup(path);
    if (copy == NULL) {
        close(fd);
        return -ENOMEM;
    }
    free(access_path);
    access_path = copy;
    if (access_fd > STDERR_FILENO) {
        dup2(fd, access_fd); /* keeps the number, as the error log does */
        close(fd);
    } else {
        access_fd = fd;
    }
    return 0;
}

int gc__log_access_enabled(void)
{
    return access_fd >= 0;
}

static void write_fd(int fd, const char *p, size_t n);

void gc__log_access_write(const char *line, size_t len)
{
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

void gc__log(int level, const char *fmt, ...)
{
    if (level < threshold)
        return;
    char line[4096];
    size_t n = format_prefix(line, sizeof(line), level);
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof(line) - n - 1, fmt, ap);
    va_end(ap);
    if (m < 0)
        m = 0;
    n += (size_t)m < sizeof(line) - n - 1 ? (size_t)m : sizeof(line) - n - 2;
    line[n++] = '\n';
    write_all(line, n);
    if (observer != NULL)
        observer(level);
}

void gc__log_block(int level, const char *header, const char *text)
{
    if (level < threshold)
        return;
    char prefix[256];
    size_t n = format_prefix(prefix, sizeof(prefix), level);
    size_t hl = strlen(header), tl = strlen(text);
    char stackbuf[8192];
    size_t total = n + hl + 1 + tl + 1;
    char *p = total <= sizeof(stackbuf) ? stackbuf : malloc(total);
    if (p == NULL) {
        write_all(prefix, n);
        write_all(header, hl);
        write_all("\n", 1);
        write_all(text, tl);
        return;
    }
    size_t off = 0;
    memcpy(p + off, prefix, n), off += n;
    memcpy(p + off, header, hl), off += hl;
    p[off++] = '\n';
    memcpy(p + off, text, tl), off += tl;
    if (tl == 0 || text[tl - 1] != '\n')
        p[off++] = '\n';
    write_all(p, off);
    if (p != stackbuf)
        free(p);
    if (observer != NULL)
        observer(level);
}
