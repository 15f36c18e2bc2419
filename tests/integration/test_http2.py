"""HTTP/2 over TLS (--http-protocols h2,h1, ALPN): real clients (curl --http2, h2load,
Python's h2 on a TLS socket) against the real binary, under each worker class.

Every WSGI feature works per stream: bodies both ways, streamed responses, errors on one
stream only; gthread and gevent run the streams of one connection concurrently, sync one
after another. The hostile-client tests show the worker stays responsive to others."""

import contextlib
import json
import os
import re
import signal
import socket
import subprocess

import pytest

from conftest import BOOTING_RE
from helpers import recv_until_closed, wait_until
from test_tls import APP, CLASSES, client_context, peak_rss_kb

h2 = pytest.importorskip("h2")
import h2.config  # noqa: E402
import h2.connection  # noqa: E402
import h2.events  # noqa: E402
import h2.exceptions  # noqa: E402


def h2_server(start_server, pki, *args, klass="gthread", **kwargs):
    return start_server(APP, "--certfile", pki["server.pem"], "--http-protocols", "h2,h1",
                        *CLASSES[klass], *args, **kwargs)


class Client:
    """One HTTP/2 connection over TLS with h2 (ALPN "h2"): send requests on streams,
    read until they are answered."""

    def __init__(self, srv, pki, timeout=20):
        ctx = client_context(pki["ca.pem"], alpn=["h2"])
        raw = socket.create_connection(("127.0.0.1", srv.port), timeout=timeout)
        self.sock = ctx.wrap_socket(raw, server_hostname="localhost")
        assert self.sock.selected_alpn_protocol() == "h2"
        self.conn = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
        self.conn.initiate_connection()
        self.conn.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 1 << 24})
        self.conn.increment_flow_control_window(1 << 24)
        self.flush()
        self.responses = {}  # stream id -> {"status", "headers", "body", "ended", "reset"}
        self.goaway = None

    def flush(self):
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def request(self, path, method="GET", body=None, headers=()):
        sid = self.conn.get_next_available_stream_id()
        hdrs = [(":method", method), (":path", path), (":scheme", "https"),
                (":authority", "localhost")] + list(headers)
        if body is not None:
            hdrs.append(("content-length", str(len(body))))
        self.conn.send_headers(sid, hdrs, end_stream=body is None)
        self.responses[sid] = {"status": None, "headers": [], "body": bytearray(),
                               "ended": False, "reset": None}
        self.flush()
        if body is not None:
            self.send_body(sid, body)
        return sid

    def send_body(self, sid, body):
        view = memoryview(body)
        while view:
            room = min(self.conn.local_flow_control_window(sid), self.conn.max_outbound_frame_size)
            if room == 0:
                self.read_some()
                continue
            self.conn.send_data(sid, bytes(view[:room]))
            view = view[room:]
            self.flush()
        self.conn.end_stream(sid)
        self.flush()

    def read_some(self):
        data = self.sock.recv(1 << 16)
        if not data:
            raise ConnectionError("the server closed the connection")
        for ev in self.conn.receive_data(data):
            r = self.responses.get(getattr(ev, "stream_id", None))
            if isinstance(ev, h2.events.InformationalResponseReceived):
                r.setdefault("informational", []).append(ev.headers)
            elif isinstance(ev, h2.events.ResponseReceived):
                r["headers"] = ev.headers
                r["status"] = int(dict(ev.headers)[":status"])
            elif isinstance(ev, h2.events.TrailersReceived):
                r["trailers"] = ev.headers
            elif isinstance(ev, h2.events.DataReceived):
                r["body"] += ev.data
                self.conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            elif isinstance(ev, h2.events.StreamEnded):
                r["ended"] = True
            elif isinstance(ev, h2.events.StreamReset):
                if r is not None:
                    r["reset"] = ev.error_code
                    r["ended"] = True
            elif isinstance(ev, h2.events.ConnectionTerminated):
                self.goaway = ev
        self.flush()

    def wait(self, *sids):
        while not all(self.responses[s]["ended"] for s in sids):
            self.read_some()
        return [self.responses[s] for s in sids]

    def close(self):
        self.sock.close()


