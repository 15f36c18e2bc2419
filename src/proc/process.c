/* process.c: pidfile, titles, daemon, privileges, systemd (see process.h). */
#include "proc/process.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stddef.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

extern char **environ;

static char *title_area;
static size_t title_cap;

void gc__proctitle_init(int argc, char **argv)
{
    if (argc < 1 || argv == NULL || argv[0] == NULL)
        return;
    /* The kernel lays argv strings and then environ strings end to end. Only that
     * block may be overwritten; a synthetic argv (an embedding program) is left
     * alone. */
    char *end = argv[0] + strlen(argv[0]) + 1;
    for (int i = 1; i < argc; i++) {
        if (argv[i] != end)
            return;
        end = argv[i] + strlen(argv[i]) + 1;
    }
    size_t nenv = 0;
    for (; environ[nenv]; nenv++) {
        if (environ[nenv] != end)
            break;
        end = environ[nenv] + strlen(environ[nenv]) + 1;
    }
    /* Move the environment out of the way before we write over it. */
    size_t total = 0;
    while (environ[total])
        total++;
    char **moved = calloc(total + 1, sizeof(*moved));
    if (moved == NULL)
        return;
    for (size_t i = 0; i < total; i++)
        if ((moved[i] = strdup(environ[i])) == NULL)
            return;
    environ = moved;
    /* Callers copy what they need of argv first (Python's sys.argv and the USR2
     * re-exec keep their own copies): from here on its strings are the title. */
    title_area = argv[0];
    title_cap = (size_t)(end - argv[0]);
}

void gc__proctitle_set(const char *fmt, ...)
{
    char title[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(title, sizeof(title), fmt, ap);
    va_end(ap);
    prctl(PR_SET_NAME, title, 0, 0, 0);
    if (title_area == NULL || title_cap < 2)
        return;
    size_t n = strlen(title);
    if (n >= title_cap)
        n = title_cap - 1;
    memcpy(title_area, title, n);
    memset(title_area + n, 0, title_cap - n);
}

static pid_t read_pid(const char *path)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return 0;
    long pid = 0;
    if (fscanf(f, "%ld", &pid) != 1)
        pid = 0;
    fclose(f);
    return (pid_t)pid;
}

int gc__pidfile_write(const char *path, pid_t pid)
{
    pid_t old = read_pid(path);
    if (old > 0 && old != pid && (kill(old, 0) == 0 || errno == EPERM))
        return -EEXIST;
    char tmp[4096];
    snprintf(tmp, sizeof(tmp), "%s.%ld.tmp", path, (long)pid);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return -errno;
    char line[32];
    int n = snprintf(line, sizeof(line), "%ld\n", (long)pid);
    if (write(fd, line, (size_t)n) != n) {
        int err = -errno;
        close(fd);
        unlink(tmp);
        return err;
    }
    close(fd);
    if (rename(tmp, path) < 0) {
        int err = -errno;
        unlink(tmp);
        return err;
    }
    return 0;
}

void gc__pidfile_remove(const char *path, pid_t pid)
{
    if (path != NULL && read_pid(path) == pid)
        unlink(path);
}

int gc__pidfile_rename(const char *from, const char *to)
{
    return rename(from, to) < 0 ? -errno : 0;
}

int gc__daemonize(int keep_stdio)
{
    pid_t pid = fork();
    if (pid < 0)
        return -errno;
    if (pid > 0)
        _exit(0);
    setsid();
    pid = fork();
    if (pid < 0)
        return -errno;
    if (pid > 0)
        _exit(0);
    int fd = open("/dev/null", O_RDWR);
    if (fd >= 0) {
        dup2(fd, STDIN_FILENO);
        if (!keep_stdio || isatty(STDOUT_FILENO))
            dup2(fd, STDOUT_FILENO);
        if (!keep_stdio || isatty(STDERR_FILENO))
            dup2(fd, STDERR_FILENO);
        if (fd > STDERR_FILENO)
            close(fd);
    }
    return 0;
}

static int all_digits(const char *s)
{
    if (*s == '\0')
        return 0;
    for (; *s; s++)
        if (*s < '0' || *s > '9')
            return 0;
    return 1;
}

int gc__lookup_uid(const char *name, uid_t *uid, gid_t *gid)
{
    struct passwd *pw = all_digits(name) ? getpwuid((uid_t)atol(name)) : getpwnam(name);
    if (pw == NULL) {
        if (!all_digits(name))
            return -ENOENT;
        *uid = (uid_t)atol(name); /* a number without a passwd entry is still a uid */
        return 0;
    }
    *uid = pw->pw_uid;
    if (gid)
        *gid = pw->pw_gid;
    return 0;
}

int gc__lookup_gid(const char *name, gid_t *gid)
{
    if (all_digits(name)) {
        *gid = (gid_t)atol(name);
        return 0;
    }
    struct group *gr = getgrnam(name);
    if (gr == NULL)
        return -ENOENT;
    *gid = gr->gr_gid;
    return 0;
}

int gc__drop_privileges(uid_t uid, gid_t gid, int want_initgroups)
{
    if (gid != getgid()) {
        if (want_initgroups) {
            struct passwd *pw = getpwuid(uid);
            if (pw != NULL && initgroups(pw->pw_name, gid) < 0)
                return -errno;
        } else if (getuid() == 0 && setgroups(0, NULL) < 0) {
            return -errno;
        }
        if (setgid(gid) < 0)
            return -errno;
    }
    if (uid != getuid() && setuid(uid) < 0)
        return -errno;
    return 0;
}

long gc__nofile_raise(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return -errno;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0 && getrlimit(RLIMIT_NOFILE, &rl) < 0)
            return -errno;
    }
    return rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur > (rlim_t)LONG_MAX ? LONG_MAX
                                                                          : (long)rl.rlim_cur;
}

int gc__systemd_listen_fds(void)
{
    const char *pid = getenv("LISTEN_PID"), *fds = getenv("LISTEN_FDS");
    if (pid == NULL || fds == NULL || atol(pid) != (long)getpid())
        return 0;
    int n = atoi(fds);
    unsetenv("LISTEN_PID");
    unsetenv("LISTEN_FDS");
    unsetenv("LISTEN_FDNAMES");
    return n > 0 ? n : 0;
}

int gc__sd_notify(const char *state)
{
    const char *path = getenv("NOTIFY_SOCKET");
    if (path == NULL || *path == '\0')
        return 0;
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    size_t len = strlen(path);
    if (len >= sizeof(sa.sun_path))
        return -EINVAL;
    memcpy(sa.sun_path, path, len);
    if (sa.sun_path[0] == '@')
        sa.sun_path[0] = '\0'; /* abstract namespace */
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    socklen_t sl = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
    ssize_t w = sendto(fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *)&sa, sl);
    int err = w < 0 ? -errno : 0;
    close(fd);
    return err;
}
