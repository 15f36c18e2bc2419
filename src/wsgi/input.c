/* input.c: wsgi.input, a read-only stream over a request body that C has already
 * received in full (in memory or spooled to a file; see http/parser.h).
 *
 * The body belongs to the connection's parser, so the stream only borrows it; when the
 * request ends the worker detaches the stream, and an application that kept it (say,
 * in a saved environ) reads b"" instead of freed memory. */
#include "wsgi/wsgi.h"

#include <errno.h>
#include <structmember.h>

#include "python/pycompat.h"
#include "python/pystr.h"

struct gc__wsgi_input {
    PyObject_HEAD const gc__http_body_t *body; /* borrowed; NULL once detached */
    uint64_t pos;
    gc__wsgi_pull_fn pull; /* reads the body on first use (Expect: 100-continue) */
    void *pull_ctx;
    int pull_error; /* the pull's negative errno, or 0 */
};

/* Before the first read of a body that has not been received yet: fetch it all. */
static int ensure_body(gc__wsgi_input_t *in)
{
    if (in->pull == NULL)
        return 0;
    gc__wsgi_pull_fn pull = in->pull;
    in->pull = NULL;
    int rc = pull(in->pull_ctx);
    if (rc < 0) {
        in->body = NULL;
        in->pull_error = rc;
        errno = -rc;
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    return 0;
}

static uint64_t remaining(const gc__wsgi_input_t *in)
{
    return in->body && in->body->len > in->pos ? in->body->len - in->pos : 0;
}

/* Reads n bytes (n <= remaining) into a new bytes object. */
static PyObject *take(gc__wsgi_input_t *in, uint64_t n)
{
    if (n > (uint64_t)PY_SSIZE_T_MAX)
        return PyErr_NoMemory();
    PyObject *out = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)n);
    if (out == NULL)
        return NULL;
    char *dst = PyBytes_AS_STRING(out);
    uint64_t got = 0;
    ssize_t r = 1;
    /* A body spooled to a file is read without the GIL: other threads run meanwhile. */
    PyThreadState *ts = n > 0 && in->body->fd >= 0 ? PyEval_SaveThread() : NULL;
    while (got < n) {
        r = gc__http_body_read(in->body, in->pos + got, dst + got, (size_t)(n - got));
        if (r <= 0)
            break;
        got += (uint64_t)r;
    }
    if (ts != NULL)
        PyEval_RestoreThread(ts);
    if (got < n) {
        Py_DECREF(out);
        errno = r < 0 ? (int)-r : EIO;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    in->pos += n;
    return out;
}

/* Accepts None or an int; negative or None means "no limit". */
static int size_arg(PyObject *arg, int64_t *out)
{
    *out = -1;
    if (arg == NULL || arg == Py_None)
        return 0;
    long long v = PyLong_AsLongLong(arg);
    if (v == -1 && PyErr_Occurred())
        return -1;
    *out = v;
    return 0;
}

static PyObject *input_read(gc__wsgi_input_t *in, PyObject *const *args, Py_ssize_t nargs)
{
    if (ensure_body(in) < 0)
        return NULL;
    int64_t size;
    if (nargs > 1)
        return PyErr_Format(PyExc_TypeError, "read() takes at most 1 argument");
    if (size_arg(nargs ? args[0] : NULL, &size) < 0)
        return NULL;
    uint64_t n = remaining(in);
    if (size >= 0 && (uint64_t)size < n)
        n = (uint64_t)size;
    return take(in, n);
}

/* Finds how many bytes up to and including the next newline, within `limit`. */
static int64_t line_length(gc__wsgi_input_t *in, uint64_t limit)
{
    char block[8192];
    uint64_t seen = 0;
    while (seen < limit) {
        size_t want = limit - seen < sizeof(block) ? (size_t)(limit - seen) : sizeof(block);
        ssize_t r = gc__http_body_read(in->body, in->pos + seen, block, want);
        if (r < 0) {
            errno = (int)-r;
            PyErr_SetFromErrno(PyExc_OSError);
            return -1;
        }
        if (r == 0)
            break;
        const char *nl = memchr(block, '\n', (size_t)r);
        if (nl)
            return (int64_t)(seen + (uint64_t)(nl - block) + 1);
        seen += (uint64_t)r;
    }
    return (int64_t)seen;
}

