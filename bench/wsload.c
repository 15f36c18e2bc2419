/* wsload.c: WebSocket echo load, one message in flight per connection.
 *
 * bench/asgi.py compiles it at run time (cc -O2 wsload.c -lwslay -lcrypto). It opens
 * CONNS WebSocket connections to HOST:PORT PATH (the RFC 6455 client handshake: the
 * answer must be 101 with the right Sec-WebSocket-Accept), then, once every connection
 * is open, keeps exactly one message in flight on each for SECONDS: it sends a masked
 * message of SIZE bytes, waits for its echo, checks it byte for byte and sends the next.
 * At the end every connection is closed with a close frame (code 1000).
 *
 * The framing, masking and close handshake are wslay's (its event API in client mode,
 * the library the server uses in src/ws/); the accept key is checked with OpenSSL's
 * SHA-1 and base64. One process, one thread, one level-triggered epoll loop: per
 * message one write and one read (the read callback reads once per wake-up, so no
 * read ends in EAGAIN; a frame's header and payload leave in one write).
 *
 * Prints one line:
 *   WSLOAD {"messages": ..., "errors": ..., "mismatched": ..., "failed": ...,
 *           "duration_us": ..., "connections": ..., "cpu_us": ..., "unclosed": ...}
 * messages counts the echoes that came back equal to what was sent within the window,
 * mismatched those that did not, failed the connections that could not be opened or
 * broke (errors is the sum of both), duration_us the window (from the moment every
 * connection is open), connections the connections open when it started, cpu_us this
 * process's own CPU time over the window (user + system), unclosed the connections whose
 * close handshake had not finished 5 s after the window.
 *
 *     wsload HOST PORT PATH CONNS SECONDS SIZE [--text] [--corrupt]
 *
 * --text sends text messages (lower-case ASCII letters) instead of binary ones;
 * --corrupt changes one byte of each message after the copy the echo is checked
 * against was taken, so every echo must count as mismatched (a test of the checker).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <wslay/wslay.h>

#define VARIANTS 251 /* messages start at a varying offset of the payload buffer */
static const char ws_guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/* DRAINING: the window is over, the last echo is awaited before the close frame goes (a
 * close crossing an echo would make the app's send fail). */
enum state { CONNECTING, UPGRADING, OPEN, DRAINING, CLOSING, GONE };

struct conn {
    int fd;
    enum state state;
    unsigned events; /* what epoll watches for it now */
    wslay_event_context_ptr ws;
    char head[2048]; /* the handshake answer while it arrives */
    size_t head_len;
    char accept[32];      /* the Sec-WebSocket-Accept expected */
    const uint8_t *early; /* bytes that came after the handshake answer */
    size_t early_len;
    uint8_t *out; /* what wslay gave to send and the socket has not taken yet */
    size_t out_len, out_off, out_cap;
    int read_done; /* read once since the last wake-up */
    int broken;    /* a message could not be queued (seen inside a wslay callback) */
    int drained;   /* DRAINING: the last echo is in */
    size_t expect; /* offset in the payload buffer of the message in flight */
    unsigned seq;
};

static struct sockaddr_in addr;
static int ep;
static char request_fmt[1024];
static uint8_t *payload; /* SIZE + VARIANTS bytes: message k is payload + k % VARIANTS */
static uint8_t *sendbuf; /* the message as sent (differs from payload with --corrupt) */
static size_t size;
static uint8_t opcode = WSLAY_BINARY_FRAME;
static int corrupt, counting;
static unsigned long n_messages, n_mismatched, n_failed;
static uint64_t rng = 0x9e3779b97f4a7c15u;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static double cpu_now(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec +
           (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

/* xorshift64: the masking keys. RFC 6455 wants them unpredictable to defeat cache
 * poisoning through proxies; between this tool and a local server a fast generator
 * seeded from RAND_bytes is enough, and keeps the key off the CPU profile. */
static uint32_t next_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 16);
}

