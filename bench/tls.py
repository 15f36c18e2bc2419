#!/usr/bin/python3
"""tls.py: gunicorn-c against nginx and Gunicorn 26.1 over TLS and HTTP/2.

Makes a throwaway CA and server certificate (RSA 2048, python3-trustme or the openssl
command), then starts each server with one worker pinned to CPU 1, loads it from CPU 0,
and prints per scenario the median of the runs with their spread (min-max), the
worker's CPU time per request (from /proc/<pid>/stat), the client's own CPU use, and
the ratios to nginx and to Gunicorn 26.1 measured in the same run:

    tls-hello       wrk -t1 -c50 over https, keep-alive, the hello app
    tls-handshake   hsload (bench/hsload.c): a new connection and a full TLS handshake
                    per request, 50 in flight, no session resumption
    h2-hello        h2load -c50 -m10 over TLS, ALPN h2
    idle-tls        worker RSS with 1,000 idle TLS connections (handshake done)
    idle-h2         worker RSS with 1,000 idle HTTP/2 connections (preface and
                    SETTINGS exchanged, a PING answered)

    bench/tls.py                       3 runs per scenario and server, 5 s each
    bench/tls.py -r 5 -d 10 --write    the record: also replaces the "TLS and HTTP/2"
                                       section of bench/RESULTS.md
    bench/tls.py --quick               every scenario briefly (1 s, 1 run, 100 idle
                                       connections)
    bench/tls.py --only h2-hello --servers nginx,gunicorn

A server that lacks a feature (a gunicorn-c build without TLS or HTTP/2) gets the row
"not supported by this build" and the run goes on. The script exits non-zero when a
server fails otherwise: does not start, answers wrongly, or answers nothing under load.
Speed is never asserted.
"""

import argparse
import datetime
import json
import os
import platform
import re
import resource
import select
import shlex
import shutil
import signal
import socket
import ssl
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import http.client

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.dont_write_bytecode = True  # importing bench.py leaves no __pycache__ in bench/
import bench  # noqa: E402  (its /proc readings, wrk script, noise guard, machine)
from bench import (APPS, CLIENT_CPU, CLK_TCK, HELLO, PYTHON, ROOT, SERVER_CPU,  # noqa: E402
                   cpu_ticks, free_port, rss_kb, workers)

RESULTS = os.path.join(HERE, "RESULTS.md")
SECTION = "## TLS and HTTP/2"
HSLOAD_C = os.path.join(HERE, "hsload.c")
DEFAULT_GC_BIN = "/work/main/build/gunicorn-c"
GUNICORN26_PLACES = [os.path.join(os.path.dirname(ROOT), "shared", "peers", "gunicorn-26.1"),
                     "/work/shared/peers/gunicorn-26.1"]
PACKAGES = ["nginx", "nghttp2-client", "wrk", "python3-h2", "python3-trustme",
            "libssl-dev", "build-essential"]
SERVERS = ["gunicorn-c", "gunicorn", "nginx"]
LABELS = {"gunicorn-c": "gunicorn-c", "gunicorn": "Gunicorn 26.1", "nginx": "nginx"}
H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
# HTTP/2 frame types and flags used here (RFC 9113 section 6).
DATA, HEADERS, RST_STREAM, SETTINGS, PING, GOAWAY = 0, 1, 3, 4, 6, 7
END_STREAM, ACK, END_HEADERS = 0x1, 0x1, 0x4


class Scenario:
    def __init__(self, name, title, h2, idle=False, tool=None):
        self.name, self.title, self.h2, self.idle, self.tool = name, title, h2, idle, tool


SCENARIOS = [
    Scenario("tls-hello", "hello over TLS, keep-alive (wrk -t1 -c50)", False, tool="wrk"),
    Scenario("tls-handshake", "a full TLS handshake per request (hsload -c50)", False,
             tool="hsload"),
    Scenario("h2-hello", "hello over HTTP/2 and TLS (h2load -c50 -m10)", True, tool="h2load"),
    Scenario("idle-tls", "idle TLS connections: worker RSS", False, idle=True),
    Scenario("idle-h2", "idle HTTP/2 connections: worker RSS", True, idle=True),
]


class Unsupported(Exception):
    """The server runs but does not offer what the scenario needs (TLS, ALPN h2)."""


def log(msg):
    print("tls: " + msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------
# The throwaway CA and server certificate.

def make_certs(tmp):
    """A CA and a certificate for 127.0.0.1 and localhost, both RSA 2048 (the server's
    private-key operation, one per full handshake, then dominates the handshake: the
    client's RSA verification is cheap). Returns the paths and how they were made."""
    paths = {k: os.path.join(tmp, k + ".pem") for k in ("ca", "cert", "key")}
    try:
        import trustme
        ca = trustme.CA()
        leaf = ca.issue_cert("127.0.0.1", "localhost")
        ca.cert_pem.write_to_path(paths["ca"])
        leaf.cert_chain_pems[0].write_to_path(paths["cert"])
        leaf.private_key_pem.write_to_path(paths["key"])
        paths["how"] = "python3-trustme %s (RSA 2048)" % getattr(trustme, "__version__", "")
        return paths
    except ImportError:
        pass
    ca_key = os.path.join(tmp, "ca-key.pem")
    csr = os.path.join(tmp, "cert.csr")
    ext = os.path.join(tmp, "san.ext")
    with open(ext, "w") as f:
        f.write("subjectAltName = IP:127.0.0.1, DNS:localhost\n")

    def openssl(*argv):
        subprocess.run(("openssl",) + argv, check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
            "/CN=tls.py throwaway CA", "-keyout", ca_key, "-out", paths["ca"])
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
            "-keyout", paths["key"], "-out", csr)
    openssl("x509", "-req", "-in", csr, "-CA", paths["ca"], "-CAkey", ca_key,
            "-CAcreateserial", "-days", "2", "-extfile", ext, "-out", paths["cert"])
    paths["how"] = "the openssl command (RSA 2048)"
    return paths


