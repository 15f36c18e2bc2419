"""The access log (--access-logfile, --access-logformat, --access-log-json).

The text lines are compared byte for byte with what Gunicorn writes for the same
application and the same requests: Debian's gunicorn (20.1) runs in the same test when
it is importable. Only what legitimately differs is masked: the time (checked to be
now), the pid, the request durations and the client's ephemeral port. Where Gunicorn
26.1 (our reference) differs from 20.1, the test says so and checks 26.1's behaviour.
"""

import base64
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

import pytest

from conftest import APPS_DIR, server_env
from helpers import wait_until

APP = "accesslog_app:app"
DEFAULT_FORMAT = '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s"'
TIME_RE = re.compile(r"\[(\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4})\]")

# Every atom, with specs other than %s, unknown names, {}-names in any case, %% and
# values holding quotes and latin-1 bytes. Fields are split on " | " to mask some.
ALL_ATOMS = [
    ("h", "%(h)s"), ("l", "%(l)s"), ("u", "%(u)s"), ("t", "%(t)s"), ("r", '"%(r)s"'),
    ("s", "%(s)s"), ("m", "%(m)s"), ("U", "%(U)s"), ("q", "%(q)s"), ("H", "%(H)s"),
    ("b", "%(b)s"), ("B", "%(B)s"), ("f", "%(f)s"), ("a", "%(a)s"), ("T", "%(T)s"),
    ("M", "%(M)s"), ("D", "%(D)s"), ("L", "%(L)s"), ("p", "%(p)s"),
    ("xi", "%({x-custom}i)s"), ("XI", "%({X-CUSTOM}i)s"), ("hosti", "%({host}i)s"),
    ("cto", "%({content-type}o)s"), ("quo", "%({x-quoted}o)s"), ("lato", "%({x-latin}o)s"),
    ("dupo", "%({x-dup}o)s"), ("connection_o", "%({connection}o)s"),
    ("ae", "%({remote_addr}e)s"), ("PE", "%({PATH_INFO}e)s"), ("ce", "%({custom.key}e)s"),
    ("ve", "%({wsgi.version}e)s"), ("ue", "%({HTTP_USER_AGENT}e)s"), ("me", "%({missing}e)s"),
    ("unknown", "%(zz)s"), ("pct", "100%%"), ("Bd", "%(B)05d"), ("sr", "%(s)r"),
    ("hpad", "[%(h)-12s]"), ("ar", "%(a).5s"),
]
MASKED = {"t", "T", "M", "D", "L", "p"}
ALL_FORMAT = " | ".join(spec for _, spec in ALL_ATOMS)


def _req(method, target, headers=(), body=b"", version="HTTP/1.1"):
    lines = [f"{method} {target} {version}".encode("latin-1"), b"Host: example.test"]
    lines += [h if isinstance(h, bytes) else h.encode("latin-1") for h in headers]
    if body:
        lines.append(b"Content-Length: %d" % len(body))
    lines.append(b"Connection: close")
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


BASIC = "Authorization: Basic " + base64.b64encode('alice "a":s3cret'.encode()).decode()

# The requests both servers get, one connection each, in this order.
REQUESTS = [
    _req("GET", "/", ['User-Agent: Mozilla "quoted"/5.0', 'Referer: http://r.test/"x"']),
    _req("GET", "/a%20b/caf%C3%A9/%22q%22?x=1&y=%22z%22", ["X-Custom: one"]),
    _req("GET", "/", [BASIC, "X-Custom: first", "x-custom: last"]),
    _req("GET", "/", ["Authorization: Basic !!!notbase64", "User-Agent: caf\xe9 latin-1"]),
    _req("GET", "/", ["Authorization: Bearer abc"]),
    _req("GET", "/headers"),
    _req("GET", "/stream"),
    _req("GET", "/stream", version="HTTP/1.0"),
    _req("POST", "/post", ["Content-Type: text/plain"], body=b"x" * 777),
    _req("GET", "/204"),
    _req("GET", "/304"),
    _req("GET", "/raise", ["User-Agent: ua", "Referer: r", BASIC]),
    _req("GET", "/late-raise"),  # no line: the response was cut short
    _req("GET", "/proxyfix", ["X-Forwarded-For: 203.0.113.9"]),
    _req("DELETE", "/x?", ["X-Custom: "]),
]
LINES_EXPECTED = len(REQUESTS) - 1


