/* config_file.c: loading the configuration from every source (see config_file.h).
 *
 * The C settings layer (src/config) validates values; this file runs the config file,
 * turns its Python values into what the setters take, with the messages Gunicorn's
 * validators give (a bad value prints "Invalid value for workers: abc" and then
 * "Error: <why>"), and keeps what only Python can hold: hook callables go to the hook
 * registry, dicts and other callables to a dict of objects. */
#include "python/config_file.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log/log.h"
#include "python/hooks.h"
#include "python/interp.h"
#include "python/pycompat.h"

/* Values of DICT and CALLABLE settings that are not server hooks, by setting name. */
static PyObject *objects;

PyObject *gc__config_object(enum gc__setting_id id)
{
    if (objects == NULL)
        return NULL;
    return PyDict_GetItemString(objects, gc__setting_info(id)->name); /* borrowed */
}

/* --- Small helpers ---------------------------------------------------------------- */

static void print_error(const char *msg)
{
    fflush(stdout);
    fprintf(stderr, "\nError: %s\n", msg);
    fflush(stderr);
}

static void warn_line(const char *msg)
{
    gc__warning("%s", msg);
}

/* str(o) as an owned UTF-8 string ("?" when it cannot be had); clears errors. */
static char *str_of(PyObject *o)
{
    PyObject *s = PyObject_Str(o);
    const char *text = s ? PyUnicode_AsUTF8(s) : NULL;
    char *out = strdup(text ? text : "?");
    PyErr_Clear();
    Py_XDECREF(s);
    return out;
}

/* Moves the pending exception's str() into err and clears it. */
static int err_from_exception(gc__config_err_t *err)
{
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    char *s = value ? str_of(value) : strdup("unknown error");
    snprintf(err->msg, sizeof(err->msg), "%s", s ? s : "unknown error");
    free(s);
    Py_XDECREF(type);
    Py_XDECREF(value);
    Py_XDECREF(tb);
    return -EINVAL;
}

static int err_set(gc__config_err_t *err, const char *fmt, PyObject *o)
{
    char *s = str_of(o);
    snprintf(err->msg, sizeof(err->msg), fmt, s ? s : "?");
    free(s);
    return -EINVAL;
}

/* Gunicorn's util.warn: a "!!!" banner on stderr. */
static void warn_banner(const char *msg)
{
    fflush(stdout);
    fprintf(stderr, "!!!\n!!! WARNING: %s\n!!!\n\n", msg);
}

static int file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* --- Python values into settings -------------------------------------------------- */

/* How many positional parameters f takes (Gunicorn's util.get_arity). Returns -1 with
 * an exception set when f has no signature. */
static int arity_of(PyObject *f)
{
    PyObject *inspect = PyImport_ImportModule("inspect"), *sig = NULL, *params = NULL;
    PyObject *values = NULL, *iter = NULL, *p;
    int arity = -1;
    if (inspect == NULL || (sig = PyObject_CallMethod(inspect, "signature", "O", f)) == NULL ||
        (params = PyObject_GetAttrString(sig, "parameters")) == NULL ||
        (values = PyObject_CallMethod(params, "values", NULL)) == NULL ||
        (iter = PyObject_GetIter(values)) == NULL)
        goto out;
    arity = 0;
    while ((p = PyIter_Next(iter)) != NULL) {
        PyObject *kind = PyObject_GetAttrString(p, "kind");
        PyObject *name = kind ? PyObject_GetAttrString(kind, "name") : NULL;
        const char *n = name ? PyUnicode_AsUTF8(name) : NULL;
        if (n && (strcmp(n, "POSITIONAL_ONLY") == 0 || strcmp(n, "POSITIONAL_OR_KEYWORD") == 0))
            arity++;
        Py_XDECREF(name);
        Py_XDECREF(kind);
        Py_DECREF(p);
    }
    if (PyErr_Occurred())
        arity = -1;
out:
    Py_XDECREF(iter);
    Py_XDECREF(values);
    Py_XDECREF(params);
    Py_XDECREF(sig);
    Py_XDECREF(inspect);
    return arity;
}

