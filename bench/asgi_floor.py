#!/usr/bin/python3
"""asgi_floor.py: what an ASGI application costs by itself, with no server.

Runs an application of bench/apps/asgi_bench.py in-process, on one asyncio loop (uvloop
when it can be imported), with the cheapest receive and send Python allows (coroutines
that return a constant and append to a list), as many times as fit in --seconds, and
prints the CPU time per call. That is the floor under any server's CPU per request for
that application: a server can only add to it (parsing, the scope, its own receive and
send, system calls). bench/RESULTS.md uses it to say which targets a server can reach
at all: a target below floor + the kernel's cost of one read and one write cannot be
met by any server.

    bench/asgi_floor.py                 hello and fastapi, 3 s each
    bench/asgi_floor.py --app fastapi --path /json --seconds 5

The scope is the one a server would build for `GET <path>` over HTTP/1.1 with a
keep-alive client's usual headers (wrk's). Speed is never asserted; it only measures.
"""

import argparse
import asyncio
import os
import resource
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "apps"))


def scope_for(path):
    return {
        "type": "http", "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1", "method": "GET", "scheme": "http", "path": path,
        "raw_path": path.encode(), "query_string": b"", "root_path": "",
        "headers": [(b"host", b"127.0.0.1:8000")], "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 8000), "state": {}, "extensions": {},
    }


async def run(app, path, seconds):
    request = {"type": "http.request", "body": b"", "more_body": False}
    sent = []

    async def receive():
        return request

    async def send(message):
        sent.append(message)

    # Lifespan first, when the application has it (FastAPI's router wants it).
    calls, cpu0 = 0, resource.getrusage(resource.RUSAGE_SELF)
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    while loop.time() < end:
        for _ in range(200):
            await app(scope_for(path), receive, send)
        calls += 200
        del sent[:]
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    us = ((cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)) * 1e6 / calls
    return calls, us


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--app", help="hello or fastapi (default: both)")
    p.add_argument("--path", default=None, help="the request's path")
    p.add_argument("--seconds", type=float, default=3.0)
    args = p.parse_args()
    try:
        import uvloop
        loop_name = "uvloop"
        new_loop = uvloop.new_event_loop
    except ImportError:
        loop_name = "asyncio"
        new_loop = asyncio.new_event_loop
    import asgi_bench
    apps = [args.app] if args.app else ["hello", "fastapi"]
    for name in apps:
        path = args.path or {"hello": "/", "fastapi": "/json"}.get(name, "/")
        loop = new_loop()
        try:
            calls, us = loop.run_until_complete(run(getattr(asgi_bench, name), path,
                                                    args.seconds))
        finally:
            loop.close()
        print("ASGI_FLOOR %s %s: %d calls, %.1f us CPU per call (%s, Python %s)"
              % (name, path, calls, us, loop_name, sys.version.split()[0]))


if __name__ == "__main__":
    main()
