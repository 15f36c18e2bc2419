"""A config file whose pre_request raises (logged; the request gets a 500, as in
Gunicorn), and whose post_request takes only (worker, req), as Gunicorn allows. Calls
are recorded as in hooks_conf.py."""

import json
import os


def _record(hook, **fields):
    fields.update(hook=hook, pid=os.getpid())
    with open(os.environ["GC_TEST_HOOK_LOG"], "a") as f:
        f.write(json.dumps(fields) + "\n")


def pre_request(worker, req):
    raise ValueError("pre_request hook failed on purpose")


def post_request(worker, req):
    _record("post_request", path=req.path)
