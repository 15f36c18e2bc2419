/* config_values.h: a config module's names applied to the settings. Internal to the
 * config-file loader (python/config_file.c, which runs the sources in Gunicorn's
 * order); nothing outside src/python includes it. All functions need the GIL. */
#ifndef GC_PYTHON_CONFIG_VALUES_H
#define GC_PYTHON_CONFIG_VALUES_H

#include <Python.h>

#include "config/config.h"

/* Applies the module-level names of a config module (dict, borrowed) to cfg: the
 * settings among them through Gunicorn's validators, hooks into the hook registry,
 * other dicts and callables into `objects` (a dict, borrowed) by setting name. Warns
 * about names that look meant as settings but are not one. Returns 0, or -1 after
 * printing "Invalid value for NAME: VALUE" and "Error: <why>". */
int gc__pyconfig_apply_module(gc__config_t *cfg, PyObject *dict, const char *module_name,
                              PyObject *objects);

/* Prints "Error: msg" on stderr, as Gunicorn's command line does. */
void gc__pyconfig_error(const char *msg);

/* Moves the pending exception's str() into err->msg and clears it. Returns -EINVAL. */
int gc__pyconfig_err_from_exception(gc__config_err_t *err);

#endif
