#!/usr/bin/python3
"""bench.py: gunicorn-c against its peers under one wrk load (issue 9).

Builds gunicorn-c in Release mode into build-bench/, then, for every application and
worker class, starts each server that can serve it with one worker pinned to CPU 1,
runs the scenarios of that application on it with `wrk -t1 -c50` pinned to CPU 0, and
prints per scenario the median req/s, the p99
latency, the worker's CPU time per request (from /proc/<pid>/stat) and the ratios to
Gunicorn and to nginx measured in the same run; then, per server, the time from start
to the first answered request and the worker's RSS at start, after 10k and after 200k
requests. bench/README.md says what each number means.

    bench/bench.py                      the full run: 3 x 10 s per scenario and server
    bench/bench.py --quick              every server and scenario probed, 1 s of load
                                        each (CI: exits non-zero if a server fails)
    bench/bench.py --only hello,close --servers gunicorn-c,nginx -d 5

Speed is never asserted: the script only measures. It exits non-zero when a server does
not start, answers a probe wrongly, or answers no request under load.
"""

import argparse
import datetime
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import http.client

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
APPS = os.path.join(ROOT, "bench", "apps")
PYTHON = "/usr/bin/python3"
NGINX_ECHO = "/usr/lib/nginx/modules/ngx_http_echo_module.so"
SERVER_CPU = "1"
CLIENT_CPU = "0"
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024
POST_BODY = b"p" * 1024
BIG_LEN = 16384
HELLO = b"Hello, World!"
PACKAGES = ["wrk", "nginx", "gunicorn", "python3-gevent", "python3-django", "uwsgi",
            "uwsgi-plugin-python3", "python3-waitress", "cmake", "libuv1-dev",
            "node-llhttp", "python3-dev", "pkg-config", "build-essential"]

SERVERS = ["gunicorn-c", "gunicorn", "uwsgi", "waitress", "nginx"]


class Group:
    """One server start: an application and a worker class; several scenarios run on it."""

    def __init__(self, name, module, worker, servers, leak=False):
        self.name, self.module, self.worker = name, module, worker
        self.servers, self.leak = servers, leak


class Scenario:
    def __init__(self, name, group, title, path="/", close=False, pipeline=1, post=False,
                 expect=HELLO):
        self.name, self.group, self.title, self.path = name, group, title, path
        self.close, self.pipeline, self.post, self.expect = close, pipeline, post, expect


ALL = ["gunicorn-c", "gunicorn", "uwsgi", "waitress", "nginx"]
WSGI = ["gunicorn-c", "gunicorn", "uwsgi", "waitress"]
GROUPS = {
    "hello": Group("hello", "hello:app", "sync", ALL, leak=True),
    "big": Group("big", "big:app", "sync", ALL),
    "echo": Group("echo", "echo:app", "sync", ALL),
    "django": Group("django", None, "sync", WSGI),
    # uWSGI's gevent loop is a separate Debian plugin (not installed); waitress has none.
    "gevent": Group("gevent", "hello:app", "gevent", ["gunicorn-c", "gunicorn"]),
    "gthread": Group("gthread", "hello:app", "gthread", WSGI),
}
SCENARIOS = [
    Scenario("hello", "hello", "hello, keep-alive"),
    Scenario("close", "hello", "hello, Connection: close", close=True),
    Scenario("pipeline", "hello", "hello, 16-deep pipelining", pipeline=16),
    Scenario("16k", "big", "16 KiB response", path="/16k", expect=b"x" * BIG_LEN),
    Scenario("post", "echo", "1 KiB POST echo", path="/echo", post=True, expect=POST_BODY),
    Scenario("django", "django", "Django view, full stack"),
    Scenario("gevent", "gevent", "gevent worker, hello keep-alive"),
    Scenario("gthread", "gthread", "gthread 4 threads, hello keep-alive"),
]


def log(msg):
    print("bench: " + msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------
# /proc readings: the worker processes of a server, their CPU time and their RSS.

def children(pid):
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(entry))
    return out


