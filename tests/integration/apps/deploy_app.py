"""The application behind nginx in test_nginx.py. Every answer is JSON.

/env      what a proxied request looks like to the application (host, addresses,
          scheme, forwarded headers), the worker's request count, and the
          connections the worker holds while it serves the request
/upload   the length and sha256 of wsgi.input, read in 64 KiB pieces, with the framing
          the request arrived in (CONTENT_LENGTH or Transfer-Encoding)
/count    how many requests this worker has served, this one included

A connection is named by its socket inode: the worker's sockets that the master does
not hold are its client connections (the listeners are inherited from the master).
Behind nginx on a unix socket there is no REMOTE_PORT to tell connections apart, and
this is what shows that nginx reuses one connection for several requests.
"""

import hashlib
import json
import os

ENV_KEYS = ("HTTP_HOST", "SERVER_NAME", "SERVER_PORT", "SERVER_PROTOCOL", "REMOTE_ADDR",
            "REMOTE_PORT", "PATH_INFO", "QUERY_STRING", "HTTP_CONNECTION",
            "HTTP_X_FORWARDED_FOR", "HTTP_X_FORWARDED_PROTO", "HTTP_X_FORWARDED_SSL",
            "HTTP_X_FORWARDED_PROTOCOL", "CONTENT_LENGTH", "HTTP_TRANSFER_ENCODING",
            "wsgi.url_scheme")

served = 0


def _sockets(pid):
    out = set()
    fds = f"/proc/{pid}/fd"
    for fd in os.listdir(fds):
        try:
            target = os.readlink(f"{fds}/{fd}")
        except OSError:
            continue  # closed meanwhile (the listdir descriptor itself)
        if target.startswith("socket:["):
            out.add(target)
    return out


def connections():
    return sorted(_sockets("self") - _sockets(os.getppid()))


def _json(start_response, obj):
    data = json.dumps(obj).encode()
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(data)))])
    return [data]


def application(environ, start_response):
    global served
    served += 1
    path = environ["PATH_INFO"]
    if path == "/upload":
        inp = environ["wsgi.input"]
        h = hashlib.sha256()
        n = 0
        while True:
            block = inp.read(65536)
            if not block:
                break
            h.update(block)
            n += len(block)
        return _json(start_response, {
            "sha256": h.hexdigest(), "length": n,
            "content_length": environ.get("CONTENT_LENGTH"),
            "transfer_encoding": environ.get("HTTP_TRANSFER_ENCODING")})
    if path == "/count":
        return _json(start_response, {"served": served})
    report = {k: environ.get(k) for k in ENV_KEYS}
    report.update(served=served, pid=os.getpid(), connections=connections())
    return _json(start_response, report)
