"""One app for the worker-class tests (test_workers.py), routed by PATH_INFO.

At import time it records which modules gevent has patched, so a response can tell
whether the gevent worker patched before the application was imported. Nothing here
imports gevent's hub or patches anything itself: under sync and gthread the module
stays an ordinary threaded Python app.

Routes:
  /info                 JSON: pid, wsgi.multithread/multiprocess, REMOTE_PORT, the
                        patch state seen at import time
  /sleep/SECONDS        time.sleep (cooperative under gevent: it is patched), after a
                        "workers_app sleep started" line on stderr
  /gsleep/SECONDS       gevent.sleep
  /echo                 the request body back, with what framing the server saw
  /stream?N[&GATE]      N pieces from a generator, with short sleeps between some;
                        with GATE, waits after the first piece until that file exists
  /error                raises RuntimeError("workers_app boom")
  /fetch/NAME?PORT      GETs /NAME from 127.0.0.1:PORT with http.client, returns its body
  /block/SECONDS        blocks the whole process in the unpatched time.sleep
  /counter/start        starts a background thread counting every 10 ms
  /counter/read         the count so far
"""

import http.client
import json
import os
import sys
import threading
import time


def _patch_state():
    try:
        from gevent import monkey
    except ImportError:
        return {}
    return {name: bool(monkey.is_module_patched(name))
            for name in ("socket", "time", "threading", "select", "ssl")}


PATCHED_AT_IMPORT = _patch_state()

_counter = {"n": 0, "thread": None}
_counter_lock = threading.Lock()


def _count_forever():
    while True:
        time.sleep(0.01)
        _counter["n"] += 1


def _say(line):
    sys.stderr.write("%s in %d\n" % (line, os.getpid()))
    sys.stderr.flush()


def block_the_hub(seconds):
    """Sleeps without yielding to gevent's hub: the worker stops beating."""
    from gevent import monkey
    _say("workers_app blocking the hub")
    monkey.get_original("time", "sleep")(seconds)


def _json(start_response, obj, status="200 OK"):
    data = json.dumps(obj).encode()
    start_response(status, [("Content-Type", "application/json"),
                            ("Content-Length", str(len(data)))])
    return [data]


def _info(environ):
    return {
        "pid": os.getpid(),
        "path": environ["PATH_INFO"],
        "multithread": environ["wsgi.multithread"],
        "multiprocess": environ["wsgi.multiprocess"],
        "remote_port": environ.get("REMOTE_PORT"),
        "patched": PATCHED_AT_IMPORT,
    }


def _stream(n, gate=None):
    for i in range(n):
        yield b"piece-%04d\n" % i
        if i == 0 and gate:
            # The first piece must reach the client before the rest: the client creates
            # the gate file once it has it. (A server that held it would make this wait
            # time out, and the client then sees "late" in place of the second piece.)
            deadline = time.monotonic() + 10
            while not os.path.exists(gate):
                if time.monotonic() > deadline:
                    yield b"late\n"
                    break
                time.sleep(0.01)
        elif i == 0:
            time.sleep(0.5)
        elif i % 25 == 0:
            time.sleep(0.02)


def app(environ, start_response):
    path = environ["PATH_INFO"]
    query = environ.get("QUERY_STRING", "")

    if path.startswith("/sleep/"):
        _say("workers_app sleep started")
        time.sleep(float(path[len("/sleep/"):]))
        return _json(start_response, _info(environ))

    if path.startswith("/gsleep/"):
        import gevent
        gevent.sleep(float(path[len("/gsleep/"):]))
        return _json(start_response, _info(environ))

    if path == "/echo":
        data = environ["wsgi.input"].read()
        start_response("200 OK", [
            ("Content-Type", "application/octet-stream"),
            ("Content-Length", str(len(data))),
            ("X-Seen-Transfer-Encoding", environ.get("HTTP_TRANSFER_ENCODING", "-")),
            ("X-Seen-Content-Length", environ.get("CONTENT_LENGTH", "-") or "-"),
        ])
        return [data]

    if path == "/stream":
        start_response("200 OK", [("Content-Type", "text/plain")])
        count, _, gate = query.partition("&")
        return _stream(int(count or 100), gate or None)

    if path == "/error":
        raise RuntimeError("workers_app boom")

    if path.startswith("/fetch/"):
        conn = http.client.HTTPConnection("127.0.0.1", int(query), timeout=10)
        try:
            conn.request("GET", "/" + path[len("/fetch/"):])
            resp = conn.getresponse()
            body = resp.read()
        finally:
            conn.close()
        start_response("200 OK", [("Content-Type", "text/plain"),
                                  ("Content-Length", str(len(body))),
                                  ("X-Upstream-Status", str(resp.status))])
        return [body]

    if path.startswith("/block/"):
        block_the_hub(float(path[len("/block/"):]))
        return _json(start_response, _info(environ))

    if path == "/counter/start":
        with _counter_lock:
            if _counter["thread"] is None:
                t = threading.Thread(target=_count_forever, daemon=True)
                t.start()
                _counter["thread"] = t
        return _json(start_response, {"n": _counter["n"], "pid": os.getpid()})

    if path == "/counter/read":
        return _json(start_response, {"n": _counter["n"], "pid": os.getpid()})

    return _json(start_response, _info(environ))
