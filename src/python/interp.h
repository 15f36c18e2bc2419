/* interp.h: the embedded interpreter and the application import.
 *
 * The arbiter starts CPython once (for the config file and hooks, and so that workers
 * inherit an initialised interpreter through fork); each worker then imports the
 * application named by APP_MODULE. */
#ifndef GC_PYTHON_INTERP_H
#define GC_PYTHON_INTERP_H

#include <Python.h>

#include "config/config.h"

/* Exit codes Gunicorn's master understands. */
#define GC_EXIT_WORKER_BOOT_ERROR 3
#define GC_EXIT_APP_LOAD_ERROR 4

/* Starts the interpreter with our signal handling (Python installs none) and puts the
 * working directory and --pythonpath entries first on sys.path. Returns 0 or -1 (an
 * error line has been printed). */
int gc__py_init(const gc__config_t *cfg, int argc, char **argv);

/* Imports APP_MODULE ("pkg.module[:name]", name defaulting to "application", or
 * "name()" for a factory without arguments). On success stores a new reference in
 * *app and returns 0; otherwise logs why and returns GC_EXIT_WORKER_BOOT_ERROR or
 * GC_EXIT_APP_LOAD_ERROR. */
int gc__py_load_app(const char *uri, PyObject **app);

/* Logs the pending Python exception with its traceback under `header` and clears it. */
void gc__py_log_exception(int level, const char *header);

#endif
