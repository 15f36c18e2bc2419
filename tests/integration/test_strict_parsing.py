"""Stricter HTTP/1.1 request parsing (docs/http.md, "Where we are stricter than
Gunicorn"): an invalid Host, bytes outside the request-target's set, a bare CR where a
line ends, an empty Transfer-Encoding, trailer fields that must not be trailers,
CONNECT, unknown HTTP/1 minor versions; and the valid shapes that must still be
served (chunk extensions with whitespace, an empty Host beside an absolute-form
target). Each refusal is checked on a raw socket: the status and Gunicorn's HTML error
page, the connection closed, nothing else sent, and the application never called."""

import json

import pytest

from rawhttp import Reader, exchange, request

CHUNKED = b"POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"

REASONS = {400: "Bad Request", 501: "Not Implemented", 505: "HTTP Version Not Supported"}


@pytest.fixture
def srv(start_server):
    return start_server("strict_app:app")


def refused(srv, data, status, message=None):
    """Sends `data` on a new connection: exactly one error page with `status` comes
    back, then the close; a later request shows the application never saw `data`."""
    with srv.connect() as s:
        s.sendall(data)
        reader = Reader(s)
        resp = reader.read_response()
        assert resp.status == status, (data, resp.raw_head, resp.body)
        assert resp.reason == REASONS[status]
        assert resp.header("Connection").lower() == "close"
        assert resp.header("Content-Type") == "text/html"
        assert f"<title>{REASONS[status]}</title>".encode() in resp.body
        if message is not None:
            assert message.encode() in resp.body, resp.body
        # Nothing after the error page (no answer to a prefix or to smuggled bytes),
        # then the close (read_to_close fails on a silent open connection).
        assert reader.read_to_close() == b""
    assert served(srv, "/after")["seen"] == ["/after"], "the application saw the request"


def served(srv, path="/", data=None):
    with srv.connect() as s:
        resp = exchange(s, data if data is not None else request(path=path))
        assert resp.status == 200, (data, resp.raw_head, resp.body)
        return json.loads(resp.body)


# --- Host (RFC 9112 section 3.2, RFC 9110 section 7.2) --------------------------------------


@pytest.mark.parametrize("value", [
    b"user@example.com", b"example.com/x", b"a.example, b.example", b"a b", b"example.com:80x",
    b"example.com:123456", b":80", b"[::1", b"caf\xc3\xa9.example",
], ids=["userinfo", "path", "list", "blank", "bad-port", "long-port", "no-host", "open-bracket",
        "raw-utf8"])
def test_invalid_host_is_refused(srv, value):
    refused(srv, b"GET / HTTP/1.1\r\nHost: " + value + b"\r\n\r\n", 400, "Invalid Host header")


@pytest.mark.parametrize("line", [b"GET / HTTP/1.1", b"GET / HTTP/1.0", b"OPTIONS * HTTP/1.1"],
                         ids=["http11", "http10", "asterisk"])
def test_empty_host_without_authority_is_refused(srv, line):
    # RFC 9112 3.2: a client sends an empty Host when the target URI has no
    # authority; an http URI with an empty host is invalid (RFC 9110 4.2.1).
    refused(srv, line + b"\r\nHost:\r\n\r\n", 400, "Invalid Host header: &#x27;&#x27;")


@pytest.mark.parametrize("data,host", [
    (b"GET / HTTP/1.1\r\nHost: [::1]:8000\r\n\r\n", "[::1]:8000"),
    (b"GET / HTTP/1.1\r\nHost: xn--caf-dma.example:80\r\n\r\n", "xn--caf-dma.example:80"),
    (b"GET http://example.com/x HTTP/1.1\r\nHost:\r\n\r\n", ""),
    (b"GET / HTTP/1.0\r\n\r\n", None),
], ids=["ipv6", "idna-port", "absolute-form-empty-host", "http10-no-host"])
def test_valid_host_is_served(srv, data, host):
    assert served(srv, data=data)["http"].get("HTTP_HOST") == host


# --- request-target (RFC 9112 section 3.2, RFC 3986) ----------------------------------------


@pytest.mark.parametrize("target", [
    b"/caf\xc3\xa9", b"/\xc0\xaf", b"/a\x01b", b"/a\tb", b"/a\x7f", b"/?q=\xff",
], ids=["utf8", "overlong-utf8", "ctl", "tab", "del", "query-byte"])
def test_target_bytes_outside_the_set_are_refused(srv, target):
    refused(srv, b"GET " + target + b" HTTP/1.1\r\nHost: h\r\n\r\n", 400)


@pytest.mark.parametrize("target", [
    b"s://]ufd/:", b"http:///x", b"http://user:pw@evil.example/", b"http://h:port/",
], ids=["bad-authority", "empty-host", "userinfo", "bad-port"])
def test_invalid_absolute_form_is_refused(srv, target):
    refused(srv, b"GET " + target + b" HTTP/1.1\r\nHost: h\r\n\r\n", 400,
            "is not a valid absolute URI")


