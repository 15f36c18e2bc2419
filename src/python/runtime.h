/* runtime.h: calling server hooks with Gunicorn-shaped objects.
 *
 * The objects (Server, Worker, Request, Response, Config, a logger) are defined in
 * runtime.py, compiled into the executable; this module imports it, keeps the one
 * Server object of the process, and calls hooks through it. All functions need the
 * GIL; those that call a hook do nothing (and cost nothing) when the hook is not
 * configured.
 *
 * A hook that raises gets Gunicorn's treatment for that hook (docs/signals.md):
 *   - on_starting, when_ready, the first nworkers_changed, on_exit: the master stops
 *     with SystemExit's status, or 1 after any other exception;
 *   - pre_fork, child_exit, on_reload, a later nworkers_changed, pre_exec: the master
 *     (for pre_exec, the new master) stops with SystemExit's status, or 255;
 *   - post_fork, post_worker_init: the worker exits with SystemExit's status, or 3 (a
 *     boot error, which halts the master);
 *   - pre_request, post_request, worker_int, worker_abort, worker_exit: the exception,
 *     SystemExit included, is logged and the worker goes on.
 * Every exception is logged with its traceback (a SystemExit that stops the process
 * is not, as in Python) and cleared: no call here returns with one pending. */
#ifndef GC_PYTHON_RUNTIME_H
#define GC_PYTHON_RUNTIME_H

#include <Python.h>

#include "config/config.h"
#include "http/parser.h"
#include "python/hooks.h"

/* Makes the built-in module _gunicorn_c importable, once: the C side of runtime.py
 * (log, reopen_logs) and of logbridge.py (write_error, write_access, route_off).
 * Returns 0, or -1 with an exception set. */
int gc__rt_add_c_module(void);

/* Imports the runtime and makes the Server object from cfg. Returns 0 or -1 (logged). */
int gc__rt_start(const gc__config_t *cfg);
/* A Config object for cfg, as hooks get it (returns owned, or NULL with an exception
 * set). Imports the runtime if gc__rt_start has not run yet. */
PyObject *gc__rt_config_new(const gc__config_t *cfg);
/* A post_request hook taking `arity` (2 or 3) arguments, wrapped in one that takes
 * the four Gunicorn passes (runtime.py's wrap_post_request). hook is borrowed; returns
 * owned, or NULL with an exception set. Imports the runtime if needed. */
PyObject *gc__rt_wrap_post_request(PyObject *hook, int arity);
/* A function of runtime.py by name (e.g. "parse_control_request"): owned, or NULL with
 * an exception set. Imports the runtime if needed. */
PyObject *gc__rt_function(const char *name);
/* Replaces server.cfg after a reload. */
int gc__rt_reconfigure(const gc__config_t *cfg);
/* --spew: installs the line tracer (runtime.py) on the calling thread, which must hold
 * the GIL. A failure is logged. */
void gc__rt_spew(void);
/* The files a --reload-extra-file glob pattern (a str) matches now, as a new list of
 * str; NULL with an exception set on failure. Needs the GIL. */
PyObject *gc__rt_glob(PyObject *pattern);

/* The Server object (borrowed). */
PyObject *gc__rt_server(void);
/* Sets an int attribute on a runtime object (errors are logged and cleared). */
void gc__rt_set_long(PyObject *obj, const char *name, long value);
void gc__rt_set_bool(PyObject *obj, const char *name, int value);

/* Master-side hooks: (server) for on_starting, when_ready, on_reload, pre_exec and
 * on_exit; (server, worker) for pre_fork and child_exit, with worker borrowed. Returns
 * 0, or -1 when the hook stops the master (see above): *status is then the exit
 * status. */
int gc__rt_master_hook(enum gc__hook_id id, PyObject *worker, int *status);
/* nworkers_changed(server, new, old); old < 0 passes None (the first assignment).
 * Returns as gc__rt_master_hook. */
int gc__rt_nworkers_changed(long new_value, long old_value, int *status);
/* A new Worker object for a worker about to be forked (returns owned, or NULL). */
PyObject *gc__rt_worker_new(unsigned age);
/* Worker-side hooks: post_fork and worker_exit take (server, worker); post_worker_init,
 * worker_int and worker_abort take (worker). worker is borrowed. Returns 0, or -1 when
 * the hook raised (logged). When post_fork or post_worker_init raises, the worker
 * exits here, failing its boot, and the call does not return. */
int gc__rt_worker_hook(enum gc__hook_id id, PyObject *worker);

/* True when pre_request or post_request is configured. */
int gc__rt_request_hooks(void);
/* Builds the `req` object for a request (owned, or NULL with the error logged). */
PyObject *gc__rt_request_new(PyObject *environ, const gc__http_request_t *req);
/* Returns 0, or -1 when the hook raised (logged): Gunicorn then answers 500 without
 * calling the application. */
int gc__rt_pre_request(PyObject *worker, PyObject *req);
void gc__rt_post_request(PyObject *worker, PyObject *req, PyObject *environ, PyObject *status,
                         PyObject *headers, unsigned long long sent);

#endif
