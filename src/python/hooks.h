/* hooks.h: the server hooks a config file defines (Gunicorn's "Server Hooks" settings).
 *
 * The config-file loader stores each callable here; the arbiter and the workers call
 * them through src/python/runtime.h with Gunicorn-shaped server/worker/req/resp
 * objects. One registry per process: a forked worker inherits the arbiter's. */
#ifndef GC_PYTHON_HOOKS_H
#define GC_PYTHON_HOOKS_H

#include <Python.h>

#define GC_HOOKS(X)                                                                                \
    X(on_starting)                                                                                 \
    X(on_reload)                                                                                   \
    X(when_ready)                                                                                  \
    X(pre_fork)                                                                                    \
    X(post_fork)                                                                                   \
    X(post_worker_init)                                                                            \
    X(worker_int)                                                                                  \
    X(worker_abort)                                                                                \
    X(pre_exec)                                                                                    \
    X(pre_request)                                                                                 \
    X(post_request)                                                                                \
    X(child_exit)                                                                                  \
    X(worker_exit)                                                                                 \
    X(nworkers_changed)                                                                            \
    X(on_exit)

enum gc__hook_id {
#define X(name) GC_HOOK_##name,
    GC_HOOKS(X)
#undef X
        GC_HOOK__COUNT
};

/* The hook's setting name ("on_starting"). */
const char *gc__hook_name(enum gc__hook_id id);
/* Returns the id for a setting name, or -1. */
int gc__hook_find(const char *name);
/* Borrowed reference to the configured callable, or NULL when none is set. */
PyObject *gc__hook_get(enum gc__hook_id id);
/* Stores a new reference to callable (NULL clears). */
void gc__hook_set(enum gc__hook_id id, PyObject *callable);
/* Forgets every hook (before a config reload). */
void gc__hooks_clear(void);

#endif
