/* wsgi.c: calling the application and streaming its response (see wsgi.h).
 *
 * The response object is start_response itself (its tp_call) and carries write() as a
 * method, so one small allocation per request serves both. Headers are validated when
 * start_response is called, so a bad header raises inside the application, where its
 * traceback makes sense, and becomes a 500; a CR or LF can never reach the wire.
 * start_response also keeps a reference to each header tuple it checked, and the head
 * is built from those, never from the list again: the application may still append to
 * its list, replace items or empty it, and (as with Gunicorn, which copies the list)
 * nothing sent changes; tuples and strs are immutable, so what was checked is exactly
 * what goes out.
 *
 * Framing is decided when the head goes out: the application's Content-Length if it
 * gave one; else, when the whole body is already known (a one-item list, or nothing),
 * the server adds Content-Length itself; else chunked on HTTP/1.1, or close-delimited
 * on HTTP/1.0. */
#include "wsgi/wsgi.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/clock.h"
#include "http/response.h"
#include "log/log.h"
#include "log/statsd.h"
#include "python/interp.h"
#include "python/pycompat.h"
#include "python/pystr.h"
#include "python/runtime.h"
#include "wsgi/access.h"
#include "wsgi/environ.h"

/* Header tuples a response keeps without allocating; more go to PyMem_Malloc. */
#define INLINE_HEADERS 16

typedef struct {
    PyObject_HEAD gc__wsgi_state_t *st;
    gc__sink_t *sink;  /* borrowed; NULL once the request is over */
    gc__buf_t *head;   /* borrowed from the caller: where the head is built */
    PyObject *status;  /* owned str, NULL until start_response */
    PyObject *headers; /* owned: the application's list, which it may still change */
    /* What start_response validated: owned references to (str, str) tuples, in
     * `inline_items` or in a PyMem block. The head is built from these only. */
    PyObject **items;
    Py_ssize_t nitems;
    PyObject *inline_items[INLINE_HEADERS];
    int code;
    int64_t app_length; /* the application's Content-Length, or -1 */
    int headers_sent;
    int head_request;
    const int *body_pending; /* the request body is still unread (Expect: 100-continue) */
    int minor;
    int major;
    int keep_alive;
    int chunked;
    int close_delimited; /* the request forbids chunking (uwsgi) */
    uint64_t body_sent;
    int warned_no_body;
    PyObject *trailers; /* owned: what gunicorn.http2.send_trailers was given, or NULL */
    /* gunicorn.socket: the connection's descriptor (-1: none offered) and family; the
     * socket object gets a duplicate of it. `taken`: the application has used the
     * socket, the connection is its own, and nothing more is written here. */
    int sock_fd;
    int sock_family;
    int taken;
} response_t;

static PyTypeObject response_type;

/* --- start_response --------------------------------------------------------------- */

static int latin1_view(PyObject *s, gc__view_t *out)
{
    if (!PyUnicode_Check(s) || PyUnicode_KIND(s) != PyUnicode_1BYTE_KIND)
        return -1;
    *out = gc__view((const char *)PyUnicode_1BYTE_DATA(s), (size_t)PyUnicode_GET_LENGTH(s));
    return 0;
}

/* Checks status and headers; gives the status code and the Content-Length (-1 when
 * there is none). Runs no Python code, so the list cannot change under it. */
static int validate(PyObject *status, PyObject *headers, int *code, int64_t *app_length)
{
    gc__view_t v;
    if (!PyUnicode_Check(status)) {
        PyErr_Format(PyExc_TypeError, "status must be a str, not %.100s", Py_TYPE(status)->tp_name);
        return -1;
    }
    if (latin1_view(status, &v) < 0 || !gc__http_parse_status(v, code)) {
        PyErr_Format(PyExc_ValueError, "invalid status %R", status);
        return -1;
    }
    if (!PyList_Check(headers)) {
        PyErr_Format(PyExc_TypeError, "headers must be a list, not %.100s",
                     Py_TYPE(headers)->tp_name);
        return -1;
    }
    *app_length = -1;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(headers); i++) {
        PyObject *item = PyList_GET_ITEM(headers, i);
        if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) != 2) {
            PyErr_Format(PyExc_TypeError, "header must be a (name, value) tuple, not %R", item);
            return -1;
        }
        PyObject *name = PyTuple_GET_ITEM(item, 0), *value = PyTuple_GET_ITEM(item, 1);
        if (!PyUnicode_Check(name) || !PyUnicode_Check(value)) {
            PyErr_Format(PyExc_TypeError, "header name and value must be str: %R", item);
            return -1;
        }
        gc__view_t nv, vv;
        if (latin1_view(name, &nv) < 0 || !gc__http_is_token(nv)) {
            PyErr_Format(PyExc_ValueError, "invalid header name %R", name);
            return -1;
        }
        if (latin1_view(value, &vv) < 0 || !gc__http_is_field_value(vv)) {
            PyErr_Format(PyExc_ValueError, "invalid header value %R", value);
            return -1;
        }
        if (gc__view_ieq(nv, "content-length")) {
            int64_t n = 0;
            int ok = vv.len > 0 && vv.len <= 18;
            for (size_t j = 0; ok && j < vv.len; j++) {
                ok = vv.base[j] >= '0' && vv.base[j] <= '9';
                n = n * 10 + (vv.base[j] - '0');
            }
            if (!ok) {
                PyErr_Format(PyExc_ValueError, "invalid Content-Length %R", value);
                return -1;
            }
            *app_length = n;
        }
    }
    return 0;
}

