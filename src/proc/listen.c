/* listen.c: binding --bind addresses (see listen.h). */
#include "proc/listen.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "log/log.h"

int gc__address_parse(const char *text, gc__address_t *addr)
{
    memset(addr, 0, sizeof(*addr));
    if (strncmp(text, "unix:", 5) == 0) {
        if (text[5] == '\0' || strlen(text + 5) >= sizeof(((struct sockaddr_un *)0)->sun_path))
            return -EINVAL;
        addr->unix_path = strdup(text + 5);
        return addr->unix_path ? 0 : -ENOMEM;
    }
    const char *host = text, *port = "8000";
    size_t hlen;
    if (text[0] == '[') {
        const char *end = strchr(text, ']');
        if (end == NULL)
            return -EINVAL;
        host = text + 1;
        hlen = (size_t)(end - host);
        if (end[1] == ':')
            port = end + 2;
        else if (end[1] != '\0')
            return -EINVAL;
    } else {
        const char *colon = strrchr(text, ':');
        if (colon != NULL && strchr(text, ':') != colon)
            return -EINVAL; /* a bare IPv6 address must be bracketed */
        hlen = colon ? (size_t)(colon - text) : strlen(text);
        if (colon)
            port = colon + 1;
    }
    if (hlen >= sizeof(addr->host) || strlen(port) >= sizeof(addr->port) || *port == '\0')
        return -EINVAL;
    for (const char *c = port; *c; c++)
        if (*c < '0' || *c > '9')
            return -EINVAL;
    if (atol(port) > 65535)
        return -EINVAL;
    memcpy(addr->host, host, hlen);
    addr->host[hlen] = '\0';
    if (hlen == 0)
        strcpy(addr->host, "0.0.0.0");
    strcpy(addr->port, port);
    return 0;
}

static int bind_unix(gc__listener_t *l, const char *path, const gc__bind_opts_t *o)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
    /* A socket file left by a crashed server would make bind fail: remove it, but
     * never remove something that is not a socket. */
    struct stat st;
    if (lstat(path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode))
            return -EEXIST;
        unlink(path);
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    /* --umask decides the socket file's mode and --user/--group its owner, as in
     * Gunicorn: a front end in the workers' group can connect, others cannot. */
    mode_t old = umask((mode_t)o->umask);
    int rc = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
    umask(old);
    if (rc < 0) {
        rc = -errno;
        goto fail;
    }
    if ((o->uid != (uid_t)-1 || o->gid != (gid_t)-1) && chown(path, o->uid, o->gid) < 0) {
        rc = -errno;
        gc__error("Cannot give %s to the workers' user and group: %s", path, strerror(-rc));
        unlink(path);
        goto fail;
    }
    if (listen(fd, o->backlog) < 0) {
        rc = -errno;
        unlink(path);
        goto fail;
    }
    l->fd = fd;
    return 0;
fail:
    close(fd);
    return rc;
}

/* Fills host, port and url from the socket's own address (port 0 picked a free one). */
static void describe(gc__listener_t *l)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    memset(&ss, 0, sizeof(ss));
    getsockname(l->fd, (struct sockaddr *)&ss, &sl);
    if (ss.ss_family == AF_UNIX) {
        struct sockaddr_un *un = (struct sockaddr_un *)&ss;
        l->is_unix = 1;
        snprintf(l->host, sizeof(l->host), "%s", un->sun_path);
        snprintf(l->url, sizeof(l->url), "unix:%s", un->sun_path);
        if (l->unix_path == NULL && un->sun_path[0] != '\0')
            l->unix_path = strdup(un->sun_path);
        return;
    }
    char port[8] = "";
    getnameinfo((struct sockaddr *)&ss, sl, l->host, sizeof(l->host), port, sizeof(port),
                NI_NUMERICHOST | NI_NUMERICSERV);
    snprintf(l->port, sizeof(l->port), "%s", port);
    if (ss.ss_family == AF_INET6)
        snprintf(l->url, sizeof(l->url), "http://[%s]:%s", l->host, l->port);
    else
        snprintf(l->url, sizeof(l->url), "http://%s:%s", l->host, l->port);
}

int gc__listener_adopt(gc__listener_t *l, int fd)
{
    memset(l, 0, sizeof(*l));
    int type = 0;
    socklen_t tl = sizeof(type);
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl) < 0 || type != SOCK_STREAM)
        return -ENOTSOCK;
    fcntl(fd, F_SETFD, FD_CLOEXEC);
    l->fd = fd;
    l->adopted = 1;
    describe(l);
    return 0;
}

