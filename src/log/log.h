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
    /* Not a threshold: ERROR for a line with a traceback (Gunicorn's log.exception).
     * gc__log and gc__log_block write it as ERROR; the observer sees it apart. */
    GC_LOG_EXCEPTION = 41,
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
/* 1 when access lines are wanted: an access log file, syslog copies of access
 * lines, or a Python logging route that takes them (Gunicorn's rule). */
int gc__log_access_enabled(void);
/* Writes one access log line (without its newline) as one write(2) to the file, and
 * to syslog or the Python route as configured. */
void gc__log_access_write(const char *line, size_t len);

/* Called with the level of every error log line written (StatsD counts them), on
 * every route (file, syslog, Python logging). */
void gc__log_set_observer(void (*fn)(int level));

/* --capture-output: when on and the error log is a file, descriptors 1 and 2 are
 * dup2'd onto it now and again after each reopen (gc__log_reopen), so the
 * application's print()s and C writes follow the log through logrotate. Call again
 * after anything that replaced descriptors 1 and 2 (daemonizing). The caller flushes
 * Python's sys.stdout/sys.stderr first. */
void gc__log_capture(int on);

/* Syslog copies (log/syslog.h): error lines, and access lines when `access` is set,
 * also go to the syslog socket. Off until set. */
void gc__log_set_syslog(int error, int access);

/* The Python logging route (python/logbridge.c). When a route is set, gc__log and
 * gc__log_block hand the message (no "[time] [pid] [LEVEL] " prefix, no final
 * newline) to `fn` instead of writing it, and gc__log_access_write hands over its line
 * with `access` set. `fn` may be called on any thread, with or without the GIL, and
 * is never re-entered on one thread: a line logged from inside it is written
 * directly. NULL restores the C writers. */
typedef void (*gc__log_route_fn)(int level, const char *msg, size_t len, int access);
void gc__log_set_route(gc__log_route_fn fn, int access_on);
/* The C writers, for the route's own handlers: one error line at `level` (prefix
 * added here) to the error log file and syslog; one access line to the access log
 * file and syslog. Neither checks the threshold nor calls the observer. */
void gc__log_write_error(int level, const char *msg, size_t len);
void gc__log_write_access(const char *line, size_t len);

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
