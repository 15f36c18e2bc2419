/* trust.c: IP allow lists (see trust.h).
 *
 * Addresses are parsed with inet_pton, which is also what Python's socket module uses
 * and close to what its ipaddress module accepts (dotted quads without leading zeros,
 * the usual IPv6 forms). IPv4-mapped IPv6 addresses and networks are folded into IPv4
 * on both sides, so "127.0.0.1" matches a peer that an IPv6 socket reports as
 * "::ffff:127.0.0.1". */
#include "http/trust.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const uint8_t v4_mapped_prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

/* Fills `out` from a textual address. Returns 0 or -1. */
static int parse_addr(const char *s, gc__trust_net_t *out)
{
    memset(out->addr, 0, sizeof(out->addr));
    if (inet_pton(AF_INET, s, out->addr) == 1) {
        out->family = AF_INET;
        out->bits = 32;
        return 0;
    }
    if (inet_pton(AF_INET6, s, out->addr) == 1) {
        out->family = AF_INET6;
        out->bits = 128;
        return 0;
    }
    return -1;
}

/* ::ffff:a.b.c.d/96+n is the IPv4 network a.b.c.d/n. */
static void fold_v4_mapped(gc__trust_net_t *n)
{
    if (n->family != AF_INET6 || n->bits < 96 || memcmp(n->addr, v4_mapped_prefix, 12) != 0)
        return;
    memmove(n->addr, n->addr + 12, 4);
    memset(n->addr + 4, 0, 12);
    n->family = AF_INET;
    n->bits -= 96;
}

/* Whether the first `bits` bits of a and b agree. */
static int prefix_equal(const uint8_t *a, const uint8_t *b, unsigned bits)
{
    unsigned whole = bits / 8, rest = bits % 8;
    if (memcmp(a, b, whole) != 0)
        return 0;
    if (rest == 0)
        return 1;
    uint8_t mask = (uint8_t)(0xff << (8 - rest));
    return (a[whole] & mask) == (b[whole] & mask);
}

int gc__trust_parse_net(const char *entry, gc__trust_net_t *out, char *err, size_t cap)
{
    char addr[64];
    const char *slash = strchr(entry, '/');
    size_t alen = slash ? (size_t)(slash - entry) : strlen(entry);
    if (alen >= sizeof(addr))
        goto bad;
    memcpy(addr, entry, alen);
    addr[alen] = '\0';
    if (parse_addr(addr, out) < 0)
        goto bad;
    if (slash != NULL) {
        /* A decimal prefix length; Python allows leading zeros ("/08") here. */
        const char *p = slash + 1;
        unsigned long bits = 0;
        if (*p == '\0')
            goto bad;
        for (; *p; p++) {
            if (*p < '0' || *p > '9' || bits > 1000)
                goto bad;
            bits = bits * 10 + (unsigned long)(*p - '0');
        }
        if (bits > out->bits)
            goto bad;
        out->bits = (unsigned)bits;
        /* Strict, as Gunicorn's validator: 10.0.0.1/8 is a typo for 10.0.0.0/8 or for
         * the single host, and guessing either could trust the wrong peers. */
        uint8_t masked[16];
        memcpy(masked, out->addr, sizeof(masked));
        for (unsigned i = out->bits; i < 128; i++)
            masked[i / 8] &= (uint8_t) ~(0x80u >> (i % 8));
        if (memcmp(masked, out->addr, sizeof(masked)) != 0) {
            snprintf(err, cap, "%s has host bits set", entry);
            return -EINVAL;
        }
    }
    fold_v4_mapped(out);
    return 0;
bad:
    snprintf(err, cap, "'%s' does not appear to be an IPv4 or IPv6 network", entry);
    return -EINVAL;
}

int gc__trust_init(gc__trust_list_t *t, char *const *items, size_t n, char *err, size_t cap)
{
    memset(t, 0, sizeof(*t));
    if (n > 0 && (t->nets = calloc(n, sizeof(*t->nets))) == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(items[i], "*") == 0) {
            t->any = 1;
            continue;
        }
        int rc = gc__trust_parse_net(items[i], &t->nets[t->n], err, cap);
        if (rc < 0) {
            gc__trust_free(t);
            return rc;
        }
        t->n++;
    }
    return 0;
}

void gc__trust_free(gc__trust_list_t *t)
{
    free(t->nets);
    memset(t, 0, sizeof(*t));
}

int gc__trust_match(const gc__trust_list_t *t, const char *addr)
{
    if (t->any)
        return 1;
    gc__trust_net_t peer;
    if (addr == NULL || parse_addr(addr, &peer) < 0)
        return 0;
    fold_v4_mapped(&peer);
    for (size_t i = 0; i < t->n; i++)
        if (t->nets[i].family == peer.family &&
            prefix_equal(t->nets[i].addr, peer.addr, t->nets[i].bits))
            return 1;
    return 0;
}