/* Keeps a reference to every item of `headers`, a list that validate() accepted, in
 * place of those kept before (a second call, with exc_info). The old ones are released
 * last: a tuple subclass's __del__ may run then, and must find the response
 * consistent. Returns 0, or -1 with an exception set (the old items are kept). */
static int keep_items(response_t *r, PyObject *headers)
{
    Py_ssize_t n = PyList_GET_SIZE(headers), nold = r->nitems;
    PyObject *spill[INLINE_HEADERS], **old = r->items;
    PyObject **items = r->inline_items;
    if (n > INLINE_HEADERS && (items = PyMem_Malloc((size_t)n * sizeof(*items))) == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    if (old == r->inline_items && nold > 0) {
        memcpy(spill, old, (size_t)nold * sizeof(*old)); /* the new items may go there */
        old = spill;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        items[i] = PyList_GET_ITEM(headers, i);
        Py_INCREF(items[i]);
    }
    r->items = items;
    r->nitems = n;
    for (Py_ssize_t i = 0; i < nold; i++)
        Py_DECREF(old[i]);
    if (old != spill && old != r->inline_items)
        PyMem_Free(old);
    return 0;
}

/* The headers as a list for the access log and post_request: the application's own
 * list while it still holds just what was sent, else a new one with what was sent.
 * Returns owned, or NULL (with no exception) when there is none. */
static PyObject *sent_headers(response_t *r)
{
    if (r->headers == NULL)
        return NULL;
    Py_ssize_t n = r->nitems;
    int same = PyList_GET_SIZE(r->headers) == n;
    for (Py_ssize_t i = 0; same && i < n; i++)
        same = PyList_GET_ITEM(r->headers, i) == r->items[i];
    if (same) {
        Py_INCREF(r->headers);
        return r->headers;
    }
    PyObject *list = PyList_New(n);
    if (list == NULL) {
        PyErr_Clear();
        return NULL;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_INCREF(r->items[i]);
        PyList_SET_ITEM(list, i, r->items[i]); /* steals the new reference */
    }
    return list;
}

static PyObject *start_response(response_t *r, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"status", "headers", "exc_info", NULL};
    PyObject *status, *headers, *exc_info = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OO|O:start_response", kwlist, &status, &headers,
                                     &exc_info))
        return NULL;
    if (exc_info != Py_None) {
        if (r->headers_sent) {
            /* PEP 3333: too late to change the response; re-raise the app's error. */
            if (!PyTuple_Check(exc_info) || PyTuple_GET_SIZE(exc_info) != 3) {
                PyErr_SetString(PyExc_TypeError, "exc_info must be a 3-tuple");
                return NULL;
            }
            PyObject *t = PyTuple_GET_ITEM(exc_info, 0), *v = PyTuple_GET_ITEM(exc_info, 1),
                     *tb = PyTuple_GET_ITEM(exc_info, 2);
            if (tb == Py_None)
                tb = NULL;
            Py_INCREF(t);
            Py_INCREF(v);
            Py_XINCREF(tb);
            PyErr_Restore(t, v, tb);
            return NULL;
        }
    } else if (r->status != NULL) {
        PyErr_SetString(PyExc_AssertionError, "Response headers already set!");
        return NULL;
    }
    int code;
    int64_t app_length;
    if (validate(status, headers, &code, &app_length) < 0 || keep_items(r, headers) < 0)
        return NULL;
    r->code = code;
    r->app_length = app_length;
    Py_INCREF(status);
    Py_XSETREF(r->status, status);
    Py_INCREF(headers);
    Py_XSETREF(r->headers, headers);
    return PyObject_GetAttr((PyObject *)r, GC_STR(write));
}

/* --- sending ---------------------------------------------------------------------- */

static int body_allowed(const response_t *r)
{
    return !r->head_request && gc__http_status_has_body(r->code);
}

