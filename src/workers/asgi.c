/* asgi.c: the asgi worker class (-k asgi): ASGI 3 applications on an asyncio loop,
 * with the C core doing the HTTP.
 *
 * The worker's libuv loop runs inside the asyncio loop (uvloop or asyncio's own, per
 * --asgi-loop): the libuv descriptor is an asyncio reader, and `turn` runs libuv once
 * (UV_RUN_NOWAIT) each time it is readable, then makes sure asyncio calls it again by
 * the next libuv timer. Connections are accepted, read and parsed as for every class;
 * a complete request becomes a scope (built here) and a Channel, and asgi.py's
 * Server.spawn starts the application's task. The task's `receive` and `send` call the
 * Channel, which reads the body C already has and writes the response through
 * gc__conn_app_write, never waiting: what the socket does not take waits in the
 * connection, and `send` awaits the Channel's drain future past a high mark. The end
 * of the connection's stream resolves the Channel's gone future (http.disconnect).
 *
 * Leaving: gc__worker_exit, called inside a turn, stops the asyncio loop instead
 * (`leave`); serve then runs lifespan shutdown and calls it again, outside any
 * Python frame, so the interpreter can be finalized. */
#define PY_SSIZE_T_CLEAN /* the "s#" format of ws_close takes a Py_ssize_t length */
#include "workers/internal.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include "asgi_py.h"
#include "common/clock.h"
#include "http/response.h"
#include "log/log.h"
#include "log/statsd.h"
#include "python/interp.h"
#include "python/pycompat.h"
#include "python/pystr.h"
#include "wsgi/access.h"
#include "workers/frontend.h"
#include "ws/ws.h"

typedef struct {
    PyObject *server;      /* asgi.py's Server */
    PyObject *run;         /* server.run: the coroutine of a request's task */
    PyObject *pathsend;    /* asgi.py's pathsend: http.response.pathsend's coroutine */
    PyObject *state;       /* lifespan's state, when the application supports lifespan */
    PyObject *create_task; /* loop.create_task */
    struct channel *live;  /* the requests that run: owned references */
    PyObject *loop;
    PyObject *call_at;       /* loop.call_at */
    PyObject *call_soon;     /* loop.call_soon */
    PyObject *loop_time;     /* loop.time */
    PyObject *create_future; /* loop.create_future */
    PyObject *turn;          /* turn() as a Python callable */
    PyObject *turn_flush;    /* turn_flush(), which sends what the tasks sent first */
    PyObject *timer;         /* the asyncio TimerHandle for the next turn, or NULL */
    double timer_at;         /* when it fires (the loop's clock) */
    PyObject *asgi_version;  /* {"version": "3.0", "spec_version": "2.4"} */
    PyObject *extensions;    /* the scope's extensions */
    PyObject *root_path;
    PyObject *str_set_result, *str_cancel, *str_done;
    int serving;
    int leaving;
    int in_turn;    /* libuv runs (inside turn) */
    int turn_asked; /* a turn is scheduled with call_soon */
} asgi_t;

static asgi_t *state_of(gc__worker_t *w)
{
    return w->class_data;
}

/* --- the Channel: one request's side in C ------------------------------------------ */

typedef struct channel {
    PyObject_HEAD gc__conn_t *c; /* NULL once the request is over */
    asgi_t *a;
    struct channel *prev, *next; /* in a->live while the request runs */
    int more_body;               /* receive() has more of the body to hand over */
    int disconnected;            /* receive() returned http.disconnect */
    int complete;                /* the application sent its response's end */
    int ws_connected;            /* receive() returned websocket.connect */
    int denial;                  /* websocket.http.response.start was sent */
    uint64_t body_off;
    int status;
    int started;   /* http.response.start was received */
    int head_sent; /* the head went out */
    int chunked;   /* the body goes out chunked */
    int keep;      /* keep-alive after this response */
    int head_request;
    int trailers;      /* the application will send http.response.trailers */
    int64_t length;    /* the application's Content-Length, or -1 */
    int64_t declared;  /* the body's length as pathsend knows it, or -1 */
    uint64_t sent;     /* body bytes sent */
    PyObject *headers; /* owned: the start message's headers, until the head is sent */
    PyObject *drain;   /* owned: the future send awaits, or NULL */
    PyObject *gone;    /* owned: the future receive awaits, or NULL */
    PyObject *task;    /* owned: the application's task */
    PyObject *more;    /* owned: the future receive awaits for body bytes, or NULL */
    int paused;        /* the body is not read while the application is behind */
    /* A WebSocket (scope type "websocket"): the handshake, then the session once the
     * application accepted; messages and the close wait in `inbox` for receive(). */
    int ws;
    gc__ws_handshake_t hs;
    gc__ws_session_t *session;
    PyObject *inbox;   /* owned list of messages, or NULL */
    PyObject *arrived; /* owned: the future receive awaits for a message, or NULL */
    int ws_closed;     /* the client's close came (its code is in ws_code) */
    int ws_code;
    uint64_t t0;           /* when the request was handed over (µs) */
    PyObject *log_headers; /* owned: the response's headers as (str, str) for the access log */
} channel_t;

static PyTypeObject channel_type;

static PyObject *closed_error(void)
{
    PyErr_SetString(PyExc_OSError, "the request is over");
    return NULL;
}

/* What the application may have unread of the body before the connection stops reading
 * it, and how little before it reads again. */
#define BODY_AHEAD_MAX ((uint64_t)1 << 20)
#define BODY_AHEAD_LOW ((uint64_t)256 << 10)

/* The next http.request message: the next piece of the request body C has (at most
 * 64 KiB), with more_body. Py_None when none has arrived yet (wait for `more`);
 * Py_False when the client went away in the middle of it. */
static PyObject *body_message(channel_t *ch)
{
    PyObject *data, *more;
    if (ch->c == NULL) {
        data = PyBytes_FromStringAndSize(NULL, 0);
        more = Py_False;
    } else {
        gc__conn_t *c = ch->c;
        const gc__http_body_t *b = &c->parser.req.body;
        int complete = c->parser.state == GC_HTTP_READY;
        uint64_t left = b->len > ch->body_off ? b->len - ch->body_off : 0;
        if (left == 0 && !complete) {
            if (gc__conn_app_gone(c) || c->parser.state == GC_HTTP_ERROR)
                Py_RETURN_FALSE;
            Py_RETURN_NONE;
        }
        size_t n = left > (64u << 10) ? (64u << 10) : (size_t)left;
        data = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)n);
        if (data == NULL)
            return NULL;
        if (n > 0) {
            ssize_t got = gc__http_body_read(b, ch->body_off, PyBytes_AS_STRING(data), n);
            if (got < 0 || (size_t)got != n) {
                Py_DECREF(data);
                errno = got < 0 ? (int)-got : EIO;
                return PyErr_SetFromErrno(PyExc_OSError);
            }
            ch->body_off += n;
        }
        if (ch->paused && b->len - ch->body_off <= BODY_AHEAD_LOW) {
            ch->paused = 0;
            gc__conn_app_pause_body(c, 0);
        }
        more = complete && ch->body_off >= b->len ? Py_False : Py_True;
    }
    if (data == NULL)
        return NULL;
    PyObject *msg = PyDict_New();
    if (msg == NULL || PyDict_SetItem(msg, GC_STR(type), GC_STR(http_request)) < 0 ||
        PyDict_SetItem(msg, GC_STR(body), data) < 0 ||
        PyDict_SetItem(msg, GC_STR(more_body), more) < 0)
        Py_CLEAR(msg);
    Py_DECREF(data);
    return msg;
}

/* A future of the loop, or NULL with an exception. */
static PyObject *new_future(channel_t *ch)
{
    return PyObject_CallNoArgs(ch->a->create_future);
}

/* client_gone(): the client has gone away (an error then is not the application's). */
static PyObject *ch_client_gone(channel_t *ch, PyObject *unused)
{
    (void)unused;
    return PyBool_FromLong(ch->c == NULL || gc__conn_app_gone(ch->c));
}

static void resolve(asgi_t *a, PyObject **fut)
{
    if (*fut == NULL)
        return;
    PyObject *done = PyObject_CallMethodNoArgs(*fut, a->str_done);
    if (done == Py_False) {
        PyObject *r = PyObject_CallMethodOneArg(*fut, a->str_set_result, Py_None);
        Py_XDECREF(r);
    }
    Py_XDECREF(done);
    PyErr_Clear();
    Py_CLEAR(*fut);
}

/* drain(): a future that is done once what waits to be sent is below the low mark. */
static PyObject *ch_drain(channel_t *ch, PyObject *unused)
{
    (void)unused;
    if (ch->drain == NULL && (ch->drain = new_future(ch)) == NULL)
        return NULL;
    PyObject *fut = Py_NewRef(ch->drain);
    if (ch->c == NULL || !gc__conn_app_congested(ch->c))
        resolve(ch->a, &ch->drain);
    return fut;
}

/* Writes iov through the connection. Returns 1 when send should wait for drain, 0,
 * or -1 with an exception when the client is gone. */
/* What a task sends runs outside libuv's turn: the connection keeps it (app_batch), as
 * an HTTP/2 stream's frames wait in its session, for the next turn, so that the
 * responses of the tasks that run now go out together. That turn is asked for, right
 * after them. */
static void want_turn(asgi_t *a)
{
    if (a->in_turn || a->turn_asked)
        return;
    PyObject *r = PyObject_CallOneArg(a->call_soon, a->turn_flush);
    if (r == NULL) {
        PyErr_Clear();
        return;
    }
    Py_DECREF(r);
    a->turn_asked = 1;
}

static int ch_write(channel_t *ch, const struct iovec *iov, int n)
{
    want_turn(ch->a);
    int rc = gc__conn_app_write(ch->c, iov, n);
    if (rc < 0) {
        PyErr_SetString(PyExc_OSError, "the client has gone away");
        return -1;
    }
    return rc;
}

static int bytes_view(PyObject *o, gc__view_t *v)
{
    if (PyBytes_Check(o)) {
        *v = gc__view(PyBytes_AS_STRING(o), (size_t)PyBytes_GET_SIZE(o));
        return 0;
    }
    if (PyByteArray_Check(o)) {
        *v = gc__view(PyByteArray_AS_STRING(o), (size_t)PyByteArray_GET_SIZE(o));
        return 0;
    }
    PyErr_Format(PyExc_TypeError, "ASGI header names and values must be bytes, not %.100s",
                 Py_TYPE(o)->tp_name);
    return -1;
}

