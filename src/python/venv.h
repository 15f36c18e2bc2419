/* venv.h: which virtualenv the embedded interpreter uses.
 *
 * CPython finds a virtualenv the way `python` itself does: from the name it was
 * started as (PyConfig.program_name). When that is <venv>/bin/python3, its path
 * computation reads <venv>/pyvenv.cfg, takes the standard library from the base
 * installation named there, and `site` puts the virtualenv's site-packages on sys.path
 * (and the system's too with include-system-site-packages). So choosing a virtualenv
 * is choosing program_name, before the interpreter starts; this module makes that
 * choice, in this order:
 *
 *   1. --virtualenv PATH on the command line, else in GUNICORN_CMD_ARGS (both scanned
 *      here: the config file is Python and cannot run yet);
 *   2. the virtualenv this executable is installed in (its bin/../pyvenv.cfg), which is
 *      where `pip install` puts it;
 *   3. $VIRTUAL_ENV (an activated virtualenv);
 *   4. otherwise the interpreter chosen at build time (GC_PYTHON_EXECUTABLE).
 *
 * A virtualenv is usable when it has a pyvenv.cfg, a bin/python3 (or bin/python), and
 * was made by the Python version this executable embeds. An explicit --virtualenv that
 * is not usable is an error; an implicit one (2, 3) is skipped with a warning. */
#ifndef GC_PYTHON_VENV_H
#define GC_PYTHON_VENV_H

#include <stddef.h>

#include "config/config.h"

/* Chooses the program name the interpreter starts as, from argv (argv[0] included),
 * the environment and the executable's location, and writes it to out (n bytes).
 * Returns 0, or -1 after printing one "Error: ..." line on stderr (--virtualenv names
 * no usable virtualenv). Needs no interpreter. */
int gc__venv_program_name(int argc, char **argv, char *out, size_t n);

/* After the configuration is loaded: warns when it names a virtualenv other than the
 * one scanned before start-up (it came from the config file, too late to apply). */
void gc__venv_check_config(const gc__config_t *cfg);

#endif
