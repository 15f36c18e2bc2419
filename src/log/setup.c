/* setup.c: logging destinations from the settings (see setup.h).
 *
 * Two routes. The default one is all C (log.c writes the files, syslog.c the syslog
 * copies). When a Python logging configuration (logconfig_dict, --log-config-json,
 * --log-config) or a logger class other than Gunicorn's is set, the bridge hands the
 * error and access lines to Python instead (python/logbridge.c). Either way the master
 * sets everything up and the workers inherit it through fork. */
#include "log/setup.h"

#include <stdio.h>
#include <string.h>

#include "log/log.h"
#include "log/statsd.h"
#include "log/syslog.h"

static const gc__log_bridge_t *bridge; /* the Python layer's, or NULL */
static int captured;                   /* --capture-output is in force */

void gc__logging_set_bridge(const gc__log_bridge_t *b)
{
    bridge = b;
}

static void report(int reload, const char *what, const char *detail)
{
    if (!reload)
        fprintf(stderr, "Error: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
    else
        gc__error("%s%s%s", what, detail ? ": " : "", detail ? detail : "");
}

static int configure_syslog(const gc__config_t *cfg, int reload)
{
    if (!gc__cfg_int(cfg, GC_S_syslog)) {
        gc__log_set_syslog(0, 0);
        gc__syslog_close();
        return 0;
    }
    int facility = gc__syslog_facility(gc__cfg_str(cfg, GC_S_syslog_facility));
    if (facility < 0) {
        report(reload, "unknown facility name", gc__cfg_str(cfg, GC_S_syslog_facility));
        return -1;
    }
    /* Gunicorn's prefix: --log-syslog-prefix, or the process name with ':' as '.'. */
    char prefix[256];
    const char *given = gc__cfg_str(cfg, GC_S_syslog_prefix);
    const char *name = gc__cfg_str(cfg, GC_S_proc_name);
    if (name == NULL)
        name = gc__cfg_str(cfg, GC_S_default_proc_name);
    if (name == NULL)
        name = cfg->app_uri ? cfg->app_uri : "gunicorn";
    snprintf(prefix, sizeof(prefix), "%s", given && *given ? given : name);
    if (!(given && *given))
        for (char *p = prefix; *p; p++)
            if (*p == ':')
                *p = '.';
    const char *addr = gc__cfg_str(cfg, GC_S_syslog_addr), *why = NULL;
    int rc = gc__syslog_open(addr, facility, prefix, &why);
    if (rc < 0) {
        char detail[512];
        snprintf(detail, sizeof(detail), "%s (%s)", addr ? addr : "", strerror(-rc));
        report(reload, why ? why : "cannot open syslog", detail);
        return -1;
    }
    gc__log_set_syslog(1, !gc__cfg_int(cfg, GC_S_disable_redirect_access_to_syslog));
    return 0;
}

int gc__logging_configure(const gc__config_t *cfg, int reload)
{
    const char *errorlog = gc__cfg_str(cfg, GC_S_errorlog);
    int rc = gc__log_open(errorlog);
    if (rc < 0) {
        report(reload, "cannot open the error log", errorlog);
        return -1;
    }
    const char *accesslog = gc__cfg_str(cfg, GC_S_accesslog);
    rc = gc__log_access_open(accesslog);
    if (rc < 0) {
        gc__error("Cannot open the access log %s: %s", accesslog, strerror(-rc));
        return -1;
    }
    if (configure_syslog(cfg, reload) < 0)
        return -1;
    char why[512] = "unknown error";
    if (bridge != NULL && bridge->configure(cfg, why, sizeof(why)) < 0) {
        report(reload, "cannot configure logging", why);
        return -1;
    }
    /* Gunicorn captures only into a file: with "-" the output is on stderr already. */
    captured = gc__cfg_int(cfg, GC_S_capture_output) && errorlog && strcmp(errorlog, "-") != 0;
    if (captured && bridge != NULL)
        bridge->flush_stdio();
    gc__log_capture(captured);
    return gc__statsd_configure(cfg);
}

void gc__logging_after_daemon(void)
{
    if (captured)
        gc__log_capture(1);
}

void gc__logging_reopen(void)
{
    /* Python's buffered output belongs to the old file: flush it before the switch. */
    if (bridge != NULL)
        bridge->flush_stdio();
    gc__log_reopen();
    if (bridge != NULL && bridge->reopen() < 0)
        gc__error("Cannot reopen the Python logging handlers' files");
}
