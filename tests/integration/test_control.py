"""The control socket (Gunicorn 26's gunicornc interface) and its client gunicorn-c-ctl.

Every test starts a real server with its control socket in a short temporary
directory and drives it with the real gunicorn-c-ctl binary (built next to
gunicorn-c) or with a raw unix socket speaking the framing: a 4-byte big-endian
length, then UTF-8 JSON. Worker counts come from /proc (the master's live children).
"""

import json
import os
import re
import select
import shutil
import signal
import socket
import stat
import struct
import subprocess
import tempfile
import threading
import time

import pytest
import requests

from conftest import BIN, BOOTING_RE, LISTENING_RE, pid_alive, server_env
from helpers import children, get, wait_until

CTL = BIN.parent / "gunicorn-c-ctl"


# --- helpers -----------------------------------------------------------------------------


@pytest.fixture
def sockdir():
    # Short: a unix socket path must fit in 108 bytes, and pytest's tmp_path may not.
    d = tempfile.mkdtemp(prefix="gcctl-")
    yield d
    shutil.rmtree(d, ignore_errors=True)


def ctl(sock, command=None, *, as_json=True, stdin=None, env=None, timeout=10):
    argv = [str(CTL), "-s", str(sock)]
    if command is not None:
        argv += ["-c", command]
    if as_json:
        argv.append("-j")
    return subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=timeout,
                          env=server_env(env))


def ctl_data(sock, command):
    """Runs a command that must succeed; returns its data."""
    r = ctl(sock, command)
    assert r.returncode == 0, (r.stdout, r.stderr)
    response = json.loads(r.stdout)
    assert response["status"] == "ok", response
    return response["data"]


def ctl_error(sock, command):
    r = ctl(sock, command)
    assert r.returncode == 1, (r.stdout, r.stderr)
    response = json.loads(r.stdout)
    assert response["status"] == "error"
    return response["error"]


def start(start_server, sockdir, app="hello:app", *args, workers=1, **kwargs):
    path = os.path.join(sockdir, "c.sock")
    srv = start_server(app, "--control-socket", path, *args, workers=workers, **kwargs)
    wait_until(lambda: os.path.exists(path), what="the control socket to appear")
    return srv, path


class Raw:
    """A raw control-socket client."""

    def __init__(self, path):
        for attempt in range(100):
            self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.s.settimeout(5)
            try:
                self.s.connect(path)
                return
            # BlockingIOError: the listen backlog is full, the master is busy.
            # ConnectionRefusedError: the file exists a moment before the master listens.
            except (BlockingIOError, ConnectionRefusedError):
                self.s.close()
                time.sleep(0.01)
        raise AssertionError("cannot connect to the control socket")

    def send(self, payload):
        self.s.sendall(struct.pack(">I", len(payload)) + payload)

    def recv(self):
        head = self._exact(4)
        if head is None:
            return None
        (n,) = struct.unpack(">I", head)
        return json.loads(self._exact(n))

    def _exact(self, n):
        data = b""
        while len(data) < n:
            chunk = self.s.recv(n - len(data))
            if not chunk:
                return None
            data += chunk
        return data

    def call(self, obj):
        self.send(json.dumps(obj).encode() if not isinstance(obj, bytes) else obj)
        return self.recv()

    def close(self):
        self.s.close()


# --- show ---------------------------------------------------------------------------------


def all_booted(sock):
    """`show workers` once every worker has loaded the application ("Booting worker"
    is logged before the import; the slot says booted after it), else None."""
    workers = ctl_data(sock, "show workers")
    return workers if all(w["booted"] for w in workers["workers"]) else None