CONTEXTS = {}


def client_context(certs, alpn):
    """The probes' and idle connections' TLS context: verifies the throwaway CA."""
    key = (certs["ca"], tuple(alpn))
    if key not in CONTEXTS:
        ctx = ssl.create_default_context(cafile=certs["ca"])
        ctx.set_alpn_protocols(alpn)
        CONTEXTS[key] = ctx
    return CONTEXTS[key]


# ---------------------------------------------------------------------------------
# Servers: one worker each, TLS with the same certificate, the hello answer.

def gunicorn26():
    for place in GUNICORN26_PLACES:
        if os.path.isdir(os.path.join(place, "gunicorn")):
            return place
    return None


def gunicorn_threads(scenario, args):
    """Gunicorn's gthread worker holds a thread for every HTTP/2 connection and for
    every new TLS connection until its first request: it gets one per connection."""
    return args.idle_conns if scenario.idle else args.connections


def nginx_conf(tmp, port, certs, h2):
    os.chmod(tmp, 0o755)  # the worker runs as nobody when the master is root
    lines = [
        "worker_processes 1;", "daemon off;", "pid %s/nginx.pid;" % tmp,
        "error_log %s/error.log warn;" % tmp,
        "events { worker_connections 4096; }",
        "http {",
        "  access_log off;",
        "  keepalive_requests 1000000;",
        "  keepalive_timeout 300s;",
        "  client_body_temp_path %s/body;" % tmp,
        "  proxy_temp_path %s/proxy;" % tmp,
        "  fastcgi_temp_path %s/fastcgi;" % tmp,
        "  uwsgi_temp_path %s/uwsgi;" % tmp,
        "  scgi_temp_path %s/scgi;" % tmp,
        "  server {",
        "    listen 127.0.0.1:%d ssl%s;" % (port, " http2" if h2 else ""),
        "    ssl_certificate %s;" % certs["cert"],
        "    ssl_certificate_key %s;" % certs["key"],
        # nginx 1.22's default is TLSv1 to TLSv1.2: the Python servers speak TLSv1.3.
        "    ssl_protocols TLSv1.2 TLSv1.3;",
        '    location = / { default_type text/plain; return 200 "Hello, World!"; }',
        "  }",
        "}",
    ]
    path = os.path.join(tmp, "nginx.conf")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


def server_command(name, scenario, port, tmp, certs, args):
    """The command line and the worker class label of NAME for SCENARIO."""
    bind = "127.0.0.1:%d" % port
    conns = str(args.idle_conns * 2 + 100)
    if name == "gunicorn-c":
        cmd = [args.gc_bin, "-w", "1", "-b", bind, "--chdir", APPS,
               "--certfile", certs["cert"], "--keyfile", certs["key"],
               "--keep-alive", "300", "--worker-connections", conns]
        if args.gc_worker != "sync":
            cmd += ["-k", args.gc_worker]
        if scenario.h2:
            cmd += ["--http-protocols", "h2,h1"]
        return cmd + ["hello:app"], args.gc_worker
    if name == "gunicorn":
        cmd = [PYTHON, "-m", "gunicorn", "-w", "1", "-b", bind, "--chdir", APPS,
               "--certfile", certs["cert"], "--keyfile", certs["key"],
               "--keep-alive", "300", "--worker-connections", conns, "--no-control-socket"]
        worker = "sync"
        # Its sync worker serves one connection at a time and closes it after each
        # response: it cannot hold idle connections, nor speak HTTP/2.
        if scenario.h2 or scenario.idle:
            threads = gunicorn_threads(scenario, args)
            cmd += ["-k", "gthread", "--threads", str(threads)]
            worker = "gthread %d threads" % threads
        if scenario.h2:
            cmd += ["--http-protocols", "h2,h1"]
        return cmd + ["hello:app"], worker
    if name == "nginx":
        return ["nginx", "-p", tmp, "-c", nginx_conf(tmp, port, certs, scenario.h2)], \
            "return 200"
    raise ValueError(name)


