/* main.c: the gunicorn-c-ctl executable, the control socket's client.
 *
 * The client itself is src/ctl/ctl.py, compiled into this binary as text
 * (cmake/EmbedText.cmake) and run by an embedded CPython, the same one gunicorn-c
 * embeds: argument parsing, the framing, JSON and the tables are a few lines of
 * Python and there is nothing here worth writing twice in C. The interpreter runs
 * isolated (no PYTHON* variables, no user site-packages, no current directory on
 * sys.path), so that the tool behaves the same wherever it is started. */
#include <Python.h>
#include <stdio.h>

#include "ctl_py.h"
#include "python/pycompat.h"

int main(int argc, char **argv)
{
    PyConfig config;
    PyConfig_InitPythonConfig(&config);
    config.isolated = 1;
    config.use_environment = 0;
    config.user_site_directory = 0;
    gc__pyconfig_set_safe_path(&config);
    config.parse_argv = 0;
    PyStatus status = PyConfig_SetBytesString(&config, &config.program_name, GC_PYTHON_EXECUTABLE);
    if (!PyStatus_Exception(status))
        status = PyConfig_SetBytesArgv(&config, argc, argv);
    if (!PyStatus_Exception(status))
        status = PyConfig_SetBytesString(&config, &config.run_command, gc__ctl_py_source);
    if (!PyStatus_Exception(status))
        status = Py_InitializeFromConfig(&config);
    PyConfig_Clear(&config);
    if (PyStatus_Exception(status)) {
        fprintf(stderr, "Error: cannot start the Python interpreter: %s\n",
                status.err_msg ? status.err_msg : "unknown error");
        return 1;
    }
    /* Runs the script; SystemExit gives the exit status, a traceback gives 1. */
    return Py_RunMain();
}
