/* logbridge.h: the Python route of the error and access logs, for log/setup.c: Python
 * logging configurations (logconfig_dict, --log-config-json, --log-config) and logger
 * classes. The master registers it with gc__logging_set_bridge before it configures
 * the logs. */
#ifndef GC_PYTHON_LOGBRIDGE_H
#define GC_PYTHON_LOGBRIDGE_H

#include "log/setup.h"

extern const gc__log_bridge_t gc__python_log_bridge;

#endif
