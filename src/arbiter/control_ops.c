/* control_ops.c: the arbiter's side of the control socket (see internal.h): the
 * gc__control_ops_t through which control.c reads the master's state and changes it,
 * and the socket's opening. The socket itself is control.c's. */
#include "arbiter/internal.h"

#include <errno.h>

static size_t ctl_workers(void *arg, gc__control_worker_t *out, size_t cap)
{
    gc__arbiter_t *a = arg;
    for (size_t i = 0; i < a->nworkers && i < cap; i++) {
        const gc__child_t *c = &a->workers[i];
        out[i] = (gc__control_worker_t){.pid = c->pid,
                                        .age = c->age,
                                        .slot = c->slot,
                                        .aborted = c->aborted,
                                        .retiring = c->retiring,
                                        .spawned_ms = c->spawned_ms};
    }
    return a->nworkers;
}

static void ctl_counts(void *arg, gc__control_counts_t *out)
{
    gc__arbiter_t *a = arg;
    *out = a->counts;
    out->target = a->num_workers;
}

/* `worker add/remove`: as TTIN/TTOU, the loop forks or retires between two turns. */
static long ctl_scale(void *arg, long delta)
{
    gc__arbiter_t *a = arg;
    if (a->stopping)
        return -1;
    long n = a->num_workers + delta;
    gc__arbiter_set_num_workers(a, n < 1                        ? 1
                                   : n > GC_ARBITER_MAX_WORKERS ? GC_ARBITER_MAX_WORKERS
                                                                : n);
    return a->num_workers;
}

static int ctl_kill_worker(void *arg, pid_t pid)
{
    gc__arbiter_t *a = arg;
    for (size_t i = 0; i < a->nworkers; i++)
        if (a->workers[i].pid == pid) {
            kill(pid, SIGTERM);
            a->counts.killed++;
            return 0;
        }
    return -ESRCH;
}

static const gc__config_t *ctl_config(void *arg)
{
    return ((gc__arbiter_t *)arg)->cfg;
}

static const gc__listener_t *ctl_listeners(void *arg, size_t *n)
{
    gc__arbiter_t *a = arg;
    *n = a->nlisteners;
    return a->listeners;
}

static const gc__control_ops_t control_ops = {
    .workers = ctl_workers,
    .counts = ctl_counts,
    .scale = ctl_scale,
    .kill_worker = ctl_kill_worker,
    .config = ctl_config,
    .listeners = ctl_listeners,
};

/* A new master started by USR2 waits until it is promoted: until then the old master
 * answers at the path, and the new one never takes the socket from under a master
 * still in charge. */
void gc__arbiter_start_control(gc__arbiter_t *a)
{
    if (a->control_tried || a->reexec_parent || a->stopping)
        return;
    a->control_tried = 1;
    if (gc__cfg_int(a->cfg, GC_S_control_socket_disable))
        return;
    const char *path = gc__cfg_str(a->cfg, GC_S_control_socket);
    if (path == NULL || *path == '\0')
        return;
    a->control = gc__control_start(
        a->loop, path, (int)gc__cfg_int(a->cfg, GC_S_control_socket_mode), &control_ops, a, &a->sb);
}
