/* runtime.c: the built-in module _gunicorn_c, and hook calls (see runtime.h). */
#define PY_SSIZE_T_CLEAN /* the "s#" formats below take Py_ssize_t lengths */
#include "python/runtime.h"

#include <unistd.h>

#include "log/log.h"
#include "python/config_file.h"
#include "python/interp.h"
#include "python/pycompat.h"
#include "python/pystr.h"
#include "runtime_py.h" /* generated from runtime.py: gc__runtime_py_source[] */

static PyObject *runtime; /* the _gunicorn_c_runtime module */
static PyObject *server;  /* the Server object */

/* --- _gunicorn_c: the C side of runtime.py and logbridge.py --------------------------- */

static PyObject *c_log(PyObject *self, PyObject *args)
{
    int level;
    const char *msg;
    if (!PyArg_ParseTuple(args, "is:log", &level, &msg))
        return NULL;
    if (strchr(msg, '\n') != NULL) {
        /* A message with a traceback: first line as the log line, the rest below. */
        const char *nl = strchr(msg, '\n');
        char head[1024];
        snprintf(head, sizeof(head), "%.*s", (int)(nl - msg), msg);
        gc__log_block(level, head, nl + 1);
    } else {
        gc__log(level, "%s", msg);
    }
    Py_RETURN_NONE;
}

static PyObject *c_reopen_logs(PyObject *self, PyObject *unused)
{
    gc__log_reopen();
    Py_RETURN_NONE;
}

/* The writers behind logbridge.py's handlers: a formatted line as it is. */
static PyObject *c_write_error(PyObject *self, PyObject *args)
{
    int level;
    const char *msg;
    Py_ssize_t len;
    if (!PyArg_ParseTuple(args, "is#:write_error", &level, &msg, &len))
        return NULL;
    gc__log_write_error(level, msg, (size_t)len);
    Py_RETURN_NONE;
}

static PyObject *c_write_access(PyObject *self, PyObject *args)
{
    const char *msg;
    Py_ssize_t len;
    if (!PyArg_ParseTuple(args, "s#:write_access", &msg, &len))
        return NULL;
    gc__log_write_access(msg, (size_t)len);
    Py_RETURN_NONE;
}

static PyObject *c_route_off(PyObject *self, PyObject *unused)
{
    gc__log_set_route(NULL, 0);
    Py_RETURN_NONE;
}

