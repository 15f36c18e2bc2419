/* hsload.c: TLS handshakes per second, one full handshake per request.
 *
 * bench/tls.py compiles it at run time (cc -O2 hsload.c -lssl -lcrypto). It keeps
 * CONNS connections in flight for SECONDS: each one connects, does a full TLS
 * handshake (a fresh SSL object, no session cache, no tickets offered: nothing to
 * resume), sends one `GET PATH` with `Connection: close`, reads the response until the
 * server closes, and starts over. wrk and h2load cannot do this: both resume the
 * session on every reconnection (checked against nginx's $ssl_session_reused).
 *
 * Prints one line: HSLOAD {"requests": ..., "resumed": ..., ...} where requests counts
 * the 200 answers, resumed the handshakes the server resumed (0 expected), errors the
 * connections that failed, and duration_us the time measured.
 *
 *     hsload HOST PORT CONNS SECONDS PATH
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum state { CONNECTING, HANDSHAKE, SENDING, READING };

struct conn {
    int fd;
    SSL *ssl;
    enum state state;
    size_t sent;
    char head[16]; /* the first bytes of the response: its status line */
    size_t got;
};

static SSL_CTX *ctx;
static struct sockaddr_in addr;
static int ep;
static char request[512];
static size_t request_len;
static unsigned long n_requests, n_resumed, n_errors, n_handshakes, n_bad_status;
static char protocol[32] = "?", cipher[64] = "?";

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void watch(struct conn *c, int op, unsigned events)
{
    struct epoll_event ev = {.events = events, .data.ptr = c};
    if (epoll_ctl(ep, op, c->fd, &ev) < 0) {
        perror("epoll_ctl");
        exit(2);
    }
}

static void drop(struct conn *c)
{
    if (c->ssl)
        SSL_free(c->ssl);
    c->ssl = NULL;
    if (c->fd >= 0)
        close(c->fd); /* closing removes it from the epoll set */
    c->fd = -1;
}

/* Opens a new connection for slot C; returns 0, or -1 if the socket failed at once. */
static int start(struct conn *c)
{
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0)
        return -1;
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    c->state = CONNECTING;
    c->sent = c->got = 0;
    if (connect(c->fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 && errno != EINPROGRESS) {
        close(c->fd);
        c->fd = -1;
        return -1;
    }
    watch(c, EPOLL_CTL_ADD, EPOLLOUT);
    return 0;
}

/* Maps an SSL call's result to what to wait for: 1 done, 0 waiting, -1 failed. */
static int ssl_wait(struct conn *c, int ret)
{
    switch (SSL_get_error(c->ssl, ret)) {
    case SSL_ERROR_WANT_READ:
        watch(c, EPOLL_CTL_MOD, EPOLLIN);
        return 0;
    case SSL_ERROR_WANT_WRITE:
        watch(c, EPOLL_CTL_MOD, EPOLLOUT);
        return 0;
    default:
        ERR_clear_error();
        return -1;
    }
}

/* Moves C on as far as it goes; returns 1 when its request is done (answered or
 * failed) and the slot is free again. */
