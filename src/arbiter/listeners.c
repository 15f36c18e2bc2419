/* listeners.c: the master's listening sockets (see internal.h): opened at start
 * (inherited from an old master after USR2, from systemd's socket activation, or
 * bound from --bind), rebound when a HUP changes --bind, closed when the master stops.
 * The workers inherit the descriptors through fork; binding itself is proc/listen.c. */
#include "arbiter/internal.h"

#include <errno.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log/log.h"
#include "proc/process.h"
#include "python/tls.h"

/* A unix socket file stays when another master shares it (USR2) or systemd owns it,
 * as in Gunicorn. */
static int may_unlink_sockets(const gc__arbiter_t *a)
{
    return !a->reexec_pid && !a->reexec_parent && !a->systemd;
}

void gc__arbiter_close_listeners(gc__arbiter_t *a)
{
    int unlink_files = may_unlink_sockets(a);
    for (size_t i = 0; i < a->nlisteners; i++)
        gc__listener_close(&a->listeners[i], unlink_files);
}

/* How cfg's --bind addresses are bound. A unix socket file is given to the workers'
 * user and group, as Gunicorn does, so that a front end in that group can connect
 * while --umask keeps everyone else out; with --user alone the group is that user's
 * primary group, the one the workers switch to. */
static gc__bind_opts_t bind_opts(const gc__config_t *cfg)
{
    gc__bind_opts_t o = {
        .backlog = (int)gc__cfg_int(cfg, GC_S_backlog),
        .reuse_port = gc__cfg_int(cfg, GC_S_reuse_port) != 0,
        .umask = (int)gc__cfg_int(cfg, GC_S_umask),
        .uid = (uid_t)-1,
        .gid = (gid_t)-1,
    };
    if (cfg->v[GC_S_user].set)
        o.uid = (uid_t)gc__cfg_int(cfg, GC_S_user);
    if (cfg->v[GC_S_group].set) {
        o.gid = (gid_t)gc__cfg_int(cfg, GC_S_group);
    } else if (cfg->v[GC_S_user].set) {
        const struct passwd *pw = getpwuid(o.uid);
        if (pw != NULL)
            o.gid = pw->pw_gid;
    }
    return o;
}

/* GUNICORN_FD: the comma-separated descriptors an old master handed over. */
static int adopt_inherited(gc__arbiter_t *a, const char *inherited)
{
    char *copy = strdup(inherited), *save = NULL;
    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save))
        if (gc__listener_adopt(&a->listeners[a->nlisteners], atoi(tok)) == 0)
            a->nlisteners++;
    free(copy);
    unsetenv("GUNICORN_FD");
    return a->nlisteners ? 0 : -EBADF;
}

int gc__arbiter_open_listeners(gc__arbiter_t *a)
{
    const char *inherited = getenv("GUNICORN_FD");
    int nsystemd = gc__systemd_listen_fds();
    size_t want = inherited ? 1 : nsystemd ? (size_t)nsystemd : a->cfg->v[GC_S_bind].n;
    if (inherited)
        for (const char *p = inherited; *p; p++)
            want += *p == ',';
    a->listeners = calloc(want ? want : 1, sizeof(*a->listeners));
    if (a->listeners == NULL)
        return -ENOMEM;
    if (inherited)
        return adopt_inherited(a, inherited);
    if (nsystemd) {
        a->systemd = 1;
        for (int i = 0; i < nsystemd; i++)
            if (gc__listener_adopt(&a->listeners[a->nlisteners], 3 + i) == 0)
                a->nlisteners++;
        return a->nlisteners ? 0 : -EBADF;
    }
    gc__bind_opts_t opts = bind_opts(a->cfg);
    for (size_t i = 0; i < a->cfg->v[GC_S_bind].n; i++) {
        if (gc__listener_open(&a->listeners[i], a->cfg->v[GC_S_bind].items[i], &opts) < 0)
            return -EADDRNOTAVAIL;
        a->nlisteners++;
    }
    return 0;
}

void gc__arbiter_log_listeners(const gc__arbiter_t *a, int with_pid)
{
    gc__buf_t urls;
    gc__buf_init(&urls);
    /* Under TLS every listener speaks https (Gunicorn's form of the same line). */
    int tls = gc__py_tls_enabled(a->cfg);
    for (size_t i = 0; i < a->nlisteners; i++) {
        const char *url = a->listeners[i].url;
        int http = tls && strncmp(url, "http://", 7) == 0;
        gc__buf_printf(&urls, "%s%s%s", i ? "," : "", http ? "https://" : "", http ? url + 7 : url);
    }
    /* One line for all listeners, comma-joined, as Gunicorn logs them; at start with
     * the master's pid, after a HUP without (Gunicorn's two forms). */
    if (with_pid)
        gc__info("Listening at: %s (%ld)", urls.data ? urls.data : "", (long)getpid());
    else
        gc__info("Listening at: %s", urls.data ? urls.data : "");
    gc__buf_free(&urls);
}

/* A HUP changed --bind: the listeners for addresses still wanted are kept (no port is
 * released, and no file replaced), the new addresses are bound with cfg's options,
 * and the listeners no longer wanted are closed, their socket files removed. The
 * workers being retired keep their own copies of the old sockets until they exit.
 * All or nothing: when an address cannot be bound the current listeners stay. */
int gc__arbiter_rebind(gc__arbiter_t *a, const gc__config_t *cfg)
{
    const gc__setting_value_t *bind = &cfg->v[GC_S_bind];
    size_t n = bind->n, i = 0;
    int rc = -ENOMEM;
    gc__listener_t *fresh = calloc(n ? n : 1, sizeof(*fresh));
    char *kept = calloc(a->nlisteners ? a->nlisteners : 1, 1); /* old listener reused */
    char *opened = calloc(n ? n : 1, 1);                       /* fresh one bound here */
    if (fresh == NULL || kept == NULL || opened == NULL)
        goto out;
    gc__bind_opts_t opts = bind_opts(cfg);
    for (i = 0; i < n; i++) {
        size_t j = 0;
        while (j < a->nlisteners &&
               (kept[j] || !gc__listener_matches(&a->listeners[j], bind->items[i])))
            j++;
        if (j < a->nlisteners) {
            fresh[i] = a->listeners[j]; /* takes over its fd and path */
            kept[j] = 1;
            continue;
        }
        rc = gc__listener_open(&fresh[i], bind->items[i], &opts);
        if (rc < 0)
            goto out;
        opened[i] = 1;
    }
    int unlink_files = may_unlink_sockets(a);
    for (size_t j = 0; j < a->nlisteners; j++)
        if (!kept[j])
            gc__listener_close(&a->listeners[j], unlink_files);
    free(a->listeners);
    a->listeners = fresh;
    a->nlisteners = n;
    fresh = NULL;
    rc = 0;
out:
    for (size_t k = 0; fresh && k < i; k++)
        if (opened[k])
            gc__listener_close(&fresh[k], 1);
    free(fresh);
    free(kept);
    free(opened);
    return rc;
}