class Server:
    def __init__(self, name, scenario, certs, args, tmp_root):
        self.name, self.scenario = name, scenario
        self.tmp = tempfile.mkdtemp(prefix="%s-" % name, dir=tmp_root)
        self.port = free_port()
        cmd, self.worker = server_command(name, scenario, self.port, self.tmp, certs, args)
        self.label = LABELS[name] + ("" if name == "nginx" else " " + self.worker)
        self.logpath = os.path.join(self.tmp, "server.log")
        env = dict(os.environ)
        env.pop("VIRTUAL_ENV", None)
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        if name == "gunicorn":
            env["PYTHONPATH"] = args.gunicorn26
        self.started = time.monotonic()
        with open(self.logpath, "wb") as logf:
            self.proc = subprocess.Popen(["taskset", "-c", SERVER_CPU] + cmd, cwd=APPS,
                                         stdout=logf, stderr=subprocess.STDOUT, env=env,
                                         start_new_session=True)

    def wait_ready(self, certs, limit=30.0):
        """Polls until the first request over TLS (and HTTP/2 if the scenario needs it)
        is answered; returns the probe's findings. Raises Unsupported when the server
        runs but answers without TLS or without h2, RuntimeError when it fails."""
        deadline = self.started + limit
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                reason = self.refusal()
                if reason:
                    raise Unsupported(reason)
                raise RuntimeError("%s exited with status %d; its log:\n%s"
                                   % (self.label, self.proc.returncode, self.log_tail()))
            try:
                return probe(self.port, certs, self.scenario.h2)
            except (ConnectionRefusedError, TimeoutError):
                time.sleep(0.005)  # not listening yet, or no worker yet: poll again
            except (ssl.SSLError, ConnectionResetError, http.client.HTTPException) as e:
                raise Unsupported(self.refusal() or "the TLS probe failed: %s" % e)
        raise RuntimeError("%s did not answer within %d s; its log:\n%s"
                           % (self.label, limit, self.log_tail()))

    def refusal(self):
        """The server's own words on a setting it does not apply, if it logged any."""
        for line in self.log_tail().splitlines():
            if re.search(r"not yet active|cannot apply|not supported|unsupported|"
                         r"unrecognized arguments|no such option", line, re.I):
                return re.sub(r"^\[[^]]*\] \[\d+\] (\[\w+\] )?", "", line.strip())
        return None

    def errors_logged(self):
        """The error lines of the server's log (Gunicorn logs one per broken stream)."""
        try:
            with open(self.logpath, errors="replace") as f:
                return sum(1 for line in f if "[ERROR]" in line or "[error]" in line)
        except OSError:
            return 0

    def log_tail(self):
        try:
            with open(self.logpath, errors="replace") as f:
                return "".join(f.readlines()[-30:])
        except OSError:
            return ""

    def workers(self):
        return workers(self.proc.pid)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM if self.name == "nginx" else signal.SIGINT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


# ---------------------------------------------------------------------------------
# Probes: one request over HTTPS/1.1, or over HTTP/2 with the smallest client that
# checks the answer (stdlib only: a hand-encoded HPACK block, frames read by hand).

def probe(port, certs, h2, timeout=5.0):
    """One GET / over TLS; returns {protocol, cipher, alpn}. Raises if the answer is not
    200 with the hello body, Unsupported if h2 is wanted and not negotiated."""
    if h2:
        return probe_h2(port, certs, timeout)
    raw = connect(port, timeout)
    try:
        sock = client_context(certs, ["http/1.1"]).wrap_socket(
            raw, server_hostname="127.0.0.1")
    except BaseException:
        raw.close()
        raise
    try:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % port)
        resp = http.client.HTTPResponse(sock)
        resp.begin()
        body = resp.read()
        if resp.status != 200 or body != HELLO:
            raise RuntimeError("answered %d %r" % (resp.status, body[:60]))
        return {"protocol": sock.version(), "cipher": sock.cipher()[0],
                "alpn": sock.selected_alpn_protocol()}
    finally:
        sock.close()


