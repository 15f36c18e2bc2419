"""The master process: workers, signals, boot failures, exit codes and the CLI."""

import os
import re
import signal
import threading
import time

import pytest
import requests

from conftest import BOOTING_RE, pid_alive, run_cli
from helpers import Control, control_path, url
from rawhttp import exchange, request


def worker_pid_of_request(srv, path="/"):
    r = requests.get(url(srv, path), headers={"Connection": "close"}, timeout=5)
    assert r.status_code == 200
    return r.json()["__pid__"]


# --- workers -----------------------------------------------------------------------------


def test_two_workers_both_serve(start_server):
    srv = start_server("echo:environ", workers=2)
    booted = set(srv.worker_pids())
    assert len(booted) == 2
    seen = set()
    deadline = time.monotonic() + 10
    while len(seen) < 2 and time.monotonic() < deadline:
        seen.add(worker_pid_of_request(srv))
    assert seen == booted, f"only {seen} of {booted} served in 10s"


def test_busy_worker_leaves_requests_to_the_other(start_server):
    srv = start_server("shapes:slow", workers=2)
    results = []

    def client():
        r = requests.get(url(srv, "/?0.6"), headers={"Connection": "close"}, timeout=10)
        results.append(r.text)

    threads = [threading.Thread(target=client) for _ in range(2)]
    threads[0].start()
    # The second request connects only once the first is inside a worker's app, so
    # only the idle worker can take it.
    srv.wait_for_log(r"slow request started", count=1)
    threads[1].start()
    for t in threads:
        t.join(10)
    assert len(results) == 2, results
    assert len(set(results)) == 2, f"both requests were served by worker {results[0]}"


def test_killed_worker_is_replaced(start_server):
    srv = start_server("echo:environ")
    (old,) = srv.worker_pids()
    assert worker_pid_of_request(srv) == old
    mark = srv.log_mark()
    os.kill(old, signal.SIGKILL)
    srv.wait_for_log(rf"Worker \(pid:{old}\) was sent SIGKILL!", since=mark)
    new = int(srv.wait_for_log(BOOTING_RE, since=mark).group(1))
    assert new != old
    assert not pid_alive(old)
    assert worker_pid_of_request(srv) == new


def test_worker_exiting_is_replaced_and_others_keep_serving(start_server):
    srv = start_server("echo:environ", workers=2)
    first, second = srv.worker_pids()
    mark = srv.log_mark()
    os.kill(first, signal.SIGTERM)  # a graceful stop of one worker only
    srv.wait_for_log(rf"Worker exiting \(pid: {first}\)", since=mark)
    new = int(srv.wait_for_log(BOOTING_RE, since=mark).group(1))
    assert new not in (first, second)
    assert set(srv.live_worker_pids()) == {second, new}
    deadline = time.monotonic() + 10
    seen = set()
    while seen != {second, new} and time.monotonic() < deadline:
        seen.add(worker_pid_of_request(srv))
    assert seen == {second, new}


def test_worker_stuck_longer_than_timeout_is_replaced(start_server):
    srv = start_server("shapes:slow", "--timeout", "1")
    (old,) = srv.worker_pids()
    mark = srv.log_mark()
    try:
        requests.get(url(srv, "/?3"), timeout=10)
    except requests.exceptions.ConnectionError:
        pass
    # The replacement follows at once; the margin is for a loaded machine (0.1 s
    # failed while other tests ran beside this one).
    srv.wait_for_log(rf"WORKER TIMEOUT \(pid:{old}\)", since=mark, timeout=2)
    new = int(srv.wait_for_log(BOOTING_RE, since=mark, timeout=2).group(1))
    assert new != old


# --- signals -----------------------------------------------------------------------------


def test_term_stops_gracefully(start_server):
    srv = start_server("hello", workers=2)
    workers = srv.worker_pids()
    assert requests.get(url(srv), timeout=5).status_code == 200
    srv.send_signal(signal.SIGTERM)
    assert srv.wait(10) == 0
    log = srv.log_text()
    assert "Handling signal: term" in log
    for pid in workers:
        assert f"Worker exiting (pid: {pid})" in log
    assert re.search(r"\[INFO\] Shutting down: Master", log)
    assert not any(pid_alive(p) for p in workers)


def test_term_closes_idle_keep_alive_connections(start_server):
    srv = start_server("hello", "--keep-alive", "30")
    with srv.connect() as s:
        resp = exchange(s, request())
        assert resp.header("Connection") == "keep-alive"
        start = time.monotonic()
        srv.send_signal(signal.SIGTERM)
        s.settimeout(5)
        assert s.recv(65536) == b""  # closed, not left waiting for 30s
    assert srv.wait(10) == 0
    assert time.monotonic() - start < 3


def test_term_lets_a_running_request_finish(start_server):
    srv = start_server("shapes:slow")
    result = {}

    def client():
        r = requests.get(url(srv, "/?0.8"), timeout=10)
        result["status"], result["body"] = r.status_code, r.text

    t = threading.Thread(target=client)
    t.start()
    srv.wait_for_log(r"slow request started")
    srv.send_signal(signal.SIGTERM)
    t.join(10)
    assert result.get("status") == 200, srv.log_text()
    assert result["body"] == str(srv.worker_pids()[0])
    assert srv.wait(10) == 0


