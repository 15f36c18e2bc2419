#!/usr/bin/python3
"""asgi.py: gunicorn-c's ASGI worker (`-k asgi`) against its peers (issue 17).

Each server runs bench/apps/asgi_bench.py with one worker pinned to CPU 1; the load runs
on CPU 0. Servers: gunicorn-c -k asgi, uvicorn (--loop uvloop --http httptools),
hypercorn, daphne and Gunicorn 26.1's own -k asgi (from ../shared/peers/gunicorn-26.1,
uvloop). gunicorn-c is skipped, with a line saying so, while its binary refuses -k asgi.

Scenarios, each on a fresh server:
  hello      raw ASGI hello over keep-alive (wrk -t1 -c50): req/s, p99, and the worker's
             CPU time per request from /proc/PID/stat (the number that matters when wrk,
             not the server, is the ceiling)
  fastapi    FastAPI GET /json (wrk): req/s and CPU per request
  ws-echo    WebSocket echo of 1 KiB binary messages over 100 connections, each sending
             its next message when the echo of the last one arrives and checking the
             echo byte for byte: messages/s and the worker's CPU per message. The load is
             wsload (bench/wsload.c, compiled at run time with cc: one epoll loop on
             wslay, pinned to CPU 0), which needs well under a core where the Python
             clients saturated theirs. Its CPU use is printed, and the worker's busy
             share over the window (the handshakes and the close count in it, so that it
             can read a little over 100%): the worker, not the load, should be the one
             near 100%. If wsload cannot be built
             (or with --ws-python) the load is the older Python clients (the
             `websockets` library, uvloop, four processes on CPU 0), and the run says
             so: at 100% CPU they are the ceiling, and the worker's CPU per message is
             then the number to compare.
  ws-idle    10,000 WebSocket connections opened and left idle on one worker: the
             worker's RSS per connection (RSS after - RSS before, over the count)

    bench/asgi.py                        the full run: 3 x 10 s per scenario and server
    bench/asgi.py --quick                every server and scenario once, 1 s of load,
                                         1,000 idle WebSockets (CI: exits non-zero if a
                                         server fails)
    bench/asgi.py --only hello,ws-echo --servers uvicorn,gunicorn -d 5
    bench/asgi.py --results FILE         also write the tables to FILE (markdown)
    bench/asgi.py --only ws-echo --ws-python   the Python WebSocket clients instead of wsload

Speed is never asserted; the script only measures.
"""

import argparse
import asyncio
import datetime
import json
import os
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import http.client

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import (CLIENT_CPU, CLK_TCK, LUA_DONE, PYTHON, ROOT, SERVER_CPU,  # noqa: E402
                   cpu_ticks, free_port, log, rss_kb, workers)

APPS = os.path.join(ROOT, "bench", "apps")
PEER_GUNICORN = os.path.normpath(os.path.join(ROOT, "..", "shared", "peers", "gunicorn-26.1"))
if not os.path.isdir(PEER_GUNICORN):
    PEER_GUNICORN = "/work/shared/peers/gunicorn-26.1"
SERVERS = ["gunicorn-c", "uvicorn", "hypercorn", "daphne", "gunicorn"]
SCENARIOS = ["hello", "fastapi", "ws-echo", "ws-idle"]
APP_OF = {"hello": "asgi_bench:hello", "fastapi": "asgi_bench:fastapi",
          "ws-echo": "asgi_bench:hello", "ws-idle": "asgi_bench:hello"}
PATH_OF = {"hello": "/", "fastapi": "/json", "ws-echo": "/ws", "ws-idle": "/ws"}
PACKAGES = ["wrk", "python3-uvicorn", "python3-uvloop", "python3-httptools",
            "python3-hypercorn", "daphne", "python3-fastapi", "python3-websockets"]
WS_MESSAGE = 1024
WS_CONNECTIONS = 100
WS_PROCS = 4
WSLOAD_C = os.path.join(ROOT, "bench", "wsload.c")
WS_CLIENT = ["wsload"]  # what loads ws-echo in this run: set by main()


class Refused(Exception):
    """The server cannot run this (gunicorn-c before -k asgi exists)."""


