"""Response heads are made of what start_response accepted, on every worker class.

start_response validates the status and the headers; an application that changes its
header list afterwards (appends None, an int, a tuple of the wrong size, a CR/LF in a
name or value, a second Content-Length; replaces an item; empties the list) must neither
crash the worker nor get those bytes on the wire. Gunicorn copies the list in
start_response, so the response goes out with the headers as they were then; a 500
would also be safe. Either way the worker that answered keeps answering.

Also here: a client that leaves instead of sending a body it announced with
"Expect: 100-continue" is a client disconnection (a debug line), not an application
error with a traceback.
"""

import re

import pytest

from helpers import raw_fetch
from rawhttp import Reader, exchange, request

APP = "header_mutation:app"
GTHREAD = ["-k", "gthread", "--threads", "4"]
GEVENT = ["-k", "gevent"]
CLASSES = [pytest.param([], id="sync"), pytest.param(GTHREAD, id="gthread"),
           pytest.param(GEVENT, id="gevent")]

# Headers the server adds to every response.
SERVER_HEADERS = {"server", "date", "connection", "transfer-encoding"}


def worker_pid(srv):
    """The pid of the worker that answers a plain request on a new connection."""
    with srv.connect() as s:
        resp = exchange(s, request(path="/pid"))
    assert resp.status == 200, resp.raw_head
    return int(resp.body)


def assert_head_is(resp, status, expected):
    """The response has `status` and exactly the application headers `expected` (a
    dict, lower-case names), each once, beside the server's own."""
    assert resp.status == status, resp.raw_head
    names = [n.lower() for n, _ in resp.headers]
    assert len(names) == len(set(names)), f"a header sent twice: {resp.raw_head!r}"
    got = {n.lower(): v for n, v in resp.headers if n.lower() not in SERVER_HEADERS}
    assert got == expected, resp.raw_head


def assert_nothing_injected(resp):
    head = resp.raw_head.lower()
    for needle in (b"evil", b"set-cookie", b"x-late", b"x-one", b"x-three", b"x-bytes",
                   b"x-euro", b"x-a:", b"999"):
        assert needle not in head, resp.raw_head


# --- the list changed after start_response ------------------------------------------------

# (how, kind): see apps/header_mutation.py. The first seven are the shapes that crashed
# the worker or split the response before; the others change the list other ways.
MUTATIONS = [
    ("append", "none"),
    ("append", "int"),
    ("append", "one-tuple"),
    ("append", "three-tuple"),
    ("append", "int-name"),
    ("append", "crlf-value"),
    ("append", "crlf-name"),
    ("append", "bytes-name"),
    ("append", "bytes-value"),
    ("append", "non-latin1"),
    ("append", "content-length"),
    ("append", "valid"),
    ("replace", "none"),
    ("clear", "-"),
    ("gen-append", "crlf-value"),
    ("many", "none"),
    ("exc-info", "crlf-value"),
]


@pytest.mark.parametrize("how,kind", MUTATIONS, ids=[f"{h}-{k}" for h, k in MUTATIONS])
@pytest.mark.parametrize("klass", CLASSES)
def test_header_list_changed_after_start_response(start_server, klass, how, kind):
    srv = start_server(APP, *klass)
    pid = worker_pid(srv)
    mark = srv.log_mark()
    resp = raw_fetch(srv, request(path=f"/{how}/{kind}"))
    assert_nothing_injected(resp)
    assert resp.body == str(pid).encode()
    if resp.status == 500 and how != "exc-info":
        # Refusing the changed list is safe too, as long as it is logged as an error.
        srv.wait_for_log(rf"Error handling request GET /{how}/{kind}", since=mark)
    elif how == "exc-info":
        assert_head_is(resp, 500, {"content-type": "text/plain", "x-replaced": "yes",
                                   "content-length": str(len(resp.body))})
    elif how == "gen-append":
        assert resp.framing == "chunked"
        assert_head_is(resp, 200, {"content-type": "text/plain", "x-original": "yes"})
    else:
        expected = {"content-type": "text/plain", "x-original": "yes",
                    "content-length": str(len(resp.body))}
        if how == "many":
            expected.update({f"x-extra-{i}": str(i) for i in range(37)})
        assert_head_is(resp, 200, expected)
    # The same worker answers the next request: it did not die and get replaced.
    assert worker_pid(srv) == pid
    assert "was sent" not in srv.log_text()


@pytest.mark.parametrize("kind", ["none", "int-name", "crlf-value"])
@pytest.mark.parametrize("klass", CLASSES)
def test_bad_header_given_to_start_response_is_a_500(start_server, klass, kind):
    srv = start_server(APP, *klass)
    pid = worker_pid(srv)
    mark = srv.log_mark()
    resp = raw_fetch(srv, request(path=f"/start/{kind}"))
    assert resp.status == 500, resp.raw_head
    assert resp.header("Content-Type") == "text/html"
    assert_nothing_injected(resp)
    srv.wait_for_log(rf"\[ERROR\] Error handling request GET /start/{kind}", since=mark)
    srv.wait_for_log(r"(TypeError|ValueError): .*header", since=mark)
    assert "Traceback" in srv.log_text()
    assert worker_pid(srv) == pid


def test_access_log_shows_the_headers_sent(start_server, tmp_path):
    """The access log's {name}o atoms read what went out, not the list as the
    application left it."""
    log = tmp_path / "access.log"
    srv = start_server(APP, "--access-logfile", str(log), "--access-logformat",
                       "%(U)s %(s)s late=%({x-late}o)s original=%({x-original}o)s")
    with srv.connect() as s:
        reader = Reader(s)
        s.sendall(request(path="/append/valid"))
        resp = reader.read_response()
        assert resp.header("X-Late") is None
        assert resp.header("X-Original") == "yes"
        # The sync worker writes a request's line before it reads the next request on
        # the connection: once this answer is in, the first line is in the file.
        s.sendall(request(path="/pid"))
        assert reader.read_response().status == 200
    lines = log.read_text().splitlines()
    assert lines[0] == "/append/valid 200 late=- original=yes", lines


# --- Expect: 100-continue, and the client leaves --------------------------------------------


@pytest.mark.parametrize("klass", CLASSES)
def test_client_gone_before_continue_body_is_not_an_error(start_server, klass):
    srv = start_server("echo:body", "--log-level", "debug", *klass)
    mark = srv.log_mark()
    with srv.connect() as s:
        s.sendall(request("POST", "/upload", headers=[("Expect", "100-continue"),
                                                      ("Content-Length", "10")]))
        reader = Reader(s)
        interim = reader.read_response("POST")
        assert interim.status == 100  # the app is reading wsgi.input now
    # The client has closed without sending the body: once the worker is done with the
    # request, it has said so at debug level, and not as an application error.
    done = srv.wait_for_log(r"\[\w+\] (Ignored client disconnection|Error handling request)",
                            since=mark)
    assert done.group(0).startswith("[DEBUG] Ignored client disconnection"), srv.log_text()
    with srv.connect() as s:
        resp = exchange(s, request("POST", "/", body=b"next"), "POST")
    assert resp.status == 200 and resp.body == b"next"
    text = "\n".join(srv.log_text().splitlines()[mark:])
    assert not re.search(r"\[ERROR\]|Traceback", text), text