static int step(struct conn *c)
{
    int ret;
    if (c->state == CONNECTING) {
        int err = 0;
        socklen_t len = sizeof(err);
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err)
            goto failed;
        c->ssl = SSL_new(ctx);
        SSL_set_fd(c->ssl, c->fd);
        SSL_set_connect_state(c->ssl);
        c->state = HANDSHAKE;
    }
    if (c->state == HANDSHAKE) {
        ret = SSL_do_handshake(c->ssl);
        if (ret != 1)
            return ssl_wait(c, ret) < 0 ? (drop(c), n_errors++, 1) : 0;
        n_handshakes++;
        if (SSL_session_reused(c->ssl))
            n_resumed++;
        if (protocol[0] == '?') {
            snprintf(protocol, sizeof(protocol), "%s", SSL_get_version(c->ssl));
            snprintf(cipher, sizeof(cipher), "%s", SSL_get_cipher_name(c->ssl));
        }
        c->state = SENDING;
    }
    if (c->state == SENDING) {
        ret = SSL_write(c->ssl, request + c->sent, (int)(request_len - c->sent));
        if (ret <= 0)
            return ssl_wait(c, ret) < 0 ? (drop(c), n_errors++, 1) : 0;
        c->sent += (size_t)ret;
        if (c->sent < request_len)
            return 0;
        c->state = READING;
        watch(c, EPOLL_CTL_MOD, EPOLLIN);
    }
    /* READING: until the server closes (the request said Connection: close). */
    for (;;) {
        char buf[4096];
        ret = SSL_read(c->ssl, buf, sizeof(buf));
        if (ret > 0) {
            size_t take = sizeof(c->head) - c->got;
            if (take > (size_t)ret)
                take = (size_t)ret;
            memcpy(c->head + c->got, buf, take);
            c->got += take;
            continue;
        }
        int e = SSL_get_error(c->ssl, ret);
        if (e == SSL_ERROR_WANT_READ)
            return 0;
        /* A clean close_notify or a bare EOF: either ends the response. */
        ERR_clear_error();
        if (e == SSL_ERROR_ZERO_RETURN || e == SSL_ERROR_SYSCALL) {
            if (c->got >= 12 && memcmp(c->head + 8, " 200", 4) == 0)
                n_requests++;
            else if (c->got)
                n_bad_status++;
            else
                n_errors++;
        } else {
            n_errors++;
        }
        drop(c);
        return 1;
    }
failed:
    drop(c);
    n_errors++;
    return 1;
}

int main(int argc, char **argv)
{
    if (argc != 6) {
        fprintf(stderr, "usage: hsload HOST PORT CONNS SECONDS PATH\n");
        return 2;
    }
    int nconns = atoi(argv[3]);
    double seconds = atof(argv[4]);
    memset(&addr, 0, sizeof(addr));
    addr.sin_family = AF_INET;
    addr.sin_port = htons((unsigned short)atoi(argv[2]));
    if (inet_pton(AF_INET, argv[1], &addr.sin_addr) != 1 || nconns < 1 || seconds <= 0) {
        fprintf(stderr, "hsload: bad arguments\n");
        return 2;
    }
    request_len = (size_t)snprintf(request, sizeof(request),
                                   "GET %s HTTP/1.1\r\nHost: %s:%s\r\nConnection: close\r\n\r\n",
                                   argv[5], argv[1], argv[2]);

    ctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL); /* as wrk and h2load */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET | SSL_OP_IGNORE_UNEXPECTED_EOF);
    static const unsigned char alpn[] = "\x08http/1.1";
    SSL_CTX_set_alpn_protos(ctx, alpn, sizeof(alpn) - 1);

    ep = epoll_create1(EPOLL_CLOEXEC);
    struct conn *conns = calloc((size_t)nconns, sizeof(*conns));
    struct epoll_event *events = calloc((size_t)nconns, sizeof(*events));
    double t0 = now(), deadline = t0 + seconds;
    int active = 0;
    for (int i = 0; i < nconns; i++) {
        conns[i].fd = -1;
        if (start(&conns[i]) == 0)
            active++;
        else
            n_errors++;
    }
    while (active > 0) {
        double left = deadline - now();
        if (left <= 0)
            break;
        int n = epoll_wait(ep, events, nconns, (int)(left * 1000) + 1);
        for (int i = 0; i < n; i++) {
            struct conn *c = events[i].data.ptr;
            if (!step(c))
                continue;
            if (now() < deadline && start(c) == 0)
                continue;
            active--;
        }
        if (n_errors > 1000 && n_requests == 0) {
            fprintf(stderr, "hsload: every connection fails\n");
            break;
        }
    }
    double took = now() - t0;
    printf("HSLOAD {\"requests\": %lu, \"handshakes\": %lu, \"resumed\": %lu, \"errors\": %lu, "
           "\"status\": %lu, \"duration_us\": %.0f, \"protocol\": \"%s\", \"cipher\": \"%s\"}\n",
           n_requests, n_handshakes, n_resumed, n_errors, n_bad_status, took * 1e6, protocol,
           cipher);
    return 0;
}
