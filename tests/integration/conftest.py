"""Fixtures for the integration suite: run the real gunicorn-c binary and watch its log.

Every test starts its own server on a free port (``-b 127.0.0.1:0``) with the small WSGI
applications in ``apps/`` on its path, talks to it over real sockets, and leaves it to the
``start_server`` fixture to stop it with SIGTERM and to check that the master and all its
workers are really gone.

The binary is ``$GUNICORN_C_BIN`` (relative paths are taken from the repository root),
``build/gunicorn-c`` by default. Run with the system interpreter::

    /usr/bin/python3 -m pytest -q tests/integration
"""

import json
import os
import re
import signal
import stat
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest

# Servers open a control socket by default, at $XDG_RUNTIME_DIR/gunicorn.ctl: the suite's
# live in a directory of its own rather than in the user's (docs/control.md).
CONTROL_DIR = tempfile.mkdtemp(prefix="gc-ctl-")

REPO_ROOT = Path(__file__).resolve().parents[2]
APPS_DIR = Path(__file__).resolve().parent / "apps"

LISTENING_RE = re.compile(r"Listening at: (\S+) \((\d+)\)")
BOOTING_RE = re.compile(r"Booting worker with pid: (\d+)")
# No test expects a process to crash: a sanitizer report (an ASan+UBSan build run with
# GUNICORN_C_BIN) or a worker killed by a fatal signal fails the test at teardown.
CRASH_RE = re.compile(r"ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:|"
                      r"was sent (Segmentation fault|Aborted|Bus error|Floating point)|"
                      r"was sent SIG(SEGV|BUS|FPE|ILL)!")


def binary_path():
    path = Path(os.environ.get("GUNICORN_C_BIN", "build/gunicorn-c"))
    if not path.is_absolute():
        path = REPO_ROOT / path
    return path


BIN = binary_path()


