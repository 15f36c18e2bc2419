/* interp.c: starting CPython, the process environment, and importing the application
 * (see interp.h).
 *
 * The application is named the way Gunicorn names it, and each way to get it wrong
 * gets Gunicorn's message. The part after the colon is parsed with Python's own `ast`
 * module, so `create_app('prod', debug=True)` accepts exactly the literals Python's
 * ast.literal_eval does. Failures that mean "the name does not lead to an application"
 * are raised as AppImportError (a worker exits 4); any other exception (the module
 * cannot be imported, the factory raised) is a boot error (a worker exits 3). */
#include "python/interp.h"

#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "http/repr.h"
#include "log/log.h"
#include "python/pystr.h"
#include "python/venv.h"

/* The Python objects this module keeps for the life of the process. */
static struct {
    PyObject *app_import_error;  /* the AppImportError type */
    int paste;                   /* the app comes from a PasteDeploy ini */
    PyObject *paste_global_conf; /* dict */
    PyObject *saved_env;         /* dict: key -> value before --env, or None if unset */
} py;

int gc__py_start(int argc, char **argv)
{
    /* The name the interpreter starts as decides the virtualenv it uses (venv.h). */
    char program[PATH_MAX];
    if (gc__venv_program_name(argc, argv, program, sizeof(program)) < 0)
        return -1;
    PyConfig config;
    PyConfig_InitPythonConfig(&config);
    /* Signals belong to the C side (libuv in the arbiter and the workers). */
    config.install_signal_handlers = 0;
    config.parse_argv = 0;
    PyStatus status = PyConfig_SetBytesString(&config, &config.program_name, program);
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
    py.app_import_error = PyErr_NewExceptionWithDoc(
        "gunicorn_c.errors.AppImportError",
        "The application named on the command line cannot be loaded.", PyExc_Exception, NULL);
    if (py.app_import_error == NULL || gc__pystr_init() < 0) {
        gc__py_print_exception();
        return -1;
    }
    return 0;
}

/* --- sys.path and the working directory ------------------------------------------- */

/* Inserts dir at sys.path[0] unless it is already in sys.path. */
static int path_insert_first(PyObject *dir)
{
    PyObject *sys_path = PySys_GetObject("path"); /* borrowed */
    if (sys_path == NULL || !PyList_Check(sys_path)) {
        PyErr_SetString(PyExc_RuntimeError, "sys.path is not a list");
        return -1;
    }
    int present = PySequence_Contains(sys_path, dir);
    if (present < 0)
        return -1;
    return present ? 0 : PyList_Insert(sys_path, 0, dir);
}

int gc__py_chdir(const char *dir)
{
    if (chdir(dir) < 0) {
        PyErr_SetFromErrnoWithFilename(PyExc_OSError, dir);
        return -1;
    }
    PyObject *p = PyUnicode_DecodeFSDefault(dir);
    if (p == NULL)
        return -1;
    int rc = path_insert_first(p);
    Py_DECREF(p);
    return rc;
}

/* os.path.abspath(path): returns owned, or NULL with an exception set. */
static PyObject *abspath(PyObject *path)
{
    PyObject *os_path = PyImport_ImportModule("os.path");
    if (os_path == NULL)
        return NULL;
    PyObject *abs = PyObject_CallMethod(os_path, "abspath", "O", path);
    Py_DECREF(os_path);
    return abs;
}

int gc__py_add_pythonpath(const gc__config_t *cfg)
{
    const char *pp = gc__cfg_str(cfg, GC_S_pythonpath);
    if (pp == NULL || *pp == '\0')
        return 0;
    PyObject *text = PyUnicode_DecodeFSDefault(pp), *comma = PyUnicode_FromString(","),
             *parts = NULL;
    if (text == NULL || comma == NULL || (parts = PyUnicode_Split(text, comma, -1)) == NULL)
        goto fail;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(parts); i++) {
        PyObject *abs = abspath(PyList_GET_ITEM(parts, i)); /* borrowed item */
        if (abs == NULL || path_insert_first(abs) < 0) {
            Py_XDECREF(abs);
            goto fail;
        }
        Py_DECREF(abs);
    }
    Py_DECREF(parts);
    Py_DECREF(comma);
    Py_DECREF(text);
    return 0;
