"""gunicorn.conf.py: an example configuration file for gunicorn-c.

gunicorn-c reads ./gunicorn.conf.py, or the file given with -c/--config, as Python:
every setting is a module-level name (docs/settings.md lists them all) and every hook
a function (docs/signals.md). The command line and $GUNICORN_CMD_ARGS win over the file.
Check a file with `gunicorn-c -c gunicorn.conf.py --print-config APP_MODULE`.
"""

import os
import time

# --- where and what ------------------------------------------------------------------

# The application, when the command line names none.
# wsgi_app = "myproject.wsgi"

# Where to listen: unix:PATH, HOST:PORT, fd://N; a list for several. Under systemd
# socket activation (examples/deploy/gunicorn-c.socket) the sockets come from systemd
# and bind is ignored. In a container: "0.0.0.0:" + os.environ.get("PORT", "8000").
bind = ["unix:/run/gunicorn-c.sock"]

# --- workers -------------------------------------------------------------------------

# Processes: about two per core; $WEB_CONCURRENCY, when set, decides.
workers = int(os.environ.get("WEB_CONCURRENCY", 2 * (os.cpu_count() or 1)))

# "sync" (the default), "gthread" with threads > 1, or "gevent" (docs/workers.md).
# worker_class = "gthread"
# threads = 4

# A request that runs longer than this gets its worker replaced (seconds).
timeout = 30
# TERM and HUP give running requests this long to finish.
graceful_timeout = 30
# Idle time allowed between requests on a connection. Above nginx's upstream
# keepalive_timeout (60 s in examples/deploy/nginx-site.conf), so that nginx closes
# idle connections first.
keepalive = 75

# Replace each worker after about this many requests (a leak's ceiling).
# max_requests = 1000
# max_requests_jitter = 100

# Import the application once in the master, before forking: less memory, faster
# boots; HUP then does not pick up new code (restart or USR2 instead).
# preload_app = True

# --- logs ----------------------------------------------------------------------------

# "-" is stderr (the error log) / stdout (the access log), which systemd's journal
# and container runtimes collect. The access log is off unless named.
errorlog = "-"
loglevel = "info"
# accesslog = "-"
# Behind nginx on a unix socket, REMOTE_ADDR is empty: log the client nginx saw.
access_log_format = '%({x-forwarded-for}i)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s" %(D)s'

# --- hooks ---------------------------------------------------------------------------
# Each runs in the process named; an exception in a hook is logged and ignored.


def when_ready(server):
    """Master: the sockets listen, no worker is forked yet."""
    server.log.info("Ready: %s, workers: %d", server.app_uri, server.num_workers)


def post_fork(server, worker):
    """Worker, before the application is imported: per-process set-up goes here
    (with preload_app, reopen what the master opened: database connections, ...)."""
    worker.log.debug("Worker %s forked (age %s)", worker.pid, worker.age)


def pre_request(worker, req):
    """Worker, before each request. Defining pre_request or post_request makes the
    worker build request objects for every request: define them only if you use them."""
    req.started = time.monotonic()


def post_request(worker, req, environ, resp):
    """Worker, after each response: here, a warning for slow requests."""
    elapsed = time.monotonic() - getattr(req, "started", time.monotonic())
    if elapsed > 1.0:
        worker.log.warning("Slow request: %s %s took %.1f s (%s)",
                           req.method, req.path, elapsed, resp.status)


def worker_abort(worker):
    """Worker, on a timeout: the request's Python stack is in the log just above."""
    worker.log.warning("Worker %s timed out and is being replaced", worker.pid)


def worker_exit(server, worker):
    """Worker, last thing before it exits: close what post_fork opened."""
    worker.log.debug("Worker %s: closing per-process resources", worker.pid)


def on_exit(server):
    """Master, last of all."""
    server.log.info("Stopped: %s", server.app_uri)