def test_graceful_timeout_kills_stuck_workers(start_server):
    srv = start_server("shapes:slow", "--graceful-timeout", "1")
    outcome = []

    def client():
        try:
            requests.get(url(srv, "/?20"), timeout=30)
            outcome.append("answered")
        except requests.exceptions.ConnectionError:
            outcome.append("dropped")

    t = threading.Thread(target=client, daemon=True)
    t.start()
    srv.wait_for_log(r"slow request started")
    start = time.monotonic()
    srv.send_signal(signal.SIGTERM)
    srv.wait(10)
    assert time.monotonic() - start < 5, "the stuck worker was not killed after 1s"
    assert "Shutting down: Master" in srv.log_text()
    t.join(5)
    # The worker was killed mid-request: the client sees its connection drop.
    assert outcome == ["dropped"]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGQUIT], ids=["INT", "QUIT"])
def test_quick_stop(start_server, sig):
    srv = start_server("hello", workers=2)
    workers = srv.worker_pids()
    assert requests.get(url(srv), timeout=5).status_code == 200
    srv.send_signal(sig)
    assert srv.wait(10) == 0
    name = signal.Signals(sig).name[3:].lower()
    log = srv.log_text()
    assert f"Handling signal: {name}" in log
    assert "Shutting down: Master" in log
    assert not any(pid_alive(p) for p in workers)


def test_master_stops_accepting_after_term(start_server):
    srv = start_server("hello")
    port = srv.port
    srv.send_signal(signal.SIGTERM)
    assert srv.wait(10) == 0
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(f"http://127.0.0.1:{port}/", timeout=2)


# --- boot failures -----------------------------------------------------------------------


def test_missing_module_exits_3(start_server):
    srv = start_server("no_such_module_here", wait=False)
    assert srv.wait(15) == 3
    log = srv.log_text()
    assert "ModuleNotFoundError" in log
    assert "no_such_module_here" in log
    assert "Shutting down: Master" in log
    assert "Reason: Worker failed to boot." in log


def test_module_raising_on_import_exits_3(start_server):
    srv = start_server("import_error", wait=False)
    assert srv.wait(15) == 3
    log = srv.log_text()
    assert "this module refuses to import" in log
    assert "Reason: Worker failed to boot." in log


def test_missing_attribute_exits_4(start_server):
    srv = start_server("hello:nope", wait=False)
    assert srv.wait(15) == 4
    log = srv.log_text()
    assert "Failed to find attribute 'nope' in 'hello'." in log
    assert "Reason: App failed to load." in log


@pytest.mark.parametrize("target, message", [
    ("hello:not_callable", "Application object must be callable."),
    ("hello:nothing", "Failed to find application object: 'nothing'"),
])
def test_unusable_app_object_exits_4(start_server, target, message):
    srv = start_server(target, wait=False)
    assert srv.wait(15) == 4
    log = srv.log_text()
    assert message in log
    assert "Reason: App failed to load." in log


# --- command line ------------------------------------------------------------------------


def test_version():
    out = run_cli("-v")
    assert out.returncode == 0
    assert re.fullmatch(r"gunicorn-c \(version \d+\.\d+\.\d+\)\n", out.stdout), out.stdout
    assert run_cli("--version").stdout == out.stdout


def test_help():
    out = run_cli("-h")
    assert out.returncode == 0
    assert out.stdout.startswith("usage:")
    for flag in ("-b ADDRESS, --bind ADDRESS", "-w INT, --workers INT", "--chdir",
                 "--pythonpath", "-e ENV, --env ENV", "--log-level", "--timeout",
                 "--graceful-timeout", "--keep-alive", "--limit-request-line"):
        assert flag in out.stdout, flag


def test_bad_int_is_usage_error():
    out = run_cli("-w", "x", "hello")
    assert out.returncode == 2
    assert "invalid int value: 'x'" in out.stderr
    assert "usage:" in out.stderr


def test_unknown_option_is_usage_error():
    out = run_cli("--no-such-option", "hello")
    assert out.returncode == 2
    assert "unrecognized arguments: --no-such-option" in out.stderr


def test_no_app_module():
    out = run_cli("-b", "127.0.0.1:0")
    assert out.returncode == 1
    assert "Error: No application module specified." in out.stderr


def test_bad_bind_address_fails():
    out = run_cli("-b", "127.0.0.1:notaport", "hello")
    assert out.returncode != 0
    assert "127.0.0.1:notaport" in out.stderr


def test_bad_env_value():
    out = run_cli("-e", "NO_EQUALS_SIGN", "hello")
    assert out.returncode == 1
    assert "NO_EQUALS_SIGN" in out.stderr


def test_sync_worker_class_accepted(start_server):
    srv = start_server("hello", "-k", "sync")
    srv.wait_for_log(r"Using worker: sync")
    assert requests.get(url(srv), timeout=5).text == "Hello, World!\n"


def test_log_level_warning_hides_info(start_server):
    sock = control_path()
    srv = start_server("hello", "--log-level", "warning", "--control-socket", sock,
                       wait=False)
    # No INFO line tells that it is ready: its control socket answering does (it opens
    # once the workers are forked, so the master's signal handlers are in place).
    with Control(sock) as ctl:
        assert ctl.request("show stats")["pid"] == srv.pid
    assert srv.proc.poll() is None
    assert "[INFO]" not in srv.log_text()
    srv.send_signal(signal.SIGTERM)
    assert srv.wait(10) == 0
    assert "[INFO]" not in srv.log_text()