def test_show_workers_stats_listeners(start_server, sockdir):
    srv, sock = start(start_server, sockdir, workers=2)
    workers = wait_until(lambda: all_booted(sock), what="both workers booted")
    assert workers["count"] == 2
    pids = sorted(w["pid"] for w in workers["workers"])
    assert pids == children(srv.pid) == sorted(srv.worker_pids())
    for w in workers["workers"]:
        assert w["booted"] is True and w["aborted"] is False
        assert w["state"] == "idle" and w["current_request"] is None
        assert w["rss_kb"] > 1000
        assert 0 <= w["last_heartbeat"] < 5 and w["uptime"] >= 0
        assert w["requests"] == 0 and w["in_flight"] == 0
    assert sorted(w["age"] for w in workers["workers"]) == [1, 2]

    stats = ctl_data(sock, "show stats")
    assert stats["pid"] == srv.pid
    assert stats["workers_current"] == 2 and stats["workers_target"] == 2
    assert stats["workers_spawned"] == 2 and stats["workers_killed"] == 0
    assert stats["reloads"] == 0 and stats["uptime"] > 0
    assert stats["workers_idle"] == 2 and stats["workers_busy"] == 0

    listeners = ctl_data(sock, "show listeners")
    assert listeners["count"] == 1
    (lst,) = listeners["listeners"]
    assert lst["address"] == srv.url and lst["type"] == "tcp" and lst["fd"] >= 0

    everything = ctl_data(sock, "show all")
    assert everything["stats"]["pid"] == srv.pid
    assert everything["workers"]["count"] == 2
    assert everything["listeners"]["count"] == 1

    # Human output: a table of workers, key/value lines for the stats.
    r = ctl(sock, "show workers", as_json=False)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[0].split()[:3] == ["PID", "AGE", "STATE"]
    for pid in pids:
        assert str(pid) in r.stdout
    r = ctl(sock, "show stats", as_json=False)
    assert re.search(r"^workers_current:\s+2$", r.stdout, re.M)
    assert re.search(rf"^pid:\s+{srv.pid}$", r.stdout, re.M)
    r = ctl(sock, "show listeners", as_json=False)
    assert srv.url in r.stdout and "tcp" in r.stdout


def test_show_listeners_unix_and_tcp6(start_server, sockdir):
    unix = os.path.join(sockdir, "http.sock")
    srv, sock = start(start_server, sockdir, "hello:app", "-b", "[::1]:0",
                      bind=f"unix:{unix}")
    types = {l["type"]: l["address"] for l in ctl_data(sock, "show listeners")["listeners"]}
    assert types["unix"] == f"unix:{unix}"
    assert types["tcp6"].startswith("http://[::1]:")


def test_show_config(start_server, sockdir):
    srv, sock = start(start_server, sockdir, "hello:app", "--timeout", "17", "--max-requests",
                      "99", workers=2)
    config = ctl_data(sock, "show config")
    assert config["workers"] == 2
    assert config["timeout"] == 17 and config["max_requests"] == 99
    assert config["bind"] == ["127.0.0.1:0"]
    assert config["control_socket"] == sock
    assert config["preload_app"] is False
    assert config["control_socket_mode"] == 0o600
    r = ctl(sock, "show config", as_json=False)
    assert "timeout" in r.stdout and "= 17" in r.stdout


def test_help_lists_every_command(start_server, sockdir):
    srv, sock = start(start_server, sockdir)
    commands = ctl_data(sock, "help")["commands"]
    for name in ("show workers", "show stats", "show config", "show listeners", "worker add [N]",
                 "worker remove [N]", "worker kill PID", "reload", "reopen",
                 "shutdown [graceful|quick]"):
        assert name in commands


def test_stats_while_a_request_runs(start_server, sockdir):
    srv, sock = start(start_server, sockdir, "workers_app:app")
    result = {}
    t = threading.Thread(target=lambda: result.update(r=get(srv, "/sleep/2.5")))
    t.start()
    srv.wait_for_log(r"workers_app sleep started")

    def aged():
        """The worker once its request has run for more than 0.2s (its age grows)."""
        (w,) = ctl_data(sock, "show workers")["workers"]
        return w if w["current_request"] and w["current_request"]["age"] > 0.2 else None

    w = wait_until(aged, what="the running request to be 0.2s old")
    assert w["state"] == "busy" and w["in_flight"] == 1
    cur = w["current_request"]
    assert cur["method"] == "GET" and cur["path"] == "/sleep/2.5"
    stats = ctl_data(sock, "show stats")
    assert stats["workers_busy"] == 1 and stats["in_flight"] == 1
    r = ctl(sock, "show workers", as_json=False)
    assert "GET /sleep/2.5" in r.stdout
    t.join(10)
    assert result["r"].status_code == 200
    (w,) = ctl_data(sock, "show workers")["workers"]
    assert w["state"] == "idle" and w["current_request"] is None
    assert w["requests"] == 1


