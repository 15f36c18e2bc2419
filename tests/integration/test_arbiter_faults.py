"""The arbiter where deployments go wrong: who may connect to a unix socket, and what
the log says when a worker dies of SIGKILL.

A unix socket file belongs to the workers' user and group (--user/--group), with the
mode --umask leaves, as in Gunicorn: a front end running in that group connects, other
users do not. That holds for a socket bound at start and for one a HUP binds because
the configuration's `bind` changed.

A worker the master itself kills (still running when --graceful-timeout expires on a
stop, or still alive after a WORKER TIMEOUT and SIGABRT) is logged with that reason;
only a SIGKILL from elsewhere keeps Gunicorn's "Perhaps out of memory?".

The socket tests switch users, so they need root (CI runs as root).
"""

import grp
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile

import pytest

from conftest import BOOTING_RE, CRASH_RE, Server, embedded_python, pid_alive

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="switching users needs root")
# After a HUP the listeners are logged without the master's pid, as Gunicorn does.
RELISTENING_RE = re.compile(r"Listening at: (\S+)$", re.M)
nobody_reads_python = pytest.mark.skipif(
    not embedded_python().others_can_read(),
    reason=f"nobody cannot read the server's Python ({embedded_python().stdlib})")


# --- helpers -----------------------------------------------------------------------------


def ids(user):
    pw = pwd.getpwnam(user)
    return pw.pw_uid, pw.pw_gid


def proxy_group():
    """A group other than nobody's own, as a front end's (nginx runs as www-data)."""
    nobody_gid = ids("nobody")[1]
    for name in ("www-data", "daemon", "bin"):
        try:
            gid = grp.getgrnam(name).gr_gid
        except KeyError:
            continue
        if gid != nobody_gid:
            return name, gid
    pytest.skip("no group other than nobody's to give the socket to")


def user_in_group(gid):
    """A user whose primary group is gid (the front end's own user), or None."""
    for pw in pwd.getpwall():
        if pw.pw_gid == gid and pw.pw_name != "nobody":
            return pw.pw_uid
    return None


# Runs in a child switched to another uid/gid (no supplementary groups): one request
# over the unix socket, printing the response or the connect error's errno name.
CLIENT = r"""
import errno, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(10)
try:
    s.connect(sys.argv[1])
except OSError as e:
    print("connect failed:", errno.errorcode.get(e.errno, e.errno))
    sys.exit(0)
s.sendall(b"GET /as-another-user HTTP/1.0\r\n\r\n")
data = b""
while True:
    chunk = s.recv(65536)
    if not chunk:
        break
    data += chunk
sys.stdout.write(data.decode("latin-1"))
"""


def request_as(path, uid, gid):
    """The response to a request sent over the unix socket at path by uid:gid."""
    out = subprocess.run([sys.executable, "-c", CLIENT, str(path)], user=uid, group=gid,
                         extra_groups=[], capture_output=True, timeout=20, cwd="/")
    assert out.returncode == 0, out.stderr
    return out.stdout.decode("latin-1")  # bytes: text mode would turn CRLF into LF


def assert_served(path, uid, gid, worker_uid):
    response = request_as(path, uid, gid)
    assert response.startswith("HTTP/1.0 200 OK\r\n"), response
    assert '"/as-another-user"' in response
    assert f'"uid": {worker_uid}' in response  # served by a worker switched to nobody


def assert_owned(path, uid, gid, mode):
    st = os.stat(path)
    assert (st.st_uid, st.st_gid) == (uid, gid), (
        f"{path} is {st.st_uid}:{st.st_gid}, want {uid}:{gid}")
    assert oct(st.st_mode & 0o777) == oct(mode)