fail:
    Py_XDECREF(parts);
    Py_XDECREF(comma);
    Py_XDECREF(text);
    gc__py_log_exception(GC_LOG_ERROR, "Cannot add --pythonpath to sys.path");
    return -1;
}

/* --- The environment -------------------------------------------------------------- */

int gc__py_apply_env(const gc__config_t *cfg)
{
    /* Each loaded configuration passes here: the place to say that its virtualenv, if it
     * names another than the interpreter's, cannot apply any more. */
    gc__venv_check_config(cfg);
    const gc__setting_value_t *env = &cfg->v[GC_S_raw_env];
    for (size_t i = 0; i < env->n; i++) {
        const char *eq = strchr(env->items[i], '=');
        if (eq == NULL || eq == env->items[i]) {
            fputs("\nError: environment setting ", stderr);
            gc__http_repr_print(stderr, env->items[i]);
            fputs(" invalid\n\n", stderr);
            return -1;
        }
    }
    PyObject *os = PyImport_ImportModule("os"), *environ = NULL, *key = NULL, *val = NULL;
    if (os == NULL || (environ = PyObject_GetAttrString(os, "environ")) == NULL)
        goto fail;
    if (py.saved_env == NULL && (py.saved_env = PyDict_New()) == NULL)
        goto fail;
    /* Undo what a previous configuration set. */
    Py_ssize_t pos = 0;
    PyObject *k, *old;
    while (PyDict_Next(py.saved_env, &pos, &k, &old)) { /* borrowed */
        int rc = old == Py_None ? PyMapping_DelItem(environ, k) : PyObject_SetItem(environ, k, old);
        if (rc < 0)
            PyErr_Clear(); /* already gone */
    }
    PyDict_Clear(py.saved_env);
    for (size_t i = 0; i < env->n; i++) {
        const char *item = env->items[i], *eq = strchr(item, '=');
        key = PyUnicode_DecodeFSDefaultAndSize(item, eq - item);
        val = PyUnicode_DecodeFSDefault(eq + 1);
        if (key == NULL || val == NULL)
            goto fail;
        if (!PyDict_Contains(py.saved_env, key)) {
            PyObject *before = PyObject_CallMethod(environ, "get", "O", key);
            if (before == NULL || PyDict_SetItem(py.saved_env, key, before) < 0) {
                Py_XDECREF(before);
                goto fail;
            }
            Py_DECREF(before);
        }
        if (PyObject_SetItem(environ, key, val) < 0)
            goto fail;
        Py_CLEAR(key);
        Py_CLEAR(val);
    }
    Py_DECREF(environ);
    Py_DECREF(os);
    return 0;
fail:
    Py_XDECREF(key);
    Py_XDECREF(val);
    Py_XDECREF(environ);
    Py_XDECREF(os);
    fputs("\nError: ", stderr);
    gc__py_print_exception();
    return -1;
}

/* --- Errors ----------------------------------------------------------------------- */

/* The traceback of the pending exception as one string (owned), or NULL. The
 * exception is cleared. */
static char *format_exception(void)
{
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    if (type == NULL)
        return NULL;
    PyErr_NormalizeException(&type, &value, &tb);
    if (tb != NULL && value != NULL)
        PyException_SetTraceback(value, tb);
    char *out = NULL;
    PyObject *mod = PyImport_ImportModule("traceback"), *lines = NULL, *text = NULL;
    PyObject *empty = PyUnicode_FromString("");
    if (mod != NULL)
        lines = PyObject_CallMethod(mod, "format_exception", "OOO", type, value ? value : Py_None,
                                    tb ? tb : Py_None);
    if (lines != NULL && empty != NULL)
        text = PyUnicode_Join(empty, lines);
    Py_XDECREF(empty);
    const char *s = text ? PyUnicode_AsUTF8(text) : NULL;
    if (s != NULL)
        out = strdup(s);
    PyErr_Clear();
    Py_XDECREF(text);
    Py_XDECREF(lines);
    Py_XDECREF(mod);
    Py_XDECREF(type);
    Py_XDECREF(value);
    Py_XDECREF(tb);
    return out;
}

