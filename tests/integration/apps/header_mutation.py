"""An app that changes its header list after start_response has accepted it.

PEP 3333 hands the list to the server, and Gunicorn copies it in start_response, so
nothing the application does to the list afterwards may reach the wire: not a header
that start_response would have refused (None, an int, a tuple of the wrong size, a name
that is not a str, a CR/LF), not a second Content-Length, not even a valid header.

``/<how>/<kind>`` picks the change, made after start_response and before the body:

- ``append``: ``BAD[kind]`` appended; ``replace``: the first item replaced by it;
  ``clear``: the list emptied (``kind`` ignored);
- ``gen-append``: appended from a generator, which calls start_response in its first
  iteration (the body then goes out chunked);
- ``many``: the same as ``append``, on a list of 40 headers;
- ``exc-info``: start_response is called again with exc_info and a second list (the
  500 answer that replaces the first), then both lists get ``BAD[kind]``;
- ``start``: ``BAD[kind]`` is given to start_response itself, which must refuse it.

Any other path answers with the worker pid and no change. Every body is the worker pid.
"""

import os
import sys

BAD = {
    "none": None,
    "int": 12345,
    "one-tuple": ("X-One",),
    "three-tuple": ("X-Three", "1", "2"),
    "int-name": (7, "seven"),
    "bytes-name": (b"X-Bytes", "1"),
    "bytes-value": ("X-Bytes", b"1"),
    "crlf-value": ("X-A", "1\r\nSet-Cookie: evil=1"),
    "crlf-name": ("Set-Cookie: evil=1\r\nX-A", "1"),
    "non-latin1": ("X-Euro", "\u20ac"),
    "content-length": ("Content-Length", "999"),
    "valid": ("X-Late", "late"),
}

EXTRA = [("X-Extra-%d" % i, str(i)) for i in range(37)]


def original_headers(body):
    return [("Content-Type", "text/plain"), ("X-Original", "yes"),
            ("Content-Length", str(len(body)))]


def app(environ, start_response):
    parts = environ["PATH_INFO"].strip("/").split("/")
    body = str(os.getpid()).encode()
    headers = original_headers(body)
    how, kind = parts if len(parts) == 2 else ("", "")
    if how == "gen-append":
        # No Content-Length: the generator's body goes out chunked.
        headers = headers[:2]

        def gen():
            start_response("200 OK", headers)
            headers.append(BAD[kind])
            yield body
        return gen()
    if how == "start":
        start_response("200 OK", headers + [BAD[kind]])
        return [body]
    if how == "many":
        headers += EXTRA
    start_response("200 OK", headers)
    if how in ("append", "many"):
        headers.append(BAD[kind])
    elif how == "replace":
        headers[0] = BAD[kind]
    elif how == "clear":
        headers.clear()
    elif how == "exc-info":
        try:
            raise RuntimeError("the app changes its mind before any byte is out")
        except RuntimeError:
            replaced = [("Content-Type", "text/plain"), ("X-Replaced", "yes"),
                        ("Content-Length", str(len(body)))]
            start_response("500 Internal Server Error", replaced, sys.exc_info())
        headers.append(BAD[kind])
        replaced.append(BAD[kind])
    return [body]