/* The application's headers as fields for a head: checked (a token name, a value
 * without CR, LF or NUL), hop-by-hop ones dropped. Fills `out` (cap entries), sets
 * *length from a Content-Length. Returns the count, or -1 with an exception. */
static Py_ssize_t collect_headers(PyObject *headers, gc__http_header_t *out, size_t cap,
                                  int64_t *length, PyObject **fast)
{
    *fast = PySequence_Fast(headers, "ASGI headers must be a sequence of [name, value]");
    if (*fast == NULL)
        return -1;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(*fast), kept = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *pair = PySequence_Fast_GET_ITEM(*fast, i);
        if (!(PyTuple_Check(pair) || PyList_Check(pair)) || PySequence_Fast_GET_SIZE(pair) != 2) {
            PyErr_SetString(PyExc_TypeError, "each ASGI header must be [name, value]");
            return -1;
        }
        gc__http_header_t h;
        if (bytes_view(PySequence_Fast_GET_ITEM(pair, 0), &h.name) < 0 ||
            bytes_view(PySequence_Fast_GET_ITEM(pair, 1), &h.value) < 0)
            return -1;
        if (!gc__http_is_token(h.name) || !gc__http_is_field_value(h.value)) {
            PyErr_Format(PyExc_ValueError, "invalid ASGI header %R", pair);
            return -1;
        }
        if (gc__view_ieq(h.name, "content-length")) {
            char num[24];
            size_t len = h.value.len < sizeof(num) - 1 ? h.value.len : sizeof(num) - 1;
            memcpy(num, h.value.base, len);
            num[len] = '\0';
            char *end;
            long long v = strtoll(num, &end, 10);
            if (len == 0 || *end != '\0' || v < 0) {
                PyErr_Format(PyExc_ValueError, "invalid Content-Length %R", pair);
                return -1;
            }
            *length = v;
        }
        if (gc__http_is_hop_by_hop(h.name))
            continue;
        if ((size_t)kept == cap) {
            PyErr_SetString(PyExc_ValueError, "too many ASGI response headers");
            return -1;
        }
        out[kept++] = h;
    }
    return kept;
}

/* http.response.start: kept until the first body. Returns 0, or -1 with an exception. */
static int start_response(channel_t *ch, PyObject *status_obj, PyObject *headers, int trailers)
{
    long status = PyLong_AsLong(status_obj);
    if (status == -1 && PyErr_Occurred())
        return -1;
    if (status < 100 || status > 999) {
        PyErr_Format(PyExc_ValueError, "invalid HTTP status %ld", status);
        return -1;
    }
    ch->status = (int)status;
    ch->started = 1;
    ch->trailers = trailers;
    Py_XSETREF(ch->headers, Py_NewRef(headers));
    return 0;
}

static int body_allowed(const channel_t *ch)
{
    return !ch->head_request && gc__http_status_has_body(ch->status);
}

/* The response's header fields as the access log's {name}o atoms read them: a list of
 * (str, str), latin-1. NULL (no exception) when it cannot be made. */
static PyObject *log_headers(const gc__http_header_t *fields, size_t n)
{
    PyObject *list = PyList_New((Py_ssize_t)n);
    for (size_t i = 0; list != NULL && i < n; i++) {
        PyObject *k =
            PyUnicode_DecodeLatin1(fields[i].name.base, (Py_ssize_t)fields[i].name.len, NULL);
        PyObject *v =
            k ? PyUnicode_DecodeLatin1(fields[i].value.base, (Py_ssize_t)fields[i].value.len, NULL)
              : NULL;
        PyObject *pair = v ? PyTuple_Pack(2, k, v) : NULL;
        Py_XDECREF(k);
        Py_XDECREF(v);
        if (pair == NULL)
            Py_CLEAR(list);
        else
            PyList_SET_ITEM(list, (Py_ssize_t)i, pair);
    }
    PyErr_Clear();
    return list;
}

/* Writes the head (and `data`, the first piece of body, `last` when it is the whole
 * body). Returns what ch_write returns. */
static int send_head(channel_t *ch, const char *data, size_t len, int last)
{
    gc__http_header_t fields[64];
    PyObject *fast = NULL;
    int64_t length = -1;
    Py_ssize_t n = collect_headers(ch->headers, fields, 64, &length, &fast);
    if (n < 0) {
        Py_XDECREF(fast);
        return -1;
    }
    const gc__http_request_t *req = &ch->c->parser.req;
    gc__http_head_t head = {
        .minor = req->minor,
        .headers = fields,
        .nheaders = (size_t)n,
        .add_length = -1,
    };
    char status[48];
    snprintf(status, sizeof(status), "%d %s", ch->status, gc__http_reason(ch->status));
    head.status = gc__view(status, strlen(status));
    if (length < 0 && ch->declared >= 0 && body_allowed(ch))
        head.add_length = length = ch->declared;
    ch->length = length;
    if (length < 0 && body_allowed(ch)) {
        if (last && !ch->trailers)
            head.add_length = (int64_t)len;
        else if (req->minor >= 1 && !req->close_delimited)
            ch->chunked = head.chunked = 1;
        else
            ch->keep = 0;
    }
    head.connection = ch->keep ? GC_CONN_KEEP_ALIVE : GC_CONN_CLOSE;
    if (gc__access_log_enabled() && ch->log_headers == NULL)
        ch->log_headers = log_headers(fields, (size_t)n); /* (none on failure) */
    gc__buf_t *buf = &ch->c->head;
    gc__buf_reset(buf);
    int rc = gc__http_write_head(buf, &head);
    Py_XDECREF(fast);
    Py_CLEAR(ch->headers);
    if (rc < 0) {
        PyErr_NoMemory();
        return -1;
    }
    ch->head_sent = 1;
    struct iovec iov[4];
    int k = 0;
    iov[k++] = (struct iovec){buf->data, buf->len};
    char prefix[24];
    if (len > 0 && body_allowed(ch)) {
        if (ch->chunked) {
            iov[k++] = (struct iovec){prefix, gc__http_chunk_prefix(prefix, len)};
            iov[k++] = (struct iovec){(void *)data, len};
            iov[k++] = (struct iovec){"\r\n", 2};
        } else {
            iov[k++] = (struct iovec){(void *)data, len};
        }
        ch->sent += len;
    }
    return ch_write(ch, iov, k);
}

/* http.response.body's bytes. Returns 1 when send must await drain, 0, or -1 with an
 * exception. */
static int send_body(channel_t *ch, PyObject *data, int more)
{
    if (ch->c == NULL) {
        closed_error();
        return -1;
    }
    Py_buffer view;
    if (PyObject_GetBuffer(data, &view, PyBUF_SIMPLE) < 0)
        return -1;
    const char *p = view.buf;
    size_t len = (size_t)view.len;
    if (ch->length >= 0 && (uint64_t)len > (uint64_t)ch->length - ch->sent)
        len = (size_t)((uint64_t)ch->length - ch->sent); /* never more than promised */
    int rc;
    if (!ch->head_sent) {
        rc = send_head(ch, p, len, !more);
    } else if (len == 0 || !body_allowed(ch)) {
        rc = 0;
    } else if (ch->chunked) {
        char prefix[24];
        struct iovec iov[3] = {
            {prefix, gc__http_chunk_prefix(prefix, len)}, {(void *)p, len}, {"\r\n", 2}};
        rc = ch_write(ch, iov, 3);
        ch->sent += len;
    } else {
        struct iovec iov = {(void *)p, len};
        rc = ch_write(ch, &iov, 1);
        ch->sent += len;
    }
    PyBuffer_Release(&view);
    if (rc >= 0 && !more && ch->chunked && !ch->trailers) {
        struct iovec end = {"0\r\n\r\n", 5};
        int r2 = ch_write(ch, &end, 1);
        rc = r2 < 0 ? r2 : (rc || r2);
    }
    return rc < 0 ? -1 : rc;
}

/* send_body(data, more): pathsend's pieces. Returns True when send must await drain. */
static PyObject *ch_send_body(channel_t *ch, PyObject *args)
{
    PyObject *data;
    int more = 0;
    if (!PyArg_ParseTuple(args, "O|p", &data, &more))
        return NULL;
    int rc = send_body(ch, data, more);
    return rc < 0 ? NULL : PyBool_FromLong(rc);
}

/* declare_length(n): the body will be n bytes (pathsend knows the file's size). */
static PyObject *ch_declare_length(channel_t *ch, PyObject *arg)
{
    long long n = PyLong_AsLongLong(arg);
    if (n == -1 && PyErr_Occurred())
        return NULL;
    if (!ch->head_sent)
        ch->declared = n;
    Py_RETURN_NONE;
}

/* Writes `first` (a status line, or the last chunk's "0\r\n"), the headers given as
 * ASGI pairs, and the blank line. Returns 0, or -1 with an exception. */
static int write_block(channel_t *ch, const char *first, PyObject *headers)
{
    gc__http_header_t fields[64];
    PyObject *fast = NULL;
    int64_t ignored = -1;
    Py_ssize_t n = collect_headers(headers, fields, 64, &ignored, &fast);
    if (n < 0) {
        Py_XDECREF(fast);
        return -1;
    }
    gc__buf_t out;
    gc__buf_init(&out);
    int rc = gc__buf_append(&out, first, strlen(first));
    for (Py_ssize_t i = 0; rc == 0 && i < n; i++)
        rc = gc__buf_printf(&out, "%.*s: %.*s\r\n", (int)fields[i].name.len, fields[i].name.base,
                            (int)fields[i].value.len, fields[i].value.base);
    if (rc == 0)
        rc = gc__buf_append(&out, "\r\n", 2);
    Py_XDECREF(fast);
    int w = rc == 0 ? ch_write(ch, &(struct iovec){out.data, out.len}, 1) : -1;
    gc__buf_free(&out);
    if (rc < 0) {
        PyErr_NoMemory();
        return -1;
    }
    return w < 0 ? -1 : 0;
}

/* Our error page (500, 403, a malformed body's status) on the connection. */
static void write_error_page(gc__conn_t *c, int status, const char *message)
{
    gc__buf_t out;
    gc__buf_init(&out);
    if (gc__http_write_error(&out, status, message) == 0)
        gc__conn_app_write(c, &(struct iovec){out.data, out.len}, 1);
    gc__buf_free(&out);
}

/* HTTP/2 trailers: kept for the stream's end (gc__h2conn_trailers). */
static PyObject *stream_trailers(channel_t *ch, PyObject *headers)
{
    gc__http_header_t fields[64];
    PyObject *fast = NULL;
    int64_t ignored = -1;
    Py_ssize_t n = collect_headers(headers, fields, 64, &ignored, &fast);
    if (n >= 0)
        gc__h2conn_trailers(ch->c, fields, (size_t)n);
    Py_XDECREF(fast);
    if (n < 0)
        return NULL;
    ch->trailers = 0;
    Py_RETURN_NONE;
}