/* A callable from "package.module.name" (Gunicorn accepts hooks given that way). */
static PyObject *import_callable(PyObject *val, gc__config_err_t *err)
{
    const char *s = PyUnicode_AsUTF8(val);
    const char *dot = s ? strrchr(s, '.') : NULL;
    if (dot == NULL) {
        err_set(err, "Value '%s' is not import string. Format: module[.submodules...].object", val);
        return NULL;
    }
    char *module = strndup(s, (size_t)(dot - s));
    PyObject *mod = module ? PyImport_ImportModule(module) : NULL;
    PyObject *obj = NULL;
    if (mod == NULL) {
        err_from_exception(err);
    } else if ((obj = PyObject_GetAttrString(mod, dot + 1)) == NULL) {
        PyErr_Clear();
        snprintf(err->msg, sizeof(err->msg), "Can not load '%s' from '%s'", dot + 1, module);
    }
    Py_XDECREF(mod);
    free(module);
    return obj;
}

/* post_request may take (worker, req), (worker, req, environ) or all four arguments;
 * the registry always holds one that takes four, as Gunicorn's validator arranges. */
static PyObject *wrap_post_request(PyObject *f, int arity)
{
    static const char src[] =
        "def wrap(f, n):\n"
        "    if n == 3:\n"
        "        return lambda worker, req, environ, resp: f(worker, req, environ)\n"
        "    return lambda worker, req, environ, resp: f(worker, req)\n";
    PyObject *globals = PyDict_New(), *res = NULL, *wrapped = NULL;
    if (globals == NULL || PyDict_SetItemString(globals, "__builtins__", PyEval_GetBuiltins()) < 0)
        goto out;
    res = PyRun_String(src, Py_file_input, globals, globals);
    PyObject *wrap = res ? PyDict_GetItemString(globals, "wrap") : NULL; /* borrowed */
    if (wrap != NULL)
        wrapped = PyObject_CallFunction(wrap, "Oi", f, arity);
out:
    Py_XDECREF(res);
    Py_XDECREF(globals);
    return wrapped;
}

/* Gunicorn's validate_callable(arity) (and validate_post_request), then stores the
 * callable: server hooks in the registry, others in `objects`. */
static int apply_callable(gc__config_t *cfg, int id, PyObject *val, gc__config_err_t *err)
{
    PyObject *f = NULL;
    if (PyUnicode_Check(val)) {
        if ((f = import_callable(val, err)) == NULL)
            return -EINVAL;
    } else {
        f = Py_NewRef(val);
    }
    int rc = -EINVAL;
    PyObject *stored = NULL;
    if (!PyCallable_Check(f)) {
        err_set(err, "Value is not callable: %s", f);
        goto out;
    }
    int want = gc__setting_arity(id), got = arity_of(f);
    if (got < 0) {
        err_from_exception(err);
        goto out;
    }
    if (want == -1) { /* post_request */
        if (got < 2 || got > 4) {
            snprintf(err->msg, sizeof(err->msg), "Value must have an arity of: 4");
            goto out;
        }
        stored = got == 4 ? Py_NewRef(f) : wrap_post_request(f, got);
        if (stored == NULL) {
            err_from_exception(err);
            goto out;
        }
    } else if (got != want) {
        snprintf(err->msg, sizeof(err->msg), "Value must have an arity of: %d", want);
        goto out;
    } else {
        stored = Py_NewRef(f);
    }
    /* Printed as Gunicorn prints callables: "<qualname()>". */
    PyObject *qual = PyObject_GetAttrString(f, "__qualname__");
    if (qual == NULL) {
        PyErr_Clear();
        qual = PyObject_GetAttrString((PyObject *)Py_TYPE(f), "__qualname__");
    }
    char *q = qual ? str_of(qual) : strdup("?");
    Py_XDECREF(qual);
    char printed[512];
    snprintf(printed, sizeof(printed), "<%s()>", q ? q : "?");
    free(q);
    int hook = gc__hook_find(gc__setting_info(id)->name);
    if (hook >= 0)
        gc__hook_set((enum gc__hook_id)hook, stored);
    else if (PyDict_SetItemString(objects, gc__setting_info(id)->name, stored) < 0) {
        err_from_exception(err);
        goto out;
    }
    rc = gc__config_set_repr(cfg, id, printed);
out:
    Py_XDECREF(stored);
    Py_XDECREF(f);
    return rc;
}

