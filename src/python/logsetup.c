/* logsetup.c: logging destinations from the settings (see logsetup.h). */
#include "python/logsetup.h"

#include <stdio.h>
#include <string.h>

#include "log/log.h"
#include "log/statsd.h"
#include "wsgi/access.h"

int gc__logging_configure(const gc__config_t *cfg, int reload)
{
    const char *errorlog = gc__cfg_str(cfg, GC_S_errorlog);
    if (gc__log_open(errorlog) < 0) {
        if (!reload)
            fprintf(stderr, "Error: cannot open the error log %s\n", errorlog);
        else
            gc__error("Cannot open the error log %s", errorlog);
        return -1;
    }
    const char *accesslog = gc__cfg_str(cfg, GC_S_accesslog);
    int rc = gc__log_access_open(accesslog);
    if (rc < 0) {
        gc__error("Cannot open the access log %s: %s", accesslog, strerror(-rc));
        return -1;
    }
    if (gc__access_configure(cfg) < 0 || gc__statsd_configure(cfg) < 0)
        return -1;
    return 0;
}

void gc__logging_reopen(void)
{
    gc__log_reopen();
}