/* trailers(headers, more): http.response.trailers after a chunked body. */
static PyObject *ch_trailers(channel_t *ch, PyObject *args)
{
    PyObject *headers;
    int more = 0;
    if (!PyArg_ParseTuple(args, "O|p", &headers, &more))
        return NULL;
    if (ch->c == NULL)
        return closed_error();
    if (ch->c->stream != NULL) /* HTTP/2: a HEADERS frame after the body, at the end */
        return stream_trailers(ch, headers);
    if (!ch->chunked) /* no framing can carry them: dropped, as Gunicorn does */
        Py_RETURN_NONE;
    if (write_block(ch, "0\r\n", headers) < 0)
        return NULL;
    ch->trailers = 0;
    Py_RETURN_NONE;
}

/* informational(status, headers): a 1xx response (103 Early Hints) before the real one. */
static PyObject *ch_informational(channel_t *ch, PyObject *args)
{
    int status;
    PyObject *headers;
    if (!PyArg_ParseTuple(args, "iO", &status, &headers))
        return NULL;
    if (ch->c == NULL)
        return closed_error();
    if (status < 100 || status > 199 || status == 101) {
        PyErr_Format(PyExc_ValueError, "invalid informational status %d", status);
        return NULL;
    }
    if (ch->c->parser.req.minor < 1 && ch->c->stream == NULL) /* HTTP/1.0 knows no 1xx */
        Py_RETURN_NONE;
    char line[64];
    snprintf(line, sizeof(line), "HTTP/1.1 %d %s\r\n", status, gc__http_reason(status));
    if (write_block(ch, line, headers) < 0)
        return NULL;
    Py_RETURN_NONE;
}

/* The request's peer as the WSGI path has it (respond.c): the PROXY header's source
 * address when there was one. */
static void request_peer(const gc__conn_t *c, gc__wsgi_peer_t *peer)
{
    const gc__listener_t *l = c->listener;
    *peer = (gc__wsgi_peer_t){
        .remote_addr = l->is_unix ? "" : c->remote_addr,
        .remote_port = l->is_unix ? NULL : c->remote_port,
        .server_name = l->host,
        .server_port = l->port,
        .is_unix = l->is_unix,
        .socket_fd = -1,
        .http2 = c->stream != NULL,
    };
    gc__frontend_peer(c, peer);
}

static int env_latin1(PyObject *env, const char *key, const char *s, size_t n)
{
    PyObject *v = PyUnicode_DecodeLatin1(s, (Py_ssize_t)n, NULL);
    int rc = v ? PyDict_SetItemString(env, key, v) : -1;
    Py_XDECREF(v);
    return rc;
}

/* What the access log's atoms read from a WSGI environ, for an ASGI request: the
 * request line's parts, PATH_INFO (the decoded path), REMOTE_ADDR and a key for each
 * request header (HTTP_*, CONTENT_TYPE, CONTENT_LENGTH; repeated ones joined with
 * ","). Made only when the access log is written. NULL (no exception) on failure. */
static PyObject *log_environ(gc__conn_t *c, const gc__wsgi_peer_t *peer)
{
    const gc__http_request_t *req = &c->parser.req;
    gc__view_t method = gc__http_method(req), target = gc__http_target(req), path, query;
    gc__http_split_target(target, &path, &query);
    gc__buf_t *scratch = &gc__conn_worker(c)->wsgi.scratch;
    PyObject *env = PyDict_New();
    const char *proto = req->version[0] ? req->version : req->minor >= 1 ? "HTTP/1.1" : "HTTP/1.0";
    int rc = env && gc__http_percent_decode(scratch, path) == 0 ? 0 : -1;
    if (rc == 0)
        rc = env_latin1(env, "PATH_INFO", scratch->data, scratch->len);
    if (rc == 0 && (env_latin1(env, "REQUEST_METHOD", method.base, method.len) < 0 ||
                    env_latin1(env, "RAW_URI", target.base, target.len) < 0 ||
                    env_latin1(env, "QUERY_STRING", query.base, query.len) < 0 ||
                    env_latin1(env, "SERVER_PROTOCOL", proto, strlen(proto)) < 0 ||
                    (peer->remote_addr[0] && env_latin1(env, "REMOTE_ADDR", peer->remote_addr,
                                                        strlen(peer->remote_addr)) < 0)))
        rc = -1;
    char key[300];
    for (size_t i = 0; rc == 0 && i < req->nfields; i++) {
        gc__view_t name = gc__http_field_name(req, i), value = gc__http_field_value(req, i);
        int plain = gc__view_ieq(name, "content-type") || gc__view_ieq(name, "content-length");
        size_t at = plain ? 0 : 5;
        if (name.len + at >= sizeof(key))
            continue;
        memcpy(key, "HTTP_", at);
        for (size_t j = 0; j < name.len; j++) {
            char ch = name.base[j];
            key[at + j] = ch == '-' ? '_' : (ch >= 'a' && ch <= 'z') ? (char)(ch - 32) : ch;
        }
        key[at + name.len] = '\0';
        PyObject *v = PyUnicode_DecodeLatin1(value.base, (Py_ssize_t)value.len, NULL);
        PyObject *old = v ? PyDict_GetItemString(env, key) : NULL;
        if (v != NULL && old != NULL) {
            PyObject *joined = PyUnicode_FromFormat("%U,%U", old, v);
            Py_SETREF(v, joined);
        }
        rc = v ? PyDict_SetItemString(env, key, v) : -1;
        Py_XDECREF(v);
    }
    if (rc < 0) {
        Py_CLEAR(env);
        PyErr_Clear();
    }
    return env;
}

static void access_log(channel_t *ch, int status, uint64_t duration_us)
{
    int logging = gc__access_log_enabled() || gc__statsd_enabled();
    if (!logging)
        return;
    gc__conn_t *c = ch->c;
    gc__wsgi_peer_t peer;
    request_peer(c, &peer);
    PyObject *env = gc__access_log_enabled() ? log_environ(c, &peer) : NULL;
    char line[48];
    snprintf(line, sizeof(line), "%d %s", status, gc__http_reason(status));
    PyObject *st = PyUnicode_FromString(line);
    gc__reqlog_t rec = {
        .req = &c->parser.req,
        .peer = &peer,
        .environ = env,
        .headers = ch->log_headers,
        .status = st,
        .status_code = status,
        .body_bytes = ch->sent,
        .duration_us = duration_us,
    };
    if (gc__access_log_enabled())
        gc__access_log_request(&rec);
    if (gc__statsd_enabled())
        gc__statsd_request(status, (double)rec.duration_us / 1000.0);
    Py_XDECREF(st);
    Py_XDECREF(env);
    PyErr_Clear();
}

static int ws_flush(channel_t *ch);

/* Out of the live list, with the reference it held. */
static void unlink_live(channel_t *ch)
{
    asgi_t *a = ch->a;
    if (ch->prev == NULL && a->live != ch)
        return; /* not in it */
    if (ch->prev)
        ch->prev->next = ch->next;
    else
        a->live = ch->next;
    if (ch->next)
        ch->next->prev = ch->prev;
    ch->prev = ch->next = NULL;
    Py_DECREF(ch);
}

/* finish(outcome): the application's task is over. 1: the response is complete; 3: it
 * returned without completing it; 2: it raised; 0: it was cancelled. */
static PyObject *ch_finish(channel_t *ch, PyObject *arg)
{
    long outcome = PyLong_AsLong(arg);
    if (outcome == -1 && PyErr_Occurred())
        return NULL;
    gc__conn_t *c = ch->c;
    if (c == NULL)
        Py_RETURN_NONE;
    if (outcome == 1 && !ch->ws && !ch->complete)
        outcome = 3; /* returned without finishing its response */
    int keep = ch->keep;
    int status = ch->status;
    if (ch->ws && ch->session != NULL) {
        /* The application is done with its WebSocket: a close frame if it sent none. */
        if (!gc__ws_closing(ch->session) && !gc__conn_app_gone(c)) {
            gc__ws_close(ch->session, outcome == 1 ? 1000 : 1011, "", 0);
            if (ws_flush(ch) < 0)
                PyErr_Clear();
        }
        keep = 0;
    } else if (ch->ws && !ch->head_sent && !gc__conn_app_gone(c)) {
        /* Returned (or raised) without accepting: the handshake is refused, 403. */
        write_error_page(c, 403, "");
        status = 403;
        keep = 0;
    } else if (!ch->head_sent && !gc__conn_app_gone(c) && outcome != 0) {
        if (ch->started && outcome == 1) {
            /* A response without a body message: the head alone. */
            if (send_head(ch, "", 0, 1) < 0)
                PyErr_Clear();
        } else {
            /* Nothing was sent: our 500 page (the app raised, or never answered). */
            if (outcome == 3)
                gc__error("ASGI application returned without sending a response");
            write_error_page(c, 500, "");
            status = 500;
            keep = 0;
        }
    } else if (outcome != 1 || (ch->trailers && c->stream == NULL) ||
               (ch->length >= 0 && ch->sent < (uint64_t)ch->length && body_allowed(ch))) {
        keep = 0; /* a response cut short: only the close tells the client */
        gc__conn_app_cut(c);
    }
    if (c->parser.state != GC_HTTP_READY)
        keep = 0;
    uint64_t duration_us =
        gc__monotonic_us() - ch->t0; /* one clock read for the counts and the log */
    gc__slot_count(c->w->slot, gc__http_method(&c->parser.req), ch->ws && !status ? 403 : status,
                   duration_us);
    if (ch->ws)
        access_log(ch, status ? status : 403, duration_us);
    else if (outcome != 0 && (outcome == 1 || status == 500))
        access_log(ch, status, duration_us);
    ch->c = NULL;
    c->app = NULL;
    resolve(ch->a, &ch->drain);
    resolve(ch->a, &ch->gone);
    resolve(ch->a, &ch->more);
    resolve(ch->a, &ch->arrived);
    Py_CLEAR(ch->task); /* (the task holds the channel: no cycle outlives the request) */
    want_turn(ch->a);
    gc__conn_app_done(c, keep);
    unlink_live(ch); /* (last: it may drop the last reference) */
    Py_RETURN_NONE;
}

/* --- WebSocket ---------------------------------------------------------------------- */

/* Writes what the session queued (pongs, close replies, messages). Returns what
 * ch_write returns. */
