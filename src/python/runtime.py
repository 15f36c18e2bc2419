"""gunicorn-c's Python runtime: the objects that server hooks receive.

This file is compiled into the gunicorn-c executable and imported in the embedded
interpreter as the module ``_gunicorn_c_runtime``. Its C half is the built-in module
``_gunicorn_c`` (logging into the server's error log), shared with logbridge.py.
Hooks written for Gunicorn use ``server.log``, ``server.cfg``, ``worker.pid``,
``req.path`` and so on: these classes give them those attributes. Nothing here runs on
the request path unless a ``pre_request`` or ``post_request`` hook is configured. The
control socket's request parser is here too (parse_control_request).
"""
import json
import os
import shlex
import traceback

import _gunicorn_c as _c

DEBUG, INFO, WARNING, ERROR, CRITICAL = 10, 20, 30, 40, 50
EXCEPTION = 41  # written as ERROR; StatsD counts it as gunicorn.log.exception


class Logger:
    """The ``log`` attribute of servers and workers (Gunicorn's logger API)."""

    def _emit(self, level, msg, args, exc_info=False):
        try:
            text = str(msg) % args if args else str(msg)
        except (TypeError, ValueError):
            text = "%s %r" % (msg, args)
        if exc_info:
            text += "\n" + traceback.format_exc().rstrip("\n")
        _c.log(level, text)

    def debug(self, msg, *args, **kwargs):
        self._emit(DEBUG, msg, args, kwargs.get("exc_info"))

    def info(self, msg, *args, **kwargs):
        self._emit(INFO, msg, args, kwargs.get("exc_info"))

    def warning(self, msg, *args, **kwargs):
        self._emit(WARNING, msg, args, kwargs.get("exc_info"))

    warn = warning

    def error(self, msg, *args, **kwargs):
        self._emit(ERROR, msg, args, kwargs.get("exc_info"))

    def critical(self, msg, *args, **kwargs):
        self._emit(CRITICAL, msg, args, kwargs.get("exc_info"))

    def exception(self, msg, *args, **kwargs):
        self._emit(EXCEPTION, msg, args, True)

    def log(self, level, msg, *args, **kwargs):
        self._emit(int(level), msg, args, kwargs.get("exc_info"))

    def reopen_files(self):
        _c.reopen_logs()

    def close_on_exec(self):
        pass

    def access(self, resp, req, environ, request_time):
        pass


log = Logger()


class Config:
    """``server.cfg`` / ``worker.cfg``: each setting's value as an attribute."""

    def __init__(self, values):
        self.__dict__.update(values)
        self.settings = dict(values)

    @property
    def worker_class_str(self):
        return self.worker_class

    @property
    def address(self):
        return list(self.bind)

    @property
    def env(self):
        return dict(item.split("=", 1) for item in self.raw_env if "=" in item)

    def __repr__(self):
        return "<Config %d settings>" % len(self.settings)


class Server:
    """The ``server`` argument of master-side hooks (Gunicorn's Arbiter)."""

    def __init__(self, cfg, app_uri):
        self.cfg = cfg
        self.log = log
        self.pid = os.getpid()
        self.num_workers = cfg.workers
        self.timeout = cfg.timeout
        self.proc_name = cfg.proc_name or cfg.default_proc_name or app_uri
        self.app_uri = app_uri
        self.master_name = "Master"
        self.WORKERS = {}
        self.LISTENERS = []
        self.reexec_pid = 0
        self.app = self

    def __repr__(self):
        return "<gunicorn-c.Server pid=%d>" % self.pid


class Worker:
    """The ``worker`` argument of hooks: made in the master before fork."""

    def __init__(self, age, ppid, cfg, server):
        self.age = age
        self.ppid = ppid
        self.pid = None
        self.cfg = cfg
        self.log = log
        self.timeout = cfg.timeout
        self.max_requests = cfg.max_requests
        self.alive = True
        self.booted = False
        self.aborted = False
        self.nr = 0
        self.app = server
        self.wsgi = None

    def __repr__(self):
        return "<gunicorn-c.Worker %s>" % self.pid


class Request:
    """The ``req`` argument of pre_request / post_request."""

    def __init__(self, environ, headers):
        self.method = environ["REQUEST_METHOD"]
        self.uri = environ.get("RAW_URI", "")
        self.path = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
        self.query = environ.get("QUERY_STRING", "")
        proto = environ.get("SERVER_PROTOCOL", "HTTP/1.1")
        self.version = (int(proto[5]), int(proto[7]))
        self.headers = headers
        self.scheme = environ.get("wsgi.url_scheme", "http")
        self.remote_addr = environ.get("REMOTE_ADDR")
        self.body = environ.get("wsgi.input")
        self.fragment = self.uri.partition("#")[2]

    def __repr__(self):
        return "<gunicorn-c.Request %s %s>" % (self.method, self.uri)


