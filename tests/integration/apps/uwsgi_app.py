"""The application behind nginx's uwsgi_pass in test_uwsgi.py. Answers in JSON, except
/stream.

/env      the environ keys a front end shapes (addresses, host, scheme, path)
/upload   the length and sha256 of wsgi.input, read in 64 KiB pieces
/stream   N pieces from a generator, with no Content-Length (?n=N, default 5)
/hints    calls wsgi.early_hints, then answers
"""

import hashlib
import json

ENV_KEYS = ("REQUEST_METHOD", "PATH_INFO", "QUERY_STRING", "RAW_URI", "SCRIPT_NAME",
            "SERVER_NAME", "SERVER_PORT", "SERVER_PROTOCOL", "REMOTE_ADDR", "REMOTE_PORT",
            "HTTP_HOST", "HTTP_USER_AGENT", "HTTP_X_CUSTOM", "CONTENT_TYPE", "CONTENT_LENGTH",
            "REQUEST_URI", "HTTPS", "HTTP_X_FORWARDED_FOR", "wsgi.url_scheme")


def _json(start_response, obj):
    data = json.dumps(obj).encode()
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(data)))])
    return [data]


def application(environ, start_response):
    path = environ["PATH_INFO"]
    if path.endswith("/upload"):
        inp = environ["wsgi.input"]
        h = hashlib.sha256()
        n = 0
        while True:
            block = inp.read(65536)
            if not block:
                break
            h.update(block)
            n += len(block)
        return _json(start_response, {"sha256": h.hexdigest(), "length": n})
    if path.endswith("/hints"):
        environ["wsgi.early_hints"]([("Link", "</style.css>; rel=preload")])
        return _json(start_response, {"hinted": True})
    if path.endswith("/stream"):
        n = int(environ["QUERY_STRING"].partition("n=")[2] or 5)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return (b"piece %d\n" % i for i in range(n))
    return _json(start_response, {k: environ.get(k, "<absent>") for k in ENV_KEYS})