/* Appends the head to st->head. `known_length` >= 0 when the whole body is known. */
static int build_head(response_t *r, int64_t known_length)
{
    gc__http_header_t stackh[32], *hs = stackh;
    Py_ssize_t n = r->nitems;
    if (n > 32 && (hs = PyMem_Malloc((size_t)n * sizeof(*hs))) == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    size_t kept = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        /* Validated (str, str) tuples of latin-1 text (see keep_items). */
        PyObject *item = r->items[i];
        gc__http_header_t h;
        latin1_view(PyTuple_GET_ITEM(item, 0), &h.name);
        latin1_view(PyTuple_GET_ITEM(item, 1), &h.value);
        if (!gc__http_is_hop_by_hop(h.name))
            hs[kept++] = h;
    }
    gc__http_head_t head = {
        .minor = r->minor,
        .headers = hs,
        .nheaders = kept,
        .add_length = -1,
    };
    latin1_view(r->status, &head.status);
    if (r->app_length < 0 && body_allowed(r)) {
        if (known_length >= 0)
            head.add_length = known_length;
        else if (r->minor >= 1 && !r->close_delimited)
            r->chunked = head.chunked = 1;
        else
            r->keep_alive = 0; /* HTTP/1.0 without a length: the close ends the body */
    }
    /* A body the client still holds back (no 100 Continue was sent) would have to be
     * read or skipped before another request: close instead. */
    if (r->body_pending && *r->body_pending)
        r->keep_alive = 0;
    head.connection = r->keep_alive ? GC_CONN_KEEP_ALIVE : GC_CONN_CLOSE;
    gc__buf_reset(r->head);
    int rc = gc__http_write_head(r->head, &head);
    if (hs != stackh)
        PyMem_Free(hs);
    if (rc < 0) {
        PyErr_NoMemory();
        return -1;
    }
    r->headers_sent = 1;
    return 0;
}

/* Sends a piece of body (and the head first, if it has not gone yet). `last` says this
 * piece is the whole body. Returns 0, or -1 with an exception set. */
static int send_body(response_t *r, const char *data, size_t len, int last)
{
    if (r->sink == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "write() called after the response ended");
        return -1;
    }
    if (r->taken)
        return 0; /* the application owns the connection: the response is its own */
    if (r->status == NULL) {
        PyErr_SetString(PyExc_AssertionError, "write() before start_response()");
        return -1;
    }
    struct iovec iov[4];
    int n = 0;
    if (!r->headers_sent) {
        if (build_head(r, last ? (int64_t)len : -1) < 0)
            return -1;
        iov[n++] = (struct iovec){r->head->data, r->head->len};
    }
    if (!body_allowed(r)) {
        if (len > 0 && !r->warned_no_body && !r->head_request) {
            gc__warning("WSGI app sent body bytes on a no-body response (status=%d); "
                        "dropping them",
                        r->code);
            r->warned_no_body = 1;
        }
        len = 0;
    }
    if (r->app_length >= 0 && (uint64_t)len > (uint64_t)r->app_length - r->body_sent)
        len = (size_t)((uint64_t)r->app_length - r->body_sent); /* never more than promised */
    char prefix[24];
    if (len > 0) {
        if (r->chunked) {
            iov[n++] = (struct iovec){prefix, gc__http_chunk_prefix(prefix, len)};
            iov[n++] = (struct iovec){(void *)data, len};
            iov[n++] = (struct iovec){"\r\n", 2};
        } else {
            iov[n++] = (struct iovec){(void *)data, len};
        }
    }
    if (n == 0)
        return 0;
    int rc = gc__sink_writev(r->sink, iov, n);
    if (rc < 0) {
        errno = -rc;
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    r->body_sent += len;
    return 0;
}