/* A Python string setting's value as UTF-8 text; other types are refused with
 * Gunicorn's "Not a string" message. */
static int apply_str(gc__config_t *cfg, int id, PyObject *val, gc__config_err_t *err)
{
    if (val == Py_None)
        return gc__config_set_str(cfg, id, NULL, err);
    if (!PyUnicode_Check(val))
        return err_set(err, "Not a string: %s", val);
    const char *s = PyUnicode_AsUTF8(val);
    if (s == NULL)
        return err_from_exception(err);
    return gc__config_set_str(cfg, id, s, err);
}

/* worker_class and logger_class may be classes (or functions returning one). */
static int apply_class(gc__config_t *cfg, int id, PyObject *val, gc__config_err_t *err)
{
    PyObject *v = Py_NewRef(val);
    if (PyFunction_Check(v) || PyMethod_Check(v)) {
        Py_SETREF(v, PyObject_CallNoArgs(v));
        if (v == NULL)
            return err_from_exception(err);
    }
    int rc;
    if (PyType_Check(v)) {
        PyObject *mod = PyObject_GetAttrString(v, "__module__");
        PyObject *qual = PyObject_GetAttrString(v, "__qualname__");
        char *m = mod ? str_of(mod) : NULL, *q = qual ? str_of(qual) : NULL;
        char dotted[512];
        snprintf(dotted, sizeof(dotted), "%s.%s", m ? m : "?", q ? q : "?");
        free(m);
        free(q);
        Py_XDECREF(mod);
        Py_XDECREF(qual);
        PyErr_Clear();
        if (id == GC_S_worker_class && strncmp(dotted, "gunicorn.workers.", 17) != 0)
            rc = err_set(err,
                         "worker class %s is a Python class; gunicorn-c runs its own "
                         "C workers (use 'sync')",
                         v);
        else
            rc = gc__config_set_str(cfg, id, dotted, err);
    } else {
        rc = apply_str(cfg, id, v, err);
    }
    Py_DECREF(v);
    return rc;
}

/* Gunicorn's validate_pos_int: ints (booleans too) as they are, other values through
 * int(value, 0). */
static int apply_int(gc__config_t *cfg, int id, PyObject *val, gc__config_err_t *err)
{
    if (gc__setting_takes_name(id) && (val == Py_None || PyUnicode_Check(val)))
        return apply_str(cfg, id, val, err);
    PyObject *n;
    if (PyLong_Check(val))
        n = Py_NewRef(val);
    else
        n = PyObject_CallFunction((PyObject *)&PyLong_Type, "Oi", val, 0);
    if (n == NULL)
        return err_from_exception(err);
    long v = PyLong_AsLong(n);
    Py_DECREF(n);
    if (v == -1 && PyErr_Occurred())
        return err_from_exception(err);
    return gc__config_set_int(cfg, id, v, err);
}

/* Gunicorn's validate_bool: booleans, or the strings "true" / "false"; None stays None. */
static int apply_bool(gc__config_t *cfg, int id, PyObject *val, gc__config_err_t *err)
{
    if (val == Py_None)
        return gc__config_set_bool(cfg, id, -1, err);
    if (PyBool_Check(val))
        return gc__config_set_bool(cfg, id, val == Py_True, err);
    if (!PyUnicode_Check(val))
        return err_set(err, "Invalid type for casting: %s", val);
    return apply_str(cfg, id, val, err);
}

/* Lists: a falsy value is [], a lone string a one-item list, any other iterable must
 * hold strings. */
static int apply_list(gc__config_t *cfg, int id, PyObject *val, gc__config_err_t *err)
{
    int truth = PyObject_IsTrue(val);
    if (truth < 0)
        return err_from_exception(err);
    if (!truth)
        return gc__config_set_list(cfg, id, NULL, 0, err);
    if (PyUnicode_Check(val))
        return apply_str(cfg, id, val, err);
    PyObject *seq = PySequence_Fast(val, "Value is not a list of strings");
    if (seq == NULL)
        return err_from_exception(err);
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    const char **items = calloc((size_t)n + 1, sizeof(*items));
    int rc = items ? 0 : -ENOMEM;
    for (Py_ssize_t i = 0; rc == 0 && i < n; i++) {
        PyObject *item = PySequence_Fast_GET_ITEM(seq, i); /* borrowed */
        if (!PyUnicode_Check(item))
            rc = err_set(err, "Not a string: %s", item);
        else if ((items[i] = PyUnicode_AsUTF8(item)) == NULL)
            rc = err_from_exception(err);
    }
    if (rc == 0)
        rc = gc__config_set_list(cfg, id, items, (size_t)n, err);
    free(items);
    Py_DECREF(seq);
    return rc;
}

