/* trust.h: allow lists of IP addresses and networks (forwarded_allow_ips,
 * proxy_allow_ips).
 *
 * Gunicorn keeps these lists as strings and turns every entry into an
 * ipaddress.ip_network; a peer is trusted when its address lies in one of them, or when
 * the list holds "*". Here the list is parsed once per worker into binary networks, so
 * that the check made for every accepted connection is a few byte comparisons.
 *
 * An IPv4 peer seen through an IPv6 socket (::ffff:10.0.0.1) is matched as the IPv4
 * address it is; Gunicorn compares it as an IPv6 address and never finds it in an IPv4
 * network (docs/http.md lists this difference).
 *
 * Pure C, no Python: unit-tested in tests/unit/test_trust.c. */
#ifndef GC_HTTP_TRUST_H
#define GC_HTTP_TRUST_H

#include <stddef.h>
#include <stdint.h>

/* One network: `bits` leading bits of `addr` (4 bytes used for IPv4, 16 for IPv6). */
typedef struct {
    int family; /* AF_INET or AF_INET6 */
    unsigned bits;
    uint8_t addr[16];
} gc__trust_net_t;

typedef struct {
    int any;               /* "*" was listed: everyone is trusted */
    gc__trust_net_t *nets; /* owned */
    size_t n;
} gc__trust_list_t;

/* Parses one entry as Python's ipaddress.ip_network(entry) does in its strict mode: an
 * address ("10.0.0.1", "::1"), or ADDRESS/PREFIX with no bit set past the prefix
 * ("10.0.0.0/8"; "10.0.0.1/8" is refused, as in Gunicorn 24.1.1). Netmask forms
 * ("10.0.0.0/255.0.0.0") are not accepted. Returns 0, or -EINVAL with a message in the
 * words of Python's ipaddress module in `err` (`cap` bytes). */
int gc__trust_parse_net(const char *entry, gc__trust_net_t *out, char *err, size_t cap);

/* Builds a list from `n` entries (borrowed strings): "*" or what gc__trust_parse_net
 * takes. Returns 0, -EINVAL (err filled, t left empty) or -ENOMEM. Free with
 * gc__trust_free. */
int gc__trust_init(gc__trust_list_t *t, char *const *items, size_t n, char *err, size_t cap);
void gc__trust_free(gc__trust_list_t *t);

/* Whether the textual address `addr` ("127.0.0.1", "::1") is trusted. An address that
 * does not parse is trusted only by "*". */
int gc__trust_match(const gc__trust_list_t *t, const char *addr);

#endif