def send(host, port, data, unix=None):
    if unix:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(unix)
    else:
        s = socket.create_connection((host, port), timeout=5)
    s.settimeout(5)
    with s:
        s.sendall(data)
        out = b""
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                out += chunk
        except (ConnectionResetError, socket.timeout):
            pass
    return out


def read_lines(path):
    """The file's whole lines, as bytes (none while it does not exist)."""
    try:
        return Path(path).read_bytes().split(b"\n")[:-1]
    except FileNotFoundError:
        return []


def wait_lines(path, count, timeout=10.0):
    """Waits for `count` whole lines in the file; returns every line there then."""
    def enough():
        lines = read_lines(path)
        return lines if len(lines) >= count else None

    return wait_until(enough, timeout, what=f"{count} lines in {path}")


END = _req("GET", "/end-of-test")


def lines_before_end(path):
    """The lines before the access line of END, the request a test sends last: once that
    line is in, a line for any request sent before it would be in too (one sync worker
    serves the connections in turn, and writes a request's line before closing)."""
    wait_until(lambda: any(b"/end-of-test" in line for line in read_lines(path)),
               what=f"the last request's line in {path}")
    lines = read_lines(path)
    assert b"/end-of-test" in lines[-1], lines
    return lines[:-1]


def gunicorn_available():
    r = subprocess.run([sys.executable, "-c", "import gunicorn"], capture_output=True)
    return r.returncode == 0


class Gunicorn:
    """Debian's gunicorn serving the same app (the comparison baseline)."""

    def __init__(self, *args):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-b", "127.0.0.1:0", "-w", "1",
             "--chdir", str(APPS_DIR), *args, APP],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            cwd="/", env=server_env())
        self.port = None
        err = b""
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            line = self.proc.stderr.readline()
            if not line:
                break
            err += line
            m = re.search(rb"Listening at: http://127\.0\.0\.1:(\d+)", line)
            if m:
                self.port = int(m.group(1))
            if self.port and b"Booting worker" in line:
                break
        assert self.port, err.decode(errors="replace")
        threading.Thread(target=self.proc.stderr.read, daemon=True).start()

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


@pytest.fixture
def gunicorn():
    if not gunicorn_available():
        pytest.skip("gunicorn is not importable by " + sys.executable)
    started = []

    def start(*args):
        g = Gunicorn(*args)
        started.append(g)
        return g

    yield start
    for g in started:
        g.stop()


def run_both(start_server, gunicorn, tmp_path, fmt):
    ours, theirs = tmp_path / "gc.log", tmp_path / "gu.log"
    srv = start_server(APP, "--access-logfile", str(ours), "--access-logformat", fmt)
    gu = gunicorn("--access-logfile", str(theirs), "--access-logformat", fmt)
    for data in REQUESTS + [END]:
        send("127.0.0.1", srv.port, data)
        send("127.0.0.1", gu.port, data)
    # A line too many (or too few) shows before END's.
    return lines_before_end(ours), lines_before_end(theirs)


def check_time(line):
    m = TIME_RE.search(line)
    assert m, line
    t = datetime.strptime(m.group(1), "%d/%b/%Y:%H:%M:%S %z")
    assert abs(t.timestamp() - time.time()) < 30, line
    return TIME_RE.sub("[TIME]", line)