static int apply_dict(gc__config_t *cfg, int id, PyObject *val, gc__config_err_t *err)
{
    if (!PyDict_Check(val))
        return err_set(err, "Value is not a dictionary: %s ", val);
    PyObject *r = PyObject_Repr(val);
    const char *s = r ? PyUnicode_AsUTF8(r) : NULL;
    int rc = s ? gc__config_set_repr(cfg, id, s) : err_from_exception(err);
    Py_XDECREF(r);
    if (rc == 0 && PyDict_SetItemString(objects, gc__setting_info(id)->name, val) < 0)
        rc = err_from_exception(err);
    return rc;
}

/* Applies one config-file value. Returns 0, -EINVAL (err filled in) or -ENOMEM. */
static int apply_value(gc__config_t *cfg, int id, PyObject *val, gc__config_err_t *err)
{
    switch (gc__setting_info(id)->type) {
    case GC_T_INT:
        return apply_int(cfg, id, val, err);
    case GC_T_BOOL:
        return apply_bool(cfg, id, val, err);
    case GC_T_STR:
        if (id == GC_S_worker_class || id == GC_S_logger_class)
            return apply_class(cfg, id, val, err);
        if (id == GC_S_proxy_protocol && PyBool_Check(val))
            return gc__config_set_str(cfg, id, val == Py_True ? "true" : "false", err);
        if (id == GC_S_ssl_version && PyLong_Check(val)) {
            char *s = str_of(val);
            int rc = s ? gc__config_set_str(cfg, id, s, err) : -ENOMEM;
            free(s);
            return rc;
        }
        return apply_str(cfg, id, val, err);
    case GC_T_LIST:
        return apply_list(cfg, id, val, err);
    case GC_T_DICT:
        return apply_dict(cfg, id, val, err);
    case GC_T_CALLABLE:
        return apply_callable(cfg, id, val, err);
    }
    return -EINVAL;
}

/* --- Names in a config file that are not settings --------------------------------- */

static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 63 || lb > 63)
        return 64;
    size_t row[64];
    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j];
            size_t best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best)
                best = up + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

/* The setting closest to name, if it is close enough to be a typo. */
static const char *closest_setting(const char *name)
{
    const char *best = NULL;
    size_t best_d = 3;
    for (int id = 0; id < GC_S__COUNT; id++) {
        size_t d = edit_distance(name, gc__setting_info(id)->name);
        if (d < best_d) {
            best_d = d;
            best = gc__setting_info(id)->name;
        }
    }
    return best;
}

/* Real config files hold more than settings: imports, helpers, constants. Only names
 * that look as if they were meant as settings are reported: lower-case public names
 * bound to plain data, or to functions defined in the file whose name is close to a
 * setting's (a misspelt hook). */
static void maybe_warn_unknown(PyObject *key, PyObject *val, const char *module_name)
{
    const char *name = PyUnicode_Check(key) ? PyUnicode_AsUTF8(key) : NULL;
    if (name == NULL || name[0] == '_' || PyModule_Check(val) || PyType_Check(val)) {
        PyErr_Clear();
        return;
    }
    for (const char *p = name; *p; p++)
        if (isupper((unsigned char)*p))
            return;
    const char *near = closest_setting(name);
    if (PyCallable_Check(val)) {
        PyObject *mod = PyObject_GetAttrString(val, "__module__");
        const char *m = mod && PyUnicode_Check(mod) ? PyUnicode_AsUTF8(mod) : NULL;
        int local = m != NULL && strcmp(m, module_name) == 0;
        Py_XDECREF(mod);
        PyErr_Clear();
        if (!local || near == NULL)
            return;
    } else if (!(val == Py_None || PyLong_Check(val) || PyFloat_Check(val) ||
                 PyUnicode_Check(val) || PyBytes_Check(val) || PyList_Check(val) ||
                 PyTuple_Check(val) || PyDict_Check(val) || PyAnySet_Check(val))) {
        return;
    }
    if (near != NULL)
        gc__warning("Config file: '%s' is not a setting and is ignored (did you mean '%s'?)", name,
                    near);
    else
        gc__warning("Config file: '%s' is not a setting and is ignored", name);
}