def frame(ftype, flags, stream, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + \
        struct.pack(">I", stream) + payload


def read_frame(sock):
    head = read_exact(sock, 9)
    length = int.from_bytes(head[:3], "big")
    stream = struct.unpack(">I", head[5:9])[0] & 0x7FFFFFFF
    return head[3], head[4], stream, read_exact(sock, length)


def connect(port, timeout):
    raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return raw


def read_exact(sock, n):
    out = b""
    while len(out) < n:
        chunk = sock.recv(n - len(out))
        if not chunk:
            raise ConnectionResetError("the server closed the connection")
        out += chunk
    return out


def h2_open(port, certs, timeout):
    """A TLS connection with ALPN h2, the preface and SETTINGS exchanged and acknowledged
    both ways, and a PING answered: once the PING comes back, the server has processed
    everything before it. Raises Unsupported when ALPN does not pick h2."""
    raw = connect(port, timeout)
    try:
        sock = client_context(certs, ["h2", "http/1.1"]).wrap_socket(
            raw, server_hostname="127.0.0.1")
    except BaseException:
        raw.close()
        raise
    try:
        if sock.selected_alpn_protocol() != "h2":
            raise Unsupported("ALPN chose %r, not h2" % sock.selected_alpn_protocol())
        sock.sendall(H2_PREFACE + frame(SETTINGS, 0, 0))
        got_settings = got_ack = got_pong = False
        while not (got_settings and got_ack and got_pong):
            ftype, flags, _, payload = read_frame(sock)
            if ftype == SETTINGS and flags & ACK:
                got_ack = True
            elif ftype == SETTINGS:
                # One write for the acknowledgement and the PING (no Nagle wait).
                sock.sendall(frame(SETTINGS, ACK, 0) + frame(PING, 0, 0, b"tls.py!!"))
                got_settings = True
            elif ftype == PING and flags & ACK and payload == b"tls.py!!":
                got_pong = True
            elif ftype == GOAWAY:
                raise RuntimeError("GOAWAY %r" % payload[:40])
        return sock
    except BaseException:
        sock.close()
        raise


def probe_h2(port, certs, timeout):
    sock = h2_open(port, certs, timeout)
    try:
        authority = b"127.0.0.1:%d" % port
        # HPACK: :method GET, :scheme https, :path / from the static table (indexed),
        # :authority as a literal with its name indexed (RFC 7541, appendix A).
        block = b"\x82\x87\x84\x41" + bytes([len(authority)]) + authority
        sock.sendall(frame(HEADERS, END_STREAM | END_HEADERS, 1, block))
        status, body = None, b""
        while True:
            ftype, flags, stream, payload = read_frame(sock)
            if ftype == GOAWAY or (ftype == RST_STREAM and stream == 1):
                raise RuntimeError("the stream was refused (frame type %d)" % ftype)
            if ftype == SETTINGS and not flags & ACK:
                sock.sendall(frame(SETTINGS, ACK, 0))
            if stream != 1:
                continue
            if ftype == HEADERS:
                # ":status 200" is entry 8 of the static table; a server may encode it
                # otherwise, which this probe reads as a failure to look into.
                status = 200 if payload[:1] == b"\x88" else payload[:8]
            elif ftype == DATA:
                body += payload
            if ftype in (HEADERS, DATA) and flags & END_STREAM:
                break
        if status != 200 or body != HELLO:
            raise RuntimeError("answered over h2: status %r, body %r" % (status, body[:60]))
        return {"protocol": sock.version(), "cipher": sock.cipher()[0], "alpn": "h2"}
    finally:
        sock.close()


# ---------------------------------------------------------------------------------
# Load runs: each returns {rps, requests, cpu_ticks, client_cpu, errors, note}.

def wait_quiet():
    """As bench.py: waits up to NOISE["quiet_wait"] s for running compilers to finish,
    and returns whether one still runs (the run is then counted as disturbed)."""
    deadline = time.monotonic() + bench.NOISE["quiet_wait"]
    while bench.NOISE["quiet_wait"] and bench.compiling() and time.monotonic() < deadline:
        time.sleep(1)
        bench.NOISE["waited"] += 1
    return bench.compiling()


def timed(server, cmd, timeout=None):
    """Runs the client CMD pinned to CPU 0; returns its output, the worker CPU ticks
    spent meanwhile and the client's CPU use (share of one CPU over its wall time)."""
    noisy = wait_quiet()
    pids = server.workers()
    before = cpu_ticks(pids)
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    try:
        out = subprocess.run(["taskset", "-c", CLIENT_CPU] + cmd, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise RuntimeError("%s did not finish within %d s against %s"
                           % (cmd[0], timeout, server.label))
    wall = time.monotonic() - t0
    after = cpu_ticks(pids)
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    client = (used.ru_utime + used.ru_stime - usage.ru_utime - usage.ru_stime) / wall
    bench.NOISE["runs"] += 1
    bench.NOISE["disturbed"] += noisy or bench.compiling()
    return out, after - before, client


def run_wrk(server, duration, args):
    sc = bench.Scenario("tls-hello", "hello", "")
    script = bench.wrk_script(server.tmp, sc)
    url = "https://127.0.0.1:%d/" % server.port
    out, ticks, client = timed(server, ["wrk", "-t1", "-c%d" % args.connections,
                                        "-d%ds" % duration, "--latency", "-s", script, url])
    line = [l for l in out.stdout.splitlines() if l.startswith("BENCH ")]
    if out.returncode != 0 or not line:
        raise RuntimeError("wrk failed against %s:\n%s" % (server.label, out.stdout))
    r = json.loads(line[0][6:])
    return {"requests": r["requests"] - r["status"],
            "rps": (r["requests"] - r["status"]) * 1e6 / max(r["duration_us"], 1),
            "cpu_ticks": ticks, "client_cpu": client,
            "errors": r["connect"] + r["read"] + r["write"] + r["status"] + r["timeout"],
            "p99_ms": r["p99_us"] / 1000.0}


def hsload_binary(tmp):
    path = os.path.join(tmp, "hsload")
    subprocess.run(["cc", "-O2", "-o", path, HSLOAD_C, "-lssl", "-lcrypto"], check=True)
    return path


def run_hsload(server, duration, args):
    out, ticks, client = timed(server, [args.hsload, "127.0.0.1", str(server.port),
                                        str(args.connections), str(duration), "/"])
    line = [l for l in out.stdout.splitlines() if l.startswith("HSLOAD ")]
    if out.returncode != 0 or not line:
        raise RuntimeError("hsload failed against %s:\n%s" % (server.label, out.stdout))
    r = json.loads(line[0][7:])
    return {"requests": r["requests"], "rps": r["requests"] * 1e6 / max(r["duration_us"], 1),
            "cpu_ticks": ticks, "client_cpu": client, "errors": r["errors"] + r["status"],
            "resumed": r["resumed"], "tls": "%s %s" % (r["protocol"], r["cipher"])}


def run_h2load(server, duration, args):
    """h2load counts requests (-n): in its timed mode (-D) it aborts the streams in flight
    at the end, and against Gunicorn 26.1 it then sometimes never exits. The count is
    sized from the rate of a first, shorter run on the same server (its warm-up)."""
    if getattr(server, "h2_rate", None) is None:
        server.h2_rate = 0
        first = h2load_once(server, max(args.connections * args.streams * 4, 2000), args)
        server.h2_rate = first["rps"]
    count = max(int(server.h2_rate * duration), args.connections * args.streams)
    return h2load_once(server, count, args)


def h2load_once(server, count, args):
    url = "https://127.0.0.1:%d/" % server.port
    # -N: a connection silent for 10 s is given up (counted as an error) rather than
    # waited for; the timeout is the last resort against a client that never ends.
    out, ticks, client = timed(server, ["h2load", "-t1", "-c%d" % args.connections,
                                        "-m%d" % args.streams, "-n%d" % count, "-N10", url],
                               timeout=60 + 3 * count / max(server.h2_rate or 100, 100))
    text = out.stdout
    m = re.search(r"finished in ([\d.]+)(\w+), ([\d.]+) req/s", text)
    reqs = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, "
                     r"(\d+) failed, (\d+) errored, (\d+) timeout", text)
    proto = re.search(r"Application protocol: (\S+)", text)
    if out.returncode != 0 or not m or not reqs:
        raise RuntimeError("h2load failed against %s:\n%s" % (server.label, text[-2000:]))
    if proto and proto.group(1) != "h2":
        raise Unsupported("h2load negotiated %s, not h2" % proto.group(1))
    secs = float(m.group(1)) * {"s": 1.0, "ms": 1e-3, "us": 1e-6}.get(m.group(2), 1.0)
    ok = int(reqs.group(4))
    return {"requests": ok, "rps": ok / max(secs, 1e-6), "cpu_ticks": ticks,
            "client_cpu": client,
            "errors": int(reqs.group(5)) + int(reqs.group(6)) + int(reqs.group(7))}


LOADS = {"wrk": run_wrk, "hsload": run_hsload, "h2load": run_h2load}


# ---------------------------------------------------------------------------------
# Idle connections: open them from this process, then read the worker's RSS.

def raise_nofile(n):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < n:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(max(n, soft), hard), hard))


