"""The operations guarantees of the WSGI path, under `-k asgi` (issue 17): PROXY
protocol, proxy headers, the access log, StatsD, the control socket, the request limits
and strict parsing, slow clients, nginx in front, and HUP / USR2 with requests flowing.

Where the guarantee is "as the WSGI path does", the test runs a sync server beside the
asgi one and compares what each answers (or what the environ and the scope say). The
application is apps/asgi_ops_app.py. The tests at the end each failed on a bug these
tests found (the PROXY address, the access log's environ and header atoms, StatsD's
exception count, SCRIPT_NAME as the root_path), fixed since.

Measured against Gunicorn 26.1's own `-k asgi` (GUNICORN_C_BIN set to a wrapper that
runs it, the sync servers being Gunicorn's too; 10 of these 46 tests pass there: HUP,
USR2, graceful stop, slowloris, slow reader, custom access log format, the three
at-limit parsing cases, trust="other"). Where it differs:
- A PROXY header from a peer outside --proxy-allow-from, or on a unix socket, is read
  as a request line: "400 Invalid request line" in plain text. gunicorn-c answers 403
  with the HTML page, as its WSGI path does. Requests pipelined after a PROXY header
  are never answered.
- X-Forwarded-Proto: https (or X-Forwarded-Ssl, X-Forwarded-Protocol) from a trusted
  peer: Gunicorn's scope says "http"; contradictory scheme headers are served (200),
  not refused (400). gunicorn-c's scope follows wsgi.url_scheme on both servers.
- Error pages (limits, strict parsing) are plain text, the request-line limit is 414;
  gunicorn-c sends the WSGI path's HTML pages and statuses.
- Header names with underscores stay in the scope: X_Forwarded_For beside
  X-Forwarded-For reaches the application, which Django's ASGI handler merges into
  HTTP_X_FORWARDED_FOR. gunicorn-c drops them, as its environ does.
- No per-request StatsD metrics at all (gunicorn.requests, duration, status).
- An idle keep-alive connection is still open 5 s after a response with --keep-alive 1.
- No access log line for a WebSocket session; one (101) here.
- On a unix socket scope["server"] is ["/", "t"] (the path's first two characters).
"""

import asyncio
import base64
import json
import os
import signal
import socket
import time

import pytest

from conftest import BOOTING_RE, LISTENING_RE, Server, CRASH_RE
from helpers import (Control, children, control_path, kill_quietly, trickle_until_closed,
                     wait_gone, wait_in_file, wait_until)
from rawhttp import Reader, closed_by_peer, request
from test_proxy import connect

websockets = pytest.importorskip("websockets")

APP = "asgi_ops_app:app"
UNTRUSTED = "127.0.0.2"  # any 127/8 address is local: a peer outside the default trust
V1_TCP4 = b"PROXY TCP4 192.0.2.10 198.51.100.20 56324 443\r\n"
V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"


@pytest.fixture
def events(tmp_path):
    return str(tmp_path / "events")


def start_asgi(start_server, *args, app=APP, events=None, **kw):
    env = dict(kw.pop("env", {}) or {})
    if events:
        env["ASGI_EVENTS"] = events
    return start_server(app, "-k", "asgi", "--asgi-loop", "asyncio", *args, env=env, **kw)




def fetch(srv, data, source=None, method="GET"):
    """Sends raw bytes on a new connection; returns (response, closed after it).
    `method` is the request's, for HEAD's bodiless framing."""
    with connect(srv, source) as s:
        s.sendall(data)
        reader = Reader(s)
        resp = reader.read_response(method)
        # Only an answer that says "close" is waited on: it must be followed by the
        # close, and nothing else.
        closed = (resp.header("Connection", "").lower() == "close"
                  and reader.read_to_close() == b"")
    return resp, closed


def json_of(srv, data, source=None):
    resp, _ = fetch(srv, data, source)
    assert resp.status == 200, (resp.raw_head, resp.body)
    return json.loads(resp.body)


def ws_run(coro_fn):
    return asyncio.run(asyncio.wait_for(coro_fn(), 15))


def v2_header(command=1, family=1, transport=1, addresses=b""):
    return (V2_SIGNATURE + bytes([0x20 | command, (family << 4) | transport])
            + len(addresses).to_bytes(2, "big") + addresses)


def v2_inet(src, dst, sport, dport):
    return v2_header(addresses=socket.inet_pton(socket.AF_INET, src)
                     + socket.inet_pton(socket.AF_INET, dst)
                     + sport.to_bytes(2, "big") + dport.to_bytes(2, "big"))


def v2_inet6(src, dst, sport, dport):
    return v2_header(family=2, addresses=socket.inet_pton(socket.AF_INET6, src)
                     + socket.inet_pton(socket.AF_INET6, dst)
                     + sport.to_bytes(2, "big") + dport.to_bytes(2, "big"))


def same_answer(a, b):
    """Two error answers are the same: status line, headers, body (an error page has no
    Date to differ)."""
    assert (a.status, a.reason, a.headers, a.body) == (b.status, b.reason, b.headers, b.body), \
        (a.raw_head, a.body, b.raw_head, b.body)


# --- 1. PROXY protocol ---------------------------------------------------------------------


