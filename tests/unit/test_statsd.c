/* test_statsd.c: the pure parts of src/log/statsd.c.
 *
 * --statsd-host is read as Gunicorn 26.1's validate_statsd_address and
 * util.parse_address read it (the expected values are what they return), the prefix
 * follows Gunicorn's regular expression ^(.+[^.]+)\.*$ -> "\1.", and durations print
 * as Python prints the float Gunicorn sends. */
#include <errno.h>
#include <string.h>

#include "log/statsd.h"
#include "unit.h"

static gc__statsd_addr_t parse_ok(const char *text)
{
    gc__statsd_addr_t a;
    ASSERT_OK(gc__statsd_parse_address(text, &a));
    return a;
}

static void check_inet(const char *text, const char *host, const char *port)
{
    gc__statsd_addr_t a = parse_ok(text);
    ASSERT_EQ_INT(a.is_unix, 0);
    ASSERT_EQ_STR(a.host, host);
    ASSERT_EQ_STR(a.port, port);
}

static void test_host_and_port(void)
{
    check_inet("127.0.0.1:9125", "127.0.0.1", "9125");
    check_inet("statsd.example.com:8126", "statsd.example.com", "8126");
    check_inet("StatsD.Example.COM:8126", "statsd.example.com", "8126"); /* host.lower() */
    check_inet("tcp://localhost:8125", "localhost", "8125");
    check_inet("localhost:08125", "localhost", "8125"); /* int('08125') */
}

static void test_default_port(void)
{
    check_inet("localhost", "localhost", "8125");
    check_inet("10.1.2.3", "10.1.2.3", "8125");
    check_inet("[::1]", "::1", "8125");
    check_inet("", "0.0.0.0", "8125");
}

static void test_ipv6(void)
{
    check_inet("[::1]:9125", "::1", "9125");
    check_inet("[2001:DB8::1]:1", "2001:db8::1", "1");
}

static void test_unix_forms(void)
{
    gc__statsd_addr_t a = parse_ok("unix:/run/statsd.sock");
    ASSERT_EQ_INT(a.is_unix, 1);
    ASSERT_EQ_STR(a.path, "/run/statsd.sock");
    a = parse_ok("unix:///run/statsd.sock");
    ASSERT_EQ_INT(a.is_unix, 1);
    ASSERT_EQ_STR(a.path, "/run/statsd.sock");
    a = parse_ok("unix://relative.sock");
    ASSERT_EQ_STR(a.path, "relative.sock");
    /* The pre-20 spelling of the host "unix" with a port. */
    check_inet("unix:8125", "unix", "8125");
    char longpath[200] = "unix:/";
    memset(longpath + 6, 'x', sizeof(longpath) - 7);
    longpath[sizeof(longpath) - 1] = '\0';
    ASSERT_EQ_INT(gc__statsd_parse_address(longpath, &a), -ENAMETOOLONG);
}

static void test_malformed(void)
{
    gc__statsd_addr_t a;
    /* Each raises "Value must be one of ('host:port', 'unix://PATH')" in Gunicorn. */
    ASSERT_EQ_INT(gc__statsd_parse_address("localhost:", &a), -EINVAL);
    ASSERT_EQ_INT(gc__statsd_parse_address("localhost:port", &a), -EINVAL);
    ASSERT_EQ_INT(gc__statsd_parse_address("[::1]:x", &a), -EINVAL);
    ASSERT_EQ_INT(gc__statsd_parse_address("fd://x", &a), -EINVAL);
    /* Accepted by Gunicorn's validator, but nothing can be sent there. */
    ASSERT_EQ_INT(gc__statsd_parse_address("fd://3", &a), -ENOTSUP);
    ASSERT_EQ_INT(gc__statsd_parse_address("localhost:99999", &a), -ERANGE);
    ASSERT_EQ_INT(gc__statsd_parse_address("localhost:1234567", &a), -ERANGE);
}

static void check_prefix(const char *setting, const char *want)
{
    char out[64];
    size_t n = gc__statsd_prefix(setting, out, sizeof(out));
    ASSERT_EQ_STR(out, want);
    ASSERT_EQ_INT(n, strlen(want));
}

static void test_prefix(void)
{
    check_prefix("", "");
    check_prefix("app", "app.");
    check_prefix("app.", "app.");
    check_prefix("app...", "app.");
    check_prefix("my.app", "my.app.");
    check_prefix(".ab", ".ab.");
    /* Gunicorn's pattern needs two characters before the dots. */
    check_prefix("a", "a");
    check_prefix("a.", "a.");
    check_prefix(".", ".");
    check_prefix("..", "..");
}

static void check_ms(double ms, const char *want)
{
    char out[32];
    size_t n = gc__statsd_format_ms(ms, out, sizeof(out));
    ASSERT_EQ_STR(out, want);
    ASSERT_EQ_INT(n, strlen(want));
}

static void test_duration(void)
{
    /* str(seconds * 1000 + microseconds / 1000) */
    check_ms(0, "0.0");
    check_ms(2, "2.0");
    check_ms(0.417, "0.417");
    check_ms(1500.25, "1500.25");
    check_ms(12.5, "12.5");
    check_ms(0.001, "0.001");
    check_ms(61234.567, "61234.567");
    check_ms(-1, "0.0"); /* a clock step never sends a negative time */
}

static void test_queued_of_a_non_tcp_socket(void)
{
    ASSERT_EQ_INT(gc__statsd_queued(0), 0);
    ASSERT_EQ_INT(gc__statsd_queued(-1), 0);
}

int main(int argc, char **argv)
{
    unit_init(argc, argv);
    RUN(test_host_and_port);
    RUN(test_default_port);
    RUN(test_ipv6);
    RUN(test_unix_forms);
    RUN(test_malformed);
    RUN(test_prefix);
    RUN(test_duration);
    RUN(test_queued_of_a_non_tcp_socket);
    return unit_done();
}
