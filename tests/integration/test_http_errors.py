"""Malformed and limit-breaking requests on raw sockets, Expect: 100-continue, and
application headers that try to split the response."""

import json
import time

import pytest
import requests

from helpers import get, raw_fetch_closed
from rawhttp import Reader, closed_by_peer, exchange, request


def assert_error_page(resp, status, reason):
    assert resp.status == status, resp.raw_head
    assert resp.reason == reason
    assert resp.header("Connection").lower() == "close"
    assert resp.header("Content-Type") == "text/html"
    assert f"<title>{reason}</title>".encode() in resp.body


def still_serving(srv):
    """The same worker answers a well-formed request afterwards."""
    assert get(srv).status_code == 200
    assert len(srv.worker_pids()) == srv.workers, "a worker was re-forked"


# --- request line ------------------------------------------------------------------------


def test_request_line_too_long_default_limit(start_server):
    srv = start_server("hello")
    resp, closed = raw_fetch_closed(srv, request(path="/" + "a" * 5000))
    assert_error_page(resp, 400, "Bad Request")
    assert b"Request Line is too large" in resp.body
    assert closed
    still_serving(srv)


def test_request_line_limit_boundary(start_server):
    srv = start_server("hello", "--limit-request-line", "100")
    # "GET <path> HTTP/1.1" without its CRLF is exactly the limit: accepted.
    path = "/" + "p" * (100 - len("GET  HTTP/1.1") - 1)
    assert len(f"GET {path} HTTP/1.1") == 100
    with srv.connect() as s:
        assert exchange(s, request(path=path)).status == 200
    resp, closed = raw_fetch_closed(srv, request(path=path + "p"))
    assert_error_page(resp, 400, "Bad Request")
    assert closed
    still_serving(srv)


# --- header limits -----------------------------------------------------------------------


def test_too_many_headers(start_server):
    srv = start_server("hello", "--limit-request-fields", "5")
    ok = [("Host", "t")] + [(f"X-H{i}", "v") for i in range(4)]
    with srv.connect() as s:
        assert exchange(s, request(headers=ok)).status == 200
    resp, closed = raw_fetch_closed(srv, request(headers=ok + [("X-One-Too-Many", "v")]))
    assert_error_page(resp, 431, "Request Header Fields Too Large")
    assert closed
    still_serving(srv)


def test_too_many_headers_default_limit(start_server):
    srv = start_server("hello")
    headers = [(f"X-Header-{i}", "v") for i in range(150)]
    resp, closed = raw_fetch_closed(srv, request(headers=headers))
    assert_error_page(resp, 431, "Request Header Fields Too Large")
    assert closed


def test_header_too_large(start_server):
    srv = start_server("hello", "--limit-request-field_size", "100")
    # "X-Big: <value>\r\n" of exactly 100 bytes is accepted, 101 is not.
    value = "v" * (100 - len("X-Big: \r\n"))
    with srv.connect() as s:
        assert exchange(s, request(headers=[("X-Big", value)])).status == 200
    resp, closed = raw_fetch_closed(srv, request(headers=[("X-Big", value + "v")]))
    assert_error_page(resp, 431, "Request Header Fields Too Large")
    assert closed
    still_serving(srv)


def test_header_too_large_default_limit(start_server):
    srv = start_server("hello")
    resp, closed = raw_fetch_closed(srv, request(headers=[("X-Big", "v" * 9000)]))
    assert_error_page(resp, 431, "Request Header Fields Too Large")
    assert closed


# --- malformed requests ------------------------------------------------------------------


@pytest.mark.parametrize("data", [
    b"GARBAGE\r\n\r\n",
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 40,  # a TLS ClientHello
    b"GET / HTTP/1.1 extra\r\nHost: t\r\n\r\n",
    b"GET / HTTX/1.1\r\nHost: t\r\n\r\n",
    b"GET / HTTP/2.0\r\nHost: t\r\n\r\n",
    b"GET / HTTP/0.9\r\nHost: t\r\n\r\n",
    b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",  # the HTTP/2 preface
    b"GET / HTTP/1.1\r\nHost: t\r\nX-Bad Name: v\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: t\r\nX-No-Colon\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: t\r\nX-Space : v\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: abc\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
    b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
], ids=["garbage", "tls", "line-extra", "bad-version", "http2.0", "http0.9",
        "h2-preface", "space-in-name", "no-colon",
        "space-before-colon", "bad-length", "two-lengths", "bad-chunk-size"])
def test_malformed_request_gets_400(start_server, data):
    srv = start_server("hello")
    resp, closed = raw_fetch_closed(srv, data)
    assert_error_page(resp, 400, "Bad Request")
    assert closed
    still_serving(srv)