def open_idle(port, certs, h2, count, socks):
    """Opens COUNT connections one after the other and adds them to SOCKS, each with the
    TLS handshake complete (HTTP/2: preface, SETTINGS and a PING exchanged)."""
    ctx = client_context(certs, ["http/1.1"])
    for _ in range(count):
        if h2:
            socks.append(h2_open(port, certs, timeout=10))
        else:
            raw = connect(port, 10)
            socks.append(ctx.wrap_socket(raw, server_hostname="127.0.0.1"))
    if not h2:
        settle_tls(socks)


def settle_tls(socks, limit=2.0):
    """A TLS 1.3 client's handshake ends before the server's: the server reads the
    client's Finished afterwards and then sends its session tickets. Waits for those
    tickets on every connection (at most LIMIT s after the last one arrived), so that
    the server is done with every handshake when its RSS is read."""
    waiting = {s.fileno(): s for s in socks if s.version() == "TLSv1.3"}
    for s in waiting.values():
        s.setblocking(False)
    while waiting:
        ready, _, _ = select.select(list(waiting), [], [], limit)
        if not ready:
            break
        for fd in ready:
            s = waiting.pop(fd)
            try:
                s.recv(1)  # consumes the tickets; no application data is expected
            except (ssl.SSLWantReadError, ssl.SSLError, OSError):
                pass


def still_open(socks):
    """How many of SOCKS the server has not closed. What is waiting on them is read
    (session tickets, an HTTP/2 WINDOW_UPDATE, ...): a connection counts as closed when
    the read reaches its end or fails."""
    for s in socks:
        s.setblocking(False)
    ready, _, _ = select.select(socks, [], [], 0) if socks else ([], [], [])
    closed = 0
    for s in ready:
        try:
            while s.recv(65536):
                pass
            closed += 1  # the end of the stream
        except ssl.SSLWantReadError:
            pass  # all read, still open
        except OSError:
            closed += 1
    return len(socks) - closed


def idle_run(name, sc, certs, args, tmp_root):
    """One server start: baseline RSS after a probe, then RSS with args.idle_conns idle
    connections open. Returns the reading, or raises Unsupported / RuntimeError."""
    server = Server(name, sc, certs, args, tmp_root)
    socks = []
    try:
        info = server.wait_ready(certs)
        probe(server.port, certs, sc.h2)
        pids = server.workers()
        base = rss_kb(pids)
        try:
            open_idle(server.port, certs, sc.h2, args.idle_conns, socks)
        except (OSError, RuntimeError) as e:
            raise RuntimeError("%s: opening %d idle connections failed after %d: %s; "
                               "its log:\n%s" % (server.label, args.idle_conns, len(socks),
                                                  e, server.log_tail()))
        if server.proc.poll() is not None or server.workers() != pids:
            raise RuntimeError("%s: its worker changed while connections were opened"
                               % server.label)
        held = rss_kb(pids)
        # A server at its limit may have closed some: they are counted, not charged.
        kept = still_open(socks)
        if kept == 0:
            raise RuntimeError("%s closed every idle connection" % server.label)
        return {"label": server.label, "base_kb": base, "held_kb": held, "kept": kept,
                "per_conn_kb": (held - base) / float(kept), "info": info}
    finally:
        for s in socks:
            s.close()
        server.stop()


# ---------------------------------------------------------------------------------
# The run.

