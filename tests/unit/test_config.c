/* test_config.c: the settings table, defaults, setters, the command line,
 * --print-config and --bind addresses (src/config/, gc__address_parse in
 * src/arbiter/listen.c). The config file and the order of the sources need Python and
 * are tested end to end in tests/integration/test_config.py.
 *
 * The command line must behave as Gunicorn's argparse parser does, down to the usage
 * error text, so the tests capture stdout/stderr around the parser and compare them
 * with what `gunicorn` prints for the same arguments. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config/config.h"
#include "proc/listen.h"
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
    ASSERT_OK(unsetenv("FORWARDED_ALLOW_IPS"));
}

static void init(gc__config_t *cfg)
{
    ASSERT_OK(gc__config_init(cfg));
}

/* Runs f(cfg) with stdout/stderr captured; returns what was printed (owned). */
static char *validate_output(const gc__config_t *cfg, int *rc)
{
    capture_t c;
    capture_begin(&c);
    *rc = gc__config_validate(cfg);
    return capture_end(&c);
}

/* What gc__config_format_value writes for setting id (owned). */
static char *formatted(const gc__config_t *cfg, int id)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    ASSERT(f != NULL);
    gc__config_format_value(cfg, id, f);
    fclose(f);
    return text;
}

static void assert_formatted(const gc__config_t *cfg, int id, const char *want)
{
    char *got = formatted(cfg, id);
    ASSERT_EQ_STR(got, want);
    free(got);
}

/* --- The table -------------------------------------------------------------------- */

