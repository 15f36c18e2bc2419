"""HTTP/2 under the asgi worker (`-k asgi --http-protocols h2,h1` over TLS, and h2c):
each stream is an ASGI request with scope["http_version"] == "2"; the application's
sends go into the connection's HTTP/2 session, with its flow control as back-pressure.
Real clients: Python's h2 on a TLS socket (test_http2.Client), curl, httpx and h2load,
against apps/asgi_app.py and FastAPI.

Gunicorn 26.1's asgi worker serves HTTP/2 too. Run against it (GUNICORN_C_BIN set to a
wrapper running it), only test_fastapi_over_h2c passes: the echoed bodies of concurrent
streams and of a 1 MiB POST come back altered, the connection is closed under a
streamed, a HEAD, a flow-controlled or a failing response, early hints are not offered,
a reset stream never reaches the task as http.disconnect, and its access log says
"HTTP/2" where its WSGI workers (and ours, both) say "HTTP/2.0"."""

import json
import os
import subprocess

import pytest

from helpers import wait_in_file
from test_asgi import needs, start_asgi
from test_http2 import Client
from test_tls import peak_rss_kb

h2 = pytest.importorskip("h2")
import h2.settings  # noqa: E402


@pytest.fixture
def events(tmp_path):
    return str(tmp_path / "events")


def h2_asgi(start_server, events, pki, *args, app="asgi_app:app", **kw):
    return start_asgi(start_server, events, app, "--certfile", pki["server.pem"],
                      "--http-protocols", "h2,h1", *args, **kw)


def test_scope_and_bodies_on_concurrent_streams(start_server, events, pki):
    """Ten streams at once on one connection, each with a body: every one gets its own
    echo, and the scope says HTTP/2 over https."""
    srv = h2_asgi(start_server, events, pki)
    c = Client(srv, pki)
    scope_sid = c.request("/scope?x=1")
    bodies = {c.request("/echo?i=%d" % i, method="POST", body=(b"%d-" % i) * (5000 + i)): i
              for i in range(10)}
    (scope,) = c.wait(scope_sid)
    results = c.wait(*bodies)
    c.close()
    got = json.loads(bytes(scope["body"]))
    assert got["http_version"] == "2" and got["scheme"] == "https"
    assert got["query_string"] == "x=1" and got["path"] == "/scope"
    # The spec: :authority becomes the host header, pseudo-headers are not headers.
    assert [h for h in got["headers"] if h[0] == "host"] == [["host", "localhost"]]
    assert not any(h[0].startswith(":") for h in got["headers"])
    for sid, r in zip(bodies, results):
        i = bodies[sid]
        assert r["status"] == 200 and bytes(r["body"]) == (b"%d-" % i) * (5000 + i)


def test_streamed_responses_and_length(start_server, events, pki):
    srv = h2_asgi(start_server, events, pki)
    c = Client(srv, pki)
    s, cl, head = c.wait(c.request("/stream?n=7"), c.request("/stream-cl"),
                         c.request("/", method="HEAD"))
    c.close()
    assert bytes(s["body"]) == b"".join(b"chunk %d\n" % i for i in range(7))
    assert not any(k == "transfer-encoding" for k, _ in s["headers"])
    assert bytes(cl["body"]) == b"0123456789" and ("content-length", "10") in cl["headers"]
    assert head["status"] == 200 and bytes(head["body"]) == b""


def test_flow_control_is_the_back_pressure(start_server, events, pki):
    """A client that opens no window and asks for 64 MiB: the application's sends wait
    (the response stays a bounded part of it in the worker) while another stream on
    another connection is served; once the window opens, every byte arrives."""
    srv = h2_asgi(start_server, events, pki)
    warm = Client(srv, pki)
    warm.wait(warm.request("/"))
    pid = srv.worker_pids()[0]
    before = peak_rss_kb(pid)
    c = Client(srv, pki)
    c.conn.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 0})
    c.flush()
    stalled = c.request("/big?n=1024")
    while c.responses[stalled]["status"] is None:
        c.read_some()
    (other,) = warm.wait(warm.request("/echo", method="POST", body=b"meanwhile"))
    assert bytes(other["body"]) == b"meanwhile"
    if not os.environ.get("GC_SANITIZED"):
        assert peak_rss_kb(pid) - before < 16 * 1024
    # Open the window: the rest comes, and the application finishes.
    c.conn.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 1 << 20})
    c.flush()
    (r,) = c.wait(stalled)
    assert len(r["body"]) == 1024 * 65536
    wait_in_file(events, "big sent")
    c.close()
    warm.close()