/* Applies the module-level names of a config module. Returns 0 or -1 (printed). */
static int apply_module_dict(gc__config_t *cfg, PyObject *dict, const char *module_name)
{
    PyObject *items = PyDict_Items(dict);
    if (items == NULL) {
        gc__py_print_exception();
        return -1;
    }
    int rc = 0;
    for (Py_ssize_t i = 0; rc == 0 && i < PyList_GET_SIZE(items); i++) {
        PyObject *pair = PyList_GET_ITEM(items, i); /* borrowed */
        PyObject *key = PyTuple_GET_ITEM(pair, 0), *val = PyTuple_GET_ITEM(pair, 1);
        const char *name = PyUnicode_Check(key) ? PyUnicode_AsUTF8(key) : NULL;
        int id = name ? gc__setting_find(name) : -1;
        if (id < 0) {
            maybe_warn_unknown(key, val, module_name);
            continue;
        }
        gc__config_err_t err;
        int arc = apply_value(cfg, id, val, &err);
        if (arc == -ENOMEM)
            snprintf(err.msg, sizeof(err.msg), "out of memory");
        if (arc < 0) {
            char *shown = str_of(val);
            fflush(stdout);
            fprintf(stderr, "Invalid value for %s: %s\n\n", name, shown ? shown : "?");
            free(shown);
            print_error(err.msg);
            rc = -1;
        }
    }
    Py_DECREF(items);
    return rc;
}

/* Runs a config file as the module __config__, as Gunicorn does. Returns the module's
 * dict (owned) or NULL after printing why. */
static PyObject *exec_config_file(const char *filename)
{
    if (!file_exists(filename)) {
        fflush(stdout);
        fputs("\nError: ", stderr);
        gc__config_repr(filename, stderr);
        fputs(" doesn't exist\n", stderr);
        return NULL;
    }
    const char *ext = strrchr(filename, '.');
    const char *slash = strrchr(filename, '/');
    int python_ext =
        ext && (!slash || ext > slash) && (strcmp(ext, ".py") == 0 || strcmp(ext, ".pyc") == 0);
    PyObject *util = NULL, *machinery = NULL, *loader = NULL, *spec = NULL, *mod = NULL;
    PyObject *res = NULL, *dict = NULL, *modules, *spec_loader = NULL;
    if (!python_ext)
        warn_banner("configuration file should have a valid Python extension.");
    if ((util = PyImport_ImportModule("importlib.util")) == NULL ||
        (machinery = PyImport_ImportModule("importlib.machinery")) == NULL)
        goto fail;
    if (python_ext) {
        spec = PyObject_CallMethod(util, "spec_from_file_location", "ss", "__config__", filename);
    } else {
        loader = PyObject_CallMethod(machinery, "SourceFileLoader", "ss", "__config__", filename);
        PyObject *func = PyObject_GetAttrString(util, "spec_from_file_location");
        PyObject *args = Py_BuildValue("(ss)", "__config__", filename);
        PyObject *kwargs = loader ? Py_BuildValue("{s:O}", "loader", loader) : NULL;
        if (func && args && kwargs)
            spec = PyObject_Call(func, args, kwargs);
        Py_XDECREF(func);
        Py_XDECREF(args);
        Py_XDECREF(kwargs);
    }
    if (spec == NULL || (mod = PyObject_CallMethod(util, "module_from_spec", "O", spec)) == NULL)
        goto fail;
    modules = PyImport_GetModuleDict(); /* borrowed */
    if (PyDict_SetItemString(modules, "__config__", mod) < 0)
        goto fail;
    if ((spec_loader = PyObject_GetAttrString(spec, "loader")) == NULL ||
        (res = PyObject_CallMethod(spec_loader, "exec_module", "O", mod)) == NULL)
        goto fail;
    dict = Py_NewRef(PyModule_GetDict(mod));
    goto out;
fail:
    fflush(stdout);
    fprintf(stderr, "Failed to read config file: %s\n", filename);
    gc__py_print_exception();
out:
    Py_XDECREF(res);
    Py_XDECREF(spec_loader);
    Py_XDECREF(mod);
    Py_XDECREF(spec);
    Py_XDECREF(loader);
    Py_XDECREF(machinery);
    Py_XDECREF(util);
    return dict;
}