static int ws_flush(channel_t *ch)
{
    if (ch->session == NULL || !gc__ws_want_write(ch->session) || ch->c == NULL)
        return 0;
    gc__buf_t out;
    gc__buf_init(&out);
    if (gc__ws_send_into(ch->session, &out) < 0) {
        gc__buf_free(&out);
        PyErr_NoMemory();
        return -1;
    }
    int rc = out.len ? ch_write(ch, &(struct iovec){out.data, out.len}, 1) : 0;
    gc__buf_free(&out);
    return rc;
}

static void ws_push(channel_t *ch, PyObject *msg)
{
    if (msg == NULL || (ch->inbox == NULL && (ch->inbox = PyList_New(0)) == NULL) ||
        PyList_Append(ch->inbox, msg) < 0)
        PyErr_Clear();
    Py_XDECREF(msg);
}

static void ws_on_message(void *user, int opcode, const char *data, size_t len)
{
    channel_t *ch = user;
    PyObject *payload = opcode == GC_WS_TEXT ? PyUnicode_DecodeUTF8(data, (Py_ssize_t)len, NULL)
                                             : PyBytes_FromStringAndSize(data, (Py_ssize_t)len);
    PyObject *msg = payload ? PyDict_New() : NULL;
    if (msg != NULL &&
        (PyDict_SetItem(msg, GC_STR(type), GC_STR(websocket_receive)) < 0 ||
         PyDict_SetItem(msg, opcode == GC_WS_TEXT ? GC_STR(text) : GC_STR(bytes), payload) < 0))
        Py_CLEAR(msg);
    Py_XDECREF(payload);
    ws_push(ch, msg);
}

static void ws_on_close(void *user, int code, const char *reason, size_t len)
{
    channel_t *ch = user;
    (void)reason;
    (void)len;
    ch->ws_closed = 1;
    ch->ws_code = code;
}

/* The connection's bytes, once the application accepted. */
static void asgi_stream_bytes(gc__conn_t *c, const char *data, size_t len)
{
    channel_t *ch = c->app;
    if (ch == NULL || ch->session == NULL)
        return;
    gc__worker_gil(gc__conn_worker(c));
    if (gc__ws_feed(ch->session, data, len) < 0) {
        gc__conn_app_abandon(c);
        return;
    }
    if (ws_flush(ch) < 0)
        PyErr_Clear();
    if (gc__ws_closed(ch->session) && !ch->ws_closed) {
        /* The session failed (a protocol error, a limit): its close frame is out. */
        ch->ws_closed = 1;
        ch->ws_code = gc__ws_close_code_sent(ch->session);
    }
    resolve(ch->a, &ch->arrived);
}

/* ws_next(): the next message for receive(), or None when none has come. */
static PyObject *ch_ws_next(channel_t *ch, PyObject *unused)
{
    (void)unused;
    if (ch->inbox != NULL && PyList_GET_SIZE(ch->inbox) > 0) {
        PyObject *msg = Py_NewRef(PyList_GET_ITEM(ch->inbox, 0));
        if (PySequence_DelItem(ch->inbox, 0) < 0) {
            Py_DECREF(msg);
            return NULL;
        }
        return msg;
    }
    if (ch->ws_closed || ch->c == NULL || gc__conn_app_gone(ch->c))
        return Py_BuildValue("{sssi}", "type", "websocket.disconnect", "code",
                             ch->ws_closed ? ch->ws_code : GC_WS_CLOSE_ABNORMAL);
    Py_RETURN_NONE;
}

/* ws_accept(subprotocol, headers): the 101, and the session from now on. */
static PyObject *ch_ws_accept(channel_t *ch, PyObject *args)
{
    const char *subprotocol = NULL;
    PyObject *headers = NULL;
    if (!PyArg_ParseTuple(args, "zO", &subprotocol, &headers))
        return NULL;
    if (ch->c == NULL)
        return closed_error();
    if (ch->session != NULL || ch->head_sent) {
        PyErr_SetString(PyExc_RuntimeError, "websocket.accept after the handshake's answer");
        return NULL;
    }
    gc__http_header_t fields[32];
    gc__view_t extra[64];
    PyObject *fast = NULL;
    int64_t ignored = -1;
    Py_ssize_t n = collect_headers(headers, fields, 32, &ignored, &fast);
    if (n < 0) {
        Py_XDECREF(fast);
        return NULL;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        extra[2 * i] = fields[i].name;
        extra[2 * i + 1] = fields[i].value;
    }
    gc__buf_t out;
    gc__buf_init(&out);
    int rc = gc__ws_write_101(&out, ch->hs.key, subprotocol, extra, (size_t)n);
    Py_XDECREF(fast);
    if (rc < 0) {
        gc__buf_free(&out);
        if (rc == -ENOMEM)
            return PyErr_NoMemory();
        PyErr_SetString(PyExc_ValueError, "invalid websocket.accept subprotocol or headers");
        return NULL;
    }
    gc__ws_callbacks_t cb = {.on_message = ws_on_message, .on_close = ws_on_close};
    gc__ws_limits_t limits;
    gc__ws_limits_default(&limits);
    ch->session = gc__ws_session_new(&cb, &limits, ch);
    if (ch->session == NULL) {
        gc__buf_free(&out);
        return PyErr_NoMemory();
    }
    int w = ch_write(ch, &(struct iovec){out.data, out.len}, 1);
    gc__buf_free(&out);
    if (w < 0)
        return NULL;
    ch->head_sent = 1;
    ch->status = 101;
    ch->started = 1;
    gc__conn_app_stream(ch->c);
    Py_RETURN_NONE;
}

/* ws_send(bytes, text): a message. Returns True when send must await drain. */
static PyObject *ch_ws_send(channel_t *ch, PyObject *args)
{
    PyObject *data = Py_None, *text = Py_None;
    if (!PyArg_ParseTuple(args, "OO", &data, &text))
        return NULL;
    if (ch->c == NULL || ch->session == NULL || gc__conn_app_gone(ch->c)) {
        PyErr_SetString(PyExc_OSError, "the WebSocket is not open");
        return NULL;
    }
    int rc;
    if (text != Py_None) {
        Py_ssize_t len;
        const char *u = PyUnicode_AsUTF8AndSize(text, &len);
        if (u == NULL)
            return NULL;
        rc = gc__ws_send_message(ch->session, GC_WS_TEXT, u, (size_t)len);
    } else {
        Py_buffer view;
        if (PyObject_GetBuffer(data, &view, PyBUF_SIMPLE) < 0)
            return NULL;
        rc = gc__ws_send_message(ch->session, GC_WS_BINARY, view.buf, (size_t)view.len);
        PyBuffer_Release(&view);
    }
    if (rc == -ENOMEM)
        return PyErr_NoMemory();
    if (rc < 0) {
        PyErr_SetString(PyExc_OSError, "the WebSocket is closing");
        return NULL;
    }
    int w = ws_flush(ch);
    if (w < 0)
        return NULL;
    return PyBool_FromLong(w);
}

/* ws_close(code, reason): the server's close frame; before the accept, a 403. */
static PyObject *ch_ws_close(channel_t *ch, PyObject *args)
{
    int code = 1000;
    const char *reason = "";
    Py_ssize_t rlen = 0;
    if (!PyArg_ParseTuple(args, "|is#", &code, &reason, &rlen))
        return NULL;
    if (ch->c == NULL)
        Py_RETURN_NONE;
    if (ch->session == NULL) {
        if (!ch->head_sent) {
            write_error_page(ch->c, 403, "");
            ch->head_sent = 1;
            ch->status = 403;
            ch->keep = 0;
        }
        Py_RETURN_NONE;
    }
    int rc = gc__ws_close(ch->session, code, reason, (size_t)rlen);
    if (rc == -EINVAL) {
        PyErr_Format(PyExc_ValueError, "invalid WebSocket close code %d or reason", code);
        return NULL;
    }
    if (ws_flush(ch) < 0)
        PyErr_Clear(); /* the client is gone: nothing to tell it */
    Py_RETURN_NONE;
}

/* --- receive() and send(): awaitables in C ----------------------------------------- *
 *
 * What the application awaits is an `op`: a coroutine-like object whose every step runs
 * here, with no Python frame (a request's receive and send are most of what a server
 * costs in Python). A step either finishes (the message, or None for send) or yields the
 * future the task must wait for (flagged _asyncio_future_blocking, as a Future's own
 * __await__ does) and is stepped again once it is done. On CPython 3.10+ the task and
 * the awaiting coroutine step it through am_send, without a StopIteration; send(),
 * throw() and close() make it a collections.abc.Coroutine, so that create_task and
 * ensure_future take it too. */

enum { OP_RECEIVE, OP_SEND, OP_WS_RECEIVE, OP_WS_SEND };

typedef struct {
    PyObject_HEAD channel_t *ch; /* owned */
    PyObject *msg;               /* owned: send's message, until its step has handled it */
    int kind;
} op_t;

static PyTypeObject op_type;

/* Yields *fut (made when there is none, or when the one there is done: a cancelled
 * wait). */
static PySendResult wait_on(channel_t *ch, PyObject **fut, PyObject **result)
{
    if (*fut != NULL) {
        PyObject *done = PyObject_CallMethodNoArgs(*fut, ch->a->str_done);
        if (done == NULL)
            return PYGEN_ERROR;
        if (done == Py_True)
            Py_CLEAR(*fut);
        Py_DECREF(done);
    }
    if (*fut == NULL && (*fut = new_future(ch)) == NULL)
        return PYGEN_ERROR;
    if (PyObject_SetAttr(*fut, GC_STR(_asyncio_future_blocking), Py_True) < 0)
        return PYGEN_ERROR;
    *result = Py_NewRef(*fut);
    return PYGEN_NEXT;
}

/* receive(): the body in http.request messages, then http.disconnect once the client
 * has gone away (at once when the response is complete: the connection is no longer
 * the application's). */
static PySendResult receive_step(channel_t *ch, PyObject **result)
{
    if (ch->more_body) {
        PyObject *msg = body_message(ch);
        if (msg == NULL)
            return PYGEN_ERROR;
        if (msg == Py_None) {
            Py_DECREF(msg);
            return wait_on(ch, &ch->more, result);
        }
        if (msg != Py_False) {
            PyObject *more = PyDict_GetItemWithError(msg, GC_STR(more_body));
            ch->more_body = more == Py_True;
            *result = msg;
            return PYGEN_RETURN;
        }
        Py_DECREF(msg); /* the client left in the middle of the body */
        ch->more_body = 0;
    }
    if (!ch->disconnected && !ch->complete && ch->c != NULL && !gc__conn_app_gone(ch->c))
        return wait_on(ch, &ch->gone, result);
    ch->disconnected = 1;
    PyObject *msg = PyDict_New();
    if (msg == NULL || PyDict_SetItem(msg, GC_STR(type), GC_STR(http_disconnect)) < 0) {
        Py_XDECREF(msg);
        return PYGEN_ERROR;
    }
    *result = msg;
    return PYGEN_RETURN;
}