static void test_table(void)
{
    /* Every Gunicorn 26.1 setting, each once. */
    /* Gunicorn 26.1's 118, access_log_json, virtualenv, http2_cleartext, metrics_bind */
    ASSERT_EQ_INT(GC_S__COUNT, 122);
    for (int id = 0; id < GC_S__COUNT; id++) {
        const gc__setting_info_t *info = gc__setting_info(id);
        ASSERT_EQ_INT(gc__setting_find(info->name), id);
        ASSERT(info->help != NULL && info->help[0] != '\0');
        ASSERT(info->section != NULL);
        /* Only config files can give Python values. */
        if (info->type == GC_T_CALLABLE || info->type == GC_T_DICT)
            ASSERT(info->flags == NULL);
    }
    ASSERT_EQ_INT(gc__setting_find("no_such_setting"), -1);
    ASSERT_EQ_INT(gc__setting_arity(GC_S_when_ready), 1);
    ASSERT_EQ_INT(gc__setting_arity(GC_S_pre_fork), 2);
    ASSERT_EQ_INT(gc__setting_arity(GC_S_nworkers_changed), 3);
    ASSERT_EQ_INT(gc__setting_arity(GC_S_post_request), -1);
    ASSERT_EQ_INT(gc__setting_arity(GC_S_workers), 0);
    ASSERT_EQ_INT(gc__setting_info(GC_S_dirty_workers)->status, GC_NO_DIRTY);
    ASSERT_EQ_INT(gc__setting_info(GC_S_asgi_loop)->status, GC_ACTIVE);
    ASSERT_EQ_INT(gc__setting_info(GC_S_spew)->status, GC_ACTIVE);
    ASSERT_EQ_INT(gc__setting_info(GC_S_bind)->status, GC_ACTIVE);
    ASSERT_EQ_STR(gc__setting_info(GC_S_errorlog)->flags, "--error-logfile --log-file");
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
    ASSERT_EQ_INT(gc__cfg_int(&cfg, GC_S_control_socket_mode), 0600);
    ASSERT_EQ_STR(gc__cfg_str(&cfg, GC_S_loglevel), "info");
    ASSERT_EQ_STR(gc__cfg_str(&cfg, GC_S_worker_class), "sync");
    ASSERT_EQ_STR(gc__cfg_str(&cfg, GC_S_proxy_protocol), "off");
    ASSERT_EQ_STR(gc__cfg_str(&cfg, GC_S_config), "./gunicorn.conf.py");
    ASSERT_EQ_STR(gc__cfg_str(&cfg, GC_S_dogstatsd_tags), "");
    ASSERT(gc__cfg_str(&cfg, GC_S_pidfile) == NULL);
    /* chdir defaults to the working directory, user and group to our ids. */
    char cwd[4096];
    ASSERT(getcwd(cwd, sizeof(cwd)) != NULL);
    ASSERT(gc__cfg_str(&cfg, GC_S_chdir) != NULL);
    ASSERT_EQ_INT(gc__cfg_int(&cfg, GC_S_user), (long)geteuid());
    ASSERT_EQ_INT(gc__cfg_int(&cfg, GC_S_group), (long)getegid());
    ASSERT(gc__cfg_str(&cfg, GC_S_user) == NULL);
    ASSERT_EQ_INT(cfg.v[GC_S_raw_env].n, 0);
    ASSERT(cfg.app_uri == NULL);
    /* Printed as Python would print them. */
    assert_formatted(&cfg, GC_S_bind, "['127.0.0.1:8000']");
    assert_formatted(&cfg, GC_S_forwarded_allow_ips, "['127.0.0.1', '::1']");
    assert_formatted(&cfg, GC_S_forwarder_headers, "['SCRIPT_NAME', 'PATH_INFO']");
    assert_formatted(&cfg, GC_S_raw_env, "[]");
    assert_formatted(&cfg, GC_S_sendfile, "None");
    assert_formatted(&cfg, GC_S_suppress_ragged_eofs, "True");
    assert_formatted(&cfg, GC_S_daemon, "False");
    assert_formatted(&cfg, GC_S_pidfile, "None");
    assert_formatted(&cfg, GC_S_when_ready, "None");
    assert_formatted(&cfg, GC_S_logconfig_dict, "{}");
    assert_formatted(&cfg, GC_S_access_log_format,
                     "%(h)s %(l)s %(u)s %(t)s \"%(r)s\" %(s)s %(b)s \"%(f)s\" \"%(a)s\"");
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
    ASSERT_EQ_INT(cfg.v[GC_S_bind].set, 0);
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
    ASSERT_OK(setenv("FORWARDED_ALLOW_IPS", "10.0.0.1, 10.0.0.2", 1));
    init(&cfg);
    ASSERT_EQ_INT(gc__cfg_int(&cfg, GC_S_workers), 3);
    ASSERT_EQ_STR(cfg.v[GC_S_bind].items[0], "127.0.0.1:8000");
    assert_formatted(&cfg, GC_S_forwarded_allow_ips, "['10.0.0.1', '10.0.0.2']");
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
    /* The last one wins; argparse's int() allows surrounding blanks and underscores. */
    assert_workers(ARGS("-w", "2", "--workers", "7"), 7);
    assert_workers(ARGS("-w", " 6 "), 6);
    assert_workers(ARGS("-w", "1_0"), 10);
    assert_workers(ARGS("--workers=0"), 0);

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
    /* Unambiguous prefixes of long options work, as in argparse. */
    ASSERT_EQ_INT(parse(&cfg, NULL, ARGS("--graceful=7", "--max-requests-j", "4", "--back", "9")),
                  GC_PARSE_OK);
    ASSERT_EQ_INT(gc__cfg_int(&cfg, GC_S_graceful_timeout), 7);
    ASSERT_EQ_INT(gc__cfg_int(&cfg, GC_S_max_requests_jitter), 4);
    ASSERT_EQ_INT(gc__cfg_int(&cfg, GC_S_backlog), 9);
    gc__config_free(&cfg);
}

