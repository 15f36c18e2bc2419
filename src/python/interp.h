/* interp.h: the embedded interpreter, the process environment and the application.
 *
 * The arbiter starts CPython once, before reading the configuration (the config file
 * is Python), and workers inherit the initialised interpreter through fork. Each worker
 * then imports the application, unless the arbiter preloaded it. All functions but
 * gc__py_start need the GIL. */
#ifndef GC_PYTHON_INTERP_H
#define GC_PYTHON_INTERP_H

#include <Python.h>

#include "config/config.h"

/* Exit codes Gunicorn's master understands. */
#define GC_EXIT_WORKER_BOOT_ERROR 3
#define GC_EXIT_APP_LOAD_ERROR 4

/* Starts the interpreter with our signal handling (Python installs none); argv becomes
 * sys.argv. Also makes the table of interned strings (python/pystr.h). Returns 0 or -1
 * (an error line has been printed). */
int gc__py_start(int argc, char **argv);

/* Gunicorn's Application.chdir: os.chdir(dir), then dir first on sys.path unless it is
 * already there. Returns 0, or -1 with a Python exception set. */
int gc__py_chdir(const char *dir);

/* --pythonpath: each comma-separated entry, made absolute, is inserted at sys.path[0]
 * unless already present (so the last one ends up first, as in Gunicorn). Returns 0 or
 * -1 (logged). */
int gc__py_add_pythonpath(const gc__config_t *cfg);

/* --env: sets each KEY=VALUE in os.environ (and so in the C environment). Variables a
 * previous call set are first restored to what they were, so that a reload can drop
 * one. Prints "Error: environment setting 'X' invalid" and returns -1 for an entry
 * without "=". */
int gc__py_apply_env(const gc__config_t *cfg);

/* Records how gc__py_load_app reads its uri: as APP_MODULE, or, when cfg came from a
 * command line with --paste, as a PasteDeploy ini path (with raw_paste_global_conf as
 * the ini's global_conf). gc__config_load calls it; workers inherit it through fork.
 * Returns 0 or -1 (printed). */
int gc__py_set_app_source(const gc__config_t *cfg);

/* Imports the application named by uri (see gc__py_set_app_source):
 *   module              the attribute `application` of module
 *   module:name         an attribute
 *   module:factory()    the result of calling an attribute; literal arguments such as
 *                       factory('a', debug=True) are allowed (Python's literal_eval)
 * On success stores a new reference in *app and returns 0. Otherwise reports the
 * failure as a Gunicorn worker does and returns GC_EXIT_APP_LOAD_ERROR (the name does
 * not lead to a callable: the message alone is printed on stderr) or
 * GC_EXIT_WORKER_BOOT_ERROR (the import itself failed: logged with its traceback). */
int gc__py_load_app(const char *uri, PyObject **app);

/* --check-config: loads the application and drops it. On failure prints "Error while
 * loading the application:" and the traceback on stderr, and returns -1. */
int gc__py_check_app(const char *uri);

/* Logs the pending Python exception with its traceback under `header` and clears it. */
void gc__py_log_exception(int level, const char *header);

/* Formats the pending exception as Python's traceback.print_exc() would, writes it to
 * stderr and clears it. */
void gc__py_print_exception(void);

/* An invariant: between two calls into Python no exception is pending; whoever gets
 * one handles it (logs it, turns it into a 500 or an exit status) and clears it. A
 * pending exception carried further makes the next call into Python fail ("returned
 * a result with an exception set"), in a forked child too. GC_PY_ASSERT_CLEAN(where)
 * checks it, with the GIL held, where a process is about to fork or a loop about to
 * wait: in debug builds a pending exception is printed with `where` and the process
 * aborts; without them (NDEBUG) it costs nothing. */
#ifdef NDEBUG
#define GC_PY_ASSERT_CLEAN(where) ((void)0)
#else
#define GC_PY_ASSERT_CLEAN(where) gc__py_assert_clean(where)
void gc__py_assert_clean(const char *where);
#endif

#endif
