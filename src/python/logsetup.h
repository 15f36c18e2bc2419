/* logsetup.h: every logging destination, set from the settings: the error log, the
 * access log, syslog, captured output, Python logging configurations and StatsD.
 * Called by the master at start and on HUP; workers inherit the result. */
#ifndef GC_PYTHON_LOGSETUP_H
#define GC_PYTHON_LOGSETUP_H

#include "config/config.h"

/* Needs the GIL. Returns 0, or -1 after writing what failed (at start the master then exits 1; on a
 * reload the old destinations stay where possible). */
int gc__logging_configure(const gc__config_t *cfg, int reload);
/* USR1: reopens every log file (master and workers): the error and access logs,
 * --capture-output's descriptors 1 and 2, and the files of Python logging handlers (or
 * the logger class's reopen_files). Takes the GIL itself when Python is involved. */
void gc__logging_reopen(void);
/* After daemonizing (which points descriptors 1 and 2 at /dev/null): --capture-output
 * points them at the error log again. */
void gc__logging_after_daemon(void);

#endif