static int bind_inet(gc__listener_t *l, const gc__address_t *a, const gc__bind_opts_t *o)
{
    struct addrinfo hints = {
        .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE};
    struct addrinfo *res = NULL;
    int rc = getaddrinfo(a->host, a->port, &hints, &res);
    if (rc != 0)
        return rc == EAI_SYSTEM ? -errno : -EADDRNOTAVAIL;
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        rc = -errno;
        goto out;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (o->reuse_port)
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
    if (res->ai_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    if (bind(fd, res->ai_addr, res->ai_addrlen) < 0 || listen(fd, o->backlog) < 0) {
        rc = -errno;
        close(fd);
        goto out;
    }
    l->fd = fd;
    describe(l);
    rc = 0;
out:
    freeaddrinfo(res);
    return rc;
}

int gc__listener_open(gc__listener_t *l, const char *text, const gc__bind_opts_t *opts)
{
    memset(l, 0, sizeof(*l));
    l->fd = -1;
    if (strncmp(text, "fd://", 5) == 0) {
        char *end;
        long fd = strtol(text + 5, &end, 10);
        if (*end != '\0' || fd < 0 || gc__listener_adopt(l, (int)fd) < 0) {
            gc__error("Invalid address: %s (not a listening socket)", text);
            return -EINVAL;
        }
        return 0;
    }
    gc__address_t a;
    int rc = gc__address_parse(text, &a);
    if (rc < 0) {
        gc__error("Invalid address: %s", text);
        return rc;
    }
    for (int attempt = 0; attempt < 5; attempt++) {
        if (a.unix_path) {
            rc = bind_unix(l, a.unix_path, opts);
        } else {
            rc = bind_inet(l, &a, opts);
        }
        if (rc != -EADDRINUSE)
            break;
        gc__error("Connection in use: %s", text);
        gc__error("Retrying in 1 second.");
        sleep(1);
    }
    if (rc < 0) {
        if (rc != -EADDRINUSE)
            gc__error("Can't bind %s: %s", text, strerror(-rc));
        gc__error("Can't connect to %s", text);
        free(a.unix_path);
        return rc;
    }
    if (a.unix_path) {
        l->is_unix = 1;
        l->unix_path = a.unix_path;
        snprintf(l->url, sizeof(l->url), "unix:%s", a.unix_path);
        snprintf(l->host, sizeof(l->host), "%s", a.unix_path);
    }
    return 0;
}

int gc__listener_matches(const gc__listener_t *l, const char *text)
{
    if (l->fd < 0)
        return 0;
    if (strncmp(text, "fd://", 5) == 0) {
        char *end;
        long fd = strtol(text + 5, &end, 10);
        return *end == '\0' && fd == l->fd;
    }
    gc__address_t a;
    if (gc__address_parse(text, &a) < 0)
        return 0;
    if (a.unix_path) {
        int same = l->is_unix && l->unix_path && strcmp(l->unix_path, a.unix_path) == 0;
        free(a.unix_path);
        return same;
    }
    if (l->is_unix || strcmp(a.port, "0") == 0)
        return 0;
    /* Resolved as bind_inet resolves it, so "localhost:8000" finds 127.0.0.1:8000. */
    struct addrinfo hints = {
        .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE};
    struct addrinfo *res = NULL;
    if (getaddrinfo(a.host, a.port, &hints, &res) != 0)
        return 0;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    memset(&ss, 0, sizeof(ss));
    int same = 0;
    if (getsockname(l->fd, (struct sockaddr *)&ss, &sl) == 0 && ss.ss_family == res->ai_family) {
        if (ss.ss_family == AF_INET) {
            const struct sockaddr_in *x = (const struct sockaddr_in *)&ss;
            const struct sockaddr_in *y = (const struct sockaddr_in *)res->ai_addr;
            same = x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
        } else if (ss.ss_family == AF_INET6) {
            const struct sockaddr_in6 *x = (const struct sockaddr_in6 *)&ss;
            const struct sockaddr_in6 *y = (const struct sockaddr_in6 *)res->ai_addr;
            same = x->sin6_port == y->sin6_port &&
                   memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr)) == 0;
        }
    }
    freeaddrinfo(res);
    return same;
}

void gc__listener_close(gc__listener_t *l, int unlink_path)
{
    if (l->fd >= 0)
        close(l->fd);
    l->fd = -1;
    if (l->unix_path && unlink_path && !l->adopted)
        unlink(l->unix_path);
    free(l->unix_path);
    l->unix_path = NULL;
}
