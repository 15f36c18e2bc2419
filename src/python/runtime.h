/* runtime.h: calling server hooks with Gunicorn-shaped objects.
 *
 * The objects (Server, Worker, Request, Response, Config, a logger) are defined in
 * runtime.py, compiled into the executable; this module imports it, keeps the one
 * Server object of the process, and calls hooks through it. A hook that raises is
 * logged and the server goes on. All functions need the GIL; those that call a hook
 * do nothing (and cost nothing) when the hook is not configured. */
#ifndef GC_PYTHON_RUNTIME_H
#define GC_PYTHON_RUNTIME_H

#include <Python.h>

#include "config/config.h"
#include "http/parser.h"
#include "python/hooks.h"

/* Imports the runtime and makes the Server object from cfg. Returns 0 or -1 (logged). */
int gc__rt_start(const gc__config_t *cfg);
/* A Config object for cfg, as hooks get it (returns owned, or NULL with an exception
 * set). Imports the runtime if gc__rt_start has not run yet. */
PyObject *gc__rt_config_new(const gc__config_t *cfg);
/* Replaces server.cfg after a reload. */
int gc__rt_reconfigure(const gc__config_t *cfg);

/* The Server object (borrowed). */
PyObject *gc__rt_server(void);
/* Sets an int attribute on a runtime object (errors are logged and cleared). */
void gc__rt_set_long(PyObject *obj, const char *name, long value);
void gc__rt_set_bool(PyObject *obj, const char *name, int value);

/* Hooks taking (server): on_starting, when_ready, on_reload, pre_exec, on_exit. */
void gc__rt_server_hook(enum gc__hook_id id);
/* A new Worker object for a worker about to be forked (returns owned, or NULL). */
PyObject *gc__rt_worker_new(unsigned age);
/* Hooks about a worker: pre_fork, post_fork, child_exit, worker_exit take (server,
 * worker); post_worker_init, worker_int, worker_abort take (worker). */
void gc__rt_worker_hook(enum gc__hook_id id, PyObject *worker);
/* nworkers_changed(server, new, old); old < 0 passes None (the first assignment). */
void gc__rt_nworkers_changed(long new_value, long old_value);

/* True when pre_request or post_request is configured. */
int gc__rt_request_hooks(void);
/* Builds the `req` object for a request (owned, or NULL with the error logged). */
PyObject *gc__rt_request_new(PyObject *environ, const gc__http_request_t *req);
void gc__rt_pre_request(PyObject *worker, PyObject *req);
void gc__rt_post_request(PyObject *worker, PyObject *req, PyObject *environ, PyObject *status,
                         PyObject *headers, unsigned long long sent);

#endif
