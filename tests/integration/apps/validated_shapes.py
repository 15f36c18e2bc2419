"""Many response shapes, each behind wsgiref.validate.validator, chosen by PATH_INFO.

The validator wraps environ, wsgi.input, wsgi.errors, start_response, write() and the
iterable, and asserts (or warns, which PYTHONWARNINGS=error turns into an error) on any
PEP 3333 breach by the server: a wrong environ type, an iterable not closed, a read
after close, start_response misuse. Every shape answers 200 with a known body unless
its name says otherwise."""

import sys
from wsgiref.validate import validator

TEXT = [("Content-Type", "text/plain")]


def _list(environ, start_response):
    start_response("200 OK", TEXT)
    return [b"list-", b"body"]


def _generator(environ, start_response):
    start_response("200 OK", TEXT)

    def gen():
        yield b"gen-"
        yield b""
        yield b"body"
    return gen()


def _late_start(environ, start_response):
    # start_response from inside the generator, at the first iteration (PEP 3333).
    def gen():
        start_response("200 OK", TEXT)
        yield b"late-body"
    return gen()


def _write(environ, start_response):
    write = start_response("200 OK", TEXT)
    write(b"written-")
    write(b"")
    return [b"returned"]


def _write_only(environ, start_response):
    write = start_response("200 OK", TEXT + [("Content-Length", "10")])
    write(b"write-only")
    return []


def _empty(environ, start_response):
    start_response("200 OK", TEXT + [("Content-Length", "0")])
    return []


def _no_content(environ, start_response):
    start_response("204 No Content", [])
    return []


def _file_wrapper(environ, start_response):
    path = environ["QUERY_STRING"]
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    return environ["wsgi.file_wrapper"](open(path, "rb"), 4096)


class _Closing:
    def __init__(self):
        self.parts = [b"closing-", b"body"]

    def __iter__(self):
        return iter(self.parts)

    def close(self):
        sys.stderr.write("validated close() called\n")
        sys.stderr.flush()


def _closing(environ, start_response):
    start_response("200 OK", TEXT)
    return _Closing()


def _exc_info(environ, start_response):
    # An error before anything was sent: the response is replaced (exc_info given).
    start_response("200 OK", TEXT)
    try:
        raise ValueError("replaced")
    except ValueError:
        start_response("500 Internal Server Error", TEXT, sys.exc_info())
    return [b"replaced-by-500"]


def _input(environ, start_response):
    # The validator's wsgi.input wrapper allows read(size) and readline([size]) only.
    inp = environ["wsgi.input"]
    length = int(environ.get("CONTENT_LENGTH") or 0)
    first = inp.readline()
    second = inp.readline(3)
    rest = inp.read(length - len(first) - len(second)) if length else inp.read(1 << 20)
    lines = inp.readlines()
    start_response("200 OK", TEXT)
    return [b"|".join([first, second, rest, repr(lines).encode()])]


SHAPES = {"/list": _list, "/generator": _generator, "/late": _late_start, "/write": _write,
          "/write-only": _write_only, "/empty": _empty, "/204": _no_content,
          "/file": _file_wrapper, "/closing": _closing, "/exc-info": _exc_info,
          "/input": _input}


def _route(environ, start_response):
    return SHAPES[environ["PATH_INFO"]](environ, start_response)


application = validator(_route)
