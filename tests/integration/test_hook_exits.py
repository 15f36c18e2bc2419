"""What a server hook's exception does, hook by hook, as in Gunicorn 26.1; and the
settings hooks see.

Gunicorn calls hooks without a guard of its own, so where a hook is called decides
what its exception means:

- on_starting, when_ready, the first nworkers_changed, on_exit: the master exits with
  SystemExit's status, or 1 (with the traceback) after any other exception;
- pre_fork, child_exit, on_reload, a later nworkers_changed: the master stops, with
  SystemExit's status or 255 ("Unhandled exception in main loop" in Gunicorn);
- pre_exec: the new master started by USR2 exits before it executes; the old one
  serves on;
- post_fork, post_worker_init: the worker exits with SystemExit's status, or 3 (a boot
  error, which stops the master with 3);
- pre_request, post_request: the exception, SystemExit included, is logged and the
  worker serves on. (Gunicorn also answers a request whose pre_request failed with
  a 500 and does not call the application; that is not checked here.)

No exception may outlive the call that raised it: one left pending used to reach the
next call into Python (a worker forked after pre_fork raised SystemExit printed
"SystemError: ... returned a result with an exception set").

Each test writes its config file into tmp_path and serves apps/hello.py.
"""

import os
import re
import signal
import textwrap

import pytest

from conftest import APPS_DIR, BOOTING_RE, LISTENING_RE, run_cli
from helpers import get

PENDING_RE = re.compile(r"exception set|SystemError")


def write_conf(tmp_path, source):
    path = tmp_path / "hooks_conf.py"
    path.write_text("import os, sys\n\n" + textwrap.dedent(source))
    return str(path)


def hook_conf(tmp_path, hook, params, raise_stmt, when="True"):
    """A config file whose `hook` runs `raise_stmt` when `when` holds."""
    return write_conf(tmp_path, f"""
        def {hook}({params}):
            if {when}:
                {raise_stmt}
        """)


def start_failing(start_server, conf, *args):
    """Starts a server that is expected to stop by itself."""
    return start_server("hello:app", "-c", conf, *args, wait=False)


def assert_no_pending_exception(srv):
    log = srv.log_text()
    assert not PENDING_RE.search(log), log


# --- the master, starting ----------------------------------------------------------------


START_CASES = [
    pytest.param("on_starting", "server", "raise SystemExit(3)", 3, id="on_starting-exit3"),
    pytest.param("on_starting", "server", "raise SystemExit()", 0, id="on_starting-exit"),
    pytest.param("on_starting", "server", "sys.exit('cannot start: no database')", 1,
                 id="on_starting-exit-message"),
    pytest.param("on_starting", "server", "raise ValueError('on_starting failed on purpose')", 1,
                 id="on_starting-error"),
    pytest.param("when_ready", "server", "raise SystemExit(5)", 5, id="when_ready-exit5"),
    pytest.param("when_ready", "server", "raise ValueError('when_ready failed on purpose')", 1,
                 id="when_ready-error"),
    pytest.param("nworkers_changed", "server, new, old", "raise SystemExit(4)", 4,
                 id="first_nworkers_changed-exit4"),
    pytest.param("nworkers_changed", "server, new, old",
                 "raise ValueError('nworkers_changed failed on purpose')", 1,
                 id="first_nworkers_changed-error"),
]


@pytest.mark.parametrize("hook, params, raise_stmt, status", START_CASES)
def test_start_up_hook_exception_stops_the_master(start_server, tmp_path, hook, params,
                                                   raise_stmt, status):
    conf = write_conf(tmp_path, f"""
        def {hook}({params}):
            {raise_stmt}

        def on_exit(server):
            print("on_exit was called", file=sys.stderr, flush=True)
        """)
    srv = start_failing(start_server, conf)
    assert srv.wait(10) == status, srv.log_text()
    log = srv.log_text()
    assert not BOOTING_RE.search(log), log
    # Gunicorn never reaches its halt(), hence no on_exit.
    assert "on_exit was called" not in log
    if "ValueError" in raise_stmt:
        assert f"Exception in {hook} hook" in log
        assert "ValueError: " + hook + " failed on purpose" in log
    elif status == 1:
        assert "cannot start: no database" in srv.lines  # printed as Python's exit does
    else:
        assert "Traceback" not in log  # SystemExit is an exit, not an error
    assert_no_pending_exception(srv)


# --- the master's loop -----------------------------------------------------------------------


