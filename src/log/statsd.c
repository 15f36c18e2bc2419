/* statsd.c: StatsD metrics (see statsd.h). */
#include "log/statsd.h"

int gc__statsd_configure(const gc__config_t *cfg)
{
    (void)cfg;
    return 0;
}

int gc__statsd_enabled(void)
{
    return 0;
}

void gc__statsd_request(int status_code, double duration_ms)
{
    (void)status_code;
    (void)duration_ms;
}

void gc__statsd_workers(long n)
{
    (void)n;
}