/* -c LOCATION: "python:MODULE", "file:PATH" or PATH. Returns 0 or -1 (printed). */
static int load_config_file(gc__config_t *cfg, const char *location)
{
    if (strncmp(location, "python:", 7) == 0) {
        PyObject *mod = PyImport_ImportModule(location + 7);
        if (mod == NULL) {
            gc__config_err_t err;
            err_from_exception(&err);
            print_error(err.msg);
            return -1;
        }
        int rc = apply_module_dict(cfg, PyModule_GetDict(mod), location + 7);
        Py_DECREF(mod);
        return rc;
    }
    const char *filename = strncmp(location, "file:", 5) == 0 ? location + 5 : location;
    PyObject *dict = exec_config_file(filename);
    if (dict == NULL)
        return -1;
    int rc = apply_module_dict(cfg, dict, "__config__");
    Py_DECREF(dict);
    return rc;
}

/* --- The other sources ------------------------------------------------------------ */

/* GUNICORN_CMD_ARGS, split as shlex.split does, through the same parser. */
static int parse_env_args(gc__cli_args_t *out)
{
    memset(out, 0, sizeof(*out));
    const char *text = getenv("GUNICORN_CMD_ARGS");
    if (text == NULL)
        return GC_PARSE_OK;
    PyObject *shlex = PyImport_ImportModule("shlex");
    PyObject *list = shlex ? PyObject_CallMethod(shlex, "split", "s", text) : NULL;
    Py_XDECREF(shlex);
    if (list == NULL) {
        gc__config_err_t err;
        err_from_exception(&err);
        print_error(err.msg);
        return -1;
    }
    Py_ssize_t n = PyList_GET_SIZE(list);
    char **argv = calloc((size_t)n + 1, sizeof(*argv));
    int rc = argv ? GC_PARSE_OK : -ENOMEM;
    for (Py_ssize_t i = 0; rc == GC_PARSE_OK && i < n; i++)
        if ((argv[i] = (char *)PyUnicode_AsUTF8(PyList_GET_ITEM(list, i))) == NULL)
            rc = -1;
    if (rc == GC_PARSE_OK)
        rc = gc__cli_parse(out, (int)n, argv);
    PyErr_Clear();
    free(argv);
    Py_DECREF(list);
    return rc;
}

/* Reads one key of an ini section with PasteDeploy's defaults (here, __file__);
 * returns owned UTF-8 or NULL. */
static char *ini_get(PyObject *parser, const char *section, const char *key)
{
    PyObject *v = PyObject_CallMethod(parser, "get", "ss", section, key);
    if (v == NULL) {
        PyErr_Clear();
        PyObject *kwargs = Py_BuildValue("{s:O,s:s}", "raw", Py_True, "fallback", "");
        PyObject *get = PyObject_GetAttrString(parser, "get");
        PyObject *args = Py_BuildValue("(ss)", section, key);
        if (kwargs && get && args)
            v = PyObject_Call(get, args, kwargs);
        Py_XDECREF(args);
        Py_XDECREF(get);
        Py_XDECREF(kwargs);
    }
    const char *s = v && PyUnicode_Check(v) ? PyUnicode_AsUTF8(v) : NULL;
    char *out = s && *s ? strdup(s) : NULL;
    Py_XDECREF(v);
    PyErr_Clear();
    return out;
}

/* --paste FILE[#SECTION]: the application comes from a PasteDeploy ini. As in
 * Gunicorn, default_proc_name becomes the file and logconfig the file when it has a
 * [loggers] section. Gunicorn 20+ reads [server:main] only under `pserve`; we also
 * take its host and port as the default bind (docs/configuration.md). */
