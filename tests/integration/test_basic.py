"""Requests and responses end to end: real clients (requests, http.client, curl, raw
sockets) against the real binary serving the apps in apps/."""

import hashlib
import io
import json
import os
import socket
import subprocess
import threading
import time
from urllib.parse import quote

import pytest
import requests

from rawhttp import Reader, closed_by_peer, exchange, request


def get_json(srv, path="/", **kwargs):
    r = requests.get(srv_url(srv, path), timeout=5, **kwargs)
    assert r.status_code == 200, r.text
    return r.json()


def srv_url(srv, path="/"):
    return f"http://127.0.0.1:{srv.port}{path}"


# --- hello world -------------------------------------------------------------------------


def test_hello_requests(start_server):
    srv = start_server("hello")
    r = requests.get(srv_url(srv), timeout=5)
    assert r.status_code == 200
    assert r.text == "Hello, World!\n"
    assert r.headers["Content-Type"] == "text/plain"
    assert r.headers["Content-Length"] == "14"
    assert r.headers["Server"].startswith("gunicorn")
    assert "Date" in r.headers


def test_hello_http_client(start_server):
    srv = start_server("hello:app")
    conn = srv.http_connection()
    conn.request("GET", "/")
    resp = conn.getresponse()
    assert resp.status == 200
    assert resp.reason == "OK"
    assert resp.version == 11
    assert resp.read() == b"Hello, World!\n"
    conn.close()


def test_hello_factory_and_pythonpath(start_server):
    srv = start_server("hello:create_app()", app_dir_flag="--pythonpath")
    assert requests.get(srv_url(srv), timeout=5).text == "Hello, World!\n"


def test_curl(start_server):
    srv = start_server("hello")
    out = subprocess.run(["curl", "-s", "--max-time", "5", srv_url(srv)],
                         capture_output=True, timeout=10)
    assert out.returncode == 0, out.stderr
    assert out.stdout == b"Hello, World!\n"


def test_curl_post_with_expect_continue(start_server):
    srv = start_server("echo:body")
    payload = b"x" * 5000
    out = subprocess.run(
        ["curl", "-s", "-v", "--max-time", "5", "-H", "Expect: 100-continue",
         "-H", "Content-Type: application/x-test", "--data-binary", "@-", srv_url(srv)],
        input=payload, capture_output=True, timeout=10)
    assert out.returncode == 0, out.stderr
    assert out.stdout == payload
    assert b"HTTP/1.1 100 Continue" in out.stderr


# --- request bodies ----------------------------------------------------------------------


def test_post_content_length(start_server):
    srv = start_server("echo:body")
    payload = b"name=value&other=\x00\xff binary"
    r = requests.post(srv_url(srv), data=payload, timeout=5,
                      headers={"Content-Type": "application/x-test"})
    assert r.status_code == 200
    assert r.content == payload
    assert r.headers["Content-Type"] == "application/x-test"


def test_post_chunked(start_server):
    srv = start_server("echo:environ")
    # (No empty part: requests would send it as the terminating zero-length chunk.)
    parts = [b"first part|", b"second part|", b"third"]

    def gen():
        yield from parts

    r = requests.post(srv_url(srv), data=gen(), timeout=5)
    assert r.status_code == 200
    env = r.json()
    assert env["HTTP_TRANSFER_ENCODING"] == "chunked"
    assert "CONTENT_LENGTH" not in env
    assert env["__body__"] == b"".join(parts).decode()


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_large_body_spooled(start_server, chunked):
    # 3 MiB passes the in-memory threshold, so the body goes through a temporary file.
    srv = start_server("echo:body")
    payload = os.urandom(3 * 1024 * 1024)
    data = (payload[i:i + 100000] for i in range(0, len(payload), 100000)) if chunked else payload
    r = requests.post(srv_url(srv), data=data, timeout=10)
    assert r.status_code == 200
    assert len(r.content) == len(payload)
    assert hashlib.sha256(r.content).digest() == hashlib.sha256(payload).digest()


# --- response shapes ---------------------------------------------------------------------


