/* control.c: the control socket (see control.h and docs/control.md).
 *
 * The listening socket is made here with socket(2)/bind(2) and handed to libuv with
 * uv_pipe_open, rather than with uv_pipe_bind: libuv unlinks the file of a bound pipe
 * when the handle closes, and every forked worker closes the arbiter's handles. The
 * file is ours to remove, and only while it is still the one we made.
 *
 * A client is a uv_pipe_t and an idle timer; both must have closed before its memory
 * goes. Frames are bounded (16 MiB, as Gunicorn), clients are bounded, and anything
 * malformed gets an error answer: nothing a client sends can stop the master.
 *
 * This file is the socket, its clients, the framing and the parsing of requests; the
 * commands are commands.c's, the show commands' answers show.c's. */
#include "arbiter/control.h"
#include "arbiter/internal.h"
#include "python/runtime.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/buf.h"
#include "log/log.h"
#include "python/pycompat.h"

#define MAX_FRAME (16u * 1024 * 1024)
#define MAX_CLIENTS 32
#define IDLE_TIMEOUT_MS (300u * 1000)
#define MAX_WORDS 64

typedef struct gc__control_client {
    uv_pipe_t pipe;
    uv_timer_t idle;
    gc__control_t *ctl;
    gc__buf_t in;
    int open_handles; /* freed when both handles have closed */
    int closing;
    int drop_after_write; /* an oversized frame: answer, then hang up */
    unsigned writes;      /* uv_write requests in flight */
    struct gc__control_client *next;
} client_t;

typedef struct {
    uv_write_t req;
    client_t *client;
    size_t len;
    char data[]; /* the frame: length prefix and JSON */
} write_t;

/* Requests are parsed in Python: json for the framing's payload, shlex for the
 * command words, as Gunicorn splits them. Returns (id as JSON text, words or None,
 * error or None). */
/* --- clients ---------------------------------------------------------------------- */

static void on_client_closed(uv_handle_t *h)
{
    client_t *c = h->data;
    if (--c->open_handles > 0)
        return;
    gc__buf_free(&c->in);
    free(c);
}

static void client_close(client_t *c)
{
    if (c->closing)
        return;
    c->closing = 1;
    gc__control_t *ctl = c->ctl;
    for (client_t **p = &ctl->clients; *p; p = &(*p)->next)
        if (*p == c) {
            *p = c->next;
            ctl->nclients--;
            break;
        }
    uv_close((uv_handle_t *)&c->pipe, on_client_closed);
    uv_close((uv_handle_t *)&c->idle, on_client_closed);
}

static void on_written(uv_write_t *req, int status)
{
    write_t *w = req->data;
    client_t *c = w->client;
    free(w);
    /* ECANCELED: the handle is closing (a forked worker closes everything it
     * inherited); the client is not ours to touch any more. */
    if (status == UV_ECANCELED)
        return;
    c->writes--;
    if (status < 0 || (c->drop_after_write && c->writes == 0))
        client_close(c);
}

/* Queues one frame: the 4-byte big-endian length, then the JSON. */
static void send_frame(client_t *c, const gc__buf_t *json)
{
    size_t len = json->len;
    write_t *w = malloc(sizeof(*w) + 4 + len);
    if (w == NULL) {
        client_close(c);
        return;
    }
    w->client = c;
    w->len = 4 + len;
    w->data[0] = (char)(len >> 24);
    w->data[1] = (char)(len >> 16);
    w->data[2] = (char)(len >> 8);
    w->data[3] = (char)len;
    memcpy(w->data + 4, json->data, len);
    w->req.data = w;
    uv_buf_t buf = uv_buf_init(w->data, (unsigned)w->len);
    if (uv_write(&w->req, (uv_stream_t *)&c->pipe, &buf, 1, on_written) < 0) {
        free(w);
        client_close(c);
        return;
    }
    c->writes++;
}