/* message[key], or dflt (borrowed; NULL: a KeyError) when it has none. Owned. */
static PyObject *msg_get(PyObject *msg, PyObject *key, PyObject *dflt)
{
    if (PyDict_Check(msg)) {
        PyObject *v = PyDict_GetItemWithError(msg, key);
        if (v != NULL)
            return Py_NewRef(v);
        if (PyErr_Occurred())
            return NULL;
        if (dflt == NULL)
            PyErr_SetObject(PyExc_KeyError, key);
        return Py_XNewRef(dflt);
    }
    PyObject *v = PyObject_GetItem(msg, key);
    if (v == NULL && dflt != NULL && PyErr_ExceptionMatches(PyExc_KeyError)) {
        PyErr_Clear();
        v = Py_NewRef(dflt);
    }
    return v;
}

/* The truth of message[key] (False when absent): 0, 1, or -1 with an exception. */
static int msg_flag(PyObject *msg, PyObject *key)
{
    PyObject *v = msg_get(msg, key, Py_False);
    if (v == NULL)
        return -1;
    int on = PyObject_IsTrue(v);
    Py_DECREF(v);
    return on;
}

static int is_type(PyObject *type, PyObject *name)
{
    return type == name || (PyUnicode_Check(type) && PyUnicode_Compare(type, name) == 0);
}

static int order_error(const char *what)
{
    PyErr_SetString(PyExc_RuntimeError, what);
    return -1;
}

/* One message of send(), its type already read. Returns 1 when send must await drain,
 * 0, or -1 with an exception. */
static int send_message(channel_t *ch, PyObject *type, PyObject *msg)
{
    if (is_type(type, GC_STR(http_response_body))) {
        if (!ch->started)
            return order_error("http.response.body before http.response.start");
        if (ch->complete)
            return order_error("http.response.body after the response was complete");
        int more = msg_flag(msg, GC_STR(more_body));
        if (more < 0)
            return -1;
        PyObject *body = msg_get(msg, GC_STR(body), NULL);
        if (body == NULL) {
            if (!PyErr_ExceptionMatches(PyExc_KeyError))
                return -1;
            PyErr_Clear();
            body = PyBytes_FromStringAndSize(NULL, 0);
            if (body == NULL)
                return -1;
        }
        if (!more)
            ch->complete = 1;
        int rc = send_body(ch, body, more);
        Py_DECREF(body);
        return rc;
    }
    if (is_type(type, GC_STR(http_response_start))) {
        if (ch->started)
            return order_error("http.response.start sent twice");
        int trailers = msg_flag(msg, GC_STR(trailers));
        PyObject *status = trailers < 0 ? NULL : msg_get(msg, GC_STR(status), NULL);
        PyObject *headers = status ? msg_get(msg, GC_STR(headers), PyTuple_New(0)) : NULL;
        int rc = headers ? start_response(ch, status, headers, trailers) : -1;
        Py_XDECREF(status);
        Py_XDECREF(headers);
        return rc;
    }
    PyObject *r = NULL;
    if (is_type(type, GC_STR(http_response_informational))) {
        if (ch->started)
            return order_error("http.response.informational after http.response.start");
        PyObject *status = msg_get(msg, GC_STR(status), NULL);
        PyObject *headers = status ? msg_get(msg, GC_STR(headers), PyTuple_New(0)) : NULL;
        PyObject *args = headers ? PyTuple_Pack(2, status, headers) : NULL;
        r = args ? ch_informational(ch, args) : NULL;
        Py_XDECREF(args);
        Py_XDECREF(status);
        Py_XDECREF(headers);
    } else if (is_type(type, GC_STR(http_response_trailers))) {
        int more = msg_flag(msg, GC_STR(more_trailers));
        PyObject *headers = more < 0 ? NULL : msg_get(msg, GC_STR(headers), PyTuple_New(0));
        PyObject *args = headers ? Py_BuildValue("(Oi)", headers, more) : NULL;
        r = args ? ch_trailers(ch, args) : NULL;
        Py_XDECREF(args);
        Py_XDECREF(headers);
        if (r != NULL && !more)
            ch->complete = 1;
    } else {
        PyErr_Format(PyExc_RuntimeError, "Unexpected ASGI message type %R", type);
    }
    if (r == NULL)
        return -1;
    Py_DECREF(r);
    return 0;
}

/* A WebSocket's receive(): websocket.connect, then the messages, then
 * websocket.disconnect. */
static PySendResult ws_receive_step(channel_t *ch, PyObject **result)
{
    if (!ch->ws_connected) {
        ch->ws_connected = 1;
        PyObject *msg = PyDict_New();
        if (msg == NULL || PyDict_SetItem(msg, GC_STR(type), GC_STR(websocket_connect)) < 0) {
            Py_XDECREF(msg);
            return PYGEN_ERROR;
        }
        *result = msg;
        return PYGEN_RETURN;
    }
    PyObject *msg = ch_ws_next(ch, NULL);
    if (msg == NULL)
        return PYGEN_ERROR;
    if (msg == Py_None) {
        Py_DECREF(msg);
        return wait_on(ch, &ch->arrived, result);
    }
    *result = msg;
    return PYGEN_RETURN;
}

/* Calls one of the ws_* methods with the message's fields. */
static PyObject *ws_call(PyCFunction fn, channel_t *ch, PyObject *a0, PyObject *a1)
{
    PyObject *args = a0 && a1 ? PyTuple_Pack(2, a0, a1) : NULL;
    PyObject *r = args ? fn((PyObject *)ch, args) : NULL;
    Py_XDECREF(args);
    Py_XDECREF(a0);
    Py_XDECREF(a1);
    return r;
}

/* One message of a WebSocket's send(). Returns as send_message. */
static int ws_send_message(channel_t *ch, PyObject *type, PyObject *msg)
{
    PyObject *r;
    if (is_type(type, GC_STR(websocket_send))) {
        PyObject *b = msg_get(msg, GC_STR(bytes), Py_None);
        PyObject *t = b ? msg_get(msg, GC_STR(text), Py_None) : NULL;
        r = ws_call((PyCFunction)ch_ws_send, ch, b, t);
    } else if (is_type(type, GC_STR(websocket_accept))) {
        PyObject *sub = msg_get(msg, GC_STR(subprotocol), Py_None);
        PyObject *empty = sub ? PyTuple_New(0) : NULL;
        PyObject *h = empty ? msg_get(msg, GC_STR(headers), empty) : NULL;
        Py_XDECREF(empty);
        r = ws_call((PyCFunction)ch_ws_accept, ch, sub, h);
    } else if (is_type(type, GC_STR(websocket_close))) {
        PyObject *code = msg_get(msg, GC_STR(code), NULL);
        if (code == NULL && PyErr_ExceptionMatches(PyExc_KeyError)) {
            PyErr_Clear();
            code = PyLong_FromLong(1000);
        }
        PyObject *reason = code ? msg_get(msg, GC_STR(reason), Py_None) : NULL;
        if (reason == Py_None) { /* None or absent: no reason */
            Py_DECREF(reason);
            reason = PyUnicode_FromStringAndSize(NULL, 0);
        }
        r = ws_call((PyCFunction)ch_ws_close, ch, code, reason);
    } else if (is_type(type, GC_STR(websocket_http_response_start))) {
        if (ch->denial)
            return order_error("websocket.http.response.start sent twice");
        ch->denial = 1;
        return send_message(ch, GC_STR(http_response_start), msg);
    } else if (is_type(type, GC_STR(websocket_http_response_body))) {
        if (!ch->denial)
            return order_error("websocket.http.response.body before its start");
        return send_message(ch, GC_STR(http_response_body), msg);
    } else {
        PyErr_Format(PyExc_RuntimeError, "Unexpected ASGI WebSocket message type %R", type);
        return -1;
    }
    if (r == NULL)
        return -1;
    int rc = r == Py_True;
    Py_DECREF(r);
    return rc;
}

static PySendResult send_step(op_t *op, PyObject **result)
{
    channel_t *ch = op->ch;
    if (op->msg != NULL) {
        PyObject *msg = op->msg;
        op->msg = NULL;
        PyObject *type = msg_get(msg, GC_STR(type), NULL);
        int rc = type == NULL             ? -1
                 : op->kind == OP_WS_SEND ? ws_send_message(ch, type, msg)
                                          : send_message(ch, type, msg);
        Py_XDECREF(type);
        Py_DECREF(msg);
        if (rc < 0)
            return PYGEN_ERROR;
        if (rc == 0) {
            *result = Py_NewRef(Py_None);
            return PYGEN_RETURN;
        }
    }
    /* Waiting for what the connection keeps to go out. */
    if (ch->c == NULL || !gc__conn_app_congested(ch->c)) {
        *result = Py_NewRef(Py_None);
        return PYGEN_RETURN;
    }
    return wait_on(ch, &ch->drain, result);
}

static PySendResult op_am_send(op_t *op, PyObject *arg, PyObject **result)
{
    (void)arg; /* the result of the future waited for: None */
    *result = NULL;
    switch (op->kind) {
    case OP_RECEIVE:
        return receive_step(op->ch, result);
    case OP_WS_RECEIVE:
        return ws_receive_step(op->ch, result);
    default:
        return send_step(op, result);
    }
}

/* The iterator protocol and Coroutine's send(): StopIteration carries what it returns. */
static PyObject *op_next(op_t *op)
{
    PyObject *result;
    PySendResult r = op_am_send(op, Py_None, &result);
    if (r == PYGEN_NEXT)
        return result;
    if (r == PYGEN_RETURN) {
        if (result != Py_None) {
            PyObject *stop = PyObject_CallOneArg(PyExc_StopIteration, result);
            if (stop != NULL) {
                PyErr_SetObject(PyExc_StopIteration, stop);
                Py_DECREF(stop);
            }
        }
        Py_DECREF(result);
    }
    return NULL;
}

static PyObject *op_send(op_t *op, PyObject *arg)
{
    (void)arg;
    PyObject *r = op_next(op);
    if (r == NULL && !PyErr_Occurred())
        PyErr_SetNone(PyExc_StopIteration);
    return r;
}

