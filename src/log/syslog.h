/* syslog.h: copies of log lines sent to a syslog daemon, as Gunicorn's --log-syslog
 * does with Python's SysLogHandler:
 *
 *   <14>gunicorn.myapp.error: [4242] Booting worker with pid: 4242\0
 *
 * `<PRI>` is facility * 8 + severity (debug 7, info 6, warning 4, error 3, critical 2),
 * then "gunicorn.<prefix>.<error|access>: [pid] ", the message, and a NUL byte (Python
 * appends one; over TCP and unix streams it is the only separator). Addresses are
 * Gunicorn's: udp://HOST:PORT, tcp://HOST:PORT, unix://PATH[#dgram|#stream].
 *
 * The socket is made by the master (start and HUP) and inherited by the workers. Sends
 * never block: a datagram the kernel cannot take at once, or a stream that is full,
 * loses the line rather than stalling a worker. Safe to call from any thread. */
#ifndef GC_LOG_SYSLOG_H
#define GC_LOG_SYSLOG_H

#include <stddef.h>

enum gc__syslog_kind {
    GC_SYSLOG_ERROR,
    GC_SYSLOG_ACCESS,
};

/* Gunicorn's facility names (user, daemon, local0..local7, ...), case-insensitive.
 * Returns the facility number, or -1 for an unknown name. */
int gc__syslog_facility(const char *name);

/* Connects to `addr` (see above); `prefix` is --log-syslog-prefix, or the process
 * name with ':' turned into '.'. Replaces any earlier connection. Returns 0, or a
 * negative errno with *why (static text) saying what was wrong. */
int gc__syslog_open(const char *addr, int facility, const char *prefix, const char **why);
void gc__syslog_close(void);

/* Sends one line (`msg` borrowed, no trailing newline needed) at log level `level`. */
void gc__syslog_send(enum gc__syslog_kind kind, int level, const char *msg, size_t len);

#endif