def test_proxy_protocol_headers_are_read(start_server):
    """v1 and v2 (IPv4, IPv6, LOCAL) headers are taken off the connection before the
    request, also with requests pipelined after them and on keep-alive."""
    srv = start_asgi(start_server, "--proxy-protocol", "auto")
    for header in (V1_TCP4, b"PROXY TCP6 2001:db8::5 2001:db8::1 7 80\r\n",
                   v2_inet("203.0.113.7", "10.0.0.1", 40000, 8080),
                   v2_inet6("2001:db8::7", "::1", 1, 443), v2_header(0, 0, 0)):
        with srv.connect() as s:
            reader = Reader(s)
            s.sendall(header + request(path="/scope?n=1") + request(path="/scope?n=2"))
            first = json.loads(reader.read_response().body)
            second = json.loads(reader.read_response().body)
            s.sendall(request(path="/scope?n=3"))
            third = json.loads(reader.read_response().body)
        assert [x["query_string"] for x in (first, second, third)] == ["n=1", "n=2", "n=3"]
        assert first["client"] == second["client"] == third["client"]
        assert first["headers"] == [["host", "test"]]
    # LOCAL (a proxy's health check): the connection's own address stands.
    scope = json_of(srv, v2_header(0, 0, 0) + request(path="/scope"))
    assert scope["client"][0] == "127.0.0.1"
    # A second request on the connection may not start a PROXY header.
    with srv.connect() as s:
        reader = Reader(s)
        s.sendall(request(path="/"))
        assert reader.read_response().status == 200
        s.sendall(V1_TCP4 + request())
        assert reader.read_response().status == 400


def test_proxy_protocol_refusals_match_the_wsgi_path(start_server):
    """From a peer outside --proxy-allow-from: 403; a malformed header: 400; off: the
    header is a bad request line. The same pages, and the close, as the sync worker's."""
    args = ("--proxy-protocol", "auto")
    sync = start_server("echo:environ", *args)
    asgi = start_asgi(start_server, *args)
    cases = [
        (V1_TCP4, UNTRUSTED, 403),
        (v2_inet("1.2.3.4", "5.6.7.8", 1, 2), UNTRUSTED, 403),
        (b"PROXY this is not even well formed\r\n", UNTRUSTED, 403),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n", None, 400),
        (b"PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n", None, 400),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 65536\r\n", None, 400),
        (v2_header(family=3, addresses=b"\0" * 216), None, 400),
        (v2_header(addresses=b"\0" * 8), None, 400),
    ]
    for header, source, status in cases:
        a, a_closed = fetch(asgi, header + request(path="/scope"), source)
        w, w_closed = fetch(sync, header + request(path="/scope"), source)
        assert a.status == status, (header, a.raw_head, a.body)
        same_answer(a, w)
        assert a_closed and w_closed, header
    # The refused peer may still talk plain HTTP.
    assert json_of(asgi, request(path="/scope"), UNTRUSTED)["client"][0] == UNTRUSTED
    off_sync = start_server("echo:environ")
    off_asgi = start_asgi(start_server)
    a, a_closed = fetch(off_asgi, V1_TCP4 + request())
    w, _ = fetch(off_sync, V1_TCP4 + request())
    assert a.status == 400 and a_closed
    same_answer(a, w)
    # --proxy-allow-from: a network the peer is not in refuses it; "*" takes anyone.
    narrow = start_asgi(start_server, "--proxy-protocol", "auto", "--proxy-allow-from",
                        "10.0.0.0/8")
    assert fetch(narrow, V1_TCP4 + request())[0].status == 403
    wide = start_asgi(start_server, "--proxy-protocol", "auto", "--proxy-allow-from", "*")
    assert fetch(wide, V1_TCP4 + request(path="/scope"), UNTRUSTED)[0].status == 200


def test_proxy_trust_is_the_connection_peer(start_server):
    """--forwarded-allow-ips is checked against the proxy that connected, not the
    client its PROXY header names: the scope's scheme agrees with wsgi.url_scheme."""
    args = ("--proxy-protocol", "auto", "--proxy-allow-from", "*")
    sync = start_server("echo:environ", *args)
    asgi = start_asgi(start_server, *args)
    xfp = [("X-Forwarded-Proto", "https")]
    for header, source, scheme in ((V1_TCP4, None, "https"),
                                   (b"PROXY TCP4 127.0.0.1 127.0.0.1 1 2\r\n", UNTRUSTED, "http")):
        data = header + request(path="/scope", headers=xfp)
        env, scope = json_of(sync, data, source), json_of(asgi, data, source)
        assert scope["scheme"] == env["wsgi.url_scheme"] == scheme, (header, source)


# --- 2. proxy headers ----------------------------------------------------------------------


HEADER_CASES = [
    [],
    [("X-Forwarded-Proto", "https")],
    [("X-Forwarded-Proto", "HTTPS")],
    [("X-Forwarded-Ssl", "on")],
    [("X-Forwarded-Protocol", "ssl")],
    [("X-Forwarded-For", "203.0.113.9")],
    [("X-Forwarded-For", "203.0.113.9"), ("X-Forwarded-Proto", "https")],
    [("Forwarded", "for=203.0.113.9;proto=https")],
]


@pytest.mark.parametrize("allow", [None, "*", "10.0.0.1"], ids=["default", "all", "other"])
def test_scope_follows_proxy_headers_as_the_environ_does(start_server, allow):
    """scope["scheme"] is wsgi.url_scheme and scope["client"] REMOTE_ADDR, for each
    header set, from a trusted and an untrusted peer: the secure scheme headers count
    only from a peer in --forwarded-allow-ips; X-Forwarded-For and Forwarded never move
    the client (as in Gunicorn's WSGI environ)."""
    args = () if allow is None else ("--forwarded-allow-ips", allow)
    sync = start_server("echo:environ", *args)
    asgi = start_asgi(start_server, *args)
    for source in (None, UNTRUSTED):
        trusted = allow == "*" or (allow is None and source is None)
        for headers in HEADER_CASES:
            data = request(path="/scope", headers=headers)
            env = json_of(sync, data, source)
            scope = json_of(asgi, data, source)
            assert scope["scheme"] == env["wsgi.url_scheme"], (source, headers)
            assert scope["client"][0] == env["REMOTE_ADDR"] == (source or "127.0.0.1")
            secure = any(h in (("X-Forwarded-Proto", "https"), ("X-Forwarded-Ssl", "on"),
                               ("X-Forwarded-Protocol", "ssl")) for h in headers)
            assert scope["scheme"] == ("https" if secure and trusted else "http"), \
                (allow, source, headers)
            assert dict(scope["headers"]).get("x-forwarded-for") == \
                dict(headers).get("X-Forwarded-For")


