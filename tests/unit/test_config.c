/* test_config.c: settings defaults, the command line and --bind addresses
 * (src/config/config.c, gc__address_parse in src/arbiter/listen.c).
 *
 * The command line must behave as Gunicorn's argparse parser does, down to the usage
 * error text, so the tests capture stdout/stderr around the parser and compare them
 * with what `gunicorn` prints for the same arguments. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "arbiter/listen.h"
#include "config/config.h"
#include "unit.h"

/* --- Capturing what the parser prints. -------------------------------------------- */

typedef struct {
    int saved_out, saved_err;
    FILE *file;
} capture_t;

/* Sends stdout and stderr into one temporary file until capture_end. */
static void capture_begin(capture_t *c)
{
    fflush(stdout);
    fflush(stderr);
    c->file = tmpfile();
    ASSERT(c->file != NULL);
    c->saved_out = dup(STDOUT_FILENO);
    c->saved_err = dup(STDERR_FILENO);
    ASSERT(c->saved_out >= 0 && c->saved_err >= 0);
    ASSERT(dup2(fileno(c->file), STDOUT_FILENO) >= 0);
    ASSERT(dup2(fileno(c->file), STDERR_FILENO) >= 0);
}

/* Restores stdout and stderr; returns what was printed (owned by the caller). */
static char *capture_end(capture_t *c)
{
    fflush(stdout);
    fflush(stderr);
    dup2(c->saved_out, STDOUT_FILENO);
    dup2(c->saved_err, STDERR_FILENO);
    close(c->saved_out);
    close(c->saved_err);
    long n = ftell(c->file);
    ASSERT(n >= 0);
    char *text = malloc((size_t)n + 1);
    ASSERT(text != NULL);
    rewind(c->file);
    ASSERT_EQ_INT(fread(text, 1, (size_t)n, c->file), n);
    text[n] = '\0';
    fclose(c->file);
    return text;
}

/* Parses a NULL-terminated argument list into cfg (already initialised); returns the
 * parser's result and, when out is given, what it printed. */
static int parse(gc__config_t *cfg, char **out, const char *const *args)
{
    char *argv[32];
    int argc = 0;
    while (args[argc] != NULL) {
        ASSERT(argc < 31);
        argv[argc] = (char *)args[argc];
        argc++;
    }
    argv[argc] = NULL;
    capture_t c;
    capture_begin(&c);
    int rc = gc__config_parse_args(cfg, argc, argv);
    char *text = capture_end(&c);
    if (out != NULL)
        *out = text;
    else
        free(text);
    return rc;
}

#define ARGS(...) ((const char *const[]){__VA_ARGS__, NULL})

static void clean_env(void)
{
    ASSERT_OK(unsetenv("PORT"));
    ASSERT_OK(unsetenv("WEB_CONCURRENCY"));
}

static void init(gc__config_t *cfg)
{
    ASSERT_OK(gc__config_init(cfg));
}

/* --- Defaults. -------------------------------------------------------------------- */

static void test_defaults(void)
{
    clean_env();
    gc__config_t cfg;
    init(&cfg);
    const gc__setting_value_t *bind = &cfg.v[GC_S_bind];
    ASSERT_EQ_INT(bind->n, 1);
    ASSERT_EQ_STR(bind->items[0], "127.0.0.1:8000");
    ASSERT_EQ_INT(bind->set, 0);
    ASSERT_EQ_INT(gc__cfg_int(&cfg, GC_S_workers), 1);
    ASSERT_EQ_INT(gc__cfg_int(&cfg, GC_S_timeout), 30);
    ASSERT_EQ_INT(gc__cfg_int(&cfg, GC_S_graceful_timeout), 30);
    ASSERT_EQ_INT(gc__cfg_int(&cfg, GC_S_keepalive), 2);
    ASSERT_EQ_INT(gc__cfg_int(&cfg, GC_S_backlog), 2048);
    ASSERT_EQ_INT(gc__cfg_int(&cfg, GC_S_limit_request_line), 4094);
    ASSERT_EQ_INT(gc__cfg_int(&cfg, GC_S_limit_request_fields), 100);
    ASSERT_EQ_INT(gc__cfg_int(&cfg, GC_S_limit_request_field_size), 8190);
    ASSERT_EQ_STR(gc__cfg_str(&cfg, GC_S_loglevel), "info");
    ASSERT_EQ_STR(gc__cfg_str(&cfg, GC_S_worker_class), "sync");
    ASSERT(gc__cfg_str(&cfg, GC_S_chdir) == NULL);
    ASSERT_EQ_INT(cfg.v[GC_S_raw_env].n, 0);
    ASSERT(cfg.app_uri == NULL);
    ASSERT_OK(gc__config_validate(&cfg));
    gc__config_free(&cfg);
    /* Freeing twice is harmless: the config is left empty. */
    gc__config_free(&cfg);
}

