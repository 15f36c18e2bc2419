"""An application for the logging tests (test_logging.py): prints, raises, logs to
gunicorn.error, and streams a large body for clients that hang up early."""
import logging
import os
import sys


def app(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/print":
        print("app-print-stdout", flush=True)
        sys.stderr.write("app-write-stderr\n")
        sys.stderr.flush()
        os.write(1, b"app-fd1-write\n")
    elif path == "/raise":
        raise RuntimeError("app-raised-this")
    elif path == "/glog":
        logging.getLogger("gunicorn.error").warning("app-logged-warning %s", "arg")
    elif path == "/big":
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        chunk = b"x" * 65536
        return (chunk for _ in range(4096))  # 256 MiB: no client reads it all
    body = b"ok\n"
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(body)))])
    return [body]