def server_command(name, app, port, gc_bin):
    bind = "127.0.0.1:%d" % port
    if name == "gunicorn-c":
        # --worker-connections bounds a gunicorn-c worker's open connections (1000 by
        # default; Gunicorn's asgi worker does not enforce it): room for ws-idle.
        return [gc_bin, "-k", "asgi", "-w", "1", "-b", bind, "--chdir", APPS,
                "--asgi-loop", "uvloop", "--worker-connections", "20000", app]
    if name == "gunicorn":
        return [PYTHON, "-m", "gunicorn", "-k", "asgi", "-w", "1", "-b", bind,
                "--chdir", APPS, "--asgi-loop", "uvloop", app]
    if name == "uvicorn":
        return [PYTHON, "-m", "uvicorn", "--loop", "uvloop", "--http", "httptools",
                "--ws", "websockets", "--no-access-log", "--log-level", "warning",
                "--host", "127.0.0.1", "--port", str(port), "--app-dir", APPS, app]
    if name == "hypercorn":
        return [PYTHON, "-m", "hypercorn", "-w", "1", "-k", "uvloop", "-b", bind, app]
    if name == "daphne":
        return [PYTHON, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), app]
    raise ValueError(name)


class Server:
    def __init__(self, name, app, gc_bin, tmp_root):
        self.name = name
        self.tmp = tempfile.mkdtemp(prefix="%s-" % name, dir=tmp_root)
        self.port = free_port()
        cmd = server_command(name, app, self.port, gc_bin)
        self.logpath = os.path.join(self.tmp, "server.log")
        env = dict(os.environ)
        env.pop("VIRTUAL_ENV", None)
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        env["PYTHONPATH"] = APPS + (":" + PEER_GUNICORN if name == "gunicorn" else "")
        with open(self.logpath, "wb") as logf:
            self.proc = subprocess.Popen(["taskset", "-c", SERVER_CPU] + cmd, cwd=APPS,
                                         stdout=logf, stderr=subprocess.STDOUT, env=env,
                                         start_new_session=True)

    def wait_ready(self, path, limit=30.0):
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=1)
                conn.request("GET", "/json" if path == "/json" else "/")
                resp = conn.getresponse()
                body = resp.read()
                conn.close()
                if resp.status == 200 and b"Hello, World!" in body:
                    return
                raise RuntimeError("%s answered %d %r" % (self.name, resp.status, body[:80]))
            except (OSError, http.client.HTTPException):
                time.sleep(0.01)  # polling for the listener, not a synchronisation
        tail = self.log_tail()
        if self.name == "gunicorn-c" and "asgi" in tail.lower():
            raise Refused(tail.strip().splitlines()[-1] if tail.strip() else "no output")
        raise RuntimeError("%s did not answer; its log:\n%s" % (self.name, tail))

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
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


# --- HTTP load: wrk ------------------------------------------------------------------------

