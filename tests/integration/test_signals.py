"""Signals and the process lifecycle: what the master and its workers do on each
signal, timeouts, recycling, pidfile, daemon mode, titles, socket activation, reload.

Everything here runs the real binary and sends real signals. Worker counts are taken
from /proc (the master's live children), not from the log. Basic TERM/INT/QUIT stops,
boot failures (exit 3/4) and a killed worker's replacement are in test_arbiter.py.
"""

import errno
import json
import os
import pwd
import grp
import re
import signal
import socket
import subprocess
import threading
import time

import pytest
import requests

from conftest import (APPS_DIR, BIN, BOOTING_RE, LISTENING_RE, embedded_python, pid_alive,
                      server_env)


# --- helpers -----------------------------------------------------------------------------


def url(srv, path="/"):
    return f"http://127.0.0.1:{srv.port}{path}"


def get(port, path="/", timeout=10):
    """One request on its own connection (so recycling tests are about the server, not
    about a client reusing a connection the server has just closed)."""
    return requests.get(f"http://127.0.0.1:{port}{path}", headers={"Connection": "close"},
                        timeout=timeout)


def info(port, path="/"):
    r = get(port, path)
    assert r.status_code == 200, r.text
    return r.json()


def wait_until(predicate, timeout=5.0, interval=0.05, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met within {timeout}s")
        time.sleep(interval)


def children(pid):
    """The live (non-zombie) child processes of `pid`, from /proc."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            out.append(int(entry))
    return sorted(out)


def title(pid):
    """What `ps` shows for pid: /proc/PID/cmdline up to the first NUL."""
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        return f.read().split(b"\0", 1)[0].decode()


def wait_gone(pid, timeout=10.0):
    wait_until(lambda: not pid_alive(pid), timeout, what=f"pid {pid} to exit")


def read_text(path):
    try:
        with open(path) as f:
            return f.read()
    except FileNotFoundError:
        return ""


def wait_in_file(path, regex, timeout=5.0, count=1):
    """Waits until `regex` matches `count` times in the file; returns the last match."""
    pattern = re.compile(regex)

    def found():
        matches = list(pattern.finditer(read_text(path)))
        return matches[count - 1] if len(matches) >= count else None

    try:
        return wait_until(found, timeout, what=f"{regex!r} in {path}")
    except AssertionError:
        raise AssertionError(f"{regex!r} not found {count}x in {path}:\n{read_text(path)}")


def kill_quietly(pid, sig=signal.SIGKILL):
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


class ClientLoop:
    """Sequential requests, each on a new connection, until stopped; records failures
    and which worker served each request."""

    def __init__(self, port, path="/"):
        self.port = port
        self.path = path
        self.ok = 0
        self.failures = []
        self.pids = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            try:
                r = get(self.port, self.path, timeout=10)
                if r.status_code == 200:
                    self.ok += 1
                    self.pids.append(r.json()["pid"])
                else:
                    self.failures.append(f"status {r.status_code}")
            except requests.RequestException as e:
                self.failures.append(repr(e))

    def __enter__(self):
        self._thread.start()
        return self

    def wait_for(self, n, timeout=10):
        target = self.ok + n
        wait_until(lambda: self.ok >= target or self.failures, timeout,
                   what=f"{n} more successful requests")

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(15)


# --- master: TERM, INT, QUIT ------------------------------------------------------------


def test_term_waits_for_a_two_second_request_then_exits_0(start_server):
    srv = start_server("lifecycle:app", "--graceful-timeout", "5")
    (worker,) = srv.worker_pids()
    result = {}

    def client():
        start = time.monotonic()
        r = get(srv.port, "/sleep/2")
        result.update(status=r.status_code, pid=r.json()["pid"],
                      took=time.monotonic() - start)

    t = threading.Thread(target=client)
    t.start()
    srv.wait_for_log(r"lifecycle request started")
    srv.send_signal(signal.SIGTERM)
    assert srv.wait(10) == 0
    t.join(5)
    assert result.get("status") == 200, srv.log_text()
    assert result["pid"] == worker
    assert result["took"] >= 1.9
    log = srv.log_text()
    assert f"Worker exiting (pid: {worker})" in log
    # The worker finished by itself: no SIGKILL after the graceful timeout.
    assert "SIGKILL" not in log
    assert log.index(f"Worker exiting (pid: {worker})") < log.index("Shutting down: Master")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGQUIT], ids=["INT", "QUIT"])
def test_quick_stop_does_not_wait_for_a_running_request(start_server, sig):
    srv = start_server("lifecycle:app", "--graceful-timeout", "20")
    outcome = []

    def client():
        try:
            r = get(srv.port, "/sleep/15", timeout=20)
            outcome.append(r.status_code)
        except requests.RequestException:
            outcome.append("dropped")

    t = threading.Thread(target=client, daemon=True)
    t.start()
    srv.wait_for_log(r"lifecycle request started")
    start = time.monotonic()
    srv.send_signal(sig)
    assert srv.wait(10) == 0
    took = time.monotonic() - start
    assert took < 3, f"a quick stop took {took:.1f}s: it waited for the request"
    t.join(5)
    assert outcome and outcome[0] != 200, outcome
    log = srv.log_text()
    assert f"Handling signal: {signal.Signals(sig).name[3:].lower()}" in log
    assert "Shutting down: Master" in log
    assert "SIGKILL" not in log  # the worker quit by itself, on SIGQUIT


# --- master: HUP -------------------------------------------------------------------------


def test_hup_replaces_every_worker_without_failing_a_request(start_server):
    srv = start_server("lifecycle:app", "--graceful-timeout", "5", workers=2)
    old = srv.worker_pids()
    with ClientLoop(srv.port) as loop:
        loop.wait_for(20)
        mark = srv.log_mark()
        srv.send_signal(signal.SIGHUP)
        srv.wait_for_log(r"Hang up: Master", since=mark)
        srv.wait_for_log(BOOTING_RE, since=mark, count=2)
        new = srv.worker_pids()[len(old):]
        for pid in old:
            srv.wait_for_log(rf"Worker exiting \(pid: {pid}\)", since=mark)
            wait_gone(pid)
        seen_before = len(loop.pids)
        loop.wait_for(20)
    assert not loop.failures, loop.failures[:5]
    assert set(new).isdisjoint(old)
    assert children(srv.pid) == sorted(new)
    assert set(loop.pids[seen_before:]) <= set(new)
    assert set(loop.pids) & set(old), "the old workers served nothing before HUP"


# --- master: TTIN, TTOU ------------------------------------------------------------------


def test_ttin_adds_workers_and_ttou_retires_the_oldest(start_server):
    srv = start_server("lifecycle:app", workers=1)
    (first,) = srv.worker_pids()
    added = []
    for n in (2, 3):  # one at a time, so that the spawn order is known
        mark = srv.log_mark()
        srv.send_signal(signal.SIGTTIN)
        srv.wait_for_log(r"Handling signal: ttin", since=mark)
        added.append(int(srv.wait_for_log(BOOTING_RE, since=mark).group(1)))
        wait_until(lambda: len(children(srv.pid)) == n, what=f"{n} workers")
    second, third = added
    assert children(srv.pid) == sorted([first, second, third])

    for oldest, rest in ((first, [second, third]), (second, [third])):
        mark = srv.log_mark()
        srv.send_signal(signal.SIGTTOU)
        srv.wait_for_log(r"Handling signal: ttou", since=mark)
        srv.wait_for_log(rf"Worker exiting \(pid: {oldest}\)", since=mark)
        wait_until(lambda: children(srv.pid) == sorted(rest), what=f"workers {rest}")
    # Nothing replaced the retired workers.
    time.sleep(1.2)
    assert children(srv.pid) == [third]
    assert info(srv.port)["pid"] == third


def test_ttou_never_goes_below_one_worker(start_server):
    srv = start_server("lifecycle:app", workers=1)
    (only,) = srv.worker_pids()
    mark = srv.log_mark()
    srv.send_signal(signal.SIGTTOU)
    srv.wait_for_log(r"Handling signal: ttou", since=mark)
    time.sleep(1.2)
    assert children(srv.pid) == [only]
    assert info(srv.port)["pid"] == only


# --- master: USR1 ------------------------------------------------------------------------


def test_usr1_reopens_the_error_log_in_master_and_workers(start_server, tmp_path):
    log = tmp_path / "error.log"
    moved = tmp_path / "error.log.1"
    srv = start_server("lifecycle:app", "--error-logfile", str(log), "--log-level", "debug",
                       wait=False)
    m = wait_in_file(log, LISTENING_RE)
    assert int(m.group(2)) == srv.pid
    port = int(m.group(1).rsplit(":", 1)[1])
    worker = int(wait_in_file(log, BOOTING_RE).group(1))
    assert info(port, "/before")["pid"] == worker
    wait_in_file(log, r"\[DEBUG\] GET /before")

    os.rename(log, moved)
    srv.send_signal(signal.SIGUSR1)
    wait_in_file(moved, r"Handling signal: usr1")
    wait_until(log.exists, what="the master to recreate the log file")

    # The worker reopens when the forwarded USR1 reaches it: its request lines move to
    # the new file.
    def worker_writes_new_file():
        n = worker_writes_new_file.n = getattr(worker_writes_new_file, "n", 0) + 1
        assert info(port, f"/after-{n}")["pid"] == worker
        time.sleep(0.05)
        return re.search(rf"\[DEBUG\] GET /after-{n}\b", read_text(log))

    wait_until(worker_writes_new_file, timeout=5, interval=0.1,
               what="the worker to write to the reopened log")
    # And the master writes there too.
    srv.send_signal(signal.SIGTTIN)
    wait_in_file(log, r"Handling signal: ttin")
    wait_in_file(log, BOOTING_RE)
    assert "Handling signal: ttin" not in read_text(moved)
    assert srv.stop() == 0
    assert "Shutting down: Master" in read_text(log)
    assert srv.log_text() == ""  # nothing went to stderr


# --- master: USR2 (binary upgrade) ---------------------------------------------------------


def test_usr2_then_term_old_master_keeps_the_port_answering(start_server, tmp_path):
    pidfile = tmp_path / "gc.pid"
    srv = start_server("lifecycle:app", "-p", str(pidfile), "-n", "upg")
    old_master = srv.pid
    (old_worker,) = srv.worker_pids()
    assert pidfile.read_text().strip() == str(old_master)
    new_master = None
    try:
        with ClientLoop(srv.port) as loop:
            loop.wait_for(10)
            mark = srv.log_mark()
            srv.send_signal(signal.SIGUSR2)
            m = srv.wait_for_log(LISTENING_RE, since=mark)
            new_master = int(m.group(2))
            assert new_master != old_master
            assert m.group(1) == srv.url  # the same, inherited socket
            new_worker = int(srv.wait_for_log(BOOTING_RE, since=mark).group(1))
            # Both masters run; the new one is the old one's child and says ".2".
            pid2 = tmp_path / "gc.pid.2"
            wait_until(pid2.exists, what="the .2 pidfile")
            assert pid2.read_text().strip() == str(new_master)
            assert pidfile.read_text().strip() == str(old_master)
            assert new_master in children(old_master)
            assert title(new_master) == "gunicorn-c: master [upg.2]"
            loop.wait_for(10)

            mark = srv.log_mark()
            srv.send_signal(signal.SIGTERM)
            assert srv.proc.wait(10) == 0
            srv.wait_for_log(r"Master has been promoted\.", since=mark, timeout=5)
            wait_until(lambda: not pid2.exists(), what="the .2 pidfile to be renamed")
            assert pidfile.read_text().strip() == str(new_master)
            assert title(new_master) == "gunicorn-c: master [upg]"
            n = len(loop.pids)
            loop.wait_for(10)
        assert not loop.failures, loop.failures[:5]
        assert old_worker in loop.pids
        assert set(loop.pids[n:]) == {new_worker}
        assert not pid_alive(old_worker)
        assert info(srv.port)["ppid"] == new_master
    finally:
        if new_master is not None:
            kill_quietly(new_master, signal.SIGTERM)
            wait_gone(new_master)
    assert not pidfile.exists()


def test_usr2_twice_is_ignored_while_the_new_master_runs(start_server):
    srv = start_server("lifecycle:app")
    mark = srv.log_mark()
    srv.send_signal(signal.SIGUSR2)
    new_master = int(srv.wait_for_log(LISTENING_RE, since=mark).group(2))
    try:
        srv.wait_for_log(BOOTING_RE, since=mark)
        srv.send_signal(signal.SIGUSR2)
        srv.wait_for_log(r"USR2 signal ignored\. Child exists\.", since=mark)
        os.kill(new_master, signal.SIGUSR2)
        srv.wait_for_log(r"USR2 signal ignored\. Parent exists\.", since=mark)
        assert children(srv.pid).count(new_master) == 1
        assert len(children(srv.pid)) == 2  # one worker and the new master
    finally:
        # Rolling back: TERM the new master, the old one keeps serving.
        kill_quietly(new_master, signal.SIGTERM)
        srv.wait_for_log(rf"New master \(pid:{new_master}\) exited", since=mark)
    assert info(srv.port)["ppid"] == srv.pid


# --- master: WINCH -----------------------------------------------------------------------


def test_winch_is_ignored_when_not_daemonized(start_server):
    srv = start_server("lifecycle:app", "--log-level", "debug", workers=2)
    workers = sorted(srv.worker_pids())
    srv.send_signal(signal.SIGWINCH)
    srv.wait_for_log(r"SIGWINCH ignored\. Not daemonized")
    time.sleep(1.2)
    assert children(srv.pid) == workers
    assert info(srv.port)["pid"] in workers


def start_daemon(tmp_path, *args, env=None):
    """Starts `gunicorn-c -D`; returns (daemon pid, port, log path, pidfile path)."""
    pidfile, log = tmp_path / "d.pid", tmp_path / "d.log"
    argv = [str(BIN), "-D", "-p", str(pidfile), "--error-logfile", str(log),
            "-b", "127.0.0.1:0", "--chdir", str(APPS_DIR), *args]
    launcher = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True,
                              cwd="/", env=server_env(env), timeout=10)
    # The launching process returns at once, having forked the daemon.
    assert launcher.returncode == 0, launcher.stderr
    assert launcher.stdout == b"" and launcher.stderr == b""
    wait_until(lambda: pidfile.exists() and pidfile.read_text().strip(), what="the pidfile")
    pid = int(pidfile.read_text())
    m = wait_in_file(log, LISTENING_RE)
    assert int(m.group(2)) == pid
    return pid, int(m.group(1).rsplit(":", 1)[1]), log, pidfile


def stop_daemon(pid):
    kill_quietly(pid, signal.SIGTERM)
    try:
        wait_gone(pid)
    except AssertionError:
        for child in children(pid):
            kill_quietly(child)
        kill_quietly(pid)
        raise


def test_daemon_detaches_and_writes_its_pid(tmp_path):
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp_path / "notify"))
    notify.setblocking(False)
    pid, port, log, pidfile = start_daemon(tmp_path, "-w", "2", "lifecycle:app",
                                           env={"NOTIFY_SOCKET": str(tmp_path / "notify")})
    try:
        assert pid_alive(pid)
        assert pid not in children(os.getpid())
        assert os.getsid(pid) != os.getsid(0)  # a session of its own, no terminal
        wait_in_file(log, BOOTING_RE, count=2)
        assert wait_until(lambda: len(children(pid)) == 2, what="2 workers")
        assert info(port)["ppid"] == pid
        workers = children(pid)
        # Ready and serving, yet nothing told systemd: a daemon has left its care.
        with pytest.raises(BlockingIOError):
            notify.recv(4096)
        assert "Ignoring NOTIFY_SOCKET" in read_text(log)
    finally:
        notify.close()
        stop_daemon(pid)
    for w in workers:
        wait_gone(w)
    assert "Shutting down: Master" in read_text(log)
    assert not pidfile.exists()


def test_winch_stops_the_workers_of_a_daemon(tmp_path):
    pid, port, log, pidfile = start_daemon(tmp_path, "-w", "2", "lifecycle:app")
    try:
        wait_in_file(log, BOOTING_RE, count=2)
        workers = wait_until(lambda: len(children(pid)) == 2 and children(pid))
        os.kill(pid, signal.SIGWINCH)
        wait_in_file(log, r"Handling signal: winch")
        wait_until(lambda: children(pid) == [], what="the workers to stop")
        for w in workers:
            wait_in_file(log, rf"Worker exiting \(pid: {w}\)")
        time.sleep(1.2)
        assert children(pid) == [], "workers came back after WINCH"
        assert pid_alive(pid)  # the master stays
        # TTIN brings serving back (the documented upgrade rollback path).
        os.kill(pid, signal.SIGTTIN)
        wait_in_file(log, BOOTING_RE, count=3)
        assert info(port)["ppid"] == pid
    finally:
        stop_daemon(pid)


# --- master: CHLD ------------------------------------------------------------------------


def test_chld_reaps_a_child_that_is_not_a_worker(start_server):
    # With --preload the app module is imported in the master; this one forks a child
    # there that exits a second later: the master must reap it and carry on.
    srv = start_server("import_marker", "--preload", "--log-level", "debug",
                       env={"GC_TEST_FORK_AT_IMPORT": "0.8"})
    (worker,) = srv.worker_pids()
    stray = int(srv.wait_for_log(r"import_marker forked child (\d+)").group(1))
    srv.wait_for_log(rf"Reaped unknown child \(pid:{stray}\)", timeout=5)
    assert not os.path.exists(f"/proc/{stray}"), "the stray child was left a zombie"
    log = srv.log_text()
    assert f"Worker (pid:{stray})" not in log
    assert "Shutting down" not in log
    assert children(srv.pid) == [worker]
    assert get(srv.port).text == str(worker)


# --- worker signals ----------------------------------------------------------------------


def test_worker_term_finishes_its_request_then_exits(start_server):
    srv = start_server("lifecycle:app")
    (worker,) = srv.worker_pids()
    result = {}

    def client():
        r = get(srv.port, "/sleep/1")
        result.update(status=r.status_code, pid=r.json()["pid"])

    t = threading.Thread(target=client)
    t.start()
    srv.wait_for_log(r"lifecycle request started")
    mark = srv.log_mark()
    os.kill(worker, signal.SIGTERM)
    t.join(10)
    assert result == {"status": 200, "pid": worker}
    srv.wait_for_log(rf"Worker exiting \(pid: {worker}\)", since=mark)
    new = int(srv.wait_for_log(BOOTING_RE, since=mark).group(1))
    assert f"Worker (pid:{worker}) exited with code" not in srv.log_text()
    assert info(srv.port)["pid"] == new


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGQUIT], ids=["INT", "QUIT"])
def test_worker_int_quit_exit_at_once(start_server, sig):
    srv = start_server("lifecycle:app", "--graceful-timeout", "20")
    (worker,) = srv.worker_pids()
    outcome = []

    def client():
        try:
            outcome.append(get(srv.port, "/sleep/15", timeout=20).status_code)
        except requests.RequestException:
            outcome.append("dropped")

    t = threading.Thread(target=client, daemon=True)
    t.start()
    srv.wait_for_log(r"lifecycle request started")
    mark = srv.log_mark()
    start = time.monotonic()
    os.kill(worker, sig)
    wait_gone(worker, timeout=5)
    assert time.monotonic() - start < 2, "the worker finished its request first"
    new = int(srv.wait_for_log(BOOTING_RE, since=mark).group(1))
    t.join(5)
    assert outcome and outcome[0] != 200
    # A quick exit is still a clean one (status 0): the master says nothing alarming.
    assert f"Worker (pid:{worker}) exited with code" not in srv.log_text()
    assert f"Worker (pid:{worker}) was sent" not in srv.log_text()
    assert info(srv.port)["pid"] == new


def test_idle_worker_int_exits_and_is_replaced(start_server):
    srv = start_server("lifecycle:app")
    (worker,) = srv.worker_pids()
    assert info(srv.port)["pid"] == worker
    mark = srv.log_mark()
    os.kill(worker, signal.SIGINT)
    srv.wait_for_log(rf"Worker exiting \(pid: {worker}\)", since=mark)
    new = int(srv.wait_for_log(BOOTING_RE, since=mark).group(1))
    assert info(srv.port)["pid"] == new


def test_worker_abrt_exits_1_and_is_replaced(start_server):
    srv = start_server("lifecycle:app")
    (worker,) = srv.worker_pids()
    assert info(srv.port)["pid"] == worker  # booted: the app is loaded
    mark = srv.log_mark()
    os.kill(worker, signal.SIGABRT)
    srv.wait_for_log(rf"Worker \(pid:{worker}\) exited with code 1\.", since=mark)
    new = int(srv.wait_for_log(BOOTING_RE, since=mark).group(1))
    assert not pid_alive(worker)
    assert info(srv.port)["pid"] == new
    assert srv.proc.poll() is None


def test_worker_usr1_and_winch_do_not_stop_it_but_hup_does(start_server):
    srv = start_server("lifecycle:app")
    (worker,) = srv.worker_pids()
    os.kill(worker, signal.SIGUSR1)
    os.kill(worker, signal.SIGWINCH)
    time.sleep(0.3)
    assert pid_alive(worker)
    assert info(srv.port)["pid"] == worker
    # HUP is for the master; a worker keeps its default action, as in Gunicorn.
    mark = srv.log_mark()
    os.kill(worker, signal.SIGHUP)
    srv.wait_for_log(rf"Worker \(pid:{worker}\) was sent SIGHUP!", since=mark)
    new = int(srv.wait_for_log(BOOTING_RE, since=mark).group(1))
    assert info(srv.port)["pid"] == new


# --- timeouts and recycling ----------------------------------------------------------------


def test_timeout_names_the_request_and_dumps_its_stack(start_server):
    srv = start_server("lifecycle:stuck", "--timeout", "2")
    (worker,) = srv.worker_pids()
    outcome = []

    def client():
        try:
            outcome.append(get(srv.port, "/stuck", timeout=20).status_code)
        except requests.RequestException as e:
            outcome.append(repr(e))

    t = threading.Thread(target=client, daemon=True)
    t.start()
    srv.wait_for_log(r"stuck request started")
    srv.wait_for_log(rf"\[CRITICAL\] WORKER TIMEOUT \(pid:{worker}\)", timeout=6)
    m = srv.wait_for_log(
        rf'Worker \(pid:{worker}\) was serving "GET /stuck" for (\d+\.\d)s; '
        r"its Python stack follows")
    assert 2.0 <= float(m.group(1)) < 4.0
    # faulthandler's dump: the frames of the stuck request, innermost first.
    srv.wait_for_log(r'File ".*lifecycle\.py", line \d+ in sleep_forever_in_the_app')
    srv.wait_for_log(r'File ".*lifecycle\.py", line \d+ in stuck')
    srv.wait_for_log(rf"Worker \(pid:{worker}\) exited with code 1\.")
    new = int(srv.wait_for_log(BOOTING_RE, count=2).group(1))
    t.join(10)
    # SystemExit was raised inside the application: the client got an error page.
    assert outcome == [500], outcome
    assert get(srv.port, "/next").text == str(new)
    assert "SIGKILL" not in srv.log_text()
    # The replacement was forked while the arbiter's loop was busy; it once inherited
    # that loop mid-run and spun at 100 % CPU while idle.
    assert cpu_seconds_over(new, 1.0) < 0.2


def cpu_seconds_over(pid, seconds):
    """CPU time (user + system) that pid uses during the next `seconds`."""
    def ticks():
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])
    before = ticks()
    time.sleep(seconds)
    return (ticks() - before) / os.sysconf("SC_CLK_TCK")


def test_recycled_workers_stay_idle(start_server):
    srv = start_server("hello", "--max-requests", "5")
    for _ in range(12):
        assert requests.get(url(srv), timeout=5).status_code == 200
    time.sleep(1.5)
    measured = 0
    for pid in srv.worker_pids():
        try:
            assert cpu_seconds_over(pid, 1.0) < 0.2, pid
            measured += 1
        except FileNotFoundError:
            pass  # a retiring worker that has just exited
    assert measured >= 1


def test_timeout_while_booting_restarts_the_worker(start_server):
    # A worker still importing the app after --timeout is aborted and replaced; the
    # master must not take its exit for a boot failure and halt.
    srv = start_server("import_marker", "--timeout", "1", wait=False,
                       env={"GC_TEST_IMPORT_SLEEP": "30"})
    first = int(srv.wait_for_log(BOOTING_RE).group(1))
    srv.wait_for_log(rf"WORKER TIMEOUT \(pid:{first}\)", timeout=5)
    srv.wait_for_log(rf"Worker \(pid:{first}\) was still booting \(importing the "
                     r"application\) after 1s")
    srv.wait_for_log(rf"Worker \(pid:{first}\) exited with code 1\.")
    second = int(srv.wait_for_log(BOOTING_RE, count=2).group(1))
    assert second != first
    assert srv.proc.poll() is None
    assert "Reason:" not in srv.log_text()
    # A quick stop interrupts the import too, and that exit is a clean one.
    srv.send_signal(signal.SIGINT)
    assert srv.wait(5) == 0
    assert f"Worker (pid:{second}) exited with code" not in srv.log_text()


def requests_before_autorestart(log):
    """For each worker that reached its limit: how many requests it had started when it
    said so (each request is a DEBUG line "GET /path" from the worker's pid)."""
    counts, limits = {}, {}
    for m in re.finditer(r"\[(\d+)\] \[(?:DEBUG|INFO)\] (GET /|Autorestarting)", log):
        pid = int(m.group(1))
        if m.group(2) == "GET /":
            counts[pid] = counts.get(pid, 0) + 1
        elif pid not in limits:
            limits[pid] = counts.get(pid, 0)
    return limits


def test_max_requests_recycles_workers_without_failing_a_request(start_server):
    srv = start_server("lifecycle:app", "--max-requests", "50", "--log-level", "debug",
                       workers=2)
    failures, pids = [], []
    # Requests go on until two replacements have booted and served (how many that
    # takes depends on how fast replacements boot: 300 were too few on a loaded machine).
    for i in range(3000):
        try:
            r = get(srv.port, f"/{i}")
            assert r.status_code == 200
            pids.append(r.json()["pid"])
        except (requests.RequestException, AssertionError) as e:
            failures.append((i, repr(e)))
        if len(set(pids)) >= 4 and srv.log_text().count("Autorestarting") >= 2:
            break
    assert failures == []
    assert len(set(pids)) >= 4, f"workers seen: {sorted(set(pids))}"
    log = srv.log_text()
    limits = requests_before_autorestart(log)
    assert len(limits) >= 2 and set(limits.values()) == {50}, limits
    # Every recycled worker left cleanly.
    assert "exited with code" not in log
    assert "was sent" not in log


def test_max_requests_jitter_spreads_the_limits(start_server):
    srv = start_server("lifecycle:app", "--max-requests", "5", "--max-requests-jitter", "20",
                       "--log-level", "debug")
    for i in range(400):
        info(srv.port, f"/{i}")
    limits = list(requests_before_autorestart(srv.log_text()).values())
    assert len(limits) >= 3, limits
    assert all(5 <= n <= 25 for n in limits), limits
    assert len(set(limits)) > 1, f"every worker had the same limit: {limits}"


# --- files, sockets, titles ------------------------------------------------------------------


def test_pidfile_is_written_and_removed(start_server, tmp_path):
    pidfile = tmp_path / "run" / "gc.pid"
    pidfile.parent.mkdir()
    srv = start_server("lifecycle:app", "-p", str(pidfile))
    assert pidfile.read_text() == f"{srv.pid}\n"
    assert srv.stop() == 0
    assert not pidfile.exists()


def test_pidfile_of_a_running_process_is_refused(start_server, tmp_path):
    pidfile = tmp_path / "gc.pid"
    pidfile.write_text(f"{os.getpid()}\n")  # a live process: us
    srv = start_server("lifecycle:app", "-p", str(pidfile), wait=False)
    assert srv.wait(10) == 1
    assert str(pidfile) in srv.log_text()
    assert pidfile.read_text() == f"{os.getpid()}\n"


def test_stale_pidfile_is_replaced(start_server, tmp_path):
    pidfile = tmp_path / "gc.pid"
    dead = os.fork()
    if dead == 0:
        os._exit(0)
    os.waitpid(dead, 0)
    pidfile.write_text(f"{dead}\n")
    srv = start_server("lifecycle:app", "-p", str(pidfile))
    assert pidfile.read_text() == f"{srv.pid}\n"


def test_unix_socket_file_is_removed_after_term(start_server, tmp_path):
    path = tmp_path / "gc.sock"
    # Octal with a leading 0, as Gunicorn reads it: the socket file is for its owner only.
    srv = start_server("lifecycle:app", "--umask", "0077", bind=f"unix:{path}")
    assert srv.url == f"unix:{path}"
    assert oct(path.stat().st_mode & 0o777) == oct(0o700)
    with srv.connect() as s:
        s.sendall(b"GET /unix HTTP/1.0\r\n\r\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    assert data.startswith(b"HTTP/1.0 200 OK\r\n") and b'"/unix"' in data
    assert srv.stop() == 0
    assert not path.exists()


def test_process_titles(start_server):
    srv = start_server("lifecycle:app", "-n", "shop-api", workers=2)
    assert title(srv.pid) == "gunicorn-c: master [shop-api]"
    for w in srv.worker_pids():
        assert title(w) == "gunicorn-c: worker [shop-api]"
    with open(f"/proc/{srv.pid}/comm") as f:
        assert f.read().strip() == "gunicorn-c: mas"  # the kernel keeps 15 bytes


def test_process_title_defaults_to_the_app(start_server):
    srv = start_server("lifecycle:app")
    assert title(srv.pid) == "gunicorn-c: master [lifecycle:app]"
    (w,) = srv.worker_pids()
    assert title(w) == "gunicorn-c: worker [lifecycle:app]"


def test_preload_imports_the_app_once_in_the_master(start_server):
    srv = start_server("import_marker", "--preload", workers=2)
    imports = re.findall(r"import_marker imported in pid (\d+)", srv.log_text())
    assert imports == [str(srv.pid)]
    served = {int(get(srv.port).text) for _ in range(6)}
    assert served <= set(srv.worker_pids())


def test_without_preload_each_worker_imports_the_app(start_server):
    srv = start_server("import_marker", workers=2)
    srv.wait_for_log(r"import_marker imported in pid", count=2)
    imports = re.findall(r"import_marker imported in pid (\d+)", srv.log_text())
    assert sorted(map(int, imports)) == sorted(srv.worker_pids())


def test_reuse_port(start_server):
    srv = start_server("lifecycle:app", "--reuse-port")
    probe = socket.socket()
    probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        probe.bind(("127.0.0.1", srv.port))  # allowed only if the server set it too
    finally:
        probe.close()


def test_without_reuse_port_the_port_is_exclusive(start_server):
    srv = start_server("lifecycle:app")
    probe = socket.socket()
    probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        with pytest.raises(OSError) as e:
            probe.bind(("127.0.0.1", srv.port))
        assert e.value.errno == errno.EADDRINUSE
    finally:
        probe.close()


# --- users and groups ----------------------------------------------------------------------


needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="switching users needs root")
# Workers go on importing after they switch users.
nobody_reads_python = pytest.mark.skipif(
    not embedded_python().others_can_read(),
    reason=f"nobody cannot read the server's Python ({embedded_python().stdlib})")


def nobody():
    pw = pwd.getpwnam("nobody")
    return pw.pw_uid, pw.pw_gid


@needs_root
@nobody_reads_python
def test_user_and_group(start_server):
    uid, gid = nobody()
    group = grp.getgrgid(gid).gr_name
    srv = start_server("lifecycle:app", "-u", "nobody", "-g", group)
    got = info(srv.port)
    assert (got["uid"], got["gid"]) == (uid, gid)
    assert got["groups"] == []  # root's supplementary groups are dropped
    assert os.stat(f"/proc/{srv.pid}").st_uid == 0  # the master stays root


@needs_root
@nobody_reads_python
def test_user_by_number_takes_its_primary_group(start_server):
    uid, gid = nobody()
    srv = start_server("lifecycle:app", "-u", str(uid))
    got = info(srv.port)
    assert (got["uid"], got["gid"]) == (uid, gid)


@needs_root
@nobody_reads_python
def test_initgroups(start_server):
    uid, gid = nobody()
    srv = start_server("lifecycle:app", "-u", "nobody", "--initgroups")
    got = info(srv.port)
    expected = sorted({gid} | {g.gr_gid for g in grp.getgrall() if "nobody" in g.gr_mem})
    assert got["groups"] == expected


def test_unknown_user_is_a_config_error(start_server):
    srv = start_server("lifecycle:app", "-u", "no-such-user-here", wait=False)
    assert srv.wait(10) == 1
    assert "Error: No such user: 'no-such-user-here'" in srv.log_text()
    assert "Listening at" not in srv.log_text()


# --- --reload ------------------------------------------------------------------------------


RELOAD_APP = '''
VERSION = "{version}"


def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [VERSION.encode()]
'''


@pytest.mark.parametrize("how", ["in-place", "replace"])
def test_reload_restarts_the_worker_on_a_code_change(start_server, tmp_path, how):
    module = tmp_path / "reload_app.py"
    module.write_text(RELOAD_APP.format(version="one"))
    srv = start_server("reload_app", "--reload", app_dir=tmp_path)
    (old,) = srv.worker_pids()
    assert get(srv.port).text == "one"
    mark = srv.log_mark()
    if how == "in-place":
        module.write_text(RELOAD_APP.format(version="two"))
    else:  # as editors save: write a new file, rename it over the old one
        tmp = tmp_path / "reload_app.py.swp"
        tmp.write_text(RELOAD_APP.format(version="two"))
        os.replace(tmp, module)
    srv.wait_for_log(r"Worker reloading: .*reload_app\.py modified", since=mark)
    new = int(srv.wait_for_log(BOOTING_RE, since=mark).group(1))
    assert new != old
    assert get(srv.port).text == "two"


def test_reload_extra_file(start_server, tmp_path):
    module = tmp_path / "reload_app.py"
    module.write_text(RELOAD_APP.format(version="one"))
    extra = tmp_path / "settings.toml"
    extra.write_text("a = 1\n")
    srv = start_server("reload_app", "--reload", "--reload-extra-file", str(extra),
                       app_dir=tmp_path)
    (old,) = srv.worker_pids()
    assert get(srv.port).text == "one"  # booted: the files are watched from now on
    mark = srv.log_mark()
    extra.write_text("a = 2\n")
    srv.wait_for_log(rf"Worker reloading: {re.escape(str(extra))} modified", since=mark)
    new = int(srv.wait_for_log(BOOTING_RE, since=mark).group(1))
    assert new != old
    assert get(srv.port).text == "one"


def test_without_reload_code_changes_are_ignored(start_server, tmp_path):
    module = tmp_path / "reload_app.py"
    module.write_text(RELOAD_APP.format(version="one"))
    srv = start_server("reload_app", app_dir=tmp_path)
    (old,) = srv.worker_pids()
    assert get(srv.port).text == "one"
    module.write_text(RELOAD_APP.format(version="two"))
    time.sleep(0.5)
    assert srv.live_worker_pids() == [old]
    assert get(srv.port).text == "one"


# --- inherited sockets: systemd, fd:// -----------------------------------------------------


def listening_socket():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(16)
    return s


# The wrapper makes the socket (given as stdin) fd 3 and sets LISTEN_PID to the pid that
# exec keeps, as systemd does.
SYSTEMD_WRAPPER = ["/bin/sh", "-c",
                   'export LISTEN_PID=$$ LISTEN_FDS=1; exec "$0" "$@" 3<&0 0</dev/null']


def test_systemd_socket_activation(start_server):
    sock = listening_socket()
    port = sock.getsockname()[1]
    try:
        srv = start_server("echo:environ", wrapper=SYSTEMD_WRAPPER,
                           popen={"stdin": sock.fileno()}, env={"GC_TEST_MARK": "x"})
        assert srv.urls == [f"http://127.0.0.1:{port}"]
        assert os.readlink(f"/proc/{srv.pid}/fd/3") == f"socket:[{os.fstat(sock.fileno()).st_ino}]"
        r = requests.get(f"http://127.0.0.1:{port}/", timeout=5)
        assert r.status_code == 200
        assert r.json()["__pid__"] in srv.worker_pids()
        # The variables are consumed: the application does not see them.
        env_seen = requests.get(f"http://127.0.0.1:{port}/", timeout=5).json()["__env__"]
        assert env_seen == {"GC_TEST_MARK": "x"}
        assert srv.stop() == 0
    finally:
        sock.close()


def test_listen_pid_of_another_process_is_ignored(start_server):
    srv = start_server("lifecycle:app", env={"LISTEN_PID": "1", "LISTEN_FDS": "1"})
    assert srv.url.startswith("http://127.0.0.1:")
    assert info(srv.port)["pid"] in srv.worker_pids()


@pytest.mark.parametrize("kind", ["path", "abstract"])
def test_notify_socket_gets_ready(start_server, tmp_path, kind):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    if kind == "path":
        address = name = str(tmp_path / "notify")
    else:
        name = f"@gc-test-notify-{os.getpid()}"
        address = "\0" + name[1:]
    sock.bind(address)
    sock.settimeout(10)
    try:
        srv = start_server("lifecycle:app", env={"NOTIFY_SOCKET": name})
        message = sock.recv(4096).decode()
        assert "READY=1" in message.split("\n")
        # READY comes once the sockets listen.
        assert info(srv.port)["pid"] in srv.worker_pids()
    finally:
        sock.close()


def test_fd_bind(start_server):
    sock = listening_socket()
    port = sock.getsockname()[1]
    fd = sock.fileno()
    try:
        srv = start_server("lifecycle:app", bind=f"fd://{fd}", popen={"pass_fds": (fd,)})
        assert srv.urls == [f"http://127.0.0.1:{port}"]
        assert info(port)["pid"] in srv.worker_pids()
        assert srv.stop() == 0
    finally:
        sock.close()


def test_fd_bind_of_something_not_a_socket_fails(start_server):
    srv = start_server("lifecycle:app", bind="fd://0", wait=False)  # stdin is /dev/null
    assert srv.wait(10) != 0
    assert "fd://0" in srv.log_text()
