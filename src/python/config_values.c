/* config_values.c: a config module's names applied to the settings (see
 * config_values.h).
 *
 * Each Python value is turned into what the C setters take, with the messages
 * Gunicorn's validators give (a bad value prints "Invalid value for workers: abc" and
 * then "Error: <why>"). What only Python can hold is kept on this side: hook callables
 * go to the hook registry, dicts and other callables to the loader's dict of objects.
 * Module-level names that are not settings but look meant as one are warned about. */
#include "python/config_values.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "log/log.h"
#include "python/hooks.h"
#include "python/interp.h"
#include "python/pycompat.h"
#include "python/runtime.h"

void gc__pyconfig_error(const char *msg)
{
    fflush(stdout);
    fprintf(stderr, "\nError: %s\n", msg);
    fflush(stderr);
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

int gc__pyconfig_err_from_exception(gc__config_err_t *err)
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
        gc__pyconfig_err_from_exception(err);
    } else if ((obj = PyObject_GetAttrString(mod, dot + 1)) == NULL) {
        PyErr_Clear();
        snprintf(err->msg, sizeof(err->msg), "Can not load '%s' from '%s'", dot + 1, module);
    }
    Py_XDECREF(mod);
    free(module);
    return obj;
}

/* Gunicorn's validate_callable(arity) (and validate_post_request), then stores the
 * callable: server hooks in the registry, others in `objects`. */
static int apply_callable(gc__config_t *cfg, int id, PyObject *val, PyObject *objects,
                          gc__config_err_t *err)
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
        gc__pyconfig_err_from_exception(err);
        goto out;
    }
    if (want == -1) { /* post_request */
        if (got < 2 || got > 4) {
            snprintf(err->msg, sizeof(err->msg), "Value must have an arity of: 4");
            goto out;
        }
        /* post_request may take (worker, req), (worker, req, environ) or all four
         * arguments; the registry always holds one that takes four, as Gunicorn's
         * validator arranges. */
        stored = got == 4 ? Py_NewRef(f) : gc__rt_wrap_post_request(f, got);
        if (stored == NULL) {
            gc__pyconfig_err_from_exception(err);
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
        gc__pyconfig_err_from_exception(err);
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
        return gc__pyconfig_err_from_exception(err);
    return gc__config_set_str(cfg, id, s, err);
}

/* worker_class and logger_class may be classes (or functions returning one). */
static int apply_class(gc__config_t *cfg, int id, PyObject *val, gc__config_err_t *err)
{
    PyObject *v = Py_NewRef(val);
    if (PyFunction_Check(v) || PyMethod_Check(v)) {
        Py_SETREF(v, PyObject_CallNoArgs(v));
        if (v == NULL)
            return gc__pyconfig_err_from_exception(err);
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
        return gc__pyconfig_err_from_exception(err);
    long v = PyLong_AsLong(n);
    Py_DECREF(n);
    if (v == -1 && PyErr_Occurred())
        return gc__pyconfig_err_from_exception(err);
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
        return gc__pyconfig_err_from_exception(err);
    if (!truth)
        return gc__config_set_list(cfg, id, NULL, 0, err);
    if (PyUnicode_Check(val))
        return apply_str(cfg, id, val, err);
    PyObject *seq = PySequence_Fast(val, "Value is not a list of strings");
    if (seq == NULL)
        return gc__pyconfig_err_from_exception(err);
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    const char **items = calloc((size_t)n + 1, sizeof(*items));
    int rc = items ? 0 : -ENOMEM;
    for (Py_ssize_t i = 0; rc == 0 && i < n; i++) {
        PyObject *item = PySequence_Fast_GET_ITEM(seq, i); /* borrowed */
        if (!PyUnicode_Check(item))
            rc = err_set(err, "Not a string: %s", item);
        else if ((items[i] = PyUnicode_AsUTF8(item)) == NULL)
            rc = gc__pyconfig_err_from_exception(err);
    }
    if (rc == 0)
        rc = gc__config_set_list(cfg, id, items, (size_t)n, err);
    free(items);
    Py_DECREF(seq);
    return rc;
}

static int apply_dict(gc__config_t *cfg, int id, PyObject *val, PyObject *objects,
                      gc__config_err_t *err)
{
    if (!PyDict_Check(val))
        return err_set(err, "Value is not a dictionary: %s ", val);
    PyObject *r = PyObject_Repr(val);
    const char *s = r ? PyUnicode_AsUTF8(r) : NULL;
    int rc = s ? gc__config_set_repr(cfg, id, s) : gc__pyconfig_err_from_exception(err);
    Py_XDECREF(r);
    if (rc == 0 && PyDict_SetItemString(objects, gc__setting_info(id)->name, val) < 0)
        rc = gc__pyconfig_err_from_exception(err);
    return rc;
}

/* Applies one config-file value. Returns 0, -EINVAL (err filled in) or -ENOMEM. */
static int apply_value(gc__config_t *cfg, int id, PyObject *val, PyObject *objects,
                       gc__config_err_t *err)
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
        return apply_dict(cfg, id, val, objects, err);
    case GC_T_CALLABLE:
        return apply_callable(cfg, id, val, objects, err);
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

int gc__pyconfig_apply_module(gc__config_t *cfg, PyObject *dict, const char *module_name,
                              PyObject *objects)
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
        int arc = apply_value(cfg, id, val, objects, &err);
        if (arc == -ENOMEM)
            snprintf(err.msg, sizeof(err.msg), "out of memory");
        if (arc < 0) {
            char *shown = str_of(val);
            fflush(stdout);
            fprintf(stderr, "Invalid value for %s: %s\n\n", name, shown ? shown : "?");
            free(shown);
            gc__pyconfig_error(err.msg);
            rc = -1;
        }
    }
    Py_DECREF(items);
    return rc;
}