def test_default_format_matches_gunicorn(start_server, gunicorn, tmp_path):
    ours, theirs = run_both(start_server, gunicorn, tmp_path, DEFAULT_FORMAT)
    assert len(ours) == len(theirs) == LINES_EXPECTED, (ours, theirs)
    for a, b in zip(ours, theirs):
        assert check_time(a.decode()) == check_time(b.decode())
    # Spot checks, so that a bug both servers shared could not pass.
    assert ours[0].startswith(b'127.0.0.1 - - [')
    assert ours[0].endswith(b'"GET / HTTP/1.1" 200 12 "http://r.test/\\"x\\"" '
                            b'"Mozilla \\"quoted\\"/5.0"')
    assert b' - alice \\"a\\" [' in ours[2]
    assert "caf\xe9 latin-1".encode("utf-8") in ours[3]  # latin-1 byte, written as UTF-8
    assert b'"GET /raise HTTP/1.1" 500 0 "-" "-"' in ours[11]  # Gunicorn's fresh environ
    assert ours[12].startswith(b"203.0.113.9 - - [")  # the app rewrote REMOTE_ADDR


def test_every_atom_matches_gunicorn(start_server, gunicorn, tmp_path):
    ours, theirs = run_both(start_server, gunicorn, tmp_path, ALL_FORMAT)
    assert len(ours) == len(theirs) == LINES_EXPECTED, (ours, theirs)
    names = [n for n, _ in ALL_ATOMS]
    for a, b in zip(ours, theirs):
        fa, fb = a.decode().split(" | "), b.decode().split(" | ")
        assert len(fa) == len(fb) == len(names), (a, b)
        for name, x, y in zip(names, fa, fb):
            if name == "t":
                check_time(x), check_time(y)
            elif name in MASKED:
                assert re.fullmatch(r"<\d+>" if name == "p" else r"\d+(\.\d{6})?", x), (name, x)
            else:
                assert x == y, (name, x, y, a, b)
    first = dict(zip(names, ours[0].decode().split(" | ")))
    assert first["p"] == f"<{first['p'][1:-1]}>" and int(first["p"][1:-1]) > 0
    assert first["ve"] == "(1, 0)"  # not a str: written by str(), not escaped
    assert first["pct"] == "100%" and first["unknown"] == "-" and first["me"] == "-"
    assert first["hpad"] == "[127.0.0.1   ]" and first["Bd"] == "00012" and first["sr"] == "'200'"
    hdrs = dict(zip(names, ours[5].decode().split(" | ")))
    assert hdrs["quo"] == 'say \\"hi\\"' and hdrs["dupo"] == "second" and hdrs["lato"] == "caf\xe9"
    pf = dict(zip(names, ours[12].decode().split(" | ")))
    assert pf["ce"] == 'v\\"al' and pf["ae"] == "203.0.113.9"


def test_no_body_responses_count_zero_bytes(start_server, tmp_path):
    # Gunicorn 26.1 drops the body of a HEAD response (20.1 still sent and counted it).
    log = tmp_path / "a.log"
    srv = start_server(APP, "--access-logfile", str(log), "--access-logformat", "%(r)s %(s)s %(b)s")
    for data in (_req("HEAD", "/"), _req("HEAD", "/stream"), _req("GET", "/204"),
                 _req("GET", "/304"), _req("GET", "/stream"), _req("GET", "/")):
        send("127.0.0.1", srv.port, data)
    assert wait_lines(log, 6) == [b"HEAD / HTTP/1.1 200 0", b"HEAD /stream HTTP/1.1 200 0",
                                  b"GET /204 HTTP/1.1 204 0", b"GET /304 HTTP/1.1 304 0",
                                  b"GET /stream HTTP/1.1 200 3210", b"GET / HTTP/1.1 200 12"]


def test_unix_socket_remote_addr_is_empty(start_server, tmp_path):
    sock, log = str(tmp_path / "s.sock"), tmp_path / "a.log"
    srv = start_server(APP, "--access-logfile", str(log), bind=f"unix:{sock}")
    send(None, None, _req("GET", "/"), unix=sock)
    (line,) = wait_lines(log, 1)
    assert line.startswith(b" - - [") and b'"GET / HTTP/1.1" 200 12' in line, line


def test_dash_writes_to_stdout(start_server):
    srv = start_server(APP, "--access-logfile", "-")
    send("127.0.0.1", srv.port, _req("GET", "/stdout-check"))
    wait_until(lambda: "/stdout-check" in srv.stdout_text(), what="the line on stdout")
    assert '"GET /stdout-check HTTP/1.1" 200 12 "-" "-"' in srv.stdout_text()
    assert "/stdout-check" not in srv.log_text()