def workers(pid):
    """The worker processes: the server's children if it has any (gunicorn-c, gunicorn,
    uWSGI --master, nginx), else the server itself (waitress). Masters are left out:
    they do no request work."""
    return children(pid) or [pid]


def cpu_ticks(pids):
    total = 0
    for pid in pids:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime + stime, every thread
    return total


def rss_kb(pids):
    total = 0
    for pid in pids:
        with open("/proc/%d/statm" % pid) as f:
            total += int(f.read().split()[1]) * PAGE_KB
    return total


# ---------------------------------------------------------------------------------
# Servers: one command line per server and worker class.

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def nginx_conf(tmp, port, echo):
    with open(os.path.join(tmp, "16k"), "wb") as f:
        f.write(b"x" * BIG_LEN)
    os.chmod(tmp, 0o755)  # the worker runs as nobody when the master is root
    lines = []
    if echo:
        lines.append("load_module %s;" % NGINX_ECHO)
    lines += [
        "worker_processes 1;", "daemon off;", "pid %s/nginx.pid;" % tmp,
        "error_log %s/error.log warn;" % tmp,
        "events { worker_connections 1024; }",
        "http {",
        "  access_log off;",
        "  keepalive_requests 1000000;",
        "  client_body_temp_path %s/body;" % tmp,
        "  proxy_temp_path %s/proxy;" % tmp,
        "  fastcgi_temp_path %s/fastcgi;" % tmp,
        "  uwsgi_temp_path %s/uwsgi;" % tmp,
        "  scgi_temp_path %s/scgi;" % tmp,
        "  sendfile on;",
        "  open_file_cache max=16;",
        "  server {",
        "    listen 127.0.0.1:%d;" % port,
        '    location = / { default_type text/plain; return 200 "Hello, World!"; }',
        "    location = /16k { default_type application/octet-stream; alias %s/16k; }" % tmp,
    ]
    if echo:
        lines.append("    location = /echo { client_body_buffer_size 16k; "
                     "echo_read_request_body; echo_request_body; }")
    lines += ["  }", "}"]
    path = os.path.join(tmp, "nginx.conf")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


def server_command(server, group, module, appdir, port, tmp, gc_bin):
    bind = "127.0.0.1:%d" % port
    threads = "4" if group.worker == "gthread" else "1"
    if server == "gunicorn-c":
        cmd = [gc_bin, "-w", "1", "-b", bind, "--chdir", appdir]
        if group.worker == "gevent":
            cmd += ["-k", "gevent"]
        elif group.worker == "gthread":
            cmd += ["-k", "gthread", "--threads", threads]
        return cmd + [module]
    if server == "gunicorn":
        cmd = [PYTHON, "-m", "gunicorn", "-w", "1", "-b", bind, "--chdir", appdir]
        if group.worker == "gevent":
            cmd += ["-k", "gevent"]
        elif group.worker == "gthread":
            cmd += ["-k", "gthread", "--threads", threads]
        return cmd + [module]
    if server == "uwsgi":
        # --http-socket: uWSGI's own HTTP parser in the worker, no router process.
        # It answers and closes (keep-alive would pin its only thread to one client).
        return ["uwsgi", "--plugin", "python3", "--http-socket", bind, "--master",
                "--processes", "1", "--threads", threads, "--chdir", appdir,
                "--pythonpath", appdir, "--module", module, "--disable-logging",
                "--need-app", "--die-on-term", "--listen", "128"]
    if server == "waitress":
        return [PYTHON, "-m", "waitress", "--listen", bind, "--threads", threads, module]
    if server == "nginx":
        conf = nginx_conf(tmp, port, os.path.exists(NGINX_ECHO))
        return ["nginx", "-p", tmp, "-c", conf]
    raise ValueError(server)


