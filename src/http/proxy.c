/* proxy.c: PROXY protocol v1 and v2 headers (see proxy.h).
 *
 * v1 is one text line: "PROXY TCP4 <src> <dst> <sport> <dport>\r\n". Gunicorn splits
 * it on single spaces into exactly six fields, takes only TCP4 and TCP6, checks both
 * addresses with inet_pton and the ports against 0-65535; so do we. The line is bounded
 * (GC_PROXY_V1_MAX), where Gunicorn reads until it finds a CRLF.
 *
 * v2 is binary: a 12-byte signature, a version/command byte, a family/transport byte,
 * a big-endian length, then the addresses and optional TLVs (ignored). LOCAL (a health
 * check from the proxy itself) and the UNSPEC family carry no addresses. */
#include "http/proxy.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "http/repr.h"

static const char v2_signature[12] = {'\r', '\n', '\r', '\n', '\0', '\r',
                                      '\n', 'Q',  'U',  'I',  'T',  '\n'};
static const char v1_signature[6] = {'P', 'R', 'O', 'X', 'Y', ' '};

enum gc__proxy_mode gc__proxy_mode_from_name(const char *name)
{
    if (name == NULL || strcmp(name, "off") == 0)
        return GC_PROXY_OFF;
    if (strcmp(name, "v1") == 0)
        return GC_PROXY_V1;
    if (strcmp(name, "v2") == 0)
        return GC_PROXY_V2;
    return GC_PROXY_AUTO;
}

/* 1: data starts with sig; 0: data is a strict prefix of sig (undecided); -1: neither. */
static int starts_with(const char *data, size_t len, const char *sig, size_t siglen)
{
    size_t n = len < siglen ? len : siglen;
    if (memcmp(data, sig, n) != 0)
        return -1;
    return len >= siglen ? 1 : 0;
}

enum gc__proxy_kind gc__proxy_detect(enum gc__proxy_mode mode, const char *data, size_t len)
{
    int undecided = 0;
    if (mode == GC_PROXY_V2 || mode == GC_PROXY_AUTO) {
        int m = starts_with(data, len, v2_signature, sizeof(v2_signature));
        if (m > 0)
            return GC_PROXY_IS_V2;
        undecided |= m == 0;
    }
    if (mode == GC_PROXY_V1 || mode == GC_PROXY_AUTO) {
        int m = starts_with(data, len, v1_signature, sizeof(v1_signature));
        if (m > 0)
            return GC_PROXY_IS_V1;
        undecided |= m == 0;
    }
    return undecided ? GC_PROXY_MORE : GC_PROXY_NONE;
}

/* --- v1 ------------------------------------------------------------------------------ */

/* Gunicorn's page text for a bad v1 line: "'Invalid PROXY line: <repr(detail)>'". */
static ssize_t v1_bad(char *why, size_t cap, gc__view_t detail)
{
    char r[200];
    snprintf(why, cap, "'Invalid PROXY line: %s'", gc__http_repr(r, sizeof(r), detail));
    return -1;
}

/* A port as Python's int() of plain digits would read it, in 0-65535. Writes it back
 * without leading zeros. */
static int v1_port(gc__view_t v, char out[6])
{
    unsigned long n = 0;
    if (v.len == 0)
        return -1;
    for (size_t i = 0; i < v.len; i++) {
        if (v.base[i] < '0' || v.base[i] > '9')
            return -1;
        n = n * 10 + (unsigned long)(v.base[i] - '0');
        if (n > 65535)
            return -1;
    }
    snprintf(out, 6, "%lu", n);
    return 0;
}

/* Copies an address field and checks it with inet_pton. */
static int v1_addr(gc__view_t v, int family, char out[48])
{
    unsigned char bin[16];
    if (v.len == 0 || v.len >= 48)
        return -1;
    memcpy(out, v.base, v.len);
    out[v.len] = '\0';
    return inet_pton(family, out, bin) == 1 ? 0 : -1;
}

