/* statsd.h: StatsD metrics, with Gunicorn's names and wire format.
 *
 *   gunicorn.requests:1|c|@1.0             per request (and request.status.<code>)
 *   gunicorn.request.duration:2.417|ms     per request, milliseconds
 *   gunicorn.workers:4|g                   master, when the number changes
 *   gunicorn.backlog:0|h                   master, each second (--enable-backlog-metric)
 *   gunicorn.log.error:1|c|@1.0            each warning, error, exception, critical line
 *
 * each name behind --statsd-prefix and each line followed by "|#<tags>" when
 * --dogstatsd-tags is set. Metrics go out as UDP (or unix datagram) packets on one
 * non-blocking socket that the master opens and its workers inherit; sending never
 * blocks and never fails a request: a datagram nobody takes is dropped.
 *
 * Every function may be called from any thread of a worker; only
 * gc__statsd_configure changes the state, and only the master calls it, between two
 * turns of its loop. */
#ifndef GC_LOG_STATSD_H
#define GC_LOG_STATSD_H

#include <stddef.h>

#include "config/config.h"

/* Opens the socket for --statsd-host (unset: metrics off) and takes the prefix, tags
 * and backlog switch; replaces the previous configuration (HUP). Returns 0, or -1 after
 * writing why when the address is malformed (the master then refuses to start; on a
 * reload the previous configuration stays). An address that is well formed but cannot
 * be reached is a warning: the server runs without metrics, as Gunicorn does. */
int gc__statsd_configure(const gc__config_t *cfg);
int gc__statsd_enabled(void);
/* Per request: request.duration (ms), requests and request.status.<code>, in one
 * datagram. A status_code of 0 (no response began) sends no status counter. */
void gc__statsd_request(int status_code, double duration_ms);
/* gunicorn.workers, from the master; sent only when `n` differs from the last value. */
void gc__statsd_workers(long n);
/* Whether --enable-backlog-metric is on (and metrics are). */
int gc__statsd_backlog_enabled(void);
/* The accept queue length of listening TCP socket `fd` (Linux TCP_INFO), 0 for any
 * other socket, as Gunicorn counts them. */
long gc__statsd_queued(int fd);
/* gunicorn.backlog, the sum of gc__statsd_queued over the listeners. */
void gc__statsd_backlog(long queued);

/* --- pure helpers, exposed for the unit tests ---------------------------------------- */

typedef struct {
    int is_unix;
    char host[256]; /* lower-cased, brackets removed; "" for unix */
    char port[8];   /* decimal; "" for unix */
    char path[108]; /* the socket file (sun_path's size) for unix */
} gc__statsd_addr_t;

/* Parses --statsd-host as Gunicorn does: HOST, HOST:PORT, [IPv6]:PORT, tcp://...,
 * unix:PATH and unix://PATH; the port defaults to 8125, and "unix:NNNN" is the host
 * "unix" at port NNNN. Returns 0, -EINVAL for a malformed value (a port that is not
 * a number: Gunicorn refuses the setting), or, for values Gunicorn accepts but cannot
 * send to: -ERANGE for a port past 65535, -ENAMETOOLONG for a unix path too long for
 * sockaddr_un, -ENOTSUP for fd://N. */
int gc__statsd_parse_address(const char *text, gc__statsd_addr_t *out);

/* Writes the metric name prefix for --statsd-prefix `setting` into `out` (at most cap
 * bytes with the NUL) and returns its length, as snprintf does. Gunicorn's rule: the
 * setting without its trailing dots, plus one dot, when that leaves two characters or
 * more; otherwise the setting unchanged (so "" stays "", and a one-letter "a" gets no
 * dot). */
size_t gc__statsd_prefix(const char *setting, char *out, size_t cap);

/* Formats a duration in milliseconds as Python prints the float Gunicorn sends:
 * microsecond precision, trailing zeros dropped, at least one decimal ("2.0", "0.417",
 * "1500.25"). Returns the length written (out needs 32 bytes). */
size_t gc__statsd_format_ms(double ms, char *out, size_t cap);

#endif