static PyObject *response_write(response_t *r, PyObject *data)
{
    Py_buffer view;
    if (!PyBytes_Check(data) && !PyByteArray_Check(data)) {
        PyErr_Format(PyExc_TypeError, "write() argument must be bytes, not %.100s",
                     Py_TYPE(data)->tp_name);
        return NULL;
    }
    if (PyObject_GetBuffer(data, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    int rc = send_body(r, view.buf, (size_t)view.len, 0);
    PyBuffer_Release(&view);
    if (rc < 0)
        return NULL;
    Py_RETURN_NONE;
}

/* Ends the body: sends the head if nothing was written, and the last chunk. */
static int finish(response_t *r)
{
    if (r->taken)
        return 0;
    if (!r->headers_sent && send_body(r, "", 0, 1) < 0)
        return -1;
    if (r->chunked) {
        int rc = gc__sink_write(r->sink, "0\r\n\r\n", 5);
        if (rc < 0) {
            errno = -rc;
            PyErr_SetFromErrno(PyExc_OSError);
            return -1;
        }
    }
    /* A body shorter than its Content-Length leaves the client waiting for bytes that
     * will never come: closing the connection tells it the truth. */
    if (r->app_length >= 0 && body_allowed(r) && r->body_sent < (uint64_t)r->app_length) {
        gc__debug("Response body shorter than its Content-Length (%llu < %lld); closing",
                  (unsigned long long)r->body_sent, (long long)r->app_length);
        r->keep_alive = 0;
    }
    return 0;
}

/* Sends a FileWrapper over a real file with sendfile(2). Returns 1 if it did, 0 if the
 * object must be iterated instead, -1 on error. A head that went out chunked (the
 * application called write() first) means iterating; a head sent here has a length
 * (the file's), never chunked framing. */
static int try_sendfile(response_t *r, PyObject *result)
{
    /* Without start_response there is no head to send: iterating reports the error. */
    if (!r->st->sendfile || Py_TYPE(result) != &gc__wsgi_filewrapper_type || r->chunked ||
        r->status == NULL)
        return 0;
    int fd = gc__wsgi_filewrapper_fd(result, r->st);
    if (fd < 0)
        return 0;
    struct stat st;
    off_t pos = lseek(fd, 0, SEEK_CUR);
    if (pos < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
        return 0;
    uint64_t count = st.st_size > pos ? (uint64_t)(st.st_size - pos) : 0;
    if (r->app_length >= 0 && (uint64_t)r->app_length < count)
        count = (uint64_t)r->app_length;
    if (!r->headers_sent) {
        if (build_head(r, (int64_t)count) < 0)
            return -1;
        if (gc__sink_write(r->sink, r->head->data, r->head->len) < 0)
            goto io_error;
    }
    if (body_allowed(r) && count > 0) {
        if (gc__sink_sendfile(r->sink, fd, pos, count) < 0)
            goto io_error;
        r->body_sent += count;
    }
    return 1;
io_error:
    errno = -r->sink->error;
    PyErr_SetFromErrno(PyExc_OSError);
    return -1;
}

/* Streams the application's iterable. Returns 0, or -1 with an exception set. */
static int send_result(response_t *r, PyObject *result)
{
    if (r->taken)
        return 0; /* the application answered on gunicorn.socket itself */
    /* A list or tuple is walked directly; a one-item one is the whole body. */
    if (PyList_CheckExact(result) || PyTuple_CheckExact(result)) {
        Py_ssize_t n = PySequence_Fast_GET_SIZE(result);
        for (Py_ssize_t i = 0; i < n; i++) {
            PyObject *item = PySequence_Fast_GET_ITEM(result, i);
            if (!PyBytes_Check(item)) {
                PyErr_Format(PyExc_TypeError, "response body items must be bytes, not %.100s",
                             Py_TYPE(item)->tp_name);
                return -1;
            }
            if (r->status == NULL) {
                PyErr_SetString(PyExc_AssertionError, "start_response() was not called");
                return -1;
            }
            if (send_body(r, PyBytes_AS_STRING(item), (size_t)PyBytes_GET_SIZE(item),
                          n == 1 && !r->headers_sent) < 0)
                return -1;
        }
        return finish(r);
    }
    int sent = try_sendfile(r, result);
    if (sent != 0)
        return sent < 0 ? -1 : finish(r);
    PyObject *it = PyObject_GetIter(result);
    if (it == NULL)
        return -1;
    PyObject *item;
    while (!r->taken && (item = PyIter_Next(it)) != NULL) {
        if (!PyBytes_Check(item)) {
            PyErr_Format(PyExc_TypeError, "response body items must be bytes, not %.100s",
                         Py_TYPE(item)->tp_name);
            Py_DECREF(item);
            break;
        }
        /* Empty items are skipped, but an empty first item still lets the application
         * call start_response late, as a generator does (PEP 3333). */
        int rc = 0;
        if (PyBytes_GET_SIZE(item) > 0 || r->status == NULL) {
            if (r->status == NULL) {
                PyErr_SetString(PyExc_AssertionError, "start_response() was not called");
                rc = -1;
            } else {
                rc = send_body(r, PyBytes_AS_STRING(item), (size_t)PyBytes_GET_SIZE(item), 0);
            }
        }
        Py_DECREF(item);
        if (rc < 0)
            break;
    }
    Py_DECREF(it);
    if (PyErr_Occurred())
        return -1;
    if (r->taken)
        return 0;
    if (r->status == NULL) {
        PyErr_SetString(PyExc_AssertionError, "start_response() was not called");
        return -1;
    }
    return finish(r);
}

/* Calls result.close() if it has one (PEP 3333: always, even after an error). */
static int close_result(gc__wsgi_state_t *st, PyObject *result)
{
    if (PyList_CheckExact(result) || PyTuple_CheckExact(result) || PyBytes_CheckExact(result))
        return 0;
    PyObject *meth;
    if (PyObject_GetOptionalAttr(result, GC_STR(close), &meth) < 0)
        return -1;
    if (meth == NULL)
        return 0;
    PyObject *r = PyObject_CallNoArgs(meth);
    Py_DECREF(meth);
    if (r == NULL)
        return -1;
    Py_DECREF(r);
    return 0;
}

/* Writes our error page; returns the length of its body. */
static uint64_t write_error_response(gc__sink_t *sink, int status)
{
    gc__buf_t out;
    gc__buf_init(&out);
    uint64_t body = 0;
    if (gc__http_write_error(&out, status, "") == 0) {
        gc__sink_write(sink, out.data, out.len);
        const char *end = memmem(out.data, out.len, "\r\n\r\n", 4);
        body = end ? (uint64_t)(out.data + out.len - (end + 4)) : 0;
    }
    gc__buf_free(&out);
    return body;
}

static void pass_trailers(response_t *r, const gc__wsgi_peer_t *peer);

/* gunicorn.socket for one request: an object of runtime.py's Unopened class, which
 * asks `r` for a descriptor only when the application looks at it. Returns a new
 * reference, or NULL with an exception set. */
static PyObject *socket_new(gc__wsgi_state_t *st, response_t *r)
{
    if (st->socket_unopened == NULL) {
        PyObject *fn = gc__rt_function("socket_classes");
        PyObject *got = fn ? PyObject_CallNoArgs(fn) : NULL;
        Py_XDECREF(fn);
        if (got == NULL)
            return NULL;
        if (!PyTuple_Check(got) || PyTuple_GET_SIZE(got) != 3 ||
            !PyType_Check(PyTuple_GET_ITEM(got, 0)) || !PyType_Check(PyTuple_GET_ITEM(got, 1))) {
            Py_DECREF(got);
            PyErr_SetString(PyExc_TypeError,
                            "socket_classes() must return two classes and a function");
            return NULL;
        }
        st->socket_unopened = Py_NewRef(PyTuple_GET_ITEM(got, 0));
        st->socket_opened = Py_NewRef(PyTuple_GET_ITEM(got, 1));
        st->socket_release = Py_NewRef(PyTuple_GET_ITEM(got, 2));
        Py_DECREF(got);
    }
    PyTypeObject *type = (PyTypeObject *)st->socket_unopened;
    PyObject *args = PyTuple_New(0);
    PyObject *sock = args ? type->tp_new(type, args, NULL) : NULL;
    Py_XDECREF(args);
    if (sock != NULL && PyObject_SetAttr(sock, GC_STR(_gc_response), (PyObject *)r) < 0)
        Py_CLEAR(sock);
    return sock;
}

/* The request is over: a socket the application opened but did not take is closed
 * (its descriptor is a duplicate; the connection goes on). */
static void socket_done(gc__wsgi_state_t *st, PyObject *sock)
{
    if ((PyObject *)Py_TYPE(sock) == st->socket_opened) {
        PyObject *rv = PyObject_CallOneArg(st->socket_release, sock);
        if (rv == NULL)
            gc__py_log_exception(GC_LOG_DEBUG, "Closing gunicorn.socket");
        Py_XDECREF(rv);
        PyErr_Clear();
    }
    Py_DECREF(sock);
}

/* gunicorn.socket's first look: a duplicate of the connection's descriptor, and its
 * family. (The object closes it, or the application does.) */
static PyObject *response_gc_dup(response_t *r, PyObject *unused)
{
    (void)unused;
    if (r->sink == NULL || r->sock_fd < 0) {
        errno = EBADF;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    int fd = fcntl(r->sock_fd, F_DUPFD_CLOEXEC, 0);
    if (fd < 0)
        return PyErr_SetFromErrno(PyExc_OSError);
    PyObject *out = Py_BuildValue("(ii)", fd, r->sock_family);
    if (out == NULL)
        close(fd);
    return out;
}

/* The application moves bytes on gunicorn.socket: what the sink still holds goes out
 * first, and from now on the connection is the application's. */
static PyObject *response_gc_take(response_t *r, PyObject *unused)
{
    (void)unused;
    if (r->sink == NULL) {
        errno = EBADF;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    if (!r->taken) {
        r->taken = 1;
        gc__sink_flush(r->sink); /* a client gone shows on the application's socket */
    }
    Py_RETURN_NONE;
}

enum gc__wsgi_outcome gc__wsgi_handle(gc__wsgi_state_t *st, gc__http_request_t *req,
                                      const gc__wsgi_peer_t *peer, gc__sink_t *sink,
                                      gc__buf_t *head, int keep_alive)
{
    PyObject *input = NULL, *env = NULL, *result = NULL, *hook_req = NULL, *sent = NULL;
    PyObject *sock = NULL;
    response_t *r = NULL;
    enum gc__wsgi_outcome outcome = GC_WSGI_CLOSE;
    int failed = 0;
    int error_page = 0; /* the status of an error page we wrote, or 0 */
    int gone = 0;       /* the error that says the client left, or 0 */
    int completed = 0;  /* the response went out whole */
    uint64_t error_body = 0;
    gc__view_t method = gc__http_method(req);
    int logging = gc__access_log_enabled() || gc__statsd_enabled();
    uint64_t started = logging ? gc__monotonic_us() : 0;

    input =
        gc__wsgi_input_new(&req->body, req->body_pending ? peer->pull_body : NULL, peer->pull_ctx);
    if (input == NULL)
        goto error;
    env = gc__wsgi_environ(st, req, peer, input);
    if (env == NULL)
        goto error;
    r = PyObject_New(response_t, &response_type);
    if (r == NULL)
        goto error;
    r->st = st;
    r->sink = sink;
    r->head = head;
    r->status = r->headers = NULL;
    r->items = r->inline_items;
    r->nitems = 0;
    r->code = 0;
    r->app_length = -1;
    r->headers_sent = r->chunked = r->warned_no_body = 0;
    r->body_sent = 0;
    r->trailers = NULL;
    r->minor = req->minor;
    r->major = req->major;
    r->close_delimited = req->close_delimited;
    r->body_pending = &req->body_pending;
    r->keep_alive = keep_alive;
    r->head_request = method.len == 4 && memcmp(method.base, "HEAD", 4) == 0;
    r->sock_fd = peer->socket_fd;
    r->sock_family = peer->socket_family;
    r->taken = 0;
    if (r->sock_fd >= 0 && (sock = socket_new(st, r)) == NULL)
        goto error;
    if (sock != NULL && PyDict_SetItem(env, GC_STR(gunicorn_socket), sock) < 0)
        goto error;
    {
        PyObject *hints = PyObject_GetAttr((PyObject *)r, GC_STR(early_hints));
        int rc = hints ? PyDict_SetItem(env, GC_STR(wsgi_early_hints), hints) : -1;
        Py_XDECREF(hints);
        if (rc < 0)
            goto error;
    }
    if (peer->trailers != NULL) {
        PyObject *fn = PyObject_GetAttr((PyObject *)r, GC_STR(send_trailers));
        int rc = fn ? PyDict_SetItem(env, GC_STR(h2_send_trailers), fn) : -1;
        Py_XDECREF(fn);
        if (rc < 0)
            goto error;
    }

    if (st->hook_worker != NULL && gc__rt_request_hooks()) {
        hook_req = gc__rt_request_new(env, req);
        if (hook_req != NULL && gc__rt_pre_request(st->hook_worker, hook_req) < 0) {
            /* The hook raised (its traceback is logged): as Gunicorn, a 500 without
             * calling the application; post_request still runs. */
            if (!sink->error) {
                error_body = write_error_response(sink, 500);
                error_page = 500;
            }
            outcome = GC_WSGI_CLOSE;
            goto out;
        }
    }
    result = PyObject_CallFunctionObjArgs(st->app, env, (PyObject *)r, NULL);
    if (result == NULL)
        goto error;
    if (r->taken) { /* and it returned: see whether its iterable has anything to close */
        if (close_result(st, result) < 0)
            goto error;
        goto out;
    }
    failed = send_result(r, result) < 0;
    if (failed) {
        /* close() must run after an error too, but no Python code may run with an
         * exception pending (it would be lost, and with it the traceback): set the
         * error aside, and let a failing close() only add to the log. */
        PyObject *type, *value, *tb;
        PyErr_Fetch(&type, &value, &tb);
        if (close_result(st, result) < 0)
            gc__py_log_exception(GC_LOG_ERROR, "Error closing the response iterable");
        PyErr_Restore(type, value, tb);
        goto error;
    }
    if (close_result(st, result) < 0)
        goto error;
    if (r->taken)
        goto out;
    outcome = r->keep_alive ? GC_WSGI_KEEP : GC_WSGI_CLOSE;
    completed = 1;
    pass_trailers(r, peer);
    goto out;

error:
    if (r != NULL && r->taken) {
        /* What the application raised once it had the connection is its own affair
         * with its client: never an error page in the middle of its bytes. Raising
         * StopIteration is how WSGI WebSocket libraries end under Gunicorn. */
        if (PyErr_ExceptionMatches(PyExc_StopIteration))
            gc__debug("Closing connection.");
        else if (PyErr_ExceptionMatches(PyExc_SystemExit))
            st->exit_code = 1;
        else
            gc__py_log_exception(GC_LOG_ERROR, "Error handling a connection the application took");
        PyErr_Clear();
        goto out;
    }
    /* A client that went away is not the application's fault: no traceback. It may
     * have gone while the response was written, or while wsgi.input fetched a body it
     * had held back (Expect: 100-continue). */
    gone = sink->error;
    if (!gc__sink_is_disconnect(gone) && input != NULL)
        gone = gc__wsgi_input_error(input);
    if (gc__sink_is_disconnect(gone)) {
        PyErr_Clear();
        gc__debug("Ignored client disconnection: %s", strerror(-gone));
    } else {
        if (PyErr_ExceptionMatches(PyExc_SystemExit))
            st->exit_code = 1; /* SIGABRT's handler: answer, then the worker quits */
        gc__view_t target = gc__http_target(req);
        char header[512];
        snprintf(header, sizeof(header), "Error handling request %.*s %.*s", (int)method.len,
                 method.base, (int)(target.len > 400 ? 400 : target.len), target.base);
        gc__py_log_exception(GC_LOG_ERROR, header);
        if ((r == NULL || !r->headers_sent) && !sink->error) {
            error_body = write_error_response(sink, 500);
            error_page = 500;
        }
    }
    PyErr_Clear();
    outcome = GC_WSGI_CLOSE;
out:
    if (r != NULL && r->taken) {
        /* In the access log with the status the application gave start_response, or as
         * the WebSocket handshake it almost always is: 101. */
        outcome = GC_WSGI_TAKEN;
        completed = 1;
        if (r->status == NULL)
            r->code = 101;
        r->headers_sent = 1;
    }
    if (peer->status_out != NULL)
        *peer->status_out = error_page ? error_page : r && r->headers_sent ? r->code : 0;
    /* What was sent, not what the application's list holds by now. */
    sent = r != NULL && (logging || hook_req != NULL) ? sent_headers(r) : NULL;
    if (logging) {
        gc__reqlog_t rec = {
            .req = req,
            .peer = peer,
            .environ = env,
            .status = r && !error_page ? r->status : NULL,
            .headers = !error_page ? sent : NULL,
            .status_code = error_page             ? error_page
                           : r && r->headers_sent ? r->code
                                                  : 0,
            .body_bytes = error_page ? error_body
                          : r        ? r->body_sent
                                     : 0,
            .duration_us = gc__monotonic_us() - started,
        };
        /* As Gunicorn: a line for a complete response or our error page, none for a
         * response cut short (the app failed after its headers, the client left). */
        if (gc__access_log_enabled() && (completed || error_page))
            gc__access_log_request(&rec);
        if (gc__statsd_enabled())
            gc__statsd_request(rec.status_code, (double)rec.duration_us / 1000.0);
        PyErr_Clear();
    }
    if (hook_req != NULL) {
        gc__rt_post_request(st->hook_worker, hook_req, env, r ? r->status : NULL, sent,
                            r ? r->body_sent : 0);
        PyErr_Clear();
        Py_DECREF(hook_req);
    }
    if (r != NULL)
        r->sink = NULL; /* a write() kept by the app now raises instead of writing */
    if (sock != NULL)
        socket_done(st, sock);
    if (input != NULL)
        gc__wsgi_input_detach(input);
    Py_XDECREF(sent);
    Py_XDECREF(result);
    Py_XDECREF((PyObject *)r);
    Py_XDECREF(env);
    Py_XDECREF(input);
    return outcome;
}

static void response_dealloc(response_t *r)
{
    Py_CLEAR(r->status);
    Py_CLEAR(r->headers);
    Py_CLEAR(r->trailers);
    PyObject **items = r->items;
    Py_ssize_t n = r->nitems;
    r->nitems = 0;
    for (Py_ssize_t i = 0; i < n; i++)
        Py_DECREF(items[i]);
    if (items != r->inline_items)
        PyMem_Free(items);
    PyObject_Free(r);
}

/* wsgi.early_hints(headers): "103 Early Hints" with these fields, at once, before the
 * response (RFC 8297), as Gunicorn 25+ offers it. Nothing on HTTP/1.0 or once the
 * response head is out; the fields are checked as start_response's are. */
static PyObject *response_early_hints(response_t *r, PyObject *headers)
{
    static PyObject *status103;
    if (status103 == NULL && (status103 = PyUnicode_FromString("103 Early Hints")) == NULL)
        return NULL;
    int code = 0;
    int64_t length = -1;
    if (validate(status103, headers, &code, &length) < 0)
        return NULL;
    /* Not to HTTP/1.0, nor to a uwsgi front end (one head per response, then the body). */
    if (r->sink == NULL || r->headers_sent || (r->major == 1 && r->minor == 0) ||
        r->close_delimited)
        Py_RETURN_NONE;
    gc__buf_t out;
    gc__buf_init(&out);
    int rc = gc__buf_append(&out, "HTTP/1.1 103 Early Hints\r\n", 26);
    for (Py_ssize_t i = 0; rc == 0 && i < PyList_GET_SIZE(headers); i++) {
        PyObject *item = PyList_GET_ITEM(headers, i);
        gc__view_t nv = gc__view(NULL, 0), vv = gc__view(NULL, 0);
        latin1_view(PyTuple_GET_ITEM(item, 0), &nv); /* validated: latin-1 str */
        latin1_view(PyTuple_GET_ITEM(item, 1), &vv);
        rc = gc__buf_printf(&out, "%.*s: %.*s\r\n", (int)nv.len, nv.base, (int)vv.len, vv.base);
    }
    if (rc == 0)
        rc = gc__buf_append(&out, "\r\n", 2);
    if (rc == 0) { /* (the sink gives the GIL back around its waits itself) */
        size_t spill_max = r->sink->spill_max;
        r->sink->spill_max = 0; /* the hints must reach the client now */
        rc = gc__sink_write(r->sink, out.data, out.len);
        r->sink->spill_max = spill_max;
    }
    gc__buf_free(&out);
    if (rc < 0 && rc != -ENOMEM)
        Py_RETURN_NONE; /* the client went away: the response will find out */
    if (rc < 0)
        return PyErr_NoMemory();
    Py_RETURN_NONE;
}

/* gunicorn.http2.send_trailers(fields): trailer fields for the end of an HTTP/2
 * response, as Gunicorn queues them (sent once the body is complete; a later call
 * replaces them). Checked as response headers are. */
static PyObject *response_send_trailers(response_t *r, PyObject *fields)
{
    PyObject *list = PySequence_List(fields);
    if (list == NULL)
        return NULL;
    static PyObject *status200;
    if (status200 == NULL && (status200 = PyUnicode_FromString("200 OK")) == NULL) {
        Py_DECREF(list);
        return NULL;
    }
    int code = 0;
    int64_t length = -1;
    if (validate(status200, list, &code, &length) < 0) {
        Py_DECREF(list);
        return NULL;
    }
    Py_XSETREF(r->trailers, list);
    Py_RETURN_NONE;
}

/* Hands the trailers to the transport's side (an HTTP/2 stream) once the body is done. */
static void pass_trailers(response_t *r, const gc__wsgi_peer_t *peer)
{
    if (r->trailers == NULL || peer->trailers == NULL)
        return;
    Py_ssize_t n = PyList_GET_SIZE(r->trailers);
    gc__http_header_t fields[64];
    if (n > (Py_ssize_t)(sizeof(fields) / sizeof(fields[0])))
        n = (Py_ssize_t)(sizeof(fields) / sizeof(fields[0]));
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *item = PyList_GET_ITEM(r->trailers, i); /* validated (str, str) */
        fields[i].name = gc__view(NULL, 0);
        fields[i].value = gc__view(NULL, 0);
        latin1_view(PyTuple_GET_ITEM(item, 0), &fields[i].name);
        latin1_view(PyTuple_GET_ITEM(item, 1), &fields[i].value);
    }
    peer->trailers(peer->trailers_ctx, fields, (size_t)n);
}

static PyMethodDef response_methods[] = {
    {"write", (PyCFunction)response_write, METH_O, "write(data): send body bytes now."},
    {"early_hints", (PyCFunction)response_early_hints, METH_O,
     "early_hints(headers): send 103 Early Hints now."},
    {"send_trailers", (PyCFunction)response_send_trailers, METH_O,
     "send_trailers(fields): HTTP/2 trailer fields for the end of the response."},
    {"_gc_dup", (PyCFunction)response_gc_dup, METH_NOARGS, NULL},
    {"_gc_take", (PyCFunction)response_gc_take, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject response_type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "gunicorn_c.StartResponse",
    .tp_basicsize = sizeof(response_t),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "start_response(status, headers, exc_info=None) -> write",
    .tp_call = (ternaryfunc)start_response,
    .tp_dealloc = (destructor)response_dealloc,
    .tp_methods = response_methods,
};

/* --- state ------------------------------------------------------------------------ */

int gc__wsgi_state_init(gc__wsgi_state_t *st, PyObject *app, const gc__wsgi_options_t *opt)
{
    memset(st, 0, sizeof(*st));
    st->exit_code = -1;
    gc__buf_init(&st->scratch);
    if (gc__wsgi_types_ready() < 0 || PyType_Ready(&response_type) < 0)
        return -1;
    const char *sn = getenv("SCRIPT_NAME");
    st->script_name = PyUnicode_DecodeLatin1(sn ? sn : "", sn ? (Py_ssize_t)strlen(sn) : 0, NULL);
    if (st->script_name == NULL)
        return -1;
    st->sendfile = opt->sendfile;
    st->https = opt->https;

    /* The keys every environ starts with, in this order. */
    PyObject *errors = PySys_GetObject("stderr"); /* borrowed */
    PyObject *version = Py_BuildValue("(ii)", 1, 0);
    PyObject *software = PyUnicode_FromString("gunicorn-c/" GC_VERSION);
    struct {
        PyObject *key, *value; /* borrowed */
    } base[] = {
        {GC_STR(wsgi_version), version},
        {GC_STR(wsgi_url_scheme), opt->https ? GC_STR(https) : GC_STR(http)},
        {GC_STR(wsgi_errors), errors ? errors : Py_None},
        {GC_STR(wsgi_multithread), opt->multithread ? Py_True : Py_False},
        {GC_STR(wsgi_multiprocess), opt->multiprocess ? Py_True : Py_False},
        {GC_STR(wsgi_run_once), Py_False},
        {GC_STR(wsgi_input_terminated), Py_True},
        {GC_STR(wsgi_file_wrapper), (PyObject *)&gc__wsgi_filewrapper_type},
        {GC_STR(SCRIPT_NAME), st->script_name},
        {GC_STR(SERVER_SOFTWARE), software},
    };
    st->environ_base = version && software ? PyDict_New() : NULL;
    for (size_t i = 0; st->environ_base != NULL && i < sizeof(base) / sizeof(base[0]); i++)
        if (PyDict_SetItem(st->environ_base, base[i].key, base[i].value) < 0)
            Py_CLEAR(st->environ_base);
    /* As mod_ssl and nginx's fastcgi_params say it: a CGI-era key many apps check. */
    if (st->environ_base != NULL && opt->https &&
        PyDict_SetItem(st->environ_base, GC_STR(HTTPS), GC_STR(on)) < 0)
        Py_CLEAR(st->environ_base);
    Py_XDECREF(version);
    Py_XDECREF(software);
    if (st->environ_base == NULL)
        return -1;
    Py_INCREF(app);
    st->app = app;
    return 0;
}

void gc__wsgi_state_free(gc__wsgi_state_t *st)
{
    Py_CLEAR(st->socket_unopened);
    Py_CLEAR(st->socket_opened);
    Py_CLEAR(st->socket_release);
    Py_CLEAR(st->script_name);
    Py_CLEAR(st->environ_base);
    Py_CLEAR(st->app);
    gc__buf_free(&st->scratch);
}