void gc__py_log_exception(int level, const char *header)
{
    if (level == GC_LOG_ERROR)
        level = GC_LOG_EXCEPTION; /* Gunicorn's log.exception(), which StatsD counts apart */
    if (!PyErr_Occurred()) {
        gc__log(level, "%s", header);
        return;
    }
    char *text = format_exception();
    if (text == NULL)
        gc__log(level, "%s (and the traceback could not be formatted)", header);
    else
        gc__log_block(level, header, text);
    free(text);
}

void gc__py_print_exception(void)
{
    char *text = format_exception();
    fflush(stdout);
    fputs(text ? text : "(the traceback could not be formatted)\n", stderr);
    fflush(stderr);
    free(text);
}

#ifndef NDEBUG
void gc__py_assert_clean(const char *where)
{
    if (!PyErr_Occurred())
        return;
    fflush(stdout);
    fprintf(stderr, "gunicorn-c: a Python exception is pending %s (a bug):\n", where);
    gc__py_print_exception();
    abort();
}
#endif

/* Raises AppImportError with a message made by PyUnicode_FromFormat. */
static PyObject *app_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    PyObject *msg = PyUnicode_FromFormatV(fmt, ap);
    va_end(ap);
    if (msg != NULL) {
        PyErr_SetObject(py.app_import_error, msg);
        Py_DECREF(msg);
    }
    return NULL;
}

/* --- Naming the application --------------------------------------------------------- */

/* Whether the pending TypeError came from the call of f itself (wrong arguments) rather
 * than from inside f: no frame of f's code is in the traceback. */
static int called_with_wrong_args(PyObject *f)
{
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyObject *code = PyObject_GetAttrString(f, "__code__");
    PyErr_Clear();
    int wrong = 1;
    PyObject *t = tb;
    Py_XINCREF(t);
    while (t != NULL && t != Py_None && wrong) {
        PyObject *frame = PyObject_GetAttrString(t, "tb_frame");
        PyObject *fcode = frame ? PyObject_GetAttrString(frame, "f_code") : NULL;
        /* Without __code__ (a class, a C function), any Python frame means the error
         * came from inside. */
        if (fcode != NULL && (code == NULL || fcode == code))
            wrong = 0;
        Py_XDECREF(fcode);
        Py_XDECREF(frame);
        PyObject *next = PyObject_GetAttrString(t, "tb_next");
        PyErr_Clear();
        Py_DECREF(t);
        t = next;
    }
    Py_XDECREF(t);
    Py_XDECREF(code);
    PyErr_Restore(type, value, tb);
    return wrong;
}

/* Calls ast.literal_eval(node). Returns owned, or NULL with an exception set. */
static PyObject *literal(PyObject *ast, PyObject *node)
{
    return PyObject_CallMethod(ast, "literal_eval", "O", node);
}

/* Parses `obj` (what follows the colon) as Gunicorn does: a name, or a call of a name
 * with literal arguments. Sets *name (owned) and, for a call, *args and *kwargs
 * (owned). Returns 0, or -1 with AppImportError (or another exception) set. */