def test_underscore_headers_are_dropped_as_from_the_environ(start_server):
    """X_Forwarded_For would pass for X-Forwarded-For in a framework that maps headers
    to environ-style names (Django's ASGI handler does): the scope drops it, as the
    environ does (--header-map drop), and --header-map refuse answers the same 400."""
    sync = start_server("echo:environ")
    asgi = start_asgi(start_server)
    spoof = [("X_Forwarded_For", "6.6.6.6"), ("X-Forwarded-For", "1.2.3.4"),
             ("Content_Length", "5")]
    for source in (None, UNTRUSTED):
        env = json_of(sync, request(path="/scope", headers=spoof), source)
        scope = json_of(asgi, request(path="/scope", headers=spoof), source)
        assert env["HTTP_X_FORWARDED_FOR"] == "1.2.3.4" and "CONTENT_LENGTH" not in env
        assert scope["headers"] == [["host", "test"], ["x-forwarded-for", "1.2.3.4"]]
    sync = start_server("echo:environ", "--header-map", "refuse")
    asgi = start_asgi(start_server, "--header-map", "refuse")
    a, a_closed = fetch(asgi, request(headers=[("X_Foo", "1")]))
    w, _ = fetch(sync, request(headers=[("X_Foo", "1")]))
    assert a.status == 400 and a_closed
    same_answer(a, w)


def test_contradictory_scheme_headers_and_websocket_scheme(start_server):
    sync = start_server("echo:environ")
    asgi = start_asgi(start_server)
    data = request(headers=[("X-Forwarded-Ssl", "on"), ("X-Forwarded-Proto", "http")])
    a, a_closed = fetch(asgi, data)
    w, _ = fetch(sync, data)
    assert a.status == 400 and a_closed
    assert b"Contradictory scheme headers" in a.body
    same_answer(a, w)

    async def scheme(headers):
        async with websockets.connect(f"ws://127.0.0.1:{asgi.port}/ws-scope",
                                      extra_headers=headers, close_timeout=2) as ws:
            return json.loads(await ws.recv())["scheme"]
    # A trusted front end that terminated TLS makes the WebSocket wss.
    assert ws_run(lambda: scheme({"X-Forwarded-Proto": "https"})) == "wss"
    assert ws_run(lambda: scheme({})) == "ws"


# --- 3. access log ------------------------------------------------------------------------


def read_lines(path):
    try:
        with open(path, "rb") as f:
            return f.read().split(b"\n")[:-1]
    except FileNotFoundError:
        return []


def lines_before_end(path, end=b"/end-of-test"):
    """The lines before the END request's: sent last, on one worker, its line is the last
    one once it is in (a request's line is written when its task ends, before the next
    request on that worker is read)."""
    wait_until(lambda: any(end in line for line in read_lines(path)),
               what=f"the last request's line in {path}")
    lines = read_lines(path)
    assert end in lines[-1], lines
    return lines[:-1]


def plain(srv, path, headers=(), method="GET", body=b""):
    resp, _ = fetch(srv, request(method, path, list(headers) + [("Connection", "close")],
                                 body=body), method=method)
    return resp


def ws_session(srv, path="/ws"):
    async def run():
        async with websockets.connect(f"ws://127.0.0.1:{srv.port}{path}", close_timeout=5,
                                      user_agent_header="ws-client/1") as ws:
            await ws.send("hello")
            assert await ws.recv() == "hello"
    ws_run(run)


def test_access_log_default_format(start_server, tmp_path, events):
    log = tmp_path / "access.log"
    srv = start_asgi(start_server, "--access-logfile", str(log), events=events)
    assert plain(srv, "/?x=1").status == 200
    assert plain(srv, "/echo", method="POST", body=b"x" * 777).body == b"x" * 777
    assert plain(srv, "/stream?n=3").body == b"chunk 0\nchunk 1\nchunk 2\n"
    assert plain(srv, "/raise").status == 500
    srv.wait_for_log(r"RuntimeError: asgi-ops-app-error")
    assert plain(srv, "/status/404").status == 404
    ws_session(srv)
    # The session's line is written when its task ends, after the close handshake.
    wait_in_file(events, r"ws-disconnect 1000", srv=srv)
    wait_until(lambda: any(b"/ws " in line for line in read_lines(log)), what="the ws line")
    plain(srv, "/end-of-test")
    lines = lines_before_end(log)
    tail = [line.split(b"] ", 1)[1] for line in lines]
    assert tail == [
        b'"GET /?x=1 HTTP/1.1" 200 13 "-" "-"',
        b'"POST /echo HTTP/1.1" 200 777 "-" "-"',
        b'"GET /stream?n=3 HTTP/1.1" 200 24 "-" "-"',
        b'"GET /raise HTTP/1.1" 500 0 "-" "-"',
        b'"GET /status/404 HTTP/1.1" 404 10 "-" "-"',
        b'"GET /ws HTTP/1.1" 101 0 "-" "ws-client/1"',
    ], lines
    for line in lines:
        assert line.startswith(b"127.0.0.1 - - ["), line