def test_gthread_counts_requests_in_flight(start_server, sockdir):
    srv, sock = start(start_server, sockdir, "workers_app:app", "-k", "gthread", "--threads",
                      "4")
    threads = [threading.Thread(target=get, args=(srv, f"/sleep/{1.5 + i / 10}"))
               for i in range(3)]
    for t in threads:
        t.start()
    srv.wait_for_log(r"workers_app sleep started", count=3)
    (w,) = ctl_data(sock, "show workers")["workers"]
    assert w["in_flight"] == 3 and w["state"] == "busy"
    assert w["current_request"]["path"].startswith("/sleep/")
    for t in threads:
        t.join(10)
    (w,) = ctl_data(sock, "show workers")["workers"]
    assert w["in_flight"] == 0 and w["state"] == "idle" and w["requests"] == 3


def test_requests_served_are_counted(start_server, sockdir):
    srv, sock = start(start_server, sockdir, workers=2)
    for _ in range(7):
        assert get(srv).status_code == 200
    workers = ctl_data(sock, "show workers")["workers"]
    assert sum(w["requests"] for w in workers) == 7
    assert ctl_data(sock, "show stats")["requests"] == 7


# --- worker add / remove / kill ----------------------------------------------------------


def test_worker_add_and_remove(start_server, sockdir):
    srv, sock = start(start_server, sockdir)
    data = ctl_data(sock, "worker add 2")
    assert data == {"added": 2, "previous": 1, "total": 3}
    wait_until(lambda: len(children(srv.pid)) == 3, what="three workers")
    srv.wait_for_log(BOOTING_RE, count=3)
    assert ctl_data(sock, "show stats")["workers_target"] == 3

    data = ctl_data(sock, "worker remove")
    assert data == {"removed": 1, "previous": 3, "total": 2}
    wait_until(lambda: len(children(srv.pid)) == 2, what="two workers")
    # Never below one.
    data = ctl_data(sock, "worker remove 10")
    assert data == {"removed": 1, "previous": 2, "total": 1}
    wait_until(lambda: len(children(srv.pid)) == 1, what="one worker")
    stats = ctl_data(sock, "show stats")
    assert stats["workers_spawned"] == 3 and stats["workers_killed"] == 2
    assert ctl_error(sock, "worker add zero") == "Invalid argument: Invalid count: zero"
    assert ctl_error(sock, "worker add 0") == "Invalid argument: Invalid count: 0"
    assert ctl_error(sock, "worker") == \
        "Invalid argument: Missing worker action (add|remove|kill)"
    assert get(srv).status_code == 200


def test_worker_kill(start_server, sockdir):
    srv, sock = start(start_server, sockdir, workers=2)
    victim, other = srv.worker_pids()
    assert ctl_data(sock, f"worker kill {victim}") == {"killed": victim}
    wait_until(lambda: not pid_alive(victim), what="the worker to exit")
    srv.wait_for_log(BOOTING_RE, count=3)
    wait_until(lambda: len(children(srv.pid)) == 2, what="a replacement")
    assert pid_alive(other)
    pids = [w["pid"] for w in ctl_data(sock, "show workers")["workers"]]
    assert victim not in pids and other in pids and len(pids) == 2
    # Only our workers: not the master, not a stranger.
    assert ctl_error(sock, f"worker kill {srv.pid}") == \
        f"Command failed: No worker with PID {srv.pid}"
    assert ctl_error(sock, "worker kill 1") == "Command failed: No worker with PID 1"
    assert ctl_error(sock, "worker kill") == "Invalid argument: Missing PID"
    assert ctl_error(sock, "worker kill abc") == "Invalid argument: Invalid PID: abc"
    assert srv.proc.poll() is None


# --- reload / reopen / shutdown ----------------------------------------------------------


def test_reload_replaces_the_workers(start_server, sockdir):
    srv, sock = start(start_server, sockdir, workers=2)
    old = set(srv.worker_pids())
    assert ctl_data(sock, "reload") == {"status": "reloading"}
    srv.wait_for_log(r"Handling signal: hup")
    srv.wait_for_log(r"Hang up: Master")
    wait_until(lambda: len(children(srv.pid)) == 2 and not set(children(srv.pid)) & old,
               timeout=10, what="every worker replaced")
    assert ctl_data(sock, "show stats")["reloads"] == 1
    assert get(srv).status_code == 200