static void watch(struct conn *c, unsigned events)
{
    if (c->events == events)
        return;
    struct epoll_event ev = {.events = events, .data.ptr = c};
    if (epoll_ctl(ep, c->events ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, c->fd, &ev) < 0) {
        perror("epoll_ctl");
        exit(2);
    }
    c->events = events;
}

static void drop(struct conn *c, int failed)
{
    if (c->state == GONE)
        return;
    if (failed)
        n_failed++;
    if (c->ws)
        wslay_event_context_free(c->ws);
    c->ws = NULL;
    close(c->fd); /* closing removes it from the epoll set */
    c->fd = -1;
    c->state = GONE;
}

/* --- wslay's callbacks --------------------------------------------------------------- */

static ssize_t on_recv(wslay_event_context_ptr ws, uint8_t *buf, size_t len, int flags, void *user)
{
    struct conn *c = user;
    (void)flags;
    if (c->early_len) {
        size_t n = c->early_len < len ? c->early_len : len;
        memcpy(buf, c->early, n);
        c->early += n;
        c->early_len -= n;
        return (ssize_t)n;
    }
    if (c->read_done) {
        /* Level-triggered epoll wakes us again if more is waiting: a second read per
         * wake-up would mostly end in EAGAIN. */
        wslay_event_set_error(ws, WSLAY_ERR_WOULDBLOCK);
        return -1;
    }
    ssize_t r = read(c->fd, buf, len);
    if (r > 0) {
        c->read_done = 1;
        return r;
    }
    if (r < 0 && (errno == EAGAIN || errno == EINTR))
        wslay_event_set_error(ws, WSLAY_ERR_WOULDBLOCK);
    else
        wslay_event_set_error(ws, WSLAY_ERR_CALLBACK_FAILURE); /* EOF or reset */
    return -1;
}

/* Everything wslay hands over is kept; flush() writes it, so a frame's header and its
 * payload leave in one write. */
static ssize_t on_send(wslay_event_context_ptr ws, const uint8_t *data, size_t len, int flags,
                       void *user)
{
    struct conn *c = user;
    (void)ws;
    (void)flags;
    if (c->out_len + len > c->out_cap) {
        if (c->out_off) {
            memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
            c->out_len -= c->out_off;
            c->out_off = 0;
        }
        if (c->out_len + len > c->out_cap) {
            c->out_cap = (c->out_len + len) * 2;
            c->out = realloc(c->out, c->out_cap);
            if (!c->out) {
                perror("realloc");
                exit(2);
            }
        }
    }
    memcpy(c->out + c->out_len, data, len);
    c->out_len += len;
    return (ssize_t)len;
}

static int on_genmask(wslay_event_context_ptr ws, uint8_t *buf, size_t len, void *user)
{
    (void)ws;
    (void)user;
    for (size_t i = 0; i < len; i += 4) {
        uint32_t r = next_rand();
        memcpy(buf + i, &r, len - i < 4 ? len - i : 4);
    }
    return 0;
}

/* Queues the next message; returns -1 if wslay refused it. */
static int send_next(struct conn *c)
{
    c->expect = c->seq++ % VARIANTS;
    const uint8_t *msg = payload + c->expect;
    if (corrupt) {
        memcpy(sendbuf, msg, size);
        sendbuf[size / 2] ^= 0x20; /* a letter changes case; stays valid UTF-8 */
        msg = sendbuf;
    }
    struct wslay_event_msg m = {.opcode = opcode, .msg = msg, .msg_length = size};
    return wslay_event_queue_msg(c->ws, &m) == 0 ? 0 : -1;
}

