"""An app for the quick-stop tests (test_quick_stop.py): requests that block until the
worker is stopped, and say on stderr when they start and when they unwind.

Routes:
  /block     sleeps for a minute (time.sleep: cooperative under gevent, which patches
             it) once it has logged "quick_stop_app request started in PID"; a finally
             block logs "quick_stop_app finally ran in PID" when the sleep is interrupted
  /stream    a chunked 200 whose first piece is sent at once ("first piece\\n"), then
             blocks like /block, after "quick_stop_app stream started in PID"
  anything   JSON: the worker's pid
"""

import json
import os
import sys
import time


def _say(line):
    sys.stderr.write("quick_stop_app %s in %d\n" % (line, os.getpid()))
    sys.stderr.flush()


def _under_gevent():
    monkey = sys.modules.get("gevent.monkey")
    return monkey is not None and monkey.is_module_patched("time")


def _block(started):
    # A test signals the worker as soon as it sees `started`: the line is written inside
    # the try, so that the finally block runs wherever the signal lands. Under gevent the
    # hub writes it once this greenlet waits in sleep, so that the signal finds the
    # request parked (the case where only the worker can interrupt it), never still
    # running on its own.
    try:
        if _under_gevent():
            import gevent
            gevent.get_hub().loop.run_callback(_say, started)
        else:
            _say(started)
        time.sleep(60)
    finally:
        _say("finally ran")


def _stream():
    yield b"first piece\n"
    _block("stream started")
    yield b"never sent\n"


def app(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/block":
        _block("request started")
    if path == "/stream":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return _stream()
    data = json.dumps({"pid": os.getpid()}).encode()
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(data)))])
    return [data]