@pytest.mark.parametrize("klass", list(CLASSES))
def test_environ_and_access_log(start_server, pki, klass):
    srv = h2_server(start_server, pki, "--access-logfile", "-", "--access-logformat",
                    '"%(r)s" %(s)s %(H)s', klass=klass)
    c = Client(srv, pki)
    (r,) = c.wait(c.request("/env?x=1"))
    c.close()
    assert r["status"] == 200
    env = json.loads(bytes(r["body"]))
    assert env["SERVER_PROTOCOL"] == "HTTP/2.0"
    assert env["wsgi.url_scheme"] == "https" and env["HTTPS"] == "on"
    assert env["QUERY_STRING"] == "x=1" and env["HTTP_HOST"] == "localhost"
    assert env["gunicorn.http2.priority_weight"] == 16  # RFC 7540's default
    assert env["gunicorn.http2.priority_depends_on"] == 0
    assert env["SSL_PROTOCOL"] == "TLSv1.3"
    wait_until(lambda: any('"GET /env?x=1 HTTP/2.0" 200 HTTP/2.0' in line
                           for line in srv.out_lines), what="the access log line")


@pytest.mark.parametrize("klass", list(CLASSES))
def test_many_streams_bodies_both_ways_and_errors(start_server, pki, klass):
    """On one connection: 20 GETs, a 3 MiB upload echoed back (spooled past memory), a
    32 MiB streamed response, and an application error that answers 500 on its own
    stream while the others succeed."""
    srv = h2_server(start_server, pki, klass=klass)
    c = Client(srv, pki)
    upload = os.urandom(3 << 20)
    gets = [c.request("/env") for _ in range(20)]
    boom = c.request("/boom")
    big = c.request("/stream?512")
    echo = c.request("/echo", method="POST", body=upload)
    results = c.wait(*gets, boom, big, echo)
    c.close()
    assert all(r["status"] == 200 for r in results[:20])
    assert results[20]["status"] == 500
    assert results[21]["status"] == 200 and len(results[21]["body"]) == 512 * 65536
    assert results[22]["status"] == 200 and bytes(results[22]["body"]) == upload
    assert "RuntimeError: boom" in srv.log_text()
    assert environ_ok(srv, pki)


def environ_ok(srv, pki):
    """Another client is served (the worker is responsive)."""
    out = subprocess.run(["curl", "-sS", "--http2", "--cacert", pki["ca.pem"], "-o", "/dev/null",
                          "-w", "%{http_version} %{http_code}",
                          "https://localhost:%d/hello" % srv.port],
                         capture_output=True, text=True, timeout=30)
    assert out.stdout == "2 200", out.stdout + out.stderr
    return True


@pytest.mark.parametrize("klass", ["gthread", "gevent"])
def test_streams_of_one_connection_run_concurrently(start_server, pki, tmp_path, klass):
    """A stream that waits in the application for a file does not hold up the stream
    that creates it, on the same connection."""
    srv = h2_server(start_server, pki, klass=klass)
    gate = tmp_path / "gate"
    c = Client(srv, pki)
    held = c.request("/hold?%s" % gate)
    srv.wait_for_log(r"gate held in \d+")
    opener = c.request("/open?%s" % gate)
    r_held, r_open = c.wait(held, opener)
    c.close()
    assert bytes(r_held["body"]) == b"released" and bytes(r_open["body"]) == b"opened"


def test_large_response_memory_is_bounded(start_server, pki):
    """A 64 MiB streamed response to a client that reads it all, under flow control:
    the worker holds a bounded part of it at a time."""
    srv = h2_server(start_server, pki)
    c = Client(srv, pki)
    c.wait(c.request("/env"))
    pid = srv.worker_pids()[0]
    before = peak_rss_kb(pid)
    (r,) = c.wait(c.request("/stream?1024"))
    c.close()
    assert r["status"] == 200 and len(r["body"]) == 1024 * 65536
    if not os.environ.get("GC_SANITIZED"):
        assert peak_rss_kb(pid) - before < 24 * 1024


