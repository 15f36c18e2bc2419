"""The app of the TLS and HTTP/2 tests (test_tls.py, test_http2.py), routed by PATH_INFO.

  /env            the environ's str values (and gunicorn.http2.* ints) as JSON, and
                  the keys of its callables under "_callables"
  /hold?PATH      waits until the file PATH exists (after a "gate held" line on
                  stderr), then answers "released"
  /file?PATH      the file at PATH through wsgi.file_wrapper
  /stream?N       N pieces of 64 KiB, as a generator
  /echo           the request body back
  /open?PATH      creates the file PATH (opens the gate of a /hold)
  /boom           raises (a 500)
  /hints          wsgi.early_hints with a Link field, then "hinted"
  /trailers       gunicorn.http2.send_trailers with an x-checksum field (HTTP/2 only)
  anything else   "ok <pid>"
"""

import json
import os
import sys
import time


def app(environ, start_response):
    path, query = environ["PATH_INFO"], environ["QUERY_STRING"]
    headers = [("Content-Type", "application/octet-stream")]
    if path == "/env":
        shown = {k: v for k, v in environ.items()
                 if isinstance(v, str) or (k.startswith("gunicorn.http2.") and isinstance(v, int))}
        shown["_callables"] = sorted(k for k, v in environ.items() if callable(v))
        body = json.dumps(shown).encode()
    elif path == "/hold":
        sys.stderr.write("gate held in %d\n" % os.getpid())
        sys.stderr.flush()
        while not os.path.exists(query):
            time.sleep(0.01)
        body = b"released"
    elif path == "/file":
        f = open(query, "rb")
        headers.append(("Content-Length", str(os.fstat(f.fileno()).st_size)))
        start_response("200 OK", headers)
        return environ["wsgi.file_wrapper"](f, 256 * 1024)
    elif path == "/stream":
        start_response("200 OK", headers)
        piece = b"x" * 65536
        return (piece for _ in range(int(query)))
    elif path == "/echo":
        body = environ["wsgi.input"].read()
    elif path == "/open":
        open(query, "w").close()
        body = b"opened"
    elif path == "/hints":
        environ["wsgi.early_hints"]([("Link", "</style.css>; rel=preload; as=style")])
        body = b"hinted"
    elif path == "/trailers":
        start_response("200 OK", [("Content-Type", "text/plain"), ("Trailer", "x-checksum")])
        environ["gunicorn.http2.send_trailers"]([("x-checksum", "sha256=abc")])
        return [b"part one, ", b"part two"]
    elif path == "/boom":
        raise RuntimeError("boom")
    else:
        body = b"ok %d" % os.getpid()
    headers.append(("Content-Length", str(len(body))))
    start_response("200 OK", headers)
    return [body]
