"""Worker classes: gthread (``-k gthread --threads N``, or ``sync`` with N > 1) and
gevent (``-k gevent``: monkey-patched after fork, one greenlet per connection), beside
the default sync worker.

Most tests run one app, apps/workers_app.py, under both new classes: concurrency
(sleeping requests overlap), HTTP behaviour the classes must keep (keep-alive, chunked
uploads, streaming, Expect: 100-continue, errors), the lifecycle (graceful TERM,
--max-requests, --timeout and the heartbeat) and a Django project. Every client call
has a timeout, so a broken server fails a test instead of hanging it; concurrency
timings start only once every client has connected.
"""

import collections
import json
import os
import random
import signal
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from conftest import APPS_DIR, BOOTING_RE, pid_alive
from helpers import requests_before_autorestart, wait_gone
from rawhttp import Reader, request

try:
    import test_django
except pytest.skip.Exception:  # no Django here: test_django skips itself on import
    test_django = None

APP = "workers_app:app"
SYNC = ["-k", "sync"]
GTHREAD = ["-k", "gthread", "--threads", "4"]
GEVENT = ["-k", "gevent"]
both_classes = pytest.mark.parametrize("klass", [GTHREAD, GEVENT], ids=["gthread", "gevent"])

Reply = collections.namedtuple("Reply", "status headers body")

SANITIZED = bool(os.environ.get("GC_SANITIZED"))


# --- helpers -----------------------------------------------------------------------------


def fetch(srv, path="/info", method="GET", body=None, headers=None, timeout=10):
    """One request on a connection of its own; returns a Reply (body read whole)."""
    conn = srv.http_connection(timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=dict(headers or {}))
        resp = conn.getresponse()
        return Reply(resp.status, resp.msg, resp.read())
    finally:
        conn.close()


def info(srv, path="/info", timeout=10):
    r = fetch(srv, path, timeout=timeout)
    assert r.status == 200, (r, srv.log_text())
    return json.loads(r.body)


def concurrently(srv, paths, timeout=15):
    """GETs every path at once, each from its own thread on its own connection.

    Every client connects first and then waits at a barrier, so the clock (started
    when the barrier opens) measures the server, not how fast this process can open
    connections. Returns (replies, seconds): a Reply, or the exception a client got,
    in the order of `paths` (None for a client still waiting when time ran out)."""
    n = len(paths)
    barrier = threading.Barrier(n + 1)
    out = [None] * n

    def one(i):
        conn = srv.http_connection(timeout=timeout)
        try:
            try:
                conn.connect()
            finally:
                barrier.wait(timeout)
            conn.request("GET", paths[i])
            resp = conn.getresponse()
            out[i] = Reply(resp.status, resp.msg, resp.read())
        except Exception as e:  # reported to the test, which fails on it
            out[i] = e
        finally:
            conn.close()

    threads = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    barrier.wait(timeout)
    start = time.monotonic()
    deadline = start + timeout + 5
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    return out, time.monotonic() - start


def assert_all_ok(replies, srv):
    bad = [(i, r) for i, r in enumerate(replies) if not (isinstance(r, Reply) and r.status == 200)]
    assert not bad, f"{len(bad)} failed, e.g. {bad[:3]}\n{srv.log_text()[-3000:]}"


# --- which class runs ----------------------------------------------------------------------


@pytest.mark.parametrize("args,multithread,patched", [
    (SYNC, False, False),
    (["-k", "sync", "--threads", "1"], False, False),
    (["--threads", "4"], True, False),
    (["-k", "sync", "--threads", "4"], True, False),
    (["-k", "gthread", "--threads", "4"], True, False),
    (["-k", "gthread"], True, False),
    (["-k", "gunicorn.workers.gthread.ThreadWorker", "--threads", "2"], True, False),
    (["-k", "gunicorn.workers.sync.SyncWorker"], False, False),
    (["-k", "gunicorn.workers.sync.SyncWorker", "--threads", "4"], True, False),
    # Greenlets run requests concurrently: wsgi.multithread is True, as in Gunicorn.
    (GEVENT, True, True),
    (["-k", "gunicorn.workers.ggevent.GeventWorker"], True, True),
    (["-k", "egg:gunicorn#gevent"], True, True),
    # --preload imports the app in the master: it patches first there too.
    (["-k", "gevent", "--preload"], True, True),
], ids=["sync", "sync-threads-1", "threads-4", "sync-threads-4", "gthread-4", "gthread",
        "ThreadWorker", "SyncWorker", "SyncWorker-threads-4", "gevent", "GeventWorker",
        "egg-gevent", "gevent-preload"])