@pytest.mark.parametrize("klass", list(CLASSES))
def test_h2load(start_server, pki, klass):
    if subprocess.run(["which", "h2load"], capture_output=True).returncode != 0:
        pytest.skip("h2load (nghttp2-client) is not installed")
    srv = h2_server(start_server, pki, klass=klass)
    out = subprocess.run(["h2load", "-n", "2000", "-c", "10", "-m", "10",
                          "https://127.0.0.1:%d/hello" % srv.port],
                         capture_output=True, text=True, timeout=120)
    assert "2000 succeeded, 0 failed, 0 errored" in out.stdout, out.stdout + out.stderr
    assert "status codes: 2000 2xx" in out.stdout


def test_http1_still_served_beside_h2(start_server, pki):
    srv = h2_server(start_server, pki)
    out = subprocess.run(["curl", "-sS", "--http1.1", "--cacert", pki["ca.pem"], "-o", "/dev/null",
                          "-w", "%{http_version} %{http_code}",
                          "https://localhost:%d/hello" % srv.port],
                         capture_output=True, text=True, timeout=30)
    assert out.stdout == "1.1 200", out.stderr
    assert environ_ok(srv, pki)


def test_without_h2_alpn_offers_nothing(start_server, pki):
    """Without h2 in --http-protocols no ALPN is offered (Gunicorn's rule)."""
    srv = start_server(APP, "--certfile", pki["server.pem"])
    ctx = client_context(pki["ca.pem"], alpn=["h2", "http/1.1"])
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as s:
            assert s.selected_alpn_protocol() is None


def test_early_hints(start_server, pki):
    srv = h2_server(start_server, pki)
    c = Client(srv, pki)
    (r,) = c.wait(c.request("/hints"))
    c.close()
    (hints,) = r["informational"]
    assert (":status", "103") in hints
    assert ("link", "</style.css>; rel=preload; as=style") in hints
    assert r["status"] == 200 and bytes(r["body"]) == b"hinted"


@pytest.mark.parametrize("klass", list(CLASSES))
def test_trailers(start_server, pki, klass):
    srv = h2_server(start_server, pki, klass=klass)
    c = Client(srv, pki)
    (r,) = c.wait(c.request("/trailers"))
    env_r, = c.wait(c.request("/env"))
    c.close()
    assert r["status"] == 200 and bytes(r["body"]) == b"part one, part two"
    assert r["trailers"] == [("x-checksum", "sha256=abc")]
    callables = json.loads(bytes(env_r["body"]))["_callables"]
    assert "gunicorn.http2.send_trailers" in callables and "wsgi.early_hints" in callables


@contextlib.contextmanager
def stays_responsive_and_bounded(srv, pki, limit_kb=16 * 1024):
    """Around an attack: the worker serves another client afterwards, and its peak
    resident size grew by less than limit_kb (not checked under AddressSanitizer,
    whose quarantine keeps freed memory)."""
    assert environ_ok(srv, pki)  # warm: the baseline includes one request served
    pid = srv.worker_pids()[0]
    before = peak_rss_kb(pid)
    yield
    assert environ_ok(srv, pki)
    assert srv.worker_pids() == [pid], "the worker was replaced"
    if not os.environ.get("GC_SANITIZED"):
        assert peak_rss_kb(pid) - before < limit_kb


# --- defences -------------------------------------------------------------------------

def test_rapid_reset_ends_the_connection(start_server, pki):
    """CVE-2023-44487: streams opened and reset at once, thousands of them: the
    connection is ended with GOAWAY(ENHANCE_YOUR_CALM) and other clients are served."""
    srv = h2_server(start_server, pki)
    with stays_responsive_and_bounded(srv, pki):
        c = Client(srv, pki)
        for _ in range(3000):
            sid = c.conn.get_next_available_stream_id()
            c.conn.send_headers(sid, [(":method", "GET"), (":path", "/env"), (":scheme", "https"),
                                      (":authority", "localhost")], end_stream=True)
            c.conn.reset_stream(sid)
        try:
            c.flush()
            while c.goaway is None:
                c.read_some()
        except (ConnectionError, OSError, h2.exceptions.ProtocolError):
            pass
        c.close()
        assert c.goaway is None or c.goaway.error_code == h2.errors.ErrorCodes.ENHANCE_YOUR_CALM


