/* arbiter.h: the master process.
 *
 * The arbiter binds the listeners, forks the workers and then lives in a libuv loop:
 * signals arrive as uv_signal_t callbacks, children are reaped on SIGCHLD and replaced,
 * and a stop sends the workers TERM (graceful) or QUIT (quick), escalating to KILL
 * after --graceful-timeout. Python runs in the arbiter only for configuration. */
#ifndef GC_ARBITER_ARBITER_H
#define GC_ARBITER_ARBITER_H

#include "config/config.h"

/* Runs the server until it stops. argv is the process's own (for USR2 re-exec, HUP
 * reloads and process titles). Returns the process exit status (0, 1, 3 or 4). */
int gc__arbiter_run(gc__config_t *cfg, int argc, char **argv);

#endif