def test_access_log_custom_format(start_server, tmp_path):
    log = tmp_path / "access.log"
    fmt = "%(h)s|%(s)s|%(b)s|%(B)s|%(r)s|%(m)s|%(q)s|%(H)s|%({x-custom}i)s|%(D)s|%(T)s|%(L)s"
    srv = start_asgi(start_server, "--access-logfile", str(log), "--access-logformat", fmt)
    assert plain(srv, "/?x=1", [("X-Custom", "one")]).status == 200
    assert plain(srv, "/raise").status == 500
    assert plain(srv, "/status/201").status == 201
    resp, _ = fetch(srv, request("GET", "/a%20b", version="HTTP/1.0"))
    assert resp.status == 200
    # No body goes out for HEAD, 204 and 304: none is counted.
    assert plain(srv, "/", method="HEAD").status == 200
    assert plain(srv, "/status/204").status == 204
    assert plain(srv, "/status/304").status == 304
    plain(srv, "/end-of-test")
    rows = [line.decode().split("|") for line in lines_before_end(log)]
    assert [r[:9] for r in rows] == [
        ["127.0.0.1", "200", "13", "13", "GET /?x=1 HTTP/1.1", "GET", "x=1", "HTTP/1.1", "one"],
        ["127.0.0.1", "500", "0", "0", "GET /raise HTTP/1.1", "GET", "", "HTTP/1.1", "-"],
        ["127.0.0.1", "201", "10", "10", "GET /status/201 HTTP/1.1", "GET", "", "HTTP/1.1",
         "-"],
        ["127.0.0.1", "200", "13", "13", "GET /a%20b HTTP/1.0", "GET", "", "HTTP/1.0", "-"],
        ["127.0.0.1", "200", "0", "0", "HEAD / HTTP/1.1", "HEAD", "", "HTTP/1.1", "-"],
        ["127.0.0.1", "204", "0", "0", "GET /status/204 HTTP/1.1", "GET", "", "HTTP/1.1", "-"],
        ["127.0.0.1", "304", "0", "0", "GET /status/304 HTTP/1.1", "GET", "", "HTTP/1.1", "-"],
    ]
    for r in rows:
        d, t, secs = int(r[9]), int(r[10]), float(r[11])
        assert 0 < d < 5_000_000 and t == d // 1_000_000 and abs(secs - d / 1e6) < 1e-5, r


# --- 4. StatsD ----------------------------------------------------------------------------


def test_statsd_request_metrics(start_server):
    from test_statsd import Receiver, load
    receiver = Receiver()
    try:
        srv = start_asgi(start_server, "--statsd-host", receiver.address, workers=2)
        paths = ["/"] * 60 + ["/status/404"] * 20 + ["/raise"] * 10
        assert load(srv, paths) == {200: 60, 404: 20, 500: 10}
        ws_session(srv)
        receiver.wait_for(lambda r: r.counts()["gunicorn.requests"] >= 91)
        # Whatever the workers send, they have sent once the server has stopped; the
        # barrier shows that it has all been read.
        assert srv.stop() == 0
        receiver.barrier()
        c = receiver.counts()
        assert c["gunicorn.requests"] == 91
        assert c["gunicorn.request.status.200"] == 60
        assert c["gunicorn.request.status.404"] == 20
        assert c["gunicorn.request.status.500"] == 10
        assert c["gunicorn.request.status.101"] == 1
        # Each application error is counted once (as which log level: pending_asgi_ops.py).
        assert c["gunicorn.log.exception"] + c["gunicorn.log.error"] == 10
        durations = receiver.values("gunicorn.request.duration")
        assert len(durations) == 91
        assert all(0 < float(d) < 10000 for d in durations), durations
        # One datagram a request, in Gunicorn's order.
        packets = [p for p in receiver.packets if "gunicorn.requests:" in p]
        assert len(packets) == 91
        for p in packets:
            names = [line.split(":")[0] for line in p.split("\n")]
            assert names[:2] == ["gunicorn.request.duration", "gunicorn.requests"], p
            assert names[2].startswith("gunicorn.request.status."), p
        assert receiver.values("gunicorn.workers") == ["2"]
    finally:
        receiver.close()


# --- 5. control socket --------------------------------------------------------------------


def test_control_socket_follows_asgi_requests(start_server, events):
    sock = control_path()
    srv = start_asgi(start_server, "--control-socket", sock, events=events)
    (worker,) = srv.worker_pids()
    with Control(sock) as ctl:
        def booted():
            (w,) = ctl.request("show workers")["workers"]
            return w if w["booted"] else None
        w = wait_until(booted, what="the worker to have booted")
        assert w["pid"] == worker and w["state"] == "idle" and w["requests"] == 0
        stats = ctl.request("show stats")
        assert stats["workers_current"] == 1 and stats["pid"] == srv.pid
        (lst,) = ctl.request("show listeners")["listeners"]
        assert lst["address"] == srv.url
        assert ctl.request("show config")["worker_class"] == "asgi"

        # Requests in flight: their tasks wait for the rest of their bodies.
        held = [hold(srv, f"ctl{i}", events) for i in range(3)]
        (w,) = ctl.request("show workers")["workers"]
        assert w["state"] == "busy" and w["in_flight"] == 3, w
        assert w["current_request"]["method"] == "POST"
        assert w["current_request"]["path"] in {f"/hold?id=ctl{i}" for i in range(3)}
        stats = ctl.request("show stats")
        assert stats["workers_busy"] == 1 and stats["in_flight"] == 3
        for i, s in enumerate(held):
            finish(s, f"ctl{i}")
        for _ in range(3):
            assert plain(srv, "/").status == 200

        async def session():
            # An open WebSocket is a request in flight.
            async with websockets.connect(f"ws://127.0.0.1:{srv.port}/ws",
                                          close_timeout=5) as ws:
                await ws.send("x")
                assert await ws.recv() == "x"
                return ctl.request("show workers")["workers"][0]
        w = ws_run(session)
        assert w["state"] == "busy" and w["in_flight"] == 1, w
        assert w["current_request"]["path"] == "/ws"

        def counted():
            (w,) = ctl.request("show workers")["workers"]
            return w if w["requests"] == 7 and w["in_flight"] == 0 else None
        w = wait_until(counted, what="seven requests counted, none in flight")
        assert w["state"] == "idle" and w["current_request"] is None
        assert ctl.request("show stats")["requests"] == 7