def test_reopen_recreates_the_log(start_server, sockdir, tmp_path):
    log = tmp_path / "error.log"
    moved = tmp_path / "error.log.1"
    srv, sock = start(start_server, sockdir, "hello:app", "--error-logfile", str(log),
                      wait=False)
    wait_until(lambda: "Booting worker" in (log.read_text() if log.exists() else ""),
               what="the worker to boot")
    os.rename(log, moved)
    assert ctl_data(sock, "reopen") == {"status": "reopening"}
    wait_until(lambda: "Handling signal: usr1" in moved.read_text(), what="USR1 handled")
    wait_until(log.exists, what="the log to be recreated")
    ctl_data(sock, "worker add")
    wait_until(lambda: "Booting worker" in log.read_text(), what="the master to log there")


def test_shutdown_graceful_finishes_the_running_request(start_server, sockdir):
    srv, sock = start(start_server, sockdir, "workers_app:app")
    result = {}
    t = threading.Thread(target=lambda: result.update(r=get(srv, "/sleep/1")))
    t.start()
    srv.wait_for_log(r"workers_app sleep started")
    data = ctl_data(sock, "shutdown")
    assert data == {"status": "shutting down", "mode": "graceful"}
    srv.wait_for_log(r"Handling signal: term")
    assert srv.wait(10) == 0
    t.join(10)
    assert result["r"].status_code == 200
    assert not os.path.exists(sock)


def test_shutdown_quick_cuts_the_running_request(start_server, sockdir):
    srv, sock = start(start_server, sockdir, "workers_app:app")
    result = {}

    def slow():
        try:
            result["r"] = get(srv, "/sleep/20", timeout=15)
        except requests.RequestException as e:
            result["e"] = e

    t = threading.Thread(target=slow)
    t.start()
    srv.wait_for_log(r"workers_app sleep started")
    started = time.monotonic()
    r = ctl(sock, "shutdown quick", as_json=False)
    assert r.returncode == 0 and "quick" in r.stdout
    srv.wait_for_log(r"Handling signal: int")
    assert srv.wait(10) == 0
    assert time.monotonic() - started < 5
    t.join(15)
    assert "e" in result or result["r"].status_code == 500
    assert not os.path.exists(sock)
    assert ctl_error_or_missing(sock)


def ctl_error_or_missing(sock):
    r = ctl(sock, "show stats", as_json=False)
    assert r.returncode == 1
    (line,) = r.stderr.strip().splitlines()
    assert line.startswith(f"Error: cannot connect to {sock}")
    return True


def test_shutdown_rejects_an_unknown_mode(start_server, sockdir):
    srv, sock = start(start_server, sockdir)
    assert ctl_error(sock, "shutdown now") == \
        "Invalid argument: Unknown shutdown mode: now (graceful|quick)"
    assert srv.proc.poll() is None


# --- the socket file ---------------------------------------------------------------------


def test_socket_mode_parent_and_removal(start_server, sockdir):
    path = os.path.join(sockdir, "sub", "dir", "c.sock")
    srv = start_server("hello:app", "--control-socket", path)
    wait_until(lambda: os.path.exists(path), what="the control socket")
    st = os.lstat(path)
    assert stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600
    assert stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode) == 0o700
    assert srv.stop() == 0
    assert not os.path.exists(path)


def test_socket_mode_setting_and_stale_file(start_server, sockdir):
    path = os.path.join(sockdir, "c.sock")
    # A socket left by a master that died is replaced.
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(path)
    stale.close()
    srv = start_server("hello:app", "--control-socket", path, "--control-socket-mode", "0o640")
    wait_until(lambda: ctl(path, "show stats").returncode == 0, what="the new socket")
    assert stat.S_IMODE(os.lstat(path).st_mode) == 0o640
    assert ctl_data(path, "show stats")["pid"] == srv.pid
    srv.stop(signal.SIGINT)
    assert not os.path.exists(path)


def test_default_path_under_xdg_runtime_dir(start_server, sockdir):
    srv = start_server("hello:app", env={"XDG_RUNTIME_DIR": sockdir})
    path = os.path.join(sockdir, "gunicorn.ctl")
    wait_until(lambda: os.path.exists(path), what="the default control socket")
    # The client finds it by the same rule.
    r = subprocess.run([str(CTL), "-j", "-c", "show stats"], capture_output=True, text=True,
                       timeout=10, env=server_env({"XDG_RUNTIME_DIR": sockdir}))
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["data"]["pid"] == srv.pid
    assert srv.stop() == 0
    assert not os.path.exists(path)


