"""environ["gunicorn.socket"]: WSGI applications that take the connection over, as WSGI
WebSocket libraries do under Gunicorn. The application (apps/ws_app.py) does the
handshake and the framing itself with wsproto on the socket; the client is the
`websockets` library (asyncio) or a raw socket. Every worker class: sync holds the worker
for the socket's life, gthread a thread, gevent a greenlet (a cooperative socket)."""

import asyncio
import signal
import socket

import pytest

from helpers import get, recv_until_closed, wait_in_file

websockets = pytest.importorskip("websockets")
pytest.importorskip("wsproto")

APP = "ws_app:app"
CLASSES = {"sync": ["-k", "sync"], "gthread": ["-k", "gthread", "--threads", "4"],
           "gevent": ["-k", "gevent"]}

UPGRADE = (b"GET %s HTTP/1.1\r\nHost: test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
# The handshake answer wsproto writes for that key (RFC 6455 1.3's example).
ACCEPT = b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 30))


def ws_url(srv, path="/echo"):
    return "ws://127.0.0.1:%d%s" % (srv.port, path)


def raw_upgrade(srv, path):
    """Sends the handshake on a raw socket; returns every byte until the server closes."""
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as s:
        s.sendall(UPGRADE % path.encode())
        return recv_until_closed(s)


def only_the_handshake(data):
    head, sep, rest = data.partition(b"\r\n\r\n")
    assert sep, data
    assert head.startswith(b"HTTP/1.1 101 "), data
    assert ACCEPT in head, data
    assert rest == b"", data


@pytest.mark.parametrize("klass", CLASSES)
def test_echo_ping_and_close(start_server, klass, tmp_path):
    access = tmp_path / "access.log"
    srv = start_server(APP, *CLASSES[klass], "--access-logfile", str(access))
    worker = srv.worker_pids()[-1]

    async def session():
        async with websockets.connect(ws_url(srv)) as ws:
            await ws.send("hello")
            assert await ws.recv() == "hello"
            await ws.send(b"\x00\xff" * 1000)
            assert await ws.recv() == b"\x00\xff" * 1000
            await ws.send(["frag", "mented"])  # one message in three frames
            assert await ws.recv() == "fragmented"
            await ws.send("pid")
            assert await ws.recv() == str(worker)
            await (await ws.ping(b"are you there"))
        assert ws.close_code == 1000
        return ws

    run(session())
    # The worker is whole and HTTP goes on: the connection that was taken is not reused.
    r = get(srv, "/")
    assert (r.status_code, r.text) == (200, "plain")
    assert srv.worker_pids() == [worker]
    # The session is in the access log, as the handshake it began with.
    wait_in_file(access, r'"GET /echo HTTP/1\.1" 101 ')


@pytest.mark.parametrize("klass", CLASSES)
def test_returning_without_closing_writes_nothing_more(start_server, klass):
    """The application answers the handshake and returns without closing its socket: the
    server writes nothing after the application's bytes (no response of its own) and
    the client sees the connection end once the application's socket object is gone."""
    srv = start_server(APP, *CLASSES[klass])
    only_the_handshake(raw_upgrade(srv, "/leave"))
    assert get(srv, "/").text == "plain"
    assert len(srv.worker_pids()) == 1


@pytest.mark.parametrize("klass", CLASSES)
def test_an_error_after_taking_is_logged_never_answered(start_server, klass):
    srv = start_server(APP, *CLASSES[klass])
    only_the_handshake(raw_upgrade(srv, "/raise"))
    srv.wait_for_log(r"\[ERROR\] Error handling a connection the application took")
    srv.wait_for_log(r"RuntimeError: broke after the handshake")
    assert "Internal Server Error" not in srv.log_text()
    assert get(srv, "/").text == "plain"


def test_stop_iteration_ends_quietly(start_server):
    """flask-sock ends a WebSocket route under Gunicorn by raising StopIteration."""
    srv = start_server(APP, "-k", "gthread", "--log-level", "debug")

    async def session():
        async with websockets.connect(ws_url(srv, "/stop")) as ws:
            await ws.send("x")
            assert await ws.recv() == "x"
        return ws.close_code

    assert run(session()) == 1000
    srv.wait_for_log(r"\[DEBUG\] Closing connection\.")
    assert "[ERROR]" not in srv.log_text()


@pytest.mark.parametrize("klass", CLASSES)
def test_what_was_written_goes_first(start_server, klass):
    """Bytes the application gave write() reach the client before its own bytes on the
    socket, and what it returns afterwards is never sent."""
    srv = start_server(APP, *CLASSES[klass])
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as s:
        s.sendall(b"GET /wrote HTTP/1.1\r\nHost: test\r\n\r\n")
        data = recv_until_closed(s)
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK"), data
    assert body == b"0123456789abcdefghij", data


@pytest.mark.parametrize("klass", CLASSES)
def test_looking_at_the_socket_does_not_take_it(start_server, klass):
    """getpeername() and friends leave the connection to the server: the response is
    written as usual and keep-alive goes on."""
    srv = start_server(APP, *CLASSES[klass])
    conn = srv.http_connection()
    try:
        for _ in range(2):
            conn.request("GET", "/peek")
            r = conn.getresponse()
            body = r.read().decode()
            local = conn.sock.getsockname()
            assert r.status == 200
            assert body == "True AF_INET %r" % ((local[0], local[1]),)
    finally:
        conn.close()


