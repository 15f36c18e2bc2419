/* interp.c: starting CPython and importing the application (see interp.h). */
#include "python/interp.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log/log.h"

static int insert_path(PyObject *sys_path, const char *dir, Py_ssize_t at)
{
    PyObject *p = PyUnicode_DecodeFSDefault(dir);
    if (p == NULL)
        return -1;
    int rc = PyList_Insert(sys_path, at, p);
    Py_DECREF(p);
    return rc;
}

int gc__py_init(const gc__config_t *cfg, int argc, char **argv)
{
    PyConfig config;
    PyConfig_InitPythonConfig(&config);
    /* Signals belong to the C side (libuv in the arbiter and the workers). */
    config.install_signal_handlers = 0;
    config.parse_argv = 0;
    PyStatus status = PyConfig_SetBytesString(&config, &config.program_name,
                                              GC_PYTHON_EXECUTABLE);
    if (!PyStatus_Exception(status))
        status = PyConfig_SetBytesArgv(&config, argc, argv);
    if (!PyStatus_Exception(status))
        status = Py_InitializeFromConfig(&config);
    PyConfig_Clear(&config);
    if (PyStatus_Exception(status)) {
        fprintf(stderr, "Error: cannot start the Python interpreter: %s\n",
                status.err_msg ? status.err_msg : "unknown error");
        return -1;
    }

    /* As Gunicorn does: the working directory first, then --pythonpath entries. */
    PyObject *sys_path = PySys_GetObject("path"); /* borrowed */
    char cwd[PATH_MAX];
    if (sys_path == NULL || getcwd(cwd, sizeof(cwd)) == NULL || insert_path(sys_path, cwd, 0) < 0)
        goto fail;
    const char *pp = gc__cfg_str(cfg, GC_S_pythonpath);
    if (pp != NULL) {
        char *copy = strdup(pp), *save = NULL;
        Py_ssize_t at = 0;
        for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
            while (*tok == ' ')
                tok++;
            if (*tok && insert_path(sys_path, tok, at++) < 0) {
                free(copy);
                goto fail;
            }
        }
        free(copy);
    }
    return 0;
fail:
    gc__py_log_exception(GC_LOG_ERROR, "Cannot set up sys.path");
    return -1;
}

void gc__py_log_exception(int level, const char *header)
{
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    if (type == NULL) {
        gc__log(level, "%s", header);
        return;
    }
    PyErr_NormalizeException(&type, &value, &tb);
    PyObject *text = NULL;
    PyObject *mod = PyImport_ImportModule("traceback");
    if (mod != NULL) {
        PyObject *lines = PyObject_CallMethod(mod, "format_exception", "OOO", type,
                                              value ? value : Py_None, tb ? tb : Py_None);
        if (lines != NULL) {
            PyObject *sep = PyUnicode_FromString("");
            if (sep != NULL)
                text = PyUnicode_Join(sep, lines);
            Py_XDECREF(sep);
            Py_DECREF(lines);
        }
        Py_DECREF(mod);
    }
    const char *s = text ? PyUnicode_AsUTF8(text) : NULL;
    if (s == NULL) {
        PyErr_Clear();
        gc__log(level, "%s (and the traceback could not be formatted)", header);
    } else {
        gc__log_block(level, header, s);
    }
    Py_XDECREF(text);
    Py_XDECREF(type);
    Py_XDECREF(value);
    Py_XDECREF(tb);
}

int gc__py_load_app(const char *uri, PyObject **app)
{
    *app = NULL;
    char module[512], name[256];
    const char *colon = strchr(uri, ':');
    size_t mlen = colon ? (size_t)(colon - uri) : strlen(uri);
    const char *obj = colon ? colon + 1 : "application";
    if (mlen == 0 || mlen >= sizeof(module) || strlen(obj) >= sizeof(name) || *obj == '\0') {
        gc__error("Failed to parse %s as an application module", uri);
        return GC_EXIT_APP_LOAD_ERROR;
    }
    memcpy(module, uri, mlen);
    module[mlen] = '\0';
    snprintf(name, sizeof(name), "%s", obj);
    int call = 0;
    size_t nlen = strlen(name);
    if (nlen > 2 && strcmp(name + nlen - 2, "()") == 0) {
        call = 1;
        name[nlen - 2] = '\0';
    }

    PyObject *mod = PyImport_ImportModule(module);
    if (mod == NULL) {
        gc__py_log_exception(GC_LOG_ERROR, "Exception in worker process");
        return GC_EXIT_WORKER_BOOT_ERROR;
    }
    PyObject *found = PyObject_GetAttrString(mod, name);
    Py_DECREF(mod);
    if (found == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_AttributeError)) {
            gc__py_log_exception(GC_LOG_ERROR, "Exception in worker process");
            return GC_EXIT_WORKER_BOOT_ERROR;
        }
        PyErr_Clear();
        gc__error("Failed to find attribute '%s' in '%s'.", name, module);
        return GC_EXIT_APP_LOAD_ERROR;
    }
    if (call) {
        PyObject *made = PyObject_CallNoArgs(found);
        Py_DECREF(found);
        if (made == NULL) {
            gc__py_log_exception(GC_LOG_ERROR, "Exception in worker process");
            return GC_EXIT_WORKER_BOOT_ERROR;
        }
        found = made;
    }
    if (found == Py_None) {
        Py_DECREF(found);
        gc__error("Failed to find application object: '%s'.", name);
        return GC_EXIT_APP_LOAD_ERROR;
    }
    if (!PyCallable_Check(found)) {
        Py_DECREF(found);
        gc__error("Application object must be callable.");
        return GC_EXIT_APP_LOAD_ERROR;
    }
    *app = found;
    return 0;
}