static PyMethodDef c_methods[] = {
    {"log", c_log, METH_VARARGS, "log(level, message): write to the server's error log."},
    {"reopen_logs", c_reopen_logs, METH_NOARGS, "Reopen the error log file."},
    {"write_error", c_write_error, METH_VARARGS,
     "write_error(level, message): one line to the error log file and syslog."},
    {"write_access", c_write_access, METH_VARARGS,
     "write_access(line): one line to the access log file and syslog."},
    {"route_off", c_route_off, METH_NOARGS, "Stop handing server lines to Python."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef c_module = {
    PyModuleDef_HEAD_INIT,
    "_gunicorn_c",
    "gunicorn-c's C side, for its runtime and its logging bridge.",
    -1,
    c_methods,
    NULL,
    NULL,
    NULL,
    NULL,
};

int gc__rt_add_c_module(void)
{
    PyObject *modules = PyImport_GetModuleDict(); /* borrowed */
    if (PyDict_GetItemString(modules, "_gunicorn_c") != NULL)
        return 0;
    PyObject *mod = PyModule_Create(&c_module);
    int rc = mod ? PyDict_SetItemString(modules, "_gunicorn_c", mod) : -1;
    Py_XDECREF(mod);
    return rc;
}

/* --- the Config object ------------------------------------------------------------ */

/* A DICT setting that no config file gave is its default's printed form, a dict
 * literal: read back with ast.literal_eval. Returns owned, or NULL with an exception
 * set. */
static PyObject *dict_from_text(const char *text)
{
    PyObject *ast = PyImport_ImportModule("ast");
    PyObject *obj = ast ? PyObject_CallMethod(ast, "literal_eval", "s", text) : NULL;
    Py_XDECREF(ast);
    return obj;
}

/* A setting's value as hooks see it, from the one settings table: the value
 * --print-config shows, as a Python object (returns owned, or NULL with an exception
 * set). */
static PyObject *setting_value(const gc__config_t *cfg, int id)
{
    const gc__setting_value_t *v = &cfg->v[id];
    const char *name = gc__setting_info(id)->name;
    switch (gc__setting_info(id)->type) {
    case GC_T_INT:
        return PyLong_FromLong(v->i);
    case GC_T_BOOL:
        if (v->none)
            Py_RETURN_NONE;
        return PyBool_FromLong(v->i);
    case GC_T_STR:
        if (v->s == NULL)
            Py_RETURN_NONE;
        return PyUnicode_DecodeFSDefault(v->s);
    case GC_T_LIST: {
        PyObject *list = PyList_New((Py_ssize_t)v->n);
        for (size_t i = 0; list && i < v->n; i++) {
            PyObject *item = PyUnicode_DecodeFSDefault(v->items[i]);
            if (item == NULL) {
                Py_CLEAR(list);
                break;
            }
            PyList_SET_ITEM(list, (Py_ssize_t)i, item); /* steals item */
        }
        return list;
    }
    case GC_T_DICT:
    case GC_T_CALLABLE: {
        /* The objects a config file gave live on the Python side: hooks in the hook
         * registry, other dicts and callables with the config file's values. */
        int hook = gc__hook_find(name);
        PyObject *obj = hook >= 0 ? gc__hook_get((enum gc__hook_id)hook)
                                  : gc__config_object((enum gc__setting_id)id);
        if (obj != NULL)
            return Py_NewRef(obj);
        if (gc__setting_info(id)->type == GC_T_DICT && v->s != NULL)
            return dict_from_text(v->s);
        Py_RETURN_NONE;
    }
    }
    Py_RETURN_NONE;
}

static PyObject *config_object(const gc__config_t *cfg)
{
    PyObject *values = PyDict_New(), *obj = NULL;
    if (values == NULL)
        return NULL;
    for (int id = 0; id < GC_S__COUNT; id++) {
        PyObject *v = setting_value(cfg, id);
        if (v == NULL || PyDict_SetItemString(values, gc__setting_info(id)->name, v) < 0) {
            Py_XDECREF(v);
            goto out;
        }
        Py_DECREF(v);
    }
    obj = PyObject_CallMethod(runtime, "Config", "O", values);
out:
    Py_DECREF(values);
    return obj;
}

/* --- start-up --------------------------------------------------------------------- */

/* Imports the runtime once (the logging set-up may need it before gc__rt_start).
 * Returns 0, or -1 with an exception set. */
static int import_runtime(void)
{
    if (runtime != NULL)
        return 0;
    if (gc__rt_add_c_module() < 0)
        return -1;
    PyObject *code = Py_CompileString(gc__runtime_py_source, "<gunicorn-c runtime>", Py_file_input);
    if (code == NULL)
        return -1;
    runtime = PyImport_ExecCodeModule("_gunicorn_c_runtime", code);
    Py_DECREF(code);
    return runtime ? 0 : -1;
}

PyObject *gc__rt_config_new(const gc__config_t *cfg)
{
    return import_runtime() < 0 ? NULL : config_object(cfg);
}

PyObject *gc__rt_wrap_post_request(PyObject *hook, int arity)
{
    if (import_runtime() < 0)
        return NULL;
    return PyObject_CallMethod(runtime, "wrap_post_request", "Oi", hook, arity);
}

PyObject *gc__rt_function(const char *name)
{
    if (import_runtime() < 0)
        return NULL;
    return PyObject_GetAttrString(runtime, name);
}

int gc__rt_start(const gc__config_t *cfg)
{
    PyObject *cfgobj = NULL;
    if (import_runtime() < 0)
        goto fail;
    cfgobj = config_object(cfg);
    if (cfgobj == NULL)
        goto fail;
    server = PyObject_CallMethod(runtime, "Server", "Os", cfgobj, cfg->app_uri ? cfg->app_uri : "");
    Py_CLEAR(cfgobj);
    if (server == NULL)
        goto fail;
    return 0;
fail:
    Py_XDECREF(cfgobj);
    gc__py_log_exception(GC_LOG_ERROR, "Cannot start gunicorn-c's Python runtime");
    return -1;
}

int gc__rt_reconfigure(const gc__config_t *cfg)
{
    PyObject *cfgobj = config_object(cfg);
    if (cfgobj == NULL || PyObject_SetAttrString(server, "cfg", cfgobj) < 0) {
        Py_XDECREF(cfgobj);
        gc__py_log_exception(GC_LOG_ERROR, "Cannot apply the reloaded configuration");
        return -1;
    }
    Py_DECREF(cfgobj);
    return 0;
}

void gc__rt_spew(void)
{
    PyObject *r = import_runtime() < 0 ? NULL : PyObject_CallMethod(runtime, "spew", NULL);
    if (r == NULL)
        gc__py_log_exception(GC_LOG_ERROR, "Cannot install the --spew trace function");
    Py_XDECREF(r);
}

PyObject *gc__rt_glob(PyObject *pattern)
{
    if (import_runtime() < 0)
        return NULL;
    PyObject *found = PyObject_CallMethod(runtime, "glob_files", "O", pattern);
    if (found != NULL && !PyList_Check(found)) {
        Py_CLEAR(found);
        PyErr_SetString(PyExc_TypeError, "glob_files did not return a list");
    }
    return found;
}

PyObject *gc__rt_server(void)
{
    return server;
}

static void set_attr(PyObject *obj, const char *name, PyObject *value)
{
    if (value == NULL || PyObject_SetAttrString(obj, name, value) < 0)
        gc__py_log_exception(GC_LOG_ERROR, "Cannot update a hook object");
    Py_XDECREF(value);
}

void gc__rt_set_long(PyObject *obj, const char *name, long value)
{
    if (obj != NULL)
        set_attr(obj, name, PyLong_FromLong(value));
}

void gc__rt_set_bool(PyObject *obj, const char *name, int value)
{
    if (obj != NULL)
        set_attr(obj, name, PyBool_FromLong(value));
}

/* --- hooks ------------------------------------------------------------------------ */

/* What a hook's exception does, by hook (runtime.h). */
enum failure {
    LOG,          /* logged as an error; the process goes on */
    LOG_WARNING,  /* logged as a warning; the process goes on */
    MASTER_START, /* the master stops: SystemExit's status, or 1 */
    MASTER_LOOP,  /* the master stops: SystemExit's status, or 255 */
    WORKER_BOOT,  /* the worker exits: SystemExit's status, or 3 */
};

static enum failure failure_of(enum gc__hook_id id, int first)
{
    switch (id) {
    case GC_HOOK_on_starting:
    case GC_HOOK_when_ready:
    case GC_HOOK_on_exit:
        return MASTER_START;
    case GC_HOOK_nworkers_changed:
        return first ? MASTER_START : MASTER_LOOP;
    case GC_HOOK_pre_fork:
    case GC_HOOK_child_exit:
    case GC_HOOK_on_reload:
    case GC_HOOK_pre_exec:
        return MASTER_LOOP;
    case GC_HOOK_post_fork:
    case GC_HOOK_post_worker_init:
        return WORKER_BOOT;
    case GC_HOOK_worker_exit:
        return LOG_WARNING;
    default:
        return LOG;
    }
}

/* The exit status a pending SystemExit asks for, as Python's own exit gives it: its
 * code when an int, 0 for None, otherwise 1 after writing the code to stderr. Clears
 * the exception. */
static int system_exit_status(void)
{
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    PyObject *code = value != NULL ? PyObject_GetAttrString(value, "code") : NULL;
    int status = 1;
    if (code == Py_None) {
        status = 0;
    } else if (code != NULL && PyLong_Check(code)) {
        long n = PyLong_AsLong(code);
        status = n == -1 && PyErr_Occurred() ? 255 : (int)(n & 0xff);
    } else if (code != NULL) {
        PyObject *err = PySys_GetObject("stderr"); /* borrowed */
        if (err != NULL && err != Py_None && PyFile_WriteObject(code, err, Py_PRINT_RAW) == 0 &&
            PyFile_WriteString("\n", err) == 0)
            Py_XDECREF(PyObject_CallMethod(err, "flush", NULL));
    }
    PyErr_Clear();
    Py_XDECREF(code);
    Py_XDECREF(type);
    Py_XDECREF(value);
    Py_XDECREF(tb);
    return status;
}

/* A worker whose post_fork or post_worker_init hook raised fails its boot, as its
 * import would (worker.c): no worker_exit hook, no interpreter finalization. */
static void worker_boot_failed(int status)
{
    gc__info("Worker exiting (pid: %ld)", (long)getpid());
    fflush(NULL);
    _exit(status);
}

/* Calls runtime.call(name, hook, *args), args borrowed. Returns 0 when the hook is
 * not set or returned. Otherwise the exception has been dealt with as failure_of says
 * and cleared, and the result is -1; *status is then the exit status when the process
 * must stop, or -1 when it goes on. */
static int call_hook(enum gc__hook_id id, int first, int *status, int nargs, PyObject *a,
                     PyObject *b, PyObject *c, PyObject *d)
{
    *status = -1;
    PyObject *hook = gc__hook_get(id);
    if (hook == NULL || runtime == NULL)
        return 0;
    PyObject *argv[6] = {GC_STR_HOOK(id), hook, a, b, c, d};
    PyObject *fn = PyObject_GetAttr(runtime, GC_STR(call));
    PyObject *r = NULL;
    if (fn != NULL)
        r = PyObject_Vectorcall(fn, argv, (size_t)(2 + nargs), NULL);
    Py_XDECREF(fn);
    if (r != NULL) {
        Py_DECREF(r);
        return 0;
    }
    enum failure failure = failure_of(id, first);
    char header[64];
    snprintf(header, sizeof(header), "Exception in %s hook", gc__hook_name(id));
    if (failure == LOG || failure == LOG_WARNING) {
        /* SystemExit too: Gunicorn logs it with the request, or ignores it. */
        gc__py_log_exception(failure == LOG ? GC_LOG_ERROR : GC_LOG_WARNING, header);
        return -1;
    }
    if (PyErr_ExceptionMatches(PyExc_SystemExit)) {
        *status = system_exit_status();
    } else {
        gc__py_log_exception(GC_LOG_ERROR, header);
        *status = failure == MASTER_START  ? 1
                  : failure == MASTER_LOOP ? 255
                                           : GC_EXIT_WORKER_BOOT_ERROR;
    }
    if (failure == WORKER_BOOT)
        worker_boot_failed(*status);
    return -1;
}

int gc__rt_master_hook(enum gc__hook_id id, PyObject *worker, int *status)
{
    int nargs = id == GC_HOOK_pre_fork || id == GC_HOOK_child_exit ? 2 : 1;
    if (nargs == 2 && worker == NULL) {
        *status = -1; /* no Worker object could be made: nothing to call with */
        return 0;
    }
    return call_hook(id, 0, status, nargs, server, worker, NULL, NULL);
}

int gc__rt_nworkers_changed(long new_value, long old_value, int *status)
{
    *status = -1;
    if (gc__hook_get(GC_HOOK_nworkers_changed) == NULL)
        return 0;
    PyObject *n = PyLong_FromLong(new_value);
    PyObject *o = old_value < 0 ? Py_NewRef(Py_None) : PyLong_FromLong(old_value);
    int rc = 0;
    if (n != NULL && o != NULL)
        rc = call_hook(GC_HOOK_nworkers_changed, old_value < 0, status, 3, server, n, o, NULL);
    else
        gc__py_log_exception(GC_LOG_ERROR, "Cannot call the nworkers_changed hook");
    Py_XDECREF(n);
    Py_XDECREF(o);
    return rc;
}

PyObject *gc__rt_worker_new(unsigned age)
{
    PyObject *cfg = server ? PyObject_GetAttrString(server, "cfg") : NULL;
    PyObject *w = NULL;
    if (cfg != NULL)
        w = PyObject_CallMethod(runtime, "Worker", "IiOO", age, (int)getpid(), cfg, server);
    Py_XDECREF(cfg);
    if (w == NULL)
        gc__py_log_exception(GC_LOG_ERROR, "Cannot make the worker object for hooks");
    return w;
}

int gc__rt_worker_hook(enum gc__hook_id id, PyObject *worker)
{
    int status;
    if (worker == NULL)
        return 0;
    switch (id) {
    case GC_HOOK_post_worker_init:
    case GC_HOOK_worker_int:
    case GC_HOOK_worker_abort:
        return call_hook(id, 0, &status, 1, worker, NULL, NULL, NULL);
    default:
        return call_hook(id, 0, &status, 2, server, worker, NULL, NULL);
    }
}

int gc__rt_request_hooks(void)
{
    return gc__hook_get(GC_HOOK_pre_request) != NULL || gc__hook_get(GC_HOOK_post_request) != NULL;
}

PyObject *gc__rt_request_new(PyObject *environ, const gc__http_request_t *req)
{
    PyObject *headers = PyList_New((Py_ssize_t)req->nfields);
    if (headers == NULL)
        goto fail;
    for (size_t i = 0; i < req->nfields; i++) {
        gc__view_t n = gc__http_field_name(req, i), v = gc__http_field_value(req, i);
        PyObject *name = PyUnicode_DecodeLatin1(n.base, (Py_ssize_t)n.len, NULL);
        PyObject *upper = name ? PyObject_CallMethodNoArgs(name, GC_STR(upper)) : NULL;
        PyObject *value = PyUnicode_DecodeLatin1(v.base, (Py_ssize_t)v.len, NULL);
        Py_XDECREF(name);
        PyObject *pair = upper && value ? PyTuple_Pack(2, upper, value) : NULL;
        Py_XDECREF(upper);
        Py_XDECREF(value);
        if (pair == NULL) {
            Py_DECREF(headers);
            goto fail;
        }
        PyList_SET_ITEM(headers, (Py_ssize_t)i, pair); /* steals pair */
    }
    PyObject *obj = PyObject_CallMethodObjArgs(runtime, GC_STR(Request), environ, headers, NULL);
    Py_DECREF(headers);
    if (obj != NULL)
        return obj;
fail:
    gc__py_log_exception(GC_LOG_ERROR, "Cannot make the request object for hooks");
    return NULL;
}

int gc__rt_pre_request(PyObject *worker, PyObject *req)
{
    int status;
    return call_hook(GC_HOOK_pre_request, 0, &status, 2, worker, req, NULL, NULL);
}

void gc__rt_post_request(PyObject *worker, PyObject *req, PyObject *environ, PyObject *status,
                         PyObject *headers, unsigned long long sent)
{
    if (gc__hook_get(GC_HOOK_post_request) == NULL)
        return;
    PyObject *n = PyLong_FromUnsignedLongLong(sent);
    PyObject *resp =
        n ? PyObject_CallMethodObjArgs(runtime, GC_STR(Response), status ? status : Py_None,
                                       headers ? headers : Py_None, n, NULL)
          : NULL;
    Py_XDECREF(n);
    if (resp == NULL) {
        gc__py_log_exception(GC_LOG_ERROR, "Cannot make the response object for hooks");
        return;
    }
    int unused;
    call_hook(GC_HOOK_post_request, 0, &unused, 4, worker, req, environ, resp);
    Py_DECREF(resp);
}