static int parse_target(PyObject *obj, PyObject **name, PyObject **args, PyObject **kwargs)
{
    *name = *args = *kwargs = NULL;
    PyObject *ast = PyImport_ImportModule("ast"), *tree = NULL, *expr = NULL;
    PyObject *name_type = NULL, *call_type = NULL, *func = NULL, *list = NULL;
    int rc = -1;
    if (ast == NULL)
        return -1;
    tree = PyObject_CallMethod(ast, "parse", "Oss", obj, "<string>", "eval");
    if (tree == NULL) {
        if (PyErr_ExceptionMatches(PyExc_SyntaxError)) {
            PyErr_Clear();
            app_error("Failed to parse %R as an attribute name or function call.", obj);
        }
        goto out;
    }
    if ((expr = PyObject_GetAttrString(tree, "body")) == NULL ||
        (name_type = PyObject_GetAttrString(ast, "Name")) == NULL ||
        (call_type = PyObject_GetAttrString(ast, "Call")) == NULL)
        goto out;
    if (PyObject_IsInstance(expr, name_type) == 1) {
        *name = PyObject_GetAttrString(expr, "id");
        rc = *name ? 0 : -1;
        goto out;
    }
    if (PyObject_IsInstance(expr, call_type) != 1) {
        app_error("Failed to parse %R as an attribute name or function call.", obj);
        goto out;
    }
    if ((func = PyObject_GetAttrString(expr, "func")) == NULL)
        goto out;
    if (PyObject_IsInstance(func, name_type) != 1) {
        app_error("Function reference must be a simple name: %R", obj);
        goto out;
    }
    if ((*name = PyObject_GetAttrString(func, "id")) == NULL)
        goto out;
    /* Positional, then keyword arguments: literals only. */
    if ((list = PyObject_GetAttrString(expr, "args")) == NULL || (*args = PyList_New(0)) == NULL)
        goto out;
    for (Py_ssize_t i = 0; i < PyList_Size(list); i++) {
        PyObject *v = literal(ast, PyList_GET_ITEM(list, i)); /* borrowed item */
        if (v == NULL || PyList_Append(*args, v) < 0) {
            Py_XDECREF(v);
            goto bad_literal;
        }
        Py_DECREF(v);
    }
    Py_CLEAR(list);
    if ((list = PyObject_GetAttrString(expr, "keywords")) == NULL ||
        (*kwargs = PyDict_New()) == NULL)
        goto out;
    for (Py_ssize_t i = 0; i < PyList_Size(list); i++) {
        PyObject *kw = PyList_GET_ITEM(list, i); /* borrowed */
        PyObject *arg = PyObject_GetAttrString(kw, "arg");
        PyObject *node = PyObject_GetAttrString(kw, "value");
        PyObject *v = node ? literal(ast, node) : NULL;
        int ok = arg != NULL && v != NULL && PyDict_SetItem(*kwargs, arg, v) == 0;
        Py_XDECREF(arg);
        Py_XDECREF(node);
        Py_XDECREF(v);
        if (!ok)
            goto bad_literal;
    }
    rc = 0;
    goto out;
bad_literal:
    /* literal_eval's own messages are cryptic; Gunicorn shows the whole expression. */
    if (PyErr_ExceptionMatches(PyExc_ValueError)) {
        PyErr_Clear();
        app_error("Failed to parse arguments as literal values: %R", obj);
    }
out:
    if (rc < 0) {
        Py_CLEAR(*name);
        Py_CLEAR(*args);
        Py_CLEAR(*kwargs);
    }
    Py_XDECREF(list);
    Py_XDECREF(func);
    Py_XDECREF(call_type);
    Py_XDECREF(name_type);
    Py_XDECREF(expr);
    Py_XDECREF(tree);
    Py_DECREF(ast);
    return rc;
}

/* Imports module_name; a failing "foo.py" that exists gets Gunicorn's hint. */
static PyObject *import_module(const char *module, PyObject *obj)
{
    PyObject *mod = PyImport_ImportModule(module);
    if (mod != NULL || !PyErr_ExceptionMatches(PyExc_ImportError))
        return mod;
    size_t len = strlen(module);
    struct stat st;
    if (len > 3 && strcmp(module + len - 3, ".py") == 0 && stat(module, &st) == 0) {
        PyErr_Clear();
        char stem[PATH_MAX];
        snprintf(stem, sizeof(stem), "%.*s", (int)(len - 3), module);
        PyErr_Format(PyExc_ImportError, "Failed to find application, did you mean '%s:%U'?", stem,
                     obj);
    }
    return NULL;
}

