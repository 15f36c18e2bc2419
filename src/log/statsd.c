/* statsd.c: StatsD metrics (see statsd.h).
 *
 * Gunicorn turns its logger into a StatsD client when --statsd-host is set; here the
 * same metrics come from three places: the request path calls gc__statsd_request, the
 * arbiter calls gc__statsd_workers and gc__statsd_backlog, and the error log calls the
 * observer below for every line at warning level or above (before its level
 * threshold, as Gunicorn counts a call whether or not the line is shown).
 *
 * The socket is made once, in the master, before any worker is forked. A connected
 * UDP socket shared by several processes is fine: every send is one whole datagram,
 * and each process only writes. A unix datagram socket is not connected: each packet
 * is sent with sendto to the path, so a receiver that starts after the server, or
 * restarts, still gets the metrics (a connected one would refuse every packet from
 * then on).
 *
 * A request's three metrics leave in one datagram, one metric per line. Every StatsD
 * server (etsy statsd, DogStatsD, Telegraf, statsd_exporter) reads a newline-separated
 * packet as the same metrics sent one by one, and it costs one system call instead of
 * three. Packets are kept below 1432 bytes, the usual safe UDP payload: three metrics
 * that would not fit go out one by one. */
#include "log/statsd.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "log/log.h"

#define DEFAULT_PORT "8125"
#define MAX_PACKET 1432
#define COUNTER "c|@1.0" /* Gunicorn's increment() always writes its sample rate */

/* The state, set by gc__statsd_configure in the master and inherited by workers. */
static int sock_fd = -1;
static int use_sendto; /* unix datagram: sendto(unix_addr) rather than send */
static struct sockaddr_un unix_addr;
static char dest[300];    /* the --statsd-host value, for messages */
static char *prefix;      /* owned; "" when unset */
static size_t prefix_len; /* of prefix */
static char *tags;        /* owned: "|#<dogstatsd_tags>", or "" */
static size_t tags_len;
static int backlog_on;
static long last_workers = -1;
static atomic_int send_failed; /* a failed send was logged (once per process) */

/* --- parsing ------------------------------------------------------------------------- */

static int copy_str(char *out, size_t cap, const char *s, size_t n)
{
    if (n >= cap)
        return -EINVAL;
    memcpy(out, s, n);
    out[n] = '\0';
    return 0;
}

static int all_digits(const char *s, size_t n)
{
    if (n == 0)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return 0;
    return 1;
}

/* A port as Python's int() reads the ones people write: decimal digits. */
static int set_port(gc__statsd_addr_t *out, const char *s, size_t n)
{
    if (!all_digits(s, n))
        return -EINVAL;
    while (n > 1 && s[0] == '0')
        s++, n--;
    /* Gunicorn accepts any integer here; connecting to a port past 65535 then fails. */
    if (n > 5)
        return -ERANGE;
    char digits[8];
    memcpy(digits, s, n);
    digits[n] = '\0';
    if (atol(digits) > 65535)
        return -ERANGE;
    memcpy(out->port, digits, n + 1);
    return 0;
}

