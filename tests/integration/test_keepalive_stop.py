"""Keep-alive connections lose no request: not to their own idle timer while the
application runs, not to a worker's graceful stop, not to a body slower than --timeout.

The worker is held in the application with the gate app (apps/gate.py: /hold waits
for a file the test creates), so that requests can be put in the kernel's buffers of
a worker that cannot read them yet, and a signal delivered, exactly when the test
wants; nothing here sleeps to synchronise.
"""

import os
import signal
import time

import pytest

from conftest import skip_unless_server_imports
from helpers import Control, control_path, wait_until
from rawhttp import Reader, closed_by_peer, request

CLASSES = {
    "sync": [],
    "gthread": ["-k", "gthread", "--threads", "4"],
    "gevent": ["-k", "gevent"],
}


def class_args(name):
    if name == "gevent":
        skip_unless_server_imports("gevent")
    return CLASSES[name]


def keepalive_conn(srv):
    """A connection that has been answered once: idle between keep-alive requests."""
    s = srv.connect()
    r = Reader(s)
    s.sendall(request("GET", "/"))
    resp = r.read_response()
    assert resp.status == 200 and resp.header("Connection", "keep-alive") != "close"
    return s, r


def test_a_request_queued_behind_a_long_one_is_not_dropped_by_the_idle_timer(start_server):
    # The application runs longer than --keep-alive; the next request on the same
    # connection arrives meanwhile. The idle timer armed after the first response
    # must count from then, not from before the application ran.
    srv = start_server("gate:app", "--keep-alive", "1")
    s = srv.connect()
    r = Reader(s)
    mark = srv.log_mark()
    s.sendall(request("GET", "/sleep/1.5"))
    srv.wait_for_log("gate sleeping", since=mark)
    s.sendall(request("GET", "/second"))  # waits in the kernel: the sync worker is in the app
    first = r.read_response()
    assert first.status == 200 and first.body == b"slept"
    second = r.read_response()
    assert second.status == 200 and second.body.startswith(b"ok ")


def test_requests_on_idle_connections_are_answered_at_a_graceful_stop(start_server, tmp_path):
    # Ten keep-alive connections send their next request while the sync worker runs
    # the application for a request that arrived together with its stop signal: when
    # the stop is handled, right after, those requests are in the kernel's buffers,
    # unread. They must be answered (with Connection: close), not reset.
    srv = start_server("gate:app")
    worker = srv.worker_pids()[0]
    idle = [keepalive_conn(srv) for _ in range(10)]
    first, second = tmp_path / "first", tmp_path / "second"
    # Answered once, so both are in the worker's hands before the first is held.
    (a, a_r), (b, b_r) = keepalive_conn(srv), keepalive_conn(srv)
    mark = srv.log_mark()
    a.sendall(request("GET", "/hold?%s&term" % first))  # the worker sends itself TERM, then waits
    srv.wait_for_log("gate held", since=mark)
    b.sendall(request("GET", "/hold?%s" % second))  # read in the same turn of the loop as the TERM
    first.touch()
    srv.wait_for_log("gate held", since=mark, count=2)
    for s, _ in idle:
        s.sendall(request("GET", "/next"))
    second.touch()
    assert a_r.read_response().body == b"released"
    assert b_r.read_response().body == b"released"
    for s, r in idle:
        resp = r.read_response()
        assert resp.status == 200 and resp.body == b"ok %d" % worker
        assert resp.header("Connection") == "close"
        assert closed_by_peer(s)
    srv.wait_for_log(r"Booting worker with pid: (?!%d)\d+" % worker)


@pytest.mark.parametrize("klass", sorted(CLASSES))
def test_a_keepalive_response_during_a_stop_still_takes_the_next_request(start_server, klass,
                                                                        tmp_path):
    # The response was promised keep-alive before the stop began: the client may send
    # its next request at once, and that request gets an answer (Connection: close)
    # instead of a closed connection.
    srv = start_server("gate:app", *class_args(klass))
    worker = srv.worker_pids()[0]
    gate = tmp_path / "open"
    s = srv.connect()
    r = Reader(s)
    mark = srv.log_mark()
    s.sendall(request("GET", "/hold?%s&term" % gate))
    srv.wait_for_log("gate held", since=mark)
    gate.touch()
    first = r.read_response()
    assert first.body == b"released"
    s.sendall(request("GET", "/next"))
    second = r.read_response()
    assert second.status == 200 and second.body == b"ok %d" % worker
    # "close" when the stop was seen before /next was read; a sync worker may read
    # /next first (libuv handles signals after the reads of the same turn), and then
    # ends the idle connection with a FIN within the last call.
    s.settimeout(5)
    assert r.buf == b"" and s.recv(1) == b""


