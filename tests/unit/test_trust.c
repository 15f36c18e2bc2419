/* test_trust.c: IP allow lists in src/http/trust.c.
 *
 * Entries are checked against what Python's ipaddress.ip_network accepts (the messages
 * are Python's), and peers against the networks, including IPv4 peers seen through an
 * IPv6 socket. */
#include <errno.h>
#include <string.h>

#include "http/trust.h"
#include "unit.h"

static gc__trust_list_t make(char **items, size_t n)
{
    gc__trust_list_t t;
    char err[256];
    ASSERT_OK(gc__trust_init(&t, items, n, err, sizeof(err)));
    return t;
}

static void test_default_list(void)
{
    char *items[] = {"127.0.0.1", "::1"};
    gc__trust_list_t t = make(items, 2);
    ASSERT(gc__trust_match(&t, "127.0.0.1"));
    ASSERT(gc__trust_match(&t, "::1"));
    ASSERT(gc__trust_match(&t, "::ffff:127.0.0.1")); /* IPv4 through an IPv6 socket */
    ASSERT(!gc__trust_match(&t, "127.0.0.2"));
    ASSERT(!gc__trust_match(&t, "134.213.44.18"));
    ASSERT(!gc__trust_match(&t, "::2"));
    ASSERT(!gc__trust_match(&t, ""));
    ASSERT(!gc__trust_match(&t, NULL));
    ASSERT(!gc__trust_match(&t, "not an address"));
    gc__trust_free(&t);
}

static void test_star_trusts_everyone(void)
{
    char *items[] = {"10.0.0.1", "*"};
    gc__trust_list_t t = make(items, 2);
    ASSERT(gc__trust_match(&t, "134.213.44.18"));
    ASSERT(gc__trust_match(&t, "2001:db8::1"));
    ASSERT(gc__trust_match(&t, "")); /* even what does not parse */
    gc__trust_free(&t);
}

static void test_empty_list_trusts_nobody(void)
{
    gc__trust_list_t t = make(NULL, 0);
    ASSERT(!gc__trust_match(&t, "127.0.0.1"));
    gc__trust_free(&t);
}

static void test_networks(void)
{
    char *items[] = {"10.0.0.0/8", "192.168.1.128/25", "2001:db8::/32", "0.0.0.0/0"};
    gc__trust_list_t t = make(items, 3);
    ASSERT(gc__trust_match(&t, "10.1.2.3"));
    ASSERT(gc__trust_match(&t, "10.255.255.255"));
    ASSERT(!gc__trust_match(&t, "11.0.0.0"));
    ASSERT(gc__trust_match(&t, "192.168.1.200"));
    ASSERT(!gc__trust_match(&t, "192.168.1.127"));
    ASSERT(gc__trust_match(&t, "2001:db8:ffff::1"));
    ASSERT(!gc__trust_match(&t, "2001:db9::1"));
    ASSERT(gc__trust_match(&t, "::ffff:10.9.8.7"));
    ASSERT(!gc__trust_match(&t, "::ffff:11.9.8.7"));
    gc__trust_free(&t);

    gc__trust_list_t all = make(items + 3, 1); /* 0.0.0.0/0: every IPv4 peer, no IPv6 */
    ASSERT(gc__trust_match(&all, "8.8.8.8"));
    ASSERT(gc__trust_match(&all, "::ffff:8.8.8.8"));
    ASSERT(!gc__trust_match(&all, "2001:db8::1"));
    gc__trust_free(&all);
}

static void test_v4_mapped_network(void)
{
    char *items[] = {"::ffff:10.0.0.0/104"};
    gc__trust_list_t t = make(items, 1);
    ASSERT(gc__trust_match(&t, "10.20.30.40"));
    ASSERT(gc__trust_match(&t, "::ffff:10.20.30.40"));
    ASSERT(!gc__trust_match(&t, "11.0.0.1"));
    gc__trust_free(&t);
}

static void test_entries_as_python_checks_them(void)
{
    gc__trust_net_t n;
    char err[256];
    ASSERT_OK(gc__trust_parse_net("10.0.0.0/08", &n, err, sizeof(err))); /* as Python */
    ASSERT_EQ_INT(n.bits, 8);
    ASSERT_OK(gc__trust_parse_net("::/0", &n, err, sizeof(err)));
    ASSERT_OK(gc__trust_parse_net("1.2.3.4/32", &n, err, sizeof(err)));

    ASSERT_EQ_INT(gc__trust_parse_net("192.168.1.1/24", &n, err, sizeof(err)), -EINVAL);
    ASSERT_EQ_STR(err, "192.168.1.1/24 has host bits set");
    ASSERT_EQ_INT(gc__trust_parse_net("foo", &n, err, sizeof(err)), -EINVAL);
    ASSERT_EQ_STR(err, "'foo' does not appear to be an IPv4 or IPv6 network");
    const char *bad[] = {"10.0.0.0/33", "1.2.3.4/",   "01.2.3.4", " 1.2.3.4",  "1.2.3.4/ 8",
                         "::1/129",     "1.2.3.4/-1", "",         "1.2.3.4/8x"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ASSERT_EQ_INT(gc__trust_parse_net(bad[i], &n, err, sizeof(err)), -EINVAL);

    char *items[] = {"127.0.0.1", "10.0.0.1/8"};
    gc__trust_list_t t;
    ASSERT_EQ_INT(gc__trust_init(&t, items, 2, err, sizeof(err)), -EINVAL);
    ASSERT_EQ_STR(err, "10.0.0.1/8 has host bits set");
    ASSERT(t.nets == NULL);
}

int main(int argc, char **argv)
{
    unit_init(argc, argv);
    RUN(test_default_list);
    RUN(test_star_trusts_everyone);
    RUN(test_empty_list_trusts_nobody);
    RUN(test_networks);
    RUN(test_v4_mapped_network);
    RUN(test_entries_as_python_checks_them);
    return unit_done();
}