def test_continuation_flood_ends_the_connection(start_server, pki):
    """CVE-2024-27316 family: one header block in endless CONTINUATION frames."""
    srv = h2_server(start_server, pki)
    with stays_responsive_and_bounded(srv, pki):
        c = Client(srv, pki)
        frames = bytearray()
        block = b"\x00" * 16  # HPACK: literal fields without indexing, empty names
        frames += len(block).to_bytes(3, "big") + b"\x01\x00" + (1).to_bytes(4, "big") + block
        for _ in range(2000):
            frames += len(block).to_bytes(3, "big") + b"\x09\x00" + (1).to_bytes(4, "big") + block
        try:
            c.sock.sendall(bytes(frames))
            while c.sock.recv(65536):
                pass
        except OSError:
            pass
        c.close()


FLOODS = {
    # PINGs and empty SETTINGS, each asking for an acknowledgement the client never reads:
    # the connection ends once too many wait (nghttp2's max_outbound_ack).
    "ping": (8).to_bytes(3, "big") + b"\x06\x00" + (0).to_bytes(4, "big") + b"\x00" * 8,
    "settings": (0).to_bytes(3, "big") + b"\x04\x00" + (0).to_bytes(4, "big"),
}


@pytest.mark.parametrize("kind", list(FLOODS))
def test_ack_floods_end_the_connection(start_server, pki, kind):
    srv = h2_server(start_server, pki)
    with stays_responsive_and_bounded(srv, pki):
        c = Client(srv, pki)
        try:
            for _ in range(50):
                c.sock.sendall(FLOODS[kind] * 1000)
        except OSError:
            pass
        c.close()


def test_hpack_bomb_gets_431(start_server, pki):
    """A 4 KB field indexed in the HPACK table, then referenced 100 times in one block (a
    few hundred bytes on the wire, 400 KB decoded): the decoded size is what counts."""
    srv = h2_server(start_server, pki)
    c = Client(srv, pki)
    big = ("x-bomb", "b" * 4000)
    first = c.request("/env", headers=[big])
    bomb = c.request("/env", headers=[big] * 100)
    r_first, r_bomb = c.wait(first, bomb)
    good = c.request("/env")
    (r_good,) = c.wait(good)
    c.close()
    assert r_first["status"] == 200 and r_bomb["status"] == 431 and r_good["status"] == 200


@pytest.mark.parametrize("klass", ["gthread", "gevent"])
def test_zero_window_stall_holds_little(start_server, pki, klass):
    """A client that opens no window and asks for 64 MiB: the application waits with a
    bounded part of the response queued, and other clients are served meanwhile."""
    srv = h2_server(start_server, pki, klass=klass)
    assert environ_ok(srv, pki)  # the worker has served once: its baseline includes that
    c = Client(srv, pki)
    c.conn.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 0})
    c.flush()
    pid = srv.worker_pids()[0]
    before = peak_rss_kb(pid)
    stalled = c.request("/stream?1024")
    while c.responses[stalled]["status"] is None:
        c.read_some()
    assert environ_ok(srv, pki)
    if not os.environ.get("GC_SANITIZED"):
        assert peak_rss_kb(pid) - before < 16 * 1024
    c.close()


def test_oversized_headers_get_431_on_their_stream(start_server, pki):
    srv = h2_server(start_server, pki)
    c = Client(srv, pki)
    bad = c.request("/env", headers=[("x-big", "a" * 9000)])
    good = c.request("/env")
    r_bad, r_good = c.wait(bad, good)
    c.close()
    assert r_bad["status"] == 431 and r_good["status"] == 200


# --- stopping --------------------------------------------------------------------------

