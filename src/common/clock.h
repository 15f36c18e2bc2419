/* clock.h: the monotonic clock every layer measures intervals with. */
#ifndef GC_COMMON_CLOCK_H
#define GC_COMMON_CLOCK_H

#include <stdint.h>

/* CLOCK_MONOTONIC in milliseconds: heartbeats, uptimes, request ages. */
uint64_t gc__monotonic_ms(void);
/* The same in microseconds: request durations (the access log, StatsD, metrics). */
uint64_t gc__monotonic_us(void);

#endif
