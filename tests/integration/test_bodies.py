"""Big request bodies: received in full by C before the application runs, spooled to an
unlinked temporary file past 1 MiB, so a worker's memory does not grow with the size of
what clients upload; wsgi.input reads them back exactly.

(Small bodies, chunked input and the wsgi.input API on an in-memory body are in
test_basic.py.)
"""

import hashlib
import io
import os

import pytest
import requests

MB = 1 << 20
SANITIZED = bool(os.environ.get("GC_SANITIZED"))


def payload(size):
    """size bytes that are not a short repeating pattern (misplaced blocks would show)."""
    block = os.urandom(MB)
    out = bytearray()
    for i in range(size // MB):
        out += i.to_bytes(4, "big") + block[4:]
    out += block[:size % MB]
    return bytes(out)


def memory(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0]) * 1024
    return out


def server_env():
    # AddressSanitizer keeps freed memory in quarantine (256 MB by default), which would
    # count every 64 KiB read the application made; a small one keeps RSS meaningful.
    if SANITIZED:
        return {"ASAN_OPTIONS": os.environ.get("ASAN_OPTIONS", "") + ":quarantine_size_mb=8"}
    return None


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_100mb_upload_keeps_worker_memory_small(start_server, chunked):
    size = 100 * MB + 12345
    data = payload(size)
    digest = hashlib.sha256(data).hexdigest()
    srv = start_server("bodies:digest", env=server_env())
    url = f"http://127.0.0.1:{srv.port}/"
    assert requests.post(url, data=b"warm-up", timeout=10).status_code == 200
    pid = srv.worker_pids()[0]
    before = memory(pid)
    body = (data[i:i + MB] for i in range(0, size, MB)) if chunked else data
    r = requests.post(url, data=body, timeout=60)
    assert r.status_code == 200, srv.log_text()
    got = r.json()
    assert got["sha256"] == digest
    assert got["length"] == size
    assert got["content_length"] == (None if chunked else str(size))
    assert got["input_terminated"] is True
    assert got["after_end"] == repr([b"", b"", b"", b"", [], []])
    # The peak resident size grew by a small fraction of the body: the spool threshold
    # (1 MiB), a read buffer and the application's own 64 KiB pieces.
    grown = got["VmHWM"] - before["VmHWM"]
    print(f"\n  worker VmHWM {before['VmHWM'] / MB:.1f} MiB before, "
          f"{got['VmHWM'] / MB:.1f} MiB after a {size / MB:.0f} MiB upload "
          f"(VmRSS {got['VmRSS'] / MB:.1f} MiB)")
    assert grown < (32 if SANITIZED else 16) * MB, (before, got)
    # The next request on the worker is unaffected.
    assert requests.post(url, data=b"after", timeout=10).json()["length"] == 5


@pytest.mark.parametrize("limit", [-1, 50, 8192, 100000])
@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_readline_with_limit_over_a_spooled_body(start_server, limit, chunked):
    # 3 MiB of lines of every length from 0 to 20000 bytes: past the spool threshold,
    # so readline scans the temporary file, across its 8 KiB blocks.
    parts, n = [], 0
    while sum(map(len, parts)) < 3 * MB:
        parts.append(bytes([65 + n % 26]) * (n * 7919 % 20001) + b"\n")
        n += 1
    parts.append(b"no newline at the end")
    data = b"".join(parts)
    srv = start_server("bodies:lines")
    url = f"http://127.0.0.1:{srv.port}/?{limit}"
    body = (data[i:i + 50000] for i in range(0, len(data), 50000)) if chunked else data
    got = requests.post(url, data=body, timeout=30).json()
    # What io.BytesIO.readline(limit) gives is the reference.
    ref = io.BytesIO(data)
    pieces = list(iter(lambda: ref.readline(limit), b""))
    assert got["sha256"] == hashlib.sha256(b"".join(pieces)).hexdigest() \
        == hashlib.sha256(data).hexdigest()
    assert got["count"] == len(pieces)
    assert got["longest"] == max(map(len, pieces))
    assert got["after_end"] == "b''"