static void test_auto_int(void)
{
    clean_env();
    static const char *const forms[] = {"0022", "0o22", "0O22", "0x12", "18", "0b10010", " 022 "};
    for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
        gc__config_t cfg;
        init(&cfg);
        ASSERT_EQ_INT(parse(&cfg, NULL, ARGS("-m", forms[i])), GC_PARSE_OK);
        ASSERT_EQ_INT(gc__cfg_int(&cfg, GC_S_umask), 18);
        gc__config_free(&cfg);
    }
    gc__config_t cfg;
    init(&cfg);
    ASSERT_EQ_INT(parse(&cfg, NULL, ARGS("--control-socket-mode", "0660")), GC_PARSE_OK);
    ASSERT_EQ_INT(gc__cfg_int(&cfg, GC_S_control_socket_mode), 0660);
    gc__config_free(&cfg);
    /* Plain integer options stay decimal, as argparse's int() is. */
    char *out;
    init(&cfg);
    ASSERT_EQ_INT(parse(&cfg, &out, ARGS("-w", "0x2")), GC_PARSE_USAGE);
    ASSERT(strstr(out, "argument -w/--workers: invalid int value: '0x2'") != NULL);
    free(out);
    gc__config_free(&cfg);
    init(&cfg);
    ASSERT_EQ_INT(parse(&cfg, &out, ARGS("--umask", "08")), GC_PARSE_USAGE);
    ASSERT(strstr(out, "argument -m/--umask: invalid auto_int value: '08'") != NULL);
    free(out);
    gc__config_free(&cfg);
}

static void test_string_options(void)
{
    clean_env();
    gc__config_t cfg;
    init(&cfg);
    ASSERT_EQ_INT(parse(&cfg, NULL,
                        ARGS("--log-level", "debug", "-k", "sync", "--chdir=/", "--pythonpath",
                             "a,b", "--log-file", "/tmp/x.log", "--paster", "dev.ini")),
                  GC_PARSE_OK);
    ASSERT_EQ_STR(gc__cfg_str(&cfg, GC_S_loglevel), "debug");
    ASSERT_EQ_STR(gc__cfg_str(&cfg, GC_S_worker_class), "sync");
    ASSERT_EQ_STR(gc__cfg_str(&cfg, GC_S_chdir), "/");
    ASSERT_EQ_STR(gc__cfg_str(&cfg, GC_S_pythonpath), "a,b");
    /* Aliases: --log-file is --error-logfile, --paster is --paste. */
    ASSERT_EQ_STR(gc__cfg_str(&cfg, GC_S_errorlog), "/tmp/x.log");
    ASSERT_EQ_STR(gc__cfg_str(&cfg, GC_S_paste), "dev.ini");
    /* A later value replaces the earlier one; strings are stripped. */
    ASSERT_EQ_INT(parse(&cfg, NULL, ARGS("--log-level=WARNING", "-n", "  web  ")), GC_PARSE_OK);
    ASSERT_EQ_STR(gc__cfg_str(&cfg, GC_S_loglevel), "WARNING");
    ASSERT_EQ_STR(gc__cfg_str(&cfg, GC_S_proc_name), "web");
    ASSERT_OK(gc__config_validate(&cfg));
    gc__config_free(&cfg);
}

