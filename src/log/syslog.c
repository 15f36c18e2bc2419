/* syslog.c: log lines to a syslog daemon (see syslog.h).
 *
 * Gunicorn parses the address itself and hands the result to Python's SysLogHandler;
 * both halves are reproduced here: the parse (host in brackets for IPv6, port 514 when
 * absent, "localhost" when empty) and the handler's behaviour (a unix socket tried as a
 * datagram socket first, then as a stream, unless "#dgram" forces datagrams; a unix
 * socket reconnected once when a send fails, as after a syslog daemon restart). */
#include "log/syslog.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "log/log.h"

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static int sock = -1;
static int facility_code = 1;
static char tags[2][320]; /* "gunicorn.<prefix>.error: " and "...access: " */
static char unix_path[sizeof(((struct sockaddr_un *)0)->sun_path)];
static int unix_type; /* 0: not a unix socket; else the type forced, or -1 to try both */

static const struct {
    const char *name;
    int code;
} facilities[] = {
    {"auth", 4},    {"authpriv", 10}, {"cron", 9},    {"daemon", 3},  {"ftp", 11},
    {"kern", 0},    {"lpr", 6},       {"mail", 2},    {"news", 7},    {"security", 4},
    {"syslog", 5},  {"user", 1},      {"uucp", 8},    {"local0", 16}, {"local1", 17},
    {"local2", 18}, {"local3", 19},   {"local4", 20}, {"local5", 21}, {"local6", 22},
    {"local7", 23},
};

int gc__syslog_facility(const char *name)
{
    for (size_t i = 0; name != NULL && i < sizeof(facilities) / sizeof(facilities[0]); i++)
        if (strcasecmp(name, facilities[i].name) == 0)
            return facilities[i].code;
    return -1;
}

/* Python's SysLogHandler.mapPriority, then the syslog severity numbers. */
static int severity(int level)
{
    if (level >= GC_LOG_CRITICAL)
        return 2;
    if (level >= GC_LOG_ERROR)
        return 3;
    if (level >= GC_LOG_WARNING)
        return 4;
    if (level >= GC_LOG_INFO)
        return 6;
    return 7;
}

static int set_flags(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
        return -errno;
    return 0;
}

static int connect_unix(const char *path, int type)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    memcpy(sa.sun_path, path, strlen(path) + 1);
    int fd = socket(AF_UNIX, type | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        int err = -errno;
        close(fd);
        return err;
    }
    return fd;
}

/* Datagrams first, a stream if the path is a stream socket (Python's order). */
static int open_unix(const char *path, int type)
{
    if (type != -1)
        return connect_unix(path, type);
    int fd = connect_unix(path, SOCK_DGRAM);
    if (fd == -EPROTOTYPE)
        fd = connect_unix(path, SOCK_STREAM);
    return fd;
}

static int open_inet(const char *host, const char *port, int type)
{
    struct addrinfo hints = {.ai_socktype = type}, *res = NULL;
    if (getaddrinfo(host, port, &hints, &res) != 0)
        return -EHOSTUNREACH;
    int fd = -ECONNREFUSED;
    for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) {
            fd = -errno;
            continue;
        }
        /* A datagram socket is connected too: sends need no address, and the first
         * address that resolves is the one Python would send to. */
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
            break;
        int err = -errno;
        close(fd);
        fd = err;
    }
    freeaddrinfo(res);
    return fd;
}

