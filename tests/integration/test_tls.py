"""TLS served in C (--certfile, --keyfile, --ca-certs, --cert-reqs, --ciphers, the
ssl_context hook): real clients (Python's ssl, requests, curl, openssl s_client) against
the real binary, under each worker class.

Certificates come from trustme: a CA, the server's certificate for localhost and
127.0.0.1, a second one for rotation, a client certificate, and a second CA for the
hook that loads its own chain."""

import http.client
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess

import pytest

from conftest import BOOTING_RE, run_cli
from helpers import recv_until_closed, wait_until

pytest.importorskip("trustme")

APP = "tls_app:app"
CLASSES = {"sync": ["-k", "sync"], "gthread": ["-k", "gthread", "--threads", "4"],
           "gevent": ["-k", "gevent"]}


def client_context(cafile, cert=None, max_version=None, alpn=None, ciphers=None):
    ctx = ssl.create_default_context(cafile=cafile)
    if cert:
        ctx.load_cert_chain(cert)
    if max_version:
        ctx.maximum_version = max_version
    if ciphers:
        ctx.set_ciphers(ciphers)
    if alpn:
        ctx.set_alpn_protocols(alpn)
    return ctx


def https(srv, ctx, path="/env", method="GET", body=None, timeout=10):
    """One request on a new TLS connection: (status, body bytes, the connection's
    peer certificate as Python reports it)."""
    conn = http.client.HTTPSConnection("localhost", srv.port, context=ctx, timeout=timeout)
    try:
        conn.request(method, path, body=body)
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, data, conn.sock.getpeercert()
    finally:
        conn.close()


def environ(srv, ctx):
    status, body, _ = https(srv, ctx)
    assert status == 200
    return json.loads(body)


def tls_server(start_server, pki, *args, klass="sync", **kwargs):
    return start_server(APP, "--certfile", pki["server.pem"], *CLASSES[klass], *args, **kwargs)


# --- the basics, under every class --------------------------------------------------------

@pytest.mark.parametrize("klass", list(CLASSES))
def test_https_environ_and_listening_line(start_server, pki, klass):
    srv = tls_server(start_server, pki, klass=klass)
    assert srv.url.startswith("https://127.0.0.1:"), srv.log_text()
    env = environ(srv, client_context(pki["ca.pem"]))
    assert env["wsgi.url_scheme"] == "https"
    assert env["HTTPS"] == "on"
    assert env["SERVER_PORT"] == str(srv.port)
    assert env["SSL_PROTOCOL"] == "TLSv1.3"
    assert env["SSL_CIPHER"].startswith("TLS_")
    assert "SSL_CLIENT_S_DN" not in env
    # wsgi.early_hints on every request; the HTTP/2 trailers callable only over HTTP/2.
    assert "wsgi.early_hints" in env["_callables"]
    assert "gunicorn.http2.send_trailers" not in env["_callables"]
    assert "not yet active" not in srv.log_text()


@pytest.mark.parametrize("klass", list(CLASSES))
def test_keepalive_pipelining_and_bodies(start_server, pki, klass):
    """Several requests on one TLS connection, two of them pipelined in one write, a
    body of several records each way."""
    srv = tls_server(start_server, pki, klass=klass)
    ctx = client_context(pki["ca.pem"])
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as s:
            body = os.urandom(300 * 1024)
            s.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body)
                      + body + b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
                      + b"GET /b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data = recv_until_closed(s)
    first, _, rest = data.partition(b"\r\n\r\n")
    assert first.startswith(b"HTTP/1.1 200")
    assert rest[:len(body)] == body
    rest = rest[len(body):]
    assert rest.count(b"HTTP/1.1 200 OK") == 2
    assert rest.count(b"ok %d" % srv.worker_pids()[0]) == 2