def measure_load(name, sc, certs, args, tmp_root):
    server = Server(name, sc, certs, args, tmp_root)
    try:
        info = server.wait_ready(certs)
        run = LOADS[sc.tool]
        if args.warmup:
            run(server, args.warmup, args)
        runs = []
        for _ in range(args.runs):
            r = run(server, args.duration, args)
            if r["requests"] <= 0:
                raise RuntimeError("%s answered no request of %s under load: %r"
                                   % (server.label, sc.name, r))
            runs.append(r)
        if server.proc.poll() is not None:
            raise RuntimeError("%s exited during the runs" % server.label)
        return {"label": server.label, "runs": runs, "info": info,
                "logged": server.errors_logged()}
    finally:
        server.stop()


def spread(values, fmt):
    values = sorted(values)
    mid = fmt % statistics.median(values)
    if len(values) == 1:
        return mid
    return "%s (%s–%s)" % (mid, fmt % values[0], fmt % values[-1])


def summarise(res):
    runs = res["runs"]
    cpu = [r["cpu_ticks"] * 1e6 / CLK_TCK / max(r["requests"], 1) for r in runs]
    res.update({
        "rps": statistics.median(r["rps"] for r in runs),
        "rps_text": spread([r["rps"] for r in runs], "%.0f"),
        "cpu_us": statistics.median(cpu),
        "cpu_text": spread(cpu, "%.1f"),
        "client": statistics.median(r["client_cpu"] for r in runs),
        "errors": sum(r["errors"] for r in runs),
        "resumed": sum(r.get("resumed", 0) for r in runs),
    })
    return res


def ratio(a, b):
    return "%.2fx" % (a / b) if a and b else "–"


def tls_note(res):
    info = res.get("info") or {}
    note = "%s %s" % (info.get("protocol", "?"), info.get("cipher", "?"))
    if "resumed" in res and res["runs"] and "resumed" in res["runs"][0]:
        note += ", %d resumed" % res["resumed"]
    if res.get("logged"):
        note += "; its log has %d error lines" % res["logged"]
    return note