static void on_msg(wslay_event_context_ptr ws, const struct wslay_event_on_msg_recv_arg *arg,
                   void *user)
{
    struct conn *c = user;
    (void)ws;
    if (arg->opcode == WSLAY_PING || arg->opcode == WSLAY_PONG)
        return; /* wslay answers pings itself */
    if (arg->opcode == WSLAY_CONNECTION_CLOSE) {
        if (c->state == OPEN) /* the server closed first: a broken run */
            n_failed++;
        c->state = CLOSING; /* wslay queues the answering close frame */
        return;
    }
    if (c->state != OPEN) {
        c->drained = 1; /* the last echo, arriving after the window */
        return;
    }
    int same = arg->opcode == opcode && arg->msg_length == size &&
               memcmp(arg->msg, payload + c->expect, size) == 0;
    if (counting) {
        if (same)
            n_messages++;
        else
            n_mismatched++;
    }
    if (counting && send_next(c) < 0)
        c->broken = 1; /* dropped by step(), once wslay_event_recv() has returned */
}

static const struct wslay_event_callbacks callbacks = {
    .recv_callback = on_recv,
    .send_callback = on_send,
    .genmask_callback = on_genmask,
    .on_msg_recv_callback = on_msg,
};

/* --- the socket side ----------------------------------------------------------------- */

/* Writes what is buffered; returns -1 if the connection broke. */
static int flush(struct conn *c)
{
    while (c->out_off < c->out_len) {
        ssize_t w = write(c->fd, c->out + c->out_off, c->out_len - c->out_off);
        if (w < 0) {
            if (errno == EAGAIN || errno == EINTR)
                break;
            return -1;
        }
        c->out_off += (size_t)w;
    }
    if (c->out_off == c->out_len)
        c->out_off = c->out_len = 0;
    watch(c, EPOLLIN | (c->out_len ? EPOLLOUT : 0u));
    return 0;
}

/* Lets wslay queue its frames, then writes them. */
static void pump(struct conn *c)
{
    if (wslay_event_send(c->ws) != 0 || flush(c) < 0) {
        drop(c, c->state == OPEN);
        return;
    }
    if (c->state == CLOSING && wslay_event_get_close_sent(c->ws) &&
        wslay_event_get_close_received(c->ws) && c->out_len == 0)
        drop(c, 0); /* both close frames crossed: done */
}

static void start(struct conn *c)
{
    memset(c, 0, sizeof(*c));
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        c->state = GONE;
        n_failed++;
        return;
    }
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    c->state = CONNECTING;
    if (connect(c->fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 && errno != EINPROGRESS) {
        drop(c, 1);
        return;
    }
    watch(c, EPOLLOUT);
}

/* The request, with a fresh 16-byte key; C->accept gets the answer it must bring. */
static int send_upgrade(struct conn *c)
{
    unsigned char raw[16], digest[EVP_MAX_MD_SIZE];
    char key[32], request[1200];
    if (RAND_bytes(raw, sizeof(raw)) != 1)
        return -1;
    EVP_EncodeBlock((unsigned char *)key, raw, sizeof(raw));
    unsigned int dlen = 0;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    int ok = md && EVP_DigestInit_ex(md, EVP_sha1(), NULL) == 1 &&
             EVP_DigestUpdate(md, key, strlen(key)) == 1 &&
             EVP_DigestUpdate(md, ws_guid, sizeof(ws_guid) - 1) == 1 &&
             EVP_DigestFinal_ex(md, digest, &dlen) == 1;
    EVP_MD_CTX_free(md);
    if (!ok)
        return -1;
    EVP_EncodeBlock((unsigned char *)c->accept, digest, (int)dlen);
    int n = snprintf(request, sizeof(request), request_fmt, key);
    /* A fresh socket's send buffer takes a few hundred bytes whole. */
    return write(c->fd, request, (size_t)n) == n ? 0 : -1;
}