def probe(port, scenario, timeout=0.5):
    """One request as the scenario sends it; returns the body, raises if unanswered."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        headers = {"Connection": "close"} if scenario.close else {}
        body = POST_BODY if scenario.post else None
        conn.request("POST" if scenario.post else "GET", scenario.path, body=body,
                     headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        if resp.status != 200:
            raise RuntimeError("status %d" % resp.status)
        return data
    finally:
        conn.close()


class Server:
    def __init__(self, name, group, module, appdir, gc_bin, tmp_root):
        self.name, self.group = name, group
        self.tmp = tempfile.mkdtemp(prefix="%s-" % name, dir=tmp_root)
        self.port = free_port()
        cmd = server_command(name, group, module, appdir, self.port, self.tmp, gc_bin)
        self.logpath = os.path.join(self.tmp, "server.log")
        env = dict(os.environ)
        env.pop("VIRTUAL_ENV", None)
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        self.started = time.monotonic()
        with open(self.logpath, "wb") as logf:
            self.proc = subprocess.Popen(["taskset", "-c", SERVER_CPU] + cmd, cwd=appdir,
                                         stdout=logf, stderr=subprocess.STDOUT, env=env,
                                         start_new_session=True)
        self.first_answer = None

    def wait_ready(self, scenario, limit=30.0):
        """Polls until the first request is answered; records the time it took."""
        deadline = self.started + limit
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                probe(self.port, scenario, timeout=1.0)
                self.first_answer = time.monotonic() - self.started
                return
            except (OSError, http.client.HTTPException, RuntimeError):
                time.sleep(0.005)
        raise RuntimeError("%s (%s) did not answer; its log:\n%s"
                           % (self.name, self.group.name, self.log_tail()))

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
            # The quick stop of each: TERM for nginx, INT for the others.
            self.proc.send_signal(signal.SIGTERM if self.name == "nginx" else signal.SIGINT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


# ---------------------------------------------------------------------------------
# wrk: one Lua script per scenario, its done() prints the numbers as one JSON line.

LUA_DONE = r'''
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH {"requests": %d, "duration_us": %d, "p99_us": %d, "mean_us": %f, ' ..
    '"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}\n',
    summary.requests, summary.duration, latency:percentile(99.0), latency.mean,
    e.connect, e.read, e.write, e.status, e.timeout))
end
'''

def wrk_script(tmp, scenario):
    parts = []
    if scenario.post:
        parts.append('wrk.method = "POST"\nwrk.body = string.rep("p", %d)\n'
                     'wrk.headers["Content-Type"] = "application/octet-stream"\n'
                     % len(POST_BODY))
    if scenario.close:
        parts.append('wrk.headers["Connection"] = "close"\n')
    if scenario.pipeline > 1:
        parts.append('local batch\nfunction init(args)\n'
                     '  local r = {}\n  for i = 1, %d do r[i] = wrk.format() end\n'
                     '  batch = table.concat(r)\nend\n'
                     'function request()\n  return batch\nend\n' % scenario.pipeline)
    parts.append(LUA_DONE)
    fd, path = tempfile.mkstemp(suffix=".lua", dir=tmp)
    with os.fdopen(fd, "w") as f:
        f.write("".join(parts))
    return path


COMPILERS = ("cc1", "cc1plus", "clang", "ld", "collect2")
NOISE = {"runs": 0, "disturbed": 0, "waited": 0.0, "quiet_wait": 0}


def compiling():
    """True while a compiler runs on the machine (another engineer's build skews runs)."""
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open("/proc/%s/comm" % entry) as f:
                    if f.read().strip() in COMPILERS:
                        return True
            except OSError:
                pass
    return False


def run_wrk(server, scenario, duration, connections):
    """One wrk run; returns its numbers and the worker CPU ticks spent meanwhile.

    Waits up to NOISE["quiet_wait"] seconds for running compilers to finish first, and
    counts the runs a compiler overlapped all the same."""
    deadline = time.monotonic() + NOISE["quiet_wait"]
    while NOISE["quiet_wait"] and compiling() and time.monotonic() < deadline:
        time.sleep(1)
        NOISE["waited"] += 1
    noisy = compiling()
    script = wrk_script(server.tmp, scenario)
    url = "http://127.0.0.1:%d%s" % (server.port, scenario.path)
    pids = server.workers()
    before = cpu_ticks(pids)
    out = subprocess.run(["taskset", "-c", CLIENT_CPU, "wrk", "-t1", "-c%d" % connections,
                          "-d%ds" % duration, "--latency", "-s", script, url],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    after = cpu_ticks(pids)
    NOISE["runs"] += 1
    NOISE["disturbed"] += noisy or compiling()
    line = [l for l in out.stdout.splitlines() if l.startswith("BENCH ")]
    if out.returncode != 0 or not line:
        raise RuntimeError("wrk failed against %s:\n%s" % (server.name, out.stdout))
    r = json.loads(line[0][6:])
    r["cpu_ticks"] = after - before
    r["rps"] = r["requests"] * 1e6 / r["duration_us"] if r["duration_us"] else 0.0
    return r


# ---------------------------------------------------------------------------------
# The run.

def build(args):
    bdir = os.path.join(ROOT, "build-bench")
    log("building gunicorn-c (Release) in build-bench/")
    for attempt in range(5):
        try:
            subprocess.run(["cmake", "-S", ROOT, "-B", bdir, "-DCMAKE_BUILD_TYPE=Release",
                            "-DPython3_EXECUTABLE=" + PYTHON], check=True,
                           stdout=subprocess.DEVNULL)
            subprocess.run(["cmake", "--build", bdir, "-j2", "--target", "gunicorn-c"],
                           check=True, stdout=subprocess.DEVNULL)
            return os.path.join(bdir, "gunicorn-c")
        except subprocess.CalledProcessError:
            if attempt == 4:
                raise
            log("build failed (work in progress in the tree?); retrying in 60 s")
            time.sleep(60)


def commit():
    try:
        rev = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                             stdout=subprocess.PIPE, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--", "src",
                                "include", "CMakeLists.txt"], stdout=subprocess.PIPE,
                               text=True).stdout.strip()
        return rev + (" + uncommitted changes in src/" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def measure_group(group, scenarios, servers, args, gc_bin, tmp_root, django_dir):
    """Starts each server of GROUP in turn and runs SCENARIOS on it; returns the results,
    the start-up and memory readings, and one message per server that failed."""
    results, starts, failed = {}, {}, []
    for name in servers:
        if name not in group.servers:
            continue
        if name == "nginx" and any(s.post for s in scenarios) and not os.path.exists(NGINX_ECHO):
            continue
        module, appdir = group.module, APPS
        if group.name == "django":
            module, appdir = "benchsite.wsgi:application", django_dir
        label = name if group.worker == "sync" else "%s %s" % (name, group.worker)
        log("%s: starting %s" % (group.name, label))
        server = Server(name, group, module, appdir, gc_bin, tmp_root)
        try:
            measure_server(server, label, group, scenarios, args, results, starts)
        except RuntimeError as e:
            failed.append(str(e))
            log("FAILED: %s" % e)
        finally:
            server.stop()
    return results, starts, failed


def measure_server(server, label, group, scenarios, args, results, starts):
    """Waits for SERVER's first answer, checks its memory, then runs each scenario:
    a probe for the exact answer, then args.runs wrk runs; adds to RESULTS and STARTS.
    Raises RuntimeError when the server fails."""
    name = server.name
    server.wait_ready(scenarios[0])
    info = {"label": label, "group": group.name,
            "first_answer_ms": server.first_answer * 1000,
            "rss_start": rss_kb(server.workers())}
    if group.leak:
        leak_check(server, scenarios[0], args, info)
    elif args.warmup:
        run_wrk(server, scenarios[0], args.warmup, args.connections)
    for sc in scenarios:
        body = probe(server.port, sc, timeout=5.0)
        if body != sc.expect:
            raise RuntimeError("%s answered %s with %d wrong bytes: %r"
                               % (label, sc.name, len(body), body[:60]))
        if args.quick and name != "gunicorn-c" and sc is not scenarios[0]:
            # --quick loads every scenario of gunicorn-c, and each peer once.
            continue
        runs = []
        for _ in range(args.runs):
            r = run_wrk(server, sc, args.duration, args.connections)
            ok = r["requests"] - r["status"]
            if ok <= 0:
                raise RuntimeError("%s answered no request of %s under load: %r"
                                   % (label, sc.name, r))
            runs.append(r)
        res = results[(sc.name, name)] = summarise(label, runs)
        log("  %-9s %-18s %9.0f req/s  p99 %7.2f ms  %6.1f us/req"
            % (sc.name, label, res["rps"], res["p99_ms"], res["cpu_us"]))
    info["rss_end"] = rss_kb(server.workers())
    starts[(group.name, name)] = info


def sequential(port, scenario, count):
    """Sends COUNT requests one after the other, keeping the connection alive when the
    server does; returns how many were answered."""
    done, errors = 0, 0
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    while done < count:
        try:
            conn.request("GET", scenario.path)
            resp = conn.getresponse()
            resp.read()
            if resp.status != 200:
                raise RuntimeError("status %d" % resp.status)
            done += 1
            if resp.will_close:
                conn.close()
        except (OSError, http.client.HTTPException):
            # A server that closes without saying so (uWSGI): connect again.
            conn.close()
            errors += 1
            if errors > count:
                raise RuntimeError("the connection kept failing after %d requests" % done)
    conn.close()
    return done


def leak_check(server, scenario, args, info):
    """RSS after 10k and after 200k requests of SCENARIO (the keep-alive hello).

    The first mark is reached exactly, by requests sent one after the other from this
    process. wrk cannot stop at a request count, so the later marks are reached by runs
    whose length follows the rate seen so far (1 s at least); the table shows the count
    actually reached when it differs much. A server too slow to reach a mark within
    args.leak_cap seconds of load reports how far it got."""
    done, rate, spent = 0, None, 0
    if args.leak_marks:
        done = sequential(server.port, scenario, args.leak_marks[0])
        info["rss_%d" % args.leak_marks[0]] = (rss_kb(server.workers()), done)
    for target in args.leak_marks[1:]:
        while done < target and spent < args.leak_cap:
            secs = 1 if rate is None else int(min(max(1, -(-(target - done) // rate)),
                                                  args.leak_cap - spent))
            r = run_wrk(server, scenario, secs, args.connections)
            done += r["requests"]
            spent += secs
            rate = max(r["rps"], 1)
        info["rss_%d" % target] = (rss_kb(server.workers()), done)


def summarise(label, runs):
    def med(key):
        return statistics.median(key(r) for r in runs)
    return {
        "label": label,
        "rps": med(lambda r: r["rps"]),
        "p99_ms": med(lambda r: r["p99_us"] / 1000.0),
        "cpu_us": med(lambda r: r["cpu_ticks"] * 1e6 / CLK_TCK / max(r["requests"], 1)),
        "errors": sum(r["connect"] + r["read"] + r["write"] + r["status"] + r["timeout"]
                      for r in runs),
        "requests": sum(r["requests"] for r in runs),
    }


def ratio(a, b):
    return "%.2fx" % (a / b) if a and b else "–"


def tables(results, starts, scenarios, servers):
    out = ["| scenario | server | req/s | p99 ms | CPU µs/req | vs Gunicorn | vs nginx "
           "| CPU vs nginx | socket errors + non-2xx |",
           "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for sc in scenarios:
        base = results.get((sc.name, "gunicorn"))
        ngx = results.get((sc.name, "nginx"))
        for name in servers:
            r = results.get((sc.name, name))
            if not r:
                continue
            # wrk times a pipelined batch when its last response arrives: a server that
            # closes after the first response never completes one, and has no p99.
            p99 = "%.2f" % r["p99_ms"] if r["p99_ms"] > 0 else "–"
            out.append("| %s | %s | %.0f | %s | %.1f | %s | %s | %s | %d |" % (
                sc.name, r["label"], r["rps"], p99, r["cpu_us"],
                ratio(r["rps"], base["rps"]) if base else "–",
                ratio(r["rps"], ngx["rps"]) if ngx else "–",
                ratio(r["cpu_us"], ngx["cpu_us"]) if ngx else "–", r["errors"]))
    out += ["", "| server | start to first answer ms | worker RSS at start MB "
            "| after 10k MB | after 200k MB | 200k − 10k MB | at the end MB |",
            "|---|---:|---:|---:|---:|---:|---:|"]

    def mb(kb):
        return "%.1f" % (kb / 1024.0)

    def mark(info, target):
        v = info.get("rss_%d" % target)
        if not v:
            return "–"
        exact = target <= v[1] <= 1.5 * target
        return mb(v[0]) + ("" if exact else " (at %dk)" % round(v[1] / 1000.0))
    for (group, name), info in starts.items():
        r10, r200 = info.get("rss_10000"), info.get("rss_200000")
        delta = "%+.2f" % ((r200[0] - r10[0]) / 1024.0) if r10 and r200 else "–"
        out.append("| %s (%s) | %.0f | %s | %s | %s | %s | %s |" % (
            info["label"], group, info["first_answer_ms"], mb(info["rss_start"]),
            mark(info, 10000), mark(info, 200000), delta, mb(info["rss_end"])))
    return "\n".join(out)


def targets(results, starts):
    """The issue's targets, each with the measured value (never asserted)."""
    def rps(sc, srv):
        r = results.get((sc, srv))
        return r["rps"] if r else None

    def cpu(sc, srv):
        r = results.get((sc, srv))
        return r["cpu_us"] if r else None

    rows = []

    def check(text, value, goal, fmt="%.2fx"):
        if value is None:
            rows.append("| %s | not measured | |" % text)
        else:
            rows.append("| %s | %s | %s |" % (text, fmt % value, "met" if value >= goal else "MISSED"))

    def rel(a, b):
        return a / b if a and b else None

    check("hello keep-alive ≥ 10x Gunicorn sync", rel(rps("hello", "gunicorn-c"), rps("hello", "gunicorn")), 10)
    check("hello keep-alive ≥ 0.9x nginx", rel(rps("hello", "gunicorn-c"), rps("hello", "nginx")), 0.9)
    c = rel(cpu("hello", "nginx"), cpu("hello", "gunicorn-c"))
    check("hello CPU/request ≤ nginx + 20% (nginx CPU ÷ ours ≥ 0.83)", c, 1 / 1.2)
    check("Connection: close ≥ 1.0x nginx", rel(rps("close", "gunicorn-c"), rps("close", "nginx")), 1.0)
    check("16 KiB ≥ 5x Gunicorn sync", rel(rps("16k", "gunicorn-c"), rps("16k", "gunicorn")), 5)
    check("1 KiB POST ≥ 5x Gunicorn sync", rel(rps("post", "gunicorn-c"), rps("post", "gunicorn")), 5)
    check("gevent keep-alive ≥ 4x Gunicorn gevent", rel(rps("gevent", "gunicorn-c"), rps("gevent", "gunicorn")), 4)
    check("gthread keep-alive ≥ 3x Gunicorn gthread", rel(rps("gthread", "gunicorn-c"), rps("gthread", "gunicorn")), 3)
    check("Django ≥ 1.5x Gunicorn sync", rel(rps("django", "gunicorn-c"), rps("django", "gunicorn")), 1.5)
    ours, theirs = starts.get(("hello", "gunicorn-c")), starts.get(("hello", "gunicorn"))
    if ours and theirs:
        a, b = ours.get("rss_10000", (ours["rss_start"],))[0], theirs.get("rss_10000", (theirs["rss_start"],))[0]
        rows.append("| worker RSS ≤ Gunicorn's (hello, after 10k) | %.1f MB vs %.1f MB | %s |"
                    % (a / 1024.0, b / 1024.0, "met" if a <= b else "MISSED"))
    else:
        rows.append("| worker RSS ≤ Gunicorn's | not measured | |")
    if ours and ours.get("rss_10000") and ours.get("rss_200000"):
        d = (ours["rss_200000"][0] - ours["rss_10000"][0]) / 1024.0
        rows.append("| RSS after 200k within 1 MB of after 10k | %+.2f MB | %s |"
                    % (d, "met" if d <= 1.0 else "MISSED"))
    else:
        rows.append("| RSS after 200k within 1 MB of after 10k | not measured | |")
    return "| target (gunicorn-c) | measured | |\n|---|---:|---|\n" + "\n".join(rows)


def machine():
    try:
        lscpu = subprocess.run(["lscpu"], stdout=subprocess.PIPE, text=True).stdout
        keep = ("Architecture", "Model name", "CPU(s):", "Thread(s) per core", "CPU max MHz",
                "L2 cache", "L3 cache", "Hypervisor vendor")
        lines = [l for l in lscpu.splitlines() if l.strip().startswith(keep)]
    except OSError:
        lines = []
    return "\n".join(["    " + " ".join(platform.uname())] + ["    " + l for l in lines])


def versions():
    def run(cmd):
        try:
            return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  text=True).stdout.strip().splitlines()[0]
        except (OSError, IndexError):
            return "?"
    return ", ".join([
        "Python " + platform.python_version(),
        "Gunicorn " + run([PYTHON, "-c", "import gunicorn; print(gunicorn.__version__)"]),
        "uWSGI " + run(["uwsgi", "--version"]),
        "waitress " + run([PYTHON, "-c", "import importlib.metadata as m; print(m.version('waitress'))"]),
        "gevent " + run([PYTHON, "-c", "import gevent; print(gevent.__version__)"]),
        "Django " + run([PYTHON, "-c", "import django; print(django.__version__)"]),
        run(["nginx", "-v"]).replace("nginx version: ", ""),
        run(["wrk", "-v"]).split(" [")[0],
    ])


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true",
                   help="every server started and every scenario probed; 1 s of load "
                   "per scenario of gunicorn-c and per peer (CI, under a minute)")
    p.add_argument("--only", help="comma-separated scenarios: " +
                   ",".join(s.name for s in SCENARIOS))
    p.add_argument("--servers", help="comma-separated servers: " + ",".join(SERVERS))
    p.add_argument("-d", "--duration", type=int, default=10, help="seconds per run [10]")
    p.add_argument("-r", "--runs", type=int, default=3, help="runs per scenario, median [3]")
    p.add_argument("-c", "--connections", type=int, default=50, help="wrk connections [50]")
    p.add_argument("--no-build", action="store_true",
                   help="use build-bench/gunicorn-c as it is")
    p.add_argument("--binary", metavar="PATH",
                   help="measure this gunicorn-c instead of building one (e.g. a CI build)")
    p.add_argument("--no-install", action="store_true",
                   help="do not call tools/ensure-packages.sh")
    p.add_argument("--results", metavar="FILE",
                   help="also write the tables, machine and command as Markdown to FILE")
    p.add_argument("--quiet-wait", type=int, metavar="SECS",
                   help="before each run, wait up to SECS for running compilers to "
                   "finish [60; --quick: 0]")
    args = p.parse_args(argv)
    args.warmup = 2
    args.leak_marks = [10000, 200000]
    args.leak_cap = 60
    if args.quick:
        # wrk's shortest run is 1 s: one run per scenario of gunicorn-c, one run of the
        # first scenario of each peer, every scenario probed for a correct answer.
        args.duration, args.runs, args.warmup = 1, 1, 0
        args.leak_marks, args.leak_cap = [], 0
    if args.quiet_wait is None:
        args.quiet_wait = 0 if args.quick else 60
    NOISE["quiet_wait"] = args.quiet_wait
    return args


def main(argv):
    args = parse_args(argv)
    scenarios = SCENARIOS
    if args.only:
        names = args.only.split(",")
        unknown = set(names) - {s.name for s in SCENARIOS}
        if unknown:
            sys.exit("bench: unknown scenario(s): " + ", ".join(sorted(unknown)))
        scenarios = [s for s in SCENARIOS if s.name in names]
    servers = SERVERS
    if args.servers:
        servers = args.servers.split(",")
        unknown = set(servers) - set(SERVERS)
        if unknown:
            sys.exit("bench: unknown server(s): " + ", ".join(sorted(unknown)))
    if not args.no_install:
        subprocess.run([os.path.join(ROOT, "tools", "ensure-packages.sh")] + PACKAGES,
                       check=True)
    if args.binary:
        gc_bin = os.path.abspath(args.binary)
    elif args.no_build:
        gc_bin = os.path.join(ROOT, "build-bench", "gunicorn-c")
    else:
        gc_bin = build(args)
    # The tree's commit when the binary was built: the other engineer may commit meanwhile.
    measured = commit() if not (args.binary or args.no_build) else "%s (tree at %s)" % (
        gc_bin, commit())
    # This process (probes, the first leak mark) keeps off the server's CPU.
    os.sched_setaffinity(0, {int(CLIENT_CPU)})
    results, starts = {}, {}
    failed = []
    tmp_root = tempfile.mkdtemp(prefix="gc-bench-")
    os.chmod(tmp_root, 0o755)  # nginx's worker (nobody, under root) reads files in it
    try:
        django_dir = None
        if any(s.group == "django" for s in scenarios):
            django_dir = os.path.join(tmp_root, "django")
            os.mkdir(django_dir)
            sys.path.insert(0, APPS)
            sys.dont_write_bytecode = True  # leave no __pycache__ in bench/apps
            import django_project
            with open(os.devnull, "w") as null:
                saved, sys.stdout = sys.stdout, null
                try:
                    django_project.make(django_dir, PYTHON)
                finally:
                    sys.stdout = saved
        for gname, group in GROUPS.items():
            mine = [s for s in scenarios if s.group == gname]
            if not mine:
                continue
            r, s, f = measure_group(group, mine, servers, args, gc_bin, tmp_root, django_dir)
            failed += f
            results.update(r)
            starts.update(s)
    finally:
        shutil.rmtree(tmp_root, ignore_errors=True)
    text = tables(results, starts, scenarios, servers)
    print(text)
    print()
    print(targets(results, starts))
    if args.results:
        write_results(args, argv, text, targets(results, starts), measured)
    if NOISE["disturbed"]:
        log("%d of %d runs overlapped a compiler: their numbers are noisy"
            % (NOISE["disturbed"], NOISE["runs"]))
    if failed:
        log("%d failure(s)" % len(failed))
        return 1
    return 0


def write_results(args, argv, text, target_text, measured):
    cmd = " ".join(["bench/bench.py"] + argv)
    doc = [
        "# Benchmark results",
        "",
        "The latest full run of `bench/bench.py` (bench/README.md says what each number "
        "means and how to run it). Speed is measured here, never asserted by the tests.",
        "",
        "- Date: %s" % datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "- gunicorn-c measured: %s" % (measured if (args.binary or args.no_build) else
                                       measured + " (Release build, build-bench/)"),
        "- Command: `%s`" % cmd,
        "- Load: `wrk -t1 -c%d -d%ds --latency` pinned to CPU %s; each server with one "
        "worker pinned to CPU %s; median of %d runs" % (args.connections, args.duration,
                                                        CLIENT_CPU, SERVER_CPU, args.runs),
        "- Peers: %s" % versions(),
        "- Noise: %d of %d wrk runs overlapped a compiler running on the machine "
        "(the script waited %d s in all for compilers to finish before runs)"
        % (NOISE["disturbed"], NOISE["runs"], NOISE["waited"]),
        "- Machine:",
        "",
        machine(),
        "",
        "## Per scenario",
        "",
        text.split("\n\n")[0],
        "",
        "## Per server: start-up and memory",
        "",
        text.split("\n\n")[1],
        "",
        "## The targets of issue 9",
        "",
        target_text,
        "",
    ]
    with open(args.results, "w") as f:
        f.write("\n".join(doc))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