def run_cli(*args, timeout=10, **kwargs):
    """Runs the binary to completion (for options that never start a server)."""
    return subprocess.run(
        [str(BIN), *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=kwargs.pop("cwd", APPS_DIR),
        env=kwargs.pop("env", server_env()),
        **kwargs,
    )


def server_env(extra=None):
    env = dict(os.environ)
    # Keep the source tree free of __pycache__ and the log free of colour or buffering
    # surprises; settings a test wants go through -e or `extra`.
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["PYTHONUNBUFFERED"] = "1"
    env["XDG_RUNTIME_DIR"] = CONTROL_DIR
    # VIRTUAL_ENV: an activated virtualenv in the shell running pytest would change which
    # Python every test server uses (docs/install.md); test_venv.py sets it on purpose.
    for var in ("PORT", "WEB_CONCURRENCY", "SCRIPT_NAME", "GUNICORN_CMD_ARGS", "PYTHONWARNINGS",
                "VIRTUAL_ENV"):
        env.pop(var, None)
    if extra:
        env.update(extra)
    return env


def pid_alive(pid):
    """True while `pid` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state != "Z"


class Server:
    """One gunicorn-c master process and what it wrote to stderr.

    ``app`` is the APP_MODULE argument; ``args`` are extra command-line options
    (``workers=None`` gives no ``-w``, leaving the count to a config file). By
    default the apps directory (or ``app_dir``) is given with ``--chdir``;
    ``app_dir_flag="--pythonpath"`` uses that option instead. ``bind`` replaces the
    default ``127.0.0.1:0``; ``env`` adds variables to the server's environment.
    ``wrapper`` is a command put in front of the binary (an exec wrapper, e.g. one that
    sets ``LISTEN_PID``); ``popen`` holds extra ``subprocess.Popen`` arguments
    (``pass_fds``, ``stdin``) for tests that hand the server file descriptors.
    """

    def __init__(self, app, *args, workers=1, bind=None, app_dir_flag="--chdir",
                 app_dir=APPS_DIR, env=None, wrapper=None, popen=None):
        self.app = app
        self.workers = workers
        self.bind = bind or "127.0.0.1:0"
        argv = [str(BIN), "-b", self.bind]
        if workers is not None:  # None: leave it to the config file (one by default)
            argv += ["-w", str(workers)]
        if app_dir_flag:
            argv += [app_dir_flag, str(app_dir)]
        argv += list(args)
        if app is not None:
            argv.append(app)
        self.argv = list(wrapper or []) + argv
        self.popen = dict(popen or {})
        self.env = server_env(env)
        self.proc = None
        self.lines = []  # stderr, one decoded line per item
        self.out_lines = []  # stdout
        self._cond = threading.Condition()
        self._eof = False
        self._threads = []
        self.urls = []  # every listener, as logged
        self.url = None  # the first one
        self.port = None
        self.unix_path = None
        self.host = None

    # --- process ----------------------------------------------------------------------

    def start(self, wait=True, timeout=10):
        # cwd is a neutral directory so that --chdir / --pythonpath is what finds the
        # apps (and a failing test cannot be passing by accident through the cwd).
        kwargs = dict(stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                      stderr=subprocess.PIPE, cwd="/", env=self.env)
        kwargs.update(self.popen)
        self.proc = subprocess.Popen(self.argv, **kwargs)
        for stream, sink, is_err in ((self.proc.stderr, self.lines, True),
                                     (self.proc.stdout, self.out_lines, False)):
            t = threading.Thread(target=self._reader, args=(stream, sink, is_err), daemon=True)
            t.start()
            self._threads.append(t)
        if wait:
            self.wait_ready(timeout)
        return self

    def _reader(self, stream, sink, is_err):
        for raw in iter(stream.readline, b""):
            with self._cond:
                sink.append(raw.decode("utf-8", "replace").rstrip("\n"))
                self._cond.notify_all()
        with self._cond:
            if is_err:
                self._eof = True
            self._cond.notify_all()

    def wait_ready(self, timeout=10):
        """Waits for the "Listening at" line and one "Booting worker" line per worker."""
        m = self.wait_for_log(LISTENING_RE, timeout=timeout)
        assert int(m.group(2)) == self.proc.pid, self.log_text()
        # Several listeners are logged on one line, comma-joined (as Gunicorn does).
        self.urls = m.group(1).split(",")
        self.url = self.urls[0]
        for u in self.urls:
            if u.startswith("unix:"):
                self.unix_path = self.unix_path or u[len("unix:"):]
            elif self.port is None:
                host, _, port = u.split("://", 1)[1].rpartition(":")
                self.host = host.strip("[]")
                self.port = int(port)
        self.wait_for_log(BOOTING_RE, timeout=timeout, count=self.workers or 1)

    @property
    def pid(self):
        return self.proc.pid

    def worker_pids(self):
        """Every worker pid the log has announced so far, oldest first."""
        return [int(m.group(1)) for m in BOOTING_RE.finditer(self.log_text())]

    def live_worker_pids(self):
        return [p for p in self.worker_pids() if pid_alive(p)]

    def send_signal(self, sig):
        self.proc.send_signal(sig)

    def wait(self, timeout=10):
        """Waits for the master to exit and returns its exit status."""
        rc = self.proc.wait(timeout=timeout)
        self._join_readers(timeout=timeout)
        return rc

    def _join_readers(self, timeout):
        # Workers share the master's stderr, so EOF also means every worker is gone.
        deadline = time.monotonic() + timeout
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))

    def stop(self, sig=signal.SIGTERM, timeout=10):
        """Stops the server with `sig`; kills it (and fails) if it does not exit in time."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill_all()
                raise AssertionError(
                    f"server did not exit within {timeout}s of signal {sig}:\n{self.log_text()}")
        self._join_readers(timeout=5)
        self.assert_workers_gone()
        return self.proc.returncode

    def kill_all(self):
        for pid in self.worker_pids():
            if pid_alive(pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)

    def assert_workers_gone(self, timeout=5):
        deadline = time.monotonic() + timeout
        while True:
            alive = self.live_worker_pids()
            if not alive:
                return
            if time.monotonic() > deadline:
                self.kill_all()
                raise AssertionError(f"workers {alive} outlived the master:\n{self.log_text()}")
            time.sleep(0.05)

    # --- log ---------------------------------------------------------------------------

    def log_text(self):
        with self._cond:
            return "\n".join(self.lines)

    def stdout_text(self):
        with self._cond:
            return "\n".join(self.out_lines)

    def log_mark(self):
        """A position in the log: pass it as `since` to look only at later lines."""
        with self._cond:
            return len(self.lines)

    def wait_for_log(self, regex, timeout=5.0, count=1, since=0):
        """Waits until `regex` has matched `count` times (in lines from `since` on).

        Returns the last match. Fails with the whole log when it does not happen in
        time, or when stderr closes first (the process is gone)."""
        pattern = re.compile(regex) if isinstance(regex, str) else regex
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                text = "\n".join(self.lines[since:])
                matches = list(pattern.finditer(text))
                if len(matches) >= count:
                    return matches[count - 1]
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._eof:
                    why = "stderr closed" if self._eof else f"{timeout}s passed"
                    raise AssertionError(
                        f"{why} before {count} match(es) of {pattern.pattern!r}; log:\n"
                        + "\n".join(self.lines))
                self._cond.wait(min(remaining, 0.2))

    # --- clients -----------------------------------------------------------------------

    def connect(self, timeout=5.0):
        """A raw client socket to the server's first listener (TCP or unix)."""
        import socket
        if self.url.startswith("unix:"):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(timeout)
            s.connect(self.unix_path)
        else:
            s = socket.create_connection((self.host, self.port), timeout=timeout)
        s.settimeout(timeout)
        return s

    def http_connection(self, timeout=5.0):
        import http.client
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)


