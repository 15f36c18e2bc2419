"""Quick stops (INT, QUIT) and aborts (ABRT) under each worker class: sync, gthread and
gevent (docs/signals.md, "Signals to a worker"; docs/workers.md).

What every class must do when a worker gets INT or QUIT, from the master's quick stop
or sent to it directly: run worker_int, answer each request it is running with a 500
(sync and gevent by raising SystemExit in the application, whose finally blocks run;
gthread from the loop thread, since a pool thread cannot be interrupted), run
worker_exit, and exit 0 at once, with nothing alarming in the log. ABRT does the same
with worker_abort and exit status 1. The app, apps/quick_stop_app.py, blocks in
time.sleep and logs when a request starts and when its finally block runs; tests wait
for those lines, never for time.
"""

import os
import signal
import socket
import threading
import time

import pytest
import requests

from conftest import BOOTING_RE
from helpers import get

APP = "quick_stop_app:app"
SYNC = ["-k", "sync"]
GTHREAD = ["-k", "gthread", "--threads", "4"]
GEVENT = ["-k", "gevent"]
CLASSES = [
    pytest.param(SYNC, id="sync"),
    pytest.param(GTHREAD, id="gthread"),
    pytest.param(GEVENT, id="gevent", marks=pytest.mark.server_imports("gevent")),
]
all_classes = pytest.mark.parametrize("klass", CLASSES)
quick_signals = pytest.mark.parametrize("sig", [signal.SIGQUIT, signal.SIGINT],
                                        ids=["QUIT", "INT"])

# Hooks that say in the log when they run, and in which process.
HOOKS_CONF = """\
import os


def worker_int(worker):
    worker.log.info("worker_int hook ran in %s", os.getpid())


def worker_abort(worker):
    worker.log.info("worker_abort hook ran in %s", os.getpid())


def worker_exit(server, worker):
    worker.log.info("worker_exit hook ran in %s", os.getpid())
"""


@pytest.fixture
def serve(start_server, tmp_path):
    """Starts one worker of `klass` with hooks that log; returns (server, worker pid)
    once the worker has answered a request (so it has booted, not just forked)."""
    conf = tmp_path / "quick_stop_conf.py"
    conf.write_text(HOOKS_CONF)

    def start(klass, *args):
        srv = start_server(APP, *klass, "-c", str(conf), "--graceful-timeout", "20", *args)
        (worker,) = srv.worker_pids()
        assert get(srv, "/").status_code == 200
        return srv, worker

    return start


class InFlight:
    """A request to /block in a thread; .outcome is its status, or "dropped"."""

    def __init__(self, srv, path="/block"):
        self.outcome = None
        self._thread = threading.Thread(target=self._run, args=(srv, path), daemon=True)
        self._thread.start()

    def _run(self, srv, path):
        try:
            self.outcome = get(srv, path, timeout=20).status_code
        except requests.RequestException as e:
            self.outcome = f"dropped ({e!r})"

    def result(self, timeout=10):
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the client is still waiting for an answer"
        return self.outcome


def assert_clean(log, worker):
    """Nothing in the log says the worker's stop went wrong: the gevent hub failing on
    its way out (issue 13), a C-API misuse, a failed interruption, a killed worker."""
    for bad in ("The gevent hub failed", "SystemError", "Cannot interrupt",
                "Cannot stop a gevent watcher", "Exception in worker_exit hook",
                f"Worker (pid:{worker}) was sent"):
        assert bad not in log, f"{bad!r} in the log:\n{log}"


def assert_replaced(srv, worker, mark):
    """The worker exited 0 (the master says nothing about it) and a new one serves."""
    srv.wait_for_log(rf"Worker exiting \(pid: {worker}\)", since=mark)
    new = int(srv.wait_for_log(BOOTING_RE, since=mark).group(1))
    assert new != worker
    r = get(srv, "/")
    assert r.status_code == 200 and f'"pid": {new}' in r.text, r.text
    assert f"Worker (pid:{worker}) exited with code" not in srv.log_text(), srv.log_text()
    return new


def interrupted_before_exit(srv, klass, worker, since):
    """The request was answered before worker_exit ran: by SystemExit in the app (its
    finally block ran, the 500's traceback is logged) or, for gthread, by the loop."""
    lines = srv.log_text().splitlines()[since:]
    exit_at = next(i for i, line in enumerate(lines)
                   if f"worker_exit hook ran in {worker}" in line)
    if klass is GTHREAD:
        want = "abandoned as the worker exits while its thread runs it"
    else:
        want = f"quick_stop_app finally ran in {worker}"
    answered_at = next((i for i, line in enumerate(lines) if want in line), None)
    assert answered_at is not None, f"no {want!r} in the log:\n{srv.log_text()}"
    assert answered_at < exit_at, srv.log_text()
    if klass is not GTHREAD:
        assert "Error handling request GET /block" in srv.log_text()


# --- an idle worker --------------------------------------------------------------------


@all_classes
@quick_signals
def test_idle_worker_quick_stop_exits_0_and_is_replaced(serve, klass, sig):
    srv, worker = serve(klass)
    mark = srv.log_mark()
    os.kill(worker, sig)
    srv.wait_for_log(rf"worker_int hook ran in {worker}", since=mark)
    srv.wait_for_log(rf"worker_exit hook ran in {worker}", since=mark)
    assert_replaced(srv, worker, mark)
    log = "\n".join(srv.log_text().splitlines()[mark:])
    assert_clean(log, worker)
    assert "Traceback" not in log, log


