/* process.h: process-level chores of the arbiter and workers: the pidfile, process
 * titles, daemonizing, dropping privileges, and the systemd protocols (socket
 * activation and sd_notify). Plain C, no Python. */
#ifndef GC_PROC_PROCESS_H
#define GC_PROC_PROCESS_H

#include <sys/types.h>

/* Prepares process titles: called with the process's real argv (its memory, and the
 * environment's after it, become the title area; the environment is moved to the
 * heap). Does nothing when argv is not the kernel-provided block. */
void gc__proctitle_init(int argc, char **argv);
/* Sets the title shown by ps and /proc/PID/cmdline (and the 15-character comm name). */
void gc__proctitle_set(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Writes our pid to path (atomically, via a temporary file and rename). Fails with
 * -EEXIST when path names a live process other than us. */
int gc__pidfile_write(const char *path, pid_t pid);
/* Removes path if it still holds pid. */
void gc__pidfile_remove(const char *path, pid_t pid);
/* Renames our pidfile (after a binary upgrade is promoted). */
int gc__pidfile_rename(const char *from, const char *to);

/* Detaches from the terminal (fork, setsid, fork, stdio to /dev/null). The parent
 * exits 0. Returns 0 in the daemon or a negative errno. With keep_stdio
 * (--enable-stdio-inheritance) only stdin goes to /dev/null, and stdout or stderr only
 * when it is a terminal: output redirected to a file or a pipe stays there. */
int gc__daemonize(int keep_stdio);

/* Looks up a user or group given by name or number. Return 0 or -ENOENT. */
int gc__lookup_uid(const char *name, uid_t *uid, gid_t *gid);
int gc__lookup_gid(const char *name, gid_t *gid);
/* Switches a worker to uid/gid (when different from the current ones), with the
 * user's supplementary groups when `initgroups` is set. Returns 0 or -errno. */
int gc__drop_privileges(uid_t uid, gid_t gid, int initgroups);

/* Raises the soft limit on open files (RLIMIT_NOFILE) to the hard limit. Returns the
 * soft limit now in force, or a negative errno. */
long gc__nofile_raise(void);

/* systemd socket activation: when LISTEN_PID is us, returns LISTEN_FDS (the
 * descriptors start at 3) and unsets both variables; else 0. */
int gc__systemd_listen_fds(void);
/* Sends `state` to $NOTIFY_SOCKET when it is set. Returns 0, or -errno. */
int gc__sd_notify(const char *state);

#endif
