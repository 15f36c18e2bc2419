"""StatsD metrics (--statsd-host, --statsd-prefix, --dogstatsd-tags,
--enable-backlog-metric): Gunicorn's names, types and wire format, received by a real
datagram socket in the test.

Per request ``gunicorn.request.duration`` (``|ms``), ``gunicorn.requests`` and
``gunicorn.request.status.<code>`` (``|c|@1.0``); from the master ``gunicorn.workers``
(``|g``) when the count changes and ``gunicorn.backlog`` (``|h``) each second when
asked; ``gunicorn.log.<level>`` for every warning, error, exception and critical line,
shown or not. gunicorn-c sends a request's three metrics in one datagram, one per line:
the receiver splits packets into lines, as StatsD servers do.
"""

import http.client
import os
import re
import signal
import socket
import threading
import time
from collections import Counter

import pytest

from conftest import BOOTING_RE, run_cli
from helpers import (Control, DatagramReceiver, control_path, free_port, get, wait_gone,
                     wait_listening, wait_until)

APP = "statsd_app:app"
LINE_RE = re.compile(r"^(?P<name>[^:|]+):(?P<value>[^|]+)\|(?P<type>c|ms|g|h)"
                     r"(?P<rate>\|@1\.0)?(?:\|#(?P<tags>.*))?$")