int gc__statsd_parse_address(const char *text, gc__statsd_addr_t *out)
{
    memset(out, 0, sizeof(*out));
    size_t len = strlen(text);

    /* "unix:8125" meant the host "unix" before Gunicorn 20; Gunicorn still reads it so. */
    if (strncmp(text, "unix:", 5) == 0 && all_digits(text + 5, len - 5)) {
        strcpy(out->host, "unix");
        return set_port(out, text + 5, len - 5);
    }
    if (strncmp(text, "unix:", 5) == 0) {
        const char *path = text + 5;
        if (strncmp(path, "//", 2) == 0)
            path += 2;
        out->is_unix = 1;
        if (strlen(path) >= sizeof(out->path))
            return -ENAMETOOLONG;
        strcpy(out->path, path);
        return 0;
    }
    if (strncmp(text, "fd://", 5) == 0)
        return all_digits(text + 5, len - 5) ? -ENOTSUP : -EINVAL;
    if (strncmp(text, "tcp://", 6) == 0)
        text += 6, len -= 6;

    const char *lb = strchr(text, '['), *rb = strchr(text, ']');
    const char *colon = strchr(text, ':');
    int rc;
    if (lb != NULL && rb != NULL) {
        /* Python's netloc.split(']')[0][1:] and (netloc.split(']:') + [8125])[1]. */
        rc = rb > text ? copy_str(out->host, sizeof(out->host), text + 1, (size_t)(rb - text - 1))
                       : 0;
        const char *after = strstr(text, "]:");
        if (rc == 0 && after != NULL) {
            const char *next = strstr(after + 2, "]:");
            rc = set_port(out, after + 2, next ? (size_t)(next - after - 2) : strlen(after + 2));
        } else if (rc == 0) {
            rc = set_port(out, DEFAULT_PORT, strlen(DEFAULT_PORT));
        }
    } else if (colon != NULL) {
        rc = copy_str(out->host, sizeof(out->host), text, (size_t)(colon - text));
        if (rc == 0)
            rc = set_port(out, colon + 1, strcspn(colon + 1, ":"));
    } else if (len == 0) {
        strcpy(out->host, "0.0.0.0");
        rc = set_port(out, DEFAULT_PORT, strlen(DEFAULT_PORT));
    } else {
        rc = copy_str(out->host, sizeof(out->host), text, len);
        if (rc == 0)
            rc = set_port(out, DEFAULT_PORT, strlen(DEFAULT_PORT));
    }
    if (rc < 0)
        return rc;
    for (char *p = out->host; *p; p++)
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p - 'A' + 'a');
    /* Python connects to ('', port) as to INADDR_ANY, the local host. */
    if (out->host[0] == '\0')
        strcpy(out->host, "0.0.0.0");
    return 0;
}

size_t gc__statsd_prefix(const char *setting, char *out, size_t cap)
{
    size_t n = strlen(setting), kept = n;
    while (kept > 0 && setting[kept - 1] == '.')
        kept--;
    int dot = kept >= 2; /* Gunicorn's pattern ^(.+[^.]+)\.*$ needs two characters */
    if (!dot)
        kept = n;
    return (size_t)snprintf(out, cap, "%.*s%s", (int)kept, setting, dot ? "." : "");
}

size_t gc__statsd_format_ms(double ms, char *out, size_t cap)
{
    if (!(ms >= 0) || ms > 1e15)
        ms = 0;
    unsigned long long us = (unsigned long long)(ms * 1000.0 + 0.5);
    int n = snprintf(out, cap, "%llu.%03llu", us / 1000, us % 1000);
    if (n < 0 || (size_t)n >= cap)
        return 0;
    while (out[n - 1] == '0' && out[n - 2] != '.')
        out[--n] = '\0';
    return (size_t)n;
}

/* --- sending ------------------------------------------------------------------------- */

typedef struct {
    const char *name; /* without the prefix */
    const char *value;
    const char *type; /* what follows the '|': "ms", "g", "h" or COUNTER */
} metric_t;

static size_t line_len(const metric_t *m)
{
    return prefix_len + strlen(m->name) + 1 + strlen(m->value) + 1 + strlen(m->type) + tags_len;
}

/* Writes "<prefix><name>:<value>|<type><tags>" at p; returns the end. */
static char *put_line(char *p, const metric_t *m)
{
    const char *parts[] = {prefix, m->name, ":", m->value, "|", m->type, tags};
    for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++) {
        size_t n = strlen(parts[i]);
        memcpy(p, parts[i], n);
        p += n;
    }
    return p;
}

static void send_packet(const char *p, size_t n)
{
    ssize_t w = use_sendto ? sendto(sock_fd, p, n, MSG_DONTWAIT, (struct sockaddr *)&unix_addr,
                                    sizeof(unix_addr))
                           : send(sock_fd, p, n, MSG_DONTWAIT);
    /* Nobody listening (ECONNREFUSED, ENOENT), a full queue (EAGAIN): the metric is
     * lost, which is StatsD's contract. Debug level: the observer ignores it, so a
     * failure cannot feed itself. */
    if (w < 0 && atomic_exchange(&send_failed, 1) == 0)
        gc__debug("StatsD: cannot send to %s: %s (metrics are dropped; not logged again)", dest,
                  strerror(errno));
}