/* Checks a complete handshake answer (HEAD, LEN bytes with the blank line). */
static int check_answer(struct conn *c, size_t len)
{
    c->head[len - 2] = '\0'; /* keeps the last header's CRLF for the search below */
    if (strncmp(c->head, "HTTP/1.1 101", 12) != 0 || (c->head[12] != ' ' && c->head[12] != '\r'))
        return -1;
    for (char *line = strstr(c->head, "\r\n"); line; line = strstr(line + 2, "\r\n")) {
        static const char name[] = "sec-websocket-accept:";
        if (strncasecmp(line + 2, name, sizeof(name) - 1) != 0)
            continue;
        char *v = line + 2 + sizeof(name) - 1;
        while (*v == ' ' || *v == '\t')
            v++;
        size_t vlen = strcspn(v, "\r");
        while (vlen && (v[vlen - 1] == ' ' || v[vlen - 1] == '\t'))
            vlen--;
        return vlen == strlen(c->accept) && memcmp(v, c->accept, vlen) == 0 ? 0 : -1;
    }
    return -1;
}

/* Reads the handshake answer; returns 1 once the connection is open. */
static int upgrade(struct conn *c)
{
    ssize_t r = read(c->fd, c->head + c->head_len, sizeof(c->head) - 1 - c->head_len);
    if (r < 0 && (errno == EAGAIN || errno == EINTR))
        return 0;
    if (r <= 0)
        return -1;
    c->head_len += (size_t)r;
    c->head[c->head_len] = '\0';
    char *end = strstr(c->head, "\r\n\r\n");
    if (!end)
        return c->head_len < sizeof(c->head) - 1 ? 0 : -1;
    size_t len = (size_t)(end - c->head) + 4;
    if (len < c->head_len) { /* the server spoke first: wslay reads those bytes first */
        c->early = (const uint8_t *)c->head + len;
        c->early_len = c->head_len - len;
    }
    if (check_answer(c, len) < 0 || wslay_event_context_client_init(&c->ws, &callbacks, c) != 0)
        return -1;
    c->state = OPEN;
    return 1;
}

/* One wake-up of C's socket. */
static void step(struct conn *c, unsigned events, unsigned long *opened)
{
    if (c->state == GONE)
        return;
    if (c->state == CONNECTING) {
        int err = 0;
        socklen_t len = sizeof(err);
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err || send_upgrade(c) < 0) {
            drop(c, 1);
            return;
        }
        c->state = UPGRADING;
        watch(c, EPOLLIN);
        return;
    }
    if (c->state == UPGRADING) {
        int r = upgrade(c);
        if (r < 0)
            drop(c, 1);
        else if (r > 0)
            (*opened)++;
        return;
    }
    if (events & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
        c->read_done = 0;
        if (wslay_event_recv(c->ws) != 0 || c->broken) {
            drop(c, c->state == OPEN);
            return;
        }
        if (c->state == DRAINING && c->drained) {
            c->state = CLOSING;
            wslay_event_queue_close(c->ws, 1000, NULL, 0);
        }
    }
    pump(c);
}

