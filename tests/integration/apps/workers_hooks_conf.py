"""A config file (-c) whose worker hooks say on stderr whether gevent had patched the
socket and time modules when they ran (test_workers.py reads the lines)."""

import os
import sys


def _report(hook):
    try:
        from gevent import monkey
        state = "socket=%s time=%s" % (monkey.is_module_patched("socket"),
                                      monkey.is_module_patched("time"))
    except ImportError:
        state = "no gevent"
    sys.stderr.write("workers_hooks %s in %d: %s\n" % (hook, os.getpid(), state))
    sys.stderr.flush()


def post_fork(server, worker):
    _report("post_fork")


def post_worker_init(worker):
    _report("post_worker_init")
