/* main.c (arbiter layer): gc_main, from argv to a running server.
 *
 * Order matters: settings are parsed and checked before anything else, so a bad flag
 * costs nothing; the environment (--chdir, --env) is set before Python starts, so the
 * application sees it; Python starts before the first fork, so workers inherit it. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <Python.h>

#include "arbiter/arbiter.h"
#include "config/config.h"
#include "gunicorn_c.h"
#include "log/log.h"
#include "python/interp.h"

static const char *const worker_classes[] = {
    "sync", "gunicorn.workers.sync.SyncWorker", "egg:gunicorn#sync", NULL};

static int check_worker_class(gc__config_t *cfg)
{
    const char *k = gc__cfg_str(cfg, GC_S_worker_class);
    for (size_t i = 0; worker_classes[i]; i++) {
        if (strcmp(k, worker_classes[i]) == 0) {
            free(cfg->v[GC_S_worker_class].s);
            cfg->v[GC_S_worker_class].s = strdup("sync");
            return 0;
        }
    }
    fprintf(stderr, "Error: worker class '%s' is not available in gunicorn-c; use 'sync'.\n", k);
    return -EINVAL;
}

/* Applies --env KEY=VALUE pairs to the process environment. */
static int apply_env(const gc__config_t *cfg)
{
    const gc__setting_value_t *env = &cfg->v[GC_S_raw_env];
    for (size_t i = 0; i < env->n; i++) {
        char *eq = strchr(env->items[i], '=');
        if (eq == NULL || eq == env->items[i]) {
            fprintf(stderr, "Error: Invalid value for raw_env: '%s' (expected KEY=VALUE)\n",
                    env->items[i]);
            return -EINVAL;
        }
        *eq = '\0';
        setenv(env->items[i], eq + 1, 1);
        *eq = '=';
    }
    return 0;
}

int gc_main(int argc, char **argv)
{
    gc__config_t cfg;
    int rc = 1;
    if (gc__config_init(&cfg) < 0) {
        fprintf(stderr, "Error: out of memory\n");
        return 1;
    }
    int parsed = gc__config_parse_args(&cfg, argc - 1, argv + 1);
    if (parsed == GC_PARSE_EXIT_OK) {
        rc = 0;
        goto out;
    }
    if (parsed != GC_PARSE_OK) {
        rc = parsed == GC_PARSE_USAGE ? 2 : 1;
        goto out;
    }
    if (gc__config_validate(&cfg) < 0 || check_worker_class(&cfg) < 0)
        goto out;
    if (cfg.app_uri == NULL) {
        fprintf(stderr, "Error: No application module specified.\n");
        goto out;
    }
    gc__log_set_level_name(gc__cfg_str(&cfg, GC_S_loglevel));
    const char *dir = gc__cfg_str(&cfg, GC_S_chdir);
    if (dir != NULL && chdir(dir) < 0) {
        fprintf(stderr, "Error: can't chdir to '%s': %s\n", dir, strerror(errno));
        goto out;
    }
    if (apply_env(&cfg) < 0)
        goto out;
    if (gc__py_init(&cfg, argc, argv) < 0)
        goto out;
    rc = gc__arbiter_run(&cfg, argc, argv);
    Py_FinalizeEx();
out:
    gc__config_free(&cfg);
    return rc;
}
