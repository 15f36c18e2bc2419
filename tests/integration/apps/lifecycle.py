"""Apps for the arbiter's tests (signals, timeouts, recycling, privileges).

`app` answers with JSON describing the worker that served it; a request for
/sleep/SECONDS sleeps first and logs when it starts, so a test can act while it is in
flight. `stuck` never returns on its own: the --timeout tests look for its function
name in the stack the server dumps.
"""

import json
import os
import sys
import time


def app(environ, start_response):
    path = environ["PATH_INFO"]
    if path.startswith("/sleep/"):
        sys.stderr.write("lifecycle request started in %d\n" % os.getpid())
        sys.stderr.flush()
        time.sleep(float(path[len("/sleep/"):]))
    data = json.dumps({
        "pid": os.getpid(),
        "ppid": os.getppid(),
        "uid": os.getuid(),
        "gid": os.getgid(),
        "groups": sorted(os.getgroups()),
        "path": path,
    }).encode()
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(data)))])
    return [data]


def sleep_forever_in_the_app():
    sys.stderr.write("stuck request started in %d\n" % os.getpid())
    sys.stderr.flush()
    time.sleep(1000)


def stuck(environ, start_response):
    """Requests for /stuck hang; any other path is answered at once."""
    if environ["PATH_INFO"] == "/stuck":
        sleep_forever_in_the_app()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [str(os.getpid()).encode()]
