/* logbridge.c: the Python route of the logs (see logbridge.h).
 *
 * When a Python logging configuration (logconfig_dict, --log-config-json,
 * --log-config) or a logger class other than Gunicorn's is set, the error and access
 * lines are handed to Python (logbridge.py): to the loggers gunicorn.error and
 * gunicorn.access, or to the logger class's methods. log/setup.c decides when, through
 * the bridge this file registers.
 *
 * The route is called from wherever gc__log is: the master (holding the GIL), a
 * worker's loop thread (usually without it), gthread's pool threads (with or without
 * it), greenlets. It takes the GIL with PyGILState_Ensure, which works on all of them
 * because every one has a thread state that was released with PyEval_SaveThread, and it
 * keeps any exception the caller has pending. */
#include "python/logbridge.h"

#include <Python.h>
#include <stdio.h>
#include <string.h>

#include "log/log.h"
#include "log/setup.h"
#include "logbridge_py.h" /* generated from logbridge.py: gc__logbridge_py_source[] */
#include "python/pycompat.h"
#include "python/runtime.h"

static PyObject *bridge;       /* the _gunicorn_c_logging module, once imported */
static PyObject *route_error;  /* State.error(level, msg) while the route is on */
static PyObject *route_access; /* State.access(line) while the route is on */

/* Imports the bridge once. Returns 0, or -1 with an exception set. */
static int import_bridge(void)
{
    if (bridge != NULL)
        return 0;
    if (gc__rt_add_c_module() < 0) /* the C writers the bridge's handlers call */
        return -1;
    PyObject *code =
        Py_CompileString(gc__logbridge_py_source, "<gunicorn-c logging>", Py_file_input);
    if (code == NULL)
        return -1;
    bridge = PyImport_ExecCodeModule("_gunicorn_c_logging", code);
    Py_DECREF(code);
    return bridge ? 0 : -1;
}

/* --- the Python route --------------------------------------------------------------- */

static void on_route(int level, const char *msg, size_t len, int access)
{
    if (!Py_IsInitialized()) {
        if (access)
            gc__log_write_access(msg, len);
        else
            gc__log_write_error(level, msg, len);
        return;
    }
    PyGILState_STATE gs = PyGILState_Ensure();
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb); /* the caller's pending exception, if any */
    PyObject *text = PyUnicode_DecodeUTF8(msg, (Py_ssize_t)len, "backslashreplace");
    PyObject *r = NULL;
    if (text != NULL) {
        if (access)
            r = PyObject_CallOneArg(route_access, text);
        else
            r = PyObject_CallFunction(route_error, "iO", level, text);
        Py_DECREF(text);
    }
    if (r == NULL) {
        /* The line is not lost: C writes it, and says why Python could not. */
        PyObject *et, *ev, *etb;
        PyErr_Fetch(&et, &ev, &etb);
        PyObject *why = ev ? PyObject_Str(ev) : NULL;
        const char *whys = why ? PyUnicode_AsUTF8(why) : NULL;
        PyErr_Clear();
        char head[512];
        snprintf(head, sizeof(head), "Python logging failed (%s: %s); the line was:",
                 et ? ((PyTypeObject *)et)->tp_name : "?", whys ? whys : "?");
        gc__log_write_error(GC_LOG_ERROR, head, strlen(head));
        if (access)
            gc__log_write_access(msg, len);
        else
            gc__log_write_error(level, msg, len);
        Py_XDECREF(why);
        Py_XDECREF(et);
        Py_XDECREF(ev);
        Py_XDECREF(etb);
    }
    Py_XDECREF(r);
    PyErr_Restore(type, value, tb);
    PyGILState_Release(gs);
}

/* Takes the route's callables from the bridge's setup() result, or turns it off. */
static int set_route(PyObject *result)
{
    gc__log_set_route(NULL, 0);
    Py_CLEAR(route_error);
    Py_CLEAR(route_access);
    if (result == Py_None)
        return 0;
    PyObject *st;
    int wants_access, threshold;
    if (!PyArg_ParseTuple(result, "Opi", &st, &wants_access, &threshold))
        return -1;
    route_error = PyObject_GetAttrString(st, "error");
    route_access = PyObject_GetAttrString(st, "access");
    if (route_error == NULL || route_access == NULL) {
        Py_CLEAR(route_error);
        Py_CLEAR(route_access);
        return -1;
    }
    gc__log_set_level(threshold);
    gc__log_set_route(on_route, wants_access);
    return 0;
}

/* Runs the bridge's setup(cfg, logger_class). Returns 0, or -1 with an exception set. */
static int python_setup(const gc__config_t *cfg)
{
    if (import_bridge() < 0)
        return -1;
    PyObject *cfgobj = gc__rt_config_new(cfg);
    if (cfgobj == NULL)
        return -1;
    const char *klass = gc__cfg_str(cfg, GC_S_logger_class);
    PyObject *r = PyObject_CallMethod(bridge, "setup", "Oz", cfgobj, klass);
    Py_DECREF(cfgobj);
    if (r == NULL)
        return -1;
    int rc = set_route(r);
    Py_DECREF(r);
    return rc;
}

static void flush_python_stdio(void)
{
    PyObject *r = bridge ? PyObject_CallMethod(bridge, "flush_stdio", NULL) : NULL;
    Py_XDECREF(r);
    PyErr_Clear();
}

/* --- the bridge log/setup.c calls -------------------------------------------------- */

static int bridge_configure(const gc__config_t *cfg, char *why, size_t whylen)
{
    PyGILState_STATE gs = PyGILState_Ensure();
    int rc = python_setup(cfg);
    if (rc < 0) {
        PyObject *et, *ev, *etb;
        PyErr_Fetch(&et, &ev, &etb);
        PyObject *text = ev ? PyObject_Str(ev) : NULL;
        const char *s = text ? PyUnicode_AsUTF8(text) : NULL;
        PyErr_Clear();
        snprintf(why, whylen, "%s", s ? s : "unknown error");
        Py_XDECREF(text);
        Py_XDECREF(et);
        Py_XDECREF(ev);
        Py_XDECREF(etb);
    }
    PyGILState_Release(gs);
    return rc;
}

static void bridge_flush_stdio(void)
{
    if (bridge == NULL || !Py_IsInitialized())
        return;
    PyGILState_STATE gs = PyGILState_Ensure();
    flush_python_stdio();
    PyGILState_Release(gs);
}

static int bridge_reopen(void)
{
    if (bridge == NULL || !Py_IsInitialized())
        return 0;
    PyGILState_STATE gs = PyGILState_Ensure();
    PyObject *r = PyObject_CallMethod(bridge, "reopen", NULL);
    int rc = r ? 0 : -1;
    if (r == NULL)
        PyErr_Clear();
    Py_XDECREF(r);
    PyGILState_Release(gs);
    return rc;
}

const gc__log_bridge_t gc__python_log_bridge = {
    .configure = bridge_configure,
    .flush_stdio = bridge_flush_stdio,
    .reopen = bridge_reopen,
};