/* Sends n metrics, in one packet when they fit. Keeps errno. */
static void send_metrics(const metric_t *m, size_t n)
{
    int saved = errno;
    char stack[MAX_PACKET];
    size_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += line_len(&m[i]) + (i > 0);
    if (total <= sizeof(stack)) {
        char *p = stack;
        for (size_t i = 0; i < n; i++) {
            if (i > 0)
                *p++ = '\n';
            p = put_line(p, &m[i]);
        }
        send_packet(stack, total);
    } else {
        /* Only a long prefix or long tags get here: one packet per metric. */
        for (size_t i = 0; i < n; i++) {
            size_t len = line_len(&m[i]);
            char *p = len <= sizeof(stack) ? stack : malloc(len);
            if (p == NULL)
                continue;
            put_line(p, &m[i]);
            send_packet(p, len);
            if (p != stack)
                free(p);
        }
    }
    errno = saved;
}

static void counter(const char *name)
{
    metric_t m = {name, "1", COUNTER};
    send_metrics(&m, 1);
}

/* The error log's observer: Gunicorn's Statsd logger counts these four calls. */
static void on_log(int level)
{
    switch (level) {
    case GC_LOG_WARNING:
        counter("gunicorn.log.warning");
        break;
    case GC_LOG_ERROR:
        counter("gunicorn.log.error");
        break;
    case GC_LOG_EXCEPTION:
        counter("gunicorn.log.exception");
        break;
    case GC_LOG_CRITICAL:
        counter("gunicorn.log.critical");
        break;
    default:
        break;
    }
}

/* --- configuration ------------------------------------------------------------------- */

/* A UDP socket connected to host:port: IPv4 first, as Gunicorn connects with AF_INET
 * (a "localhost" that resolves to ::1 first must still reach a daemon on 127.0.0.1),
 * then IPv6, which Gunicorn cannot use. Returns the descriptor or -1 with `why` set. */
static int open_udp(const gc__statsd_addr_t *a, char *why, size_t cap)
{
    static const int families[] = {AF_INET, AF_INET6};
    snprintf(why, cap, "no address");
    for (size_t f = 0; f < sizeof(families) / sizeof(families[0]); f++) {
        struct addrinfo hints = {.ai_family = families[f], .ai_socktype = SOCK_DGRAM};
        struct addrinfo *res = NULL;
        int g = getaddrinfo(a->host, a->port, &hints, &res);
        if (g != 0) {
            if (f == 0 || g != EAI_NONAME)
                snprintf(why, cap, "%s", gai_strerror(g));
            continue;
        }
        for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
            int fd = socket(ai->ai_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
            if (fd < 0) {
                snprintf(why, cap, "%s", strerror(errno));
                continue;
            }
            if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
                freeaddrinfo(res);
                return fd;
            }
            snprintf(why, cap, "%s", strerror(errno));
            close(fd);
        }
        freeaddrinfo(res);
    }
    return -1;
}

static void out_of_memory(void)
{
    fprintf(stderr, "gunicorn-c: out of memory\n");
    abort();
}

