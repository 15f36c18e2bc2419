"""A quick stop that lands where Python cannot see it at once.

Python's C-level signal handler only records a signal; the Python-level handler (the
worker's, which raises SystemExit) runs at the next bytecode or when a blocking system
call fails with EINTR. A signal that arrives after the interpreter's last check and
before a call blocks, or one the kernel delivers to another thread, interrupts nothing:
the worker slept out the application's whole time.sleep before it stopped (seen once
in CI under load). The worker now keeps kicking its own loop thread until the handler
has run (src/workers/pysignals.c).

The application makes the second case happen every time: it starts a thread of its
own, then blocks INT and QUIT in the main thread, so the kernel delivers them to that
thread.
"""

import os
import signal
import textwrap
import threading
import time

import pytest
import requests

from conftest import BOOTING_RE
from helpers import get, wait_gone

APP = '''
import signal
import sys
import threading
import time


def app(environ, start_response):
    threading.Thread(target=threading.Event().wait, daemon=True).start()
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGQUIT})
    sys.stderr.write("masked sleep started\\n")
    sys.stderr.flush()
    time.sleep(15)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"slept"]
'''


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGQUIT], ids=["INT", "QUIT"])
def test_a_signal_another_thread_received_still_stops_the_worker(start_server, tmp_path, sig):
    (tmp_path / "masked_app.py").write_text(textwrap.dedent(APP))
    srv = start_server("masked_app:app", "--graceful-timeout", "20", app_dir=tmp_path)
    (worker,) = srv.worker_pids()
    outcome = []

    def client():
        try:
            outcome.append(get(srv, "/", timeout=20).status_code)
        except requests.RequestException:
            outcome.append("dropped")

    t = threading.Thread(target=client, daemon=True)
    t.start()
    srv.wait_for_log(r"masked sleep started")
    mark = srv.log_mark()
    start = time.monotonic()
    os.kill(worker, sig)
    wait_gone(worker, timeout=5)  # 15 s before the fix: the whole sleep
    assert time.monotonic() - start < 2
    srv.wait_for_log(BOOTING_RE, since=mark)
    t.join(5)
    assert outcome and outcome[0] != 200
