/* log.h: the error log, in Gunicorn's line format.
 *
 *   [2026-11-26 03:16:08 +0000] [20440] [INFO] Starting gunicorn-c 0.1.0
 *
 * Each line is formatted into one buffer and written with a single write(2), so lines
 * from the arbiter and its workers never interleave mid-line on a shared stderr. */
#ifndef GC_LOG_LOG_H
#define GC_LOG_LOG_H

#include <stddef.h>

enum gc__log_level {
    GC_LOG_DEBUG = 10,
    GC_LOG_INFO = 20,
    GC_LOG_WARNING = 30,
    GC_LOG_ERROR = 40,
    GC_LOG_CRITICAL = 50,
};

/* Sets the threshold from a Gunicorn level name (debug, info, warning, error, critical).
 * Returns 0, or -EINVAL for an unknown name. */
int gc__log_set_level_name(const char *name);
void gc__log_set_level(int level);
int gc__log_enabled(int level);

/* Sends the error log to `path` ("-" or NULL is stderr), opened for appending. The log
 * keeps one descriptor number for its whole life (reopening dup2s onto it), so a
 * descriptor handed to Python's faulthandler stays valid. Returns 0 or -errno. */
int gc__log_open(const char *path);
/* Reopens the log file (USR1, after logrotate moved it). Returns 0 or -errno. */
int gc__log_reopen(void);
/* The descriptor the error log writes to. */
int gc__log_fd(void);

/* The access log's destination: `path` ("-" is stdout; NULL turns it off), opened
 * for appending; reopened by gc__log_reopen too. Returns 0 or -errno. */
int gc__log_access_open(const char *path);
int gc__log_access_enabled(void);
/* Writes one access log line (without its newline) as one write(2). */
void gc__log_access_write(const char *line, size_t len);

/* Called with the level of every error log line written (StatsD counts them). */
void gc__log_set_observer(void (*fn)(int level));

/* Writes one line at `level` if it passes the threshold. */
void gc__log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Writes `text` (may hold several lines, e.g. a Python traceback) after a log line
 * header at `level`, as one write. */
void gc__log_block(int level, const char *header, const char *text);

#define gc__debug(...) gc__log(GC_LOG_DEBUG, __VA_ARGS__)
#define gc__info(...) gc__log(GC_LOG_INFO, __VA_ARGS__)
#define gc__warning(...) gc__log(GC_LOG_WARNING, __VA_ARGS__)
#define gc__error(...) gc__log(GC_LOG_ERROR, __VA_ARGS__)
#define gc__critical(...) gc__log(GC_LOG_CRITICAL, __VA_ARGS__)

#endif
