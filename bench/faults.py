#!/usr/bin/python3
"""faults.py: does worker rotation lose requests from keep-alive clients? (issue 13)

Starts gunicorn-c with two workers on the hello app, puts `wrk -t1 -c50` keep-alive load
on it, and meanwhile rotates its workers the ways an operator does, one run each:

    sync-hup        HUP to the master every second (make-before-break reload)
    sync-maxreq     --max-requests 500: every worker retires every 500 requests
    sync-ttin-ttou  TTIN and TTOU to the master, alternately, every second
    sync-usr2       a USR2 binary upgrade, then TERM to the old master (hand-over)
    gthread-hup     HUP every second, -k gthread --threads 4
    gevent-hup      HUP every second, -k gevent

and prints, per run, the requests wrk completed and the failed ones: socket errors
(connect, read, write, timeout) and non-2xx answers. Every failed count should be 0.
The exit status is 1 when one is not, or when the server could not start.

    bench/faults.py                        every run, 20 s each
    bench/faults.py -d 5 --only sync-hup   one short run
    bench/faults.py --binary build/gunicorn-c

It takes about two minutes with the defaults, so it is not part of `./dev.sh test`;
docs/signals.md says how to run it and bench/FAULTS.md keeps its numbers.
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402  (the wrk summary script, /proc readings, free ports)

RUNS = {
    # name: (extra arguments, what happens every second, or the USR2 hand-over)
    "sync-hup": ([], "hup"),
    "sync-maxreq": (["--max-requests", "500"], None),
    "sync-ttin-ttou": ([], "ttin-ttou"),
    "sync-usr2": ([], "usr2"),
    "gthread-hup": (["-k", "gthread", "--threads", "4"], "hup"),
    "gevent-hup": (["-k", "gevent"], "hup"),
}


def log(msg):
    print("faults: " + msg, file=sys.stderr, flush=True)


def wait_until(what, check, limit=30.0):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise RuntimeError("timed out waiting for " + what)


def answers(port):
    import http.client
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
        c.request("GET", "/")
        return c.getresponse().status == 200
    except OSError:
        return False


def read_pid(path):
    try:
        with open(path) as f:
            return int(f.read().strip() or 0)
    except (OSError, ValueError):
        return 0


def usr2_handover(master, pidfile, workers):
    """USR2, wait for the new master and its workers, then TERM the old master.
    Returns the new master's pid."""
    master.send_signal(signal.SIGUSR2)
    new = wait_until("the new master's pid file", lambda: read_pid(pidfile + ".2"))
    wait_until("the new master's workers", lambda: len(bench.children(new)) >= workers)
    # Its workers are forked; give them the moment they need to import the app and
    # start accepting (this script measures, it does not test).
    time.sleep(1)
    master.send_signal(signal.SIGTERM)
    return new


def run(name, args, tmp):
    extra, action = RUNS[name]
    port = bench.free_port()
    pidfile = os.path.join(tmp, "%s.pid" % name)
    logpath = os.path.join(tmp, "%s.log" % name)
    argv = [args.binary, "-w", "2", "-b", "127.0.0.1:%d" % port, "--chdir", bench.APPS,
            "--pid", pidfile] + extra + ["hello:app"]
    with open(logpath, "w") as logf:
        master = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=logf, stderr=logf)
    new_master = 0
    try:
        wait_until("%s to answer" % name, lambda: answers(port))
        script = os.path.join(tmp, "summary.lua")
        with open(script, "w") as f:
            f.write(bench.LUA_DONE)
        wrk = subprocess.Popen(["wrk", "-t1", "-c%d" % args.connections, "-d%ds" % args.duration,
                                "-s", script, "http://127.0.0.1:%d/" % port],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        start = time.monotonic()
        tick = 0
        while wrk.poll() is None:
            time.sleep(0.1)
            elapsed = time.monotonic() - start
            if elapsed > args.duration - 1.5 or elapsed < tick + 1:
                continue
            tick += 1
            if action == "hup":
                master.send_signal(signal.SIGHUP)
            elif action == "ttin-ttou":
                master.send_signal(signal.SIGTTIN if tick % 2 else signal.SIGTTOU)
            elif action == "usr2" and not new_master and elapsed > args.duration / 3:
                new_master = usr2_handover(master, pidfile, 2)
        out = wrk.communicate()[0]
        line = [l for l in out.splitlines() if l.startswith("BENCH ")]
        if not line:
            raise RuntimeError("wrk failed:\n" + out)
        r = json.loads(line[0][6:])
        r["failed"] = r["connect"] + r["read"] + r["write"] + r["timeout"] + r["status"]
        return r
    finally:
        for pid in (new_master, master.pid):
            if pid:
                try:
                    os.kill(pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        master.wait(30)
        if new_master:
            wait_until("the new master to exit", lambda: not os.path.exists("/proc/%d" % new_master)
                       or open("/proc/%d/stat" % new_master).read().split()[2] == "Z")
        if args.verbose:
            with open(logpath) as f:
                sys.stderr.write(f.read())


def main(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--binary", default=os.path.join(bench.ROOT, "build", "gunicorn-c"))
    p.add_argument("-d", "--duration", type=int, default=20, help="seconds per run [20]")
    p.add_argument("-c", "--connections", type=int, default=50, help="wrk connections [50]")
    p.add_argument("--only", help="comma-separated runs: " + ", ".join(RUNS))
    p.add_argument("-v", "--verbose", action="store_true", help="print each server's log")
    args = p.parse_args(argv)
    names = args.only.split(",") if args.only else list(RUNS)
    status = 0
    print("| run | requests | failed | connect | read | write | timeout | non-2xx |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory(prefix="gc-faults-") as tmp:
        for name in names:
            if name.startswith("gevent") and subprocess.run(
                    [bench.PYTHON, "-c", "import gevent"], capture_output=True).returncode:
                log("%s skipped: gevent is not importable" % name)
                continue
            try:
                r = run(name, args, tmp)
            except RuntimeError as e:
                log("%s: %s" % (name, e))
                status = 1
                continue
            print("| %s | %d | %d | %d | %d | %d | %d | %d |" % (
                name, r["requests"], r["failed"], r["connect"], r["read"], r["write"],
                r["timeout"], r["status"]), flush=True)
            if r["failed"]:
                status = 1
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
