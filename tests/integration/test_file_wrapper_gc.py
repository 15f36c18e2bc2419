"""wsgi.file_wrapper as a Python object: it takes part in the cycle collector, and a
file-like object that misbehaves makes an error, not a silently short body.

The applications are written into tmp_path and served from there.
"""

import textwrap

from helpers import get

APP = '''
import gc
import weakref


class Source:
    """A file-like object that keeps the wrapper reading it: a reference cycle."""

    def read(self, size):
        return b""


class NoLength:
    pass


class OddSource:
    """read() returns something without a length."""

    def read(self, size):
        return NoLength()


def cycle(environ, start_response):
    source = Source()
    source.wrapper = environ["wsgi.file_wrapper"](source)
    ref = weakref.ref(source)
    del source
    gc.collect()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"collected" if ref() is None else b"leaked"]


def odd(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return environ["wsgi.file_wrapper"](OddSource())


def nostart(environ, start_response):
    """A real file (the sendfile path) and no start_response at all."""
    return environ["wsgi.file_wrapper"](open(__file__, "rb"))
'''


def serve(start_server, tmp_path, name):
    (tmp_path / "wrapper_app.py").write_text(textwrap.dedent(APP))
    return start_server(f"wrapper_app:{name}", app_dir=tmp_path)


def test_a_cycle_through_a_file_wrapper_is_collected(start_server, tmp_path):
    srv = serve(start_server, tmp_path, "cycle")
    r = get(srv)
    assert r.status_code == 200
    assert r.text == "collected"


def test_a_block_without_a_length_is_an_error(start_server, tmp_path):
    srv = serve(start_server, tmp_path, "odd")
    r = get(srv)
    # Not a 200 with an empty body: the application's error, reported.
    assert r.status_code == 500
    srv.wait_for_log(r"Error handling request GET /")
    assert "TypeError: object of type 'NoLength' has no len()" in srv.log_text()
    assert get(srv).status_code == 500  # and the worker serves on


def test_a_file_wrapper_without_start_response_is_a_500(start_server, tmp_path):
    # The worker crashed (SIGSEGV: a head built from no status) before the fix.
    srv = serve(start_server, tmp_path, "nostart")
    (worker,) = srv.worker_pids()
    assert get(srv).status_code == 500
    srv.wait_for_log(r"Error handling request GET /")
    assert get(srv).status_code == 500
    assert srv.live_worker_pids() == [worker]