@pytest.fixture
def start_server():
    """Returns ``start(app, *args, **kwargs) -> Server``; stops every server at teardown.

    A server still running at teardown is sent SIGTERM and must exit (status 0) with all
    its workers gone; one that a test already stopped is only checked for leftovers."""
    servers = []

    def start(app, *args, wait=True, **kwargs):
        srv = Server(app, *args, **kwargs)
        servers.append(srv)
        srv.start(wait=wait)
        return srv

    yield start

    errors = []
    for srv in servers:
        was_running = srv.proc is not None and srv.proc.poll() is None
        try:
            rc = srv.stop()
        except AssertionError as e:
            errors.append(str(e))
            continue
        if was_running and rc != 0:
            errors.append(f"server exited {rc} after SIGTERM:\n{srv.log_text()}")
        crash = CRASH_RE.search(srv.log_text())
        if crash:
            errors.append(f"crash report in the log ({crash.group(0)}):\n{srv.log_text()}")
    if errors:
        pytest.fail("\n\n".join(errors), pytrace=False)


@pytest.fixture(scope="session", autouse=True)
def _binary_built():
    if not BIN.is_file():
        pytest.exit(f"gunicorn-c binary not found at {BIN}; build it first "
                    "(cmake -B build && cmake --build build)", returncode=2)


# --- the server's own Python ------------------------------------------------------------
#
# The binary embeds whichever CPython it was built against (./dev.sh test builds one per
# CPython it finds), which need not be the interpreter running pytest, nor have the same
# packages. Tests that need a package inside the server say so with
# ``@pytest.mark.server_imports("gevent")`` (or ``pytest.param(..., marks=...)``), or, in a
# module that needs it throughout, ``skip_unless_server_imports("django")`` at the top: they
# skip, naming the interpreter, when the server's Python cannot import it.

OPTIONAL_MODULES = ("gevent", "django", "paste.deploy", "whitenoise", "starlette", "fastapi",
                    "uvloop")

PROBE_APP = '''\
import importlib, json, os, sys
found = []
for name in %r:
    try:
        importlib.import_module(name)
    except Exception:
        continue
    found.append(name)
print("gc-probe " + json.dumps({"version": list(sys.version_info[:3]), "modules": found,
                               "stdlib": os.path.dirname(os.__file__)}))


def app(environ, start_response):
    return []
'''


class EmbeddedPython:
    """The server's CPython: ``version`` (a tuple, None if the probe failed), the
    OPTIONAL_MODULES it can import, and where its standard library is."""

    def __init__(self, version, modules, stdlib=None):
        self.version = version
        self.modules = set(modules)
        self.stdlib = stdlib

    def describe(self):
        return "Python " + ".".join(map(str, self.version)) if self.version else "Python"

    def can_import(self, module):
        # Unknown (no binary, or the probe failed): let the test run and fail loudly.
        return self.version is None or module in self.modules

    def others_can_read(self):
        """Whether a worker switched to another user (``-u nobody``) can still import
        the standard library: not so for one under a private home, say pyenv's in
        /root. True when unknown."""
        if not self.stdlib:
            return True
        path = Path(self.stdlib)
        return bool(os.stat(path).st_mode & stat.S_IROTH) and all(
            os.stat(d).st_mode & stat.S_IXOTH for d in (path, *path.parents))


_embedded = []


