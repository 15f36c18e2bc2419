/* access.c: the access log (see access.h). */
#include "wsgi/access.h"

#include "log/log.h"

int gc__access_configure(const gc__config_t *cfg)
{
    (void)cfg;
    return 0;
}

int gc__access_log_enabled(void)
{
    return gc__log_access_enabled();
}

void gc__access_log_request(const gc__reqlog_t *rec)
{
    (void)rec;
}
