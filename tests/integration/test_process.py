"""Files, sockets and titles of the processes: pidfile, unix socket file, process
titles, --preload, --reuse-port.

Split out of test_signals.py (test names unchanged).
"""

import errno
import os
import re
import socket

import pytest

from helpers import get, title


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