static int init_paste(gc__config_t *cfg, const char *text)
{
    gc__config_err_t err;
    PyObject *os_path = PyImport_ImportModule("os.path"), *abs = NULL;
    PyObject *configparser = NULL, *parser = NULL, *res = NULL;
    int rc = -1;
    if (os_path == NULL || (abs = PyObject_CallMethod(os_path, "abspath", "s", text)) == NULL)
        goto py_fail;
    const char *uri = PyUnicode_AsUTF8(abs);
    if (uri == NULL)
        goto py_fail;
    char *file = strndup(uri, strcspn(uri, "#"));
    if (file == NULL)
        goto py_fail;
    if (!file_exists(file)) {
        fflush(stdout);
        fputs("\nError: ", stderr);
        gc__config_repr(file, stderr);
        fputs(" not found\n", stderr);
        free(file);
        goto out;
    }
    free(cfg->app_uri);
    if ((cfg->app_uri = strdup(uri)) == NULL ||
        gc__config_set_str(cfg, GC_S_default_proc_name, file, &err) < 0) {
        free(file);
        goto out;
    }
    PyObject *dir = PyObject_CallMethod(os_path, "dirname", "s", file);
    PyObject *defaults = dir ? Py_BuildValue("{s:O,s:s}", "here", dir, "__file__", file) : NULL;
    Py_XDECREF(dir);
    if (defaults == NULL || (configparser = PyImport_ImportModule("configparser")) == NULL ||
        (parser = PyObject_CallMethod(configparser, "ConfigParser", "O", defaults)) == NULL ||
        (res = PyObject_CallMethod(parser, "read", "s", file)) == NULL) {
        Py_XDECREF(defaults);
        free(file);
        goto py_fail;
    }
    Py_DECREF(defaults);
    PyObject *loggers = PyObject_CallMethod(parser, "has_section", "s", "loggers");
    if (loggers == Py_True && gc__config_set_str(cfg, GC_S_logconfig, file, &err) < 0) {
        Py_DECREF(loggers);
        free(file);
        goto out;
    }
    Py_XDECREF(loggers);
    free(file);
    char *host = ini_get(parser, "server:main", "host");
    char *port = ini_get(parser, "server:main", "port");
    if (host != NULL) {
        char bind[1024];
        if (port != NULL)
            snprintf(bind, sizeof(bind), "%s:%s", host, port);
        else
            snprintf(bind, sizeof(bind), "%s", host);
        /* Like Gunicorn's server runner: "host:port", or a comma-separated host list. */
        int brc = port != NULL ? gc__config_set_str(cfg, GC_S_bind, bind, &err) : 0;
        if (port == NULL) {
            const char *items[64];
            size_t n = 0;
            char *save = NULL;
            for (char *t = strtok_r(bind, ",", &save); t && n < 64; t = strtok_r(NULL, ",", &save))
                items[n++] = t;
            brc = gc__config_set_list(cfg, GC_S_bind, items, n, &err);
        }
        if (brc < 0) {
            free(host);
            free(port);
            print_error(err.msg);
            goto out;
        }
    }
    free(host);
    free(port);
    rc = 0;
    goto out;
py_fail:
    if (PyErr_Occurred()) {
        err_from_exception(&err);
        print_error(err.msg);
    }
out:
    Py_XDECREF(res);
    Py_XDECREF(parser);
    Py_XDECREF(configparser);
    Py_XDECREF(abs);
    Py_XDECREF(os_path);
    return rc;
}

/* Gunicorn's Application.chdir with the current chdir setting. */
static int apply_chdir(const gc__config_t *cfg)
{
    const char *dir = gc__cfg_str(cfg, GC_S_chdir);
    if (dir == NULL || gc__py_chdir(dir) == 0)
        return 0;
    gc__config_err_t err;
    err_from_exception(&err);
    print_error(err.msg);
    return -1;
}

static int apply_source(gc__config_t *cfg, const gc__cli_args_t *args)
{
    gc__config_err_t err;
    int rc = gc__cli_apply(cfg, args, &err);
    if (rc == -ENOMEM)
        snprintf(err.msg, sizeof(err.msg), "out of memory");
    if (rc < 0) {
        print_error(err.msg);
        return -1;
    }
    return 0;
}

/* The hooks and objects of the configuration in force, kept while a new one loads so
 * that a failed reload leaves them as they were. */
typedef struct {
    PyObject *hooks[GC_HOOK__COUNT];
    PyObject *objects;
} saved_t;

