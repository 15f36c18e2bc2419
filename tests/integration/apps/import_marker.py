"""Logs the importing process's pid, so a test can tell where the module was imported
(the master with --preload, each worker without it).

With GC_TEST_IMPORT_SLEEP set, importing takes that many seconds. With
GC_TEST_FORK_AT_IMPORT set, importing also forks a short-lived child that is not
a worker: under --preload the master must reap it quietly (SIGCHLD for an unknown pid).
"""

import os
import sys
import time

sys.stderr.write("import_marker imported in pid %d\n" % os.getpid())
sys.stderr.flush()

if os.environ.get("GC_TEST_IMPORT_SLEEP"):
    time.sleep(float(os.environ["GC_TEST_IMPORT_SLEEP"]))  # a slow boot

if os.environ.get("GC_TEST_FORK_AT_IMPORT"):
    child = os.fork()
    if child == 0:
        # Outlive the master's start-up, so the exit arrives as a SIGCHLD to its loop.
        time.sleep(float(os.environ["GC_TEST_FORK_AT_IMPORT"]))
        os._exit(0)
    sys.stderr.write("import_marker forked child %d\n" % child)
    sys.stderr.flush()


def application(environ, start_response):
    data = str(os.getpid()).encode()
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(data)))])
    return [data]
