#!/usr/bin/python3
"""uwsgi.py: nginx in front of gunicorn-c over uwsgi_pass and over proxy_pass, in one run.

One nginx process (worker_processes 1) takes the load from wrk and passes each request
on a unix socket to one worker pinned to CPU 1:

    gc-uwsgi      nginx uwsgi_pass  -> gunicorn-c --protocol uwsgi
    gc-http       nginx proxy_pass  -> gunicorn-c (HTTP/1.1, upstream keepalive 32)
    gunicorn-uwsgi nginx uwsgi_pass -> Gunicorn 26.1 --protocol uwsgi (--gunicorn PATH)

nginx and wrk share CPU 0. For each, the median of the runs of wrk -t1 -c50 (the hello
app, 13 bytes with a Content-Length; or the stream app: 20 pieces from a generator, no
length) with its spread, and the worker's CPU time per request from /proc/<pid>/stat.
nginx never reuses a uwsgi connection (1.22), so the uwsgi rows pay a connect and a
close per request that the keep-alive HTTP row does not.

    bench/uwsgi.py                          3 runs of 5 s per row and app
    bench/uwsgi.py -r 5 -d 10
    GUNICORN_C_BIN=/tmp/b/gunicorn-c bench/uwsgi.py --gunicorn /path/to/gunicorn-26.1

Speed is never asserted; a server that answers wrongly or not at all fails the run.
"""

import argparse
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.dont_write_bytecode = True
from bench import (APPS, CLIENT_CPU, CLK_TCK, PYTHON, ROOT, SERVER_CPU,  # noqa: E402
                   cpu_ticks, free_port, workers)

STREAM_APP = '''\
def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return (b"piece %d\\n" % i for i in range(20))
'''
APPS_BODY = {"hello": b"Hello, World!",
             "stream": b"".join(b"piece %d\n" % i for i in range(20))}


def log(msg):
    print("uwsgi.py: " + msg, file=sys.stderr, flush=True)