int gc__statsd_configure(const gc__config_t *cfg)
{
    static int started; /* a reload logs what it refuses; the first call prints it */
    int first = !started;
    started = 1;
    const char *host = gc__cfg_str(cfg, GC_S_statsd_host);
    int fd = -1, sendto_mode = 0;
    struct sockaddr_un un = {.sun_family = AF_UNIX};

    if (host != NULL) {
        gc__statsd_addr_t addr;
        int rc = gc__statsd_parse_address(host, &addr);
        if (rc == -EINVAL) {
            /* Gunicorn's validator refuses the value with this message. */
            const char *msg = "Value must be one of ('host:port', 'unix://PATH')";
            if (first)
                fprintf(stderr, "\nError: %s\n", msg);
            else
                gc__error("Invalid statsd_host %s: %s", host, msg);
            return -1;
        }
        char why[128];
        if (rc == -ERANGE) {
            snprintf(why, sizeof(why), "the port is out of range");
        } else if (rc == -ENAMETOOLONG) {
            snprintf(why, sizeof(why), "the socket path is too long");
        } else if (rc == -ENOTSUP) {
            snprintf(why, sizeof(why), "a descriptor cannot be a StatsD destination");
        } else if (addr.is_unix) {
            fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
            snprintf(why, sizeof(why), "%s", strerror(errno));
            strcpy(un.sun_path, addr.path);
            sendto_mode = 1;
        } else {
            fd = open_udp(&addr, why, sizeof(why));
        }
        if (fd < 0)
            gc__warning("StatsD: cannot use %s (%s); no metrics will be sent", host, why);
    }

    /* Swap in the new state; workers forked from now on inherit it. */
    if (sock_fd >= 0)
        close(sock_fd);
    sock_fd = fd;
    use_sendto = sendto_mode;
    unix_addr = un;
    snprintf(dest, sizeof(dest), "%s", host ? host : "");
    const char *p = gc__cfg_str(cfg, GC_S_statsd_prefix);
    p = p ? p : "";
    size_t cap = strlen(p) + 2; /* the rule removes dots or adds one */
    char *np = malloc(cap);
    if (np == NULL)
        out_of_memory();
    prefix_len = gc__statsd_prefix(p, np, cap);
    free(prefix);
    prefix = np;
    const char *t = gc__cfg_str(cfg, GC_S_dogstatsd_tags);
    free(tags);
    if (t != NULL && t[0] != '\0') {
        size_t tl = strlen(t);
        tags = malloc(tl + 3);
        if (tags == NULL)
            out_of_memory();
        memcpy(tags, "|#", 2);
        memcpy(tags + 2, t, tl + 1);
    } else {
        tags = calloc(1, 1);
        if (tags == NULL)
            out_of_memory();
    }
    tags_len = strlen(tags);
    backlog_on = (int)gc__cfg_int(cfg, GC_S_enable_backlog_metric);
    last_workers = -1;
    atomic_store(&send_failed, 0);
    gc__log_set_observer(sock_fd >= 0 ? on_log : NULL);
    return 0;
}

/* --- metrics ------------------------------------------------------------------------- */

int gc__statsd_enabled(void)
{
    return sock_fd >= 0;
}

void gc__statsd_request(int status_code, double duration_ms)
{
    if (sock_fd < 0)
        return;
    char ms[32], status[48];
    gc__statsd_format_ms(duration_ms, ms, sizeof(ms));
    snprintf(status, sizeof(status), "gunicorn.request.status.%d", status_code);
    /* Gunicorn's order: duration, requests, status. */
    metric_t m[3] = {
        {"gunicorn.request.duration", ms, "ms"},
        {"gunicorn.requests", "1", COUNTER},
        {status, "1", COUNTER},
    };
    send_metrics(m, status_code > 0 ? 3 : 2);
}

void gc__statsd_workers(long n)
{
    if (sock_fd < 0 || n == last_workers)
        return;
    last_workers = n;
    char value[24];
    snprintf(value, sizeof(value), "%ld", n);
    metric_t m = {"gunicorn.workers", value, "g"};
    send_metrics(&m, 1);
}

int gc__statsd_backlog_enabled(void)
{
    return sock_fd >= 0 && backlog_on;
}

long gc__statsd_queued(int fd)
{
#ifdef TCP_INFO
    int saved = errno;
    struct tcp_info ti;
    socklen_t len = sizeof(ti);
    memset(&ti, 0, sizeof(ti));
    int rc = getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len);
    errno = saved;
    /* On a listening socket Linux reports the accept queue's length as "unacked". */
    if (rc == 0 && ti.tcpi_state == TCP_LISTEN)
        return (long)ti.tcpi_unacked;
#else
    (void)fd;
#endif
    return 0;
}

void gc__statsd_backlog(long queued)
{
    if (sock_fd < 0)
        return;
    char value[24];
    snprintf(value, sizeof(value), "%ld", queued);
    metric_t m = {"gunicorn.backlog", value, "h"};
    send_metrics(&m, 1);
}