@all_classes
def test_idle_worker_abrt_exits_1_without_a_hub_failure(serve, klass):
    srv, worker = serve(klass)
    mark = srv.log_mark()
    os.kill(worker, signal.SIGABRT)
    srv.wait_for_log(rf"worker_abort hook ran in {worker}", since=mark)
    srv.wait_for_log(rf"Worker \(pid:{worker}\) exited with code 1\.", since=mark)
    new = int(srv.wait_for_log(BOOTING_RE, since=mark).group(1))
    assert get(srv, "/").text == f'{{"pid": {new}}}'
    log = "\n".join(srv.log_text().splitlines()[mark:])
    assert_clean(log, worker)
    assert "Traceback" not in log, log


# --- a request in flight -----------------------------------------------------------------


@all_classes
@quick_signals
def test_worker_quick_stop_answers_the_running_request_with_500(serve, klass, sig):
    srv, worker = serve(klass)
    mark = srv.log_mark()
    client = InFlight(srv)
    srv.wait_for_log(rf"quick_stop_app request started in {worker}", since=mark)
    start = time.monotonic()
    os.kill(worker, sig)
    assert client.result() == 500
    srv.wait_for_log(rf"Worker exiting \(pid: {worker}\)", since=mark)
    took = time.monotonic() - start
    assert took < 5, f"the quick stop took {took:.1f}s"
    assert_replaced(srv, worker, mark)
    assert_clean(srv.log_text(), worker)
    srv.wait_for_log(rf"worker_int hook ran in {worker}", since=mark)
    interrupted_before_exit(srv, klass, worker, mark)


@all_classes
def test_worker_abrt_answers_the_running_request_with_500_and_exits_1(serve, klass):
    srv, worker = serve(klass)
    mark = srv.log_mark()
    client = InFlight(srv)
    srv.wait_for_log(rf"quick_stop_app request started in {worker}", since=mark)
    os.kill(worker, signal.SIGABRT)
    assert client.result() == 500
    srv.wait_for_log(rf"Worker \(pid:{worker}\) exited with code 1\.", since=mark)
    srv.wait_for_log(BOOTING_RE, since=mark)
    srv.wait_for_log(rf"worker_abort hook ran in {worker}", since=mark)
    assert_clean(srv.log_text(), worker)
    interrupted_before_exit(srv, klass, worker, mark)


@pytest.mark.parametrize("klass", [
    pytest.param(GTHREAD, id="gthread"),
    pytest.param(GEVENT, id="gevent", marks=pytest.mark.server_imports("gevent")),
])
def test_every_running_request_gets_its_500(serve, klass):
    srv, worker = serve(klass)
    mark = srv.log_mark()
    clients = [InFlight(srv) for _ in range(3)]
    srv.wait_for_log(rf"quick_stop_app request started in {worker}", since=mark, count=3)
    os.kill(worker, signal.SIGQUIT)
    assert [c.result() for c in clients] == [500, 500, 500]
    assert_replaced(srv, worker, mark)
    assert_clean(srv.log_text(), worker)


@all_classes
def test_a_response_already_started_is_cut_not_corrupted(serve, klass):
    """Once the head has gone out no 500 can follow: the connection closes, and the
    client sees an unfinished chunked body, never a second status line."""
    srv, worker = serve(klass)
    mark = srv.log_mark()
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as s:
        s.sendall(b"GET /stream HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while b"first piece\n" not in data:
            chunk = s.recv(65536)
            assert chunk, data
            data += chunk
        srv.wait_for_log(rf"quick_stop_app stream started in {worker}", since=mark)
        os.kill(worker, signal.SIGQUIT)
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    assert data.startswith(b"HTTP/1.1 200 OK\r\n"), data
    assert b"500" not in data and b"never sent" not in data, data
    assert not data.endswith(b"0\r\n\r\n"), data  # the chunked body never ended
    assert_replaced(srv, worker, mark)
    assert_clean(srv.log_text(), worker)


# --- the master's quick stop --------------------------------------------------------------


@all_classes
@quick_signals
def test_master_quick_stop_answers_the_running_request_with_500(serve, klass, sig):
    srv, worker = serve(klass)
    mark = srv.log_mark()
    client = InFlight(srv)
    srv.wait_for_log(rf"quick_stop_app request started in {worker}", since=mark)
    start = time.monotonic()
    srv.send_signal(sig)
    assert client.result() == 500
    assert srv.wait(10) == 0
    took = time.monotonic() - start
    assert took < 5, f"the quick stop took {took:.1f}s"
    log = srv.log_text()
    assert f"Handling signal: {signal.Signals(sig).name[3:].lower()}" in log
    assert f"worker_int hook ran in {worker}" in log
    assert "Shutting down: Master" in log
    assert f"Worker (pid:{worker}) exited with code" not in log, log
    assert "SIGKILL" not in log, log
    assert_clean(log, worker)
    interrupted_before_exit(srv, klass, worker, mark)