def test_generator_response_is_chunked(start_server):
    srv = start_server("shapes:generator")
    with srv.connect() as s:
        resp = exchange(s, request())
    assert resp.status == 200
    assert resp.framing == "chunked"
    assert resp.body == b"chunk1;chunk2;chunk3;"
    assert requests.get(srv_url(srv), timeout=5).text == "chunk1;chunk2;chunk3;"


def test_start_response_called_late_from_generator(start_server):
    srv = start_server("shapes:late_start")
    r = requests.get(srv_url(srv), timeout=5)
    assert r.status_code == 200
    assert r.headers["X-Late"] == "yes"
    assert r.text == "late-body"


def test_big_streamed_response(start_server):
    srv = start_server("shapes:big")
    r = requests.get(srv_url(srv, "/?80"), timeout=10)
    assert r.status_code == 200
    expected = b"".join(bytes([i % 251]) * 65536 for i in range(80))
    assert len(r.content) == len(expected)
    assert r.content == expected


def test_one_item_list_gets_content_length(start_server):
    srv = start_server("shapes:list_one")
    with srv.connect() as s:
        resp = exchange(s, request())
    assert resp.framing == "length"
    assert resp.header("Content-Length") == str(len(b"single item body"))
    assert resp.body == b"single item body"


def test_many_item_list_is_chunked(start_server):
    srv = start_server("shapes:list_many")
    with srv.connect() as s:
        resp = exchange(s, request())
    assert resp.framing == "chunked"
    assert resp.body == b"first second"


def test_empty_body_has_zero_length(start_server):
    srv = start_server("shapes:empty")
    with srv.connect() as s:
        resp = exchange(s, request())
    assert resp.status == 200
    assert resp.header("Content-Length") == "0"
    assert resp.body == b""


def test_write_callable_mixed_with_iterable(start_server):
    srv = start_server("shapes:write_mixed")
    with srv.connect() as s:
        resp = exchange(s, request())
    assert resp.status == 200
    assert resp.framing == "chunked"
    assert resp.body == b"written-1 written-2 returned-1 returned-2"


def test_iterable_close_is_called(start_server):
    srv = start_server("shapes:closing")
    assert requests.get(srv_url(srv), timeout=5).text == "closing body"
    srv.wait_for_log(r"ClosingBody\.close called")


def test_short_content_length_closes_connection(start_server):
    # A long keep-alive, so that only a deliberate close (not the idle timer) ends it.
    srv = start_server("shapes:short_length", "--keep-alive", "30")
    with srv.connect(timeout=3) as s:
        s.sendall(request())
        reader = Reader(s)
        version, status, _, headers, _ = reader.read_head()
        assert status == 200
        assert dict(headers)["Content-Length"] == "100"
        # The server must close after the 10 bytes it has; the socket timeout turns a
        # hang into a failure.
        body = reader.read_to_close()
    assert body == b"only ten!!"
    # The worker is fine afterwards.
    assert requests.get(srv_url(srv), timeout=5).status_code == 200


def test_body_longer_than_content_length_is_truncated(start_server):
    srv = start_server("shapes:long_body")
    with srv.connect() as s:
        s.sendall(request() + request())
        reader = Reader(s)
        first = reader.read_response()
        second = reader.read_response()
    assert first.body == b"01234"
    assert second.body == b"01234"  # no stray bytes before the second response


# --- connections -------------------------------------------------------------------------


def test_keep_alive_reuses_connection(start_server):
    srv = start_server("echo:environ")
    conn = srv.http_connection()
    seen = []
    for i in range(3):
        conn.request("GET", f"/req{i}")
        resp = conn.getresponse()
        env = json.loads(resp.read())
        assert resp.status == 200
        assert resp.getheader("Connection", "").lower() != "close"
        assert env["PATH_INFO"] == f"/req{i}"
        seen.append((id(conn.sock), conn.sock.getsockname(), env["REMOTE_PORT"]))
    conn.close()
    assert len(set(seen)) == 1, seen
    assert str(seen[0][1][1]) == seen[0][2]


def test_unread_request_body_does_not_break_keep_alive(start_server):
    # hello never reads wsgi.input: the next request must still parse cleanly.
    srv = start_server("hello")
    with srv.connect() as s:
        reader = Reader(s)
        for body in (b"x" * 100000, b"tiny"):
            s.sendall(request("POST", "/", body=body))
            resp = reader.read_response()
            assert resp.status == 200 and resp.body == b"Hello, World!\n"


