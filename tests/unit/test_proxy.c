/* test_proxy.c: PROXY protocol v1 and v2 headers in src/http/proxy.c.
 *
 * Headers are parsed whole and cut short at every length, since a read can end
 * anywhere: a prefix must ask for more bytes, never fail or succeed early. v2 headers
 * are built byte by byte as a load balancer would send them. */
#include <string.h>

#include "http/proxy.h"
#include "unit.h"

#define LIT(s) (s), sizeof(s) - 1

static const char sig[12] = {'\r', '\n', '\r', '\n', '\0', '\r', '\n', 'Q', 'U', 'I', 'T', '\n'};

/* Parses a complete header, checking every prefix first. Returns what the whole gives. */
static ssize_t parse_all(const char *data, size_t len, gc__proxy_info_t *info, char *why,
                         size_t cap)
{
    enum gc__proxy_kind kind = GC_PROXY_MORE;
    for (size_t n = 0; n < len; n++) {
        kind = gc__proxy_detect(GC_PROXY_AUTO, data, n);
        if (kind == GC_PROXY_MORE)
            continue;
        ASSERT(kind == GC_PROXY_IS_V1 || kind == GC_PROXY_IS_V2);
        ssize_t r = gc__proxy_parse(kind, data, n, info, why, cap);
        if (r != 0)
            return r; /* only an error may come before the end */
    }
    kind = gc__proxy_detect(GC_PROXY_AUTO, data, len);
    return gc__proxy_parse(kind, data, len, info, why, cap);
}

static void test_detect(void)
{
    ASSERT_EQ_INT(gc__proxy_detect(GC_PROXY_AUTO, "", 0), GC_PROXY_MORE);
    ASSERT_EQ_INT(gc__proxy_detect(GC_PROXY_AUTO, LIT("PRO")), GC_PROXY_MORE);
    ASSERT_EQ_INT(gc__proxy_detect(GC_PROXY_AUTO, LIT("PROXY ")), GC_PROXY_IS_V1);
    ASSERT_EQ_INT(gc__proxy_detect(GC_PROXY_AUTO, LIT("PROXYZ")), GC_PROXY_NONE);
    ASSERT_EQ_INT(gc__proxy_detect(GC_PROXY_AUTO, LIT("GET / HTTP/1.1\r\n")), GC_PROXY_NONE);
    ASSERT_EQ_INT(gc__proxy_detect(GC_PROXY_AUTO, LIT("G")), GC_PROXY_NONE);
    ASSERT_EQ_INT(gc__proxy_detect(GC_PROXY_AUTO, LIT("\r\n\r\n")), GC_PROXY_MORE);
    ASSERT_EQ_INT(gc__proxy_detect(GC_PROXY_AUTO, LIT("\r\nGET")), GC_PROXY_NONE);
    ASSERT_EQ_INT(gc__proxy_detect(GC_PROXY_AUTO, sig, 12), GC_PROXY_IS_V2);
    ASSERT_EQ_INT(gc__proxy_detect(GC_PROXY_AUTO, sig, 11), GC_PROXY_MORE);
    /* Each version alone ignores the other's header: it is plain HTTP then. */
    ASSERT_EQ_INT(gc__proxy_detect(GC_PROXY_V1, sig, 12), GC_PROXY_NONE);
    ASSERT_EQ_INT(gc__proxy_detect(GC_PROXY_V1, LIT("\r\n")), GC_PROXY_NONE);
    ASSERT_EQ_INT(gc__proxy_detect(GC_PROXY_V2, LIT("PROXY TCP4")), GC_PROXY_NONE);
    ASSERT_EQ_INT(gc__proxy_detect(GC_PROXY_V2, sig, 12), GC_PROXY_IS_V2);
    ASSERT_EQ_INT(gc__proxy_detect(GC_PROXY_OFF, LIT("PROXY ")), GC_PROXY_NONE);

    ASSERT_EQ_INT(gc__proxy_mode_from_name("off"), GC_PROXY_OFF);
    ASSERT_EQ_INT(gc__proxy_mode_from_name(NULL), GC_PROXY_OFF);
    ASSERT_EQ_INT(gc__proxy_mode_from_name("v1"), GC_PROXY_V1);
    ASSERT_EQ_INT(gc__proxy_mode_from_name("v2"), GC_PROXY_V2);
    ASSERT_EQ_INT(gc__proxy_mode_from_name("auto"), GC_PROXY_AUTO);
}