static void test_env_defaults(void)
{
    clean_env();
    gc__config_t cfg;

    ASSERT_OK(setenv("PORT", "9000", 1));
    init(&cfg);
    ASSERT_EQ_INT(cfg.v[GC_S_bind].n, 1);
    ASSERT_EQ_STR(cfg.v[GC_S_bind].items[0], "0.0.0.0:9000");
    ASSERT_EQ_INT(gc__cfg_int(&cfg, GC_S_workers), 1);
    /* --bind still replaces the PORT default rather than adding to it. */
    ASSERT_EQ_INT(parse(&cfg, NULL, ARGS("-b", "127.0.0.1:1")), GC_PARSE_OK);
    ASSERT_EQ_INT(cfg.v[GC_S_bind].n, 1);
    ASSERT_EQ_STR(cfg.v[GC_S_bind].items[0], "127.0.0.1:1");
    gc__config_free(&cfg);

    /* An empty PORT is the same as none. */
    ASSERT_OK(setenv("PORT", "", 1));
    init(&cfg);
    ASSERT_EQ_STR(cfg.v[GC_S_bind].items[0], "127.0.0.1:8000");
    gc__config_free(&cfg);
    clean_env();

    ASSERT_OK(setenv("WEB_CONCURRENCY", "3", 1));
    init(&cfg);
    ASSERT_EQ_INT(gc__cfg_int(&cfg, GC_S_workers), 3);
    ASSERT_EQ_STR(cfg.v[GC_S_bind].items[0], "127.0.0.1:8000");
    /* The command line wins over the environment. */
    ASSERT_EQ_INT(parse(&cfg, NULL, ARGS("-w", "5")), GC_PARSE_OK);
    ASSERT_EQ_INT(gc__cfg_int(&cfg, GC_S_workers), 5);
    gc__config_free(&cfg);
    clean_env();
}

/* --- The command line. ------------------------------------------------------------ */

static void assert_workers(const char *const *args, long want)
{
    gc__config_t cfg;
    init(&cfg);
    ASSERT_EQ_INT(parse(&cfg, NULL, args), GC_PARSE_OK);
    ASSERT_EQ_INT(gc__cfg_int(&cfg, GC_S_workers), want);
    ASSERT_EQ_INT(cfg.v[GC_S_workers].set, 1);
    gc__config_free(&cfg);
}

static void test_int_option_forms(void)
{
    clean_env();
    assert_workers(ARGS("-w", "4"), 4);
    assert_workers(ARGS("-w4"), 4);
    assert_workers(ARGS("--workers=4"), 4);
    assert_workers(ARGS("--workers", "4"), 4);
    /* argparse splits "-w=4" at the "=" as it does "--workers=4". */
    assert_workers(ARGS("-w=4"), 4);
    /* The last one wins; argparse's int() allows surrounding blanks. */
    assert_workers(ARGS("-w", "2", "--workers", "7"), 7);
    assert_workers(ARGS("-w", " 6 "), 6);

    gc__config_t cfg;
    init(&cfg);
    ASSERT_EQ_INT(
        parse(&cfg, NULL,
              ARGS("-t", "90", "--graceful-timeout=5", "--keep-alive", "10", "--limit-request-line",
                   "0", "--backlog=64", "--limit-request-field_size", "100")),
        GC_PARSE_OK);
    ASSERT_EQ_INT(gc__cfg_int(&cfg, GC_S_timeout), 90);
    ASSERT_EQ_INT(gc__cfg_int(&cfg, GC_S_graceful_timeout), 5);
    ASSERT_EQ_INT(gc__cfg_int(&cfg, GC_S_keepalive), 10);
    ASSERT_EQ_INT(gc__cfg_int(&cfg, GC_S_limit_request_line), 0);
    ASSERT_EQ_INT(gc__cfg_int(&cfg, GC_S_backlog), 64);
    ASSERT_EQ_INT(gc__cfg_int(&cfg, GC_S_limit_request_field_size), 100);
    ASSERT_OK(gc__config_validate(&cfg));
    gc__config_free(&cfg);
}

