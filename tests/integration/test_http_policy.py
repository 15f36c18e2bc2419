"""Request policy on raw sockets: which methods, header shapes and framings are taken
or refused (and the settings that relax the rules), and Expect: 100-continue answered
only when the application reads the body."""

import json
import socket
import time

import pytest

from helpers import raw_fetch, raw_fetch_closed
from rawhttp import Reader, closed_by_peer, exchange, request


def environ_of(srv, data):
    resp = raw_fetch(srv, data)
    assert resp.status == 200, resp.raw_head
    return json.loads(resp.body)


# --- methods -------------------------------------------------------------------------------


def test_custom_uppercase_method_reaches_the_app(start_server):
    # llhttp knows a fixed list of methods; Gunicorn takes any uppercase token.
    srv = start_server("echo:environ")
    env = environ_of(srv, request(method="FROBNICATE", path="/m"))
    assert env["REQUEST_METHOD"] == "FROBNICATE"
    assert env["PATH_INFO"] == "/m"


def test_custom_method_with_a_body(start_server):
    srv = start_server("echo:environ")
    env = environ_of(srv, request(method="REPORTX", body=b"payload"))
    assert env["REQUEST_METHOD"] == "REPORTX"
    assert env["__body__"] == "payload"


@pytest.mark.parametrize("method", ["get", "GeT", "AB", "A" * 21, "GE#T"])
def test_unconventional_methods_are_refused(start_server, method):
    srv = start_server("hello")
    resp, closed = raw_fetch_closed(srv, request(method=method))
    assert resp.status == 400
    assert b"Invalid HTTP method" in resp.body
    assert closed


def test_permit_unconventional_http_method(start_server):
    srv = start_server("echo:environ", "--permit-unconventional-http-method")
    assert environ_of(srv, request(method="get"))["REQUEST_METHOD"] == "get"
    assert environ_of(srv, request(method="AB"))["REQUEST_METHOD"] == "AB"


def test_casefold_http_method(start_server):
    srv = start_server("echo:environ", "--permit-unconventional-http-method",
                       "--casefold-http-method")
    env = environ_of(srv, request(method="get", path="/x"))
    assert env["REQUEST_METHOD"] == "GET"
    assert env["PATH_INFO"] == "/x"


def test_method_split_across_reads(start_server):
    srv = start_server("echo:environ")
    with srv.connect() as s:
        for piece in (b"FRO", b"BNI", b"CATE", b" /slow HTTP/1.1\r\nHost: t\r\n\r\n"):
            s.sendall(piece)
            time.sleep(0.05)
        env = json.loads(Reader(s).read_response().body)
    assert env["REQUEST_METHOD"] == "FROBNICATE"


def test_empty_lines_before_a_request_are_skipped(start_server):
    srv = start_server("hello")
    with srv.connect() as s:
        assert exchange(s, b"\r\n" + request()).status == 200


# --- header shapes -------------------------------------------------------------------------


def test_obsolete_folding_refused_by_default(start_server):
    srv = start_server("hello")
    resp, closed = raw_fetch_closed(srv, b"GET / HTTP/1.1\r\nHost: t\r\nX-A: one\r\n two\r\n\r\n")
    assert resp.status == 400
    assert b"Obsolete line folding" in resp.body
    assert closed


def test_permit_obsolete_folding(start_server):
    srv = start_server("echo:environ", "--permit-obsolete-folding")
    env = environ_of(srv, b"GET / HTTP/1.1\r\nHost: t\r\nX-A: one\r\n two\r\n\r\n")
    assert env["HTTP_X_A"] == "one two"


def test_space_before_colon_refused_by_default(start_server):
    srv = start_server("hello")
    resp, closed = raw_fetch_closed(srv, b"GET / HTTP/1.1\r\nHost: t\r\nX-A : v\r\n\r\n")
    assert resp.status == 400
    assert closed


def test_strip_header_spaces(start_server):
    srv = start_server("echo:environ", "--strip-header-spaces")
    env = environ_of(srv, b"GET / HTTP/1.1\r\nHost: t\r\nX-A : v\r\n\r\n")
    assert env["HTTP_X_A"] == "v"


@pytest.mark.parametrize("raw", [
    b"GET / HTTP/1.1\r\n\r\n",                                   # no Host
    b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",             # two Hosts
    b"POST / HTTP/1.1\r\nHost: a\r\nContent-Type: a\r\nContent-Type: b\r\n\r\n",
    b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n",
    b"GET * HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\nX-A: b\x7fc\r\n\r\n",
])
def test_ambiguous_requests_get_400(start_server, raw):
    srv = start_server("hello")
    resp, closed = raw_fetch_closed(srv, raw)
    assert resp.status == 400, raw
    assert closed


def test_host_may_be_absent_in_http_1_0(start_server):
    srv = start_server("hello")
    with srv.connect() as s:
        assert exchange(s, request(version="HTTP/1.0", host=None)).status == 200


def test_options_star(start_server):
    srv = start_server("echo:environ")
    env = environ_of(srv, request(method="OPTIONS", path="*"))
    assert env["RAW_URI"] == "*"