def test_pipelined_requests_answered_in_order(start_server):
    srv = start_server("echo:environ")
    reqs = [
        request(path="/one"),
        request("POST", "/two", body=b"posted-body"),
        request(path="/three?x=3"),
        request(path="/four", headers=[("Connection", "close")]),
    ]
    with srv.connect() as s:
        s.sendall(b"".join(reqs))
        reader = Reader(s)
        responses = [reader.read_response() for _ in reqs]
        assert closed_by_peer(s)
    envs = [json.loads(r.body) for r in responses]
    assert [e["PATH_INFO"] for e in envs] == ["/one", "/two", "/three", "/four"]
    assert envs[1]["__body__"] == "posted-body"
    assert envs[2]["QUERY_STRING"] == "x=3"
    assert responses[3].header("Connection") == "close"


def test_http10_without_keep_alive_closes(start_server):
    srv = start_server("hello")
    with srv.connect() as s:
        resp = exchange(s, request(version="HTTP/1.0", host=None))
        assert resp.version == "HTTP/1.0"
        assert resp.status == 200
        assert resp.body == b"Hello, World!\n"
        assert resp.header("Connection").lower() == "close"
        assert closed_by_peer(s)


def test_http10_keep_alive(start_server):
    srv = start_server("hello")
    with srv.connect() as s:
        reader = Reader(s)
        for _ in range(2):
            s.sendall(request(version="HTTP/1.0", headers=[("Connection", "keep-alive")]))
            resp = reader.read_response()
            assert resp.status == 200
            assert resp.header("Connection").lower() == "keep-alive"
            assert resp.body == b"Hello, World!\n"


def test_http10_without_length_is_close_delimited(start_server):
    srv = start_server("shapes:iter_no_length")
    with srv.connect() as s:
        resp = exchange(s, request(version="HTTP/1.0", headers=[("Connection", "keep-alive")]))
    assert resp.framing == "close"
    assert resp.header("Connection").lower() == "close"
    assert resp.body == b"one two three"


def test_http11_without_length_is_chunked_and_kept_alive(start_server):
    srv = start_server("shapes:iter_no_length")
    with srv.connect() as s:
        reader = Reader(s)
        for _ in range(2):
            s.sendall(request())
            resp = reader.read_response()
            assert resp.framing == "chunked"
            assert resp.body == b"one two three"


def test_connection_close_request(start_server):
    srv = start_server("hello")
    with srv.connect() as s:
        resp = exchange(s, request(headers=[("Connection", "close")]))
        assert resp.header("Connection").lower() == "close"
        assert closed_by_peer(s)


def test_idle_keep_alive_connection_closed_after_timeout(start_server):
    srv = start_server("hello", "--keep-alive", "1")
    with srv.connect() as s:
        resp = exchange(s, request())
        assert resp.header("Connection").lower() == "keep-alive"
        start = time.monotonic()
        assert closed_by_peer(s, timeout=4)
        assert 0.5 < time.monotonic() - start < 3


def test_keep_alive_zero_disables_keep_alive(start_server):
    srv = start_server("hello", "--keep-alive", "0")
    with srv.connect() as s:
        resp = exchange(s, request())
        assert resp.status == 200
        assert resp.header("Connection").lower() == "close"
        assert closed_by_peer(s)


# --- HEAD and bodiless statuses ----------------------------------------------------------


@pytest.mark.parametrize("path", ["/", "/gen"])
def test_head_has_no_body(start_server, path):
    srv = start_server("shapes:status")
    with srv.connect() as s:
        reader = Reader(s)
        s.sendall(request("HEAD", path))
        head = reader.read_response("HEAD")
        assert head.status == 200
        if path == "/":
            assert head.header("Content-Length") == str(len(b"body-bytes for HEAD"))
        # A GET on the same connection parses cleanly only if HEAD sent no body bytes.
        s.sendall(request("GET", "/"))
        get = reader.read_response()
        assert get.status == 200
        assert get.body == b"body-bytes for GET"
    r = requests.head(srv_url(srv, path), timeout=5)
    assert r.status_code == 200 and r.content == b""