static void test_v1_tcp4(void)
{
    static const char h[] = "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\nGET / HTTP/1.1\r\n";
    gc__proxy_info_t info;
    char why[256];
    ssize_t n = parse_all(h, sizeof(h) - 1, &info, why, sizeof(why));
    ASSERT_EQ_INT(n, strlen("PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n"));
    ASSERT_EQ_STR(info.protocol, "TCP4");
    ASSERT(info.has_addresses);
    ASSERT_EQ_STR(info.src_addr, "192.168.0.1");
    ASSERT_EQ_STR(info.dst_addr, "192.168.0.11");
    ASSERT_EQ_STR(info.src_port, "56324");
    ASSERT_EQ_STR(info.dst_port, "443");
}

static void test_v1_tcp6(void)
{
    static const char h[] = "PROXY TCP6 2001:db8::1 ::ffff:1.2.3.4 0 00080\r\n";
    gc__proxy_info_t info;
    char why[256];
    ASSERT_EQ_INT(parse_all(h, sizeof(h) - 1, &info, why, sizeof(why)), sizeof(h) - 1);
    ASSERT_EQ_STR(info.protocol, "TCP6");
    ASSERT_EQ_STR(info.src_addr, "2001:db8::1"); /* as sent */
    ASSERT_EQ_STR(info.dst_addr, "::ffff:1.2.3.4");
    ASSERT_EQ_STR(info.src_port, "0");
    ASSERT_EQ_STR(info.dst_port, "80"); /* as int() reads it */
}

static void expect_v1_error(const char *h, const char *message)
{
    gc__proxy_info_t info;
    char why[256];
    ASSERT_EQ_INT(parse_all(h, strlen(h), &info, why, sizeof(why)), -1);
    ASSERT_EQ_STR(why, message);
}

static void test_v1_errors(void)
{
    /* Gunicorn's page text: the exception's str() in single quotes. */
    expect_v1_error("PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n",
                    "'Invalid PROXY line: 'PROXY TCP4 1.2.3.4 5.6.7.8 1''");
    expect_v1_error("PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n",
                    "'Invalid PROXY line: 'PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3''");
    expect_v1_error("PROXY TCP4 1.2.3.4  5.6.7.8 1\r\n",
                    "'Invalid PROXY line: 'PROXY TCP4 1.2.3.4  5.6.7.8 1''");
    expect_v1_error("PROXY UNKNOWN\r\n", "'Invalid PROXY line: 'PROXY UNKNOWN''");
    expect_v1_error("PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n",
                    "'Invalid PROXY line: \"protocol 'UDP4' not supported\"'");
    expect_v1_error("PROXY UNKNOWN 1.2.3.4 5.6.7.8 1 2\r\n",
                    "'Invalid PROXY line: \"protocol 'UNKNOWN' not supported\"'");
    expect_v1_error("PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n",
                    "'Invalid PROXY line: 'PROXY TCP4 1.2.3.256 5.6.7.8 1 2''");
    expect_v1_error("PROXY TCP4 ::1 5.6.7.8 1 2\r\n",
                    "'Invalid PROXY line: 'PROXY TCP4 ::1 5.6.7.8 1 2''");
    expect_v1_error("PROXY TCP6 1.2.3.4 ::1 1 2\r\n",
                    "'Invalid PROXY line: 'PROXY TCP6 1.2.3.4 ::1 1 2''");
    expect_v1_error("PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n",
                    "'Invalid PROXY line: 'invalid port PROXY TCP4 1.2.3.4 5.6.7.8 65536 2''");
    expect_v1_error("PROXY TCP4 1.2.3.4 5.6.7.8 1 x\r\n",
                    "'Invalid PROXY line: 'invalid port PROXY TCP4 1.2.3.4 5.6.7.8 1 x''");
    expect_v1_error("PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n",
                    "'Invalid PROXY line: 'invalid port PROXY TCP4 1.2.3.4 5.6.7.8 -1 2''");
    /* A bare LF does not end the line: the request's CRLF does, and the line is bad. */
    expect_v1_error("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\nGET / HTTP/1.1\r\n",
                    "'Invalid PROXY line: 'PROXY TCP4 1.2.3.4 5.6.7.8 1 2\\nGET / HTTP/1.1''");
}