static PyObject *readline_impl(gc__wsgi_input_t *in, int64_t size)
{
    uint64_t limit = remaining(in);
    if (size >= 0 && (uint64_t)size < limit)
        limit = (uint64_t)size;
    if (limit == 0)
        return PyBytes_FromStringAndSize("", 0);
    int64_t n = line_length(in, limit);
    if (n < 0)
        return NULL;
    return take(in, (uint64_t)n);
}

static PyObject *input_readline(gc__wsgi_input_t *in, PyObject *const *args, Py_ssize_t nargs)
{
    if (ensure_body(in) < 0)
        return NULL;
    int64_t size;
    if (nargs > 1)
        return PyErr_Format(PyExc_TypeError, "readline() takes at most 1 argument");
    if (size_arg(nargs ? args[0] : NULL, &size) < 0)
        return NULL;
    return readline_impl(in, size);
}

static PyObject *input_readlines(gc__wsgi_input_t *in, PyObject *const *args, Py_ssize_t nargs)
{
    if (ensure_body(in) < 0)
        return NULL;
    int64_t hint;
    if (nargs > 1)
        return PyErr_Format(PyExc_TypeError, "readlines() takes at most 1 argument");
    if (size_arg(nargs ? args[0] : NULL, &hint) < 0)
        return NULL;
    PyObject *lines = PyList_New(0);
    if (lines == NULL)
        return NULL;
    int64_t total = 0;
    while (remaining(in) > 0) {
        PyObject *line = readline_impl(in, -1);
        if (line == NULL || PyList_Append(lines, line) < 0) {
            Py_XDECREF(line);
            Py_DECREF(lines);
            return NULL;
        }
        total += PyBytes_GET_SIZE(line);
        Py_DECREF(line);
        if (hint > 0 && total >= hint)
            break;
    }
    return lines;
}

static PyObject *input_iternext(gc__wsgi_input_t *in)
{
    if (ensure_body(in) < 0)
        return NULL;
    if (remaining(in) == 0)
        return NULL; /* StopIteration */
    return readline_impl(in, -1);
}

static PyMethodDef input_methods[] = {
    {"read", (PyCFunction)(void (*)(void))input_read, METH_FASTCALL, "read([size]) -> bytes"},
    {"readline", (PyCFunction)(void (*)(void))input_readline, METH_FASTCALL,
     "readline([size]) -> bytes"},
    {"readlines", (PyCFunction)(void (*)(void))input_readlines, METH_FASTCALL,
     "readlines([hint]) -> list of bytes"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject input_type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "gunicorn_c.Input",
    .tp_basicsize = sizeof(gc__wsgi_input_t),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "wsgi.input: the request body, received in full before the app runs.",
    .tp_iter = PyObject_SelfIter,
    .tp_iternext = (iternextfunc)input_iternext,
    .tp_methods = input_methods,
};

PyObject *gc__wsgi_input_new(const gc__http_body_t *body, gc__wsgi_pull_fn pull, void *ctx)
{
    gc__wsgi_input_t *in = PyObject_New(gc__wsgi_input_t, &input_type);
    if (in == NULL)
        return NULL;
    in->body = body;
    in->pos = 0;
    in->pull = pull;
    in->pull_ctx = ctx;
    in->pull_error = 0;
    return (PyObject *)in;
}

int gc__wsgi_input_error(PyObject *input)
{
    return ((gc__wsgi_input_t *)input)->pull_error;
}

void gc__wsgi_input_detach(PyObject *input)
{
    ((gc__wsgi_input_t *)input)->body = NULL;
    ((gc__wsgi_input_t *)input)->pull = NULL;
}

/* --- wsgi.file_wrapper ------------------------------------------------------------ */

/* The wrapper owns its file-like object, which may refer back to the wrapper (an
 * object that keeps the response it is read by): the type takes part in Python's
 * cycle collector, or such a cycle would never be freed. */
typedef struct {
    PyObject_HEAD PyObject *filelike; /* owned */
    Py_ssize_t blksize;
} filewrapper_t;

static int fw_init(filewrapper_t *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"filelike", "blksize", NULL};
    PyObject *filelike;
    Py_ssize_t blksize = 8192;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O|n", kwlist, &filelike, &blksize))
        return -1;
    Py_INCREF(filelike);
    Py_XSETREF(self->filelike, filelike);
    self->blksize = blksize > 0 ? blksize : 8192;
    return 0;
}