static void send_error(client_t *c, const char *rid, const char *message)
{
    gc__buf_t out;
    gc__buf_init(&out);
    gc__buf_printf(&out, "{\"id\": %s, \"status\": \"error\", \"error\": ", rid ? rid : "null");
    gc__control_json_str(&out, message);
    gc__buf_append_str(&out, "}");
    send_frame(c, &out);
    gc__buf_free(&out);
}

static void send_ok(client_t *c, const char *rid, const gc__buf_t *data)
{
    gc__buf_t out;
    gc__buf_init(&out);
    gc__buf_printf(&out, "{\"id\": %s, \"status\": \"ok\", \"data\": ", rid);
    gc__buf_append(&out, data->data, data->len);
    gc__buf_append_str(&out, "}");
    send_frame(c, &out);
    gc__buf_free(&out);
}

/* --- requests --------------------------------------------------------------------- */

/* A request, parsed: its id and its command words, or why it cannot run. */
typedef struct {
    char *rid;              /* owned: the id as JSON text; NULL when memory ran out */
    char *words[MAX_WORDS]; /* owned */
    size_t nwords;
    const char *error; /* static, or in err */
    char err[512];
} request_t;

/* Copies the words of a parsed request (a Python list of str, borrowed) into r. */
static void take_words(request_t *r, PyObject *list)
{
    Py_ssize_t n = PyList_GET_SIZE(list);
    if (n > MAX_WORDS) {
        r->error = "Invalid argument: too many words";
        n = 0;
    }
    for (Py_ssize_t i = 0; i < n && r->error == NULL; i++) {
        /* A lone surrogate (\ud800 in the JSON) cannot be UTF-8. */
        const char *s = PyUnicode_AsUTF8(PyList_GET_ITEM(list, i));
        if (s == NULL)
            r->error = "Invalid argument: not valid UTF-8";
        else if ((r->words[r->nwords] = strdup(s)) == NULL)
            r->error = "Command failed: out of memory";
        else
            r->nwords++;
    }
}

/* Parses one payload with the parser (make_parser) into r. Returns 0, or -1 when the parser
 * itself failed (r is then empty). */
static int parse_request(gc__control_t *ctl, const char *payload, size_t len, request_t *r)
{
    PyObject *raw = PyBytes_FromStringAndSize(payload, (Py_ssize_t)len);
    PyObject *res = raw ? PyObject_CallOneArg(ctl->parse, raw) : NULL;
    Py_XDECREF(raw);
    if (res == NULL || !PyTuple_Check(res) || PyTuple_GET_SIZE(res) != 3) {
        PyErr_Clear();
        Py_XDECREF(res);
        return -1;
    }
    /* Borrowed from res until it goes. */
    PyObject *prid = PyTuple_GET_ITEM(res, 0), *pwords = PyTuple_GET_ITEM(res, 1),
             *perr = PyTuple_GET_ITEM(res, 2);
    const char *s = PyUnicode_Check(prid) ? PyUnicode_AsUTF8(prid) : NULL;
    r->rid = strdup(s ? s : "null");
    if (perr != Py_None) {
        s = PyUnicode_AsUTF8(perr);
        snprintf(r->err, sizeof(r->err), "%s", s ? s : "Invalid request");
        r->error = r->err;
    } else if (PyList_Check(pwords)) {
        take_words(r, pwords);
    }
    PyErr_Clear();
    Py_DECREF(res);
    return 0;
}

/* One request's payload: parse, run, answer. */
static void handle_message(client_t *c, const char *payload, size_t len)
{
    request_t r = {.rid = NULL};
    if (parse_request(c->ctl, payload, len, &r) < 0) {
        send_error(c, NULL, "Command failed: cannot parse the request");
        return;
    }
    gc__buf_t data;
    gc__buf_init(&data);
    if (r.error == NULL)
        r.error = gc__control_run(c->ctl, r.words, r.nwords, &data, r.err, sizeof(r.err));
    if (r.error != NULL || r.rid == NULL)
        send_error(c, r.rid, r.error ? r.error : "Command failed: out of memory");
    else
        send_ok(c, r.rid, &data);
    gc__buf_free(&data);
    for (size_t i = 0; i < r.nwords; i++)
        free(r.words[i]);
    free(r.rid);
}