static void test_v1_line_is_bounded(void)
{
    char h[GC_PROXY_V1_MAX + 10];
    memset(h, 'A', sizeof(h));
    memcpy(h, "PROXY ", 6);
    gc__proxy_info_t info;
    char why[256];
    ASSERT_EQ_INT(gc__proxy_parse(GC_PROXY_IS_V1, h, GC_PROXY_V1_MAX - 1, &info, why, sizeof(why)),
                  0);
    ASSERT_EQ_INT(gc__proxy_parse(GC_PROXY_IS_V1, h, sizeof(h), &info, why, sizeof(why)), -1);
    ASSERT(strncmp(why, "'Invalid PROXY line: 'PROXY AAAA", 32) == 0);
}

/* A v2 header: signature, version/command, family/transport, length, addresses. */
static size_t v2(char *out, unsigned char ver_cmd, unsigned char fam, const void *addr, size_t alen,
                 size_t extra)
{
    memcpy(out, sig, 12);
    out[12] = (char)ver_cmd;
    out[13] = (char)fam;
    size_t len = alen + extra;
    out[14] = (char)(len >> 8);
    out[15] = (char)(len & 0xff);
    memcpy(out + 16, addr, alen);
    memset(out + 16 + alen, 0x20, extra); /* TLVs we ignore */
    return 16 + len;
}

static void test_v2_inet(void)
{
    static const unsigned char a[12] = {10, 1, 2, 3, 192, 168, 0, 1, 0xdc, 0x05, 0x01, 0xbb};
    char h[64 + 16];
    size_t n = v2(h, 0x21, 0x11, a, sizeof(a), 5);
    memcpy(h + n, "GET", 3);
    gc__proxy_info_t info;
    char why[256];
    ASSERT_EQ_INT(parse_all(h, n + 3, &info, why, sizeof(why)), n);
    ASSERT_EQ_STR(info.protocol, "TCP4");
    ASSERT(info.has_addresses);
    ASSERT_EQ_STR(info.src_addr, "10.1.2.3");
    ASSERT_EQ_STR(info.dst_addr, "192.168.0.1");
    ASSERT_EQ_STR(info.src_port, "56325");
    ASSERT_EQ_STR(info.dst_port, "443");
}

static void test_v2_inet6(void)
{
    unsigned char a[36] = {0};
    a[0] = 0x20, a[1] = 0x01, a[2] = 0x0d, a[3] = 0xb8, a[15] = 1; /* 2001:db8::1 */
    a[31] = 1;                                                     /* ::1 */
    a[32] = 0x30, a[33] = 0x39;                                    /* 12345 */
    a[34] = 0, a[35] = 80;
    char h[64];
    size_t n = v2(h, 0x21, 0x21, a, sizeof(a), 0);
    gc__proxy_info_t info;
    char why[256];
    ASSERT_EQ_INT(parse_all(h, n, &info, why, sizeof(why)), n);
    ASSERT_EQ_STR(info.protocol, "TCP6");
    ASSERT_EQ_STR(info.src_addr, "2001:db8::1");
    ASSERT_EQ_STR(info.dst_addr, "::1");
    ASSERT_EQ_STR(info.src_port, "12345");
    ASSERT_EQ_STR(info.dst_port, "80");
}