def test_worker_class_environ_and_patching(start_server, args, multithread, patched):
    srv = start_server(APP, *args)
    got = info(srv)
    assert got["pid"] in srv.worker_pids()
    assert got["multithread"] is multithread
    assert got["multiprocess"] is False  # one worker
    # The app module checked at import time: under gevent, patch_all() came first.
    assert got["patched"].get("socket", False) is patched, got
    assert got["patched"].get("time", False) is patched, got
    assert got["patched"].get("threading", False) is patched, got
    # The start-up line names what runs: sync with threads is gthread (as Gunicorn says).
    shown = args[args.index("-k") + 1] if "-k" in args else "sync"
    if multithread and (shown == "sync" or shown.endswith("SyncWorker")):
        shown = "gthread"
    assert f"Using worker: {shown}\n" in srv.log_text()


def test_gevent_patches_before_the_worker_hooks(start_server):
    srv = start_server(APP, "-k", "gevent", "-c", str(APPS_DIR / "workers_hooks_conf.py"))
    (worker,) = srv.worker_pids()
    for hook in ("post_fork", "post_worker_init"):
        m = srv.wait_for_log(rf"workers_hooks {hook} in (\d+): (.*)")
        assert int(m.group(1)) == worker
        assert m.group(2) == "socket=True time=True", srv.log_text()
    assert info(srv)["patched"]["socket"] is True


# --- concurrency -----------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["gsleep", "sleep"], ids=["gevent.sleep", "patched-time.sleep"])
def test_gevent_one_worker_serves_200_sleeping_requests_at_once(start_server, how):
    srv = start_server(APP, "-k", "gevent")
    (worker,) = srv.worker_pids()
    replies, took = concurrently(srv, [f"/{how}/1?{i}" for i in range(200)])
    assert_all_ok(replies, srv)
    assert {json.loads(r.body)["pid"] for r in replies} == {worker}
    assert 0.95 <= took < 3.0, f"200 one-second requests took {took:.2f}s"