def test_graceful_stop_lets_open_streams_finish(start_server, pki, tmp_path):
    """TERM while a stream runs: GOAWAY, the stream still gets its whole response (curl
    here: Python's h2 4.1 stops reading at the GOAWAY), then the worker exits."""
    srv = h2_server(start_server, pki)
    gate = tmp_path / "gate"
    curl = subprocess.Popen(["curl", "-sS", "--http2", "--cacert", pki["ca.pem"],
                             "-w", " %{http_version} %{http_code}",
                             "https://localhost:%d/hold?%s" % (srv.port, gate)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        srv.wait_for_log(r"gate held in \d+", timeout=20)
        srv.send_signal(signal.SIGTERM)
        srv.wait_for_log(r"Handling signal: term")
        gate.write_text("open")
        out, err = curl.communicate(timeout=30)
    finally:
        curl.kill()
    assert out == "released 2 200", out + err
    assert srv.wait(timeout=20) == 0


# --- h2c: HTTP/2 without TLS, for trusted peers (Gunicorn's http2_cleartext) ----------

H2C = ["--http-protocols", "h2,h1", "--http2-cleartext", "prior-knowledge"]


def test_h2c_prior_knowledge(start_server):
    srv = start_server(APP, *H2C, "-k", "gthread", "--threads", "4")
    out = subprocess.run(["curl", "-sS", "--http2-prior-knowledge", "-o", "/dev/null",
                          "-w", "%{http_version} %{http_code}",
                          "http://127.0.0.1:%d/env" % srv.port],
                         capture_output=True, text=True, timeout=30)
    assert out.stdout == "2 200", out.stdout + out.stderr
    if subprocess.run(["which", "h2load"], capture_output=True).returncode == 0:
        out = subprocess.run(["h2load", "-n", "500", "-c", "5", "-m", "10",
                              "http://127.0.0.1:%d/hello" % srv.port],
                             capture_output=True, text=True, timeout=120)
        assert "500 succeeded, 0 failed, 0 errored" in out.stdout, out.stdout + out.stderr


def test_h2c_port_refuses_http1_from_a_trusted_peer(start_server):
    """Gunicorn's answer: a trusted peer on a prior-knowledge port must speak HTTP/2."""
    srv = start_server(APP, *H2C)
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as s:
        s.sendall(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
        data = recv_until_closed(s)
    assert data.startswith(b"HTTP/1.1 400 Bad Request\r\n"), data
    # The first 24 bytes (the preface's length), as Gunicorn reports them; the error page
    # escapes the quotes.
    assert b"Expected HTTP/2 connection preface, got b&#x27;GET /hello HTTP/1.1\\r\\nHos&#x27;" \
        in data, data


def test_h2c_not_for_untrusted_peers(start_server):
    """Outside forwarded_allow_ips the setting is as if off: HTTP/1.1 is served."""
    srv = start_server(APP, *H2C, "--forwarded-allow-ips", "10.1.2.3")
    out = subprocess.run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_version} %{http_code}",
                          "http://127.0.0.1:%d/hello" % srv.port],
                         capture_output=True, text=True, timeout=30)
    assert out.stdout == "1.1 200", out.stdout + out.stderr


def test_expect_100_continue(start_server, pki):
    """curl sends `Expect: 100-continue` with a large body and waits for the 100 (one
    second at most; --expect100-timeout 30 makes a missing 100 a failure here)."""
    srv = h2_server(start_server, pki)
    body = os.urandom(2 << 20)
    out = subprocess.run(["curl", "-sS", "--http2", "--cacert", pki["ca.pem"],
                          "--expect100-timeout", "30", "-H", "Expect: 100-continue",
                          "--data-binary", "@-", "-o", "/dev/null", "-w",
                          "%{http_version} %{http_code} %{size_download}",
                          "https://localhost:%d/echo" % srv.port],
                         input=body, capture_output=True, timeout=25)
    assert out.stdout == b"2 200 %d" % len(body), out.stdout + out.stderr


