"""Apps that fail, or misuse start_response, in the ways PEP 3333 talks about."""

import os
import sys


def raising(environ, start_response):
    """/boom raises; anything else answers with the worker pid."""
    if environ["PATH_INFO"] == "/boom":
        raise RuntimeError("boom from the app")
    data = str(os.getpid()).encode()
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(data)))])
    return [data]


def raising_in_iter(environ, start_response):
    """Fails while the server iterates, before any body byte is out."""
    start_response("200 OK", [("Content-Type", "text/plain")])

    def gen():
        raise KeyError("failure inside the iterable")
        yield b"never"
    return gen()


def bad_header(environ, start_response):
    """A CR/LF smuggled into a header value, header name or status line."""
    where = environ["QUERY_STRING"]
    if where == "name":
        start_response("200 OK", [("X-Evil\r\nInjected", "yes")])
    elif where == "status":
        start_response("200 OK\r\nInjected: yes", [])
    else:
        start_response("200 OK", [("X-Evil", "ok\r\nInjected: yes")])
    return [b"should never be sent"]


def start_twice(environ, start_response):
    """A second start_response without exc_info must raise."""
    start_response("200 OK", [("Content-Type", "text/plain")])
    try:
        start_response("201 Created", [("Content-Type", "text/plain")])
    except Exception as e:
        msg = "raised " + type(e).__name__
    else:
        msg = "did not raise"
    return [msg.encode()]


def exc_info_before_headers(environ, start_response):
    """With exc_info and nothing sent yet, the second call replaces the response."""
    start_response("200 OK", [("Content-Type", "text/plain")])
    try:
        raise ValueError("changed my mind")
    except ValueError:
        start_response("503 Service Unavailable", [("Content-Type", "text/plain"),
                                                   ("X-Replaced", "yes")], sys.exc_info())
    return [b"replaced response"]


def exc_info_after_headers(environ, start_response):
    """With exc_info after the head went out, start_response re-raises that exception;
    the app catches it and reports whether it was the same object."""
    start_response("200 OK", [("Content-Type", "text/plain")])

    def gen():
        yield b"first;"
        try:
            raise ValueError("late failure")
        except ValueError:
            info = sys.exc_info()
            try:
                start_response("500 Internal Server Error", [], info)
            except ValueError as e:
                yield b"reraised-same" if e is info[1] else b"reraised-other"
            except Exception as e:  # noqa: BLE001 - reported to the test
                yield ("raised-" + type(e).__name__).encode()
            else:
                yield b"no-raise"
    return gen()


def exc_info_after_headers_propagate(environ, start_response):
    """As above, but the re-raised exception escapes: the server can only log it and
    cut the connection."""
    start_response("200 OK", [("Content-Type", "text/plain")])

    def gen():
        yield b"partial;"
        try:
            raise ValueError("escaped late failure")
        except ValueError:
            start_response("500 Internal Server Error", [], sys.exc_info())
        yield b"never"
    return gen()


def str_body(environ, start_response):
    """Yields str instead of bytes."""
    start_response("200 OK", [("Content-Type", "text/plain")])
    return ["not bytes"]