class _Upstream(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # 50 connections arrive at once


class _UpstreamHandler(BaseHTTPRequestHandler):
    def do_GET(self):
        time.sleep(0.2)
        body = b"upstream:" + self.path.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def upstream():
    """A threaded HTTP server in this process: GET /x answers "upstream:/x" after 0.2s."""
    server = _Upstream(("127.0.0.1", 0), _UpstreamHandler)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()
    t.join(5)


def test_gevent_app_fetching_over_a_patched_socket(start_server, upstream):
    srv = start_server(APP, "-k", "gevent")
    replies, took = concurrently(srv, [f"/fetch/item-{i}?{upstream}" for i in range(50)])
    assert_all_ok(replies, srv)
    for i, r in enumerate(replies):
        assert r.headers["X-Upstream-Status"] == "200"
        assert r.body == f"upstream:/item-{i}".encode()
    # One after the other, the fetches alone would take 50 x 0.2s = 10s.
    assert took < 6.0, f"50 fetches took {took:.2f}s: the app's socket did not cooperate"


@pytest.mark.parametrize("args", [["-k", "gthread", "--threads", "8"],
                                  ["-k", "sync", "--threads", "8"]],
                         ids=["gthread", "sync-threads"])
def test_eight_threads_serve_eight_sleeping_requests_at_once(start_server, args):
    srv = start_server(APP, *args)
    (worker,) = srv.worker_pids()
    replies, took = concurrently(srv, [f"/sleep/1?{i}" for i in range(8)])
    assert_all_ok(replies, srv)
    assert {json.loads(r.body)["pid"] for r in replies} == {worker}
    assert 0.95 <= took < 2.5, f"8 one-second requests took {took:.2f}s"


@pytest.mark.parametrize("klass", [SYNC, GTHREAD, GEVENT], ids=["sync", "gthread", "gevent"])
def test_app_threads_run_while_the_worker_is_idle(start_server, klass):
    srv = start_server(APP, *klass)
    before = info(srv, "/counter/start")
    time.sleep(0.5)
    after = info(srv, "/counter/read")
    assert after["pid"] == before["pid"]
    # A 10 ms counter runs ~50 times in 0.5s if the idle worker lets it.
    assert after["n"] - before["n"] > 10, (before, after)


def test_sync_serves_a_new_connection_between_anothers_pipelined_requests(start_server):
    # A connection's requests after its first take turns with other connections: a
    # client that pipelines six 0.3 s requests does not hold a new connection's first
    # request until all six are done (the sync worker once ran them back to back).
    srv = start_server(APP, *SYNC, "--keep-alive", "10")
    with srv.connect() as a:
        a.settimeout(10)
        a.sendall(b"".join(request(path="/sleep/0.3?%d" % i) for i in range(6)))
        srv.wait_for_log("workers_app sleep started")
        with srv.connect() as b:
            b.settimeout(10)
            b.sendall(request(path="/info", headers=[("Connection", "close")]))
            assert Reader(b).read_response().status == 200
        # b was answered while a's pipeline was still under way.
        try:
            sent = a.recv(65536, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        except BlockingIOError:
            sent = b""
        assert sent.count(b"HTTP/1.1 ") < 6, sent
        reader = Reader(a)
        replies = [reader.read_response() for _ in range(6)]
    assert [r.status for r in replies] == [200] * 6


@pytest.mark.parametrize("klass", [GTHREAD, GEVENT], ids=["gthread", "gevent"])
def test_worker_connections_bound_open_connections(start_server, klass):
    srv = start_server(APP, *klass, "--worker-connections", "3", "--keep-alive", "30")
    busy = []
    waiting = None
    try:
        for _ in range(3):
            s = srv.connect()
            s.sendall(b"GET /info HTTP/1.1\r\n")  # a request under way holds its connection
            busy.append(s)
        waiting = srv.connect()  # the kernel completes the handshake; the worker waits
        waiting.sendall(request(path="/info"))
        # The worker saw the fourth connection at its limit and stopped accepting:
        # nothing resumes it before one of the three goes, so the client has no answer.
        srv.wait_for_log(r"Worker connection limit reached \(3 open\)")
        waiting.setblocking(False)
        with pytest.raises(BlockingIOError):
            waiting.recv(1)
        # One of the three finishes and leaves: the waiting client is served.
        busy[0].sendall(b"Host: x\r\nConnection: close\r\n\r\n")
        assert Reader(busy[0]).read_response().status == 200
        waiting.settimeout(5)
        assert Reader(waiting).read_response().status == 200
    finally:
        for s in busy + [waiting]:
            if s is not None:
                s.close()


# --- HTTP under both classes -----------------------------------------------------------------


@both_classes
def test_keep_alive_serves_several_requests_on_one_connection(start_server, klass):
    srv = start_server(APP, *klass, "--keep-alive", "5")
    conn = srv.http_connection(timeout=10)
    try:
        ports = []
        sock = None
        for i in range(6):
            conn.request("GET", f"/info/{i}")
            resp = conn.getresponse()
            got = json.loads(resp.read())
            assert resp.status == 200 and got["path"] == f"/info/{i}"
            assert not resp.will_close, resp.getheaders()
            if sock is None:
                sock = conn.sock
            assert conn.sock is sock, "http.client had to reconnect"
            ports.append(int(got["remote_port"]))
        assert set(ports) == {sock.getsockname()[1]}
    finally:
        conn.close()


@both_classes
def test_chunked_upload_is_echoed(start_server, klass):
    srv = start_server(APP, *klass)
    rng = random.Random(6)
    payload = rng.randbytes(1024 * 1024)
    pieces, i = [], 0
    while i < len(payload):
        n = rng.choice((1, 7, 1000, 4096, 65536, 70001))
        pieces.append(payload[i:i + n])
        i += n
    # An iterable body without a length: http.client sends it chunked.
    r = fetch(srv, "/echo", method="POST", body=iter(pieces), timeout=20,
              headers={"Content-Type": "application/octet-stream"})
    assert r.status == 200
    assert r.headers["X-Seen-Transfer-Encoding"].lower() == "chunked"
    assert r.headers["X-Seen-Content-Length"] == "-"
    assert len(r.body) == len(payload)
    assert r.body == payload


@both_classes
def test_streamed_response_arrives_piece_by_piece(start_server, klass, tmp_path):
    # The app stops after its first piece until the client, holding that piece, opens
    # the gate: a server that held the piece back would make the app give up waiting.
    srv = start_server(APP, *klass)
    gate = tmp_path / "gate"
    conn = srv.http_connection(timeout=15)
    try:
        conn.request("GET", f"/stream?200&{gate}")
        resp = conn.getresponse()
        assert resp.status == 200
        assert resp.getheader("Transfer-Encoding") == "chunked"
        first = resp.read(11)
        gate.touch()
        rest = resp.read()
    finally:
        conn.close()
    assert first == b"piece-0000\n"
    assert rest == b"".join(b"piece-%04d\n" % i for i in range(1, 200)), rest[:40]


@both_classes
def test_expect_100_continue_upload(start_server, klass):
    srv = start_server(APP, *klass)
    body = bytes(range(256)) * 400
    with srv.connect(timeout=5) as s:
        s.sendall(request("POST", "/echo", headers=[("Expect", "100-continue"),
                                                   ("Content-Length", str(len(body)))]))
        reader = Reader(s)
        interim = reader.read_response("POST")  # times out if the server waits for the body
        assert interim.status == 100
        assert interim.raw_head.startswith(b"HTTP/1.1 100 Continue\r\n")
        s.sendall(body)
        final = reader.read_response("POST")
    assert final.status == 200
    assert final.body == body


@both_classes
def test_app_exception_is_a_500_and_the_worker_survives(start_server, klass):
    srv = start_server(APP, *klass)
    (worker,) = srv.worker_pids()
    r = fetch(srv, "/error")
    assert r.status == 500
    srv.wait_for_log(r"RuntimeError: workers_app boom")
    assert "Traceback (most recent call last)" in srv.log_text()
    assert info(srv)["pid"] == worker
    assert srv.live_worker_pids() == [worker]


# --- lifecycle under both classes --------------------------------------------------------


@both_classes
def test_term_lets_requests_in_flight_finish(start_server, klass):
    srv = start_server(APP, *klass, "--graceful-timeout", "10")
    (worker,) = srv.worker_pids()
    n = 4
    results = [None] * n

    def client(i):
        try:
            results[i] = fetch(srv, f"/sleep/1.5?{i}", timeout=15)
        except Exception as e:
            results[i] = e

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    # All of them at once (one after the other, the fourth would start after 4.5s).
    srv.wait_for_log(r"workers_app sleep started", count=n, timeout=1.2)
    srv.send_signal(signal.SIGTERM)
    assert srv.wait(15) == 0
    for t in threads:
        t.join(5)
    assert_all_ok(results, srv)
    for r in results:
        assert json.loads(r.body)["pid"] == worker
    log = srv.log_text()
    assert "Shutting down: Master" in log
    assert "SIGKILL" not in log
    assert not pid_alive(worker)


@both_classes
@pytest.mark.parametrize("jitter", [[], ["--max-requests-jitter", "0"]],
                         ids=["default-jitter", "jitter-0"])
def test_max_requests_recycles_without_failing_a_request(start_server, klass, jitter):
    srv = start_server(APP, *klass, "--max-requests", "20", *jitter, "--log-level", "debug")
    failures, pids = [], []

    def one(path):
        try:
            r = fetch(srv, path, headers={"Connection": "close"})
            if r.status == 200:
                pids.append(json.loads(r.body)["pid"])
            else:
                failures.append((path, r.status))
        except Exception as e:  # no retries: any error is a failed request
            failures.append((path, repr(e)))

    def loop(k, n):
        for i in range(n):
            one(f"/info/c{k}-{i}")

    for i in range(300):
        one(f"/info/{i}")
    threads = [threading.Thread(target=loop, args=(k, 25), daemon=True) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    # A retiring worker serves on until its replacement has booted, so a fast client can
    # see few workers so far: go on until three have retired (a few seconds at most).
    deadline = time.monotonic() + 15
    i = 0
    while (len(requests_before_autorestart(srv.log_text())) < 3 and not failures
           and time.monotonic() < deadline):
        one(f"/info/more-{i}")
        i += 1
    assert not failures, (failures[:5], srv.log_text()[-3000:])
    assert len(pids) == 300 + 100 + i
    limits = requests_before_autorestart(srv.log_text())
    assert len(limits) >= 3, limits
    assert len(set(pids)) >= 3
    # Each said it was retiring at its 20th request. The count is of "GET" debug lines
    # logged before the "Autorestarting" line: the line is logged when the loop thread
    # takes the 20th request back, and the client that got that response (written by
    # its thread or greenlet before) may already have sent its next one, which another
    # thread logs first. Each of the four clients can so get a request in per turn of a
    # busy loop: under a load average of 7-10, 30-31 were seen. 40 is five such turns;
    # a worker that did not retire at 20 goes far past it (every request of the test).
    assert all(20 <= n <= 40 for n in limits.values()), limits
    log = srv.log_text()
    assert "exited with code" not in log and "was sent" not in log, log


def test_gthread_long_request_does_not_time_out_the_worker(start_server):
    # The loop thread beats for the worker while an app thread is busy, as in Gunicorn.
    srv = start_server(APP, "-k", "gthread", "--threads", "2", "--timeout", "2")
    (worker,) = srv.worker_pids()
    start = time.monotonic()
    r = fetch(srv, "/sleep/4", timeout=15)
    assert r.status == 200, srv.log_text()
    assert json.loads(r.body)["pid"] == worker
    assert time.monotonic() - start >= 3.9
    assert "WORKER TIMEOUT" not in srv.log_text()
    assert srv.live_worker_pids() == [worker]


def test_gevent_blocked_hub_is_a_worker_timeout_with_its_stack(start_server):
    srv = start_server(APP, "-k", "gevent", "--timeout", "2")
    (worker,) = srv.worker_pids()
    assert info(srv)["pid"] == worker
    outcome = []

    def client():
        try:
            outcome.append(fetch(srv, "/block/10", timeout=20).status)
        except Exception as e:
            outcome.append(repr(e))

    t = threading.Thread(target=client, daemon=True)
    t.start()
    srv.wait_for_log(r"workers_app blocking the hub")
    # The block lasts 10s: the timeout must come from the missing heartbeat, well before.
    srv.wait_for_log(rf"\[CRITICAL\] WORKER TIMEOUT \(pid:{worker}\)", timeout=7)
    m = srv.wait_for_log(
        rf'Worker \(pid:{worker}\) was serving "GET /block/10" for (\d+\.\d)s; '
        r"its Python stack follows")
    assert 2.0 <= float(m.group(1)) < 5.0
    # faulthandler's dump of the greenlet that holds the hub, innermost first.
    srv.wait_for_log(r'File ".*workers_app\.py", line \d+ in block_the_hub')
    srv.wait_for_log(r'File ".*workers_app\.py", line \d+ in app')
    new = int(srv.wait_for_log(BOOTING_RE, count=2, timeout=10).group(1))
    assert new != worker
    wait_gone(worker)
    assert info(srv)["pid"] == new
    t.join(15)
    assert outcome and outcome[0] != 200, outcome


# --- Django ------------------------------------------------------------------------------------


if test_django is not None:
    project = test_django.project  # the module-scoped fixture: startproject, migrate, admin
needs_django = pytest.mark.skipif(test_django is None, reason="Django is not installed")


@needs_django
@both_classes
def test_django_project(start_server, project, klass):
    srv = start_server("myproject.wsgi", *klass, app_dir=project)
    base = test_django.base(srv)
    with requests.Session() as s:
        page = s.get(base + "/admin/login/?next=/admin/", timeout=10)
        assert page.status_code == 200
        assert "Django administration" in page.text
        assert '<form' in page.text and 'name="password"' in page.text
        form = {"csrfmiddlewaretoken": test_django.csrf_token(page.text), "username": "admin",
                "password": "gc-secret", "next": "/admin/"}
        r = s.post(base + "/admin/login/?next=/admin/", data=form, allow_redirects=False,
                   timeout=10)
        assert r.status_code == 302, r.text[:500]
        assert r.headers["Location"] == "/admin/"
        r = s.get(base + "/admin/", timeout=10)
        assert r.status_code == 200
        assert "Site administration" in r.text
        # Django's own form view, posted with and without its token.
        token = test_django.csrf_token(s.get(base + "/form/", timeout=10).text)
        r = s.post(base + "/form/", data={"csrfmiddlewaretoken": token, "name": "gc"},
                   timeout=10)
        assert (r.status_code, r.text) == (200, "posted gc")
    r = requests.post(base + "/form/", data={"name": "gc"}, timeout=10)
    assert r.status_code == 403