/* throw(): the task is cancelled (or the caller throws in): it is raised here. */
static PyObject *op_throw(op_t *op, PyObject *const *args, Py_ssize_t nargs)
{
    (void)op;
    if (nargs < 1 || nargs > 3) {
        PyErr_SetString(PyExc_TypeError, "throw expected 1 to 3 arguments");
        return NULL;
    }
    PyObject *typ = args[0], *val = nargs > 1 ? args[1] : NULL;
    if (PyExceptionInstance_Check(typ)) {
        PyErr_SetObject((PyObject *)Py_TYPE(typ), typ);
    } else if (PyExceptionClass_Check(typ)) {
        PyErr_SetObject(typ, val);
    } else {
        PyErr_SetString(PyExc_TypeError, "exceptions must derive from BaseException");
    }
    return NULL;
}

static PyObject *op_close(op_t *op, PyObject *unused)
{
    (void)op;
    (void)unused;
    Py_RETURN_NONE;
}

static PyObject *op_await(op_t *op)
{
    return Py_NewRef((PyObject *)op);
}

static void op_dealloc(op_t *op)
{
    Py_CLEAR(op->ch);
    Py_CLEAR(op->msg);
    PyObject_Free(op);
}

static PyMethodDef op_methods[] = {
    {"send", (PyCFunction)op_send, METH_O, NULL},
    {"throw", (PyCFunction)(void (*)(void))op_throw, METH_FASTCALL, NULL},
    {"close", (PyCFunction)op_close, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyAsyncMethods op_async = {
    .am_await = (unaryfunc)op_await,
#if GC_HAVE_AM_SEND
    .am_send = (sendfunc)op_am_send,
#endif
};

static PyTypeObject op_type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "gunicorn_c.ASGIOperation",
    .tp_basicsize = sizeof(op_t),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_dealloc = (destructor)op_dealloc,
    .tp_as_async = &op_async,
    .tp_iter = PyObject_SelfIter,
    .tp_iternext = (iternextfunc)op_next,
    .tp_methods = op_methods,
};

static PyObject *new_op(channel_t *ch, int kind, PyObject *msg)
{
    op_t *op = PyObject_New(op_t, &op_type);
    if (op == NULL)
        return NULL;
    op->ch = (channel_t *)Py_NewRef((PyObject *)ch);
    op->msg = Py_XNewRef(msg);
    op->kind = kind;
    return (PyObject *)op;
}

/* receive(): the scope's receive. */
static PyObject *ch_receive(channel_t *ch, PyObject *unused)
{
    (void)unused;
    return new_op(ch, ch->ws ? OP_WS_RECEIVE : OP_RECEIVE, NULL);
}

/* send(message): the scope's send. http.response.pathsend reads a file: asgi.py's
 * coroutine does that, through send_body and drain. */
static PyObject *ch_send(channel_t *ch, PyObject *msg)
{
    if (ch->ws)
        return new_op(ch, OP_WS_SEND, msg);
    if (PyDict_Check(msg)) {
        PyObject *type = PyDict_GetItemWithError(msg, GC_STR(type));
        if (type != NULL && is_type(type, GC_STR(http_response_pathsend))) {
            if (!ch->started || ch->complete) {
                order_error("http.response.pathsend out of order");
                return NULL;
            }
            ch->complete = 1;
            return PyObject_CallFunctionObjArgs(ch->a->pathsend, (PyObject *)ch, msg, NULL);
        }
        if (type == NULL && PyErr_Occurred())
            return NULL;
    }
    return new_op(ch, OP_SEND, msg);
}

static void ch_dealloc(channel_t *ch)
{
    if (ch->session != NULL)
        gc__ws_session_free(ch->session);
    Py_CLEAR(ch->inbox);
    Py_CLEAR(ch->arrived);
    Py_CLEAR(ch->task);
    Py_CLEAR(ch->more);
    Py_CLEAR(ch->headers);
    Py_CLEAR(ch->drain);
    Py_CLEAR(ch->gone);
    Py_CLEAR(ch->log_headers);
    PyObject_Free(ch);
}

static PyMethodDef ch_methods[] = {
    {"receive", (PyCFunction)ch_receive, METH_NOARGS, NULL},
    {"send", (PyCFunction)ch_send, METH_O, NULL},
    {"client_gone", (PyCFunction)ch_client_gone, METH_NOARGS, NULL},
    {"drain", (PyCFunction)ch_drain, METH_NOARGS, NULL},
    {"send_body", (PyCFunction)ch_send_body, METH_VARARGS, NULL},
    {"declare_length", (PyCFunction)ch_declare_length, METH_O, NULL},
    {"finish", (PyCFunction)ch_finish, METH_O, NULL},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject channel_type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "gunicorn_c.ASGIChannel",
    .tp_basicsize = sizeof(channel_t),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_dealloc = (destructor)ch_dealloc,
    .tp_methods = ch_methods,
};

/* --- the scope ---------------------------------------------------------------------- */

static int set_str(PyObject *d, PyObject *key, const char *s, size_t n)
{
    PyObject *v = PyUnicode_DecodeLatin1(s, (Py_ssize_t)n, NULL);
    int rc = v ? PyDict_SetItem(d, key, v) : -1;
    Py_XDECREF(v);
    return rc;
}

static int set_bytes(PyObject *d, PyObject *key, const char *s, size_t n)
{
    PyObject *v = PyBytes_FromStringAndSize(s, (Py_ssize_t)n);
    int rc = v ? PyDict_SetItem(d, key, v) : -1;
    Py_XDECREF(v);
    return rc;
}

/* The scope's method: the common ones interned. */
static int set_method(PyObject *d, gc__view_t m)
{
    if (m.len == 3 && memcmp(m.base, "GET", 3) == 0)
        return PyDict_SetItem(d, GC_STR(method), GC_STR(GET));
    if (m.len == 4 && memcmp(m.base, "POST", 4) == 0)
        return PyDict_SetItem(d, GC_STR(method), GC_STR(POST));
    return set_str(d, GC_STR(method), m.base, m.len);
}

/* The scope's path: the target's path percent-decoded, as UTF-8 (bytes that are not
 * UTF-8 kept as surrogates, so nothing is lost). `scratch` is the worker's buffer. */
static PyObject *decoded_path(gc__buf_t *scratch, gc__view_t path)
{
    if (gc__http_percent_decode(scratch, path) < 0)
        return PyErr_NoMemory();
    return PyUnicode_DecodeUTF8(scratch->data, (Py_ssize_t)scratch->len, "surrogateescape");
}

static PyObject *address(const char *host, const char *port)
{
    return Py_BuildValue("(si)", host, port ? atoi(port) : 0);
}

/* Whether the request came over TLS (an HTTP/2 stream: its connection did). */
static int conn_is_tls(const gc__conn_t *c)
{
    const gc__tls_peer_t *peer;
    return c->stream != NULL ? gc__h2conn_tls(c, &peer) != NULL : gc__transport_is_tls(&c->tr);
}

static PyObject *http_version(const gc__conn_t *c)
{
    if (c->stream != NULL)
        return GC_STR(v2);
    return c->parser.req.minor >= 1 ? GC_STR(v1_1) : GC_STR(v1_0);
}

/* root_path: WSGI's SCRIPT_NAME (a trusted front end's header, else the environment
 * variable), else --root-path. */
static int set_root_path(PyObject *scope, asgi_t *a, const gc__http_request_t *req)
{
    if (req->script_name < 0)
        return PyDict_SetItem(scope, GC_STR(root_path), a->root_path);
    gc__view_t v = gc__http_field_value(req, (size_t)req->script_name);
    return set_str(scope, GC_STR(root_path), v.base, v.len);
}

static PyObject *build_scope(asgi_t *a, gc__conn_t *c)
{
    const gc__http_request_t *req = &c->parser.req;
    const gc__listener_t *l = c->listener;
    PyObject *scope = PyDict_New();
    if (scope == NULL)
        return NULL;
    gc__view_t method = gc__http_method(req), target = gc__http_target(req), path, query;
    gc__http_split_target(target, &path, &query);
    /* An absolute-form target: the scope's path is its path part. */
    if (path.len > 0 && path.base[0] != '/') {
        const char *slash = memchr(path.base, '/', path.len);
        const char *scheme_end = memchr(path.base, ':', path.len);
        if (scheme_end && scheme_end + 2 < path.base + path.len && scheme_end[1] == '/' &&
            scheme_end[2] == '/') {
            const char *p3 =
                memchr(scheme_end + 3, '/', (size_t)(path.base + path.len - (scheme_end + 3)));
            path = p3 ? gc__view(p3, (size_t)(path.base + path.len - p3)) : gc__view("/", 1);
        } else if (slash) {
            path = gc__view(slash, (size_t)(path.base + path.len - slash));
        }
    }
    int scheme_https = req->url_scheme == GC_SCHEME_HTTPS  ? 1
                       : req->url_scheme == GC_SCHEME_HTTP ? 0
                                                           : conn_is_tls(c);
    PyObject *headers = PyList_New((Py_ssize_t)req->nfields);
    if (headers == NULL)
        goto fail;
    for (size_t i = 0; i < req->nfields; i++) {
        gc__view_t name = gc__http_field_name(req, i), value = gc__http_field_value(req, i);
        PyObject *n = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)name.len);
        if (n == NULL) {
            Py_DECREF(headers);
            goto fail;
        }
        char *d = PyBytes_AS_STRING(n);
        for (size_t j = 0; j < name.len; j++)
            d[j] = name.base[j] >= 'A' && name.base[j] <= 'Z' ? (char)(name.base[j] + 32)
                                                              : name.base[j];
        PyObject *v = PyBytes_FromStringAndSize(value.base, (Py_ssize_t)value.len);
        PyObject *pair = v ? PyTuple_Pack(2, n, v) : NULL;
        Py_DECREF(n);
        Py_XDECREF(v);
        if (pair == NULL) {
            Py_DECREF(headers);
            goto fail;
        }
        PyList_SET_ITEM(headers, (Py_ssize_t)i, pair);
    }
    int rc = PyDict_SetItem(scope, GC_STR(headers), headers);
    Py_DECREF(headers);
    if (rc < 0)
        goto fail;
    PyObject *p = decoded_path(&gc__conn_worker(c)->wsgi.scratch, path);
    rc = p ? PyDict_SetItem(scope, GC_STR(path), p) : -1;
    Py_XDECREF(p);
    if (rc < 0)
        goto fail;
    gc__wsgi_peer_t peer;
    request_peer(c, &peer);
    PyObject *client = peer.remote_addr[0] == '\0' ? Py_NewRef(Py_None)
                                                   : address(peer.remote_addr, peer.remote_port);
    PyObject *server = l->is_unix ? Py_BuildValue("(sO)", l->unix_path ? l->unix_path : "", Py_None)
                                  : address(l->host, l->port);
    if (client == NULL || server == NULL || PyDict_SetItem(scope, GC_STR(client), client) < 0 ||
        PyDict_SetItem(scope, GC_STR(server), server) < 0) {
        Py_XDECREF(client);
        Py_XDECREF(server);
        goto fail;
    }
    Py_DECREF(client);
    Py_DECREF(server);
    if (PyDict_SetItem(scope, GC_STR(type), GC_STR(http)) < 0 ||
        PyDict_SetItem(scope, GC_STR(asgi), a->asgi_version) < 0 ||
        PyDict_SetItem(scope, GC_STR(http_version), http_version(c)) < 0 ||
        set_method(scope, method) < 0 ||
        PyDict_SetItem(scope, GC_STR(scheme), scheme_https ? GC_STR(https) : GC_STR(http)) < 0 ||
        set_bytes(scope, GC_STR(raw_path), path.base, path.len) < 0 ||
        set_bytes(scope, GC_STR(query_string), query.base, query.len) < 0 ||
        set_root_path(scope, a, req) < 0 ||
        PyDict_SetItem(scope, GC_STR(extensions), a->extensions) < 0)
        goto fail;
    return scope;
