/* statsd.h: StatsD metrics, with Gunicorn's names (gunicorn.requests,
 * gunicorn.request.duration, gunicorn.request.status.<code>, gunicorn.workers,
 * gunicorn.log.<level>), sent as UDP (or unix datagram) packets that never block. */
#ifndef GC_LOG_STATSD_H
#define GC_LOG_STATSD_H

#include "config/config.h"

/* Opens the socket for --statsd-host (none: metrics off). Returns 0, or -1 after
 * logging. The socket is made in the master and inherited by workers. */
int gc__statsd_configure(const gc__config_t *cfg);
int gc__statsd_enabled(void);
/* Per request: requests, request.duration (ms) and request.status.<code>. */
void gc__statsd_request(int status_code, double duration_ms);
/* gunicorn.workers, from the master when the number changes. */
void gc__statsd_workers(long n);

#endif
