/* main.c (arbiter layer): gunicorn_c_main, from argv to a running server; the library's
 * public entry points (include/gunicorn_c.h).
 *
 * Order matters. Python starts first, because the config file is Python. Then every
 * source of settings is loaded in Gunicorn's order (src/python/config_file.h), which
 * also changes to --chdir. The environment (--env) and --pythonpath are applied before
 * --check-config / --print-config load the application, so that the check sees what
 * the workers will see. Workers inherit the interpreter and the environment through
 * fork. */
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include <Python.h>

#include "arbiter/arbiter.h"
#include "config/config.h"
#include "gunicorn_c.h"
#include "python/config_file.h"
#include "python/interp.h"

const char *gunicorn_c_version(void)
{
    return GUNICORN_C_VERSION_STRING;
}

int gunicorn_c_main(int argc, char **argv)
{
    /* An embedding program gets one server per process (the header says why), and
     * never one that would initialise, then finalise, the program's own interpreter. */
    static atomic_flag ran = ATOMIC_FLAG_INIT;
    if (atomic_flag_test_and_set(&ran)) {
        fprintf(stderr, "Error: gunicorn_c_main runs only once per process\n");
        return 1;
    }
    if (Py_IsInitialized()) {
        fprintf(stderr, "Error: gunicorn_c_main embeds CPython itself; "
                        "the program has already initialised Python\n");
        return 1;
    }
    gc__config_t cfg;
    memset(&cfg, 0, sizeof(cfg));
    if (gc__py_start(argc, argv) < 0)
        return 1;
    int rc = 1;
    int loaded = gc__config_load(&cfg, argc, argv);
    if (loaded != GC_PARSE_OK) {
        rc = loaded == GC_PARSE_EXIT_OK ? 0 : loaded == GC_PARSE_USAGE ? 2 : 1;
        goto out;
    }
    if (gc__py_apply_env(&cfg) < 0 || gc__py_add_pythonpath(&cfg) < 0)
        goto out;
    int print = gc__cfg_int(&cfg, GC_S_print_config) != 0;
    if (print) {
        gc__config_print(&cfg, stdout);
        fflush(stdout);
    }
    if (print || gc__cfg_int(&cfg, GC_S_check_config)) {
        rc = gc__py_check_app(cfg.app_uri) == 0 ? 0 : 1;
        goto out;
    }
    rc = gc__arbiter_run(&cfg, argc, argv);
out:
    gc__config_free(&cfg);
    fflush(stdout);
    if (Py_FinalizeEx() < 0 && rc == 0)
        rc = 120;
    return rc;
}