# --- Expect: 100-continue ------------------------------------------------------------------


def expect_head(body_len, path="/"):
    return (f"PUT {path} HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\n"
            f"Content-Length: {body_len}\r\n\r\n").encode()


def test_continue_is_sent_when_the_app_reads_the_body(start_server):
    srv = start_server("echo:body")
    with srv.connect() as s:
        s.sendall(expect_head(5))
        reader = Reader(s)
        assert reader.read_until(b"\r\n\r\n") == b"HTTP/1.1 100 Continue\r\n\r\n"
        s.sendall(b"hello")
        resp = reader.read_response()
        assert resp.status == 200 and resp.body == b"hello"
        # The connection goes on.
        assert exchange(s, request(method="POST", body=b"abc")).body == b"abc"


def test_no_continue_when_the_app_does_not_read_the_body(start_server):
    # The application answers without touching wsgi.input: the client is told the
    # answer at once, never "100 Continue", and the connection ends (the body it held
    # back would otherwise be taken for the next request).
    srv = start_server("hello")
    with srv.connect() as s:
        s.sendall(expect_head(1_000_000))
        reader = Reader(s)
        head = reader.read_until(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 OK\r\n"), head
        assert b"Connection: close" in head
        assert reader.read_exact(len(b"Hello, World!\n")) == b"Hello, World!\n"
        assert closed_by_peer(s)


def test_body_sent_without_waiting_for_continue(start_server):
    # curl and others send the body after a short wait anyway.
    srv = start_server("echo:body")
    with srv.connect() as s:
        s.sendall(expect_head(5) + b"early")
        reader = Reader(s)
        first = reader.read_until(b"\r\n\r\n")
        assert first == b"HTTP/1.1 100 Continue\r\n\r\n"
        resp = reader.read_response()
        assert resp.body == b"early"


def test_expect_chunked_body(start_server):
    srv = start_server("echo:body")
    with srv.connect() as s:
        s.sendall(b"PUT / HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\n"
                  b"Transfer-Encoding: chunked\r\n\r\n")
        reader = Reader(s)
        assert reader.read_until(b"\r\n\r\n") == b"HTTP/1.1 100 Continue\r\n\r\n"
        s.sendall(b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
        assert reader.read_response().body == b"abcde"


def test_client_gone_before_sending_the_body(start_server):
    srv = start_server("echo:body", "--log-level", "debug")
    s = srv.connect()
    s.sendall(expect_head(5))
    assert Reader(s).read_until(b"\r\n\r\n") == b"HTTP/1.1 100 Continue\r\n\r\n"
    s.shutdown(socket.SHUT_WR)
    s.close()
    # A client that leaves is no application error: a debug line, no traceback.
    srv.wait_for_log(r"\[DEBUG\] Ignored client disconnection")
    assert "[ERROR]" not in srv.log_text() and "Traceback" not in srv.log_text()
    # The worker goes on.
    with srv.connect() as s2:
        assert exchange(s2, request(method="POST", body=b"ok")).body == b"ok"


# --- versions ------------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["HTTP/1.2", "HTTP/2.0", "HTTP/0.9", "HTTP/11", "HTTX/1.1"])
def test_unconventional_versions_refused_by_default(start_server, version):
    srv = start_server("hello")
    resp, closed = raw_fetch_closed(srv, request(version=version))
    # An unknown minor version of HTTP/1 is 505 (test_strict_parsing.py); the rest 400.
    assert resp.status == (505 if version == "HTTP/1.2" else 400)
    assert closed


@pytest.mark.parametrize("version,keeps", [("HTTP/1.2", True), ("HTTP/2.0", True),
                                           ("HTTP/0.9", False)])
def test_permit_unconventional_http_version(start_server, version, keeps):
    srv = start_server("echo:environ", "--permit-unconventional-http-version")
    with srv.connect() as s:
        resp = exchange(s, request(version=version, path="/v?q=1"))
        env = json.loads(resp.body)
        assert env["SERVER_PROTOCOL"] == version
        assert env["PATH_INFO"] == "/v" and env["QUERY_STRING"] == "q=1"
        # From 1.1 up the connection follows HTTP/1.1 rules (kept alive).
        assert (resp.header("Connection") == "keep-alive") == keeps
        if keeps:
            assert exchange(s, request()).status == 200


def test_permit_unconventional_version_still_refuses_garbage(start_server):
    srv = start_server("hello", "--permit-unconventional-http-version")
    for version in ("HTTP/11", "HTTP/1.x", "FOO/1.1"):
        resp, closed = raw_fetch_closed(srv, request(version=version))
        assert resp.status == 400, version
        assert closed


def test_permit_unconventional_version_split_line(start_server):
    srv = start_server("echo:environ", "--permit-unconventional-http-version")
    with srv.connect() as s:
        for piece in (b"GET /sp", b"lit HTTP/1.", b"3\r", b"\nHost: t\r\n\r\n"):
            s.sendall(piece)
            time.sleep(0.05)
        env = json.loads(Reader(s).read_response().body)
    assert env["SERVER_PROTOCOL"] == "HTTP/1.3"
    assert env["PATH_INFO"] == "/split"
