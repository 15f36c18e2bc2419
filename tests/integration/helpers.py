"""Helpers shared by the integration tests: waiting on events, /proc, plain clients, a
datagram receiver and a control-socket client.

Nothing here sleeps to synchronise: every wait polls (or blocks on) an event and fails
with a message after a generous deadline.
"""

import itertools
import json
import os
import re
import signal
import socket
import struct
import threading
import time

import requests

from conftest import CONTROL_DIR, pid_alive
from rawhttp import Reader, closed_by_peer


# --- waiting -------------------------------------------------------------------------------


def wait_until(predicate, timeout=5.0, interval=0.05, what="condition"):
    """Polls `predicate` until it returns something true; returns that value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met within {timeout}s")
        time.sleep(interval)  # the polling interval, not a synchronisation


def wait_gone(pid, timeout=10.0):
    wait_until(lambda: not pid_alive(pid), timeout, what=f"pid {pid} to exit")


def read_text(path):
    """The file as text ("" while it does not exist); bytes that are not UTF-8 show as
    U+FFFD."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except FileNotFoundError:
        return ""


def wait_in_file(path, regex, timeout=10.0, count=1, srv=None):
    """Waits until `regex` matches `count` times in the file; returns the last match.
    With `srv` (a Server), gives up as soon as that server has exited."""
    pattern = re.compile(regex)

    def found():
        matches = list(pattern.finditer(read_text(path)))
        if len(matches) >= count:
            return matches[count - 1]
        proc = getattr(srv, "proc", None)
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the server exited before {regex!r} was in {path}")
        return None

    try:
        return wait_until(found, timeout, what=f"{regex!r} in {path}")
    except AssertionError as e:
        stderr = f"\nstderr:\n{srv.log_text()}" if hasattr(srv, "log_text") else ""
        raise AssertionError(f"{e}; {regex!r} not found {count}x in {path}:\n"
                             f"{read_text(path)}{stderr}")


# --- processes -----------------------------------------------------------------------------


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


def kill_quietly(pid, sig=signal.SIGKILL):
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


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


# --- clients -------------------------------------------------------------------------------


def free_port(kind=socket.SOCK_STREAM):
    """A port nothing is bound to at the moment (TCP by default, or SOCK_DGRAM)."""
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def url(srv, path="/"):
    """The URL of `path` on `srv` (a Server, or a port number)."""
    port = srv if isinstance(srv, int) else srv.port
    return f"http://127.0.0.1:{port}{path}"


def get(srv, path="/", timeout=10, headers=None):
    """One request on its own connection (`srv` is a Server or a port): tests are about
    the server, not about a client reusing a connection the server has just closed."""
    return requests.get(url(srv, path), headers={"Connection": "close", **(headers or {})},
                        timeout=timeout)


def wait_listening(port, timeout=10.0, proc=None):
    """Waits until a TCP connection to 127.0.0.1:`port` succeeds (for a server whose
    log is not on stderr). With `proc` (a Popen), gives up as soon as it has exited."""
    def accepts():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the process exited ({proc.returncode}) before it "
                                 f"listened on port {port}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            return False

    wait_until(accepts, timeout, what=f"something to listen on port {port}")


def raw_fetch(srv, data, method="GET"):
    """Sends raw request bytes on a new connection and reads one response (a
    rawhttp.Response); `method` is the request's, for HEAD's bodiless framing."""
    with srv.connect() as s:
        s.sendall(data)
        return Reader(s).read_response(method)


def raw_fetch_closed(srv, data):
    """As raw_fetch, and also whether the server closed the connection after that
    response (within rawhttp.CLOSE_TIMEOUT): returns (response, closed)."""
    with srv.connect() as s:
        s.sendall(data)
        resp = Reader(s).read_response()
        return resp, closed_by_peer(s)


def send_raw(srv, data, timeout=5.0):
    """Sends raw bytes on a new connection and returns everything until the server
    closes it (or `timeout` of silence passes)."""
    with srv.connect(timeout=timeout) as s:
        s.sendall(data)
        out = b""
        try:
            while chunk := s.recv(65536):
                out += chunk
        except (socket.timeout, ConnectionResetError):
            pass
    return out


# --- a datagram receiver (StatsD, syslog) --------------------------------------------------


