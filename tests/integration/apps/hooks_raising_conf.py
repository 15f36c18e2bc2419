"""A config file whose hooks raise, and whose post_request takes only (worker, req), as
Gunicorn allows. Raising hooks are logged and must not stop the server. Calls are
recorded as in hooks_conf.py."""

import json
import os


def _record(hook, **fields):
    fields.update(hook=hook, pid=os.getpid())
    with open(os.environ["GC_TEST_HOOK_LOG"], "a") as f:
        f.write(json.dumps(fields) + "\n")


def when_ready(server):
    raise RuntimeError("when_ready hook failed on purpose")


def post_fork(server, worker):
    raise RuntimeError("post_fork hook failed on purpose")


def pre_request(worker, req):
    raise ValueError("pre_request hook failed on purpose")


def post_request(worker, req):
    _record("post_request", path=req.path)
