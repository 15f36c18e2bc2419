"""Apps that report what they received: the body, the environ, wsgi.input's API."""

import json
import os


def body(environ, start_response):
    """Echoes the request body, with the request's Content-Type."""
    data = environ["wsgi.input"].read()
    start_response("200 OK", [
        ("Content-Type", environ.get("CONTENT_TYPE", "application/octet-stream")),
        ("Content-Length", str(len(data))),
    ])
    return [data]


def _jsonable(value):
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    return "<%s>" % type(value).__name__


def environ(environ, start_response):
    """The environ as JSON, plus the worker pid, the value types, the body and the
    GC_TEST_* process environment variables."""
    out = {k: _jsonable(v) for k, v in environ.items()}
    out["__pid__"] = os.getpid()
    out["__types__"] = {k: type(v).__name__ for k, v in environ.items()}
    out["__body__"] = environ["wsgi.input"].read().decode("latin-1")
    out["__callable__"] = {k: callable(v) for k, v in environ.items()}
    out["__env__"] = {k: v for k, v in os.environ.items() if k.startswith("GC_TEST_")}
    out["__input_api__"] = sorted(m for m in ("read", "readline", "readlines", "__iter__")
                                  if callable(getattr(environ["wsgi.input"], m, None)))
    out["__errors_api__"] = sorted(m for m in ("write", "writelines", "flush")
                                   if callable(getattr(environ["wsgi.errors"], m, None)))
    data = json.dumps(out).encode()
    start_response("200 OK", [
        ("Content-Type", "application/json"),
        ("Content-Length", str(len(data))),
    ])
    return [data]


def input_api(environ, start_response):
    """Reads wsgi.input the way QUERY_STRING says and returns what each call gave,
    as a JSON list of latin-1 strings (a nested list for readlines)."""
    inp = environ["wsgi.input"]
    mode = environ["QUERY_STRING"]
    got = []
    if mode == "read":
        got = [inp.read(), inp.read()]
    elif mode == "read_sized":
        got = [inp.read(3), inp.read(4), inp.read(0), inp.read(), inp.read(5)]
    elif mode == "read_none":
        got = [inp.read(None), inp.read(-1)]
    elif mode == "readline":
        while True:
            line = inp.readline()
            got.append(line)
            if not line:
                break
    elif mode == "readline_sized":
        got = [inp.readline(2), inp.readline(100), inp.readline(-1), inp.readline(None)]
    elif mode == "readlines":
        got = [inp.readlines()]
    elif mode == "readlines_hint":
        got = [inp.readlines(3), inp.readlines()]
    elif mode == "iter":
        got = [list(inp)]
    else:
        raise ValueError("unknown mode %r" % mode)

    def enc(v):
        return [enc(x) for x in v] if isinstance(v, list) else v.decode("latin-1")

    data = json.dumps([enc(v) for v in got]).encode()
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(data)))])
    return [data]


def errors(environ, start_response):
    """Writes to wsgi.errors, which must reach the server's log."""
    err = environ["wsgi.errors"]
    err.write("message via wsgi.errors\n")
    err.writelines(["second line via writelines\n"])
    err.flush()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
    return [b"ok"]
