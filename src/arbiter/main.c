/* main.c (arbiter layer): gc_main, from argv to a running server.
 *
 * Order matters. Python starts first, because the config file is Python. Then every
 * source of settings is loaded in Gunicorn's order (src/python/config_file.h), which
 * also changes to --chdir. The environment (--env) and --pythonpath are applied before
 * --check-config / --print-config load the application, so that the check sees what
 * the workers will see. Workers inherit the interpreter and the environment through
 * fork. */
#include <stdio.h>
#include <string.h>

#include <Python.h>

#include "arbiter/arbiter.h"
#include "config/config.h"
#include "gunicorn_c.h"
#include "python/config_file.h"
#include "python/interp.h"

int gc_main(int argc, char **argv)
{
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