class Response:
    """The ``resp`` argument of post_request."""

    def __init__(self, status, headers, sent):
        self.status = status
        self.headers = headers
        self.sent = sent
        self.response_length = sent
        try:
            self.status_code = int(str(status).split(None, 1)[0])
        except (ValueError, IndexError):
            self.status_code = None

    def __repr__(self):
        return "<gunicorn-c.Response %s>" % self.status


def wrap_post_request(hook, arity):
    """Gunicorn's validate_post_request: a post_request hook that takes (worker, req) or
    (worker, req, environ) is kept wrapped in one that takes all four arguments
    (src/python/config_values.c stores the wrapper in the hook registry)."""
    if arity == 3:
        return lambda worker, req, environ, resp: hook(worker, req, environ)
    return lambda worker, req, environ, resp: hook(worker, req)


def parse_control_request(raw):
    """One control-socket request (bytes of JSON) as (id as JSON text, words, error):
    ``{"command": "show workers", "args": [...]}`` becomes the words of the command,
    split as a shell would, then the arguments (non-strings as JSON). words is None and
    error says why when the request is not one (src/arbiter/control.c)."""
    try:
        req = json.loads(raw)
    except (ValueError, RecursionError) as e:
        return "null", None, "Invalid JSON: %s" % e
    if not isinstance(req, dict):
        return "null", None, "Invalid request: expected a JSON object"
    try:
        rid = json.dumps(req.get("id"))
    except (ValueError, RecursionError):
        rid = "null"
    cmd, args = req.get("command", ""), req.get("args", [])
    if cmd is None:
        cmd = ""
    if args is None:
        args = []
    if not isinstance(cmd, str) or not isinstance(args, list):
        return rid, None, "Invalid request: command must be a string and args a list"
    try:
        words = shlex.split(cmd)
    except ValueError as e:
        return rid, None, "Invalid argument: %s" % e
    words += [a if isinstance(a, str) else json.dumps(a) for a in args]
    return rid, words, None


def call(hook_name, hook, *args):
    """Calls a hook with the arguments it takes. Its exceptions propagate: the C side
    decides, hook by hook, whether one is logged and ignored or ends the process
    (src/python/runtime.c), as Gunicorn's call sites do."""
    if hook_name == "post_request":
        # Gunicorn accepts post_request(worker, req), (.., environ), (.., resp).
        arity = _arity(hook)
        if arity is not None and arity < 4:
            args = args[:arity]
    hook(*args)


def _arity(func):
    code = getattr(func, "__code__", None)
    if code is None:
        code = getattr(getattr(func, "__call__", None), "__code__", None)
        extra = 1
    else:
        extra = 1 if hasattr(func, "__self__") else 0
    if code is None or code.co_flags & 0x04:  # *args: give it everything
        return None
    return code.co_argcount - extra


def ssl_context(cfg, hook, alpn):
    """The ssl.SSLContext that TLS connections are made from, as Gunicorn makes it:
    the default one below, or what the ssl_context hook returns (it may call the
    default factory and change the result). The C side then uses the OpenSSL context
    inside it, so whatever the context says governs the handshake. Returns the context
    and what the C side checks it against."""
    import ssl

    def default_ssl_context_factory():
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=cfg.ca_certs)
        context.load_cert_chain(certfile=cfg.certfile, keyfile=cfg.keyfile)
        context.verify_mode = cfg.cert_reqs
        if cfg.ciphers:
            context.set_ciphers(cfg.ciphers)
        if alpn:
            context.set_alpn_protocols(alpn)
        return context

    if hook is None:
        context = default_ssl_context_factory()
    else:
        context = hook(cfg, default_ssl_context_factory)
    if not isinstance(context, ssl.SSLContext):
        raise TypeError("ssl_context must return an ssl.SSLContext, not %s"
                        % type(context).__name__)
    # These make OpenSSL call back into Python with the ssl module's own socket
    # objects, which TLS connections served in C do not have.
    for attr in ("sni_callback", "keylog_filename", "_msg_callback"):
        if getattr(context, attr, None) is not None:
            raise ValueError("ssl_context: %s is not supported by gunicorn-c" % attr)
    return context, context.options, int(context.verify_mode), ssl.OPENSSL_VERSION_NUMBER