@pytest.fixture
def public_dir():
    """A directory every user may enter (pytest's tmp_path is root's alone)."""
    path = tempfile.mkdtemp(prefix="gc-faults-")
    os.chmod(path, 0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def config_server():
    """Like start_server, for a server whose `bind` comes from its config file only
    (a -b on the command line would win over the file, on start and on every HUP)."""
    servers = []

    def start(app, *args, **kwargs):
        srv = Server(app, *args, **kwargs)
        assert srv.argv[1] == "-b"
        del srv.argv[1:3]
        servers.append(srv)
        return srv.start()

    yield start
    errors = []
    for srv in servers:
        running = srv.proc.poll() is None
        rc = srv.stop()
        if running and rc != 0:
            errors.append(f"server exited {rc} after SIGTERM:\n{srv.log_text()}")
        if CRASH_RE.search(srv.log_text()):
            errors.append(f"crash report in the log:\n{srv.log_text()}")
    if errors:
        pytest.fail("\n\n".join(errors), pytrace=False)


# --- unix socket ownership ---------------------------------------------------------------


@needs_root
@nobody_reads_python
def test_unix_socket_belongs_to_the_workers_user_and_group(start_server, public_dir):
    uid, _ = ids("nobody")
    group, gid = proxy_group()
    path = os.path.join(public_dir, "app.sock")
    srv = start_server("lifecycle:app", "-u", "nobody", "-g", group, "--umask", "007",
                       bind=f"unix:{path}")
    assert srv.url == f"unix:{path}"
    # The workers' own user connects (to a root:root file with mode 0770 it could not) ...
    assert_served(path, uid, gid, worker_uid=uid)
    # ... and so does a front end whose only tie is the group ...
    front = user_in_group(gid)
    if front is not None:
        assert_served(path, front, gid, worker_uid=uid)
    # ... while --umask 007 keeps out everyone else.
    daemon_uid, daemon_gid = ids("daemon")
    if daemon_gid != gid:
        assert request_as(path, daemon_uid, daemon_gid).strip() == "connect failed: EACCES"
    # Gunicorn's result: srwxrwx--- nobody:<group>.
    assert_owned(path, uid, gid, 0o770)


@needs_root
@nobody_reads_python
def test_user_alone_gives_the_socket_to_its_primary_group(start_server, public_dir):
    uid, gid = ids("nobody")
    path = os.path.join(public_dir, "app.sock")
    start_server("lifecycle:app", "-u", "nobody", "--umask", "0o077", bind=f"unix:{path}")
    # The group the workers switch to; the mode still comes from --umask.
    assert_owned(path, uid, gid, 0o700)
    assert_served(path, uid, gid, worker_uid=uid)


@needs_root
@nobody_reads_python
def test_hup_binds_a_changed_unix_socket_for_the_workers_user(config_server, public_dir):
    uid, _ = ids("nobody")
    group, gid = proxy_group()
    a = os.path.join(public_dir, "a.sock")
    b = os.path.join(public_dir, "b.sock")
    conf = os.path.join(public_dir, "gc.conf.py")

    def configure(*binds):
        with open(conf, "w") as f:
            f.write(f"bind = {[f'unix:{p}' for p in binds]!r}\n"
                    f"user = 'nobody'\ngroup = {group!r}\numask = 0o007\n")

    def hup():
        mark = srv.log_mark()
        srv.send_signal(signal.SIGHUP)
        listening = srv.wait_for_log(RELISTENING_RE, since=mark)
        srv.wait_for_log(BOOTING_RE, since=mark)
        return listening.group(1)

    configure(a)
    srv = config_server("lifecycle:app", "-c", conf)
    assert srv.urls == [f"unix:{a}"]
    assert_owned(a, uid, gid, 0o770)
    inode_a = os.stat(a).st_ino

    # A second address: bound for the workers' user; the first one is kept as it is.
    configure(a, b)
    assert hup() == f"unix:{a},unix:{b}"
    assert_owned(b, uid, gid, 0o770)
    assert os.stat(a).st_ino == inode_a
    assert_served(b, uid, gid, worker_uid=uid)
    assert_served(a, uid, gid, worker_uid=uid)
    inode_b = os.stat(b).st_ino

    # The first address dropped: its socket file goes, the second one stays as it is.
    configure(b)
    assert hup() == f"unix:{b}"
    assert not os.path.exists(a)
    assert os.stat(b).st_ino == inode_b
    assert_served(b, uid, gid, worker_uid=uid)


def get_unix(path):
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(10)
        s.connect(str(path))
        s.sendall(b"GET /unix HTTP/1.0\r\n\r\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    return data


def test_hup_keeps_the_listeners_when_a_new_address_cannot_be_bound(config_server,
                                                                   tmp_path):
    # Unlike Gunicorn, whose master exits on such a reload, leaving its workers behind.
    a, b = tmp_path / "a.sock", tmp_path / "later" / "b.sock"
    conf = tmp_path / "gc.conf.py"
    conf.write_text(f"bind = ['unix:{a}']\n")
    srv = config_server("lifecycle:app", "-c", str(conf))
    inode_a = a.stat().st_ino

    conf.write_text(f"bind = ['unix:{a}', 'unix:{b}']\n")
    mark = srv.log_mark()
    srv.send_signal(signal.SIGHUP)
    srv.wait_for_log(rf"Can't bind unix:{re.escape(str(b))}: No such file or directory",
                     since=mark)
    srv.wait_for_log(r"\[ERROR\] Reload: cannot bind the new addresses; keeping the current "
                     r"listeners", since=mark)
    new = int(srv.wait_for_log(BOOTING_RE, since=mark).group(1))
    assert not RELISTENING_RE.search("\n".join(srv.lines[mark:]))
    assert a.stat().st_ino == inode_a
    assert b'"path": "/unix"' in get_unix(a)

    # The addresses in force are remembered: the same file, once it can be bound, is.
    b.parent.mkdir()
    mark = srv.log_mark()
    srv.send_signal(signal.SIGHUP)
    assert srv.wait_for_log(RELISTENING_RE, since=mark).group(1) == f"unix:{a},unix:{b}"
    srv.wait_for_log(BOOTING_RE, since=mark)
    srv.wait_for_log(rf"Worker exiting \(pid: {new}\)", since=mark)
    assert a.stat().st_ino == inode_a
    for path in (a, b):
        assert b'"path": "/unix"' in get_unix(path)


# --- why a worker died of SIGKILL --------------------------------------------------------


def test_kill_after_the_graceful_timeout_is_not_blamed_on_memory(start_server):
    srv = start_server("lifecycle:stuck", "--graceful-timeout", "1")
    (worker,) = srv.worker_pids()
    with srv.connect(timeout=20) as client:
        client.sendall(b"GET /stuck HTTP/1.1\r\nHost: x\r\n\r\n")
        srv.wait_for_log(rf"stuck request started in {worker}")
        srv.send_signal(signal.SIGTERM)
        assert srv.wait(15) == 0
        try:
            assert client.recv(65536) == b""  # the request died with its worker
        except ConnectionResetError:
            pass
    log = srv.log_text()
    assert re.search(rf"\[ERROR\] Worker \(pid:{worker}\) was sent SIGKILL by the master "
                     r"after the graceful timeout \(1s\)$", log, re.M), log
    assert "Perhaps out of memory?" not in log
    assert not pid_alive(worker)


DEAF_APP = '''
import os, signal, sys, time


def app(environ, start_response):
    """/deaf blocks SIGABRT, then never returns: a WORKER TIMEOUT cannot end it."""
    if environ["PATH_INFO"] == "/deaf":
        signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGABRT])
        sys.stderr.write("deaf request started in %d\\n" % os.getpid())
        sys.stderr.flush()
        time.sleep(1000)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [str(os.getpid()).encode()]
'''


def test_kill_after_the_worker_timeout_is_not_blamed_on_memory(start_server, tmp_path):
    (tmp_path / "deaf.py").write_text(DEAF_APP)
    srv = start_server("deaf:app", "--timeout", "1", app_dir=tmp_path)
    (worker,) = srv.worker_pids()
    with srv.connect(timeout=20) as client:
        client.sendall(b"GET /deaf HTTP/1.1\r\nHost: x\r\n\r\n")
        srv.wait_for_log(rf"deaf request started in {worker}")
        srv.wait_for_log(rf"\[CRITICAL\] WORKER TIMEOUT \(pid:{worker}\)", timeout=10)
        srv.wait_for_log(re.compile(rf"\[ERROR\] Worker \(pid:{worker}\) was sent SIGKILL by "
                                    r"the master after the worker timeout \(1s\)$", re.M),
                         timeout=10)
    srv.wait_for_log(BOOTING_RE, count=2)  # replaced, as after any death
    assert "Perhaps out of memory?" not in srv.log_text()


def test_external_sigkill_still_suggests_memory(start_server):
    srv = start_server("lifecycle:app")
    (worker,) = srv.worker_pids()
    os.kill(worker, signal.SIGKILL)
    srv.wait_for_log(re.compile(
        rf"\[ERROR\] Worker \(pid:{worker}\) was sent SIGKILL! Perhaps out of memory\?$", re.M))
    srv.wait_for_log(BOOTING_RE, count=2)
    assert "by the master" not in srv.log_text()


def test_external_sigkill_during_a_graceful_stop_still_suggests_memory(start_server):
    # The master is waiting out --graceful-timeout, but the SIGKILL is not its own.
    srv = start_server("lifecycle:stuck", "--graceful-timeout", "30")
    (worker,) = srv.worker_pids()
    with srv.connect(timeout=20) as client:
        client.sendall(b"GET /stuck HTTP/1.1\r\nHost: x\r\n\r\n")
        srv.wait_for_log(rf"stuck request started in {worker}")
        mark = srv.log_mark()
        srv.send_signal(signal.SIGTERM)
        srv.wait_for_log(r"Handling signal: term", since=mark)
        os.kill(worker, signal.SIGKILL)
        assert srv.wait(10) == 0
    log = srv.log_text()
    assert re.search(rf"Worker \(pid:{worker}\) was sent SIGKILL! Perhaps out of memory\?$",
                     log, re.M), log
    assert "by the master" not in log
