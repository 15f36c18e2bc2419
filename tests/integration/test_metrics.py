"""The master's metrics and health endpoint (--metrics-bind; docs/metrics.md).

Gunicorn 26.1 has nothing comparable (StatsD datagrams only): these tests drive
gunicorn-c alone. /metrics is read with Debian's python3-prometheus-client text parser,
so a malformed exposition fails here, not only a missing string. Every wait is on an
event the server exposes: a log line, a counter in /metrics, a socket closing.
"""

import os
import platform
import re
import signal
import socket
import threading
import time

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from helpers import wait_until

METRICS_RE = re.compile(r"Serving metrics and health at: (\S+)")


# --- clients -------------------------------------------------------------------------------


def metrics_address(srv):
    """The metrics listener's address from the log: ("tcp", (host, port)) or ("unix", path)."""
    url = srv.wait_for_log(METRICS_RE, timeout=10).group(1)
    if url.startswith("unix:"):
        return ("unix", url[len("unix:"):])
    host, _, port = url.split("://", 1)[1].rpartition(":")
    return ("tcp", (host.strip("[]"), int(port)))


def connect(addr, timeout=5.0):
    kind, where = addr
    if kind == "unix":
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(timeout)
        s.connect(where)
    else:
        s = socket.create_connection(where, timeout=timeout)
    s.settimeout(timeout)
    return s


def exchange(addr, raw):
    """Sends raw bytes, reads until the server closes; returns (status, headers, body)."""
    with connect(addr) as s:
        s.sendall(raw)
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers, body


def get(addr, path):
    return exchange(addr, b"GET %s HTTP/1.1\r\nHost: metrics\r\n\r\n" % path.encode())


def scrape(addr):
    """/metrics parsed: {(sample name, frozenset of labels): value}."""
    status, headers, body = get(addr, "/metrics")
    assert status == 200, body
    assert headers["content-type"].startswith("text/plain; version=0.0.4"), headers
    assert int(headers["content-length"]) == len(body)
    out = {}
    for family in text_string_to_metric_families(body.decode()):
        assert family.name.startswith("gunicorn_c_"), family.name
        assert family.documentation, family.name  # every family has its HELP line
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(m, name, **labels):
    return m[(name, frozenset(labels.items()))]


def total_requests(m):
    return sum(v for (name, _), v in m.items() if name == "gunicorn_c_requests_total")


def served(m):
    """The requests the live workers say they served (their slots' own count, bumped a
    moment after the status counters)."""
    return sum(v for (name, _), v in m.items() if name == "gunicorn_c_worker_requests_total")


def wait_metrics(addr, predicate, what, timeout=10.0):
    """Scrapes until predicate(metrics) holds (a worker counts a request just after its
    response has gone out, so the client may be a moment ahead); returns the scrape."""
    box = {}

    def check():
        box["m"] = scrape(addr)
        return predicate(box["m"])

    wait_until(check, timeout=timeout, what=what)
    return box["m"]