@pytest.mark.parametrize("klass", list(CLASSES))
def test_large_responses_stream_with_bounded_memory(start_server, pki, tmp_path, klass):
    """Without sendfile (no kernel TLS here) a 48 MiB file and a 32 MiB generator go
    through user space in pieces: the worker's peak RSS does not grow by their size."""
    big = tmp_path / "big.bin"
    chunk = os.urandom(1 << 20)
    with open(big, "wb") as f:
        for _ in range(48):
            f.write(chunk)
    srv = tls_server(start_server, pki, klass=klass)
    ctx = client_context(pki["ca.pem"])
    environ(srv, ctx)  # the worker has served once: its baseline includes that
    pid = srv.worker_pids()[0]
    before = peak_rss_kb(pid)
    status, data, _ = https(srv, ctx, "/file?%s" % big, timeout=60)
    assert status == 200 and len(data) == 48 << 20 and data[:1 << 20] == chunk
    status, data, _ = https(srv, ctx, "/stream?512", timeout=60)
    assert status == 200 and len(data) == 512 * 65536
    # (AddressSanitizer keeps freed memory in quarantine: RSS says nothing there.)
    if not os.environ.get("GC_SANITIZED"):
        assert peak_rss_kb(pid) - before < 24 * 1024, "worker peak RSS grew with the response"
    assert "TLS: kernel TLS is not available" in srv.log_text() or \
        "TLS: kernel TLS is available" in srv.log_text()


def peak_rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise AssertionError("no VmHWM for %d" % pid)


def test_requests_and_curl_clients(start_server, pki):
    requests = pytest.importorskip("requests")
    srv = tls_server(start_server, pki)
    r = requests.get("https://localhost:%d/env" % srv.port, verify=pki["ca.pem"], timeout=10)
    assert r.status_code == 200 and r.json()["wsgi.url_scheme"] == "https"
    out = subprocess.run(["curl", "-sS", "--cacert", pki["ca.pem"],
                          "https://localhost:%d/hello" % srv.port],
                         capture_output=True, timeout=20)
    assert out.returncode == 0, out.stderr
    assert out.stdout == b"ok %d" % srv.worker_pids()[0]


# --- client certificates ------------------------------------------------------------------

def test_required_client_certificate(start_server, pki):
    srv = tls_server(start_server, pki, "--cert-reqs", "2", "--ca-certs", pki["ca.pem"])
    env = environ(srv, client_context(pki["ca.pem"], cert=pki["client.pem"]))
    assert env["SSL_CLIENT_VERIFY"] == "SUCCESS"
    # What openssl says of the same certificate, in the same RFC 2253 form.
    shown = subprocess.run(["openssl", "x509", "-in", pki["client.pem"], "-noout", "-subject",
                            "-issuer", "-serial", "-nameopt", "RFC2253"],
                           capture_output=True, text=True, timeout=20, check=True).stdout
    fields = dict(line.split("=", 1) for line in shown.splitlines())
    assert env["SSL_CLIENT_S_DN"] == fields["subject"]
    assert env["SSL_CLIENT_I_DN"] == fields["issuer"]
    assert env["SSL_CLIENT_M_SERIAL"] == fields["serial"]
    assert env["SSL_CLIENT_CERT"].startswith("-----BEGIN CERTIFICATE-----")
    with open(pki["client.pem"]) as f:
        assert env["SSL_CLIENT_CERT"].strip() in f.read()
    # Without a certificate the handshake is refused; the worker goes on serving.
    with pytest.raises(OSError):
        https(srv, client_context(pki["ca.pem"]))
    assert environ(srv, client_context(pki["ca.pem"], cert=pki["client.pem"]))[
        "SSL_CLIENT_VERIFY"] == "SUCCESS"
    assert "Traceback" not in srv.log_text()


def test_optional_client_certificate(start_server, pki):
    srv = tls_server(start_server, pki, "--cert-reqs", "1", "--ca-certs", pki["ca.pem"])
    env = environ(srv, client_context(pki["ca.pem"]))
    assert env["SSL_CLIENT_VERIFY"] == "NONE" and "SSL_CLIENT_S_DN" not in env
    env = environ(srv, client_context(pki["ca.pem"], cert=pki["client.pem"]))
    assert env["SSL_CLIENT_VERIFY"] == "SUCCESS" and "SSL_CLIENT_CERT" in env


def test_ciphers_setting_governs_tls12(start_server, pki):
    cipher = "ECDHE-RSA-AES128-GCM-SHA256"
    srv = tls_server(start_server, pki, "--ciphers", cipher)
    env = environ(srv, client_context(pki["ca.pem"], max_version=ssl.TLSVersion.TLSv1_2))
    assert env["SSL_PROTOCOL"] == "TLSv1.2" and env["SSL_CIPHER"] == cipher
    with pytest.raises(OSError):
        https(srv, client_context(pki["ca.pem"], max_version=ssl.TLSVersion.TLSv1_2,
                                  ciphers="ECDHE-RSA-CHACHA20-POLY1305"))