@pytest.mark.parametrize("klass", sorted(CLASSES))
def test_idle_connections_close_cleanly_soon_after_a_stop(start_server, klass):
    # An idle connection that brings no request is ended with a FIN (no reset) within
    # the last call, and the worker exits without waiting for the graceful timeout.
    srv = start_server("gate:app", "--keep-alive", "60", "--graceful-timeout", "30",
                       *class_args(klass))
    worker = srv.worker_pids()[0]
    s, r = keepalive_conn(srv)
    started = time.monotonic()
    os.kill(worker, signal.SIGTERM)
    s.settimeout(10)
    assert s.recv(1) == b""  # a FIN, not ECONNRESET
    s.close()
    srv.wait_for_log(r"Worker exiting \(pid: %d\)" % worker, timeout=10)
    assert time.monotonic() - started < 5


def slow_upload(srv, total, pieces, pause):
    """Sends `total` bytes to /echo in `pieces` parts, `pause` seconds apart."""
    s = srv.connect(timeout=30)
    r = Reader(s)
    s.sendall(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % total)
    piece = total // pieces
    for i in range(pieces):
        s.sendall(b"x" * (piece if i < pieces - 1 else total - piece * (pieces - 1)))
        time.sleep(pause)  # the client's pace, not a synchronisation
    return r.read_response()


@pytest.mark.parametrize("klass", sorted(CLASSES))
def test_an_upload_slower_than_the_timeout_but_progressing_is_served(start_server, klass):
    srv = start_server("gate:app", "--timeout", "1", *class_args(klass))
    resp = slow_upload(srv, 300_000, 12, 0.25)  # 3 s in all, a piece every 0.25 s
    assert resp.status == 200
    assert resp.header("X-Body-Length") == "300000"


@pytest.mark.parametrize("klass", sorted(CLASSES))
def test_a_stalled_upload_gets_408_and_a_warning(start_server, klass):
    srv = start_server("gate:app", "--timeout", "1", *class_args(klass))
    s = srv.connect(timeout=10)
    r = Reader(s)
    s.sendall(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 1000\r\n\r\n" + b"x" * 100)
    resp = r.read_response()
    assert resp.status == 408
    assert closed_by_peer(s)
    srv.wait_for_log(r"\[WARNING\] Request body from 127\.0\.0\.1 stalled: no bytes for 1s "
                     r"after 100 received")


def test_keepalive_connections_spread_evenly_over_the_workers(start_server, tmp_path):
    # 40 connections opened one after the other against two sync workers: a worker
    # steps back from accepting while its sibling holds fewer connections, so each
    # holds about half (it was luck: 42/10 and 52/0 were seen with a busy application).
    # The balance reads the siblings' scoreboard slots: both must say "idle" (set just
    # after post_worker_init) before the connections come, or the first worker takes
    # them all while the other is still booting, as happened once under load.
    path = control_path()
    srv = start_server("gate:app", "--control-socket", path, workers=2)
    ctl = Control(path)
    wait_until(lambda: [w["state"] for w in ctl.request("show workers")["workers"]]
               == ["idle", "idle"], what="both workers idle in the scoreboard")
    conns = [srv.connect() for _ in range(40)]
    counts = {}
    try:
        for s in conns:
            s.sendall(request("GET", "/"))
        for s in conns:
            resp = Reader(s).read_response()
            counts[resp.body] = counts.get(resp.body, 0) + 1
    finally:
        for s in conns:
            s.close()
    assert len(counts) == 2 and max(counts.values()) - min(counts.values()) <= 4, counts


def test_a_killed_sync_worker_takes_only_the_request_it_runs(start_server, tmp_path):
    # A sync worker accepts a connection in the same turn of its loop as it starts
    # running another request: the accepted connection is read and served at once,
    # before the application runs the other one, so when the worker is then killed
    # (the OOM killer, kill -9), only the request in the application is lost, as in
    # Gunicorn, and not also one it had accepted and left waiting.
    srv = start_server("gate:app")
    worker = srv.worker_pids()[0]
    x, x_r = keepalive_conn(srv)
    first, second = tmp_path / "first", tmp_path / "second"
    p = srv.connect()
    mark = srv.log_mark()
    p.sendall(request("GET", "/hold?%s" % first))
    srv.wait_for_log("gate held", since=mark)
    y = srv.connect()  # the listener is ready before x is: accepted first in the next turn
    y.sendall(request("GET", "/y"))
    x.sendall(request("GET", "/hold?%s" % second))
    first.touch()
    srv.wait_for_log("gate held", since=mark, count=2)  # x runs now
    os.kill(worker, signal.SIGKILL)
    resp = Reader(y).read_response()
    assert resp.status == 200 and resp.body == b"ok %d" % worker
    srv.wait_for_log(r"Worker \(pid:%d\) was sent SIGKILL" % worker)
    for s in (x, y, p):
        s.close()