def test_control_socket_commands_drive_asgi_workers(start_server):
    sock = control_path()
    srv = start_asgi(start_server, "--control-socket", sock)
    (first,) = srv.worker_pids()
    with Control(sock) as ctl:
        assert ctl.request("worker add 1") == {"added": 1, "previous": 1, "total": 2}
        srv.wait_for_log(BOOTING_RE, count=2)
        wait_until(lambda: len(children(srv.pid)) == 2, what="two workers")
        second = srv.worker_pids()[-1]
        assert ctl.request(f"worker kill {first}") == {"killed": first}
        wait_gone(first)
        third = int(srv.wait_for_log(BOOTING_RE, count=3).group(1))
        # A reload reads the configuration again: back to its one worker (as Gunicorn).
        assert ctl.request("reload") == {"status": "reloading"}
        fourth = int(srv.wait_for_log(BOOTING_RE, count=4).group(1))
        wait_gone(second)
        wait_gone(third)
        assert children(srv.pid) == [fourth]
        served = {json_of(srv, request(path="/info", headers=[("Connection", "close")]))["pid"]
                  for _ in range(3)}
        assert served == {fourth}
        assert ctl.request("show stats")["reloads"] == 1


# --- 6. limits and strict parsing ---------------------------------------------------------


LIMITS = ("--limit-request-line", "100", "--limit-request-fields", "5",
          "--limit-request-field_size", "100")