def test_content_length_with_transfer_encoding_gets_400(start_server):
    srv = start_server("echo:body")
    data = (b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
    resp, closed = raw_fetch_closed(srv, data)
    assert_error_page(resp, 400, "Bad Request")
    assert closed
    still_serving(srv)


def test_unsupported_transfer_coding_gets_501(start_server):
    srv = start_server("echo:body")
    data = b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: foo, chunked\r\n\r\n0\r\n\r\n"
    resp, closed = raw_fetch_closed(srv, data)
    assert_error_page(resp, 501, "Not Implemented")
    assert closed


def test_transfer_coding_not_ending_in_chunked_gets_400(start_server):
    # Gunicorn accepts a lone "gzip" and reads no body; a proxy may disagree about where
    # the body ends, so gunicorn-c refuses any framing whose last coding is not chunked.
    srv = start_server("echo:body")
    data = b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip\r\n\r\nxxxx"
    resp, closed = raw_fetch_closed(srv, data)
    assert_error_page(resp, 400, "Bad Request")
    assert closed


def test_error_after_good_request_on_same_connection(start_server):
    srv = start_server("hello")
    with srv.connect() as s:
        s.sendall(request() + b"NOT HTTP AT ALL\r\n\r\n")
        reader = Reader(s)
        first = reader.read_response()
        assert first.status == 200 and first.body == b"Hello, World!\n"
        second = reader.read_response()
        assert_error_page(second, 400, "Bad Request")
        assert closed_by_peer(s)


def test_client_closing_mid_request_is_harmless(start_server):
    srv = start_server("echo:body")
    with srv.connect() as s:
        s.sendall(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\npartial")
    with srv.connect() as s:
        s.sendall(b"GET /half-a-request HTTP/1.1\r\nHo")
    still_serving_echo = requests.post(f"http://127.0.0.1:{srv.port}/", data=b"after",
                                       timeout=5)
    assert still_serving_echo.content == b"after"
    assert len(srv.worker_pids()) == 1
    assert "Error handling request" not in srv.log_text()


def test_request_not_completed_within_timeout_is_closed(start_server):
    srv = start_server("hello", "--timeout", "1")
    with srv.connect() as s:
        s.sendall(b"GET /slowloris HTTP/1.1\r\nHost: t\r\nX-Trickle: ")
        start = time.monotonic()
        assert closed_by_peer(s, timeout=5)
        assert time.monotonic() - start < 3
    still_serving(srv)


# --- Expect: 100-continue ----------------------------------------------------------------


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_expect_100_continue(start_server, chunked):
    srv = start_server("echo:body")
    body = b"body sent after 100"
    framing = ([("Transfer-Encoding", "chunked")] if chunked
               else [("Content-Length", str(len(body)))])
    with srv.connect(timeout=5) as s:
        s.sendall(request("POST", "/", headers=[("Expect", "100-continue")] + framing))
        reader = Reader(s)
        # The interim response must come before we send a single body byte (a hang
        # here is a socket timeout, i.e. a failure).
        interim = reader.read_response("POST")
        assert interim.status == 100
        assert interim.raw_head == b"HTTP/1.1 100 Continue\r\n\r\n"
        if chunked:
            s.sendall(b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body))
        else:
            s.sendall(body)
        final = reader.read_response("POST")
        assert final.status == 200
        assert final.body == body
        # The connection is still usable, and a request without Expect gets no 100.
        s.sendall(request("POST", "/", body=b"second"))
        again = reader.read_response("POST")
        assert again.status == 200 and again.body == b"second"


def test_expect_100_continue_with_body_already_sent(start_server):
    srv = start_server("echo:body")
    with srv.connect() as s:
        s.sendall(request("POST", "/", headers=[("Expect", "100-continue")], body=b"eager"))
        reader = Reader(s)
        resp = reader.read_response("POST")
        if resp.status == 100:  # allowed, but then the final response must follow
            resp = reader.read_response("POST")
        assert resp.status == 200
        assert resp.body == b"eager"


def test_unknown_expectation_gets_417(start_server):
    srv = start_server("echo:body")
    resp, closed = raw_fetch_closed(srv, request("POST", "/", headers=[("Expect", "teapot")],
                                                 body=b"x"))
    assert_error_page(resp, 417, "Expectation Failed")
    assert closed


# --- headers from the application --------------------------------------------------------


@pytest.mark.parametrize("where", ["value", "name", "status"])
def test_crlf_in_app_header_gives_500_not_split(start_server, where):
    srv = start_server("errors:bad_header")
    with srv.connect() as s:
        s.sendall(request(path=f"/?{where}"))
        reader = Reader(s)
        resp = reader.read_response()
        assert resp.status == 500, resp.raw_head
        assert b"Injected" not in resp.raw_head
        assert b"should never be sent" not in resp.body
        assert reader.read_to_close() == b""  # nothing after the error page
    srv.wait_for_log(rf"Error handling request GET /\?{where}")
    srv.wait_for_log(r"ValueError: invalid (header value|header name|status)")
    still_serving_app = requests.get(f"http://127.0.0.1:{srv.port}/?value", timeout=5)
    assert still_serving_app.status_code == 500
    assert len(srv.worker_pids()) == 1


def test_hop_by_hop_headers_from_app_are_dropped(start_server, tmp_path):
    # A tiny app module written for this test: it tries to set framing headers itself.
    (tmp_path / "hop_app.py").write_text(
        "def application(environ, start_response):\n"
        "    start_response('200 OK', [('Content-Type', 'text/plain'),\n"
        "                              ('Transfer-Encoding', 'chunked'),\n"
        "                              ('Connection', 'close'), ('X-Kept', 'yes')])\n"
        "    return [b'plain body']\n")
    srv = start_server("hop_app", app_dir=tmp_path)
    with srv.connect() as s:
        reader = Reader(s)
        for _ in range(2):
            s.sendall(request())
            resp = reader.read_response()
            assert resp.header("X-Kept") == "yes"
            assert resp.headers_all("Transfer-Encoding") == []
            assert resp.body == b"plain body"
            assert resp.header("Connection").lower() == "keep-alive"


def test_environ_survives_odd_but_valid_headers(start_server):
    srv = start_server("echo:environ")
    with srv.connect() as s:
        resp = exchange(s, b"GET /odd HTTP/1.1\r\nHost: t\r\nX-Latin: caf\xe9\r\n"
                           b"X-Tab:\tvalue\twith tab\r\nX-Empty:\r\n\r\n")
    env = json.loads(resp.body)
    assert env["HTTP_X_LATIN"] == "caf\u00e9"
    assert env["HTTP_X_TAB"] == "value\twith tab"
    assert env["HTTP_X_EMPTY"] == ""
