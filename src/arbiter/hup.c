/* hup.c: HUP, the reload (see internal.h).
 *
 * Every source of settings is loaded again, config file included, as Gunicorn does.
 * A configuration that loads replaces the one in force: the logs are reconfigured, a
 * changed --bind is bound before the new workers are forked, and the hook runtime sees
 * the new values. A configuration that fails to load changes nothing. Either way every
 * worker is replaced (make-before-break, children.c), so that a HUP always brings
 * fresh application code. */
#include "arbiter/internal.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log/log.h"
#include "log/setup.h"
#include "proc/process.h"
#include "python/config_file.h"
#include "python/interp.h"
#include "wsgi/access.h"

int gc__arbiter_configure_logs(const gc__config_t *cfg, int reload)
{
    if (gc__logging_configure(cfg, reload) < 0)
        return -1;
    return gc__access_configure(cfg);
}

static void free_config(gc__config_t *cfg)
{
    if (cfg) {
        gc__config_free(cfg);
        free(cfg);
    }
}

/* Returns owned, or NULL after logging that the configuration is invalid. */
static gc__config_t *load_config(const gc__arbiter_t *a)
{
    gc__config_t *cfg = calloc(1, sizeof(*cfg));
    int rc = cfg ? gc__config_load(cfg, a->argc, a->argv) : -1;
    if (rc == GC_PARSE_OK)
        rc = gc__py_apply_env(cfg) == 0 ? GC_PARSE_OK : -1;
    if (rc == GC_PARSE_OK)
        return cfg;
    gc__error("Reload failed: the configuration is invalid; keeping the current one");
    free_config(cfg);
    return NULL;
}

static int same_binds(const gc__config_t *x, const gc__config_t *y)
{
    const gc__setting_value_t *a = &x->v[GC_S_bind], *b = &y->v[GC_S_bind];
    if (a->n != b->n)
        return 0;
    for (size_t i = 0; i < a->n; i++)
        if (strcmp(a->items[i], b->items[i]) != 0)
            return 0;
    return 1;
}

/* A changed --bind is bound now, before the new workers are forked. Under systemd
 * socket activation the sockets are systemd's and --bind is ignored. */
static void rebind_if_changed(gc__arbiter_t *a, gc__config_t *cfg)
{
    if (a->systemd || cfg->v[GC_S_bind].n == 0 || same_binds(a->cfg, cfg))
        return;
    if (gc__arbiter_rebind(a, cfg) == 0) {
        gc__arbiter_log_listeners(a, 0);
        return;
    }
    /* The configuration records what is really bound, so that the next HUP tries the
     * new addresses again. */
    gc__error("Reload: cannot bind the new addresses; keeping the current listeners");
    gc__config_err_t err;
    const gc__setting_value_t *cur = &a->cfg->v[GC_S_bind];
    gc__config_set_list(cfg, GC_S_bind, (const char *const *)cur->items, cur->n, &err);
}

/* Takes ownership of cfg and puts it in force. */
static void adopt_config(gc__arbiter_t *a, gc__config_t *cfg)
{
    gc__arbiter_configure_logs(cfg, 1);
    rebind_if_changed(a, cfg);
    a->cfg = cfg;
    free_config(a->owned_cfg);
    a->owned_cfg = cfg;
    gc__rt_reconfigure(cfg);
    if (gc__cfg_int(cfg, GC_S_spew))
        gc__rt_spew(); /* as Gunicorn's reload: new workers are traced from here on */
}

void gc__arbiter_reload(gc__arbiter_t *a)
{
    gc__info("Hang up: Master");
    a->counts.reloads++;
    gc__config_t *cfg = load_config(a);
    if (cfg != NULL)
        adopt_config(a, cfg);
    int status;
    if (gc__rt_master_hook(GC_HOOK_on_reload, NULL, &status) < 0) {
        gc__arbiter_hook_stop(a, GC_HOOK_on_reload, status);
        return;
    }
    if (a->pidfile)
        gc__pidfile_write(a->pidfile, getpid());
    for (size_t i = 0; i < a->nworkers; i++)
        a->workers[i].retiring = 1;
    gc__arbiter_set_num_workers(a, gc__cfg_int(a->cfg, GC_S_workers));
}