static ssize_t parse_v1(const char *data, size_t len, gc__proxy_info_t *info, char *why, size_t cap)
{
    size_t scan = len < GC_PROXY_V1_MAX ? len : GC_PROXY_V1_MAX;
    const char *crlf = NULL;
    for (size_t i = 0; i + 1 < scan; i++) {
        if (data[i] == '\r' && data[i + 1] == '\n') {
            crlf = data + i;
            break;
        }
    }
    if (crlf == NULL) {
        if (len < GC_PROXY_V1_MAX)
            return 0;
        return v1_bad(why, cap, gc__view(data, scan));
    }
    gc__view_t line = gc__view(data, (size_t)(crlf - data));

    gc__view_t bits[6];
    size_t nbits = 0, start = 0;
    for (size_t i = 0; i <= line.len; i++) {
        if (i < line.len && line.base[i] != ' ')
            continue;
        if (nbits == 6)
            return v1_bad(why, cap, line); /* a seventh field */
        bits[nbits++] = gc__view(line.base + start, i - start);
        start = i + 1;
    }
    if (nbits != 6)
        return v1_bad(why, cap, line);

    int family;
    if (bits[1].len == 4 && memcmp(bits[1].base, "TCP4", 4) == 0) {
        family = AF_INET;
    } else if (bits[1].len == 4 && memcmp(bits[1].base, "TCP6", 4) == 0) {
        family = AF_INET6;
    } else {
        char detail[64];
        int n = snprintf(detail, sizeof(detail), "protocol '%.*s' not supported",
                         (int)(bits[1].len > 16 ? 16 : bits[1].len), bits[1].base);
        return v1_bad(why, cap, gc__view(detail, (size_t)n));
    }
    memset(info, 0, sizeof(*info));
    if (v1_addr(bits[2], family, info->src_addr) < 0 ||
        v1_addr(bits[3], family, info->dst_addr) < 0)
        return v1_bad(why, cap, line);
    if (v1_port(bits[4], info->src_port) < 0 || v1_port(bits[5], info->dst_port) < 0) {
        char detail[GC_PROXY_V1_MAX + 16];
        int n = snprintf(detail, sizeof(detail), "invalid port %.*s", (int)line.len, line.base);
        return v1_bad(why, cap, gc__view(detail, (size_t)n));
    }
    memcpy(info->protocol, bits[1].base, 4);
    info->has_addresses = 1;
    return (ssize_t)(line.len + 2);
}

/* --- v2 ------------------------------------------------------------------------------ */

static ssize_t v2_bad(char *why, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static ssize_t v2_bad(char *why, size_t cap, const char *fmt, ...)
{
    char detail[96];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof(detail), fmt, ap);
    va_end(ap);
    snprintf(why, cap, "Invalid PROXY protocol v2 header: %s", detail);
    return -1;
}

static unsigned be16(const char *p)
{
    return (unsigned)((unsigned char)p[0] << 8 | (unsigned char)p[1]);
}

static ssize_t parse_v2(const char *data, size_t len, gc__proxy_info_t *info, char *why, size_t cap)
{
    if (len < 16)
        return 0;
    unsigned char ver_cmd = (unsigned char)data[12], fam_proto = (unsigned char)data[13];
    if (ver_cmd >> 4 != 2)
        return v2_bad(why, cap, "unsupported version %d", ver_cmd >> 4);
    unsigned command = ver_cmd & 0x0f;
    if (command > 1)
        return v2_bad(why, cap, "unsupported command %d", (int)command);
    size_t length = be16(data + 14), total = 16 + length;
    if (len < total)
        return 0;
    memset(info, 0, sizeof(*info));
    if (command == 0) {
        /* LOCAL: the proxy's own connection (a health check); nothing to override. */
        strcpy(info->protocol, "LOCAL");
        return (ssize_t)total;
    }
    unsigned family = fam_proto >> 4, transport = fam_proto & 0x0f;
    if (transport != 1)
        return v2_bad(why, cap, "only TCP (STREAM) is supported, not transport %d", (int)transport);
    const char *a = data + 16;
    switch (family) {
    case 0: /* UNSPEC */
        strcpy(info->protocol, "UNSPEC");
        return (ssize_t)total;
    case 1: /* INET */
        if (length < 12)
            return v2_bad(why, cap, "%d bytes are too few for IPv4 addresses", (int)length);
        inet_ntop(AF_INET, a, info->src_addr, sizeof(info->src_addr));
        inet_ntop(AF_INET, a + 4, info->dst_addr, sizeof(info->dst_addr));
        snprintf(info->src_port, sizeof(info->src_port), "%u", be16(a + 8));
        snprintf(info->dst_port, sizeof(info->dst_port), "%u", be16(a + 10));
        strcpy(info->protocol, "TCP4");
        break;
    case 2: /* INET6 */
        if (length < 36)
            return v2_bad(why, cap, "%d bytes are too few for IPv6 addresses", (int)length);
        inet_ntop(AF_INET6, a, info->src_addr, sizeof(info->src_addr));
        inet_ntop(AF_INET6, a + 16, info->dst_addr, sizeof(info->dst_addr));
        snprintf(info->src_port, sizeof(info->src_port), "%u", be16(a + 32));
        snprintf(info->dst_port, sizeof(info->dst_port), "%u", be16(a + 34));
        strcpy(info->protocol, "TCP6");
        break;
    default:
        return v2_bad(why, cap, "unsupported address family %d", (int)family);
    }
    info->has_addresses = 1;
    return (ssize_t)total;
}

ssize_t gc__proxy_parse(enum gc__proxy_kind kind, const char *data, size_t len,
                        gc__proxy_info_t *info, char *why, size_t cap)
{
    if (kind == GC_PROXY_IS_V1)
        return parse_v1(data, len, info, why, cap);
    if (kind == GC_PROXY_IS_V2)
        return parse_v2(data, len, info, why, cap);
    snprintf(why, cap, "not a PROXY protocol header");
    return -1;
}