# --- the ssl_context hook -----------------------------------------------------------------

HOOK = """
import ssl

def ssl_context(conf, default_ssl_context_factory):
    ctx = default_ssl_context_factory()
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.load_cert_chain({cert!r}, {key!r})
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_verify_locations({ca!r})
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx
"""


def test_ssl_context_hook_governs_the_handshake(start_server, pki, tmp_path):
    """Each thing the hook changes shows: its protocol floor, its own certificate chain
    (from another CA), its verify mode, and its ALPN list."""
    conf = tmp_path / "tls_conf.py"
    conf.write_text(HOOK.format(cert=pki["server2_cert.pem"], key=pki["server2_key.pem"],
                                ca=pki["ca.pem"]))
    srv = tls_server(start_server, pki, "-c", str(conf))
    good = client_context(pki["ca2.pem"], cert=pki["client.pem"], alpn=["h2", "http/1.1"])
    conn = http.client.HTTPSConnection("localhost", srv.port, context=good, timeout=10)
    conn.request("GET", "/env")
    resp = conn.getresponse()
    env = json.loads(resp.read())
    assert conn.sock.selected_alpn_protocol() == "http/1.1"
    conn.close()
    assert env["SSL_PROTOCOL"] == "TLSv1.3" and env["SSL_CLIENT_VERIFY"] == "SUCCESS"
    with pytest.raises(ssl.SSLError):  # the hook's chain is from CA 2
        https(srv, client_context(pki["ca.pem"], cert=pki["client.pem"]))
    with pytest.raises(OSError):  # the hook's floor
        https(srv, client_context(pki["ca2.pem"], cert=pki["client.pem"],
                                  max_version=ssl.TLSVersion.TLSv1_2))
    with pytest.raises(OSError):  # the hook's verify mode
        https(srv, client_context(pki["ca2.pem"]))
    out = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % srv.port,
                          "-alpn", "h2,http/1.1", "-CAfile", pki["ca2.pem"],
                          "-cert", pki["client.pem"]],
                         input=b"", capture_output=True, timeout=20)
    assert b"ALPN protocol: http/1.1" in out.stdout, out.stdout + out.stderr


def test_hook_returning_something_else_is_one_error_line(pki, tmp_path):
    conf = tmp_path / "bad_conf.py"
    conf.write_text("def ssl_context(conf, factory):\n    return 42\n")
    out = run_cli("--certfile", pki["server.pem"], "-c", str(conf), "-b", "127.0.0.1:0",
                  "--chdir", str(tmp_path), "tls_app:app")
    assert out.returncode == 1
    errors = [line for line in out.stderr.splitlines() if "[ERROR]" in line]
    assert len(errors) == 1 and "ssl_context must return an ssl.SSLContext, not int" in errors[0]


@pytest.mark.parametrize("args,message", [
    (["--certfile", "/nonexistent/cert.pem"], 'certfile "/nonexistent/cert.pem" does not exist'),
    (["--certfile", "CERT", "--keyfile", "/nonexistent/key.pem"],
     'keyfile "/nonexistent/key.pem" does not exist'),
    (["--certfile", "CERT", "--keyfile", "OTHERKEY"], "Cannot make the TLS context: SSLError"),
])
def test_bad_tls_files_are_one_error_line(pki, tmp_path, args, message):
    args = [{"CERT": pki["server_cert.pem"], "OTHERKEY": pki["server2_key.pem"]}.get(a, a)
            for a in args]
    out = run_cli(*args, "-b", "127.0.0.1:0", "--chdir", str(tmp_path), "tls_app:app")
    assert out.returncode == 1, out.stderr
    errors = [line for line in out.stderr.splitlines() if "[ERROR]" in line]
    assert len(errors) == 1 and message in errors[0], out.stderr
    assert "Traceback" not in out.stderr


# --- handshakes in the loop ---------------------------------------------------------------

def test_stalled_handshakes_cost_no_worker_time(start_server, pki):
    """One sync worker: clients that connect and say nothing, or stop half-way through
    a ClientHello, do not hold it; a real client is served meanwhile."""
    srv = tls_server(start_server, pki)
    silent = [socket.create_connection(("127.0.0.1", srv.port), timeout=10) for _ in range(3)]
    partial = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
    partial.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")
    try:
        for _ in range(3):
            assert environ(srv, client_context(pki["ca.pem"]))["HTTPS"] == "on"
    finally:
        for s in silent + [partial]:
            s.close()