@pytest.mark.parametrize("raise_stmt, status", [
    ("raise SystemExit(5)", 5),
    ("raise ValueError('pre_fork failed on purpose')", 255),
], ids=["SystemExit", "ValueError"])
def test_pre_fork_exception_stops_the_master_before_it_forks(start_server, tmp_path,
                                                             raise_stmt, status):
    conf = hook_conf(tmp_path, "pre_fork", "server, worker", raise_stmt)
    srv = start_failing(start_server, conf)
    assert srv.wait(10) == status, srv.log_text()
    log = srv.log_text()
    assert not BOOTING_RE.search(log), log  # no worker was forked
    assert "Reason: The pre_fork hook stopped the master." in log
    if status == 255:
        assert "Exception in pre_fork hook" in log
        assert "ValueError: pre_fork failed on purpose" in log
    assert_no_pending_exception(srv)


@pytest.mark.parametrize("raise_stmt, status", [
    ("raise SystemExit(7)", 7),
    ("raise ValueError('child_exit failed on purpose')", 255),
], ids=["SystemExit", "ValueError"])
def test_child_exit_exception_stops_the_master(start_server, tmp_path, raise_stmt, status):
    conf = hook_conf(tmp_path, "child_exit", "server, worker", raise_stmt)
    srv = start_server("hello:app", "-c", conf, workers=2)
    first, second = srv.worker_pids()
    os.kill(first, signal.SIGTERM)
    assert srv.wait(10) == status, srv.log_text()
    log = srv.log_text()
    assert "Reason: The child_exit hook stopped the master." in log
    # The master stopped the other worker rather than leaving it orphaned.
    assert f"Worker exiting (pid: {second})" in log
    assert_no_pending_exception(srv)


def test_on_reload_exception_stops_the_master(start_server, tmp_path):
    conf = hook_conf(tmp_path, "on_reload", "server",
                     "raise RuntimeError('on_reload failed on purpose')")
    srv = start_server("hello:app", "-c", conf)
    srv.send_signal(signal.SIGHUP)
    assert srv.wait(10) == 255, srv.log_text()
    log = srv.log_text()
    assert "Exception in on_reload hook" in log
    assert "RuntimeError: on_reload failed on purpose" in log
    assert len(BOOTING_RE.findall(log)) == 1  # no replacement was forked
    assert_no_pending_exception(srv)


@pytest.mark.parametrize("raise_stmt, status", [
    ("raise SystemExit(6)", 6),
    ("raise ValueError('nworkers_changed failed on purpose')", 255),
], ids=["SystemExit", "ValueError"])
def test_nworkers_changed_exception_on_ttin_stops_the_master(start_server, tmp_path,
                                                             raise_stmt, status):
    # The first call (old is None) succeeds; TTIN's raises.
    conf = hook_conf(tmp_path, "nworkers_changed", "server, new, old", raise_stmt,
                     when="old is not None")
    srv = start_server("hello:app", "-c", conf)
    srv.send_signal(signal.SIGTTIN)
    assert srv.wait(10) == status, srv.log_text()
    assert "Reason: The nworkers_changed hook stopped the master." in srv.log_text()
    assert_no_pending_exception(srv)


@pytest.mark.parametrize("raise_stmt, status", [
    ("raise SystemExit(4)", 4),
    ("raise ValueError('on_exit failed on purpose')", 1),
], ids=["SystemExit", "ValueError"])
def test_on_exit_exception_sets_the_exit_status(start_server, tmp_path, raise_stmt, status):
    conf = hook_conf(tmp_path, "on_exit", "server", raise_stmt)
    srv = start_server("hello:app", "-c", conf)
    srv.send_signal(signal.SIGTERM)
    assert srv.wait(10) == status, srv.log_text()
    assert_no_pending_exception(srv)


@pytest.mark.parametrize("raise_stmt", [
    "raise SystemExit(0)",
    "raise ValueError('pre_exec failed on purpose')",
], ids=["SystemExit", "ValueError"])
def test_pre_exec_exception_ends_the_new_master_only(start_server, tmp_path, raise_stmt):
    conf = hook_conf(tmp_path, "pre_exec", "server", raise_stmt)
    srv = start_server("hello:app", "-c", conf)
    mark = srv.log_mark()
    srv.send_signal(signal.SIGUSR2)
    try:
        srv.wait_for_log(r"New master \(pid:\d+\) exited", since=mark, timeout=10)
    finally:
        # Before the fix the new master executed anyway: stop it with its workers.
        for m in LISTENING_RE.finditer("\n".join(srv.lines[mark:])):
            os.kill(int(m.group(2)), signal.SIGTERM)
    assert len(re.findall(r"Starting gunicorn-c", srv.log_text())) == 1
    assert get(srv).status_code == 200  # the old master serves on
    assert_no_pending_exception(srv)


# --- workers ---------------------------------------------------------------------------------