def test_valid_targets_are_served(srv):
    assert served(srv, "/caf%C3%A9?x=%2F")["seen"] == ["/caf%C3%A9?x=%2F"]
    assert served(srv, "/a{b}|c^d")["seen"][-1] == "/a{b}|c^d"
    env = served(srv, data=request(path="http://example.com:8080/p?q=1",
                                   host="example.com:8080"))
    assert env["seen"][-1] == "http://example.com:8080/p?q=1"


# --- a bare CR where a line ends ------------------------------------------------------------


@pytest.mark.parametrize("data", [
    b"GET / HTTP/1.1\r\nHost: h\r\n\rSome-Header: x\r\n\r\n",
    b"GET /a HTTP/1.1\r\nHost: h\r\n\rGET /smuggled HTTP/1.1\r\nHost: h\r\n\r\n",
    CHUNKED + b"3\r\nabc\r\n0\r\n\rGET /smuggled HTTP/1.1\r\nHost: h\r\n\r\n",
    CHUNKED + b"3\r\nabc\r\r0\r\n\r\n",
    CHUNKED + b"5\r\nhelloXX0\r\n\r\n",
], ids=["end-of-head", "end-of-head-pipelined", "end-of-trailers", "after-chunk-data",
        "chunk-data-no-crlf"])
def test_bare_cr_refuses_the_whole_message(srv, data):
    # Never a 200 for a prefix of the message, and nothing for the bytes after it.
    refused(srv, data, 400)


# --- Transfer-Encoding ----------------------------------------------------------------------


@pytest.mark.parametrize("data", [
    b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding:\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: \r\nContent-Length: 3\r\n\r\nabc",
], ids=["alone", "with-content-length"])
def test_empty_transfer_encoding_is_400(srv, data):
    refused(srv, data, 400, "TRANSFER-ENCODING")


@pytest.mark.parametrize("data", [
    b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: identity\r\nContent-Length: 3\r\n\r\nabc",
    b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: identity\r\n\r\nabc",
], ids=["with-content-length", "alone"])
def test_transfer_encoding_identity_is_400(srv, data):
    # RFC 9112 6.3: chunked must be the final coding; identity left the registry.
    refused(srv, data, 400)


# --- trailers (RFC 9110 section 6.5.1) ------------------------------------------------------


@pytest.mark.parametrize("name", ["Content-Length", "Transfer-Encoding", "Host", "Authorization",
                                  "Cookie", "TE", "Trailer", "Content-Type"])
def test_forbidden_trailer_is_refused(srv, name):
    data = CHUNKED + b"3\r\nabc\r\n0\r\n" + name.encode() + b": 5\r\n\r\n"
    refused(srv, data, 400, "not allowed in a trailer")


def test_allowed_trailer_is_read_and_kept_off_the_environ(srv):
    env = served(srv, data=CHUNKED + b"3\r\nabc\r\n0\r\nX-Checksum: 1\r\n\r\n")
    assert env["body"] == "abc"
    assert "HTTP_X_CHECKSUM" not in env["http"]


# --- CONNECT and versions -------------------------------------------------------------------


def test_connect_is_501(srv):
    refused(srv, b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", 501,
            "CONNECT")


@pytest.mark.parametrize("version", ["HTTP/1.2", "HTTP/1.9"])
def test_unknown_http1_minor_version_is_505(srv, version):
    refused(srv, request(version=version), 505, version)


def test_unknown_minor_version_served_with_permit(start_server):
    srv = start_server("strict_app:app", "--permit-unconventional-http-version")
    with srv.connect() as s:
        resp = exchange(s, request(version="HTTP/1.2", path="/v"))
        assert resp.status == 200
        assert json.loads(resp.body)["protocol"] == "HTTP/1.2"
        assert resp.header("Connection") == "keep-alive"  # HTTP/1.1 rules


# --- chunk extensions (RFC 9112 section 7.1.1) ----------------------------------------------


@pytest.mark.parametrize("line", [
    b"5; some; parameters=stuff", b"5 ; a = b", b"5\t;\ta\t=\t\"x \\\" y\"", b"5;a;b=c",
], ids=["issue", "bws", "tabs-quoted", "plain"])
def test_chunk_extensions_with_whitespace_are_served(srv, line):
    env = served(srv, data=CHUNKED + line + b"\r\nhello\r\n0 ; last\r\n\r\n")
    assert env["body"] == "hello"


@pytest.mark.parametrize("line", [
    b"5;a\nhello", b"5;a\rb\r\nhello", b" 5\r\nhello", b"5 \r\nhello", b"5;a b\r\nhello",
    b"5;a=\"x\r\nhello",
], ids=["bare-lf", "bare-cr", "space-before-size", "space-without-ext", "two-names",
        "open-quote"])
def test_bad_chunk_lines_are_refused(srv, line):
    refused(srv, CHUNKED + line + b"\r\n0\r\n\r\n", 400)
