/* pycompat.h: one C API on every supported CPython (3.8 and later).
 *
 * The code is written against the current CPython API. For older interpreters this
 * header supplies the few functions that later versions added, under CPython's own
 * names and with CPython's documented contracts, so a call site reads the same on
 * every version and a shim is simply deleted when the oldest supported version
 * passes it. That is the one exception to "never define a name starting with Py"
 * (STYLE rule 3): these are not new names, only CPython's own, back-dated.
 *
 * This is the only file that tests PY_VERSION_HEX. Include it instead of <Python.h>
 * in a .c file that uses any function below. */
#ifndef GC_PYTHON_PYCOMPAT_H
#define GC_PYTHON_PYCOMPAT_H

#include <Python.h>

#if PY_VERSION_HEX < 0x03080000
#error "gunicorn-c needs CPython 3.8 or later (PyConfig, vectorcall)"
#endif

/* 3.9 made public what 3.8 had under private names. */
#if PY_VERSION_HEX < 0x03090000
static inline PyObject *PyObject_CallNoArgs(PyObject *callable)
{
    return _PyObject_Vectorcall(callable, NULL, 0, NULL);
}

static inline PyObject *PyObject_CallOneArg(PyObject *callable, PyObject *arg)
{
    return _PyObject_Vectorcall(callable, &arg, 1, NULL);
}

static inline PyObject *PyObject_Vectorcall(PyObject *callable, PyObject *const *args,
                                            size_t nargsf, PyObject *kwnames)
{
    return _PyObject_Vectorcall(callable, args, nargsf, kwnames);
}

/* Returns owned; NULL with an exception set. */
static inline PyObject *PyObject_CallMethodNoArgs(PyObject *obj, PyObject *name)
{
    return PyObject_CallMethodObjArgs(obj, name, NULL);
}

/* Returns owned; NULL with an exception set. */
static inline PyObject *PyObject_CallMethodOneArg(PyObject *obj, PyObject *name, PyObject *arg)
{
    return PyObject_CallMethodObjArgs(obj, name, arg, NULL);
}
#endif

/* 3.10: new strong references as expressions. */
#if PY_VERSION_HEX < 0x030A0000
static inline PyObject *Py_NewRef(PyObject *obj)
{
    Py_INCREF(obj);
    return obj;
}

static inline PyObject *Py_XNewRef(PyObject *obj)
{
    Py_XINCREF(obj);
    return obj;
}
#endif

/* 3.10 lets a C awaitable return without a StopIteration (PyAsyncMethods.am_send);
 * before it, the same step function serves tp_iternext only. */
#if PY_VERSION_HEX >= 0x030A0000
#define GC_HAVE_AM_SEND 1
#else
#define GC_HAVE_AM_SEND 0
typedef enum { PYGEN_RETURN = 0, PYGEN_ERROR = -1, PYGEN_NEXT = 1 } PySendResult;
#endif

/* 3.13 published the attribute look-up that does not raise AttributeError: 1 and
 * *result owned when found, 0 and *result NULL when absent, -1 with an exception set. */
#if PY_VERSION_HEX < 0x030D0000
static inline int PyObject_GetOptionalAttr(PyObject *obj, PyObject *name, PyObject **result)
{
    return _PyObject_LookupAttr(obj, name, result);
}
#endif

/* PyConfig.safe_path (3.11) keeps the script's or the current directory off sys.path.
 * Before 3.11 PyConfig.isolated alone did that, so there is nothing more to set. */
static inline void gc__pyconfig_set_safe_path(PyConfig *config)
{
#if PY_VERSION_HEX >= 0x030B0000
    config->safe_path = 1;
#else
    (void)config;
#endif
}

#endif /* GC_PYTHON_PYCOMPAT_H */