def test_h2c_upgrade(start_server):
    """--http2-cleartext upgrade: curl --http2 on http:// asks with "Upgrade: h2c";
    the answer is 101 and then HTTP/2, the first request being stream 1."""
    srv = start_server(APP, "--http-protocols", "h2,h1", "--http2-cleartext", "upgrade")
    out = subprocess.run(["curl", "-sS", "--http2", "-w", " %{http_version} %{http_code}",
                          "http://127.0.0.1:%d/hints" % srv.port,
                          "http://127.0.0.1:%d/hello" % srv.port],
                         capture_output=True, text=True, timeout=30)
    assert out.stdout.startswith("hinted 2 200ok "), out.stdout + out.stderr
    assert out.stdout.endswith(" 2 200"), out.stdout


def test_httpx_http2(start_server, pki):
    httpx = pytest.importorskip("httpx")
    srv = h2_server(start_server, pki)
    with httpx.Client(http2=True, verify=pki["ca.pem"], timeout=20) as client:
        rs = [client.get("https://localhost:%d/env?n=%d" % (srv.port, i)) for i in range(5)]
        big = client.post("https://localhost:%d/echo" % srv.port, content=b"z" * (1 << 20))
    assert all(r.http_version == "HTTP/2" and r.status_code == 200 for r in rs)
    assert rs[3].json()["QUERY_STRING"] == "n=3"
    assert big.http_version == "HTTP/2" and big.content == b"z" * (1 << 20)


def test_nginx_grpc_pass_speaks_h2_to_us(start_server, pki, tmp_path):
    """nginx as an HTTP/2-over-TLS client of gunicorn-c (grpc_pass grpcs://), the way a
    proxy that speaks h2 upstream reaches it."""
    from test_nginx import Nginx
    from helpers import free_port
    srv = h2_server(start_server, pki, "--access-logfile", "-")
    port = free_port()
    site = """
server {
    listen 127.0.0.1:%d;
    location / {
        grpc_pass grpcs://127.0.0.1:%d;
        grpc_ssl_trusted_certificate %s;
        grpc_ssl_verify on;
        grpc_ssl_name localhost;
    }
}
""" % (port, srv.port, pki["ca.pem"])
    n = Nginx(tmp_path / "nginx", site).start(port)
    try:
        out = subprocess.run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}",
                              "http://127.0.0.1:%d/hello" % port],
                             capture_output=True, text=True, timeout=30)
    finally:
        n.stop()
    assert out.stdout == "200", out.stdout + out.stderr + n.error_log()
    wait_until(lambda: any('"GET /hello HTTP/2.0" 200' in line for line in srv.out_lines),
               what="an HTTP/2 request from nginx in the access log")