def test_early_hints_and_trailers(start_server, events, pki):
    srv = h2_asgi(start_server, events, pki)
    c = Client(srv, pki)
    early, trailers = c.wait(c.request("/early"), c.request("/trailers"))
    c.close()
    assert early["status"] == 200 and bytes(early["body"]) == b"offered"
    assert [dict(h)[":status"] for h in early.get("informational", [])] == ["103"]
    assert ("link", "</style.css>; rel=preload; as=style") in early["informational"][0]
    assert bytes(trailers["body"]) == b"part one part two"
    assert ("x-sum", "42") in trailers.get("trailers", [])


def test_reset_stream_is_a_disconnect(start_server, events, pki):
    """The client resets a stream whose application waits in receive(): it gets
    http.disconnect, and the connection's other streams go on."""
    srv = h2_asgi(start_server, events, pki)
    c = Client(srv, pki)
    sid = c.request("/wait?h2")
    while c.responses[sid]["status"] is None:
        c.read_some()
    c.conn.reset_stream(sid, error_code=8)  # CANCEL
    c.flush()
    wait_in_file(events, "disconnect h2")
    (r,) = c.wait(c.request("/echo", method="POST", body=b"after"))
    assert bytes(r["body"]) == b"after"
    c.close()


def test_errors_stay_on_their_stream(start_server, events, pki):
    """An exception before the response: a 500 on that stream. After the response began:
    the stream is reset (the client cannot take a cut body for a whole one). The other
    streams are answered."""
    srv = h2_asgi(start_server, events, pki)
    c = Client(srv, pki)
    before, after, ok = c.wait(c.request("/raise-before"), c.request("/raise-after"),
                               c.request("/echo", method="POST", body=b"fine"))
    c.close()
    assert before["status"] == 500
    # (its head may not have left before the reset: the frames go at the turn's end)
    assert after["reset"] == 2 and after["status"] in (None, 200)  # INTERNAL_ERROR
    assert bytes(ok["body"]) == b"fine"
    srv.wait_for_log(r"Error handling request GET /raise-after")


def test_access_log_says_http2(start_server, events, pki, tmp_path):
    log = tmp_path / "access.log"
    srv = h2_asgi(start_server, events, pki, "--access-logfile", str(log))
    c = Client(srv, pki)
    c.wait(c.request("/echo?a=1", method="POST", body=b"12345"))
    c.close()
    line = wait_in_file(str(log), r'"POST /echo\?a=1 HTTP/2.0" 200 5')
    assert line


def test_curl_httpx_and_h2load(start_server, events, pki):
    srv = h2_asgi(start_server, events, pki)
    out = subprocess.run(["curl", "-sS", "--http2", "--cacert", pki["ca.pem"],
                          "-w", " %{http_version} %{http_code}",
                          "https://localhost:%d/" % srv.port],
                         capture_output=True, text=True, timeout=30)
    assert out.stdout == "Hello, World! 2 200", out.stdout + out.stderr
    httpx = pytest.importorskip("httpx")
    with httpx.Client(http2=True, verify=pki["ca.pem"], timeout=20) as client:
        big = client.post("https://localhost:%d/echo" % srv.port, content=b"z" * (1 << 20))
    assert big.http_version == "HTTP/2" and big.content == b"z" * (1 << 20)
    if subprocess.run(["which", "h2load"], capture_output=True).returncode != 0:
        pytest.skip("h2load (nghttp2-client) is not installed")
    out = subprocess.run(["h2load", "-n", "2000", "-c", "10", "-m", "10",
                          "https://127.0.0.1:%d/" % srv.port],
                         capture_output=True, text=True, timeout=120)
    assert "2000 succeeded, 0 failed, 0 errored" in out.stdout, out.stdout + out.stderr


def test_fastapi_over_h2c(start_server, events):
    """FastAPI on HTTP/2 without TLS (prior knowledge, from a trusted peer)."""
    needs("fastapi")
    srv = start_asgi(start_server, events, "fastapi_app:app", "--http-protocols", "h2,h1",
                     "--http2-cleartext", "prior-knowledge")
    out = subprocess.run(["curl", "-sS", "--http2-prior-knowledge",
                          "-w", " %{http_version} %{http_code}",
                          "http://127.0.0.1:%d/add?a=40&b=2" % srv.port],
                         capture_output=True, text=True, timeout=30)
    body, version, code = out.stdout.rsplit(" ", 2)
    assert (version, code) == ("2", "200"), out.stdout + out.stderr
    assert json.loads(body) == {"sum": 42}
