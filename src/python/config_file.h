/* config_file.h: the whole configuration, loaded in Gunicorn's order.
 *
 * Gunicorn's Application.load_config, step by step:
 *   1. defaults (some from the environment: PORT, WEB_CONCURRENCY, ...);
 *   2. what the application itself brings: APP_MODULE names default_proc_name, and
 *      --paste an ini file (default_proc_name, logconfig, [server:main] host/port);
 *   3. the config file: -c on the command line, else -c in GUNICORN_CMD_ARGS, else
 *      ./gunicorn.conf.py if it exists; run as the Python module __config__, its
 *      module-level names that are settings are applied, hooks included;
 *   4. GUNICORN_CMD_ARGS (shlex-split; its positional arguments are ignored);
 *   5. the command line.
 * A higher source replaces a value, lists included. The process changes to the default
 * working directory before the config file runs and to --chdir at the end, each time
 * putting that directory first on sys.path, as Gunicorn does. */
#ifndef GC_PYTHON_CONFIG_FILE_H
#define GC_PYTHON_CONFIG_FILE_H

#include <Python.h>

#include "config/config.h"

/* Loads every source in Gunicorn's order into cfg (freshly initialised by the callee;
 * the caller frees it with gc__config_free whatever the result). argv is the whole
 * command line, argv[0] included. Requires a running interpreter. On success the hook
 * registry (python/hooks.h) holds the new hooks, gc__py_set_app_source has recorded how
 * the application is to be loaded, and the log level is set; on failure the hooks of
 * the configuration in force are left as they were (a failed reload changes nothing).
 * Logs a warning for each setting that is given but not yet active, and for each
 * config-file name that looks meant as a setting but is not one. Returns GC_PARSE_OK,
 * GC_PARSE_EXIT_OK (-h, -v: exit 0), GC_PARSE_USAGE (usage error: exit 2), or -1 after
 * printing the error (exit 1). */
int gc__config_load(gc__config_t *cfg, int argc, char **argv);

/* The Python value of a setting whose value only a config file can give and that is
 * not a server hook: secure_scheme_headers, logconfig_dict, ssl_context, the dirty
 * arbiter hooks. Borrowed; NULL when the setting has its default. Server hooks are in
 * the hook registry (gc__hook_get). */
PyObject *gc__config_object(enum gc__setting_id id);

#endif