static void test_flags(void)
{
    clean_env();
    gc__config_t cfg;
    init(&cfg);
    ASSERT_EQ_INT(parse(&cfg, NULL, ARGS("-D", "--preload", "--no-sendfile", "--reuse-port")),
                  GC_PARSE_OK);
    ASSERT_EQ_INT(gc__cfg_int(&cfg, GC_S_daemon), 1);
    ASSERT_EQ_INT(gc__cfg_int(&cfg, GC_S_preload_app), 1);
    ASSERT_EQ_INT(gc__cfg_int(&cfg, GC_S_reuse_port), 1);
    /* --no-sendfile stores False (the default is None). */
    assert_formatted(&cfg, GC_S_sendfile, "False");
    gc__config_free(&cfg);

    /* Short flags cluster, and the last one may take an argument. */
    init(&cfg);
    ASSERT_EQ_INT(parse(&cfg, NULL, ARGS("-DRw3")), GC_PARSE_OK);
    ASSERT_EQ_INT(gc__cfg_int(&cfg, GC_S_daemon), 1);
    ASSERT_EQ_INT(gc__cfg_int(&cfg, GC_S_enable_stdio_inheritance), 1);
    ASSERT_EQ_INT(gc__cfg_int(&cfg, GC_S_workers), 3);
    gc__config_free(&cfg);

    /* An optional argument: the flag alone means auto. */
    init(&cfg);
    ASSERT_EQ_INT(parse(&cfg, NULL, ARGS("--proxy-protocol")), GC_PARSE_OK);
    ASSERT_EQ_STR(gc__cfg_str(&cfg, GC_S_proxy_protocol), "auto");
    ASSERT_EQ_INT(parse(&cfg, NULL, ARGS("--proxy-protocol", "v2")), GC_PARSE_OK);
    ASSERT_EQ_STR(gc__cfg_str(&cfg, GC_S_proxy_protocol), "v2");
    ASSERT_EQ_INT(parse(&cfg, NULL, ARGS("--proxy-protocol", "-w", "2")), GC_PARSE_OK);
    ASSERT_EQ_STR(gc__cfg_str(&cfg, GC_S_proxy_protocol), "auto");
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
    /* A second source replaces the list instead of extending it. */
    ASSERT_EQ_INT(parse(&cfg, NULL, ARGS("-b", "unix:/tmp/other.sock")), GC_PARSE_OK);
    ASSERT_EQ_INT(bind->n, 1);
    ASSERT_EQ_STR(bind->items[0], "unix:/tmp/other.sock");
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
    /* Comma-separated lists are one argument, split and stripped; only empty pieces
     * are dropped. */
    ASSERT_EQ_INT(parse(&cfg, NULL, ARGS("--forwarded-allow-ips", " 10.0.0.1, ,10.0.0.2,")),
                  GC_PARSE_OK);
    assert_formatted(&cfg, GC_S_forwarded_allow_ips, "['10.0.0.1', '', '10.0.0.2']");
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

    /* One run of positional arguments is taken whole (the first is the app), as with
     * argparse's nargs="*"; a second run is unrecognized. */
    init(&cfg);
    ASSERT_EQ_INT(parse(&cfg, NULL, ARGS("-w", "2", "app:one", "app:two")), GC_PARSE_OK);
    ASSERT_EQ_STR(cfg.app_uri, "app:one");
    gc__config_free(&cfg);
    char *out;
    init(&cfg);
    ASSERT_EQ_INT(parse(&cfg, &out, ARGS("app:one", "-w", "2", "app:two", "--nope")),
                  GC_PARSE_USAGE);
    ASSERT(strstr(out, "gunicorn-c: error: unrecognized arguments: app:two --nope\n") != NULL);
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
        /* An option where a value should be is not taken as the value. */
        {ARGS("-w", "--bind", "x"),
         "gunicorn-c: error: argument -w/--workers: expected one argument\n"},
        {ARGS("--log-file"),
         "gunicorn-c: error: argument --error-logfile/--log-file: expected one argument\n"},
        {ARGS("--work", "3"),
         "gunicorn-c: error: ambiguous option: --work could match --workers, --worker-class, "
         "--worker-connections, --worker-tmp-dir\n"},
        {ARGS("--reload=yes"), "gunicorn-c: error: argument --reload: ignored explicit "
                               "argument 'yes'\n"},
        {ARGS("-Dx"), "gunicorn-c: error: argument -D/--daemon: ignored explicit argument 'x'\n"},
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

static void test_value_errors(void)
{
    clean_env();
    /* argparse accepts these; Gunicorn's validators then refuse them (exit 1). */
    const struct {
        const char *const *args;
        const char *message;
    } cases[] = {
        {ARGS("-w", "-1"), "\nError: Value must be positive: -1\n"},
        {ARGS("-t", "-5"), "\nError: Value must be positive: -5\n"},
        {ARGS("--reload-engine", "fast"), "\nError: Invalid reload_engine: 'fast'\n"},
        {ARGS("--chdir", "/no/such/dir"), "\nError: can't chdir to '/no/such/dir'\n"},
        {ARGS("-u", "no-such-user-here"), "\nError: No such user: 'no-such-user-here'\n"},
        {ARGS("-g", "no-such-group-here"), "\nError: No such group: 'no-such-group-here'\n"},
        {ARGS("-k", "nope"), "\nError: class uri 'nope' invalid or not found\n"},
        {ARGS("--proxy-protocol", "v3"), "\nError: Invalid proxy_protocol: 'v3'\n"},
        {ARGS("--log-level", "loud"), "\nError: Invalid log level: 'loud'\n"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        gc__config_t cfg;
        init(&cfg);
        char *out;
        ASSERT_EQ_INT(parse(&cfg, &out, cases[i].args), -EINVAL);
        ASSERT_EQ_STR(out, cases[i].message);
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
    ASSERT(strstr(out, "  -w INT, --workers INT\n") != NULL);
    ASSERT(strstr(out, "  -b ADDRESS, --bind ADDRESS\n") != NULL);
    ASSERT(strstr(out, "['127.0.0.1:8000']") != NULL);
    ASSERT(strstr(out, "  --limit-request-line INT\n") != NULL);
    ASSERT(strstr(out, "  --log-level LEVEL     ") != NULL);
    ASSERT(strstr(out, "[info]\n") != NULL);
    ASSERT(strstr(out, "  -e ENV, --env ENV     ") != NULL);
    ASSERT(strstr(out, "  --error-logfile FILE, --log-file FILE\n") != NULL);
    ASSERT(strstr(out, "  --proxy-protocol [MODE]\n") != NULL);
    /* Since --protocol uwsgi, --reload-engine and --spew, no setting is pending. */
    ASSERT(strstr(out, "(not yet active in gunicorn-c)") == NULL);
    ASSERT(strstr(out, "  -h, --help            show this help message and exit\n") != NULL);
    free(out);
    gc__config_free(&cfg);
    /* Abbreviations reach the built-in options too. */
    init(&cfg);
    ASSERT_EQ_INT(parse(&cfg, &out, ARGS("--vers")), GC_PARSE_EXIT_OK);
    ASSERT_EQ_STR(out, "gunicorn-c (version " GC_VERSION ")\n");
    free(out);
    gc__config_free(&cfg);
}

static void test_validate(void)
{
    clean_env();
    gc__config_t cfg;
    char *out;
    int rc;

    /* Settings that cannot apply are refused when given anything but their default. */
    const struct {
        const char *const *args;
        const char *message;
    } refused[] = {
        {ARGS("--dirty-workers", "2"),
         "\nError: setting 'dirty_workers' cannot apply: gunicorn-c has no dirty arbiters.\n"},
    };
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
        init(&cfg);
        ASSERT_EQ_INT(parse(&cfg, NULL, refused[i].args), GC_PARSE_OK);
        out = validate_output(&cfg, &rc);
        ASSERT_EQ_INT(rc, -EINVAL);
        ASSERT_EQ_STR(out, refused[i].message);
        free(out);
        gc__config_free(&cfg);
    }
    /* The default itself is fine. */
    init(&cfg);
    ASSERT_EQ_INT(parse(&cfg, NULL, ARGS("--http-protocols", "h1", "--dirty-workers", "0")),
                  GC_PARSE_OK);
    out = validate_output(&cfg, &rc);
    ASSERT_EQ_INT(rc, 0);
    ASSERT_EQ_STR(out, "");
    free(out);
    gc__config_free(&cfg);

    /* Worker classes: Gunicorn's names for the three gunicorn-c has; the others are
     * refused with what to use instead. */
    init(&cfg);
    static const char *const classes[] = {"gthread",
                                          "gevent",
                                          "gevent_wsgi",
                                          "egg:gunicorn#gevent",
                                          "#gthread",
                                          "gunicorn.workers.ggevent.GeventWorker",
                                          "gunicorn.workers.gthread.ThreadWorker"};
    for (size_t i = 0; i < sizeof(classes) / sizeof(classes[0]); i++)
        ASSERT_EQ_INT(parse(&cfg, NULL, ARGS("-k", classes[i])), GC_PARSE_OK);
    ASSERT_EQ_INT(parse(&cfg, &out, ARGS("-k", "eventlet")), -EINVAL);
    ASSERT_EQ_STR(out, "\nError: worker class 'eventlet' is not in gunicorn-c (Gunicorn 26 "
                       "removed it too); use 'gevent'\n");
    free(out);
    ASSERT_EQ_INT(parse(&cfg, &out, ARGS("--asgi-loop", "tokio")), -EINVAL);
    ASSERT(strstr(out, "Error: Invalid ASGI loop: tokio\n") != NULL);
    free(out);
    ASSERT_EQ_INT(parse(&cfg, NULL, ARGS("-k", "asgi")), GC_PARSE_OK);
    ASSERT_EQ_INT(parse(&cfg, NULL, ARGS("-k", "uvicorn.workers.UvicornWorker")), GC_PARSE_OK);
    ASSERT_EQ_INT(parse(&cfg, NULL, ARGS("-k", "uvicorn.workers.UvicornH11Worker")), GC_PARSE_OK);
    ASSERT_EQ_INT(parse(&cfg, &out, ARGS("-k", "tornado")), -EINVAL);
    ASSERT(strstr(out, "cannot apply to gunicorn-c") != NULL);
    free(out);
    ASSERT_EQ_INT(parse(&cfg, NULL, ARGS("-k", "gunicorn.workers.sync.SyncWorker")), GC_PARSE_OK);
    ASSERT_EQ_INT(parse(&cfg, NULL, ARGS("-k", "egg:gunicorn#sync")), GC_PARSE_OK);
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

/* --- The setters a config file goes through. ------------------------------------- */

static void test_setters(void)
{
    clean_env();
    gc__config_t cfg;
    gc__config_err_t err;
    init(&cfg);

    /* Integers from text go through int(x, 0). */
    ASSERT_OK(gc__config_set_str(&cfg, GC_S_workers, "0x10", &err));
    ASSERT_EQ_INT(gc__cfg_int(&cfg, GC_S_workers), 16);
    ASSERT_OK(gc__config_set_str(&cfg, GC_S_workers, " 0o10 ", &err));
    ASSERT_EQ_INT(gc__cfg_int(&cfg, GC_S_workers), 8);
    ASSERT_EQ_INT(gc__config_set_str(&cfg, GC_S_workers, "abc", &err), -EINVAL);
    ASSERT_EQ_STR(err.msg, "invalid literal for int() with base 0: 'abc'");
    ASSERT_EQ_INT(gc__config_set_str(&cfg, GC_S_workers, "010", &err), -EINVAL);
    ASSERT_EQ_INT(gc__config_set_int(&cfg, GC_S_workers, -3, &err), -EINVAL);
    ASSERT_EQ_STR(err.msg, "Value must be positive: -3");
    ASSERT_EQ_INT(gc__cfg_int(&cfg, GC_S_workers), 8); /* unchanged by the refusals */

    /* Booleans from text: "true" / "false" in any case. */
    ASSERT_OK(gc__config_set_str(&cfg, GC_S_daemon, "TRUE", &err));
    ASSERT_EQ_INT(gc__cfg_int(&cfg, GC_S_daemon), 1);
    ASSERT_OK(gc__config_set_str(&cfg, GC_S_daemon, " false", &err));
    ASSERT_EQ_INT(gc__cfg_int(&cfg, GC_S_daemon), 0);
    ASSERT_EQ_INT(gc__config_set_str(&cfg, GC_S_daemon, "maybe", &err), -EINVAL);
    ASSERT_EQ_STR(err.msg, "Invalid boolean: maybe");
    ASSERT_OK(gc__config_set_bool(&cfg, GC_S_sendfile, 1, &err));
    assert_formatted(&cfg, GC_S_sendfile, "True");

    /* A string for a list is a one-item list. */
    ASSERT_OK(gc__config_set_str(&cfg, GC_S_bind, "unix:/tmp/s", &err));
    assert_formatted(&cfg, GC_S_bind, "['unix:/tmp/s']");
    const char *const two[] = {" a ", "b"};
    ASSERT_OK(gc__config_set_list(&cfg, GC_S_raw_env, two, 2, &err));
    assert_formatted(&cfg, GC_S_raw_env, "['a', 'b']");
    ASSERT_OK(gc__config_set_list(&cfg, GC_S_raw_env, NULL, 0, &err));
    assert_formatted(&cfg, GC_S_raw_env, "[]");

    /* user and group: numbers or names, printed as the ids. */
    ASSERT_OK(gc__config_set_str(&cfg, GC_S_user, "root", &err));
    ASSERT_EQ_INT(gc__cfg_int(&cfg, GC_S_user), 0);
    ASSERT_EQ_STR(gc__cfg_str(&cfg, GC_S_user), "root");
    ASSERT_OK(gc__config_set_int(&cfg, GC_S_group, 12, &err));
    ASSERT_EQ_INT(gc__cfg_int(&cfg, GC_S_group), 12);
    ASSERT_EQ_STR(gc__cfg_str(&cfg, GC_S_group), "12");
    assert_formatted(&cfg, GC_S_group, "12");

    /* chdir is made absolute and normalised. */
    ASSERT_OK(gc__config_set_str(&cfg, GC_S_chdir, "/tmp/../tmp/./", &err));
    ASSERT_EQ_STR(gc__cfg_str(&cfg, GC_S_chdir), "/tmp");
    ASSERT_OK(gc__config_set_str(&cfg, GC_S_chdir, "//", &err));
    ASSERT_EQ_STR(gc__cfg_str(&cfg, GC_S_chdir), "/");

    /* Python-side values keep their printed form. */
    ASSERT_OK(gc__config_set_repr(&cfg, GC_S_when_ready, "<when_ready()>"));
    assert_formatted(&cfg, GC_S_when_ready, "<when_ready()>");
    gc__config_free(&cfg);
}

static void test_print_config(void)
{
    clean_env();
    gc__config_t cfg;
    init(&cfg);
    ASSERT_EQ_INT(parse(&cfg, NULL, ARGS("-w", "3", "-b", "unix:/tmp/it's.sock")), GC_PARSE_OK);
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    ASSERT(f != NULL);
    gc__config_print(&cfg, f);
    fclose(f);
    /* One line per setting, sorted, "name = value" with names padded to the longest
     * (permit_unconventional_http_version, 34 characters). */
    size_t lines = 0;
    char prev[64] = "";
    for (char *line = text, *end; (end = strchr(line, '\n')) != NULL; line = end + 1) {
        lines++;
        ASSERT_EQ_MEM(line + 34, 3, " = ", 3);
        char name[64];
        size_t n = strcspn(line, " ");
        ASSERT(n < sizeof(name));
        memcpy(name, line, n);
        name[n] = '\0';
        ASSERT(gc__setting_find(name) >= 0);
        ASSERT(strcmp(prev, name) < 0);
        strcpy(prev, name);
    }
    ASSERT_EQ_INT(lines, GC_S__COUNT);
    ASSERT(strstr(text, "\nworkers                            = 3\n") != NULL);
    ASSERT(strstr(text, "\nbind                               = [\"unix:/tmp/it's.sock\"]\n") !=
           NULL);
    free(text);
    gc__config_free(&cfg);
}

static void test_markdown(void)
{
    clean_env();
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    ASSERT(f != NULL);
    gc__config_markdown(f);
    fclose(f);
    for (int id = 0; id < GC_S__COUNT; id++) {
        char heading[96];
        snprintf(heading, sizeof(heading), "\n### `%s`\n", gc__setting_info(id)->name);
        ASSERT(strstr(text, heading) != NULL);
    }
    ASSERT(strstr(text, "- Command line: `-b ADDRESS`, `--bind ADDRESS`\n") != NULL);
    ASSERT(strstr(text, "- Status: cannot apply: gunicorn-c has no dirty arbiters") != NULL);
    free(text);
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
    RUN(test_table);
    RUN(test_defaults);
    RUN(test_env_defaults);
    RUN(test_int_option_forms);
    RUN(test_auto_int);
    RUN(test_string_options);
    RUN(test_flags);
    RUN(test_list_options);
    RUN(test_app_module);
    RUN(test_usage_errors);
    RUN(test_value_errors);
    RUN(test_help_and_version);
    RUN(test_validate);
    RUN(test_setters);
    RUN(test_print_config);
    RUN(test_markdown);
    RUN(test_address_parse);
    return unit_done();
}
