"""Server hooks from a config file: each is called at its moment, in the right process,
with Gunicorn-shaped arguments; a hook that raises is logged and the server goes on.

apps/hooks_conf.py defines every hook; each call appends a JSON line (hook name, pid,
what it saw) to a file the test names in $GC_TEST_HOOK_LOG.
"""

import json
import os
import signal

import pytest
import requests

from conftest import APPS_DIR, BOOTING_RE, LISTENING_RE, pid_alive
from helpers import get, url, wait_until

HOOKS_CONF = str(APPS_DIR / "hooks_conf.py")
RAISING_CONF = str(APPS_DIR / "hooks_raising_conf.py")


class Hooks:
    """The records the config file's hooks wrote."""

    def __init__(self, path):
        self.path = path

    def all(self):
        try:
            with open(self.path) as f:
                return [json.loads(line) for line in f if line.strip()]
        except FileNotFoundError:
            return []

    def of(self, hook, **match):
        return [r for r in self.all()
                if r["hook"] == hook and all(r.get(k) == v for k, v in match.items())]

    def names(self):
        return [r["hook"] for r in self.all()]

    def wait(self, hook, timeout=5.0, count=1, **match):
        """Waits until `hook` has been recorded `count` times (with fields equal to
        `match`); returns the last such record."""
        def found():
            records = self.of(hook, **match)
            return records[count - 1] if len(records) >= count else None

        try:
            return wait_until(found, timeout, what=f"hook {hook} {match} called {count}x")
        except AssertionError as e:
            raise AssertionError(f"{e}; calls: {self.all()}") from None


@pytest.fixture
def hooked(start_server, tmp_path):
    """Starts a server with hooks_conf.py; returns (server, Hooks)."""
    def start(*args, conf=HOOKS_CONF, env=None, **kwargs):
        hooks = Hooks(tmp_path / "hooks.jsonl")
        srv = start_server("lifecycle:app", "-c", conf, *args,
                           env={"GC_TEST_HOOK_LOG": str(hooks.path), **(env or {})},
                           **kwargs)
        return srv, hooks
    return start


# --- master start-up -------------------------------------------------------------------


def test_on_starting(hooked):
    srv, hooks = hooked()
    (rec,) = hooks.of("on_starting")
    assert rec["pid"] == rec["server_pid"] == srv.pid
    assert rec["cfg_workers"] == 1 and rec["cfg_timeout"] == 30
    # The first call of all, before any worker exists.
    assert hooks.names()[0] == "on_starting"


def test_when_ready(hooked):
    srv, hooks = hooked()
    rec = hooks.wait("when_ready")
    assert rec["pid"] == rec["server_pid"] == srv.pid
    names = hooks.names()
    assert names.index("on_starting") < names.index("when_ready") < names.index("pre_fork")
    # server.log writes to the server's error log.
    assert f"when_ready hook ran in {srv.pid}" in srv.log_text()


def test_pre_fork_runs_in_the_master(hooked):
    srv, hooks = hooked(workers=2)
    recs = hooks.of("pre_fork")
    assert len(recs) == 2
    assert all(r["pid"] == srv.pid for r in recs)
    assert all(r["worker_pid"] is None for r in recs)  # not forked yet
    assert sorted(r["age"] for r in recs) == [1, 2]
    assert all(r["worker_ppid"] == srv.pid for r in recs)


def test_post_fork_runs_in_the_worker(hooked):
    srv, hooks = hooked(workers=2)
    for pid in srv.worker_pids():
        rec = hooks.wait("post_fork", pid=pid)
        assert rec["worker_pid"] == pid
        assert rec["worker_ppid"] == srv.pid
        assert rec["server_pid"] == srv.pid
    ages = {r["worker_pid"]: r["age"] for r in hooks.of("post_fork")}
    assert sorted(ages.values()) == [1, 2]


def test_post_worker_init_runs_after_the_app_is_loaded(hooked):
    srv, hooks = hooked()
    (worker,) = srv.worker_pids()
    rec = hooks.wait("post_worker_init")
    assert rec["pid"] == rec["worker_pid"] == worker
    assert rec["app_imported"] is True
    assert rec["alive"] is True
    names = [r["hook"] for r in hooks.all() if r["pid"] == worker]
    assert names.index("post_fork") < names.index("post_worker_init")
    srv.wait_for_log(rf"\[{worker}\] \[INFO\] post_worker_init hook ran in {worker}")


# --- requests ------------------------------------------------------------------------------


def test_pre_request(hooked):
    srv, hooks = hooked()
    (worker,) = srv.worker_pids()
    assert get(srv, "/hello?x=1&y=2", headers={"X-Test": "yes"}).status_code == 200
    rec = hooks.wait("pre_request")
    assert rec["pid"] == rec["worker_pid"] == worker
    assert rec["method"] == "GET"
    assert rec["path"] == "/hello"
    assert rec["query"] == "x=1&y=2"
    assert rec["uri"] == "/hello?x=1&y=2"
    assert rec["version"] == [1, 1]
    assert ["X-TEST", "yes"] in rec["headers"]


def test_post_request(hooked):
    srv, hooks = hooked()
    (worker,) = srv.worker_pids()
    assert get(srv, "/after").status_code == 200
    rec = hooks.wait("post_request")
    assert rec["pid"] == worker
    assert rec["path"] == rec["environ_path"] == "/after"
    assert rec["status"] == "200 OK"
    assert ["Content-Type", "application/json"] in rec["resp_headers"]
    names = hooks.names()
    assert names.index("pre_request") < names.index("post_request")