def test_no_control_socket(start_server, sockdir):
    srv = start_server("hello:app", "--no-control-socket", env={"XDG_RUNTIME_DIR": sockdir})
    assert get(srv).status_code == 200
    # The master would open the socket right after its first fork, in its first pass:
    # a worker it forks for TTIN comes from a later pass.
    srv.send_signal(signal.SIGTTIN)
    srv.wait_for_log(BOOTING_RE, count=2)
    assert os.listdir(sockdir) == []
    assert "control" not in srv.log_text().lower()


def test_workers_do_not_remove_the_socket(start_server, sockdir):
    # Each forked worker closes the handles it inherited; none may unlink the file.
    srv, sock = start(start_server, sockdir, workers=2)
    ctl_data(sock, "worker kill %d" % srv.worker_pids()[0])
    srv.wait_for_log(BOOTING_RE, count=3)
    assert os.path.exists(sock)
    assert ctl_data(sock, "show stats")["workers_current"] == 2


def test_usr2_new_master_takes_the_socket_once_promoted(start_server, sockdir):
    srv, sock = start(start_server, sockdir)
    mark = srv.log_mark()
    srv.send_signal(signal.SIGUSR2)
    new_master = int(srv.wait_for_log(LISTENING_RE, since=mark).group(2))
    try:
        srv.wait_for_log(BOOTING_RE, since=mark)
        # The new master would open its socket in its first pass, right after its first
        # fork: a worker it forks for TTIN comes from a later pass.
        os.kill(new_master, signal.SIGTTIN)
        srv.wait_for_log(BOOTING_RE, since=mark, count=2)
        # Both masters run; the path still reaches the old one, which is in charge.
        assert ctl_data(sock, "show stats")["pid"] == srv.pid
        srv.send_signal(signal.SIGTERM)
        assert srv.proc.wait(10) == 0
        srv.wait_for_log(r"Master has been promoted\.", since=mark)

        def new_master_answers():
            r = ctl(sock, "show stats")
            return r.returncode == 0 and json.loads(r.stdout)["data"]["pid"] == new_master

        wait_until(new_master_answers, what="the promoted master to open the socket")
        assert ctl_data(sock, "shutdown") == {"status": "shutting down", "mode": "graceful"}
        wait_until(lambda: not pid_alive(new_master), timeout=10, what="the new master to exit")
        assert not os.path.exists(sock)
    finally:
        if pid_alive(new_master):
            os.kill(new_master, signal.SIGKILL)


# --- the client --------------------------------------------------------------------------


def test_client_missing_socket(sockdir):
    path = os.path.join(sockdir, "nothing.sock")
    r = ctl(path, "show workers", as_json=False)
    assert r.returncode == 1
    (line,) = r.stderr.strip().splitlines()
    assert line == f"Error: cannot connect to {path}: No such file or directory " \
                   "(is gunicorn-c running?)"


def test_client_error_answer(start_server, sockdir):
    srv, sock = start(start_server, sockdir)
    r = ctl(sock, "bogus", as_json=False)
    assert r.returncode == 1
    assert r.stderr.strip() == "Error: Invalid argument: Unknown command: bogus"
    r = ctl(sock, "show", as_json=False)
    assert r.stderr.strip() == "Error: Invalid argument: Missing show target " \
                               "(all|workers|dirty|config|stats|listeners)"


def test_client_reads_commands_from_stdin(start_server, sockdir):
    srv, sock = start(start_server, sockdir)
    r = ctl(sock, None, as_json=False, stdin="show stats\n\nbogus\nshow listeners\nquit\nhelp\n")
    assert r.returncode == 0, r.stderr
    assert re.search(rf"^pid:\s+{srv.pid}$", r.stdout, re.M)
    assert srv.url in r.stdout
    assert "Error: Invalid argument: Unknown command: bogus" in r.stderr
    assert "show workers" not in r.stdout  # `quit` ended the session before `help`
    r = ctl(sock, None, as_json=True, stdin="show stats\n")
    assert json.loads(r.stdout)["data"]["pid"] == srv.pid


def test_client_verbose_shows_the_messages(start_server, sockdir):
    srv, sock = start(start_server, sockdir)
    r = subprocess.run([str(CTL), "-s", sock, "-v", "-c", "show stats"], capture_output=True,
                       text=True, timeout=10)
    assert r.returncode == 0
    assert '> {"id": 1, "command": "show stats"}' in r.stderr
    assert '< {"id": 1, "status": "ok"' in r.stderr


