"""Apps that consume big request bodies the way real ones do, and report what they saw
(as JSON) together with the worker's memory from /proc/self/status."""

import hashlib
import json


def _memory():
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0]) * 1024
    return out


def _answer(start_response, report):
    report.update(_memory())
    data = json.dumps(report).encode()
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(data)))])
    return [data]


def digest(environ, start_response):
    """Hashes wsgi.input read in 64 KiB pieces until b"" (no CONTENT_LENGTH needed:
    wsgi.input_terminated), then checks that reading on gives b""."""
    inp = environ["wsgi.input"]
    h = hashlib.sha256()
    n = 0
    while True:
        block = inp.read(65536)
        if not block:
            break
        h.update(block)
        n += len(block)
    return _answer(start_response, {
        "sha256": h.hexdigest(),
        "length": n,
        "content_length": environ.get("CONTENT_LENGTH"),
        "input_terminated": environ.get("wsgi.input_terminated"),
        "after_end": repr([inp.read(), inp.read(10), inp.readline(), inp.readline(5),
                           inp.readlines(), list(inp)]),
    })


def lines(environ, start_response):
    """Reads the body with readline(limit) (limit from QUERY_STRING) and reports the
    hash of the pieces joined, how many there were and the longest."""
    limit = int(environ["QUERY_STRING"] or -1)
    inp = environ["wsgi.input"]
    h = hashlib.sha256()
    count = longest = 0
    while True:
        line = inp.readline(limit)
        if not line:
            break
        h.update(line)
        count += 1
        longest = max(longest, len(line))
    return _answer(start_response, {"sha256": h.hexdigest(), "count": count,
                                    "longest": longest, "after_end": repr(inp.read())})