@pytest.mark.parametrize("hook, params", [
    ("post_fork", "server, worker"),
    ("post_worker_init", "worker"),
], ids=["post_fork", "post_worker_init"])
@pytest.mark.parametrize("raise_stmt, worker_status", [
    ("raise SystemExit(3)", 3),
    ("raise ValueError('the hook failed on purpose')", 3),
], ids=["SystemExit", "ValueError"])
def test_worker_boot_hook_exception_fails_the_boot(start_server, tmp_path, hook, params,
                                                   raise_stmt, worker_status):
    conf = hook_conf(tmp_path, hook, params, raise_stmt)
    srv = start_failing(start_server, conf)
    # The worker exits 3, a boot error: the master stops with 3, as Gunicorn's does.
    assert srv.wait(10) == 3, srv.log_text()
    log = srv.log_text()
    assert f"exited with code {worker_status}." in log
    assert "Reason: Worker failed to boot." in log
    if "ValueError" in raise_stmt:
        assert f"Exception in {hook} hook" in log
        assert "ValueError: the hook failed on purpose" in log
    assert_no_pending_exception(srv)


def test_post_fork_system_exit_status_is_the_workers(start_server, tmp_path):
    """Any other status is the worker's own: the master replaces the worker."""
    conf = hook_conf(tmp_path, "post_fork", "server, worker", "raise SystemExit(5)",
                     when="worker.age == 1")
    srv = start_server("hello:app", "-c", conf)
    srv.wait_for_log(r"Worker \(pid:\d+\) exited with code 5\.")
    srv.wait_for_log(BOOTING_RE, count=2)
    assert get(srv).status_code == 200
    assert_no_pending_exception(srv)


@pytest.mark.parametrize("hook, params", [
    ("pre_request", "worker, req"),
    ("post_request", "worker, req, environ, resp"),
], ids=["pre_request", "post_request"])
def test_request_hook_system_exit_is_logged_and_the_worker_serves_on(start_server, tmp_path,
                                                                     hook, params):
    conf = hook_conf(tmp_path, hook, params, "raise SystemExit(5)",
                     when="req.path == '/fail'")
    srv = start_server("hello:app", "-c", conf)
    worker = srv.worker_pids()[0]
    get(srv, "/fail")
    srv.wait_for_log(rf"Exception in {hook} hook")
    assert "SystemExit: 5" in srv.log_text()
    # The same worker serves the next request normally.
    r = get(srv, "/next")
    assert r.status_code == 200 and r.text == "Hello, World!\n"
    assert srv.live_worker_pids() == [worker]
    assert_no_pending_exception(srv)


# --- what hooks see: the settings --print-config shows ---------------------------------------


DUMP_CONF = """
def when_ready(server):
    # Every setting as Gunicorn's --print-config writes it: str(value), callables
    # as <qualname()>.
    cfg = server.cfg
    lines = []
    for name in sorted(cfg.settings):
        value = getattr(cfg, name)
        if callable(value):
            value = "<{}()>".format(value.__qualname__)
        lines.append("{} = {}".format(name, value))
    lines.append("repr(sendfile) = {!r}".format(cfg.sendfile))
    path = os.environ["GC_TEST_CFG_DUMP"]
    with open(path + ".tmp", "w") as f:
        f.write("\\n".join(lines) + "\\n")
    os.rename(path + ".tmp", path)
"""


def parse_settings(text):
    values = {}
    for line in text.splitlines():
        name, sep, value = line.partition(" = ")
        if sep:
            values[name.strip()] = value
    return values


def test_hooks_see_every_setting_as_print_config_shows_it(start_server, tmp_path):
    conf = write_conf(tmp_path, DUMP_CONF)
    dump = tmp_path / "settings.txt"
    srv = start_server("hello:app", "-c", conf, env={"GC_TEST_CFG_DUMP": str(dump)})
    hooked = parse_settings(dump.read_text())  # when_ready ran before the first fork
    printed = run_cli("-b", srv.bind, "-w", "1", "--chdir", str(APPS_DIR), "-c", conf,
                      "--print-config", "hello:app", cwd="/",
                      env=srv.env)
    assert printed.returncode == 0, printed.stderr
    expected = parse_settings(printed.stdout)
    assert len(expected) > 100
    # The one setting that differs by nature between the two runs.
    del expected["print_config"]
    hooked.pop("print_config")
    assert hooked.pop("repr(sendfile)") == "None"  # not False: the worker does use sendfile
    assert hooked == expected
    assert expected["sendfile"] == "None"
    assert expected["secure_scheme_headers"].startswith("{'X-FORWARDED-PROTOCOL'")
    assert expected["logconfig_dict"] == "{}"
