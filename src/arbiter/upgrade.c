/* upgrade.c: USR2, the binary upgrade (see internal.h).
 *
 * The old master forks, and the child executes the executable on disk with the same
 * arguments, handing over the listening sockets in GUNICORN_FD and its own pid in
 * GUNICORN_PID. The new master serves beside the old one under the names "Master.2"
 * and "<proc_name>.2", its pidfile at "<pidfile>.2", and leaves the control socket to
 * the old one. When the old master is gone (the new one's parent changed), the new
 * one is promoted: it renames the pidfile and takes the plain names. */
#include "arbiter/internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log/log.h"
#include "proc/process.h"

void gc__arbiter_inherit(gc__arbiter_t *a)
{
    const char *inherited_pid = getenv("GUNICORN_PID");
    if (inherited_pid != NULL) {
        a->reexec_parent = (pid_t)atol(inherited_pid);
        unsetenv("GUNICORN_PID");
        if (a->reexec_parent != getppid())
            a->reexec_parent = 0;
    }
    if (a->reexec_parent) {
        a->master_name = "Master.2";
        strncat(a->proc_name, ".2", sizeof(a->proc_name) - strlen(a->proc_name) - 1);
    }
}

/* In the forked child: pre_exec, then the sockets and our pid in the environment,
 * the signals as a fresh process has them, and execv. Never returns. */
__attribute__((noreturn)) static void exec_new_master(gc__arbiter_t *a, pid_t master,
                                                      const sigset_t *old)
{
    /* A pre_exec hook that raises ends this new master before it executes; the old
     * one goes on. */
    int status;
    if (gc__rt_master_hook(GC_HOOK_pre_exec, NULL, &status) < 0) {
        fflush(NULL);
        _exit(status);
    }
    gc__buf_t fds;
    gc__buf_init(&fds);
    for (size_t i = 0; i < a->nlisteners; i++) {
        int fd = a->listeners[i].fd;
        fcntl(fd, F_SETFD, 0); /* survive exec */
        gc__buf_printf(&fds, "%s%d", i ? "," : "", fd);
    }
    char pidbuf[32];
    snprintf(pidbuf, sizeof(pidbuf), "%ld", (long)master);
    setenv("GUNICORN_PID", pidbuf, 1);
    setenv("GUNICORN_FD", fds.data ? fds.data : "", 1);
    if (chdir(a->cwd) < 0) {
        /* keep going: the new master resolves paths the way it would anyway */
    }
    for (int s = 1; s < NSIG; s++)
        signal(s, SIG_DFL);
    sigprocmask(SIG_SETMASK, old, NULL);
    execv(a->exe, a->argv);
    gc__error("Cannot re-execute %s: %s", a->exe, strerror(errno));
    _exit(1);
}

void gc__arbiter_reexec(gc__arbiter_t *a)
{
    if (a->reexec_pid) {
        gc__warning("USR2 signal ignored. Child exists.");
        return;
    }
    if (a->reexec_parent) {
        gc__warning("USR2 signal ignored. Parent exists.");
        return;
    }
    pid_t master = getpid();
    sigset_t old;
    pid_t pid = gc__arbiter_fork(&old);
    if (pid == 0)
        exec_new_master(a, master, &old);
    if (pid < 0) {
        gc__error("Cannot fork a new master: %s", strerror(errno));
        return;
    }
    a->reexec_pid = pid;
}

/* The old master is gone: take its names. The log line comes last, so whoever reads
 * it finds the pidfile and the title already in place. */
static void promote(gc__arbiter_t *a)
{
    a->reexec_parent = 0;
    a->master_name = "Master";
    const char *configured = gc__cfg_str(a->cfg, GC_S_pidfile);
    if (a->pidfile && configured && gc__pidfile_rename(a->pidfile, configured) == 0) {
        free(a->pidfile);
        a->pidfile = strdup(configured);
    }
    size_t n = strlen(a->proc_name);
    if (n > 2 && strcmp(a->proc_name + n - 2, ".2") == 0)
        a->proc_name[n - 2] = '\0';
    gc__proctitle_set("gunicorn-c: master [%s]", a->proc_name);
    gc__info("Master has been promoted.");
}

void gc__arbiter_check_promotion(gc__arbiter_t *a)
{
    if (a->reexec_parent && getppid() != a->reexec_parent)
        promote(a);
}