def run_wrk(server, path, duration, connections):
    script = os.path.join(server.tmp, "done.lua")
    with open(script, "w") as f:
        f.write(LUA_DONE)
    pids = server.workers()
    before = cpu_ticks(pids)
    out = subprocess.run(["taskset", "-c", CLIENT_CPU, "wrk", "-t1", "-c%d" % connections,
                          "-d%ds" % duration, "--latency", "-s", script,
                          "http://127.0.0.1:%d%s" % (server.port, path)],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    after = cpu_ticks(pids)
    line = [x for x in out.stdout.splitlines() if x.startswith("BENCH ")]
    if out.returncode != 0 or not line:
        raise RuntimeError("wrk failed against %s:\n%s" % (server.name, out.stdout))
    r = json.loads(line[0][6:])
    errors = r["connect"] + r["read"] + r["write"] + r["status"] + r["timeout"]
    if r["requests"] == 0:
        raise RuntimeError("%s answered no request under load" % server.name)
    return {"rate": r["requests"] * 1e6 / r["duration_us"], "p99_ms": r["p99_us"] / 1000,
            "cpu_us": (after - before) * 1e6 / CLK_TCK / r["requests"], "errors": errors}


# --- WebSocket load: Python clients in several processes ----------------------------------

async def _echo_client(url, conns, duration, size):
    import websockets
    payload = os.urandom(size)
    count = [0]
    socks = await asyncio.gather(*(websockets.connect(url, max_size=None, compression=None,
                                                      ping_interval=None, close_timeout=2)
                                   for _ in range(conns)))
    # The window starts once every connection is open (interpreter start-up and the
    # handshakes are not part of it).
    start, cpu0 = time.monotonic(), _cpu()
    stop = start + duration

    async def one(ws):
        while time.monotonic() < stop:
            await ws.send(payload)
            got = await ws.recv()
            if len(got) != size:
                raise RuntimeError("echo of %d bytes came back as %d" % (size, len(got)))
            count[0] += 1
    await asyncio.gather(*(one(ws) for ws in socks))
    window, cpu = time.monotonic() - start, _cpu() - cpu0
    await asyncio.gather(*(ws.close() for ws in socks))
    return {"messages": count[0], "window_s": window, "cpu_s": cpu}


def _cpu():
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


async def _idle_client(url, conns):
    import websockets
    socks = []
    for i in range(0, conns, 100):
        socks += await asyncio.gather(*(
            websockets.connect(url, ping_interval=None, close_timeout=1, open_timeout=60)
            for _ in range(min(100, conns - i))))
    print("READY %d" % len(socks), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    for ws in socks:
        ws.transport.abort()


def client_main(argv):
    """`asgi.py --ws-client echo URL CONNS DURATION SIZE` or `... idle URL CONNS`."""
    try:
        import uvloop
        uvloop.install()
    except ImportError:
        pass
    mode, url = argv[0], argv[1]
    if mode == "echo":
        got = asyncio.run(_echo_client(url, int(argv[2]), float(argv[3]), int(argv[4])))
        print(json.dumps(got), flush=True)
    else:
        asyncio.run(_idle_client(url, int(argv[2])))
    return 0


def client_cmd(*args):
    return ["taskset", "-c", CLIENT_CPU, PYTHON, os.path.abspath(__file__), "--ws-client",
            *map(str, args)]


def build_wsload(tmp_root):
    """Compiles bench/wsload.c; returns its path, or None (with a line saying why)."""
    path = os.path.join(tmp_root, "wsload")
    try:
        out = subprocess.run(["cc", "-O2", "-o", path, WSLOAD_C, "-lwslay", "-lcrypto"],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    except OSError as e:
        out = None
        why = str(e)
    if out is not None and out.returncode == 0:
        return path
    if out is not None:
        lines = out.stdout.strip().splitlines()
        why = ([x for x in lines if "error" in x] or lines or ["cc failed"])[0]
    log("wsload could not be built (%s; it needs cc, libwslay-dev and libssl-dev): ws-echo "
        "falls back to the Python clients, which saturate CPU 0 and bound the rate" % why)
    return None


def run_wsload(server, duration, wsload):
    pids = server.workers()
    before = cpu_ticks(pids)  # the handshakes and the close count too: a small part
    out = subprocess.run(["taskset", "-c", CLIENT_CPU, wsload, "127.0.0.1", str(server.port),
                          "/ws", str(WS_CONNECTIONS), str(duration), str(WS_MESSAGE)],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                         timeout=duration + 120)
    after = cpu_ticks(pids)
    line = [x for x in out.stdout.splitlines() if x.startswith("WSLOAD ")]
    if out.returncode != 0 or not line:
        raise RuntimeError("wsload failed against %s:\n%s" % (server.name, out.stdout))
    r = json.loads(line[0][7:])
    if r["errors"] or r["connections"] != WS_CONNECTIONS:
        raise RuntimeError("%s: %d of %d WebSockets opened, %d echoes wrong, %d connections "
                           "failed" % (server.name, r["connections"], WS_CONNECTIONS,
                                       r["mismatched"], r["failed"]))
    if r["messages"] == 0:
        raise RuntimeError("%s echoed no message" % server.name)
    return {"rate": r["messages"] * 1e6 / r["duration_us"],
            "cpu_us": (after - before) * 1e6 / CLK_TCK / r["messages"],
            "client_cpu_pct": 100.0 * r["cpu_us"] / r["duration_us"],
            "worker_cpu_pct": 100.0 * (after - before) / CLK_TCK * 1e6 / r["duration_us"],
            "messages": r["messages"]}


def run_ws_echo(server, duration, wsload=None):
    if wsload:
        return run_wsload(server, duration, wsload)
    url = "ws://127.0.0.1:%d/ws" % server.port
    pids = server.workers()
    before = cpu_ticks(pids)  # the handshakes count too: a small part of the run
    per = WS_CONNECTIONS // WS_PROCS
    procs = [subprocess.Popen(client_cmd("echo", url, per, duration, WS_MESSAGE),
                              stdout=subprocess.PIPE, text=True) for _ in range(WS_PROCS)]
    results = []
    for p in procs:
        out, _ = p.communicate(timeout=duration + 120)
        if p.returncode != 0:
            raise RuntimeError("WebSocket client failed against %s" % server.name)
        results.append(json.loads(out.strip().splitlines()[-1]))
    after = cpu_ticks(pids)
    msgs = sum(r["messages"] for r in results)
    if msgs == 0:
        raise RuntimeError("%s echoed no message" % server.name)
    window = max(r["window_s"] for r in results)
    client_cpu = sum(r["cpu_s"] for r in results)
    return {"rate": sum(r["messages"] / r["window_s"] for r in results),
            "cpu_us": (after - before) * 1e6 / CLK_TCK / msgs,
            "client_cpu_pct": 100.0 * client_cpu / window,
            "worker_cpu_pct": 100.0 * (after - before) / CLK_TCK / window, "messages": msgs}


def run_ws_idle(server, count):
    url = "ws://127.0.0.1:%d/ws" % server.port
    pids = server.workers()
    before = rss_kb(pids)
    procs, per = [], (count + WS_PROCS - 1) // WS_PROCS
    left = count
    for _ in range(WS_PROCS):
        n = min(per, left)
        left -= n
        procs.append(subprocess.Popen(client_cmd("idle", url, n), stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, text=True))
    opened = 0
    try:
        for p in procs:
            line = p.stdout.readline()
            if not line.startswith("READY"):
                raise RuntimeError("%s: idle WebSockets could not all be opened"
                                   % server.name)
            opened += int(line.split()[1])
        after = rss_kb(server.workers())
    finally:
        for p in procs:
            try:
                p.stdin.close()
            except OSError:
                pass
            p.wait(60)
    return {"rate": opened, "rss_kb_per_conn": (after - before) / opened,
            "rss_mb": after / 1024.0}


# --- the run ----------------------------------------------------------------------------------

def measure(name, scenario, args, gc_bin, tmp_root, wsload=None):
    srv = Server(name, APP_OF[scenario], gc_bin, tmp_root)
    try:
        srv.wait_ready(PATH_OF[scenario])
        runs = []
        for _ in range(args.runs):
            if scenario in ("hello", "fastapi"):
                runs.append(run_wrk(srv, PATH_OF[scenario], args.duration, args.connections))
            elif scenario == "ws-echo":
                runs.append(run_ws_echo(srv, args.duration, wsload))
            else:
                runs.append(run_ws_idle(srv, args.idle))
                break  # one measurement: the connections are the load
        if srv.proc.poll() is not None:
            raise RuntimeError("%s exited during the run:\n%s" % (name, srv.log_tail()))
        best = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        return best
    finally:
        srv.stop()


TABLE_HEAD = ("| scenario | server | rate (ws-idle: connections) | worker CPU per request or "
              "message (ws-idle: RSS per connection) | p99, client CPU or RSS | to uvicorn |\n"
              "|---|---|---|---|---|---|")


def fmt_row(scenario, name, r, base):
    if scenario == "ws-idle":
        ratio = (r["rss_kb_per_conn"] / base["rss_kb_per_conn"]
                 if base and base["rss_kb_per_conn"] > 0 else float("nan"))
        return ("| %-10s | %-10s | %8d conns | %8.1f KiB/conn | RSS %.0f MiB "
                "| x%.2f of uvicorn's |" % (scenario, name, r["rate"], r["rss_kb_per_conn"],
                                           r["rss_mb"], ratio))
    rr = r["rate"] / base["rate"] if base else float("nan")
    cr = r["cpu_us"] / base["cpu_us"] if base else float("nan")
    extra = ("p99 %.1f ms" % r["p99_ms"]) if "p99_ms" in r else (
        "%s %.0f%% CPU, worker %.0f%%" % (WS_CLIENT[0], r["client_cpu_pct"],
                                          r["worker_cpu_pct"]))
    unit = "msg/s" if scenario == "ws-echo" else "req/s"
    return ("| %-10s | %-10s | %8.0f %s | %7.1f us CPU | %s "
            "| rate x%.2f, CPU x%.2f of uvicorn's |" % (scenario, name, r["rate"], unit,
                                                       r["cpu_us"], extra, rr, cr))


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="1 run of 1 s, 1,000 idle sockets")
    p.add_argument("--only", help="comma-separated scenarios: " + ",".join(SCENARIOS))
    p.add_argument("--servers", help="comma-separated servers: " + ",".join(SERVERS))
    p.add_argument("-d", "--duration", type=int, default=10, help="seconds per run [10]")
    p.add_argument("-r", "--runs", type=int, default=3, help="runs per scenario, median [3]")
    p.add_argument("-c", "--connections", type=int, default=50, help="wrk connections [50]")
    p.add_argument("--idle", type=int, help="idle WebSockets [10000; 1000 with --quick]")
    p.add_argument("--binary", metavar="PATH", default=os.path.join(ROOT, "build", "gunicorn-c"),
                   help="the gunicorn-c binary [build/gunicorn-c]")
    p.add_argument("--results", metavar="FILE", help="also write the tables to FILE")
    p.add_argument("--ws-python", action="store_true",
                   help="ws-echo load from the Python clients instead of wsload")
    args = p.parse_args(argv)
    if args.quick:
        args.duration, args.runs = 1, 1
    if args.idle is None:
        args.idle = 1000 if args.quick else 10000
    return args


def main(argv):
    if argv[:1] == ["--ws-client"]:
        return client_main(argv[1:])
    args = parse_args(argv)
    scenarios = args.only.split(",") if args.only else SCENARIOS
    servers = args.servers.split(",") if args.servers else SERVERS
    need = args.idle + 1000
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(need, hard), hard))
    tmp_root = tempfile.mkdtemp(prefix="bench-asgi-")
    wsload = None
    if "ws-echo" in scenarios:
        wsload = None if args.ws_python else build_wsload(tmp_root)
        WS_CLIENT[0] = "wsload" if wsload else "Python clients"
        log("ws-echo load: %s" % (
            "wsload (bench/wsload.c), one process on CPU %s" % CLIENT_CPU if wsload else
            "%d Python websockets clients on CPU %s" % (WS_PROCS, CLIENT_CPU)))
    failed, lines = False, []
    for scenario in scenarios:
        results = {}
        for name in servers:
            if name == "gunicorn-c" and not os.access(args.binary, os.X_OK):
                log("gunicorn-c: skipped, no binary at %s" % args.binary)
                continue
            log("%s on %s" % (scenario, name))
            try:
                results[name] = measure(name, scenario, args, args.binary, tmp_root, wsload)
            except Refused as e:
                log("gunicorn-c: skipped, the binary refuses -k asgi (%s)" % e)
            except Exception as e:  # noqa: BLE001 - reported, and the exit status says so
                log("%s on %s FAILED: %s" % (scenario, name, e))
                failed = True
        base = results.get("uvicorn")
        for name, r in results.items():
            lines.append(fmt_row(scenario, name, r, base))
            print(lines[-1], flush=True)
    if args.results:
        with open(args.results, "w") as f:
            now = datetime.datetime.now(datetime.timezone.utc)
            f.write("# ASGI benchmark (bench/asgi.py)\n\n- Date: %s\n"
                    "- Command: `bench/asgi.py %s`\n"
                    "- One worker pinned to CPU %s, load on CPU %s%s\n\n%s\n"
                    % (now.strftime("%Y-%m-%d %H:%M UTC"), " ".join(argv), SERVER_CPU,
                       CLIENT_CPU, ("; ws-echo load: %s" % WS_CLIENT[0])
                       if "ws-echo" in scenarios else "", "\n".join([TABLE_HEAD] + lines)))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