int main(int argc, char **argv)
{
    if (argc < 7) {
        fprintf(stderr, "usage: wsload HOST PORT PATH CONNS SECONDS SIZE [--text] [--corrupt]\n");
        return 2;
    }
    int nconns = atoi(argv[4]);
    double seconds = atof(argv[5]);
    size = (size_t)atol(argv[6]);
    for (int i = 7; i < argc; i++) {
        if (strcmp(argv[i], "--text") == 0)
            opcode = WSLAY_TEXT_FRAME;
        else if (strcmp(argv[i], "--corrupt") == 0)
            corrupt = 1;
        else {
            fprintf(stderr, "wsload: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    memset(&addr, 0, sizeof(addr));
    addr.sin_family = AF_INET;
    addr.sin_port = htons((unsigned short)atoi(argv[2]));
    if (inet_pton(AF_INET, argv[1], &addr.sin_addr) != 1 || nconns < 1 || seconds <= 0 ||
        size < 1 || argv[3][0] != '/') {
        fprintf(stderr, "wsload: bad arguments\n");
        return 2;
    }
    /* %%s: the key, filled in per connection. */
    snprintf(request_fmt, sizeof(request_fmt),
             "GET %s HTTP/1.1\r\nHost: %s:%s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
             "Sec-WebSocket-Key: %%s\r\nSec-WebSocket-Version: 13\r\n\r\n",
             argv[3], argv[1], argv[2]);

    payload = malloc(size + VARIANTS);
    sendbuf = malloc(size);
    if (!payload || !sendbuf || RAND_bytes(payload, (int)(size + VARIANTS)) != 1 ||
        RAND_bytes((unsigned char *)&rng, sizeof(rng)) != 1) {
        fprintf(stderr, "wsload: no memory or no randomness\n");
        return 2;
    }
    rng |= 1; /* xorshift must not start at 0 */
    if (opcode == WSLAY_TEXT_FRAME)
        for (size_t i = 0; i < size + VARIANTS; i++)
            payload[i] = (uint8_t)('a' + payload[i] % 26);

    ep = epoll_create1(EPOLL_CLOEXEC);
    struct conn *conns = calloc((size_t)nconns, sizeof(*conns));
    struct epoll_event *events = calloc((size_t)nconns, sizeof(*events));
    if (!conns || !events) {
        fprintf(stderr, "wsload: no memory\n");
        return 2;
    }
    for (int i = 0; i < nconns; i++)
        start(&conns[i]);

    /* Opening: every connection upgraded (or failed), within 30 s. */
    unsigned long opened = 0;
    double limit = now() + 30;
    while (opened + n_failed < (unsigned long)nconns && now() < limit) {
        int n = epoll_wait(ep, events, nconns, 100);
        for (int i = 0; i < n; i++)
            step(events[i].data.ptr, events[i].events, &opened);
    }

    /* The window: one message in flight on every open connection. */
    counting = 1;
    unsigned long failed_opening = n_failed;
    double t0 = now(), cpu0 = cpu_now(), deadline = t0 + seconds;
    for (int i = 0; i < nconns; i++)
        if (conns[i].state == OPEN) {
            if (send_next(&conns[i]) < 0)
                drop(&conns[i], 1);
            else
                pump(&conns[i]);
        }
    for (;;) {
        double left = deadline - now();
        if (left <= 0 || n_failed - failed_opening >= opened)
            break; /* the window is over, or every connection broke */
        int n = epoll_wait(ep, events, nconns, (int)(left * 1000) + 1);
        for (int i = 0; i < n; i++)
            step(events[i].data.ptr, events[i].events, &opened);
    }
    double took = now() - t0, cpu = cpu_now() - cpu0;
    counting = 0;

    /* Closing: the last echo, then a close frame each and the server's answer, within 5 s. */
    int left = 0;
    for (int i = 0; i < nconns; i++) {
        struct conn *c = &conns[i];
        if (c->state == CONNECTING || c->state == UPGRADING)
            drop(c, 1);
        if (c->state == OPEN)
            c->state = DRAINING;
    }
    limit = now() + 5;
    do {
        left = 0;
        for (int i = 0; i < nconns; i++)
            left += conns[i].state != GONE;
        if (!left)
            break;
        int n = epoll_wait(ep, events, nconns, 100);
        for (int i = 0; i < n; i++)
            step(events[i].data.ptr, events[i].events, &opened);
    } while (now() < limit);
    for (int i = 0; i < nconns; i++) {
        drop(&conns[i], 0);
        free(conns[i].out);
    }
    free(conns);
    free(events);
    free(payload);
    free(sendbuf);
    close(ep);

    printf("WSLOAD {\"messages\": %lu, \"errors\": %lu, \"mismatched\": %lu, \"failed\": %lu, "
           "\"duration_us\": %.0f, \"connections\": %lu, \"cpu_us\": %.0f, \"unclosed\": %d}\n",
           n_messages, n_mismatched + n_failed, n_mismatched, n_failed, took * 1e6, opened,
           cpu * 1e6, left);
    fflush(stdout);
    return 0;
}