fail:
    Py_DECREF(scope);
    return NULL;
}

/* Makes an HTTP scope a WebSocket one: type, scheme ws/wss, subprotocols. */
static int ws_scope(PyObject *scope, const gc__ws_handshake_t *hs, gc__conn_t *c)
{
    PyObject *scheme = PyDict_GetItemString(scope, "scheme");
    int secure = scheme != NULL && PyUnicode_CompareWithASCIIString(scheme, "https") == 0;
    PyObject *protos = PyList_New((Py_ssize_t)hs->nprotocols);
    if (protos == NULL)
        return -1;
    for (size_t i = 0; i < hs->nprotocols; i++) {
        PyObject *p =
            PyUnicode_DecodeLatin1(hs->protocols[i].base, (Py_ssize_t)hs->protocols[i].len, NULL);
        if (p == NULL) {
            Py_DECREF(protos);
            return -1;
        }
        PyList_SET_ITEM(protos, (Py_ssize_t)i, p);
    }
    PyObject *ext = Py_BuildValue("{s{}}", "websocket.http.response");
    PyObject *type = PyUnicode_FromString("websocket");
    PyObject *ws = PyUnicode_FromString(secure ? "wss" : "ws");
    int rc = ext && type && ws && PyDict_SetItemString(scope, "subprotocols", protos) == 0 &&
                     PyDict_SetItemString(scope, "extensions", ext) == 0 &&
                     PyDict_SetItemString(scope, "type", type) == 0 &&
                     PyDict_SetItemString(scope, "scheme", ws) == 0 &&
                     PyDict_DelItemString(scope, "method") == 0
                 ? 0
                 : -1;
    (void)c;
    Py_DECREF(protos);
    Py_XDECREF(ext);
    Py_XDECREF(type);
    Py_XDECREF(ws);
    return rc;
}

/* --- the class ---------------------------------------------------------------------- */

/* Hands a complete request to the application. */
static void spawn(gc__conn_t *c, const gc__ws_handshake_t *hs)
{
    gc__worker_t *w = gc__conn_worker(c);
    asgi_t *a = state_of(w);
    gc__worker_gil(w);
    channel_t *ch = PyObject_New(channel_t, &channel_type);
    PyObject *scope = NULL, *r = NULL;
    if (ch == NULL)
        goto fail;
    ch->c = c;
    ch->a = a;
    ch->prev = ch->next = NULL;
    ch->more_body = 1;
    ch->disconnected = ch->complete = ch->ws_connected = ch->denial = 0;
    ch->body_off = 0;
    ch->status = 0;
    ch->started = ch->head_sent = ch->chunked = ch->trailers = 0;
    gc__view_t m = gc__http_method(&c->parser.req);
    ch->head_request = m.len == 4 && memcmp(m.base, "HEAD", 4) == 0;
    ch->keep = c->parser.req.keep_alive && !w->stopping && gc__cfg_int(w->cfg, GC_S_keepalive) > 0;
    ch->length = ch->declared = -1;
    ch->sent = 0;
    ch->headers = ch->drain = ch->gone = ch->task = ch->more = NULL;
    ch->paused = 0;
    ch->t0 = gc__monotonic_us();
    ch->ws = hs != NULL;
    ch->session = NULL;
    ch->inbox = ch->arrived = NULL;
    ch->ws_closed = ch->ws_code = 0;
    ch->log_headers = NULL;
    if (hs != NULL)
        ch->hs = *hs;
    c->app = ch;
    scope = build_scope(a, c);
    if (scope == NULL || (hs != NULL && ws_scope(scope, hs, c) < 0))
        goto fail;
    if (gc__log_enabled(GC_LOG_DEBUG)) {
        gc__view_t t = gc__http_target(&c->parser.req);
        gc__debug("%.*s %.*s", (int)m.len, m.base, (int)t.len, t.base);
    }
    if (a->state != NULL) { /* a copy of what lifespan startup put there */
        PyObject *state = PyDict_Copy(a->state);
        int rc = state ? PyDict_SetItem(scope, GC_STR(state), state) : -1;
        Py_XDECREF(state);
        if (rc < 0)
            goto fail;
    }
    PyObject *coro = PyObject_CallFunctionObjArgs(a->run, scope, (PyObject *)ch, NULL);
    r = coro ? PyObject_CallOneArg(a->create_task, coro) : NULL;
    Py_XDECREF(coro);
    if (r == NULL)
        goto fail;
    ch->task = r;
    Py_DECREF(scope);
    /* The live list keeps our reference: asyncio holds tasks weakly. */
    ch->next = a->live;
    if (a->live)
        a->live->prev = ch;
    a->live = ch;
    gc__conn_app_listen(c);
    return;
fail:
    gc__py_log_exception(GC_LOG_ERROR, "Cannot start the ASGI application's task");
    Py_XDECREF(scope);
    if (ch != NULL) {
        PyObject *two = PyLong_FromLong(2);
        PyObject *rr = two ? ch_finish(ch, two) : NULL;
        Py_XDECREF(rr);
        Py_XDECREF(two);
        PyErr_Clear();
        Py_DECREF(ch);
    } else {
        gc__conn_app_done(c, 0);
    }
}

/* A request that asks for a WebSocket ("Upgrade: websocket"). */
static int wants_websocket(const gc__http_request_t *req)
{
    ssize_t i = gc__http_find_field(req, "upgrade");
    if (i < 0)
        return 0;
    gc__view_t v = gc__http_field_value(req, (size_t)i);
    return gc__view_ieq(v, "websocket");
}

static void asgi_run(gc__conn_t *c)
{
    if (wants_websocket(&c->parser.req)) {
        gc__ws_handshake_t hs;
        if (c->parser.req.body_pending || gc__ws_handshake_check(&c->parser.req, &hs) != 0) {
            int status = c->parser.req.body_pending ? 400 : hs.status;
            gc__debug("WebSocket handshake refused (%d): %s", status,
                      c->parser.req.body_pending ? "a body" : hs.error);
            gc__buf_t out;
            gc__buf_init(&out);
            if (gc__http_write_error(&out, status, "") == 0) {
                if (status == 426) { /* RFC 6455 4.4: say which version we speak */
                    char *end = memmem(out.data, out.len, "\r\n", 2);
                    if (end != NULL) {
                        size_t at = (size_t)(end - out.data) + 2;
                        static const char v13[] = "Sec-WebSocket-Version: 13\r\n";
                        if (gc__buf_reserve(&out, sizeof(v13)) == 0) {
                            memmove(out.data + at + sizeof(v13) - 1, out.data + at, out.len - at);
                            memcpy(out.data + at, v13, sizeof(v13) - 1);
                            out.len += sizeof(v13) - 1;
                        }
                    }
                }
                gc__conn_app_write(c, &(struct iovec){out.data, out.len}, 1);
            }
            gc__buf_free(&out);
            gc__conn_app_done(c, 0);
            return;
        }
        spawn(c, &hs);
        return;
    }
    if (c->parser.req.body_pending) {
        /* Handed over at its head: the body is read while the task runs, which
         * receive() hands over as it comes. 100 Continue goes out first when the
         * client waits for it. */
        static const char line[] = "HTTP/1.1 100 Continue\r\n\r\n";
        if (c->parser.req.expect_continue) {
            c->continue_sent = 1;
            if (gc__conn_app_write(c, &(struct iovec){(void *)line, sizeof(line) - 1}, 1) < 0) {
                gc__conn_app_done(c, 0);
                return;
            }
        }
        spawn(c, NULL);
        if (c->app != NULL)
            gc__conn_app_read_body(c);
        return;
    }
    spawn(c, NULL);
}

/* More of a streamed body arrived, or it ended: wake receive(), and stop reading while
 * the application is more than BODY_AHEAD_MAX behind. */
static void asgi_body_done(gc__conn_t *c)
{
    channel_t *ch = c->app;
    if (ch == NULL)
        return;
    gc__worker_gil(gc__conn_worker(c));
    if (c->parser.state == GC_HTTP_READY) {
        c->parser.req.body_pending = 0;
    } else if (c->parser.state == GC_HTTP_ERROR) {
        /* A malformed body (a bad chunk): its status and error page when no response
         * has begun, as for a malformed head; the application sees the client gone. */
        gc__debug("Invalid request body from %s: %s", c->remote_addr, c->parser.error_msg);
        if (!ch->head_sent) {
            int status = c->parser.error_status ? c->parser.error_status : 400;
            write_error_page(c, status, c->parser.error_msg);
            ch->head_sent = 1;
            ch->status = status;
            ch->keep = 0;
        }
        gc__conn_app_abandon(c);
        return;
    }
    uint64_t ahead = c->parser.req.body.len - ch->body_off;
    if (c->parser.state == GC_HTTP_NEED_MORE && ahead > BODY_AHEAD_MAX && !ch->paused) {
        ch->paused = 1;
        gc__conn_app_pause_body(c, 1);
    }
    resolve(ch->a, &ch->more);
}

static void asgi_gone(gc__conn_t *c)
{
    channel_t *ch = c->app;
    if (ch == NULL)
        return;
    gc__worker_gil(gc__conn_worker(c));
    resolve(ch->a, &ch->gone);
    resolve(ch->a, &ch->drain);
    resolve(ch->a, &ch->more);
    resolve(ch->a, &ch->arrived);
    if (ch->task != NULL && !ch->ws) {
        PyObject *r = PyObject_CallMethod(ch->a->server, "client_gone", "O", ch->task);
        Py_XDECREF(r);
        PyErr_Clear();
    }
}