class Receiver(DatagramReceiver):
    """A StatsD server stand-in: collects every datagram on a UDP socket on 127.0.0.1
    (or a unix datagram socket at `path`) from a thread, split into metric lines."""

    def __init__(self, path=None):
        super().__init__(path, text=True)

    def lines(self):
        with self._cond:
            return [line for p in self.packets for line in p.split("\n")]

    def parsed(self):
        out = []
        for line in self.lines():
            m = LINE_RE.match(line)
            assert m, f"not a StatsD line: {line!r}"
            out.append(m)
        return out

    def counts(self):
        """Sum of each counter's values, by name."""
        c = Counter()
        for m in self.parsed():
            if m["type"] == "c":
                c[m["name"]] += int(m["value"])
        return c

    def values(self, name):
        return [m["value"] for m in self.parsed() if m["name"] == name]


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def load(srv, paths, threads=4):
    """Sends every path in `paths`, spread over keep-alive connections; returns the
    statuses by count."""
    statuses = Counter()
    lock = threading.Lock()
    errors = []

    def run(chunk):
        conn = http.client.HTTPConnection(srv.host, srv.port, timeout=10)
        try:
            for p in chunk:
                conn.request("GET", p)  # reconnects after a response that closed
                resp = conn.getresponse()
                resp.read()
                with lock:
                    statuses[resp.status] += 1
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)
        finally:
            conn.close()

    ts = [threading.Thread(target=run, args=(paths[i::threads],)) for i in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(60)
    assert not errors, errors
    return statuses


# --- per request --------------------------------------------------------------------


@pytest.mark.parametrize("klass", [["-k", "sync"], ["-k", "gthread", "--threads", "4"]],
                         ids=["sync", "gthread"])
def test_request_metrics_under_load(start_server, receiver, klass):
    srv = start_server(APP, "--statsd-host", receiver.address, *klass, workers=2)
    paths = ["/"] * 210 + ["/missing"] * 60 + ["/boom"] * 30
    statuses = load(srv, paths)
    assert statuses == {200: 210, 404: 60, 500: 30}
    receiver.wait_for(lambda r: r.counts()["gunicorn.requests"] >= 300
                      and r.counts()["gunicorn.log.exception"] >= 30)
    # Nothing more may come: the workers have sent all they will once the server has
    # stopped, and the receiver has read all of it once its own barrier datagram is in.
    assert srv.proc.poll() is None
    assert srv.stop() == 0
    receiver.barrier()
    c = receiver.counts()
    assert c["gunicorn.requests"] == 300
    assert c["gunicorn.request.status.200"] == 210
    assert c["gunicorn.request.status.404"] == 60
    assert c["gunicorn.request.status.500"] == 30
    # Each application error is one log.exception (Gunicorn's handle_error), not an error.
    assert c["gunicorn.log.exception"] == 30
    assert c["gunicorn.log.error"] == 0
    durations = receiver.values("gunicorn.request.duration")
    assert len(durations) == 300
    assert all(re.fullmatch(r"\d+\.\d+", d) for d in durations), durations[:10]
    assert all(0 < float(d) < 5000 for d in durations)
    for m in receiver.parsed():
        if m["type"] == "c":
            assert m["value"] == "1" and m["rate"], m.group(0)  # ":1|c|@1.0"
        assert m["tags"] is None
    # One datagram per request: duration, requests, status, in Gunicorn's order.
    request_packets = [p for p in receiver.packets if "gunicorn.requests:" in p]
    assert len(request_packets) == 300
    for p in request_packets:
        names = [line.split(":")[0] for line in p.split("\n")]
        assert names[:2] == ["gunicorn.request.duration", "gunicorn.requests"], p
        assert names[2].startswith("gunicorn.request.status."), p


def test_prefix_and_dogstatsd_tags(start_server, receiver):
    srv = start_server(APP, "--statsd-host", receiver.address, "--statsd-prefix", "shop.web..",
                       "--dogstatsd-tags", "env:test,team:web")
    assert get(srv, "/").status_code == 200
    receiver.wait_for(lambda r: any("requests" in line for line in r.lines()))
    lines = receiver.lines()
    assert "shop.web.gunicorn.requests:1|c|@1.0|#env:test,team:web" in lines
    assert "shop.web.gunicorn.request.status.200:1|c|@1.0|#env:test,team:web" in lines
    assert "shop.web.gunicorn.workers:1|g|#env:test,team:web" in lines
    assert any(re.fullmatch(r"shop\.web\.gunicorn\.request\.duration:\d+\.\d+\|ms"
                            r"\|#env:test,team:web", line) for line in lines), lines
    assert all(line.startswith("shop.web.gunicorn.") for line in lines), lines
    # No backlog histogram unless --enable-backlog-metric. Waiting for a once-a-second
    # metric not to come, which no event can mark: a tick must pass (the client's pace).
    time.sleep(1.3)
    assert not receiver.values("gunicorn.backlog")


def test_server_keeps_serving_when_nothing_listens(start_server):
    port = free_port(socket.SOCK_DGRAM)  # nothing is bound there
    srv = start_server(APP, "--statsd-host", f"127.0.0.1:{port}", "--log-level", "debug",
                       workers=2)
    statuses = load(srv, ["/"] * 150 + ["/missing"] * 50)
    assert statuses == {200: 150, 404: 50}
    log = srv.log_text()
    assert "[WARNING]" not in log and "[ERROR]" not in log, log
    # Refused datagrams are dropped; each process says so once, at debug level.
    refused = re.findall(r"\[(\d+)\] \[DEBUG\] StatsD: cannot send to", log)
    assert all(n == 1 for n in Counter(refused).values()), log


# --- unix datagram sockets ------------------------------------------------------------


def test_unix_datagram_socket(start_server, tmp_path):
    path = str(tmp_path / "statsd.sock")
    r = Receiver(path)
    try:
        srv = start_server(APP, "--statsd-host", f"unix://{path}")
        for p in ("/", "/", "/missing"):
            get(srv, p)
        r.wait_for(lambda r: r.counts()["gunicorn.requests"] == 3)
        c = r.counts()
        assert c["gunicorn.request.status.200"] == 2
        assert c["gunicorn.request.status.404"] == 1
        assert r.values("gunicorn.workers") == ["1"]
    finally:
        r.close()


def test_unix_receiver_started_after_the_server(start_server, tmp_path):
    """unix:PATH with nothing there yet: metrics reach the receiver once it binds."""
    path = str(tmp_path / "late.sock")
    srv = start_server(APP, "--statsd-host", f"unix:{path}", "--log-level", "debug")
    (worker,) = srv.worker_pids()
    assert get(srv, "/").status_code == 200  # its metrics are dropped: nobody listens yet
    # They leave after the response; the worker says (once) that they were dropped.
    srv.wait_for_log(rf"\[{worker}\] \[DEBUG\] StatsD: cannot send to")
    r = Receiver(path)
    try:
        assert get(srv, "/missing").status_code == 404
        r.wait_for(lambda r: r.counts()["gunicorn.request.status.404"] == 1)
        assert r.counts()["gunicorn.requests"] == 1
    finally:
        r.close()
    assert "[WARNING]" not in srv.log_text()


# --- from the master --------------------------------------------------------------------


def test_workers_gauge_follows_ttin_and_ttou(start_server, receiver):
    sock = control_path()
    srv = start_server(APP, "--statsd-host", receiver.address, "--control-socket", sock,
                       workers=2)
    receiver.wait_for(lambda r: r.values("gunicorn.workers") == ["2"])
    srv.send_signal(signal.SIGTTIN)
    receiver.wait_for(lambda r: r.values("gunicorn.workers") == ["2", "3"])
    srv.wait_for_log(BOOTING_RE, count=3)
    srv.send_signal(signal.SIGTTOU)
    receiver.wait_for(lambda r: r.values("gunicorn.workers") == ["2", "3", "2"])
    # An unchanged count is not sent again: the master sends the gauge as it passes over
    # its workers, and has done so since the retired one was reaped; the barrier shows
    # that whatever it sent has arrived.
    with Control(sock) as ctl:
        wait_until(lambda: len(ctl.workers()) == 2, what="the retired worker to be reaped")
        ctl.settle()
    receiver.barrier()
    assert receiver.values("gunicorn.workers") == ["2", "3", "2"]


def test_backlog_histogram(start_server, receiver):
    srv = start_server(APP, "--statsd-host", receiver.address, "--enable-backlog-metric")
    receiver.wait_for(lambda r: "0" in r.values("gunicorn.backlog"), what="backlog 0")
    assert all(m["type"] == "h" for m in receiver.parsed() if m["name"] == "gunicorn.backlog")
    # A stopped worker accepts nothing: the kernel queues the connections.
    worker = srv.worker_pids()[0]
    os.kill(worker, signal.SIGSTOP)
    conns = []
    try:
        conns = [socket.create_connection((srv.host, srv.port), timeout=5) for _ in range(3)]
        receiver.wait_for(lambda r: "3" in r.values("gunicorn.backlog"), timeout=5,
                          what="backlog 3")
    finally:
        os.kill(worker, signal.SIGCONT)
        for c in conns:
            c.close()


# --- log counters -----------------------------------------------------------------------


def test_log_counters_count_hidden_lines(start_server, receiver):
    """Gunicorn counts its logger's calls whatever the level: an application error
    under --log-level critical leaves no traceback but counts one log.exception."""
    port = free_port()
    srv = start_server(APP, "--statsd-host", receiver.address, "--log-level", "critical",
                       bind=f"127.0.0.1:{port}", wait=False)
    wait_listening(port, proc=srv.proc)
    srv.host, srv.port = "127.0.0.1", port
    assert get(srv, "/boom").status_code == 500
    receiver.wait_for(lambda r: r.counts()["gunicorn.log.exception"] == 1)
    assert "Traceback" not in srv.log_text()
    assert receiver.counts()["gunicorn.log.error"] == 0


def test_log_counter_from_the_master(start_server, receiver):
    srv = start_server(APP, "--statsd-host", receiver.address, workers=2)
    mark = srv.log_mark()
    os.kill(srv.worker_pids()[0], signal.SIGKILL)
    m = srv.wait_for_log(r"\[(\w+)\] Worker \(pid:\d+\) was sent SIGKILL", since=mark)
    level = m.group(1).lower()
    assert level in ("warning", "error", "critical")
    receiver.wait_for(lambda r: r.counts()[f"gunicorn.log.{level}"] == 1)


def test_hook_log_exception_counts_as_exception(start_server, receiver, tmp_path):
    """server.log.exception() in a hook is Gunicorn's logger.exception: one
    gunicorn.log.exception, no gunicorn.log.error."""
    conf = tmp_path / "c.py"
    conf.write_text("def when_ready(server):\n"
                    "    try:\n"
                    "        1 / 0\n"
                    "    except ZeroDivisionError:\n"
                    "        server.log.exception('hook failed')\n")
    srv = start_server(APP, "--statsd-host", receiver.address, "-c", str(conf))
    srv.wait_for_log(r"\[ERROR\] hook failed")
    receiver.wait_for(lambda r: r.counts()["gunicorn.log.exception"] == 1)
    assert receiver.counts()["gunicorn.log.error"] == 0


# --- configuration ----------------------------------------------------------------------


def test_malformed_statsd_host_is_refused():
    res = run_cli("-b", "127.0.0.1:0", "--statsd-host", "localhost:port", APP)
    assert res.returncode == 1, res.stderr
    assert "Error: Value must be one of ('host:port', 'unix://PATH')" in res.stderr


def test_unusable_statsd_host_is_a_warning(start_server):
    srv = start_server(APP, "--statsd-host", "localhost:99999")
    assert get(srv, "/").status_code == 200
    assert re.search(r"\[WARNING\] StatsD: cannot use localhost:99999", srv.log_text())


def test_hup_moves_metrics_to_the_new_host(start_server, tmp_path):
    first, second = Receiver(), Receiver()
    try:
        conf = tmp_path / "conf.py"
        conf.write_text(f"statsd_host = {first.address!r}\n")
        srv = start_server(APP, "-c", str(conf))
        old = srv.worker_pids()
        assert get(srv, "/").status_code == 200
        first.wait_for(lambda r: r.counts()["gunicorn.requests"] == 1)
        conf.write_text(f"statsd_host = {second.address!r}\n")
        mark = srv.log_mark()
        srv.send_signal(signal.SIGHUP)
        srv.wait_for_log(BOOTING_RE, since=mark)
        for pid in old:
            wait_gone(pid)
        assert get(srv, "/missing").status_code == 404
        second.wait_for(lambda r: r.counts()["gunicorn.request.status.404"] == 1)
        assert second.values("gunicorn.workers") == ["1"]
        assert first.counts()["gunicorn.request.status.404"] == 0
    finally:
        first.close()
        second.close()