static void test_string_options(void)
{
    clean_env();
    gc__config_t cfg;
    init(&cfg);
    ASSERT_EQ_INT(
        parse(&cfg, NULL,
              ARGS("--log-level", "debug", "-k", "sync", "--chdir=/srv", "--pythonpath", "a,b")),
        GC_PARSE_OK);
    ASSERT_EQ_STR(gc__cfg_str(&cfg, GC_S_loglevel), "debug");
    ASSERT_EQ_STR(gc__cfg_str(&cfg, GC_S_worker_class), "sync");
    ASSERT_EQ_STR(gc__cfg_str(&cfg, GC_S_chdir), "/srv");
    ASSERT_EQ_STR(gc__cfg_str(&cfg, GC_S_pythonpath), "a,b");
    /* A later value replaces the earlier one. */
    ASSERT_EQ_INT(parse(&cfg, NULL, ARGS("--log-level=WARNING")), GC_PARSE_OK);
    ASSERT_EQ_STR(gc__cfg_str(&cfg, GC_S_loglevel), "WARNING");
    ASSERT_OK(gc__config_validate(&cfg));
    gc__config_free(&cfg);
}

static void test_list_options(void)
{
    clean_env();
    gc__config_t cfg;
    init(&cfg);
    ASSERT_EQ_INT(parse(&cfg, NULL,
                        ARGS("-b", "0.0.0.0:80", "--bind", "unix:/tmp/gc.sock", "-b[::1]:81",
                             "--bind=:82", "-b=127.0.0.1:83")),
                  GC_PARSE_OK);
    const gc__setting_value_t *bind = &cfg.v[GC_S_bind];
    /* The first -b replaces the default 127.0.0.1:8000; the others accumulate. */
    ASSERT_EQ_INT(bind->n, 5);
    ASSERT_EQ_INT(bind->set, 1);
    ASSERT_EQ_STR(bind->items[0], "0.0.0.0:80");
    ASSERT_EQ_STR(bind->items[1], "unix:/tmp/gc.sock");
    ASSERT_EQ_STR(bind->items[2], "[::1]:81");
    ASSERT_EQ_STR(bind->items[3], ":82");
    ASSERT_EQ_STR(bind->items[4], "127.0.0.1:83");
    gc__config_free(&cfg);

    init(&cfg);
    ASSERT_EQ_INT(parse(&cfg, NULL, ARGS("-e", "A=1", "-e", "B=2", "--env=C=3=x", "-eD=")),
                  GC_PARSE_OK);
    const gc__setting_value_t *env = &cfg.v[GC_S_raw_env];
    ASSERT_EQ_INT(env->n, 4);
    ASSERT_EQ_STR(env->items[0], "A=1");
    ASSERT_EQ_STR(env->items[1], "B=2");
    ASSERT_EQ_STR(env->items[2], "C=3=x");
    ASSERT_EQ_STR(env->items[3], "D=");
    /* Unrelated lists keep their defaults. */
    ASSERT_EQ_INT(cfg.v[GC_S_bind].n, 1);
    ASSERT_EQ_STR(cfg.v[GC_S_bind].items[0], "127.0.0.1:8000");
    gc__config_free(&cfg);
}

static void test_app_module(void)
{
    clean_env();
    gc__config_t cfg;
    init(&cfg);
    ASSERT_EQ_INT(parse(&cfg, NULL, ARGS("-w", "2", "myproject.wsgi:application", "-b", ":9")),
                  GC_PARSE_OK);
    ASSERT_EQ_STR(cfg.app_uri, "myproject.wsgi:application");
    ASSERT_EQ_INT(gc__cfg_int(&cfg, GC_S_workers), 2);
    ASSERT_EQ_STR(cfg.v[GC_S_bind].items[0], ":9");
    gc__config_free(&cfg);
    ASSERT(cfg.app_uri == NULL);

    /* After "--" everything is positional, even what looks like an option. */
    init(&cfg);
    ASSERT_EQ_INT(parse(&cfg, NULL, ARGS("--", "-app")), GC_PARSE_OK);
    ASSERT_EQ_STR(cfg.app_uri, "-app");
    gc__config_free(&cfg);

    /* A second positional argument is an error. */
    char *out;
    init(&cfg);
    ASSERT_EQ_INT(parse(&cfg, &out, ARGS("app:one", "app:two")), GC_PARSE_USAGE);
    ASSERT(strstr(out, "gunicorn-c: error: unrecognized arguments: app:two\n") != NULL);
    free(out);
    gc__config_free(&cfg);
}