def test_handshake_failure_is_one_debug_line(start_server, pki):
    srv = tls_server(start_server, pki, "--log-level", "debug")
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        try:
            while s.recv(4096):
                pass
        except ConnectionResetError:
            pass
    m = srv.wait_for_log(r"\[DEBUG\] TLS handshake with 127\.0\.0\.1 failed: (.*)")
    assert "http request" in m.group(1)
    assert environ(srv, client_context(pki["ca.pem"]))["HTTPS"] == "on"
    assert "Traceback" not in srv.log_text()
    assert len(re.findall("TLS handshake with", srv.log_text())) == 1


# --- proxies and logs ---------------------------------------------------------------------

def test_proxy_headers_still_apply(start_server, pki):
    srv = tls_server(start_server, pki)
    conn = http.client.HTTPSConnection("localhost", srv.port,
                                       context=client_context(pki["ca.pem"]), timeout=10)
    conn.request("GET", "/env", headers={"X-Forwarded-Proto": "http"})
    env = json.loads(conn.getresponse().read())
    conn.close()
    assert env["wsgi.url_scheme"] == "http"


def test_access_log_shows_tls(start_server, pki):
    srv = tls_server(start_server, pki, "--access-logfile", "-", "--access-logformat",
                     "%(H)s %(s)s %({wsgi.url_scheme}e)s %({ssl_protocol}e)s %({https}e)s")
    environ(srv, client_context(pki["ca.pem"]))
    wait_until(lambda: any("HTTP/1.1 200 https TLSv1.3 on" in line for line in srv.out_lines),
               what="the access log line")


def test_print_config_shows_ssl_settings_active(pki):
    out = run_cli("--certfile", pki["server.pem"], "--cert-reqs", "2", "--print-config",
                  "tls_app:app")
    assert out.returncode == 0, out.stderr
    assert re.search(r"certfile\s*=\s*%s" % re.escape(pki["server.pem"]), out.stdout)
    assert re.search(r"cert_reqs\s*=\s*2", out.stdout)
    assert "not yet active" not in out.stdout + out.stderr


# --- certificate rotation -----------------------------------------------------------------

def test_hup_rotates_the_certificate(start_server, pki, tmp_path):
    """HUP: new workers read the certificate files again, so new connections get the
    new certificate; a request in flight on an old connection still completes."""
    live = tmp_path / "live.pem"
    shutil.copy(pki["server.pem"], live)
    srv = start_server(APP, "--certfile", str(live))
    ctx = client_context(pki["ca.pem"])
    _, _, cert_a = https(srv, ctx, "/")
    gate = tmp_path / "gate"
    old = http.client.HTTPSConnection("localhost", srv.port, context=ctx, timeout=20)
    old.request("GET", "/hold?%s" % gate)
    srv.wait_for_log(r"gate held in \d+")
    old_pid = srv.worker_pids()[0]

    shutil.copy(pki["server_b.pem"], live)
    mark = srv.log_mark()
    srv.send_signal(signal.SIGHUP)
    m = srv.wait_for_log(BOOTING_RE.pattern, since=mark)
    assert int(m.group(1)) != old_pid
    _, _, cert_b = https(srv, ctx, "/")
    assert cert_b["serialNumber"] != cert_a["serialNumber"]

    gate.write_text("open")
    resp = old.getresponse()
    assert resp.status == 200 and resp.read() == b"released"
    assert old.sock.getpeercert()["serialNumber"] == cert_a["serialNumber"]
    old.close()


# --- 103 Early Hints (also on plain HTTP/1.1) ------------------------------------------

def test_early_hints_on_http11_not_on_http10(start_server, pki):
    srv = tls_server(start_server, pki)
    ctx = client_context(pki["ca.pem"])
    for version, expect in ((b"1.1", True), (b"1.0", False)):
        with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as raw:
            with ctx.wrap_socket(raw, server_hostname="localhost") as s:
                s.sendall(b"GET /hints HTTP/" + version + b"\r\nHost: x\r\nConnection: close\r\n\r\n")
                data = recv_until_closed(s)
        hint = b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload; as=style\r\n\r\n"
        assert data.startswith(hint) == expect, data
        assert data.endswith(b"hinted")
