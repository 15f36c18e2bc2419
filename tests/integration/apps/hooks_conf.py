"""A config file (-c) that defines every server hook. Each call appends one JSON line
to the file named by $GC_TEST_HOOK_LOG: the hook's name, the calling process's pid and
what the hook saw in its arguments. test_hooks.py reads the lines back.

$GC_TEST_WORKERS_FILE, when set, names a file holding the `workers` setting, so a test
can change the config file's result between a start and a HUP.
"""

import json
import os
import sys

if os.environ.get("GC_TEST_WORKERS_FILE"):
    with open(os.environ["GC_TEST_WORKERS_FILE"]) as _f:
        workers = int(_f.read())


def _record(hook, **fields):
    fields.update(hook=hook, pid=os.getpid())
    with open(os.environ["GC_TEST_HOOK_LOG"], "a") as f:
        f.write(json.dumps(fields) + "\n")


def _server(server):
    return {"server_pid": server.pid, "num_workers": server.num_workers,
            "cfg_workers": server.cfg.workers, "cfg_timeout": server.cfg.timeout}


def _both(server, worker):
    return {**_server(server), **_worker(worker)}


def _worker(worker):
    return {"age": worker.age, "worker_pid": worker.pid, "worker_ppid": worker.ppid,
            "alive": worker.alive, "cfg_timeout": worker.cfg.timeout}


def on_starting(server):
    _record("on_starting", **_server(server))


def on_reload(server):
    _record("on_reload", **_server(server))


def when_ready(server):
    server.log.info("when_ready hook ran in %s", os.getpid())
    _record("when_ready", **_server(server))


def pre_fork(server, worker):
    _record("pre_fork", **_both(server, worker))


def post_fork(server, worker):
    _record("post_fork", **_both(server, worker))


def post_worker_init(worker):
    worker.log.info("post_worker_init hook ran in %s", os.getpid())
    _record("post_worker_init", app_imported="lifecycle" in sys.modules, **_worker(worker))


def worker_int(worker):
    _record("worker_int", **_worker(worker))


def worker_abort(worker):
    _record("worker_abort", **_worker(worker))


def pre_exec(server):
    _record("pre_exec", **_server(server))


def pre_request(worker, req):
    _record("pre_request", method=req.method, path=req.path, query=req.query, uri=req.uri,
            version=list(req.version), headers=[list(h) for h in req.headers],
            **_worker(worker))


def post_request(worker, req, environ, resp):
    _record("post_request", path=req.path, environ_path=environ["PATH_INFO"],
            status=str(resp.status), resp_headers=[list(h) for h in resp.headers],
            **_worker(worker))


def child_exit(server, worker):
    _record("child_exit", **_both(server, worker))


def worker_exit(server, worker):
    _record("worker_exit", **_both(server, worker))


def nworkers_changed(server, new_value, old_value):
    _record("nworkers_changed", new=new_value, old=old_value, **_server(server))


def on_exit(server):
    _record("on_exit", **_server(server))
