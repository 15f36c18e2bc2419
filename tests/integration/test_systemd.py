"""Inherited sockets and systemd: socket activation (LISTEN_FDS), sd_notify
(NOTIFY_SOCKET), fd:// binds.

Split out of test_signals.py (test names unchanged).
"""

import os
import socket

import pytest
import requests

from helpers import info


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