# --- the raw protocol: malformed input never hurts the server ----------------------------


def test_raw_protocol_answers_and_errors(start_server, sockdir):
    srv, sock = start(start_server, sockdir, workers=2)
    c = Raw(sock)
    r = c.call({"id": 41, "command": "show", "args": ["stats"]})
    assert r["id"] == 41 and r["status"] == "ok" and r["data"]["pid"] == srv.pid
    r = c.call({"id": "x", "command": "worker add", "args": [1]})
    assert r == {"id": "x", "status": "ok", "data": {"added": 1, "previous": 2, "total": 3}}
    assert c.call({"id": 2, "command": ""}) == {"id": 2, "status": "error",
                                                "error": "Empty command"}
    assert c.call({"id": 3, "command": "bogus"})["error"] == \
        "Invalid argument: Unknown command: bogus"
    assert c.call({"id": 4, "command": "show nothing"})["error"] == \
        "Invalid argument: Unknown show target: nothing"
    assert c.call({"id": 5, "command": "show 'unclosed"})["error"].startswith(
        "Invalid argument: No closing quotation")
    assert c.call({"id": 6, "command": 7})["error"].startswith("Invalid request")
    assert c.call({"id": 7, "command": "dirty add"})["error"].startswith("Command failed")
    bad = c.call(b"{not json")
    assert bad["id"] is None and bad["error"].startswith("Invalid JSON")
    assert c.call(b"\xff\xfe\x00garbage")["error"].startswith("Invalid JSON")
    assert c.call(b"[1, 2]")["error"] == "Invalid request: expected a JSON object"
    assert c.call(b"[" * 100000)["error"].startswith("Invalid JSON")
    assert c.call(b'{"id": 8, "command": "show \\ud800"}')["error"] == \
        "Invalid argument: not valid UTF-8"
    assert c.call(b"")["error"].startswith("Invalid JSON")
    # Two frames in one write are both answered, in order.
    c.s.sendall(b"".join(struct.pack(">I", len(p)) + p for p in (
        json.dumps({"id": 9, "command": "help"}).encode(),
        json.dumps({"id": 10, "command": "show dirty"}).encode())))
    assert c.recv()["id"] == 9
    assert c.recv() == {"id": 10, "status": "ok", "data": {"enabled": False, "pid": None,
                                                            "workers": [], "count": 0}}
    c.close()

    # A length beyond 16 MiB: an error answer, then the connection closes.
    c = Raw(sock)
    c.s.sendall(struct.pack(">I", 0x7FFFFFFF) + b"{}")
    assert c.recv()["error"] == "Invalid request: message too large"
    assert c.recv() is None
    c.close()

    # Half a frame, then a hang-up; a client that connects and says nothing.
    c = Raw(sock)
    c.s.sendall(struct.pack(">I", 100) + b'{"id"')
    c.close()
    # Many clients at once: past 32 the newcomers are hung up on, the others served.
    # Under load the master may take a moment to accept them all (and to notice the
    # hang-up just above, which can still hold a place): wait until 8 are turned away.
    crowd = [Raw(sock) for _ in range(40)]
    hung_up = set()
    deadline = time.monotonic() + 5
    while len(hung_up) < 8 and time.monotonic() < deadline:
        readable, _, _ = select.select([x.s for x in crowd if x.s not in hung_up], [], [], 0.2)
        for r in readable:
            assert r.recv(1) == b""
            hung_up.add(r)
    served = [x for x in crowd if x.s not in hung_up]
    assert len(served) in (31, 32), len(served)
    assert served[0].call({"id": 1, "command": "show stats"})["status"] == "ok"
    for x in crowd:
        x.close()

    assert get(srv).status_code == 200
    assert ctl_data(sock, "show stats")["workers_target"] == 3
    assert srv.proc.poll() is None


def test_a_file_in_the_way_is_kept(start_server, sockdir):
    path = os.path.join(sockdir, "c.sock")
    with open(path, "w") as f:
        f.write("precious")
    srv = start_server("hello:app", "--control-socket", path)
    srv.wait_for_log(r"Cannot open the control socket .*: a file that is not a socket")
    assert get(srv).status_code == 200
    assert srv.stop() == 0
    with open(path) as f:
        assert f.read() == "precious"