static void test_v2_local_and_unspec(void)
{
    char h[64];
    gc__proxy_info_t info;
    char why[256];
    /* LOCAL: whatever the family, no addresses; the length is still skipped. */
    size_t n = v2(h, 0x20, 0x11, "0123456789ab", 12, 0);
    ASSERT_EQ_INT(parse_all(h, n, &info, why, sizeof(why)), n);
    ASSERT_EQ_STR(info.protocol, "LOCAL");
    ASSERT(!info.has_addresses);
    n = v2(h, 0x21, 0x01, "", 0, 3);
    ASSERT_EQ_INT(parse_all(h, n, &info, why, sizeof(why)), n);
    ASSERT_EQ_STR(info.protocol, "UNSPEC");
    ASSERT(!info.has_addresses);
}

static void expect_v2_error(const char *h, size_t len, const char *message)
{
    gc__proxy_info_t info;
    char why[256];
    ASSERT_EQ_INT(parse_all(h, len, &info, why, sizeof(why)), -1);
    ASSERT_EQ_STR(why, message);
}

static void test_v2_errors(void)
{
    char h[64];
    size_t n = v2(h, 0x11, 0x11, "0123456789ab", 12, 0);
    expect_v2_error(h, n, "Invalid PROXY protocol v2 header: unsupported version 1");
    n = v2(h, 0x22, 0x11, "0123456789ab", 12, 0);
    expect_v2_error(h, n, "Invalid PROXY protocol v2 header: unsupported command 2");
    n = v2(h, 0x21, 0x12, "0123456789ab", 12, 0);
    expect_v2_error(h, n,
                    "Invalid PROXY protocol v2 header: only TCP (STREAM) is supported, not "
                    "transport 2");
    n = v2(h, 0x21, 0x00, "", 0, 0); /* UNSPEC family, UNSPEC transport */
    expect_v2_error(h, n,
                    "Invalid PROXY protocol v2 header: only TCP (STREAM) is supported, not "
                    "transport 0");
    n = v2(h, 0x21, 0x31, "0123456789ab", 12, 0);
    expect_v2_error(h, n, "Invalid PROXY protocol v2 header: unsupported address family 3");
    n = v2(h, 0x21, 0x11, "01234567890", 11, 0);
    expect_v2_error(h, n,
                    "Invalid PROXY protocol v2 header: 11 bytes are too few for IPv4 "
                    "addresses");
    n = v2(h, 0x21, 0x21, "0123456789ab", 12, 0);
    expect_v2_error(h, n,
                    "Invalid PROXY protocol v2 header: 12 bytes are too few for IPv6 "
                    "addresses");
}

static void test_v2_waits_for_its_length(void)
{
    char h[16 + 300];
    static const unsigned char a[12] = {1, 2, 3, 4, 5, 6, 7, 8, 0, 1, 0, 2};
    size_t n = v2(h, 0x21, 0x11, a, sizeof(a), 288);
    gc__proxy_info_t info;
    char why[256];
    ASSERT_EQ_INT(gc__proxy_parse(GC_PROXY_IS_V2, h, n - 1, &info, why, sizeof(why)), 0);
    ASSERT_EQ_INT(gc__proxy_parse(GC_PROXY_IS_V2, h, n, &info, why, sizeof(why)), n);
    ASSERT_EQ_STR(info.src_addr, "1.2.3.4");
}

int main(int argc, char **argv)
{
    unit_init(argc, argv);
    RUN(test_detect);
    RUN(test_v1_tcp4);
    RUN(test_v1_tcp6);
    RUN(test_v1_errors);
    RUN(test_v1_line_is_bounded);
    RUN(test_v2_inet);
    RUN(test_v2_inet6);
    RUN(test_v2_local_and_unspec);
    RUN(test_v2_errors);
    RUN(test_v2_waits_for_its_length);
    return unit_done();
}