class DatagramReceiver:
    """Collects every datagram on a UDP socket on 127.0.0.1 (or a unix datagram socket
    at `path`) from a thread. `packets` holds them as bytes (str with text=True).

    `barrier()` sends a datagram to itself and waits for it: everything sent to the
    receiver before has been collected once it returns (one socket's queue is FIFO)."""

    BARRIER = b"\0barrier"

    def __init__(self, path=None, text=False):
        family = socket.AF_UNIX if path else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self.sock.bind(path or ("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.path = path
        self.text = text
        self.packets = []
        self._barriers = 0
        self._cond = threading.Condition()
        self._stop = False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    @property
    def address(self):
        """As --statsd-host takes it."""
        if self.path:
            return f"unix://{self.path}"
        return "127.0.0.1:%d" % self.sock.getsockname()[1]

    @property
    def url(self):
        """As --log-syslog-to takes it."""
        if self.path:
            return f"unix://{self.path}#dgram"
        return "udp://127.0.0.1:%d" % self.sock.getsockname()[1]

    def _run(self):
        while not self._stop:
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                return
            with self._cond:
                if data == self.BARRIER:
                    self._barriers += 1
                else:
                    self.packets.append(data.decode("ascii") if self.text else data)
                self._cond.notify_all()

    def wait_for(self, predicate, timeout=10.0, what="datagrams"):
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                value = predicate(self)
                if value:
                    return value
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"no {what} within {timeout}s; received:\n"
                                         + "\n".join(map(repr, self.packets)))
                self._cond.wait(min(remaining, 0.2))

    def wait(self, regex, timeout=10.0, count=1):
        """Waits for `count` packets matching `regex`; returns the last one."""
        if isinstance(regex, (str, bytes)):
            regex = re.compile(regex, re.S)

        def found(r):
            hits = [p for p in r.packets if regex.search(p)]
            return hits[count - 1] if len(hits) >= count else None

        return self.wait_for(found, timeout, what=f"datagram matching {regex.pattern!r}")

    def barrier(self, timeout=10.0):
        with self._cond:
            target = self._barriers + 1
        with socket.socket(self.sock.family, socket.SOCK_DGRAM) as s:
            s.sendto(self.BARRIER, self.sock.getsockname())
        self.wait_for(lambda r: r._barriers >= target, timeout, what="the barrier datagram")

    def close(self):
        self._stop = True
        self._thread.join(2)
        self.sock.close()


# --- the control socket (docs/control.md) ---------------------------------------------------


_sock_names = itertools.count()


def control_path():
    """A fresh, short control-socket path (a unix path must fit in 108 bytes)."""
    return os.path.join(CONTROL_DIR, f"t{os.getpid()}-{next(_sock_names)}.sock")


class Control:
    """A raw client of a master's control socket: 4-byte big-endian length, then JSON."""

    def __init__(self, path, timeout=10.0):
        deadline = time.monotonic() + timeout
        while True:
            self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.s.settimeout(timeout)
            try:
                self.s.connect(path)
                break
            # The file may not exist yet, or exist a moment before the master listens.
            except (FileNotFoundError, ConnectionRefusedError, BlockingIOError):
                self.s.close()
                if time.monotonic() > deadline:
                    raise AssertionError(f"no control socket answers at {path}")
                time.sleep(0.01)  # polling interval
        self._id = 0

    def request(self, command):
        """Sends a command that must succeed; returns its data."""
        self._id += 1
        payload = json.dumps({"id": self._id, "command": command}).encode()
        self.s.sendall(struct.pack(">I", len(payload)) + payload)
        (n,) = struct.unpack(">I", self._exact(4))
        answer = json.loads(self._exact(n))
        assert answer["status"] == "ok", answer
        return answer["data"]

    def _exact(self, n):
        data = b""
        while len(data) < n:
            chunk = self.s.recv(n - len(data))
            if not chunk:
                raise AssertionError("the control socket closed")
            data += chunk
        return data

    def workers(self):
        """The master's worker list (pids, oldest first), as it stands between turns."""
        return [w["pid"] for w in self.request("show workers")["workers"]]

    def settle(self):
        """Returns once the master's loop has gone round at least once since this call:
        it manages its workers (forks, retires, sends the workers gauge) between two
        turns, and answers each request in a turn, so two answers in a row bracket a
        pass of manage_workers."""
        self.request("show stats")
        return self.request("show stats")

    def close(self):
        self.s.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def info(srv, path="/"):
    """What apps/lifecycle.py reports about the worker that served `path` (pid, ppid,
    uid...): `srv` is a Server or a port."""
    r = get(srv, path)
    assert r.status_code == 200, r.text
    return r.json()


def recv_until_closed(sock):
    """Everything the peer sends on sock until it closes its side."""
    data = b""
    while True:
        piece = sock.recv(65536)
        if not piece:
            return data
        data += piece


def trickle_until_closed(s, data, pause=0.25):
    """Sends data one byte at a time, waiting up to `pause` s after each byte for the
    server to close (a slow client; the wait is the behaviour under test). Returns
    (closed, seconds from the first byte)."""
    from rawhttp import closed_by_peer
    start = time.monotonic()
    for i in range(len(data)):
        try:
            s.send(data[i:i + 1])
        except OSError:
            return True, time.monotonic() - start
        if closed_by_peer(s, timeout=pause):
            return True, time.monotonic() - start
    return False, time.monotonic() - start