def test_post_request_with_two_arguments_and_raising_hooks(hooked):
    srv, hooks = hooked(conf=RAISING_CONF)
    # pre_request raised: as in Gunicorn 26.1, a 500 without calling the application,
    # and post_request(worker, req) still ran. (A raising when_ready or post_fork stops
    # the server, as Gunicorn's do: test_hook_exits.py.)
    r = get(srv, "/not-served")
    assert r.status_code == 500
    assert hooks.wait("post_request")["path"] == "/not-served"
    # The traceback may reach the log after the response and post_request: wait for it.
    srv.wait_for_log(r"pre_request hook failed on purpose")
    assert "Traceback (most recent call last):" in srv.log_text()
    assert srv.live_worker_pids() == srv.worker_pids()


# --- workers stopping ------------------------------------------------------------------------


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGQUIT], ids=["INT", "QUIT"])
def test_worker_int(hooked, sig):
    srv, hooks = hooked()
    (worker,) = srv.worker_pids()
    assert get(srv).status_code == 200
    os.kill(worker, sig)
    rec = hooks.wait("worker_int")
    assert rec["pid"] == rec["worker_pid"] == worker
    assert rec["alive"] is False
    hooks.wait("worker_exit", pid=worker)
    assert not hooks.of("worker_abort")


def test_worker_abort(hooked):
    srv, hooks = hooked()
    (worker,) = srv.worker_pids()
    assert get(srv).status_code == 200
    os.kill(worker, signal.SIGABRT)
    rec = hooks.wait("worker_abort")
    assert rec["pid"] == rec["worker_pid"] == worker
    srv.wait_for_log(rf"Worker \(pid:{worker}\) exited with code 1\.")
    assert not hooks.of("worker_int")


def test_worker_abort_on_timeout(hooked):
    srv, hooks = hooked("--timeout", "1")
    (worker,) = srv.worker_pids()
    try:
        requests.get(url(srv, "/sleep/20"), timeout=15)
    except requests.RequestException:
        pass
    rec = hooks.wait("worker_abort", timeout=5)
    assert rec["pid"] == worker


def test_worker_exit_runs_in_the_worker(hooked):
    srv, hooks = hooked()
    (worker,) = srv.worker_pids()
    assert get(srv).status_code == 200
    os.kill(worker, signal.SIGTERM)
    rec = hooks.wait("worker_exit")
    assert rec["pid"] == rec["worker_pid"] == worker
    assert rec["server_pid"] == srv.pid
    assert rec["alive"] is False


def test_child_exit_runs_in_the_master(hooked):
    srv, hooks = hooked()
    (worker,) = srv.worker_pids()
    hooks.wait("post_worker_init", pid=worker)
    os.kill(worker, signal.SIGKILL)
    rec = hooks.wait("child_exit")
    assert rec["pid"] == srv.pid
    assert rec["worker_pid"] == worker
    assert rec["alive"] is False
    # The replacement goes through the fork hooks again.
    hooks.wait("pre_fork", count=2)
    hooks.wait("post_worker_init", count=2)


# --- master signals --------------------------------------------------------------------------


def test_nworkers_changed(hooked):
    srv, hooks = hooked(workers=2)
    first = hooks.wait("nworkers_changed")
    assert (first["new"], first["old"]) == (2, None)
    assert first["pid"] == srv.pid
    srv.send_signal(signal.SIGTTIN)
    rec = hooks.wait("nworkers_changed", count=2)
    assert (rec["new"], rec["old"], rec["num_workers"]) == (3, 2, 3)
    srv.send_signal(signal.SIGTTOU)
    rec = hooks.wait("nworkers_changed", count=3)
    assert (rec["new"], rec["old"]) == (2, 3)


def test_on_reload(hooked):
    srv, hooks = hooked()
    (old,) = srv.worker_pids()
    mark = srv.log_mark()
    srv.send_signal(signal.SIGHUP)
    rec = hooks.wait("on_reload")
    assert rec["pid"] == srv.pid
    new = int(srv.wait_for_log(BOOTING_RE, since=mark).group(1))
    hooks.wait("post_worker_init", pid=new)
    hooks.wait("worker_exit", pid=old)
    assert hooks.wait("child_exit", worker_pid=old)["pid"] == srv.pid


def test_hup_rereads_the_config_file(hooked, tmp_path):
    workers_file = tmp_path / "workers"
    workers_file.write_text("1")
    srv, hooks = hooked(env={"GC_TEST_WORKERS_FILE": str(workers_file)}, workers=None)
    assert len(srv.worker_pids()) == 1
    workers_file.write_text("3")
    mark = srv.log_mark()
    srv.send_signal(signal.SIGHUP)
    srv.wait_for_log(BOOTING_RE, since=mark, count=3)
    rec = hooks.wait("on_reload")
    assert rec["cfg_workers"] == 3


def test_pre_exec_runs_in_the_new_master(hooked):
    srv, hooks = hooked()
    mark = srv.log_mark()
    srv.send_signal(signal.SIGUSR2)
    new_master = int(srv.wait_for_log(LISTENING_RE, since=mark).group(2))
    try:
        rec = hooks.wait("pre_exec")
        # Called in the forked child, which then becomes the new master by exec.
        assert rec["pid"] == new_master
        assert rec["server_pid"] == srv.pid
        # The new master runs its own start-up hooks.
        assert hooks.wait("on_starting", count=2)["pid"] == new_master
    finally:
        os.kill(new_master, signal.SIGTERM)
        srv.wait_for_log(rf"New master \(pid:{new_master}\) exited", since=mark)


def test_on_exit(hooked):
    srv, hooks = hooked()
    assert not hooks.of("on_exit")
    srv.send_signal(signal.SIGTERM)
    assert srv.wait(10) == 0
    rec = hooks.wait("on_exit")
    assert rec["pid"] == srv.pid
    assert hooks.names()[-1] == "on_exit"
    assert not pid_alive(srv.pid)