def listening_sockets(pid):
    """How many listening TCP sockets process pid holds (/proc/PID/fd, /proc/net/tcp*)."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if link.startswith("socket:["):
            inodes.add(link[8:-1])
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            for line in f.readlines()[1:]:
                fields = line.split()
                if fields[3] == "0A" and fields[9] in inodes:
                    count += 1
    return count


def in_thread(fn, *args):
    box = {}

    def run():
        try:
            box["result"] = fn(*args)
        except Exception as e:  # the test looks at it
            box["error"] = e

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, box


def release(fifo):
    """Lets a request blocked on fifo go on: opening for writing waits for its reader."""
    fd = os.open(fifo, os.O_WRONLY)
    os.close(fd)


@pytest.fixture
def start_metrics(start_server):
    def start(app, *args, bind="127.0.0.1:0", **kwargs):
        srv = start_server(app, "--metrics-bind", bind, *args, **kwargs)
        return srv, metrics_address(srv)
    return start


# --- the tests -----------------------------------------------------------------------------


def test_off_by_default(start_server):
    srv = start_server("metrics_app:app")
    assert requests.get(srv.url + "/").status_code == 200
    assert not METRICS_RE.search(srv.log_text())
    assert listening_sockets(srv.pid) == 1  # --bind's only


def test_on_it_is_one_more_listener(start_metrics):
    srv, addr = start_metrics("metrics_app:app")
    assert listening_sockets(srv.pid) == 2
    # Workers forked after it opened (TTIN) close the copy they inherit at once: only
    # the master holds it.
    srv.send_signal(signal.SIGTTIN)
    srv.wait_for_log(r"Booting worker with pid", count=2)
    pids = srv.live_worker_pids()
    assert len(pids) == 2
    for pid in pids:
        assert listening_sockets(pid) == 1


def test_counters_follow_requests(start_metrics):
    srv, addr = start_metrics("metrics_app:app", workers=2)
    # "Booting worker" comes before the import: wait until both have booted.
    wait_metrics(addr, lambda m: value(m, "gunicorn_c_ready") == 1, "both workers booted")
    sent = [("GET", "/"), ("GET", "/"), ("GET", "/missing"), ("GET", "/boom"),
            ("POST", "/"), ("PUT", "/"), ("DELETE", "/"), ("PATCH", "/"),
            ("OPTIONS", "/"), ("HEAD", "/"), ("PURGE", "/"), ("POST", "/missing")]
    for method, path in sent:
        requests.request(method, srv.url + path, data=b"x" if method == "POST" else None)
    n = len(sent)
    m = wait_metrics(addr, lambda m: total_requests(m) == n and served(m) == n
                     and value(m, "gunicorn_c_requests_in_flight") == 0,
                     f"{n} requests counted")
    assert value(m, "gunicorn_c_requests_total", status_class="2xx") == 9
    assert value(m, "gunicorn_c_requests_total", status_class="4xx") == 2
    assert value(m, "gunicorn_c_requests_total", status_class="5xx") == 1
    assert value(m, "gunicorn_c_requests_total", status_class="none") == 0
    for method, want in (("GET", 4), ("POST", 2), ("PUT", 1), ("DELETE", 1), ("PATCH", 1),
                         ("OPTIONS", 1), ("HEAD", 1), ("other", 1)):
        assert value(m, "gunicorn_c_requests_by_method_total", method=method) == want, method
    # The histogram counts every request once, in order of its bounds.
    assert value(m, "gunicorn_c_request_duration_seconds_count") == n
    assert value(m, "gunicorn_c_request_duration_seconds_bucket", le="+Inf") == n
    buckets = sorted((float(dict(k[1])["le"]), v) for k, v in m.items()
                     if k[0] == "gunicorn_c_request_duration_seconds_bucket")
    assert [v for _, v in buckets] == sorted(v for _, v in buckets)
    assert 0 < value(m, "gunicorn_c_request_duration_seconds_sum") < 10
    # Per worker: requests served and memory, labelled by pid.
    pids = srv.live_worker_pids()
    assert len(pids) == 2
    assert sum(value(m, "gunicorn_c_worker_requests_total", pid=str(p)) for p in pids) == n
    for p in pids:
        assert value(m, "gunicorn_c_worker_resident_memory_bytes", pid=str(p)) > 1 << 20
    assert value(m, "gunicorn_c_requests_in_flight") == 0
    assert value(m, "gunicorn_c_worker_boots_total") == 2
    assert value(m, "gunicorn_c_workers", state="idle") == 2
    assert value(m, "gunicorn_c_workers_target") == 2
    assert value(m, "gunicorn_c_ready") == 1
    assert value(m, "gunicorn_c_uptime_seconds") > 0
    assert value(m, "gunicorn_c_build_info", version=_version(srv),
                 python_version=platform.python_version()) == 1
    # The listener's accept queue: empty, and its limit is the backlog the kernel kept.
    with open("/proc/sys/net/core/somaxconn") as f:
        somaxconn = int(f.read())
    assert value(m, "gunicorn_c_listen_backlog", listener=srv.url) == 0
    assert value(m, "gunicorn_c_listen_backlog_limit", listener=srv.url) == min(2048, somaxconn)


def _version(srv):
    return re.search(r"Starting gunicorn-c (\S+)", srv.log_text()).group(1)


def test_listen_backlog_counts_waiting_connections(start_metrics):
    # A worker held in the application does not accept: connections wait in the queue.
    srv, addr = start_metrics("metrics_app:app", "--backlog", "64")
    fifo = _fifo("held")
    t, box = in_thread(requests.get, srv.url + "/hold?" + fifo)
    srv.wait_for_log(r"metrics_app held")
    waiting = [socket.create_connection((srv.host, srv.port)) for _ in range(3)]
    try:
        m = scrape(addr)
        assert value(m, "gunicorn_c_listen_backlog", listener=srv.url) == 3
        assert value(m, "gunicorn_c_listen_backlog_limit", listener=srv.url) == 64
    finally:
        for s in waiting:
            s.close()
        release(fifo)
        t.join(10)
    assert box["result"].text == "released"


def _fifo(name):
    import tempfile
    d = tempfile.mkdtemp(prefix="gc-metrics-")
    path = os.path.join(d, name)
    os.mkfifo(path)
    return path


def test_in_flight_while_requests_are_held(start_metrics):
    srv, addr = start_metrics("metrics_app:app", "-k", "gthread", "--threads", "4")
    fifos = [_fifo(f"hold{i}") for i in range(3)]
    threads = [in_thread(requests.get, srv.url + "/hold?" + f) for f in fifos]
    srv.wait_for_log(r"metrics_app held", count=3)
    m = scrape(addr)
    assert value(m, "gunicorn_c_requests_in_flight") == 3
    assert value(m, "gunicorn_c_workers", state="busy") == 1
    assert total_requests(m) == 0
    for f in fifos:
        release(f)
    for t, box in threads:
        t.join(10)
        assert box["result"].text == "released"
    m = wait_metrics(addr, lambda m: total_requests(m) == 3 and served(m) == 3,
                     "3 requests counted")
    assert value(m, "gunicorn_c_requests_in_flight") == 0
    assert value(m, "gunicorn_c_request_duration_seconds_count") == 3


def test_timeout_kill_is_counted(start_metrics):
    srv, addr = start_metrics("metrics_app:app", "--timeout", "1")
    first = srv.worker_pids()[0]
    t, box = in_thread(requests.get, srv.url + "/stuck")
    srv.wait_for_log(r"metrics_app stuck")
    srv.wait_for_log(r"was sent SIGKILL by the master after the worker timeout", timeout=15)
    m = wait_metrics(addr, lambda m: value(m, "gunicorn_c_worker_boots_total") == 2
                     and value(m, "gunicorn_c_worker_exits_total", reason="killed") == 1,
                     "the kill and the replacement counted")
    assert value(m, "gunicorn_c_worker_timeouts_total") == 1
    assert value(m, "gunicorn_c_worker_kills_total", reason="timeout") == 1
    assert value(m, "gunicorn_c_worker_kills_total", reason="graceful_timeout") == 0
    assert value(m, "gunicorn_c_worker_exits_total", reason="clean") == 0
    assert ("gunicorn_c_worker_requests_total", frozenset({("pid", str(first))})) not in m
    t.join(10)
    assert "error" in box or box["result"].status_code == 500


def test_counts_survive_a_rotation(start_metrics):
    srv, addr = start_metrics("metrics_app:app", "--max-requests", "3")
    first = srv.worker_pids()[0]
    for path in ("/", "/missing", "/"):
        requests.get(srv.url + path)
    srv.wait_for_log(r"Booting worker with pid", count=2)
    m = wait_metrics(addr, lambda m: value(m, "gunicorn_c_worker_exits_total",
                                           reason="clean") == 1, "the old worker's exit")
    second = srv.worker_pids()[1]
    assert value(m, "gunicorn_c_requests_total", status_class="2xx") == 2
    assert value(m, "gunicorn_c_requests_total", status_class="4xx") == 1
    assert value(m, "gunicorn_c_request_duration_seconds_count") == 3
    assert value(m, "gunicorn_c_requests_by_method_total", method="GET") == 3
    assert value(m, "gunicorn_c_worker_requests_total", pid=str(second)) == 0
    assert ("gunicorn_c_worker_requests_total", frozenset({("pid", str(first))})) not in m
    requests.get(srv.url + "/")
    m = wait_metrics(addr, lambda m: total_requests(m) == 4 and served(m) == 1,
                     "4 requests counted")
    assert value(m, "gunicorn_c_request_duration_seconds_count") == 4
    assert value(m, "gunicorn_c_worker_requests_total", pid=str(second)) == 1


def test_readyz_waits_for_the_workers_to_boot(start_server, tmp_path):
    gate = str(tmp_path / "import-gate")
    os.mkfifo(gate)
    srv = start_server("metrics_app:app", "--metrics-bind", "127.0.0.1:0",
                       env={"GC_TEST_IMPORT_FIFO": gate}, wait=False)
    addr = metrics_address(srv)
    srv.wait_for_log(r"metrics_app importing")
    status, headers, body = get(addr, "/readyz")
    assert (status, body) == (503, b"not ready: workers booting\n")
    assert get(addr, "/livez")[:1] == (200,)
    m = scrape(addr)
    assert value(m, "gunicorn_c_ready") == 0
    assert value(m, "gunicorn_c_workers", state="booting") == 1
    release(gate)
    wait_until(lambda: get(addr, "/readyz")[0] == 200, timeout=10, what="/readyz 200")
    assert get(addr, "/readyz")[2] == b"ready\n"
    srv.wait_ready()


def test_readyz_503_at_once_on_term_while_a_request_drains(start_metrics):
    srv, addr = start_metrics("metrics_app:app")
    fifo = _fifo("drain")
    t, box = in_thread(requests.get, srv.url + "/hold?" + fifo)
    srv.wait_for_log(r"metrics_app held")
    assert get(addr, "/readyz")[0] == 200
    srv.send_signal(signal.SIGTERM)
    srv.wait_for_log(r"Handling signal: term")
    status, _, body = get(addr, "/readyz")
    assert (status, body) == (503, b"not ready: stopping\n")
    assert get(addr, "/livez")[0] == 200
    assert value(scrape(addr), "gunicorn_c_requests_in_flight") == 1
    release(fifo)
    t.join(10)
    assert box["result"].status_code == 200 and box["result"].text == "released"
    assert srv.wait() == 0


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGQUIT], ids=["INT", "QUIT"])
def test_readyz_503_at_once_on_a_quick_stop(start_metrics, sig):
    # The worker blocks the quick stop's signal, so the stop lasts until the master's
    # kill timer (--graceful-timeout 2): /readyz must say 503 all along.
    srv, addr = start_metrics("metrics_app:app", "--graceful-timeout", "2")
    fifo = _fifo("deaf")
    t, box = in_thread(requests.get, srv.url + "/deaf?" + fifo)
    srv.wait_for_log(r"metrics_app deaf")
    assert get(addr, "/readyz")[0] == 200
    srv.send_signal(sig)
    srv.wait_for_log(r"Handling signal: %s" % ("int" if sig == signal.SIGINT else "quit"))
    status, _, body = get(addr, "/readyz")
    assert (status, body) == (503, b"not ready: stopping\n")
    m = scrape(addr)
    assert value(m, "gunicorn_c_ready") == 0
    assert value(m, "gunicorn_c_requests_in_flight") == 1
    srv.wait_for_log(r"was sent SIGKILL by the master after the graceful timeout")
    srv.wait()
    t.join(10)
    assert "error" in box  # the connection died with the worker


def test_answers_fast_while_every_worker_sleeps(start_metrics):
    srv, addr = start_metrics("gate:app", "--graceful-timeout", "1", workers=2)
    wait_metrics(addr, lambda m: value(m, "gunicorn_c_ready") == 1, "both workers booted")
    # One at a time: a sync worker in the application accepts nothing, so the second
    # request goes to the other worker.
    held = []
    for n in (1, 2):
        held.append(in_thread(requests.get, srv.url + "/sleep/60"))
        srv.wait_for_log(r"gate sleeping", count=n)
    times = []
    for _ in range(10):
        t0 = time.monotonic()
        m = scrape(addr)
        times.append(time.monotonic() - t0)
        assert value(m, "gunicorn_c_requests_in_flight") == 2
    t0 = time.monotonic()
    assert get(addr, "/readyz")[0] == 200
    times.append(time.monotonic() - t0)
    times.sort()
    assert times[len(times) // 2] < 0.010, times
    print("metrics latency while workers sleep: min %.2f ms, median %.2f ms, max %.2f ms"
          % (times[0] * 1e3, times[len(times) // 2] * 1e3, times[-1] * 1e3))
    srv.stop(signal.SIGINT)
    for t, _ in held:
        t.join(10)


def test_unix_socket(start_metrics, tmp_path):
    path = str(tmp_path / "metrics.sock")
    srv, addr = start_metrics("metrics_app:app", bind="unix:" + path)
    assert addr == ("unix", path)
    requests.get(srv.url + "/")
    m = wait_metrics(addr, lambda m: total_requests(m) == 1, "1 request counted")
    assert value(m, "gunicorn_c_requests_total", status_class="2xx") == 1
    assert get(addr, "/readyz")[:1] == (200,)
    srv.stop()
    assert not os.path.exists(path)


def test_refusals(start_metrics):
    srv, addr = start_metrics("metrics_app:app")
    status, headers, body = get(addr, "/nope")
    assert status == 404 and headers["connection"] == "close"
    status, headers, _ = exchange(addr, b"POST /metrics HTTP/1.1\r\nHost: m\r\n"
                                  b"Content-Length: 5\r\n\r\nhello")
    assert status == 405 and headers["allow"] == "GET"
    assert exchange(addr, b"DELETE /readyz HTTP/1.1\r\nHost: m\r\n\r\n")[0] == 405
    assert exchange(addr, b"HEAD /livez HTTP/1.1\r\nHost: m\r\n\r\n")[0] == 405
    assert exchange(addr, b"GARBAGE\r\n\r\n")[0] == 400
    assert exchange(addr, b"GET /metrics HTTP/1.1\r\nNo colon here\r\n\r\n")[0] == 400
    assert exchange(addr, b"GET /metrics HTTP/1.1\r\nHost: m\r\nContent-Length: x\r\n\r\n")[0] \
        == 400
    # A query string does not change the path; HTTP/1.0 is answered in kind.
    assert get(addr, "/metrics?x=1")[0] == 200
    status, _, body = exchange(addr, b"GET /livez HTTP/1.0\r\n\r\n")
    assert (status, body) == (200, b"live\n")
    # None of it reached a worker.
    assert total_requests(scrape(addr)) == 0


def test_a_slow_client_holds_nothing(start_metrics):
    srv, addr = start_metrics("metrics_app:app")
    slow = connect(addr, timeout=15)
    slow.sendall(b"GET /metr")
    t0 = time.monotonic()
    assert get(addr, "/livez")[0] == 200  # answered while the slow one waits
    assert time.monotonic() - t0 < 1.0
    # The slow one is closed at its deadline (5 s), without an answer.
    assert slow.recv(100) == b""
    slow.close()
    assert get(addr, "/livez")[0] == 200


def test_stop_with_clients_connected(start_metrics):
    # The master frees its metrics connections on its way out (ASan builds check it).
    srv, addr = start_metrics("metrics_app:app")
    slow = [connect(addr, timeout=15) for _ in range(3)]
    slow[0].sendall(b"GET /metr")
    assert get(addr, "/livez")[0] == 200  # all three are accepted by now
    srv.send_signal(signal.SIGTERM)
    assert srv.wait() == 0
    for s in slow:
        assert s.recv(100) == b""
        s.close()


@pytest.mark.parametrize("worker", [["-k", "asgi"], ["-k", "gthread", "--threads", "2"]],
                         ids=["asgi", "gthread"])
def test_other_worker_classes_count(start_metrics, worker):
    app = "asgi_app:app" if worker[1] == "asgi" else "metrics_app:app"
    fail = "/raise-before" if worker[1] == "asgi" else "/boom"
    srv, addr = start_metrics(app, *worker)
    for method, path in (("GET", "/"), ("POST", "/"), ("GET", fail), ("DELETE", "/")):
        requests.request(method, srv.url + path)
    m = wait_metrics(addr, lambda m: total_requests(m) == 4 and served(m) == 4
                     and value(m, "gunicorn_c_requests_in_flight") == 0, "4 requests counted")
    assert value(m, "gunicorn_c_requests_total", status_class="2xx") == 3
    assert value(m, "gunicorn_c_requests_total", status_class="5xx") == 1
    assert value(m, "gunicorn_c_requests_by_method_total", method="GET") == 2
    assert value(m, "gunicorn_c_requests_by_method_total", method="POST") == 1
    assert value(m, "gunicorn_c_requests_by_method_total", method="DELETE") == 1
    assert value(m, "gunicorn_c_request_duration_seconds_count") == 4