static void test_usage_errors(void)
{
    clean_env();
    static const char usage[] = "usage: gunicorn-c [OPTIONS] [APP_MODULE]\n";
    /* Not static: the ARGS compound literals live in this block. */
    const struct {
        const char *const *args;
        const char *message;
    } cases[] = {
        {ARGS("--nope"), "gunicorn-c: error: unrecognized arguments: --nope\n"},
        {ARGS("-x"), "gunicorn-c: error: unrecognized arguments: -x\n"},
        {ARGS("--nope=1"), "gunicorn-c: error: unrecognized arguments: --nope=1\n"},
        {ARGS("-w", "x"), "gunicorn-c: error: argument -w/--workers: invalid int value: 'x'\n"},
        {ARGS("--workers="), "gunicorn-c: error: argument -w/--workers: invalid int value: ''\n"},
        {ARGS("-w", "4x"), "gunicorn-c: error: argument -w/--workers: invalid int value: '4x'\n"},
        {ARGS("-w", "99999999999999999999999"),
         "gunicorn-c: error: argument -w/--workers: invalid int value: "
         "'99999999999999999999999'\n"},
        {ARGS("--backlog", "1.5"),
         "gunicorn-c: error: argument --backlog: invalid int value: '1.5'\n"},
        {ARGS("-w"), "gunicorn-c: error: argument -w/--workers: expected one argument\n"},
        {ARGS("app", "-b"), "gunicorn-c: error: argument -b/--bind: expected one argument\n"},
        {ARGS("--timeout"), "gunicorn-c: error: argument -t/--timeout: expected one argument\n"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        gc__config_t cfg;
        init(&cfg);
        char *out;
        ASSERT_EQ_INT(parse(&cfg, &out, cases[i].args), GC_PARSE_USAGE);
        char expected[512];
        snprintf(expected, sizeof(expected), "%s%s", usage, cases[i].message);
        ASSERT_EQ_STR(out, expected);
        free(out);
        gc__config_free(&cfg);
    }
}

static void test_help_and_version(void)
{
    clean_env();
    gc__config_t cfg;
    char *out;

    init(&cfg);
    ASSERT_EQ_INT(parse(&cfg, &out, ARGS("-v")), GC_PARSE_EXIT_OK);
    ASSERT_EQ_STR(out, "gunicorn-c (version " GC_VERSION ")\n");
    free(out);
    gc__config_free(&cfg);

    init(&cfg);
    ASSERT_EQ_INT(parse(&cfg, &out, ARGS("-w", "3", "--version", "-w", "bad")), GC_PARSE_EXIT_OK);
    free(out);
    gc__config_free(&cfg);

    init(&cfg);
    ASSERT_EQ_INT(parse(&cfg, &out, ARGS("--help")), GC_PARSE_EXIT_OK);
    ASSERT(strncmp(out, "usage: gunicorn-c [OPTIONS] [APP_MODULE]\n", 41) == 0);
    /* Every setting with a flag is listed with its metavar and default. */
    ASSERT(strstr(out, "  -w INT, --workers INT ") != NULL);
    ASSERT(strstr(out, "  -b ADDRESS, --bind ADDRESS ") != NULL);
    ASSERT(strstr(out, "[127.0.0.1:8000]\n") != NULL);
    ASSERT(strstr(out, "  --limit-request-line INT ") != NULL);
    ASSERT(strstr(out, "  --log-level LEVEL ") != NULL);
    ASSERT(strstr(out, "[info]\n") != NULL);
    ASSERT(strstr(out, "  -e ENV, --env ENV ") != NULL);
    ASSERT(strstr(out, "  -h, --help ") != NULL);
    free(out);
    gc__config_free(&cfg);
}

static void test_validate(void)
{
    clean_env();
    gc__config_t cfg;
    char *out;
    capture_t c;

    init(&cfg);
    ASSERT_EQ_INT(parse(&cfg, NULL, ARGS("-w", "0")), GC_PARSE_OK);
    capture_begin(&c);
    int rc = gc__config_validate(&cfg);
    out = capture_end(&c);
    ASSERT_EQ_INT(rc, -EINVAL);
    ASSERT_EQ_STR(out, "Error: Value must be positive for setting 'workers': 0\n");
    free(out);
    gc__config_free(&cfg);

    init(&cfg);
    ASSERT_EQ_INT(parse(&cfg, NULL, ARGS("--log-level", "loud")), GC_PARSE_OK);
    capture_begin(&c);
    rc = gc__config_validate(&cfg);
    out = capture_end(&c);
    ASSERT_EQ_INT(rc, -EINVAL);
    ASSERT_EQ_STR(out, "Error: Invalid log level: 'loud'\n");
    free(out);
    gc__config_free(&cfg);

    init(&cfg);
    ASSERT_EQ_INT(parse(&cfg, NULL, ARGS("-t", "-1")), GC_PARSE_OK);
    capture_begin(&c);
    rc = gc__config_validate(&cfg);
    out = capture_end(&c);
    ASSERT_EQ_INT(rc, -EINVAL);
    ASSERT_EQ_STR(out, "Error: Value must be non-negative for setting 'timeout': -1\n");
    free(out);
    gc__config_free(&cfg);

    /* Every level Gunicorn knows, in any case. */
    static const char *const levels[] = {"debug", "INFO", "Warning", "error", "critical"};
    for (size_t i = 0; i < sizeof(levels) / sizeof(levels[0]); i++) {
        init(&cfg);
        ASSERT_EQ_INT(parse(&cfg, NULL, ARGS("--log-level", levels[i])), GC_PARSE_OK);
        ASSERT_OK(gc__config_validate(&cfg));
        gc__config_free(&cfg);
    }
}

/* --- --bind addresses. ------------------------------------------------------------ */

static void assert_address(const char *text, const char *host, const char *port)
{
    gc__address_t a;
    int rc = gc__address_parse(text, &a);
    if (rc != 0)
        fprintf(stderr, "\nrefused: %s\n", text);
    ASSERT_OK(rc);
    ASSERT_EQ_STR(a.host, host);
    ASSERT_EQ_STR(a.port, port);
    ASSERT(a.unix_path == NULL);
}

static void test_address_parse(void)
{
    assert_address("127.0.0.1:8000", "127.0.0.1", "8000");
    assert_address("localhost", "localhost", "8000");
    assert_address("example.com:80", "example.com", "80");
    assert_address("[::1]:9000", "::1", "9000");
    assert_address("[::1]", "::1", "8000");
    assert_address("[fe80::1%eth0]:443", "fe80::1%eth0", "443");
    assert_address(":8080", "0.0.0.0", "8080");
    assert_address("", "0.0.0.0", "8000");
    assert_address("0.0.0.0:0", "0.0.0.0", "0");
    assert_address("host:65535", "host", "65535");

    gc__address_t a;
    ASSERT_OK(gc__address_parse("unix:/tmp/x.sock", &a));
    ASSERT_EQ_STR(a.unix_path, "/tmp/x.sock");
    ASSERT_EQ_STR(a.host, "");
    free(a.unix_path);
    ASSERT_OK(gc__address_parse("unix:relative.sock", &a));
    ASSERT_EQ_STR(a.unix_path, "relative.sock");
    free(a.unix_path);

    /* Unbracketed IPv6 addresses, ports that are not numbers or out of range, broken
     * brackets and an empty socket path. */
    static const char *const bad[] = {
        "::1:80",     "::1",       "a:b:c",   "host:abc", "host:70000",
        "host:65536", "host:",     "host:-1", "host:+80", "host:80 ",
        "[::1",       "[::1]9000", "[::1]:",  "[::1]:x",  "unix:",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int rc = gc__address_parse(bad[i], &a);
        if (rc != -EINVAL)
            fprintf(stderr, "\naccepted: '%s' (%d)\n", bad[i], rc);
        ASSERT_EQ_INT(rc, -EINVAL);
        ASSERT(a.unix_path == NULL);
    }

    /* A path that cannot fit in sockaddr_un is refused, not cut short. */
    char longpath[200] = "unix:/";
    memset(longpath + 6, 'p', sizeof(longpath) - 7);
    longpath[sizeof(longpath) - 1] = '\0';
    ASSERT_EQ_INT(gc__address_parse(longpath, &a), -EINVAL);
    /* A host too long for the buffer likewise. */
    char longhost[300];
    memset(longhost, 'h', sizeof(longhost) - 4);
    strcpy(longhost + sizeof(longhost) - 4, ":80");
    ASSERT_EQ_INT(gc__address_parse(longhost, &a), -EINVAL);
}

int main(int argc, char **argv)
{
    unit_init(argc, argv);
    RUN(test_defaults);
    RUN(test_env_defaults);
    RUN(test_int_option_forms);
    RUN(test_string_options);
    RUN(test_list_options);
    RUN(test_app_module);
    RUN(test_usage_errors);
    RUN(test_help_and_version);
    RUN(test_validate);
    RUN(test_address_parse);
    return unit_done();
}
