"""gunicorn-c-ctl: the client of gunicorn-c's control socket (Gunicorn's gunicornc).

This file is compiled into the gunicorn-c-ctl executable (src/ctl/main.c) and run by
its embedded interpreter. It speaks the control socket's framing: a 4-byte big-endian
length, then that many bytes of UTF-8 JSON, in both directions. docs/control.md
describes the commands and what they return.
"""

import argparse
import json
import os
import shlex
import socket
import struct
import sys

PROG = "gunicorn-c-ctl"
MAX_FRAME = 16 * 1024 * 1024


def default_socket():
    """The server's default: $XDG_RUNTIME_DIR/gunicorn.ctl, else ~/.gunicorn/."""
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg and os.path.isdir(xdg):
        return os.path.join(xdg, "gunicorn.ctl")
    return os.path.join(os.path.expanduser("~"), ".gunicorn", "gunicorn.ctl")


class ControlError(Exception):
    """The connection failed: one line for the user, exit status 1."""


class Client:
    def __init__(self, path, verbose=False):
        self.path = path
        self.verbose = verbose
        self.sock = None
        self.next_id = 0

    def connect(self):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(self.path)
        except OSError as e:
            sock.close()
            hint = " (is gunicorn-c running?)" if isinstance(
                e, (FileNotFoundError, ConnectionRefusedError)) else ""
            raise ControlError(f"cannot connect to {self.path}: {e.strerror or e}{hint}")
        self.sock = sock

    def close(self):
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def _recv_exact(self, n):
        chunks = []
        while n:
            chunk = self.sock.recv(min(n, 65536))
            if not chunk:
                raise ControlError("the server closed the connection")
            chunks.append(chunk)
            n -= len(chunk)
        return b"".join(chunks)

    def call(self, command):
        """Sends one command; returns the decoded response object."""
        if self.sock is None:
            self.connect()
        self.next_id += 1
        request = {"id": self.next_id, "command": command}
        payload = json.dumps(request).encode("utf-8")
        if self.verbose:
            print(f"> {payload.decode()}", file=sys.stderr)
        try:
            self.sock.sendall(struct.pack(">I", len(payload)) + payload)
            (length,) = struct.unpack(">I", self._recv_exact(4))
            if length > MAX_FRAME:
                raise ControlError(f"response too large ({length} bytes)")
            raw = self._recv_exact(length)
        except OSError as e:
            self.close()
            raise ControlError(f"connection to {self.path} failed: {e.strerror or e}")
        except ControlError:
            self.close()
            raise
        if self.verbose:
            print(f"< {raw.decode('utf-8', 'replace')}", file=sys.stderr)
        try:
            return json.loads(raw)
        except ValueError as e:
            raise ControlError(f"the server sent invalid JSON: {e}")


# --- human output --------------------------------------------------------------------

def fmt(value):
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.1f}"
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return str(value)


def table(headers, rows):
    widths = [len(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip()]
    for row in rows:
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
    return "\n".join(lines)


def kv(data):
    width = max((len(k) for k in data), default=0)
    return "\n".join(f"{(k + ':').ljust(width + 1)} {fmt(v)}" for k, v in data.items())


def show_workers(data):
    rows = []
    for w in data.get("workers", []):
        cur = w.get("current_request")
        current = f"{cur['method']} {cur['path']} ({cur['age']:.1f}s)" if cur else "-"
        rss = w.get("rss_kb")
        rows.append([fmt(w.get("pid")), fmt(w.get("age")), fmt(w.get("state")),
                     fmt(w.get("requests")), fmt(w.get("in_flight")),
                     "-" if rss is None else f"{rss / 1024:.1f}M",
                     f"{w.get('uptime', 0):.0f}s", f"{w.get('last_heartbeat', 0):.1f}s",
                     current])
    head = ["PID", "AGE", "STATE", "REQUESTS", "IN-FLIGHT", "RSS", "UPTIME", "HEARTBEAT",
            "CURRENT REQUEST"]
    return table(head, rows) + f"\n\n{data.get('count', len(rows))} worker(s)"


def show_listeners(data):
    rows = [[fmt(l.get("address")), fmt(l.get("fd")), fmt(l.get("type"))]
            for l in data.get("listeners", [])]
    return table(["ADDRESS", "FD", "TYPE"], rows)


def show_config(data):
    width = max((len(k) for k in data), default=0)
    return "\n".join(f"{k.ljust(width)} = {json.dumps(data[k])}" for k in sorted(data))


def show_help(data):
    cmds = data.get("commands", {})
    width = max((len(k) for k in cmds), default=0)
    return "\n".join(f"{k.ljust(width)}  {v}" for k, v in cmds.items())


def human(command, data):
    words = command.split()
    target = words[1] if len(words) > 1 and words[0] == "show" else None
    if not isinstance(data, dict):
        return fmt(data)
    if target == "workers":
        return show_workers(data)
    if target == "listeners":
        return show_listeners(data)
    if target == "config":
        return show_config(data)
    if target == "all":
        parts = []
        if "stats" in data:
            parts.append(kv(data["stats"]))
        if "workers" in data:
            parts.append(show_workers(data["workers"]))
        if "listeners" in data:
            parts.append(show_listeners(data["listeners"]))
        return "\n\n".join(parts)
    if words and words[0] == "help":
        return show_help(data)
    return kv(data)


def run_one(client, command, as_json):
    """Runs a command and prints its answer. Returns 0, or 1 for an error answer."""
    response = client.call(command)
    if as_json:
        print(json.dumps(response, indent=2))
    if response.get("status") != "ok":
        if not as_json:
            print(f"Error: {response.get('error', 'unknown error')}", file=sys.stderr)
        return 1
    if not as_json:
        print(human(command, response.get("data")))
    return 0


def shell(client, as_json):
    """Reads commands from stdin until EOF, `quit` or `exit`."""
    interactive = sys.stdin.isatty()
    if interactive:
        try:
            import readline  # noqa: F401  (line editing and history for input())
        except ImportError:
            pass
        print(f"Connected to {client.path}. Type 'help' for commands, 'quit' to leave.")
    status = 0
    while True:
        try:
            line = input("gunicorn-c> " if interactive else "")
        except EOFError:
            if interactive:
                print()
            return status
        except KeyboardInterrupt:
            print()
            continue
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line in ("quit", "exit"):
            return status
        try:
            status = run_one(client, line, as_json)
        except ControlError as e:
            print(f"Error: {e}", file=sys.stderr)
            status = 1
            if not interactive:
                return status


def main(argv):
    parser = argparse.ArgumentParser(
        prog=PROG, description="Inspect and manage a running gunicorn-c server through "
        "its control socket. Without -c, reads commands from standard input.")
    parser.add_argument("-s", "--socket", default=None,
                        help=f"the control socket (default: {default_socket()})")
    parser.add_argument("-c", "--command", default=None,
                        help='one command to run, e.g. "show workers"')
    parser.add_argument("-j", "--json", action="store_true", help="print the raw JSON answer")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="show the messages exchanged on standard error")
    args = parser.parse_args(argv)
    client = Client(args.socket or default_socket(), args.verbose)
    try:
        client.connect()
        if args.command is not None:
            return run_one(client, args.command, args.json)
        return shell(client, args.json)
    except ControlError as e:
        print(f"Error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    finally:
        client.close()


if __name__ == "__main__":  # the embedded run, or `python3 ctl.py`
    sys.exit(main(sys.argv[1:]))
