"""For the metrics endpoint's tests (test_metrics.py), routed by PATH_INFO.

  /missing       404
  /boom          raises: the server answers 500
  /hold?FIFO     writes "metrics_app held" on stderr, then opens the FIFO for reading,
                 which blocks until the test opens it for writing: the request stays
                 in the application exactly as long as the test needs, with no timed wait
  /deaf?FIFO     as /hold, with SIGINT and SIGQUIT blocked first: a quick stop cannot
                 end the request, and the master's kill timer ends the worker
  /stuck         blocks SIGABRT and waits forever: the master's timeout SIGABRT cannot
                 reach Python, so the worker stays stuck until the master's SIGKILL
  anything else  "ok <pid>"

With GC_TEST_IMPORT_FIFO set, importing the module blocks on that FIFO the same way
(after a "metrics_app importing" line), so that a test sees a worker still booting.
"""

import os
import signal
import sys
import threading


def _say(line):
    sys.stderr.write("%s in %d\n" % (line, os.getpid()))
    sys.stderr.flush()


if os.environ.get("GC_TEST_IMPORT_FIFO"):
    _say("metrics_app importing")
    with open(os.environ["GC_TEST_IMPORT_FIFO"], "rb") as gate:
        gate.read()


def app(environ, start_response):
    path = environ["PATH_INFO"]
    status = "200 OK"
    if path == "/missing":
        status = "404 Not Found"
        body = b"missing"
    elif path == "/boom":
        raise RuntimeError("boom for the metrics tests")
    elif path == "/hold":
        _say("metrics_app held")
        with open(environ["QUERY_STRING"], "rb") as gate:
            gate.read()
        body = b"released"
    elif path == "/deaf":
        signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGINT, signal.SIGQUIT])
        _say("metrics_app deaf")
        with open(environ["QUERY_STRING"], "rb") as gate:
            gate.read()
        body = b"released"
    elif path == "/stuck":
        signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGABRT])
        _say("metrics_app stuck")
        threading.Event().wait()
        body = b"never"
    else:
        body = b"ok %d" % os.getpid()
    start_response(status, [("Content-Type", "text/plain"),
                            ("Content-Length", str(len(body)))])
    return [body]