@pytest.mark.parametrize("code", [204, 304])
def test_bodiless_statuses(start_server, code):
    srv = start_server("shapes:status")
    with srv.connect() as s:
        reader = Reader(s)
        s.sendall(request(path=f"/{code}"))
        resp = reader.read_response()
        assert resp.status == code
        assert resp.header("Transfer-Encoding") is None
        s.sendall(request("GET", "/"))
        follow = reader.read_response()
        assert follow.body == b"body-bytes for GET"


# --- errors in the application -----------------------------------------------------------


def test_app_exception_gives_500_and_worker_survives(start_server):
    srv = start_server("errors:raising")
    pid_before = int(requests.get(srv_url(srv), timeout=5).text)
    r = requests.get(srv_url(srv, "/boom"), timeout=5)
    assert r.status_code == 500
    assert "boom from the app" not in r.text  # no traceback leaks to the client
    srv.wait_for_log(r"Error handling request GET /boom")
    srv.wait_for_log(r"Traceback \(most recent call last\)")
    srv.wait_for_log(r"RuntimeError: boom from the app")
    assert int(requests.get(srv_url(srv), timeout=5).text) == pid_before
    assert len(srv.worker_pids()) == 1


def test_exception_inside_iterable_gives_500(start_server):
    srv = start_server("errors:raising_in_iter")
    r = requests.get(srv_url(srv, "/iter"), timeout=5)
    assert r.status_code == 500
    srv.wait_for_log(r"Error handling request GET /iter")
    srv.wait_for_log(r"KeyError: 'failure inside the iterable'")


def test_str_body_gives_500(start_server):
    srv = start_server("errors:str_body")
    r = requests.get(srv_url(srv, "/str"), timeout=5)
    assert r.status_code == 500
    srv.wait_for_log(r"Error handling request GET /str")
    srv.wait_for_log(r"TypeError: .*must be bytes")


def test_start_response_twice_without_exc_info_raises(start_server):
    srv = start_server("errors:start_twice")
    r = requests.get(srv_url(srv), timeout=5)
    assert r.status_code == 200
    assert r.text == "raised AssertionError"


def test_exc_info_before_headers_replaces_response(start_server):
    srv = start_server("errors:exc_info_before_headers")
    r = requests.get(srv_url(srv), timeout=5)
    assert r.status_code == 503
    assert r.headers["X-Replaced"] == "yes"
    assert r.text == "replaced response"


def test_exc_info_after_headers_reraises(start_server):
    srv = start_server("errors:exc_info_after_headers")
    r = requests.get(srv_url(srv), timeout=5)
    assert r.status_code == 200
    assert r.text == "first;reraised-same"


def test_exc_info_after_headers_escaping_cuts_connection(start_server):
    srv = start_server("errors:exc_info_after_headers_propagate")
    with srv.connect() as s:
        s.sendall(request(path="/late"))
        reader = Reader(s)
        _, status, _, headers, _ = reader.read_head()
        assert status == 200
        rest = reader.read_to_close()
    # The body is cut off: the first chunk arrived but never the terminating chunk.
    assert b"partial;" in rest
    assert not rest.endswith(b"0\r\n\r\n")
    srv.wait_for_log(r"Error handling request GET /late")
    srv.wait_for_log(r"ValueError: escaped late failure")


# --- validator, environ, wsgi.input ------------------------------------------------------


@pytest.mark.parametrize("app", ["validated", "validated:streaming"])
def test_wsgiref_validator_passes(start_server, app):
    srv = start_server(app, "-e", "PYTHONWARNINGS=error")
    mark = srv.log_mark()
    body = b"line one\nline two\n"
    r = requests.post(srv_url(srv, "/validate?q=1"), data=body, timeout=5,
                      headers={"Content-Type": "text/plain"})
    assert r.status_code == 200, srv.log_text()
    if app == "validated":
        assert r.content == b"validated: " + body
    else:
        assert r.content == b"streamed:" + body + b";end"
    r = requests.get(srv_url(srv, "/"), timeout=5)
    assert r.status_code == 200, srv.log_text()
    log = "\n".join(srv.lines[mark:])
    assert "Warning" not in log
    assert "Error" not in log