def test_no_access_log_by_default(start_server):
    srv = start_server(APP)
    send("127.0.0.1", srv.port, _req("GET", "/quiet"))
    # Whatever the worker wrote is in once it has exited and its pipes closed.
    assert srv.stop() == 0
    assert "/quiet" not in srv.stdout_text() + srv.log_text()


def test_json_lines(start_server, tmp_path):
    log = tmp_path / "a.json"
    srv = start_server(APP, "--access-logfile", str(log), "--access-log-json",
                       "--access-logformat", "%({x-custom}i)s %({x-quoted}o)s %({custom.key}e)s "
                                             "%({wsgi.version}e)s %({absent}i)s %({X-Custom}i)s")
    reqs = [
        _req("GET", "/a%20b/caf%C3%A9?q=%22x%22", ['User-Agent: say "hi" \\ back',
                                                   b"X-Custom: caf\xe9 \ttab", BASIC]),
        _req("GET", "/headers", ["Referer: http://r.test/"]),
        _req("GET", "/proxyfix", ["X-Forwarded-For: 203.0.113.9"]),
        _req("GET", "/raise"),
    ]
    for data in reqs:
        send("127.0.0.1", srv.port, data)
    lines = wait_lines(log, 4)
    recs = [json.loads(line) for line in lines]
    for line in lines:
        line.decode("utf-8")  # valid UTF-8
        assert b"\n" not in line
        assert line.count(b'"x-custom"') == 1  # named twice in the format, one key
    r0 = recs[0]
    assert r0["remote_addr"] == "127.0.0.1" and r0["remote_user"] == 'alice "a"'
    assert r0["request"] == "GET /a%20b/caf%C3%A9?q=%22x%22 HTTP/1.1"
    assert r0["method"] == "GET" and r0["query"] == "q=%22x%22" and r0["protocol"] == "HTTP/1.1"
    assert r0["path"] == "/a b/caf\xc3\xa9"  # PATH_INFO: the bytes, seen as latin-1
    assert r0["status"] == 200 and r0["bytes"] == 12 and r0["referer"] is None
    assert r0["user_agent"] == 'say "hi" \\ back'
    assert r0["request_headers"] == {"x-custom": "caf\xe9 \ttab", "absent": None}
    assert r0["response_headers"] == {"x-quoted": None}
    assert r0["environ"]["wsgi.version"] == "(1, 0)" and r0["environ"]["custom.key"] is None
    assert isinstance(r0["duration_us"], int) and r0["pid"] > 1
    t = datetime.fromisoformat(r0["time"])
    assert abs(t.timestamp() - time.time()) < 30 and t.utcoffset() is not None
    assert recs[1]["status"] == 201 and recs[1]["bytes"] == 5
    assert recs[1]["response_headers"] == {"x-quoted": 'say "hi"'}
    assert recs[1]["referer"] == "http://r.test/"
    assert recs[2]["remote_addr"] == "203.0.113.9" and recs[2]["environ"]["custom.key"] == 'v"al'
    assert recs[3]["status"] == 500 and recs[3]["bytes"] == 0 and recs[3]["path"] is None
    # A latin-1 byte as UTF-8, a tab as \t.
    assert b'caf\xc3\xa9 \\ttab' in lines[0]


def test_json_escapes_newlines_from_the_environ(start_server, tmp_path):
    log = tmp_path / "a.json"
    srv = start_server(APP, "--access-logfile", str(log), "--access-log-json",
                       "--access-logformat", "%({custom.nl}e)s")
    send("127.0.0.1", srv.port, _req("GET", "/newline"))
    (line,) = wait_lines(log, 1)
    assert json.loads(line)["environ"]["custom.nl"] == 'a\nb\r\x01"\\\u20ac\U0001f600'
    assert b"a\\nb\\r\\u0001\\\"\\\\\xe2\x82\xac" in line