# --- gunicorn.socket ------------------------------------------------------------------
#
# environ["gunicorn.socket"] is an instance of `socket.socket` as it is when the first
# request asks (gevent's cooperative class once the gevent worker has patched the
# standard library), in one of three subclasses that share one layout, so that an
# object moves from one to the next by assigning its __class__:
#
#   Unopened  made for each request without a descriptor (no system call); the first
#             attribute the application looks up gives it a duplicate of the
#             connection's descriptor (the response object's _gc_dup), and it becomes
#   Opened    a socket the application may inspect (getpeername, family...); the
#             first method that moves bytes or changes the socket (send, recv,
#             makefile, close...) tells the response (_gc_take: what the
#             server buffered goes out first, and it writes nothing more), and it becomes
#   Taken     the plain class: the connection is the application's from then on.
#
# The server closes an Opened socket at the request's end; a Taken one is closed by
# the application (or when it drops it).

# (Not fileno(): repr() calls it, and so does whatever formats an environ.)
_TAKING = ("send", "sendall", "sendto", "sendmsg", "sendfile", "recv", "recv_into",
           "recvfrom", "recvfrom_into", "recvmsg", "recvmsg_into", "makefile", "detach",
           "dup", "close", "shutdown", "setblocking", "settimeout")

_socket_classes = {}


def socket_classes():
    """(Unopened, Opened, socket_release) for the socket class of the moment."""
    import socket
    base = socket.socket
    found = _socket_classes.get(base)
    if found is not None:
        return found
    slots = ("_gc_response",)
    taken = type("socket", (base,), {"__slots__": slots, "__module__": base.__module__})

    def taking(name, inner):
        def method(self, *args, **kwargs):
            object.__getattribute__(self, "_gc_response")._gc_take()
            object.__setattr__(self, "__class__", taken)
            # The descriptor is shared with the server's, which never blocks: make it
            # match this object's timeout (blocking unless the application said).
            self.settimeout(self.gettimeout())
            return inner(self, *args, **kwargs)
        method.__name__ = method.__qualname__ = name
        return method

    opened = type("socket", (base,), dict(
        {name: taking(name, getattr(base, name)) for name in _TAKING if hasattr(base, name)},
        __slots__=slots, __module__=base.__module__))

    def __getattribute__(self, name):
        fd, family = object.__getattribute__(self, "_gc_response")._gc_dup()
        object.__setattr__(self, "__class__", opened)
        try:
            base.__init__(self, family, socket.SOCK_STREAM, 0, fd)
        except BaseException:
            os.close(fd)
            raise
        return getattr(self, name)

    unopened = type("socket", (base,), {"__slots__": slots, "__module__": base.__module__,
                                        "__getattribute__": __getattribute__})
    found = _socket_classes[base] = (unopened, opened, socket_release)
    return found


def socket_release(sock):
    """The request is over and the application did not take the connection: its
    duplicate of the descriptor is closed (the object stays, closed)."""
    type(sock).__mro__[1].close(sock)


def glob_files(pattern):
    """--reload-extra-file patterns: the files one matches now, ** included (sorted)."""
    import glob
    return sorted(glob.glob(pattern, recursive=True))


def spew():
    """--spew: a trace function on the calling thread that prints each line of Python
    as it runs, as ``module:line: source`` on stdout (Gunicorn's format), one write
    per line. The master
    installs it once its configuration is read, so hooks and a preloaded application
    are traced, and forked workers inherit it on their main thread; a gthread worker
    also installs it in each of its threads, so the application is traced there too."""
    import linecache
    import sys

    def trace(frame, event, arg):
        if event != "line":
            return trace
        lineno = frame.f_lineno
        filename = frame.f_globals.get("__file__")
        if isinstance(filename, str):
            name = frame.f_globals.get("__name__", "[unknown]")
            if filename.endswith((".pyc", ".pyo")):
                filename = filename[:-1]
        else:
            name = "[unknown]"
            filename = frame.f_code.co_filename
        line = linecache.getline(filename, lineno) or "<%s>" % frame.f_code.co_name
        # One write and a flush per line: the threads of a worker, and the master and
        # its workers, share stdout, and print()'s separate newline or lines written in
        # buffer-sized chunks would cut into each other.
        out = sys.stdout
        if out is not None:
            out.write("%s:%s: %s\n" % (name, lineno, line.rstrip()))
            out.flush()
        return trace

    sys.settrace(trace)