def test_environ_keys(start_server):
    srv = start_server("echo:environ")
    r = requests.get(
        srv_url(srv, "/caf%C3%A9/a%2Fb%20c?x=1&y=%20z"),
        headers={"X-Custom": "value", "Content-Type": "text/x-test", "User-Agent": "gc-test"},
        timeout=5)
    env = r.json()
    assert env["REQUEST_METHOD"] == "GET"
    assert env["SCRIPT_NAME"] == ""
    assert env["PATH_INFO"] == "/caf\u00c3\u00a9/a/b c"
    assert env["PATH_INFO"].encode("latin-1").decode("utf-8") == "/caf\u00e9/a/b c"
    assert env["QUERY_STRING"] == "x=1&y=%20z"
    assert env["RAW_URI"] == "/caf%C3%A9/a%2Fb%20c?x=1&y=%20z"
    assert env["CONTENT_TYPE"] == "text/x-test"
    assert "HTTP_CONTENT_TYPE" not in env
    assert env["HTTP_X_CUSTOM"] == "value"
    assert env["HTTP_USER_AGENT"] == "gc-test"
    assert env["HTTP_HOST"] == f"127.0.0.1:{srv.port}"
    assert env["SERVER_NAME"] == "127.0.0.1"
    assert env["SERVER_PORT"] == str(srv.port)
    assert env["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert env["SERVER_SOFTWARE"].startswith("gunicorn-c/")
    assert env["REMOTE_ADDR"] == "127.0.0.1"
    assert int(env["REMOTE_PORT"]) > 0
    for key in ("REQUEST_METHOD", "SCRIPT_NAME", "PATH_INFO", "QUERY_STRING", "SERVER_NAME",
                "SERVER_PORT", "SERVER_PROTOCOL", "REMOTE_ADDR", "REMOTE_PORT", "RAW_URI"):
        assert env["__types__"][key] == "str", key


def test_environ_wsgi_keys(start_server):
    srv = start_server("echo:environ")
    env = get_json(srv)
    assert env["wsgi.version"] == [1, 0]
    assert env["__types__"]["wsgi.version"] == "tuple"
    assert env["wsgi.url_scheme"] == "http"
    assert env["wsgi.multithread"] is False
    assert env["wsgi.multiprocess"] is False
    assert env["wsgi.run_once"] is False
    assert env["wsgi.input_terminated"] is True
    assert env["__input_api__"] == ["__iter__", "read", "readline", "readlines"]
    assert env["__errors_api__"] == ["flush", "write", "writelines"]
    assert env["__callable__"]["wsgi.file_wrapper"] is True
    assert "CONTENT_LENGTH" not in env or env["CONTENT_LENGTH"] in ("", "0")


def test_environ_multiprocess_with_two_workers(start_server):
    srv = start_server("echo:environ", workers=2)
    assert get_json(srv)["wsgi.multiprocess"] is True


def test_environ_post_content_keys(start_server):
    srv = start_server("echo:environ")
    r = requests.post(srv_url(srv, "/submit"), data=b"a=1&b=2", timeout=5,
                      headers={"Content-Type": "application/x-www-form-urlencoded"})
    env = r.json()
    assert env["REQUEST_METHOD"] == "POST"
    assert env["CONTENT_TYPE"] == "application/x-www-form-urlencoded"
    assert env["CONTENT_LENGTH"] == "7"
    assert "HTTP_CONTENT_LENGTH" not in env
    assert env["__body__"] == "a=1&b=2"


def test_environ_raw_headers(start_server):
    srv = start_server("echo:environ")
    with srv.connect() as s:
        resp = exchange(s, request(path="/raw", headers=[
            ("X-Repeat", "one"),
            ("X-Repeat", "two"),
            ("x-lower-case", "v"),
            ("X_Underscore", "dropped"),
            ("X-Spaces", "  padded value  "),
        ]))
    env = json.loads(resp.body)
    assert env["HTTP_X_REPEAT"] == "one,two"
    assert env["HTTP_X_LOWER_CASE"] == "v"
    assert env["HTTP_X_SPACES"] == "padded value"
    # A name with "_" would collide with "X-Underscore" in the environ: dropped.
    assert "HTTP_X_UNDERSCORE" not in env
    assert env["HTTP_HOST"] == "test"


def test_environ_http10_and_absolute_uri(start_server):
    srv = start_server("echo:environ")
    with srv.connect() as s:
        resp = exchange(s, request(path="http://example.com/abs/path?q=1", version="HTTP/1.0"))
    env = json.loads(resp.body)
    assert env["SERVER_PROTOCOL"] == "HTTP/1.0"
    assert env["PATH_INFO"] == "/abs/path"
    assert env["QUERY_STRING"] == "q=1"
    assert env["RAW_URI"] == "http://example.com/abs/path?q=1"


def test_script_name_from_environment(start_server):
    srv = start_server("echo:environ", "-e", "SCRIPT_NAME=/prefix", "-e", "GC_TEST_FLAG=on")
    env = get_json(srv, "/prefix/rest/of/path")
    assert env["SCRIPT_NAME"] == "/prefix"
    assert env["PATH_INFO"] == "/rest/of/path"
    assert env["__env__"] == {"GC_TEST_FLAG": "on"}


INPUT_BODY = b"first line\nsecond line\n\nlast line without newline"


def expected_input(mode, body):
    inp = io.BytesIO(body)
    if mode == "read":
        got = [inp.read(), inp.read()]
    elif mode == "read_sized":
        got = [inp.read(3), inp.read(4), inp.read(0), inp.read(), inp.read(5)]
    elif mode == "read_none":
        got = [inp.read(None), inp.read(-1)]
    elif mode == "readline":
        got = []
        while True:
            got.append(inp.readline())
            if not got[-1]:
                break
    elif mode == "readline_sized":
        got = [inp.readline(2), inp.readline(100), inp.readline(-1), inp.readline(None)]
    elif mode == "readlines":
        got = [inp.readlines()]
    elif mode == "readlines_hint":
        got = [inp.readlines(3), inp.readlines()]
    elif mode == "iter":
        got = [list(inp)]

    def enc(v):
        return [enc(x) for x in v] if isinstance(v, list) else v.decode("latin-1")

    return [enc(v) for v in got]


@pytest.mark.parametrize("mode", ["read", "read_sized", "read_none", "readline",
                                  "readline_sized", "readlines", "readlines_hint", "iter"])
def test_wsgi_input_api(start_server, mode):
    srv = start_server("echo:input_api")
    r = requests.post(srv_url(srv, f"/?{mode}"), data=INPUT_BODY, timeout=5)
    assert r.status_code == 200, srv.log_text()
    assert r.json() == expected_input(mode, INPUT_BODY)


def test_wsgi_input_api_chunked_body(start_server):
    srv = start_server("echo:input_api")
    r = requests.post(srv_url(srv, "/?readline"), timeout=5,
                      data=(INPUT_BODY[i:i + 5] for i in range(0, len(INPUT_BODY), 5)))
    assert r.json() == expected_input("readline", INPUT_BODY)


def test_wsgi_errors_reaches_log(start_server):
    srv = start_server("echo:errors")
    assert requests.get(srv_url(srv), timeout=5).text == "ok"
    srv.wait_for_log(r"message via wsgi\.errors")
    srv.wait_for_log(r"second line via writelines")


# --- wsgi.file_wrapper -------------------------------------------------------------------


@pytest.fixture
def data_file(tmp_path):
    path = tmp_path / "payload.bin"
    data = os.urandom(300 * 1024 + 17)
    path.write_bytes(data)
    return path, data


def test_file_wrapper_real_file(start_server, data_file):
    path, data = data_file
    srv = start_server("files")
    r = requests.get(srv_url(srv), params={"path": str(path)}, timeout=5)
    assert r.status_code == 200
    assert r.headers["Content-Length"] == str(len(data))
    assert r.content == data
    srv.wait_for_log(r"LoggedFile\.close called")


def test_file_wrapper_seeked_file_and_length(start_server, data_file):
    path, data = data_file
    srv = start_server("files")
    r = requests.get(srv_url(srv), params={"path": str(path), "seek": "1000"}, timeout=5)
    assert r.content == data[1000:]
    r = requests.get(srv_url(srv), timeout=5,
                     params={"path": str(path), "seek": "10", "length": "4096"})
    assert r.headers["Content-Length"] == "4096"
    assert r.content == data[10:10 + 4096]


def test_file_wrapper_length_beyond_file_closes(start_server, data_file):
    path, data = data_file
    srv = start_server("files", "--keep-alive", "30")
    with srv.connect(timeout=3) as s:
        s.sendall(request(path=f"/?path={quote(str(path))}&length={len(data) + 100}"))
        reader = Reader(s)
        _, status, _, headers, _ = reader.read_head()
        assert status == 200
        assert dict(headers)["Content-Length"] == str(len(data) + 100)
        assert reader.read_to_close() == data


def test_file_wrapper_bytesio(start_server, data_file):
    path, data = data_file
    srv = start_server("files")
    r = requests.get(srv_url(srv), params={"path": str(path), "mode": "bytesio"}, timeout=5)
    assert r.status_code == 200
    assert r.content == data


def test_file_wrapper_keep_alive(start_server, data_file):
    path, data = data_file
    srv = start_server("files")
    with srv.connect() as s:
        reader = Reader(s)
        for _ in range(2):
            s.sendall(request(path="/?path=" + quote(str(path))))
            resp = reader.read_response()
            assert resp.body == data


# --- unix sockets ------------------------------------------------------------------------


def test_unix_socket(start_server, tmp_path):
    sock_path = tmp_path / "gc.sock"
    srv = start_server("echo:environ", bind=f"unix:{sock_path}")
    assert srv.url == f"unix:{sock_path}"
    srv.wait_for_log(rf"Listening at: unix:{sock_path} \({srv.pid}\)")
    assert sock_path.exists()
    with srv.connect() as s:
        reader = Reader(s)
        s.sendall(request(path="/over/unix", host="example.org:8080"))
        env = json.loads(reader.read_response().body)
        s.sendall(request(path="/again", host=None, version="HTTP/1.0"))
        env2 = json.loads(reader.read_response().body)
    assert env["PATH_INFO"] == "/over/unix"
    assert env["SERVER_NAME"] == "example.org"
    assert env["SERVER_PORT"] == "8080"
    assert env["REMOTE_ADDR"] == ""
    assert env2["PATH_INFO"] == "/again"
    assert srv.stop() == 0
    assert not sock_path.exists()


def test_curl_unix_socket(start_server, tmp_path):
    sock_path = tmp_path / "curl.sock"
    srv = start_server("hello", bind=f"unix:{sock_path}")
    assert srv.unix_path == str(sock_path)
    out = subprocess.run(["curl", "-s", "--max-time", "5", "--unix-socket", srv.unix_path,
                          "http://localhost/"], capture_output=True, timeout=10)
    assert out.stdout == b"Hello, World!\n"


def test_tcp_and_unix_together(start_server, tmp_path):
    sock_path = tmp_path / "both.sock"
    srv = start_server("hello", "-b", f"unix:{sock_path}")
    assert srv.urls == [f"http://127.0.0.1:{srv.port}", f"unix:{sock_path}"]
    assert requests.get(srv_url(srv), timeout=5).text == "Hello, World!\n"
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(5)
        s.connect(str(sock_path))
        assert exchange(s, request()).body == b"Hello, World!\n"


def test_ipv6_loopback(start_server):
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback")
    srv = start_server("echo:environ", bind="[::1]:0")
    assert srv.url.startswith("http://[::1]:")
    with srv.connect() as s:
        env = json.loads(exchange(s, request()).body)
    assert env["REMOTE_ADDR"] == "::1"
    assert env["SERVER_NAME"] == "::1"


# --- concurrency smoke -------------------------------------------------------------------


def test_many_concurrent_clients(start_server):
    srv = start_server("echo:environ", workers=2)
    results, errors = [], []

    def client(n):
        try:
            with requests.Session() as sess:
                for i in range(10):
                    env = sess.get(srv_url(srv, f"/c{n}/{i}"), timeout=10).json()
                    results.append(env["PATH_INFO"] == f"/c{n}/{i}")
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(repr(e))

    threads = [threading.Thread(target=client, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors
    assert results == [True] * 80
