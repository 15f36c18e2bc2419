/* setup.h: every logging destination, set from the settings: the error log, the access
 * log file, syslog, captured output, StatsD, and (through a bridge the Python layer
 * registers) Python logging configurations and logger classes. Called by the master at
 * start and on HUP; workers inherit the result through fork. The access log's line
 * format is the WSGI layer's (gc__access_configure), set by the master beside this. */
#ifndef GC_LOG_SETUP_H
#define GC_LOG_SETUP_H

#include <stddef.h>

#include "config/config.h"

/* What the log layer asks of the layer that runs Python. Each call takes the GIL itself
 * (it may already be held). */
typedef struct {
    /* Applies the settings' Python logging configuration or logger class, or turns the
     * Python route off when there is none. Returns 0, or -1 with the reason in why. */
    int (*configure)(const gc__config_t *cfg, char *why, size_t whylen);
    /* Flushes Python's buffered sys.stdout and sys.stderr. */
    void (*flush_stdio)(void);
    /* USR1: reopens the files of Python logging handlers (or calls the logger class's
     * reopen_files). Returns 0, or -1 when one could not be reopened. */
    int (*reopen)(void);
} gc__log_bridge_t;

/* Registers the bridge (NULL: none; every line stays in C). Called once, before the
 * first gc__logging_configure. */
void gc__logging_set_bridge(const gc__log_bridge_t *bridge);
/* Returns 0, or -1 after writing what failed (at start the master then exits 1; on a
 * reload the old destinations stay where possible). */
int gc__logging_configure(const gc__config_t *cfg, int reload);
/* USR1: reopens every log file (master and workers): the error and access logs,
 * --capture-output's descriptors 1 and 2, and the bridge's files. */
void gc__logging_reopen(void);
/* After daemonizing (which points descriptors 1 and 2 at /dev/null): --capture-output
 * points them at the error log again. */
void gc__logging_after_daemon(void);

#endif
