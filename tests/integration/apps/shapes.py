"""Apps whose responses take different shapes: generators, lists, write(), lengths
that do not match the body, bodiless statuses."""

import os
import sys
import time


def generator(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])

    def gen():
        for i in range(1, 4):
            yield b"chunk%d;" % i
    return gen()


def late_start(environ, start_response):
    """start_response is only called when the server first iterates (PEP 3333)."""
    def gen():
        start_response("200 OK", [("Content-Type", "text/plain"), ("X-Late", "yes")])
        yield b""
        yield b"late-"
        yield b"body"
    return gen()


def big(environ, start_response):
    """Several megabytes in 64 KiB pieces, more than any socket buffer holds."""
    n = int(environ["QUERY_STRING"] or 80)
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    return (bytes([i % 251]) * 65536 for i in range(n))


def iter_no_length(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return iter([b"one ", b"two ", b"three"])


def list_one(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"single item body"]


def list_many(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"first ", b"second"]


def empty(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return []


def short_length(environ, start_response):
    """Promises 100 bytes and delivers 10."""
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "100")])
    return iter([b"only ", b"ten!!"])


def long_body(environ, start_response):
    """Promises 5 bytes and yields 10: only the promised 5 may go out."""
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "5")])
    return iter([b"01234", b"56789"])


def write_mixed(environ, start_response):
    """The legacy write() callable first, then an iterable."""
    write = start_response("200 OK", [("Content-Type", "text/plain")])
    write(b"written-1 ")
    write(b"written-2 ")
    return iter([b"returned-1 ", b"returned-2"])


def status(environ, start_response):
    """/204 and /304 carry no body; anything else is a 200 with a Content-Length;
    /gen is a 200 without one."""
    path = environ["PATH_INFO"]
    if path == "/204":
        start_response("204 No Content", [])
        return []
    if path == "/304":
        start_response("304 Not Modified", [("ETag", '"abc"')])
        return []
    if path == "/gen":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return iter([b"generated ", b"body"])
    data = b"body-bytes for " + environ["REQUEST_METHOD"].encode()
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(data)))])
    return [data]


def slow(environ, start_response):
    """Sleeps QUERY_STRING seconds (default 0.5) and answers with the worker pid. It
    logs when it starts, so a test can act while the request is in flight."""
    delay = float(environ["QUERY_STRING"] or 0.5)
    sys.stderr.write("slow request started in %d\n" % os.getpid())
    sys.stderr.flush()
    time.sleep(delay)
    data = str(os.getpid()).encode()
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(data)))])
    return [data]


class ClosingBody:
    """An iterable whose close() is logged, to check the server calls it."""

    def __init__(self, parts):
        self.parts = parts

    def __iter__(self):
        return iter(self.parts)

    def close(self):
        sys.stderr.write("ClosingBody.close called\n")
        sys.stderr.flush()


def closing(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return ClosingBody([b"closing ", b"body"])