static void save_python_values(saved_t *saved)
{
    for (int h = 0; h < GC_HOOK__COUNT; h++)
        saved->hooks[h] = Py_XNewRef(gc__hook_get((enum gc__hook_id)h));
    saved->objects = objects; /* takes the reference */
    objects = NULL;
    gc__hooks_clear();
}

/* Puts the saved values back (restore) or drops them. */
static void end_saved(saved_t *saved, int restore)
{
    for (int h = 0; h < GC_HOOK__COUNT; h++) {
        if (restore)
            gc__hook_set((enum gc__hook_id)h, saved->hooks[h]);
        Py_CLEAR(saved->hooks[h]);
    }
    if (restore) {
        Py_XSETREF(objects, saved->objects);
        saved->objects = NULL;
    }
    Py_CLEAR(saved->objects);
}

int gc__config_load(gc__config_t *cfg, int argc, char **argv)
{
    gc__cli_args_t cli, env;
    memset(&cli, 0, sizeof(cli));
    memset(&env, 0, sizeof(env));
    int rc = -1;
    if (gc__config_init(cfg) < 0) {
        print_error("out of memory");
        return -1;
    }
    saved_t saved;
    save_python_values(&saved);
    if ((objects = PyDict_New()) == NULL)
        goto out;

    /* The command line is parsed first (a usage error costs nothing more), but applied
     * last. */
    int parsed = gc__cli_parse(&cli, argc > 0 ? argc - 1 : 0, argv + (argc > 0));
    if (parsed != GC_PARSE_OK) {
        rc = parsed < 0 ? -1 : parsed;
        goto out;
    }
    /* What the application brings (Gunicorn's WSGIApplication.init). */
    int found;
    const char *paste = gc__cli_get(&cli, GC_S_paste, &found);
    if (paste != NULL) {
        if (init_paste(cfg, paste) < 0)
            goto out;
    } else if (cli.npos > 0) {
        gc__config_err_t err;
        if ((cfg->app_uri = strdup(cli.pos[0])) == NULL ||
            gc__config_set_str(cfg, GC_S_default_proc_name, cli.pos[0], &err) < 0)
            goto out;
    }
    if (apply_chdir(cfg) < 0)
        goto out;

    parsed = parse_env_args(&env);
    if (parsed != GC_PARSE_OK) {
        rc = parsed < 0 ? -1 : parsed;
        goto out;
    }
    /* One config file: -c from the command line, else from GUNICORN_CMD_ARGS, else
     * ./gunicorn.conf.py when it exists. */
    const char *location = gc__cli_get(&cli, GC_S_config, &found);
    if (location == NULL)
        location = gc__cli_get(&env, GC_S_config, &found);
    char default_file[PATH_MAX + 32];
    if (location == NULL) {
        char cwd[PATH_MAX];
        if (getcwd(cwd, sizeof(cwd)) != NULL) {
            snprintf(default_file, sizeof(default_file), "%s/gunicorn.conf.py", cwd);
            if (file_exists(default_file))
                location = default_file;
        }
    }
    if (location != NULL && load_config_file(cfg, location) < 0)
        goto out;
    if (apply_source(cfg, &env) < 0 || apply_source(cfg, &cli) < 0)
        goto out;
    /* The directory may have changed with the sources. */
    if (apply_chdir(cfg) < 0)
        goto out;

    if (cfg->app_uri == NULL && gc__cfg_str(cfg, GC_S_wsgi_app) != NULL &&
        (cfg->app_uri = strdup(gc__cfg_str(cfg, GC_S_wsgi_app))) == NULL)
        goto out;
    if (cfg->app_uri == NULL) {
        print_error("No application module specified.");
        goto out;
    }
    if (gc__config_validate(cfg) < 0)
        goto out;
    if (gc__py_set_app_source(cfg) < 0)
        goto out;
    gc__log_set_level_name(gc__cfg_str(cfg, GC_S_loglevel));
    gc__config_warn_inactive(cfg, warn_line);
    rc = GC_PARSE_OK;
out:
    if (PyErr_Occurred())
        gc__py_print_exception();
    end_saved(&saved, rc != GC_PARSE_OK);
    gc__cli_free(&env);
    gc__cli_free(&cli);
    return rc;
}