static void asgi_drained(gc__conn_t *c)
{
    channel_t *ch = c->app;
    if (ch == NULL)
        return;
    gc__worker_gil(gc__conn_worker(c));
    resolve(ch->a, &ch->drain);
}

/* Schedules the next turn for when libuv's next timer is due. */
static int schedule(asgi_t *a, gc__worker_t *w)
{
    int ms = uv_backend_timeout(w->loop);
    if (ms < 0)
        ms = 1000; /* no timer: look again in a second anyway */
    PyObject *now = PyObject_CallNoArgs(a->loop_time);
    if (now == NULL)
        return -1;
    double at = PyFloat_AsDouble(now) + ms / 1000.0;
    Py_DECREF(now);
    if (a->timer != NULL && a->timer_at <= at + 0.0005)
        return 0; /* the one scheduled comes first */
    if (a->timer != NULL) {
        PyObject *r = PyObject_CallMethodNoArgs(a->timer, a->str_cancel);
        Py_XDECREF(r);
        Py_CLEAR(a->timer);
    }
    PyObject *when = PyFloat_FromDouble(at);
    a->timer = when ? PyObject_CallFunctionObjArgs(a->call_at, when, a->turn, NULL) : NULL;
    Py_XDECREF(when);
    a->timer_at = at;
    return a->timer ? 0 : -1;
}

/* turn(): one turn of libuv, from the asyncio loop (its descriptor was readable, or a
 * libuv timer is due). */
static PyObject *run_turn(gc__worker_t *w, int flush)
{
    asgi_t *a = state_of(w);
    a->in_turn = 1;
    w->app_batch = 0;
    if (flush) {
        a->turn_asked = 0;
        gc__conns_app_flush(w);
    }
    uv_run(w->loop, UV_RUN_NOWAIT);
    w->app_batch = 1;
    a->in_turn = 0;
    if (PyErr_Occurred())
        return NULL; /* a signal handler's SystemExit: out of run_forever */
    if (a->leaving)
        Py_RETURN_NONE;
    /* A timer that fired is done: the next schedule makes a new one. */
    if (a->timer != NULL) {
        PyObject *now = PyObject_CallNoArgs(a->loop_time);
        if (now != NULL && PyFloat_AsDouble(now) >= a->timer_at)
            Py_CLEAR(a->timer);
        Py_XDECREF(now);
    }
    if (schedule(a, w) < 0)
        return NULL;
    Py_RETURN_NONE;
}

/* The turn asyncio runs when libuv's descriptor is readable or its timer is due. What
 * the tasks sent waits for turn_flush: flushing here, right before reading, would send
 * the responses with no time for the client to answer them before the read (measured:
 * 16 responses a flush, against about 33 when the tasks' work comes in between, and
 * the client woken once a flush). */
static PyObject *turn(PyObject *self, PyObject *unused)
{
    (void)unused;
    return run_turn(PyCapsule_GetPointer(self, NULL), 0);
}

/* The turn want_turn asks for, among the tasks' callbacks: what they sent goes out. */
static PyObject *turn_flush(PyObject *self, PyObject *unused)
{
    (void)unused;
    return run_turn(PyCapsule_GetPointer(self, NULL), 1);
}

static PyMethodDef turn_def = {"turn", turn, METH_NOARGS, NULL};
static PyMethodDef turn_flush_def = {"turn_flush", turn_flush, METH_NOARGS, NULL};

static PyObject *import_glue(void)
{
    PyObject *mod = PyImport_ImportModule("_gunicorn_c_asgi");
    if (mod != NULL)
        return mod;
    PyErr_Clear();
    PyObject *code = Py_CompileString(gc__asgi_py_source, "<gunicorn-c asgi>", Py_file_input);
    if (code == NULL)
        return NULL;
    mod = PyImport_ExecCodeModule("_gunicorn_c_asgi", code);
    Py_DECREF(code);
    return mod;
}

static int asgi_start(gc__worker_t *w)
{
    asgi_t *a = calloc(1, sizeof(*a));
    if (a == NULL)
        return -1;
    w->class_data = a;
    if (PyType_Ready(&channel_type) < 0 || PyType_Ready(&op_type) < 0)
        goto fail;
    PyObject *mod = import_glue();
    if (mod == NULL)
        goto fail;
    const gc__config_t *cfg = w->cfg;
    a->server = PyObject_CallMethod(
        mod, "Server", "Ossl", w->wsgi.app, gc__cfg_str(cfg, GC_S_asgi_loop),
        gc__cfg_str(cfg, GC_S_asgi_lifespan), gc__cfg_int(cfg, GC_S_asgi_disconnect_grace_period));
    if (a->server == NULL) {
        Py_DECREF(mod);
        goto fail;
    }
    a->run = PyObject_GetAttrString(a->server, "run");
    a->pathsend = PyObject_GetAttrString(mod, "pathsend");
    a->loop = PyObject_GetAttrString(a->server, "loop");
    a->call_at = a->loop ? PyObject_GetAttrString(a->loop, "call_at") : NULL;
    a->call_soon = a->loop ? PyObject_GetAttrString(a->loop, "call_soon") : NULL;
    a->create_task = a->loop ? PyObject_GetAttrString(a->loop, "create_task") : NULL;
    a->loop_time = a->loop ? PyObject_GetAttrString(a->loop, "time") : NULL;
    a->create_future = a->loop ? PyObject_GetAttrString(a->loop, "create_future") : NULL;
    PyObject *self = PyCapsule_New(w, NULL, NULL);
    a->turn = self ? PyCFunction_New(&turn_def, self) : NULL;
    a->turn_flush = self ? PyCFunction_New(&turn_flush_def, self) : NULL;
    Py_XDECREF(self);
    a->asgi_version = Py_BuildValue("{ssss}", "version", "3.0", "spec_version", "2.4");
    a->extensions = Py_BuildValue("{s{}s{}s{}}", "http.response.informational",
                                  "http.response.trailers", "http.response.pathsend");
    const char *root = getenv("SCRIPT_NAME"); /* as WSGI's SCRIPT_NAME, when set */
    if (root == NULL || root[0] == '\0')
        root = gc__cfg_str(cfg, GC_S_root_path);
    a->root_path = PyUnicode_FromString(root ? root : "");
    a->str_set_result = PyUnicode_InternFromString("set_result");
    a->str_cancel = PyUnicode_InternFromString("cancel");
    a->str_done = PyUnicode_InternFromString("done");
    Py_DECREF(mod);
    if (!a->run || !a->pathsend || !a->create_task || !a->loop || !a->call_at || !a->call_soon ||
        !a->loop_time || !a->create_future || !a->turn || !a->turn_flush || !a->asgi_version ||
        !a->extensions || !a->root_path || !a->str_set_result || !a->str_cancel || !a->str_done)
        goto fail;
    PyObject *ok = PyObject_CallMethod(a->server, "startup", NULL);
    if (ok == NULL)
        goto fail;
    int serve = PyObject_IsTrue(ok);
    Py_DECREF(ok);
    if (serve != 1) {
        gc__error("Application startup failed. Exiting.");
        return -1;
    }
    PyObject *supports = PyObject_GetAttrString(a->server, "supports_lifespan");
    if (supports == NULL)
        goto fail;
    if (supports == Py_True && (a->state = PyObject_GetAttrString(a->server, "state")) == NULL) {
        Py_DECREF(supports);
        goto fail;
    }
    Py_DECREF(supports);
    return 0;
fail:
    gc__py_log_exception(GC_LOG_ERROR, "Cannot start the ASGI worker");
    return -1;
}

static void asgi_serve(gc__worker_t *w)
{
    asgi_t *a = state_of(w);
    a->serving = 1;
    w->app_batch = 1;
    PyObject *r = PyObject_CallMethod(a->server, "serve", "iO", uv_backend_fd(w->loop), a->turn);
    w->app_batch = 0;
    gc__conns_app_flush(w);
    a->serving = 0;
    if (r == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_SystemExit))
            gc__py_log_exception(GC_LOG_ERROR, "The ASGI event loop failed");
        PyErr_Clear();
        /* INT, QUIT, ABRT (a handler's SystemExit), or a failure: no lifespan shutdown. */
        gc__worker_quit(w, w->signal_exit >= 0 ? w->signal_exit : 1);
        return;
    }
    Py_DECREF(r);
    if (w->exit_code == 0 && w->signal_exit < 0) {
        r = PyObject_CallMethod(a->server, "shutdown", NULL);
        Py_XDECREF(r);
        PyErr_Clear();
    }
    gc__worker_exit(w);
}

/* gc__worker_exit from inside a turn: stop the asyncio loop; serve calls it again. */
static int asgi_leave(gc__worker_t *w)
{
    asgi_t *a = state_of(w);
    if (a == NULL || !a->serving)
        return 0;
    if (!a->leaving) {
        a->leaving = 1;
        PyObject *r = PyObject_CallMethod(a->server, "stop", NULL);
        Py_XDECREF(r);
        PyErr_Clear();
    }
    return 1;
}

static int asgi_stop(gc__worker_t *w)
{
    asgi_t *a = state_of(w);
    if (a == NULL || a->server == NULL)
        return 1;
    PyObject *tasks = PyList_New(0);
    for (channel_t *ch = a->live; ch != NULL && tasks != NULL; ch = ch->next)
        if (ch->task != NULL && PyList_Append(tasks, ch->task) < 0)
            Py_CLEAR(tasks);
    PyObject *r = tasks ? PyObject_CallMethod(a->server, "cancel_all", "O", tasks) : NULL;
    Py_XDECREF(r);
    Py_XDECREF(tasks);
    PyErr_Clear();
    w->app_batch = 0;
    gc__conns_app_flush(w);
    return 1;
}

static void asgi_sink_setup(gc__conn_t *c, gc__sink_t *sink)
{
    (void)c;
    (void)sink;
}

const gc__worker_class_t gc__asgi_class = {
    .name = "asgi",
    .start = asgi_start,
    .run = asgi_run,
    .sink_setup = asgi_sink_setup,
    .serve = asgi_serve,
    .stop = asgi_stop,
    .leave = asgi_leave,
    .gone = asgi_gone,
    .drained = asgi_drained,
    .body_done = asgi_body_done,
    .stream_bytes = asgi_stream_bytes,
    .multithread = 0,
    .streams_bodies = 1,
};
