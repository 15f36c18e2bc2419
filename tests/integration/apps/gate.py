"""An app for the keep-alive and stop tests (test_keepalive_stop.py), routed by PATH_INFO.

  /hold?PATH      waits until the file PATH exists (after a "gate held" line on
                  stderr), then answers "released"; the test holds a worker in the
                  application for exactly as long as it needs, without sleeping
  /hold?PATH&term the same, but the worker first sends itself SIGTERM, so that the
                  stop has begun (the signal is in the worker's hands) by the time the
                  test sees "gate held"
  /sleep/SECONDS  time.sleep(SECONDS), after a "gate sleeping" line on stderr
  /echo           the request body back, and its length in X-Body-Length
  anything else   "ok <pid>"
"""

import os
import signal
import sys
import time


def _say(line):
    sys.stderr.write("%s in %d\n" % (line, os.getpid()))
    sys.stderr.flush()


def app(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/hold":
        gate, _, term = environ["QUERY_STRING"].partition("&")
        if term:
            os.kill(os.getpid(), signal.SIGTERM)
        _say("gate held")
        while not os.path.exists(gate):
            time.sleep(0.01)
        body = b"released"
    elif path.startswith("/sleep/"):
        _say("gate sleeping")
        time.sleep(float(path[len("/sleep/"):]))
        body = b"slept"
    elif path == "/echo":
        data = environ["wsgi.input"].read()
        start_response("200 OK", [("Content-Type", "application/octet-stream"),
                                  ("X-Body-Length", str(len(data)))])
        return [data]
    else:
        body = b"ok %d" % os.getpid()
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(body)))])
    return [body]