def test_worker_timeout_names_the_streams_request(start_server, pki, tmp_path):
    srv = h2_server(start_server, pki, "--timeout", "2", klass="sync")
    (worker,) = srv.worker_pids()
    gate = tmp_path / "never"
    curl = subprocess.Popen(["curl", "-sS", "--http2", "--cacert", pki["ca.pem"], "-o", "/dev/null",
                             "https://localhost:%d/hold?%s" % (srv.port, gate)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        srv.wait_for_log(r"gate held in \d+", timeout=20)
        srv.wait_for_log(rf"\[CRITICAL\] WORKER TIMEOUT \(pid:{worker}\)", timeout=10)
        srv.wait_for_log(rf'Worker \(pid:{worker}\) was serving "GET /hold\?{re.escape(str(gate))}" for')
        srv.wait_for_log(BOOTING_RE.pattern, count=2, timeout=20)
    finally:
        curl.kill()
        curl.wait()


@pytest.mark.parametrize("klass", ["sync", "gthread"])
def test_file_wrapper_per_stream(start_server, pki, tmp_path, klass):
    data = os.urandom(3 << 20)
    f = tmp_path / "f.bin"
    f.write_bytes(data)
    srv = h2_server(start_server, pki, klass=klass)
    c = Client(srv, pki)
    a, b = c.wait(c.request("/file?%s" % f), c.request("/file?%s" % f))
    c.close()
    assert bytes(a["body"]) == data and bytes(b["body"]) == data
    assert ("content-length", str(len(data))) in a["headers"]


def test_max_requests_rotates_without_failing_a_request(start_server, pki):
    """--max-requests 3 under one HTTP/2 connection asking for 8: the worker is replaced
    (GOAWAY on its graceful stop) and curl's requests all succeed."""
    srv = h2_server(start_server, pki, "--max-requests", "3")
    urls = ["https://localhost:%d/hello" % srv.port] * 8
    out = subprocess.run(["curl", "-sS", "--http2", "--cacert", pki["ca.pem"], "-o", "/dev/null",
                          "-w", "%{http_code} "] + urls[:1] + sum((["-o", "/dev/null", u]
                                                                    for u in urls[1:]), []),
                         capture_output=True, text=True, timeout=60)
    assert out.stdout.split() == ["200"] * 8, out.stdout + out.stderr
    srv.wait_for_log(r"Autorestarting worker after current request\.")


def test_a_stream_sent_before_the_goaway_arrived_is_answered(start_server, pki):
    """The race under rotation: a client opens a stream while the stopping worker's first
    GOAWAY is still on its way to it. The connection stays until the client acknowledges
    the PING sent with that GOAWAY, so the stream is answered and the final GOAWAY names
    it. (The connection used to close as soon as no stream ran, losing such a stream:
    curl's "stream 13 was not closed cleanly" under --max-requests.) Frames are read raw,
    since Python's h2 refuses to open a stream once it has seen a GOAWAY."""
    import hpack

    srv = h2_server(start_server, pki, "--max-requests", "1")
    ctx = client_context(pki["ca.pem"], alpn=["h2"])
    sock = ctx.wrap_socket(socket.create_connection(("127.0.0.1", srv.port), timeout=20),
                           server_hostname="localhost")
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    head = [(":method", "GET"), (":path", "/hello"), (":scheme", "https"),
            (":authority", "localhost")]
    conn.send_headers(1, head, end_stream=True)
    sock.sendall(conn.data_to_send())
    conn.send_headers(3, head, end_stream=True)
    second = conn.data_to_send()  # stream 3's HEADERS, encoded in order after stream 1's

    decoder, buf = hpack.Decoder(), b""
    status, goaways, pings = {}, [], []

    def frames():
        nonlocal buf
        while True:
            while len(buf) >= 9 and len(buf) >= 9 + int.from_bytes(buf[:3], "big"):
                n = int.from_bytes(buf[:3], "big")
                kind, flags = buf[3], buf[4]
                sid = int.from_bytes(buf[5:9], "big") & 0x7FFFFFFF
                payload, buf = buf[9:9 + n], buf[9 + n:]
                yield kind, flags, sid, payload
            data = sock.recv(1 << 16)
            if not data:
                return
            buf += data

    sent_second = False
    for kind, flags, sid, payload in frames():
        if kind == 0x1:  # HEADERS (nghttp2 sends neither padding nor priority here)
            status[sid] = dict(decoder.decode(payload)).get(":status")
        elif kind == 0x4 and not flags & 0x1:  # SETTINGS: acknowledge
            sock.sendall(b"\x00\x00\x00\x04\x01\x00\x00\x00\x00")
        elif kind == 0x6 and not flags & 0x1:  # PING: answered once stream 3 is out
            pings.append(payload)
        elif kind == 0x7:  # GOAWAY
            goaways.append(int.from_bytes(payload[:4], "big") & 0x7FFFFFFF)
        if goaways and not sent_second:
            # The first GOAWAY is here: stream 3 "was sent before it arrived".
            sock.sendall(second)
            sent_second = True
        if sent_second and pings:
            for p in pings:
                sock.sendall(b"\x00\x00\x08\x06\x01\x00\x00\x00\x00" + p)
            pings = []
    sock.close()
    assert status == {1: "200", 3: "200"}, (status, goaways)
    assert goaways == [0x7FFFFFFF, 3]
    srv.wait_for_log(r"Autorestarting worker after current request\.")