def nginx_conf(tmp, port, sock, kind):
    if kind == "uwsgi":
        upstream = "upstream app { server unix:%s; }" % sock
        location = "include /etc/nginx/uwsgi_params; uwsgi_pass app;"
    else:
        upstream = "upstream app { server unix:%s; keepalive 32; }" % sock
        location = ('proxy_http_version 1.1; proxy_set_header Connection ""; '
                    "proxy_set_header Host $host; proxy_pass http://app;")
    temps = " ".join("%s_temp_path %s/%s;" % (k, tmp, k)
                     for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    text = """\
worker_processes 1; daemon off; master_process off; pid %s/nginx.pid;
error_log %s/error.log warn;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000; %s
  %s
  server { listen 127.0.0.1:%d; location / { %s } }
}
""" % (tmp, tmp, temps, upstream, port, location)
    path = os.path.join(tmp, "nginx.conf")
    with open(path, "w") as f:
        f.write(text)
    return path


def wait_for(url, proc, timeout=15):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("exited early")
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                return r.read()
        except OSError:
            time.sleep(0.1)  # polling while the server starts
    raise RuntimeError("no answer from %s" % url)


class WrongBody(Exception):
    """The stack answers, but not the application's body (Gunicorn 26.1 chunks a
    response without a length, and nginx passes the chunk framing on)."""


class Stack:
    def __init__(self, row, app, args):
        self.tmp = tempfile.mkdtemp(prefix="bench-uwsgi-")
        self.port = free_port()
        sock = os.path.join(self.tmp, "app.sock")
        appdir = APPS
        module = "hello:app"
        if app == "stream":
            appdir = self.tmp
            with open(os.path.join(self.tmp, "streamapp.py"), "w") as f:
                f.write(STREAM_APP)
            module = "streamapp:app"
        env = dict(os.environ)
        if row == "gunicorn-uwsgi":
            env["PYTHONPATH"] = args.gunicorn
            cmd = [PYTHON, "-m", "gunicorn", "--protocol", "uwsgi"]
        else:
            cmd = [args.bin] + (["--protocol", "uwsgi"] if row == "gc-uwsgi" else [])
        cmd += ["-w", "1", "-b", "unix:" + sock, "--chdir", appdir, "--keep-alive", "75",
                module]
        self.server = subprocess.Popen(["taskset", "-c", SERVER_CPU] + cmd, env=env,
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                       start_new_session=True)
        conf = nginx_conf(self.tmp, self.port, sock, "http" if row == "gc-http" else "uwsgi")
        self.nginx = subprocess.Popen(["taskset", "-c", CLIENT_CPU, "nginx", "-p", self.tmp,
                                       "-c", conf, "-e", os.path.join(self.tmp, "error.log")],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                      start_new_session=True)
        body = wait_for("http://127.0.0.1:%d/" % self.port, self.nginx)
        if body != APPS_BODY[app]:
            self.close()
            raise WrongBody("%s answered %r" % (row, body[:40]))

    def close(self):
        for p in (self.nginx, self.server):
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
                try:
                    p.wait(15)
                except subprocess.TimeoutExpired:
                    os.killpg(p.pid, signal.SIGKILL)
                    p.wait()
        shutil.rmtree(self.tmp, ignore_errors=True)


def run_wrk(st, duration, connections):
    pids = workers(st.server.pid)
    before = cpu_ticks(pids)
    out = subprocess.run(["taskset", "-c", CLIENT_CPU, "wrk", "-t1", "-c%d" % connections,
                          "-d%ds" % duration, "http://127.0.0.1:%d/" % st.port],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    after = cpu_ticks(pids)
    m = re.search(r"(\d+) requests in", out.stdout)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out.stdout)
    if out.returncode != 0 or not m or not rps:
        raise RuntimeError("wrk failed:\n" + out.stdout)
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out.stdout)
    errors = re.search(r"Socket errors: (.*)", out.stdout)
    if bad:
        raise RuntimeError("%s non-2xx answers:\n%s" % (bad.group(1), out.stdout))
    requests = int(m.group(1))
    return {"rps": float(rps.group(1)), "requests": requests,
            "us_per_req": (after - before) * 1e6 / CLK_TCK / max(requests, 1),
            "socket_errors": errors.group(1) if errors else ""}


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-r", "--runs", type=int, default=3)
    ap.add_argument("-d", "--duration", type=int, default=5)
    ap.add_argument("-c", "--connections", type=int, default=50)
    ap.add_argument("--bin", default=os.environ.get("GUNICORN_C_BIN",
                                                    os.path.join(ROOT, "build", "gunicorn-c")))
    ap.add_argument("--gunicorn", default="/work/shared/peers/gunicorn-26.1",
                    help="directory holding Gunicorn 26.1's package ('' to skip its row)")
    ap.add_argument("--apps", default="hello,stream")
    args = ap.parse_args(argv)
    rows = ["gc-uwsgi", "gc-http"] + (["gunicorn-uwsgi"] if args.gunicorn else [])
    print("| app | path | req/s, median (min-max) | worker CPU µs/request | socket errors |")
    print("|---|---|---:|---:|---|")
    for app in args.apps.split(","):
        for row in rows:
            results = []
            # Alternate would be fairer; runs of one row back to back keep it simple.
            try:
                st = Stack(row, app, args)
            except WrongBody as e:
                log(str(e))
                print("| %s | %s | wrong body: %s | - | - |" % (app, row, str(e).split(" answered ")[1]))
                continue
            try:
                for _ in range(args.runs):
                    results.append(run_wrk(st, args.duration, args.connections))
            finally:
                st.close()
            rps = [r["rps"] for r in results]
            cpu = statistics.median(r["us_per_req"] for r in results)
            errs = "; ".join(sorted({r["socket_errors"] for r in results if r["socket_errors"]}))
            print("| %s | %s | %s (%s-%s) | %.1f | %s |" % (
                app, row, "{:,.0f}".format(statistics.median(rps)), "{:,.0f}".format(min(rps)),
                "{:,.0f}".format(max(rps)), cpu, errs or "none"), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