/* Gunicorn's util.import_app. Returns the application (owned), or NULL with an
 * exception set. */
static PyObject *import_app(const char *uri)
{
    const char *colon = strchr(uri, ':');
    char *module = colon ? strndup(uri, (size_t)(colon - uri)) : strdup(uri);
    PyObject *obj = PyUnicode_DecodeFSDefault(colon ? colon + 1 : "application");
    PyObject *mod = NULL, *name = NULL, *args = NULL, *kwargs = NULL, *app = NULL;
    if (module == NULL || obj == NULL) {
        PyErr_NoMemory();
        goto out;
    }
    if ((mod = import_module(module, obj)) == NULL)
        goto out;
    if (parse_target(obj, &name, &args, &kwargs) < 0)
        goto out;
    app = PyObject_GetAttr(mod, name);
    if (app == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_AttributeError))
            goto out;
        if (gc__log_enabled(GC_LOG_DEBUG))
            gc__py_print_exception();
        PyErr_Clear();
        PyObject *m = PyUnicode_DecodeFSDefault(module);
        if (m != NULL)
            app_error("Failed to find attribute %R in %R.", name, m);
        Py_XDECREF(m);
        goto out;
    }
    if (args != NULL) {
        PyObject *tuple = PyList_AsTuple(args);
        PyObject *made = tuple ? PyObject_Call(app, tuple, kwargs) : NULL;
        Py_XDECREF(tuple);
        if (made == NULL && PyErr_ExceptionMatches(PyExc_TypeError) &&
            called_with_wrong_args(app)) {
            /* Python's own message ("create_app() takes 0 positional arguments but 1 was
             * given"), without the traceback, as "TypeError: ...". */
            PyObject *type, *value, *tb;
            PyErr_Fetch(&type, &value, &tb);
            PyErr_NormalizeException(&type, &value, &tb);
            app_error("TypeError: %S", value ? value : Py_None);
            Py_XDECREF(type);
            Py_XDECREF(value);
            Py_XDECREF(tb);
        }
        Py_SETREF(app, made);
        if (app == NULL)
            goto out;
    }
    if (app == Py_None) {
        Py_CLEAR(app);
        app_error("Failed to find application object: %R", obj);
    } else if (!PyCallable_Check(app)) {
        Py_CLEAR(app);
        app_error("Application object must be callable.");
    }
out:
    Py_XDECREF(kwargs);
    Py_XDECREF(args);
    Py_XDECREF(name);
    Py_XDECREF(mod);
    Py_XDECREF(obj);
    free(module);
    return app;
}

/* --- PasteDeploy ------------------------------------------------------------------ */

/* "KEY=VALUE" entries into a dict, "\=" standing for an "=" in either part. */
static PyObject *paste_global_conf(const gc__config_t *cfg)
{
    const gc__setting_value_t *v = &cfg->v[GC_S_raw_paste_global_conf];
    PyObject *conf = PyDict_New();
    for (size_t i = 0; conf && i < v->n; i++) {
        const char *s = v->items[i], *eq = NULL;
        for (const char *p = s; *p && !eq; p++)
            if (*p == '=' && (p == s || p[-1] != '\\'))
                eq = p;
        if (eq == NULL) {
            fputs("\nError: environment setting ", stderr);
            gc__http_repr_print(stderr, s);
            fputs(" invalid\n\n", stderr);
            Py_CLEAR(conf);
            return NULL;
        }
        PyObject *k = PyUnicode_DecodeFSDefaultAndSize(s, eq - s);
        PyObject *val = PyUnicode_DecodeFSDefault(eq + 1);
        PyObject *k2 = k ? PyObject_CallMethod(k, "replace", "ss", "\\=", "=") : NULL;
        PyObject *v2 = val ? PyObject_CallMethod(val, "replace", "ss", "\\=", "=") : NULL;
        if (k2 == NULL || v2 == NULL || PyDict_SetItem(conf, k2, v2) < 0)
            Py_CLEAR(conf);
        Py_XDECREF(k);
        Py_XDECREF(val);
        Py_XDECREF(k2);
        Py_XDECREF(v2);
    }
    if (conf == NULL && PyErr_Occurred())
        gc__py_print_exception();
    return conf;
}