def test_text_line_with_newline_in_environ_value_stays_gunicorn(start_server, tmp_path):
    # Gunicorn writes an environ value as it is (only '"' is escaped).
    log = tmp_path / "a.log"
    srv = start_server(APP, "--access-logfile", str(log), "--access-logformat",
                       "%({custom.nl}e)s")
    send("127.0.0.1", srv.port, _req("GET", "/newline"))
    wait_lines(log, 2)
    data = log.read_bytes()
    assert data == 'a\nb\r\x01\\"\\\u20ac\U0001f600\n'.encode()


def test_bad_format_is_refused_at_start(tmp_path):
    from conftest import run_cli
    for fmt in ("%s", "%(h)s %", "%(h", "%(h)y", "%(h)*s"):
        r = run_cli("-b", "127.0.0.1:0", "--access-logfile", str(tmp_path / "a.log"),
                    "--access-logformat", fmt, APP)
        assert r.returncode != 0, fmt
        assert "Invalid access log format" in r.stderr, (fmt, r.stderr)


def fds_of(pid):
    out = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            out.append(os.readlink(f"/proc/{pid}/fd/{fd}"))
        except OSError:
            pass
    return out


def test_usr1_reopens_in_master_and_workers(start_server, tmp_path):
    log, moved = tmp_path / "access.log", tmp_path / "access.log.1"
    srv = start_server(APP, "--access-logfile", str(log), "--access-logformat", "%(U)s %(p)s",
                       workers=2)
    send("127.0.0.1", srv.port, _req("GET", "/before"))
    assert wait_lines(log, 1)
    os.rename(log, moved)
    srv.send_signal(signal.SIGUSR1)
    pids = [srv.pid] + srv.live_worker_pids()
    assert len(pids) == 3
    # Nothing is logged when a process has reopened: its open files say so.
    wait_until(lambda: log.exists() and all(str(log) in fds_of(p) and str(moved) not in fds_of(p)
                                            for p in pids),
               what="every process to reopen the log")
    for p in pids:
        assert str(log) in fds_of(p) and str(moved) not in fds_of(p), (p, fds_of(p))
    for i in range(20):
        send("127.0.0.1", srv.port, _req("GET", f"/after{i}"))
    new = wait_lines(log, 20)
    assert len(new) == 20 and all(line.startswith(b"/after") for line in new)
    assert {int(re.search(rb"<(\d+)>", line).group(1)) for line in new} <= set(pids[1:])
    assert moved.read_bytes().split(b"\n")[:-1] == [b"/before <%d>" % int(
        re.search(rb"<(\d+)>", moved.read_bytes()).group(1))]


LINE_RE = re.compile(rb'^127\.0\.0\.1 - - \[[^\]]+\] "GET /c(\d+) HTTP/1\.1" 200 12 "-" "(U+)"$')


@pytest.mark.parametrize("worker", ["gthread", pytest.param(
    "gevent", marks=pytest.mark.server_imports("gevent"))])
def test_concurrent_lines_are_whole(start_server, tmp_path, worker):
    if worker == "gevent":
        pytest.importorskip("gevent")
        if os.environ.get("GC_SANITIZED"):
            pytest.skip("greenlet's stack copying cannot run under AddressSanitizer")
    log = tmp_path / "a.log"
    args = ["-k", worker, "--access-logfile", str(log)]
    args += ["--threads", "8"] if worker == "gthread" else ["--worker-connections", "200"]
    srv = start_server(APP, *args, workers=2)
    n = 200
    # Some lines are longer than the formatter's stack buffer and than PIPE_BUF.
    uas = {i: "U" * (50 if i % 3 else 6000) for i in range(n)}

    def one(i):
        send("127.0.0.1", srv.port, _req("GET", f"/c{i}", [f"User-Agent: {uas[i]}"]))

    with ThreadPoolExecutor(32) as pool:
        list(pool.map(one, range(n)))
    lines = wait_lines(log, n)
    assert len(lines) == n
    seen = set()
    for line in lines:
        m = LINE_RE.match(line)
        assert m, line[:200]
        i = int(m.group(1))
        assert m.group(2).decode() == uas[i]
        seen.add(i)
    assert seen == set(range(n))