def load_table(results, scenarios, servers):
    out = ["| scenario | server | req/s, median (min–max) | worker CPU µs/req | vs nginx "
           "| CPU vs nginx | vs Gunicorn 26.1 | client CPU | errors | TLS |",
           "|---|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for sc in scenarios:
        if sc.idle:
            continue
        ngx = results.get((sc.name, "nginx"))
        gun = results.get((sc.name, "gunicorn"))
        ngx = ngx if ngx and "rps" in ngx else None
        gun = gun if gun and "rps" in gun else None
        for name in servers:
            r = results.get((sc.name, name))
            if not r:
                continue
            if "rps" not in r:
                out.append("| %s | %s | %s | | | | | | | |" % (sc.name, r["label"], r["status"]))
                continue
            out.append("| %s | %s | %s | %s | %s | %s | %s | %.0f%% | %d | %s |" % (
                sc.name, r["label"], r["rps_text"], r["cpu_text"],
                ratio(r["rps"], ngx["rps"]) if ngx else "–",
                ratio(r["cpu_us"], ngx["cpu_us"]) if ngx else "–",
                ratio(r["rps"], gun["rps"]) if gun else "–",
                100 * r["client"], r["errors"], tls_note(r)))
    return "\n".join(out)


def idle_table(results, scenarios, servers, args):
    out = ["| scenario | server | connections | worker RSS before MB | with them MB "
           "| KB per connection, median (min–max) | vs nginx |",
           "|---|---|---:|---:|---:|---:|---:|"]
    for sc in scenarios:
        if not sc.idle:
            continue
        ngx = results.get((sc.name, "nginx"))
        ngx = ngx if ngx and "per_conn" in ngx else None
        for name in servers:
            r = results.get((sc.name, name))
            if not r:
                continue
            if "per_conn" not in r:
                out.append("| %s | %s | %s | | | | |" % (sc.name, r["label"], r["status"]))
                continue
            held = "%d" % args.idle_conns
            if r["kept"] < args.idle_conns:
                held = "%d of %d kept open" % (r["kept"], args.idle_conns)
            out.append("| %s | %s | %s | %.1f | %.1f | %s | %s |" % (
                sc.name, r["label"], held, r["base_kb"] / 1024.0,
                r["held_kb"] / 1024.0, r["per_conn_text"],
                ratio(r["per_conn"], ngx["per_conn"]) if ngx else "–"))
    return "\n".join(out)


def targets(results):
    """The issue's targets with the values measured (never asserted)."""
    def get(sc, srv, key):
        r = results.get((sc, srv))
        return r.get(key) if r else None

    rows = []

    def check(text, a, b, goal, lower_is_better=False):
        if not a or not b:
            rows.append("| %s | not measured | |" % text)
            return
        v = a / b
        ok = v <= goal if lower_is_better else v >= goal
        rows.append("| %s | %.2fx | %s |" % (text, v, "met" if ok else "MISSED"))

    check("TLS hello keep-alive: worker CPU/request ≤ 1.3x nginx's",
          get("tls-hello", "gunicorn-c", "cpu_us"), get("tls-hello", "nginx", "cpu_us"),
          1.3, lower_is_better=True)
    check("TLS hello keep-alive: req/s ≥ 10x Gunicorn 26.1 sync",
          get("tls-hello", "gunicorn-c", "rps"), get("tls-hello", "gunicorn", "rps"), 10)
    check("TLS handshakes/s ≥ 0.8x nginx",
          get("tls-handshake", "gunicorn-c", "rps"), get("tls-handshake", "nginx", "rps"), 0.8)
    # When hsload is near 100 % of its CPU the rate is partly the client's ceiling:
    # the worker CPU per handshake is then the fairer comparison.
    check("TLS handshake: worker CPU/handshake ≤ 1.25x nginx's (the same as 0.8x, "
          "free of the client's ceiling)",
          get("tls-handshake", "gunicorn-c", "cpu_us"), get("tls-handshake", "nginx", "cpu_us"),
          1.25, lower_is_better=True)
    check("HTTP/2 hello (h2load -c 50 -m 10): req/s ≥ 0.8x nginx",
          get("h2-hello", "gunicorn-c", "rps"), get("h2-hello", "nginx", "rps"), 0.8)
    check("HTTP/2 hello: req/s ≥ 10x Gunicorn 26.1 (gthread)",
          get("h2-hello", "gunicorn-c", "rps"), get("h2-hello", "gunicorn", "rps"), 10)
    return "| target (gunicorn-c) | measured | |\n|---|---:|---|\n" + "\n".join(rows)


def versions(args):
    def run(cmd, env=None):
        try:
            out = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                 text=True, env=env).stdout.strip().splitlines()
            return out[0] if out else "?"
        except OSError:
            return "?"
    env = dict(os.environ, PYTHONPATH=args.gunicorn26 or "")
    return ", ".join([
        "Python " + platform.python_version() + " (" + ssl.OPENSSL_VERSION + ")",
        "Gunicorn " + run([PYTHON, "-c", "import gunicorn; print(gunicorn.__version__)"], env)
        + " with h2 " + run([PYTHON, "-c", "import h2; print(h2.__version__)"]),
        run(["nginx", "-v"]).replace("nginx version: ", ""),
        run(["wrk", "-v"]).split(" [")[0],
        run(["h2load", "--version"]),
        run(["openssl", "version"]),
    ])


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true",
                   help="every scenario and server briefly: 1 run of 1 s, 100 idle "
                   "connections (checks the script and the servers, numbers not to quote)")
    p.add_argument("--only", help="comma-separated scenarios: " +
                   ",".join(s.name for s in SCENARIOS))
    p.add_argument("--servers", help="comma-separated servers: " + ",".join(SERVERS))
    p.add_argument("-d", "--duration", type=int, default=5, help="seconds per run [5]")
    p.add_argument("-r", "--runs", type=int, default=3,
                   help="runs per scenario and server, median [3; 5 for the record]")
    p.add_argument("-c", "--connections", type=int, default=50,
                   help="client connections of the load scenarios [50]")
    p.add_argument("-m", "--streams", type=int, default=10,
                   help="h2load concurrent streams per connection [10]")
    p.add_argument("--idle-conns", type=int, default=1000,
                   help="idle connections in idle-tls and idle-h2 [1000]")
    p.add_argument("--gc-bin", default=DEFAULT_GC_BIN,
                   help="the gunicorn-c binary to measure [%s]" % DEFAULT_GC_BIN)
    p.add_argument("--gc-worker", default="sync",
                   help="gunicorn-c's worker class [sync]")
    p.add_argument("--gunicorn26", default=gunicorn26(), metavar="DIR",
                   help="where Gunicorn 26.1's package is (PYTHONPATH) [%s]" % gunicorn26())
    p.add_argument("--no-install", action="store_true",
                   help="do not call tools/ensure-packages.sh")
    p.add_argument("--write", action="store_true",
                   help="replace (or append) the section '%s' of bench/RESULTS.md" % SECTION[3:])
    p.add_argument("--note", help="a line to add to the RESULTS.md section (--write)")
    p.add_argument("--quiet-wait", type=int, metavar="SECS",
                   help="before each run, wait up to SECS for running compilers to "
                   "finish [60; --quick: 0]")
    args = p.parse_args(argv)
    args.warmup = 2
    if args.quick:
        args.duration, args.runs, args.warmup, args.idle_conns = 1, 1, 0, 100
    if args.quiet_wait is None:
        args.quiet_wait = 0 if args.quick else 60
    bench.NOISE["quiet_wait"] = args.quiet_wait
    return args


def main(argv):
    args = parse_args(argv)
    scenarios = SCENARIOS
    if args.only:
        names = args.only.split(",")
        unknown = set(names) - {s.name for s in SCENARIOS}
        if unknown:
            sys.exit("tls: unknown scenario(s): " + ", ".join(sorted(unknown)))
        scenarios = [s for s in SCENARIOS if s.name in names]
    servers = SERVERS
    if args.servers:
        servers = args.servers.split(",")
        unknown = set(servers) - set(SERVERS)
        if unknown:
            sys.exit("tls: unknown server(s): " + ", ".join(sorted(unknown)))
    if not args.no_install:
        subprocess.run([os.path.join(ROOT, "tools", "ensure-packages.sh")] + PACKAGES,
                       check=True)
    args.gc_bin = os.path.abspath(args.gc_bin)
    measured = "%s (tree at %s)" % (args.gc_bin, bench.commit())
    os.sched_setaffinity(0, {int(CLIENT_CPU)})
    raise_nofile(args.idle_conns + 200)
    results, failed = {}, []
    tmp_root = tempfile.mkdtemp(prefix="gc-tls-")
    os.chmod(tmp_root, 0o755)
    try:
        certs = make_certs(tmp_root)
        log("certificates: " + certs["how"])
        if any(s.tool == "hsload" for s in scenarios):
            args.hsload = hsload_binary(tmp_root)
        for sc in scenarios:
            for name in servers:
                measure(name, sc, certs, args, tmp_root, results, failed)
    finally:
        shutil.rmtree(tmp_root, ignore_errors=True)
    text = load_table(results, scenarios, servers) + "\n\n" + \
        idle_table(results, scenarios, servers, args)
    text = "\n\n".join(t for t in text.split("\n\n") if t.count("\n") > 1)
    print(text)
    print()
    print(targets(results))
    if args.write:
        write_results(args, argv, text, targets(results), measured, certs["how"])
    if bench.NOISE["disturbed"]:
        log("%d of %d runs overlapped a compiler: their numbers are noisy"
            % (bench.NOISE["disturbed"], bench.NOISE["runs"]))
    if failed:
        log("%d failure(s)" % len(failed))
        return 1
    return 0