/* Gunicorn's parse_syslog_address, connecting as it goes. */
static int open_addr(const char *addr, const char **why)
{
    if (strncmp(addr, "unix://", 7) == 0) {
        const char *path = addr + 7, *hash = strchr(path, '#');
        size_t n = hash ? (size_t)(hash - path) : strlen(path);
        if (n == 0 || n >= sizeof(unix_path)) {
            *why = "invalid syslog address";
            return -EINVAL;
        }
        memcpy(unix_path, path, n);
        unix_path[n] = '\0';
        unix_type = hash && strcmp(hash + 1, "dgram") == 0 ? SOCK_DGRAM : -1;
        int fd = open_unix(unix_path, unix_type);
        if (fd < 0)
            *why = "cannot connect to the syslog socket";
        return fd;
    }
    int type;
    if (strncmp(addr, "udp://", 6) == 0)
        type = SOCK_DGRAM;
    else if (strncmp(addr, "tcp://", 6) == 0)
        type = SOCK_STREAM;
    else {
        *why = "invalid syslog address";
        return -EINVAL;
    }
    unix_type = 0;
    const char *rest = addr + 6;
    char host[256] = "localhost", port[16] = "514";
    const char *after = rest; /* what follows the host: ":PORT" or nothing */
    if (rest[0] == '[' && strchr(rest, ']') != NULL) {
        const char *end = strchr(rest, ']');
        snprintf(host, sizeof(host), "%.*s", (int)(end - rest - 1), rest + 1);
        after = end + 1;
    } else if (*rest != '\0') {
        size_t n = strcspn(rest, ":");
        if (n > 0)
            snprintf(host, sizeof(host), "%.*s", (int)n, rest);
        after = rest + n;
    }
    if (*after == ':') {
        const char *p = after + 1;
        size_t n = strlen(p);
        for (size_t i = 0; i < n; i++)
            if (!isdigit((unsigned char)p[i]))
                n = 0;
        if (n == 0 || n >= sizeof(port)) {
            *why = "not a valid port number";
            return -EINVAL;
        }
        memcpy(port, p, n + 1);
    }
    for (char *h = host; *h; h++)
        *h = (char)tolower((unsigned char)*h);
    int fd = open_inet(host, port, type);
    if (fd < 0)
        *why = "cannot connect to the syslog address";
    return fd;
}

int gc__syslog_open(const char *addr, int facility, const char *prefix, const char **why)
{
    *why = NULL;
    int fd = open_addr(addr ? addr : "udp://localhost:514", why);
    if (fd < 0)
        return fd;
    /* Connected (or failed) while blocking; every send from here on must not block. */
    set_flags(fd);
    pthread_mutex_lock(&lock);
    if (sock >= 0)
        close(sock);
    sock = fd;
    facility_code = facility;
    const char *kinds[2] = {"error", "access"};
    for (int k = 0; k < 2; k++)
        snprintf(tags[k], sizeof(tags[k]), "gunicorn.%s.%s: ", prefix, kinds[k]);
    pthread_mutex_unlock(&lock);
    return 0;
}

void gc__syslog_close(void)
{
    pthread_mutex_lock(&lock);
    if (sock >= 0)
        close(sock);
    sock = -1;
    pthread_mutex_unlock(&lock);
}

void gc__syslog_send(enum gc__syslog_kind kind, int level, const char *msg, size_t len)
{
    if (sock < 0)
        return;
    char stackbuf[4096];
    char head[400];
    int hn = snprintf(head, sizeof(head), "<%d>%s[%ld] ", facility_code * 8 + severity(level),
                      tags[kind], (long)getpid());
    if (hn < 0 || (size_t)hn >= sizeof(head))
        return;
    size_t total = (size_t)hn + len + 1;
    char *p = total <= sizeof(stackbuf) ? stackbuf : malloc(total);
    if (p == NULL)
        return;
    memcpy(p, head, (size_t)hn);
    memcpy(p + hn, msg, len);
    p[total - 1] = '\0';
    pthread_mutex_lock(&lock);
    ssize_t w = send(sock, p, total, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (w < 0 && unix_type != 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
        /* The daemon restarted (its socket file was replaced): one reconnect. */
        int fd = open_unix(unix_path, unix_type);
        if (fd >= 0) {
            set_flags(fd);
            dup3(fd, sock, O_CLOEXEC); /* keeps the number every thread knows */
            close(fd);
            send(sock, p, total, MSG_DONTWAIT | MSG_NOSIGNAL);
        }
    }
    pthread_mutex_unlock(&lock);
    if (p != stackbuf)
        free(p);
}