static int fw_traverse(filewrapper_t *self, visitproc visit, void *arg)
{
    Py_VISIT(self->filelike);
    return 0;
}

static int fw_clear(filewrapper_t *self)
{
    Py_CLEAR(self->filelike);
    return 0;
}

static void fw_dealloc(filewrapper_t *self)
{
    PyObject_GC_UnTrack(self);
    fw_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* The next block of read(blksize); an empty one ends the iteration. A block whose
 * length cannot be had is an error the response reports (a 500 if nothing was sent
 * yet), not the silent end of a body cut short. */
static PyObject *fw_iternext(filewrapper_t *self)
{
    if (self->filelike == NULL)
        return NULL;
    PyObject *size = PyLong_FromSsize_t(self->blksize);
    PyObject *data = size ? PyObject_CallMethodOneArg(self->filelike, GC_STR(read), size) : NULL;
    Py_XDECREF(size);
    if (data == NULL)
        return NULL;
    Py_ssize_t len = PyObject_Length(data);
    if (len <= 0) {
        Py_DECREF(data);
        return NULL; /* len < 0: the exception is set */
    }
    return data;
}

static PyObject *fw_close(filewrapper_t *self, PyObject *unused)
{
    if (self->filelike != NULL && PyObject_HasAttr(self->filelike, GC_STR(close)))
        return PyObject_CallMethodNoArgs(self->filelike, GC_STR(close));
    Py_RETURN_NONE;
}

static PyMethodDef fw_methods[] = {
    {"close", (PyCFunction)fw_close, METH_NOARGS, "Close the wrapped file."},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef fw_members[] = {
    {"filelike", T_OBJECT, offsetof(filewrapper_t, filelike), READONLY, NULL},
    {"blksize", T_PYSSIZET, offsetof(filewrapper_t, blksize), READONLY, NULL},
    {NULL, 0, 0, 0, NULL},
};

PyTypeObject gc__wsgi_filewrapper_type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "gunicorn_c.FileWrapper",
    .tp_basicsize = sizeof(filewrapper_t),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "wsgi.file_wrapper: sent with sendfile(2) when it wraps a real file.",
    .tp_init = (initproc)fw_init,
    .tp_new = PyType_GenericNew,
    .tp_dealloc = (destructor)fw_dealloc,
    .tp_free = PyObject_GC_Del,
    .tp_traverse = (traverseproc)fw_traverse,
    .tp_clear = (inquiry)fw_clear,
    .tp_iter = PyObject_SelfIter,
    .tp_iternext = (iternextfunc)fw_iternext,
    .tp_methods = fw_methods,
    .tp_members = fw_members,
};

int gc__wsgi_filewrapper_fd(PyObject *wrapper, gc__wsgi_state_t *st)
{
    filewrapper_t *fw = (filewrapper_t *)wrapper;
    if (fw->filelike == NULL || !PyObject_HasAttr(fw->filelike, GC_STR(fileno)))
        return -1;
    PyObject *r = PyObject_CallMethodNoArgs(fw->filelike, GC_STR(fileno));
    if (r == NULL) {
        PyErr_Clear(); /* io.BytesIO raises UnsupportedOperation: iterate instead */
        return -1;
    }
    long fd = PyLong_AsLong(r);
    Py_DECREF(r);
    if (fd < 0) {
        PyErr_Clear();
        return -1;
    }
    return (int)fd;
}

int gc__wsgi_types_ready(void)
{
    if (PyType_Ready(&input_type) < 0 || PyType_Ready(&gc__wsgi_filewrapper_type) < 0)
        return -1;
    return 0;
}