def measure(name, sc, certs, args, tmp_root, results, failed):
    """Runs scenario SC on server NAME; stores the result, or a row saying why not."""
    label = LABELS[name]
    if name == "gunicorn-c" and not os.access(args.gc_bin, os.X_OK):
        results[(sc.name, name)] = {"label": label, "status": "not run: no binary at %s"
                                    % args.gc_bin}
        failed.append("no gunicorn-c binary")
        return
    if name == "gunicorn" and not args.gunicorn26:
        results[(sc.name, name)] = {"label": label, "status": "not run: Gunicorn 26.1 "
                                    "not found (--gunicorn26)"}
        failed.append("no Gunicorn 26.1")
        return
    log("%s: %s" % (sc.name, label))
    try:
        if sc.idle:
            runs = [idle_run(name, sc, certs, args, tmp_root) for _ in range(args.runs)]
            per = [r["per_conn_kb"] for r in runs]
            res = dict(runs[len(runs) // 2], per_conn=statistics.median(per),
                       per_conn_text=spread(per, "%.1f"))
            res["base_kb"] = statistics.median(r["base_kb"] for r in runs)
            res["held_kb"] = statistics.median(r["held_kb"] for r in runs)
            res["kept"] = min(r["kept"] for r in runs)
            log("  %-13s %-28s %7.1f KB/connection" % (sc.name, res["label"], res["per_conn"]))
        else:
            res = summarise(measure_load(name, sc, certs, args, tmp_root))
            log("  %-13s %-28s %9.0f req/s  %7.1f us/req  client %3.0f%%"
                % (sc.name, res["label"], res["rps"], res["cpu_us"], 100 * res["client"]))
        results[(sc.name, name)] = res
    except Unsupported as e:
        status = "not supported by this build: %s" % e
        if name != "gunicorn-c":
            status = "not supported: %s" % e
            failed.append(status)
        log("  %s: %s" % (label, status))
        results[(sc.name, name)] = {"label": label, "status": status.replace("|", "\\|")}
    except (RuntimeError, OSError) as e:
        log("FAILED: %s" % e)
        failed.append(str(e))
        results[(sc.name, name)] = {"label": label, "status": "FAILED (see the log)"}


def write_results(args, argv, text, target_text, measured, how):
    cmd = shlex.join(["bench/tls.py"] + argv)
    load = "\n".join(t for t in text.split("\n\n") if "req/s" in t) or "(not run)"
    idle = "\n".join(t for t in text.split("\n\n") if "KB per" in t) or "(not run)"
    doc = [
        SECTION,
        "",
        "The latest run of `bench/tls.py` (bench/README.md says what each scenario "
        "measures and with which client).",
        "",
        "- Date: %s" % datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "- gunicorn-c measured: %s, worker class %s" % (measured, args.gc_worker),
        "- Command: `%s`" % cmd,
        "- Load: clients pinned to CPU %s, each server with one worker pinned to CPU %s; "
        "%d runs of %d s per scenario and server (median, min–max), %d connections "
        "(h2load: %d streams each), %d idle connections; certificate: %s"
        % (CLIENT_CPU, SERVER_CPU, args.runs, args.duration, args.connections,
           args.streams, args.idle_conns, how),
        "- Peers: %s" % versions(args),
        "- Noise: %d of %d load runs overlapped a compiler running on the machine "
        "(the script waited %d s in all for compilers to finish before runs)"
        % (bench.NOISE["disturbed"], bench.NOISE["runs"], bench.NOISE["waited"]),
    ] + (["- Note: " + args.note] if args.note else []) + [
        "- Machine:",
        "",
        bench.machine(),
        "",
        "### Under load",
        "",
        load,
        "",
        "### Idle connections",
        "",
        idle,
        "",
        "### Targets",
        "",
        target_text,
        "",
    ]
    with open(RESULTS) as f:
        old = f.read()
    start = old.find("\n" + SECTION + "\n")
    if start < 0:
        new = old.rstrip("\n") + "\n\n" + "\n".join(doc)
    else:
        nxt = old.find("\n## ", start + len(SECTION) + 2)
        rest = old[nxt:] if nxt >= 0 else ""
        new = old[:start + 1] + "\n".join(doc) + rest
    with open(RESULTS, "w") as f:
        f.write(new)
    log("wrote the section '%s' of %s" % (SECTION[3:], RESULTS))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