CHUNKED = b"POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
AT_LINE_LIMIT = "/" + "p" * (100 - len("GET  HTTP/1.1") - 1)
PARSING_CASES = {
    "line-at-limit": (request(path=AT_LINE_LIMIT), 200),
    "line-too-long": (request(path=AT_LINE_LIMIT + "p"), 400),
    "fields-at-limit": (request(headers=[(f"X-H{i}", "v") for i in range(4)]), 200),
    "too-many-fields": (request(headers=[(f"X-H{i}", "v") for i in range(5)]), 431),
    "field-at-limit": (request(headers=[("X-Big", "v" * (100 - len("X-Big: \r\n")))]), 200),
    "field-too-large": (request(headers=[("X-Big", "v" * (101 - len("X-Big: \r\n")))]), 431),
    "garbage": (b"GARBAGE\r\n\r\n", 400),
    "no-colon": (b"GET / HTTP/1.1\r\nHost: t\r\nX-No-Colon\r\n\r\n", 400),
    "space-before-colon": (b"GET / HTTP/1.1\r\nHost: t\r\nX-Space : v\r\n\r\n", 400),
    "host-userinfo": (b"GET / HTTP/1.1\r\nHost: user@example.com\r\n\r\n", 400),
    "no-host": (b"GET / HTTP/1.1\r\n\r\n", 400),
    "target-ctl": (b"GET /a\x01b HTTP/1.1\r\nHost: h\r\n\r\n", 400),
    "target-utf8": (b"GET /caf\xc3\xa9 HTTP/1.1\r\nHost: h\r\n\r\n", 400),
    "bare-cr-head": (b"GET / HTTP/1.1\r\nHost: h\r\n\rX: y\r\n\r\n", 400),
    "bare-cr-chunk": (CHUNKED + b"3\r\nabc\r\r0\r\n\r\n", 400),
    "two-lengths": (b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n"
                    b"Content-Length: 4\r\n\r\nabcd", 400),
    "length-and-chunked": (b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n"
                           b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 400),
    "empty-te": (b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding:\r\n\r\n", 400),
    "unknown-coding": (b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: foo, chunked\r\n\r\n"
                       b"0\r\n\r\n", 501),
    "bad-chunk-size": (CHUNKED + b"zz\r\nabc\r\n0\r\n\r\n", 400),
    "space-before-size": (CHUNKED + b" 5\r\nhello\r\n0\r\n\r\n", 400),
    "forbidden-trailer": (CHUNKED + b"3\r\nabc\r\n0\r\nContent-Length: 5\r\n\r\n", 400),
    "connect": (b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", 501),
    "http-1.2": (request(version="HTTP/1.2"), 505),
    "http-2.0": (b"GET / HTTP/2.0\r\nHost: t\r\n\r\n", 400),
    "expect-teapot": (request("POST", headers=[("Expect", "teapot")], body=b"x"), 417),
}


BODY_ERRORS = {"bare-cr-chunk", "bad-chunk-size", "space-before-size", "forbidden-trailer"}


@pytest.fixture(scope="module")
def parsers():
    """A sync and an asgi server with the same limits, each on one worker, shared by
    the parsing cases: each case leaves them as it found them."""
    servers = {"sync": Server("strict_app:app", *LIMITS),
               "asgi": Server(APP, "-k", "asgi", "--asgi-loop", "asyncio", *LIMITS)}
    try:
        for srv in servers.values():
            srv.start()
        yield servers
    finally:
        for srv in servers.values():
            if srv.proc is not None:
                assert srv.stop() == 0, srv.log_text()
                assert not CRASH_RE.search(srv.log_text()), srv.log_text()


def seen(srv):
    """What the worker's application has seen (this request included): the strict_app
    lists every request, asgi_ops_app also those whose body arrived whole."""
    got = json_of(srv, request(path="/seen", headers=[("Connection", "close")]))
    return len(got["seen"]), len(got.get("whole", got["seen"]))


@pytest.mark.parametrize("case", list(PARSING_CASES))
def test_parsing_and_limits_match_sync(parsers, case):
    data, status = PARSING_CASES[case]
    answers = {}
    for kind, srv in parsers.items():
        seen_before, whole_before = seen(srv)
        resp, closed = fetch(srv, data)
        assert resp.status == status, (kind, resp.raw_head, resp.body)
        if status != 200:
            # Refused: the connection closed, and the application never called; under
            # asgi, a request refused in its body has its task started at the head
            # (docs/asgi.md), which never gets the body whole.
            assert closed, kind
            seen_after, whole_after = seen(srv)
            assert whole_after == whole_before + 1, f"{kind}: the application got {data!r}"
            if not (kind == "asgi" and case in BODY_ERRORS):
                assert seen_after == seen_before + 1, f"{kind}: the application saw {data!r}"
        answers[kind] = resp
    if status != 200:
        same_answer(answers["asgi"], answers["sync"])


# --- 7. slow clients ----------------------------------------------------------------------


def test_slowloris_does_not_delay_other_clients(start_server, events):
    """Three connections trickle a request head in one byte at a time, and one holds
    back the end of its body, on one worker; between two of their bytes, whole requests
    from other clients are answered at once; then the slow ones get their answers."""
    srv = start_asgi(start_server, "--keep-alive", "30", events=events)
    holder = srv.connect(timeout=10)
    holder.sendall(request("POST", "/hold?id=slow", [("Content-Length", "4")]) + b"ab")
    wait_in_file(events, r"hold slow", srv=srv)
    slow = []
    for _ in range(3):
        s = srv.connect(timeout=10)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        slow.append(s)
    data = request(path="/scope?slow=1", headers=[("X-Padding", "p" * 40)])
    took = []
    for i in range(len(data) - 1):
        for s in slow:
            s.sendall(data[i:i + 1])
        if i % 6 == 0:
            start = time.monotonic()
            resp, _ = fetch(srv, request(path=f"/?i={i}", headers=[("Connection", "close")]))
            took.append(time.monotonic() - start)
            assert resp.body == b"Hello, World!"
    assert len(took) >= 15
    # Not waiting for anyone: well under a second each (a read of the slow clients, or
    # the held task, in the way would be the request timeout, 30 s).
    assert max(took) < 2.0, took
    for s in slow:
        s.sendall(data[-1:])
        scope = json.loads(Reader(s).read_response().body)
        assert scope["query_string"] == "slow=1"
        assert dict(scope["headers"])["x-padding"] == "p" * 40
        s.close()
    holder.sendall(b"cd")
    assert Reader(holder).read_response().body == b"held slow abcd"
    holder.close()


def test_slow_reader_does_not_delay_other_clients(start_server):
    """A client that asks for a large streamed response and reads none of it holds
    memory, not the worker: other clients are answered, then it reads it all."""
    srv = start_asgi(start_server)
    n, pad = 1000, 8192  # 8 MB: more than the kernel's buffers on both sides take
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: no scaling
    s.settimeout(10)
    s.connect((srv.host, srv.port))
    s.sendall(request(path=f"/stream?n={n}&pad={pad}", headers=[("Connection", "close")]))
    assert s.recv(12) == b"HTTP/1.1 200"
    for i in range(10):
        resp, _ = fetch(srv, request(path=f"/?i={i}", headers=[("Connection", "close")]))
        assert resp.body == b"Hello, World!"
    data = bytearray()
    while chunk := s.recv(1 << 16):
        data += chunk
    s.close()
    head, _, rest = bytes(data).partition(b"\r\n\r\n")
    assert b"\r\ntransfer-encoding: chunked" in head.lower()
    chunks = []
    while True:  # the chunks as sent
        size, _, rest = rest.partition(b"\r\n")
        size = int(size, 16)
        if size == 0:
            break
        chunks.append(rest[:size])
        assert rest[size:size + 2] == b"\r\n"
        rest = rest[size + 2:]
    assert rest == b"\r\n"
    assert chunks == [b"chunk %d\n" % i + b"." * pad for i in range(n)]


def test_idle_and_unfinished_connections_are_closed_on_time(start_server):
    """--keep-alive closes an idle connection after a response; --timeout bounds a
    request head trickled in a byte at a time; the worker serves throughout."""
    srv = start_asgi(start_server, "--keep-alive", "1", "--timeout", "2")
    with srv.connect() as s:
        reader = Reader(s)
        s.sendall(request())
        assert reader.read_response().status == 200
        start = time.monotonic()
        assert closed_by_peer(s, timeout=5)
        assert 0.5 < time.monotonic() - start < 3
    with srv.connect() as s:
        data = request(headers=[("X-Padding", "p" * 100)])
        closed, elapsed = trickle_until_closed(s, data)
    assert closed
    assert 1.5 < elapsed < 4, elapsed
    assert plain(srv, "/").body == b"Hello, World!"


# --- 8. behind nginx ----------------------------------------------------------------------


NGINX_SITE = """\
upstream asgi_app {{
    server unix:{sock} fail_timeout=0;
    keepalive 8;
}}
map $http_upgrade $connection_upgrade {{
    default upgrade;
    ''      '';
}}
server {{
    listen 127.0.0.1:{port};
    server_name example.com;
    location / {{
        proxy_pass http://asgi_app;
        proxy_http_version 1.1;
        proxy_set_header Upgrade $http_upgrade;
        proxy_set_header Connection $connection_upgrade;
        proxy_set_header Host $host;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        proxy_set_header X-Forwarded-Proto $scheme;
        proxy_set_header X-Forwarded-Ssl "";
        proxy_set_header X-Forwarded-Protocol "";
        proxy_read_timeout 30s;
    }}
    location /stream {{
        proxy_pass http://asgi_app;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_set_header Host $host;
        proxy_buffering off;
    }}
}}
"""


def test_behind_nginx_on_a_unix_socket(start_server, tmp_path, events):
    from test_nginx import NGINX, Nginx
    if not os.access(NGINX, os.X_OK):
        pytest.skip("nginx is not installed (Debian: apt-get install nginx)")
    import requests
    from helpers import free_port
    sock = tmp_path / "app.sock"
    srv = start_asgi(start_server, "--keep-alive", "75", bind=f"unix:{sock}", events=events)
    port = free_port()
    nginx = Nginx(tmp_path / "nginx", NGINX_SITE.format(sock=sock, port=port))
    try:
        nginx.start(port)
        base = f"http://localhost:{port}"
        with requests.Session() as http:
            for i in range(3):
                r = http.get(f"{base}/scope?i={i}", headers={"X-Forwarded-For": "203.0.113.7"},
                             timeout=10)
                assert r.status_code == 200 and r.headers["Server"].startswith("nginx")
                scope = r.json()
                assert scope["query_string"] == f"i={i}"
                assert scope["client"] is None  # a unix socket has no peer address
                assert scope["server"] == [str(sock), None]
                assert scope["scheme"] == "http"  # X-Forwarded-Proto from nginx: http
                headers = dict(scope["headers"])
                assert headers["x-forwarded-for"] == "203.0.113.7, 127.0.0.1"
                assert headers["host"] == "localhost"
                assert "connection" not in headers and "upgrade" not in headers
            r = http.get(f"{base}/stream?n=300", timeout=10)
            assert r.status_code == 200
            assert r.text == "".join(f"chunk {i}\n" for i in range(300))
            r = http.post(f"{base}/echo", data=b"z" * 300000, timeout=10)
            assert r.content == b"z" * 300000

        async def run():
            async with websockets.connect(f"ws://localhost:{port}/ws", close_timeout=5) as ws:
                for n in range(20):
                    await ws.send(f"message {n}")
                    assert await ws.recv() == f"message {n}"
                big = bytes(range(256)) * 1000
                await ws.send(big)
                assert await ws.recv() == big
            async with websockets.connect(f"ws://localhost:{port}/ws-scope",
                                          close_timeout=5) as ws:
                return json.loads(await ws.recv())
        scope = ws_run(run)
        assert scope["type"] == "websocket" and scope["scheme"] == "ws"
        assert dict(scope["headers"])["upgrade"].lower() == "websocket"
        wait_in_file(events, r"ws-disconnect 1000", srv=srv)
    finally:
        nginx.stop()
    assert "[error]" not in nginx.error_log(), nginx.error_log()


# --- 9. HUP and USR2 ----------------------------------------------------------------------


def hold(srv, ident, events):
    """A request in flight: its head and half its body sent, the task waiting for the
    rest. Returns the socket."""
    s = srv.connect(timeout=20)
    s.sendall(request("POST", f"/hold?id={ident}", [("Content-Length", "4")]) + b"ab")
    wait_in_file(events, rf"hold {ident}\b", srv=srv)
    return s


def finish(s, ident):
    s.sendall(b"cd")
    resp = Reader(s).read_response()
    s.close()
    assert resp.status == 200 and resp.body == f"held {ident} abcd".encode(), resp


def test_hup_replaces_asgi_workers_without_failing_a_request(start_server, events):
    from test_signals import ClientLoop
    srv = start_asgi(start_server, "--graceful-timeout", "20", workers=2, events=events)
    old = srv.worker_pids()
    held = hold(srv, "hup", events)
    with ClientLoop(srv.port, "/info") as loop:
        loop.wait_for(20)
        mark = srv.log_mark()
        srv.send_signal(signal.SIGHUP)
        srv.wait_for_log(r"Hang up: Master", since=mark)
        srv.wait_for_log(BOOTING_RE, since=mark, count=2)
        new = srv.worker_pids()[len(old):]
        # The new workers serve while an old one still runs the held request.
        wait_until(lambda: set(loop.pids) & set(new), what="a new worker to serve")
        finish(held, "hup")
        for pid in old:
            wait_gone(pid)
        seen_before = len(loop.pids)
        loop.wait_for(20)
    assert not loop.failures, loop.failures[:5]
    assert set(new).isdisjoint(old)
    assert children(srv.pid) == sorted(new)
    assert set(loop.pids[seen_before:]) <= set(new)


def test_usr2_then_term_drains_the_old_asgi_workers(start_server, tmp_path, events):
    from test_signals import ClientLoop
    pidfile = tmp_path / "gc.pid"
    srv = start_asgi(start_server, "-p", str(pidfile), "--graceful-timeout", "20",
                     events=events)
    (old_worker,) = srv.worker_pids()
    new_master = None
    # In flight on the old worker (the only one yet) across the upgrade.
    held = hold(srv, "usr2", events)
    try:
        with ClientLoop(srv.port, "/info") as loop:
            loop.wait_for(10)
            mark = srv.log_mark()
            srv.send_signal(signal.SIGUSR2)
            new_master = int(srv.wait_for_log(LISTENING_RE, since=mark).group(2))
            new_worker = int(srv.wait_for_log(BOOTING_RE, since=mark).group(1))
            wait_until(lambda: new_worker in loop.pids, what="the new master's worker to serve")
            # The old master stops gracefully: its worker finishes the held request.
            mark = srv.log_mark()
            srv.send_signal(signal.SIGTERM)
            srv.wait_for_log(r"Handling signal: term", since=mark)
            finish(held, "usr2")
            assert srv.proc.wait(20) == 0
            wait_gone(old_worker)
            n = len(loop.pids)
            loop.wait_for(10)
        assert not loop.failures, loop.failures[:5]
        assert set(loop.pids[n:]) == {new_worker}
        assert old_worker in loop.pids
    finally:
        if new_master is not None:
            kill_quietly(new_master, signal.SIGTERM)
            wait_gone(new_master)


def test_graceful_stop_drains_a_websocket_and_a_request(start_server, events):
    srv = start_asgi(start_server, "--graceful-timeout", "20", events=events)
    held = hold(srv, "term", events)

    async def run():
        async with websockets.connect(f"ws://127.0.0.1:{srv.port}/ws", close_timeout=5) as ws:
            await ws.send("before")
            assert await ws.recv() == "before"
            mark = srv.log_mark()
            srv.send_signal(signal.SIGTERM)
            srv.wait_for_log(r"Handling signal: term", since=mark)
            # Still served while the worker drains.
            await ws.send("after")
            assert await ws.recv() == "after"
        finish(held, "term")
    ws_run(run)
    assert srv.wait(timeout=20) == 0


# --- fixed after they were found by the tests above (were pending_asgi_ops.py) ---------

def test_proxy_protocol_address_is_the_scope_client(start_server):
    srv = start_asgi(start_server, "--proxy-protocol", "auto")
    for header, client in ((V1_TCP4, ["192.0.2.10", 56324]),
                           (v2_inet("203.0.113.7", "10.0.0.1", 40000, 8080),
                            ["203.0.113.7", 40000]),
                           (v2_inet6("2001:db8::7", "::1", 1, 443), ["2001:db8::7", 1])):
        with srv.connect() as s:
            reader = Reader(s)
            s.sendall(header + request(path="/scope"))
            first = json.loads(reader.read_response().body)
            s.sendall(request(path="/scope"))
            second = json.loads(reader.read_response().body)
        assert first["client"] == second["client"] == client, (header, first["client"])


def test_proxy_protocol_address_on_a_unix_socket_and_a_websocket(start_server, tmp_path):
    import socket
    sock = str(tmp_path / "p.sock")
    start_asgi(start_server, "--proxy-protocol", "auto", bind=f"unix:{sock}")
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(5)
        s.connect(sock)
        s.sendall(V1_TCP4 + request(path="/scope"))
        scope = json.loads(Reader(s).read_response().body)
    assert scope["client"] == ["192.0.2.10", 56324]
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(5)
        s.connect(sock)
        s.sendall(V1_TCP4 + request(path="/ws-scope", headers=[
            ("Upgrade", "websocket"), ("Connection", "Upgrade"),
            ("Sec-WebSocket-Version", "13"), ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")]))
        reader = Reader(s)
        assert reader.read_head()[1] == 101
        frame = reader.read_exact(4)  # a text frame with a 16-bit length
        text = reader.read_exact(int.from_bytes(frame[2:4], "big"))
    assert json.loads(text)["client"] == ["192.0.2.10", 56324]


def test_access_log_proxy_address(start_server, tmp_path):
    log = tmp_path / "access.log"
    srv = start_asgi(start_server, "--proxy-protocol", "auto", "--access-logfile", str(log),
                     "--access-logformat", "%(h)s %(r)s")
    assert json_of(srv, V1_TCP4 + request(path="/scope"))
    plain(srv, "/end-of-test")
    assert lines_before_end(log) == [b"192.0.2.10 GET /scope HTTP/1.1"]


def test_access_log_environ_and_response_header_atoms(start_server, tmp_path):
    log = tmp_path / "access.log"
    srv = start_asgi(start_server, "--access-logfile", str(log), "--access-logformat",
                     "%(U)s|%(a)s|%(f)s|%(u)s|%({content-type}o)s|%(r)s")
    auth = "Basic " + base64.b64encode(b"alice:s").decode()
    assert plain(srv, "/p?x=1", [("User-Agent", "ua/1"), ("Referer", "http://r.test/"),
                                 ("Authorization", auth)]).status == 200
    plain(srv, "/end-of-test")
    assert lines_before_end(log) == [b"/p|ua/1|http://r.test/|alice|text/plain|GET /p?x=1 HTTP/1.1"]


def test_access_log_default_format_has_referer_and_user_agent(start_server, tmp_path):
    log = tmp_path / "access.log"
    srv = start_asgi(start_server, "--access-logfile", str(log))
    assert plain(srv, "/", [("User-Agent", 'Mozilla "q"/5.0'),
                            ("Referer", "http://r.test/")]).status == 200
    plain(srv, "/end-of-test")
    (line,) = lines_before_end(log)
    assert line.endswith(b'"GET / HTTP/1.1" 200 13 "http://r.test/" "Mozilla \\"q\\"/5.0"'), line


def test_statsd_counts_application_errors_as_exceptions(start_server):
    from test_statsd import Receiver
    receiver = Receiver()
    try:
        srv = start_asgi(start_server, "--statsd-host", receiver.address)
        for _ in range(3):
            assert plain(srv, "/raise").status == 500
        receiver.wait_for(lambda r: r.counts()["gunicorn.request.status.500"] == 3)
        assert srv.stop() == 0
        receiver.barrier()
        c = receiver.counts()
        assert (c["gunicorn.log.exception"], c["gunicorn.log.error"]) == (3, 0), c
    finally:
        receiver.close()


def test_access_log_json_has_path_referer_and_user_agent(start_server, tmp_path):
    log = tmp_path / "access.json"
    srv = start_asgi(start_server, "--access-logfile", str(log), "--access-log-json")
    assert plain(srv, "/p?x=1", [("User-Agent", "ua/1"), ("Referer", "http://r.test/")]).status == 200
    plain(srv, "/end-of-test")
    wait_until(lambda: "/end-of-test" in log.read_text(), what="the last line")
    rec = json.loads(log.read_text().splitlines()[0])
    assert (rec["path"], rec["referer"], rec["user_agent"]) == ("/p", "http://r.test/", "ua/1"), rec


def test_script_name_becomes_the_root_path(start_server):
    srv = start_asgi(start_server, env={"SCRIPT_NAME": "/app"})
    scope = json_of(srv, request(path="/app/scope"))
    assert (scope["root_path"], scope["path"]) == ("/app", "/app/scope"), scope
    trusted = start_asgi(start_server)
    scope = json_of(trusted, request(path="/app/scope", headers=[("SCRIPT_NAME", "/app")]))
    assert (scope["root_path"], scope["path"]) == ("/app", "/app/scope"), scope