static void on_idle(uv_timer_t *t)
{
    client_close(t->data);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    client_t *c = h->data;
    *buf = uv_buf_init(c->ctl->readbuf, sizeof(c->ctl->readbuf));
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    client_t *c = s->data;
    if (nread < 0) {
        client_close(c);
        return;
    }
    if (nread == 0 || c->drop_after_write)
        return;
    uv_timer_again(&c->idle);
    if (gc__buf_append(&c->in, buf->base, (size_t)nread) < 0) {
        client_close(c);
        return;
    }
    while (!c->closing && c->in.len >= 4) {
        const unsigned char *p = (const unsigned char *)c->in.data;
        uint32_t len = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
        if (len > MAX_FRAME) {
            /* The stream cannot be resynchronised: answer and hang up. */
            send_error(c, NULL, "Invalid request: message too large");
            c->drop_after_write = 1;
            uv_read_stop(s);
            if (c->writes == 0)
                client_close(c);
            return;
        }
        if (c->in.len < 4 + (size_t)len)
            break;
        handle_message(c, c->in.data + 4, len);
        gc__buf_consume(&c->in, 4 + (size_t)len);
    }
}

static void on_connection(uv_stream_t *server, int status)
{
    gc__control_t *ctl = server->data;
    if (status < 0)
        return;
    client_t *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return;
    c->ctl = ctl;
    gc__buf_init(&c->in);
    uv_pipe_init(ctl->loop, &c->pipe, 0);
    uv_timer_init(ctl->loop, &c->idle);
    c->pipe.data = c->idle.data = c;
    c->open_handles = 2;
    c->next = ctl->clients;
    ctl->clients = c;
    ctl->nclients++;
    if (uv_accept(server, (uv_stream_t *)&c->pipe) < 0 || ctl->nclients > MAX_CLIENTS) {
        client_close(c);
        return;
    }
    /* A connected client must not keep a stopping master's loop alive. */
    uv_unref((uv_handle_t *)&c->pipe);
    uv_unref((uv_handle_t *)&c->idle);
    uv_timer_start(&c->idle, on_idle, IDLE_TIMEOUT_MS, IDLE_TIMEOUT_MS);
    uv_read_start((uv_stream_t *)&c->pipe, on_alloc, on_read);
}

/* --- start and stop --------------------------------------------------------------- */

static void on_server_closed(uv_handle_t *h)
{
    free(h->data);
}

/* mkdir -p with mode 0700 for the directories it creates. */
static int make_parents(char *path)
{
    for (char *p = path + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        int rc = mkdir(path, 0700);
        *p = '/';
        if (rc < 0 && errno != EEXIST)
            return -errno;
    }
    return 0;
}

/* The request parser (runtime.py's parse_control_request): Python's json and shlex. */
static PyObject *make_parser(void)
{
    PyObject *fn = gc__rt_function("parse_control_request");
    if (fn == NULL)
        PyErr_Clear();
    return fn;
}

/* Why the socket could not be opened: a phrase, and a negative errno or 0. */
typedef struct {
    const char *why;
    int err;
} failure_t;

static int failed(failure_t *f, const char *why, int err)
{
    f->why = why;
    f->err = err;
    return -1;
}

/* path made absolute, so that the file can be found again whatever the directory.
 * Returns owned, or NULL. */
static char *absolute_path(const char *path)
{
    if (path[0] == '/')
        return strdup(path);
    char cwd[PATH_MAX];
    if (getcwd(cwd, sizeof(cwd)) == NULL)
        return NULL;
    char *abs = malloc(strlen(cwd) + strlen(path) + 2);
    if (abs)
        sprintf(abs, "%s/%s", cwd, path);
    return abs;
}

/* A listening unix socket at abs with the given mode: its directory made, an old
 * socket there replaced. Returns the descriptor (*st then says which file it is), or
 * -1 with *f set. */
