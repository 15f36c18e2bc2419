#!/usr/bin/python3
"""fairness.py: does a sync worker serve its keep-alive connections fairly, and at what
cost in throughput? Compares one gunicorn-c binary with another (a base build).

Two scenarios, each run on every binary in turn, `-r` times, interleaved (base, new,
base, new, ...) so that a shared machine's load falls on both alike:

    slow10  -w 2, bench/apps/slow.py (time.sleep(0.01)), wrk -t1 -c52 --latency, 8 s:
            more keep-alive connections than the workers can serve at once. Unfair
            service shows as a long p99 and as wrk timeouts (no answer within 2 s).
    hello   -w 1, bench/apps/hello.py, wrk -t1 -c50, 5 s: the cost of the scheduling
            per request (req/s), the server pinned to CPU 1 and wrk to CPU 0.

It prints one Markdown row per run, then the medians, and the load average before
and after. Speed is measured here, never asserted: the exit status is 1 only when a
server does not start or wrk fails.

    bench/fairness.py --binary build/gunicorn-c --base build-base/gunicorn-c
    bench/fairness.py -r 1 --only slow10
"""

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402  (/proc readings, free ports, the apps' directory)

SCENARIOS = {
    # name: (workers, app, wrk connections, default seconds, pinned)
    "slow10": (2, "slow:app", 52, 8, False),
    "hello": (1, "hello:app", 50, 5, True),
}

LUA = r'''
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'FAIR {"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, ' ..
    '"max_us": %d, "errors": %d, "timeout": %d}\n',
    summary.requests, summary.duration, latency:percentile(50.0),
    latency:percentile(99.0), latency.max,
    e.connect + e.read + e.write + e.status, e.timeout))
end
'''


def log(msg):
    print("fairness: " + msg, file=sys.stderr, flush=True)


def answers(port):
    import http.client
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
        c.request("GET", "/")
        return c.getresponse().status == 200
    except OSError:
        return False


def run(binary, name, duration, script):
    nworkers, app, conns, _, pinned = SCENARIOS[name]
    port = bench.free_port()
    pin_server = ["taskset", "-c", bench.SERVER_CPU] if pinned else []
    pin_client = ["taskset", "-c", bench.CLIENT_CPU] if pinned else []
    argv = pin_server + [binary, "-w", str(nworkers), "-b", "127.0.0.1:%d" % port,
                         "--chdir", bench.APPS, app]
    server = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while not answers(port):
            if time.monotonic() > deadline or server.poll() is not None:
                raise RuntimeError("%s did not start" % binary)
            time.sleep(0.05)
        # Every worker up before the load starts: the probe reached one of them.
        deadline = time.monotonic() + 10
        while len(bench.children(server.pid)) < nworkers and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)
        out = subprocess.run(pin_client + ["wrk", "-t1", "-c%d" % conns, "-d%ds" % duration,
                                           "--latency", "-s", script,
                                           "http://127.0.0.1:%d/" % port],
                             capture_output=True, text=True).stdout
        line = [l for l in out.splitlines() if l.startswith("FAIR ")]
        if not line:
            raise RuntimeError("wrk failed:\n" + out)
        r = json.loads(line[0][5:])
        r["rps"] = r["requests"] / (r["duration_us"] / 1e6)
        return r
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def ms(us):
    return "%.0f" % (us / 1000.0) if us >= 10000 else "%.1f" % (us / 1000.0)


def main(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--binary", default=os.path.join(bench.ROOT, "build", "gunicorn-c"))
    p.add_argument("--base", help="a second binary to compare with (run first in each pair)")
    p.add_argument("-r", "--runs", type=int, default=3, help="runs per scenario and binary [3]")
    p.add_argument("-d", "--duration", type=int, help="seconds per run [slow10 8, hello 5]")
    p.add_argument("--only", help="comma-separated scenarios: " + ", ".join(SCENARIOS))
    args = p.parse_args(argv)
    names = args.only.split(",") if args.only else list(SCENARIOS)
    binaries = ([("base", args.base)] if args.base else []) + [("new", args.binary)]
    results = {}
    print("load average before: %.2f %.2f %.2f" % os.getloadavg())
    print()
    print("| scenario | run | binary | req/s | p50 ms | p99 ms | max ms | timeouts | errors |")
    print("|---|---:|---|---:|---:|---:|---:|---:|---:|")
    status = 0
    with tempfile.TemporaryDirectory(prefix="gc-fair-") as tmp:
        script = os.path.join(tmp, "done.lua")
        with open(script, "w") as f:
            f.write(LUA)
        for name in names:
            duration = args.duration or SCENARIOS[name][3]
            for i in range(args.runs):
                for label, binary in binaries:
                    try:
                        r = run(binary, name, duration, script)
                    except RuntimeError as e:
                        log("%s %s: %s" % (name, label, e))
                        status = 1
                        continue
                    results.setdefault((name, label), []).append(r)
                    print("| %s | %d | %s | %.0f | %s | %s | %s | %d | %d |" % (
                        name, i + 1, label, r["rps"], ms(r["p50_us"]), ms(r["p99_us"]),
                        ms(r["max_us"]), r["timeout"], r["errors"]), flush=True)
    print()
    print("| scenario | binary | median req/s | median p99 ms | timeouts (all runs) |")
    print("|---|---|---:|---:|---:|")
    for (name, label), rs in results.items():
        print("| %s | %s | %.0f | %s | %d |" % (
            name, label, statistics.median(r["rps"] for r in rs),
            ms(statistics.median(r["p99_us"] for r in rs)), sum(r["timeout"] for r in rs)))
    print()
    print("load average after: %.2f %.2f %.2f" % os.getloadavg())
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
