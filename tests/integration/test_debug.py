"""--spew: every line of Python the server runs is printed on stdout as
``module:line: source``, as Gunicorn's trace function prints it."""

import re

import pytest

from conftest import APPS_DIR
from helpers import get


def app_lines():
    """(number, source) of each statement in the body of hello.py's application() (the
    lines at its first indentation: a call's continuation lines get no line event)."""
    lines = (APPS_DIR / "hello.py").read_text().splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith("def application("))
    body = []
    for i in range(first + 1, len(lines)):
        if lines[i] and not lines[i].startswith(" "):
            break
        if re.match(r"    \w", lines[i]):
            body.append((i + 1, lines[i].rstrip()))
    return body


@pytest.mark.parametrize("threads", [1, 4], ids=["sync", "gthread"])
def test_spew_traces_the_application(start_server, threads):
    srv = start_server("hello", "--spew", "--threads", str(threads))
    assert get(srv.port).text == "Hello, World!\n"
    # stdout is a pipe, so Python buffers it: the traced lines are all there once the
    # worker has exited (its interpreter flushes stdout as it finalizes).
    assert srv.stop() == 0
    out = srv.stdout_text()
    for number, source in app_lines():
        assert f"hello:{number}: {source}" in out.split("\n"), (number, source)
    # The import of the module in the worker is traced too.
    assert "hello:5: def application(environ, start_response):" in out
    # Lines only: every line of output has the module:line: form.
    odd = [line for line in out.split("\n") if not re.match(r"\S+:\d+:", line)]
    lines = out.split("\n")
    assert not odd, [lines[max(0, i - 2):i + 2] for i, x in enumerate(lines) if x == ""]


def test_without_spew_nothing_is_traced(start_server):
    srv = start_server("hello")
    assert get(srv.port).text == "Hello, World!\n"
    assert srv.stop() == 0
    assert srv.stdout_text() == ""