static int bind_socket(char *abs, int mode, struct stat *st, failure_t *f)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    if (strlen(abs) >= sizeof(sun.sun_path))
        return failed(f, "the path is too long for a unix socket", 0);
    strcpy(sun.sun_path, abs);
    int err = make_parents(abs);
    if (err < 0)
        return failed(f, "cannot create its directory", err);
    /* An old socket (a master that did not exit cleanly) is replaced; anything else
     * at that path is not ours to delete. */
    if (lstat(abs, st) == 0) {
        if (!S_ISSOCK(st->st_mode))
            return failed(f, "a file that is not a socket is in the way", 0);
        unlink(abs);
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return failed(f, "socket", -errno);
    /* Nobody else may connect between bind and chmod. */
    mode_t old = umask((mode_t)(~mode & 0777));
    int rc = bind(fd, (struct sockaddr *)&sun, sizeof(sun));
    err = rc < 0 ? -errno : 0;
    umask(old);
    if (rc < 0) {
        close(fd);
        return failed(f, "bind", err);
    }
    if (chmod(abs, (mode_t)mode) < 0 || lstat(abs, st) < 0 || listen(fd, 16) < 0) {
        failed(f, "chmod/listen", -errno);
        unlink(abs);
        close(fd);
        return -1;
    }
    return fd;
}

/* Hands fd to ctl's libuv handle and starts accepting. Returns 0, or -1 with *f set;
 * the handle is then closing, and its close callback frees ctl. */
static int listen_on(gc__control_t *ctl, int fd, failure_t *f)
{
    uv_pipe_init(ctl->loop, &ctl->server, 0);
    ctl->server.data = ctl;
    int err = uv_pipe_open(&ctl->server, fd);
    if (err == 0)
        /* The handle owns fd now: closing it closes the socket. */
        err = uv_listen((uv_stream_t *)&ctl->server, 16, on_connection);
    else
        close(fd); /* a uv_pipe_open that failed did not take it */
    if (err < 0) {
        Py_CLEAR(ctl->parse);
        uv_close((uv_handle_t *)&ctl->server, on_server_closed);
        return failed(f, uv_strerror(err), 0);
    }
    /* The control socket must not keep the loop alive on its own. */
    uv_unref((uv_handle_t *)&ctl->server);
    return 0;
}

gc__control_t *gc__control_start(uv_loop_t *loop, const char *path, int mode,
                                 const gc__control_ops_t *ops, void *arg,
                                 const gc__scoreboard_t *sb)
{
    failure_t f = {"cannot resolve the path", 0};
    gc__control_t *ctl = NULL;
    struct stat st;
    char *abs = absolute_path(path);
    int fd = abs ? bind_socket(abs, mode, &st, &f) : -1;
    if (fd < 0)
        goto fail;
    ctl = calloc(1, sizeof(*ctl));
    if (ctl == NULL || (ctl->parse = make_parser()) == NULL) {
        free(ctl);
        unlink(abs);
        close(fd);
        failed(&f, "out of memory", 0);
        goto fail;
    }
    ctl->loop = loop;
    ctl->dev = st.st_dev;
    ctl->ino = st.st_ino;
    ctl->ops = ops;
    ctl->arg = arg;
    ctl->sb = sb;
    if (listen_on(ctl, fd, &f) < 0) {
        unlink(abs);
        goto fail;
    }
    ctl->path = abs;
    gc__debug("Control socket listening at %s", abs);
    return ctl;
fail:
    gc__warning("Cannot open the control socket %s: %s%s%s", abs ? abs : path, f.why,
                f.err ? ": " : "", f.err ? strerror(-f.err) : "");
    free(abs);
    return NULL;
}

void gc__control_close(gc__control_t *ctl)
{
    if (ctl == NULL)
        return;
    while (ctl->clients)
        client_close(ctl->clients);
    struct stat st;
    if (lstat(ctl->path, &st) == 0 && st.st_dev == ctl->dev && st.st_ino == ctl->ino)
        unlink(ctl->path);
    free(ctl->path);
    ctl->path = NULL;
    Py_CLEAR(ctl->parse);
    uv_close((uv_handle_t *)&ctl->server, on_server_closed);
}