int gc__py_set_app_source(const gc__config_t *cfg)
{
    py.paste = cfg->v[GC_S_paste].s != NULL && cfg->app_uri != NULL && cfg->app_uri[0] == '/';
    Py_CLEAR(py.paste_global_conf);
    if (py.paste && (py.paste_global_conf = paste_global_conf(cfg)) == NULL)
        return -1;
    return 0;
}

/* paste.deploy.loadapp("config:<ini>", relative_to=cwd, global_conf=...). */
static PyObject *load_paste(const char *uri)
{
    PyObject *deploy = PyImport_ImportModule("paste.deploy");
    if (deploy == NULL)
        return NULL;
    char cwd[PATH_MAX];
    if (getcwd(cwd, sizeof(cwd)) == NULL)
        strcpy(cwd, "/");
    PyObject *config_uri =
        strchr(uri, ':') ? PyUnicode_DecodeFSDefault(uri) : PyUnicode_FromFormat("config:%s", uri);
    PyObject *kwargs = Py_BuildValue("{s:s,s:O}", "relative_to", cwd, "global_conf",
                                     py.paste_global_conf ? py.paste_global_conf : Py_None);
    PyObject *loadapp = PyObject_GetAttrString(deploy, "loadapp"), *app = NULL;
    PyObject *args = config_uri ? PyTuple_Pack(1, config_uri) : NULL;
    if (loadapp && args && kwargs)
        app = PyObject_Call(loadapp, args, kwargs);
    Py_XDECREF(args);
    Py_XDECREF(loadapp);
    Py_XDECREF(kwargs);
    Py_XDECREF(config_uri);
    Py_DECREF(deploy);
    return app;
}

static PyObject *load(const char *uri)
{
    if (uri == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "No application module specified.");
        return NULL;
    }
    return py.paste ? load_paste(uri) : import_app(uri);
}

int gc__py_load_app(const char *uri, PyObject **app)
{
    *app = load(uri);
    if (*app != NULL)
        return 0;
    if (PyErr_ExceptionMatches(py.app_import_error)) {
        /* As Gunicorn's worker: the traceback at debug level, the message on stderr. */
        PyObject *type, *value, *tb;
        PyErr_Fetch(&type, &value, &tb);
        PyObject *msg = value ? PyObject_Str(value) : NULL;
        const char *text = msg ? PyUnicode_AsUTF8(msg) : NULL;
        if (gc__log_enabled(GC_LOG_DEBUG)) {
            Py_XINCREF(type);
            Py_XINCREF(value);
            Py_XINCREF(tb);
            PyErr_Restore(type, value, tb);
            gc__py_log_exception(GC_LOG_DEBUG, "Exception while loading the application");
        }
        fflush(stdout);
        fprintf(stderr, "%s\n", text ? text : "Failed to load the application.");
        fflush(stderr);
        PyErr_Clear();
        Py_XDECREF(msg);
        Py_XDECREF(type);
        Py_XDECREF(value);
        Py_XDECREF(tb);
        return GC_EXIT_APP_LOAD_ERROR;
    }
    gc__py_log_exception(GC_LOG_ERROR, "Exception in worker process");
    return GC_EXIT_WORKER_BOOT_ERROR;
}

int gc__py_check_app(const char *uri)
{
    PyObject *app = load(uri);
    if (app != NULL) {
        Py_DECREF(app);
        return 0;
    }
    fflush(stdout);
    fputs("\nError while loading the application:\n\n", stderr);
    gc__py_print_exception();
    return -1;
}
