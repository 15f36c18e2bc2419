"""wsgi.file_wrapper over a real file goes out with sendfile(2), unless --no-sendfile
(or SENDFILE, or `sendfile = False` in a config file) says otherwise.

Which path served a file shows in the worker's /proc/PID/io: sendfile(2) counts as one
read and one write system call per call however many bytes it moves, while iterating
the wrapper reads the file in 8 KiB blocks, one read(2) each. (rchar/wchar cannot tell
the two apart: the kernel counts sendfile's bytes in both.)
"""

import hashlib
import os

import pytest
import requests

SIZE = 16 * 1024 * 1024 + 123
BLOCKS = SIZE // 8192


@pytest.fixture(scope="module")
def big_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("sendfile") / "big.bin"
    block = os.urandom(1 << 20)
    with open(path, "wb") as f:
        for i in range(SIZE >> 20):
            f.write(bytes([i]) + block[1:])
        f.write(block[:SIZE & ((1 << 20) - 1)])
    return path, hashlib.sha256(path.read_bytes()).hexdigest()


def io_counters(pid):
    with open(f"/proc/{pid}/io") as f:
        return {k: int(v) for k, v in (line.split(": ") for line in f)}


def fetch(srv, path):
    """Downloads the file; returns (sha256 of the body, read syscalls in the worker)."""
    pid = srv.worker_pids()[-1]
    before = io_counters(pid)
    r = requests.get(f"http://127.0.0.1:{srv.port}/", params={"path": str(path)}, timeout=30)
    after = io_counters(pid)
    assert r.status_code == 200
    assert len(r.content) == SIZE
    reads = after["syscr"] - before["syscr"]
    if reads < BLOCKS:
        # sendfile knows the length up front; iterating, the body is chunked as in
        # Gunicorn.
        assert r.headers["Content-Length"] == str(SIZE)
    return hashlib.sha256(r.content).hexdigest(), reads


def test_file_wrapper_uses_sendfile(start_server, big_file):
    path, digest = big_file
    srv = start_server("files")
    got, reads = fetch(srv, path)
    assert got == digest
    # A few dozen sendfile calls (each fills the socket buffer), against the 2048 reads
    # that iterating would take.
    assert reads < BLOCKS // 8, reads


@pytest.mark.parametrize("how", ["--no-sendfile", "SENDFILE=0", "config"])
def test_sendfile_off_iterates_the_file(start_server, big_file, tmp_path, how):
    path, digest = big_file
    args, env = [], None
    if how == "--no-sendfile":
        args = ["--no-sendfile"]
    elif how == "SENDFILE=0":
        env = {"SENDFILE": "0"}
    else:
        conf = tmp_path / "conf.py"
        conf.write_text("sendfile = False\n")
        args = ["-c", str(conf)]
    srv = start_server("files", *args, env=env)
    got, reads = fetch(srv, path)
    assert got == digest
    assert reads >= BLOCKS, reads


@pytest.mark.parametrize("value", ["yes", "TRUE", "1", "y"])
def test_sendfile_environment_on(start_server, big_file, value):
    path, digest = big_file
    srv = start_server("files", env={"SENDFILE": value})
    got, reads = fetch(srv, path)
    assert got == digest
    assert reads < BLOCKS // 8, reads


def test_sendfile_config_true_means_on(start_server, big_file, tmp_path):
    # Gunicorn turns sendfile off for any value set in a config file, True included;
    # gunicorn-c takes True at its word.
    path, digest = big_file
    conf = tmp_path / "conf.py"
    conf.write_text("sendfile = True\n")
    srv = start_server("files", "-c", str(conf), env={"SENDFILE": "no"})
    got, reads = fetch(srv, path)
    assert got == digest
    assert reads < BLOCKS // 8, reads