def test_unix_socket(start_server, tmp_path):
    sock_path = str(tmp_path / "gc.sock")
    start_server(APP, bind="unix:" + sock_path)

    async def session():
        async with websockets.unix_connect(sock_path, "ws://localhost/echo") as ws:
            await ws.send("over unix")
            return await ws.recv()

    assert run(session()) == "over unix"
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(10)
        s.connect(sock_path)
        s.sendall(b"GET /peek HTTP/1.0\r\n\r\n")
        assert recv_until_closed(s).endswith(b"True AF_UNIX ")


def test_a_thousand_websockets_on_one_gevent_worker(start_server):
    srv = start_server(APP, "-k", "gevent", "--worker-connections", "1100")
    worker = srv.worker_pids()[-1]
    n = 1000

    async def session():
        socks = await asyncio.gather(*(websockets.connect(ws_url(srv), max_queue=4)
                                       for _ in range(n)))
        try:
            # All of them open at once, each served by the one worker.
            await asyncio.gather(*(ws.send("pid") for ws in socks))
            pids = await asyncio.gather(*(ws.recv() for ws in socks))
            assert set(pids) == {str(worker)}
            # Plain HTTP is still served meanwhile.
            loop = asyncio.get_running_loop()
            r = await loop.run_in_executor(None, get, srv, "/")
            assert r.text == "plain"
            await asyncio.gather(*(ws.send("again %d" % i) for i, ws in enumerate(socks)))
            answers = await asyncio.gather(*(ws.recv() for ws in socks))
            assert answers == ["again %d" % i for i in range(n)]
        finally:
            await asyncio.gather(*(ws.close() for ws in socks))
        return [ws.close_code for ws in socks]

    assert run(session()) == [1000] * n
    assert srv.worker_pids() == [worker]


def test_graceful_stop_waits_for_a_websocket(start_server):
    """TERM: the worker stops taking connections but lets a running WebSocket go on (it
    is a running request, as in Gunicorn) until it ends, then exits."""
    srv = start_server(APP, "-k", "gthread", "--graceful-timeout", "30")

    async def session():
        async with websockets.connect(ws_url(srv)) as ws:
            await ws.send("before")
            assert await ws.recv() == "before"
            srv.send_signal(signal.SIGTERM)
            srv.wait_for_log(r"Handling signal: term")
            await ws.send("during the stop")
            assert await ws.recv() == "during the stop"
        return ws.close_code

    assert run(session()) == 1000
    assert srv.wait(timeout=20) == 0


def test_graceful_timeout_ends_a_websocket(start_server):
    """A WebSocket that outlives --graceful-timeout is cut when the worker is killed."""
    srv = start_server(APP, "-k", "gthread", "--graceful-timeout", "1")
    with socket.create_connection(("127.0.0.1", srv.port), timeout=20) as s:
        s.sendall(UPGRADE % b"/echo")
        head = b""
        while b"\r\n\r\n" not in head:
            head += s.recv(4096)
        assert head.startswith(b"HTTP/1.1 101 ")
        srv.send_signal(signal.SIGTERM)
        assert srv.wait(timeout=20) == 0
        assert recv_until_closed(s) == b""


def test_max_requests_counts_a_websocket(start_server):
    srv = start_server(APP, "-k", "gthread", "--max-requests", "1")
    first = srv.worker_pids()[-1]

    async def session():
        async with websockets.connect(ws_url(srv)) as ws:
            await ws.send("one")
            return await ws.recv()

    assert run(session()) == "one"
    srv.wait_for_log(r"Autorestarting worker after current request\.")
    srv.wait_for_log(r"Booting worker with pid: (?!%d)\d+" % first)


def test_sync_timeout_applies_to_a_websocket(start_server):
    """Under sync the socket holds the worker, whose heartbeat stops: --timeout ends it
    (Gunicorn's behaviour; docs/http.md says to use gthread or gevent)."""
    srv = start_server(APP, "-k", "sync", "--timeout", "2")
    worker = srv.worker_pids()[-1]
    with socket.create_connection(("127.0.0.1", srv.port), timeout=20) as s:
        s.sendall(UPGRADE % b"/echo")
        head = b""
        while b"\r\n\r\n" not in head:
            head += s.recv(4096)
        srv.wait_for_log(r"WORKER TIMEOUT \(pid:%d\)" % worker, timeout=15)
        assert recv_until_closed(s) == b""
    srv.wait_for_log(r"Booting worker with pid: (?!%d)\d+" % worker, timeout=15)
    assert get(srv, "/").text == "plain"


def test_tls_connections_have_no_socket(start_server, pki):
    """Under TLS the bytes on the socket are the server's to encrypt: no gunicorn.socket
    (Gunicorn's would be an ssl.SSLSocket; docs/http.md)."""
    import ssl
    srv = start_server(APP, "--certfile", pki["server.pem"])
    ctx = ssl.create_default_context(cafile=pki["ca.pem"])
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as s:
            s.sendall(b"GET /peek HTTP/1.0\r\nHost: localhost\r\n\r\n")
            data = recv_until_closed(s)
    assert data.startswith(b"HTTP/1.0 200 OK"), data
    assert data.endswith(b"\r\n\r\nno socket"), data