def embedded_python():
    """Probes the binary once per session: --check-config loads a tiny app that reports
    sys.version_info and which OPTIONAL_MODULES import."""
    if not _embedded:
        version, modules, stdlib = None, (), None
        if BIN.is_file():
            with tempfile.TemporaryDirectory(prefix="gc-probe-") as tmp:
                Path(tmp, "gc_probe_app.py").write_text(PROBE_APP % (OPTIONAL_MODULES,))
                out = run_cli("--check-config", "--chdir", tmp, "gc_probe_app:app", timeout=60)
            m = re.search(r"^gc-probe (.*)$", out.stdout, re.M)
            if m:
                got = json.loads(m.group(1))
                version, modules, stdlib = tuple(got["version"]), got["modules"], got["stdlib"]
        _embedded.append(EmbeddedPython(version, modules, stdlib))
    return _embedded[0]


def server_lacks(*modules):
    """Why a test needing `modules` in the server cannot run, or None when it can."""
    py = embedded_python()
    missing = [m for m in modules if not py.can_import(m)]
    if missing:
        return f"the server's {py.describe()} cannot import {', '.join(missing)}"
    return None


def skip_unless_server_imports(*modules):
    """At a test module's top: skips the whole module unless the server imports them."""
    reason = server_lacks(*modules)
    if reason:
        pytest.skip(reason, allow_module_level=True)


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "server_imports(*modules): skip unless the server's Python imports them")


def pytest_runtest_setup(item):
    # Every test with "gevent" in its name (or its parameters' ids) needs the package
    # in the server's Python, and cannot run under AddressSanitizer: greenlet switches
    # stacks by copying them, redzones included, which ASan reports as a
    # stack-buffer-underflow inside greenlet itself.
    if "gevent" in item.name.lower():
        if os.environ.get("GC_SANITIZED"):
            pytest.skip("greenlet's stack copying cannot run under AddressSanitizer")
        if server_lacks("gevent"):
            pytest.skip(server_lacks("gevent"))
    for mark in item.iter_markers("server_imports"):
        reason = server_lacks(*mark.args)
        if reason:
            pytest.skip(reason)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """Paths of the certificates and keys of the TLS and HTTP/2 tests (trustme): a CA,
    the server's certificate for localhost and 127.0.0.1, a second one from the same CA
    (rotation), a client certificate, and a second CA with its own server certificate."""
    trustme = pytest.importorskip("trustme")
    d = tmp_path_factory.mktemp("pki")
    ca, ca2 = trustme.CA(), trustme.CA()
    paths = {"dir": d}

    def write(name, blob):
        p = d / name
        blob.write_to_path(str(p))
        paths[name] = str(p)

    write("ca.pem", ca.cert_pem)
    write("ca2.pem", ca2.cert_pem)
    for name, issuer in (("server", ca), ("server_b", ca), ("server2", ca2)):
        leaf = issuer.issue_cert("localhost", "127.0.0.1")
        write(name + ".pem", leaf.private_key_and_cert_chain_pem)
        write(name + "_cert.pem", leaf.cert_chain_pems[0])
        write(name + "_key.pem", leaf.private_key_pem)
    client = ca.issue_cert("client.example.org")
    write("client.pem", client.private_key_and_cert_chain_pem)
    return paths


# --- GC_REQUIRE_ALL: a missing tool is a failure ------------------------------------------
#
# Tests that need a tool or a package (nginx, h2load, h2, trustme, Django, ...) skip
# themselves where it is missing, so that a partial machine can still run the rest. Under
# `./dev.sh test`, which installs every package the suite needs (PACKAGES in dev.sh),
# GC_REQUIRE_ALL=1 turns those skips into failures: a package dropped from the list, or a
# new test needing one that was never added, shows up instead of silently shrinking the
# suite. Skips about the environment stay skips: not root, an AddressSanitizer build, no
# IPv6, a low open-file limit, no other CPython. The skip's reason tells them apart.
REQUIRE_ALL = os.environ.get("GC_REQUIRE_ALL") == "1"
MISSING_TOOL_RE = re.compile(r"could not import|is not installed|cannot import|"
                             r"not importable|is missing|\blacks\b")


def _skip_reason(report):
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2])
    return str(longrepr)


def _require(report):
    if REQUIRE_ALL and report.skipped:
        reason = _skip_reason(report)
        if MISSING_TOOL_RE.search(reason):
            report.outcome = "failed"
            report.longrepr = (f"GC_REQUIRE_ALL=1 and a tool the suite needs is missing: "
                               f"{reason} (dev.sh's PACKAGES should install it)")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    _require(outcome.get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    outcome = yield
    _require(outcome.get_result())
