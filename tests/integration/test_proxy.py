"""Proxies in front of gunicorn-c: trusted front ends (forwarded_allow_ips), the scheme
they report (secure_scheme_headers), SCRIPT_NAME, header names with underscores
(header_map, forwarder_headers), and the PROXY protocol v1 and v2 (proxy_protocol,
proxy_allow_ips).

The server listens on 127.0.0.1. A client that binds its socket to 127.0.0.2 first (any
127/8 address is local on Linux) is a second, untrusted peer: it stands in for the
reference's outside address 134.213.44.18.
"""

import json
import socket
import struct
import time

from rawhttp import Reader, closed_by_peer, request

UNTRUSTED = "127.0.0.2"
V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"


def connect(srv, source=None):
    """A raw socket to the server, from `source` (an address on lo) when given."""
    if source is None:
        return srv.connect()
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(5)
    s.bind((source, 0))
    s.connect((srv.host, srv.port))
    return s


def get_environ(srv, data=None, source=None, **req):
    """Sends one request (bytes, or built from `req`) to echo:environ; returns the environ."""
    with connect(srv, source) as s:
        s.sendall(data if data is not None else request(**req))
        resp = Reader(s).read_response()
    assert resp.status == 200, (resp.raw_head, resp.body)
    return json.loads(resp.body)


def refused(srv, data, source=None):
    """Sends bytes; returns the error response after checking the connection closed."""
    with connect(srv, source) as s:
        s.sendall(data)
        resp = Reader(s).read_response()
        assert closed_by_peer(s), "the connection stayed open after an error page"
    assert resp.header("Connection").lower() == "close"
    assert resp.header("Content-Type") == "text/html"
    assert f"<title>{resp.reason}</title>".encode() in resp.body
    return resp


XFP_HTTPS = [("X-Forwarded-Proto", "https")]


# --- forwarded_allow_ips and secure_scheme_headers -------------------------------------


def test_default_trusts_localhost_scheme_headers(start_server):
    srv = start_server("echo:environ")
    env = get_environ(srv, headers=XFP_HTTPS)
    assert env["wsgi.url_scheme"] == "https"
    assert env["HTTP_X_FORWARDED_PROTO"] == "https"
    for name, value in (("X-Forwarded-Ssl", "on"), ("X-Forwarded-Protocol", "ssl")):
        assert get_environ(srv, headers=[(name, value)])["wsgi.url_scheme"] == "https"
    # A value other than the configured one means http, even "HTTPS".
    assert get_environ(srv, headers=[("X-Forwarded-Proto", "HTTPS")])["wsgi.url_scheme"] == "http"
    assert get_environ(srv)["wsgi.url_scheme"] == "http"


def test_untrusted_peer_scheme_headers_ignored(start_server):
    # The reference's matrix, first row: allow 127.0.0.1, a peer elsewhere says https.
    srv = start_server("echo:environ")
    env = get_environ(srv, source=UNTRUSTED, headers=XFP_HTTPS)
    assert env["REMOTE_ADDR"] == UNTRUSTED
    assert env["wsgi.url_scheme"] == "http"
    assert env["HTTP_X_FORWARDED_PROTO"] == "https"  # still there, as a plain header
    # Contradictory headers from an untrusted peer are not looked at either.
    env = get_environ(srv, source=UNTRUSTED,
                      headers=[("X-Forwarded-Ssl", "on"), ("X-Forwarded-Proto", "http")])
    assert env["wsgi.url_scheme"] == "http"


def test_trust_everyone(start_server):
    srv = start_server("echo:environ", "--forwarded-allow-ips", "*")
    assert get_environ(srv, source=UNTRUSTED)["wsgi.url_scheme"] == "http"
    assert get_environ(srv, source=UNTRUSTED, headers=XFP_HTTPS)["wsgi.url_scheme"] == "https"


def test_contradictory_scheme_headers(start_server):
    srv = start_server("echo:environ", "--forwarded-allow-ips", "*", "--log-level", "debug")
    resp = refused(srv, request(headers=[("X-Forwarded-Ssl", "on"),
                                         ("X-Forwarded-Proto", "http")]), source=UNTRUSTED)
    assert resp.status == 400
    assert b"Contradictory scheme headers" in resp.body
    srv.wait_for_log(r"\[DEBUG\] Invalid request from ip=127\.0\.0\.2: Contradictory scheme headers")
    # Agreeing headers are fine.
    env = get_environ(srv, headers=[("X-Forwarded-Ssl", "on"), ("X-Forwarded-Proto", "https")])
    assert env["wsgi.url_scheme"] == "https"


def test_trust_networks_and_lists(start_server):
    srv = start_server("echo:environ", "--forwarded-allow-ips", "10.0.0.0/8, 127.0.0.0/30")
    assert get_environ(srv, source=UNTRUSTED, headers=XFP_HTTPS)["wsgi.url_scheme"] == "https"
    srv2 = start_server("echo:environ", "--forwarded-allow-ips", "10.0.0.1")
    assert get_environ(srv2, headers=XFP_HTTPS)["wsgi.url_scheme"] == "http"


def test_forwarded_allow_ips_from_environment(start_server):
    srv = start_server("echo:environ", env={"FORWARDED_ALLOW_IPS": UNTRUSTED})
    assert get_environ(srv, source=UNTRUSTED, headers=XFP_HTTPS)["wsgi.url_scheme"] == "https"
    assert get_environ(srv, headers=XFP_HTTPS)["wsgi.url_scheme"] == "http"
    # The command line wins over the environment.
    srv2 = start_server("echo:environ", "--forwarded-allow-ips", "127.0.0.1",
                        env={"FORWARDED_ALLOW_IPS": UNTRUSTED})
    assert get_environ(srv2, headers=XFP_HTTPS)["wsgi.url_scheme"] == "https"


def test_ipv6_loopback_trusted_by_default(start_server):
    srv = start_server("echo:environ", bind="[::1]:0")
    env = get_environ(srv, headers=XFP_HTTPS)
    assert env["REMOTE_ADDR"] == "::1"
    assert env["wsgi.url_scheme"] == "https"


def test_custom_secure_scheme_headers(start_server, tmp_path):
    conf = tmp_path / "conf.py"
    conf.write_text("secure_scheme_headers = {'X-SCHEME': 'secure', 'X-Odd': 1}\n")
    srv = start_server("echo:environ", "-c", str(conf))
    assert get_environ(srv, headers=[("X-Scheme", "secure")])["wsgi.url_scheme"] == "https"
    assert get_environ(srv, headers=[("X-Scheme", "plain")])["wsgi.url_scheme"] == "http"
    # A value that is not a str never matches: the header means http.
    assert get_environ(srv, headers=[("X-Odd", "1")])["wsgi.url_scheme"] == "http"
    # The defaults are replaced, not extended.
    assert get_environ(srv, headers=XFP_HTTPS)["wsgi.url_scheme"] == "http"
    assert "not yet active" not in srv.log_text()

    conf.write_text("secure_scheme_headers = {}\n")
    srv2 = start_server("echo:environ", "-c", str(conf))
    assert get_environ(srv2, headers=XFP_HTTPS)["wsgi.url_scheme"] == "http"


def test_unix_socket_peer_always_trusted(start_server, tmp_path):
    path = tmp_path / "s.sock"
    srv = start_server("echo:environ", "--forwarded-allow-ips", "10.0.0.1",
                       bind=f"unix:{path}")
    env = get_environ(srv, headers=XFP_HTTPS + [("SCRIPT_NAME", "/mnt")], path="/mnt/p",
                      host="example.org")
    assert env["wsgi.url_scheme"] == "https"
    assert env["SERVER_NAME"] == "example.org"
    assert env["SERVER_PORT"] == "443"  # the scheme's port when Host names none
    assert env["SCRIPT_NAME"] == "/mnt"
    assert env["PATH_INFO"] == "/p"


def test_bad_allow_lists_refused_at_start(start_server):
    from conftest import run_cli
    out = run_cli("--forwarded-allow-ips", "10.0.0.1/8", "--check-config", "hello")
    assert out.returncode == 1
    assert "Error: 10.0.0.1/8 has host bits set" in out.stderr
    out = run_cli("--proxy-allow-from", "127.0.0.1,localhost", "--check-config", "hello")
    assert out.returncode == 1
    assert "Error: 'localhost' does not appear to be an IPv4 or IPv6 network" in out.stderr
    from conftest import server_env
    out = run_cli("--check-config", "hello",
                  env=server_env({"FORWARDED_ALLOW_IPS": "10.0.0.0/8,bad"}))
    assert out.returncode == 1
    assert "'bad' does not appear" in out.stderr
    out = run_cli("--forwarded-allow-ips", "*,10.0.0.0/8,::1", "--check-config", "hello")
    assert out.returncode == 0, out.stderr


# --- header names with underscores ------------------------------------------------------


def test_underscore_headers_dropped_by_default(start_server):
    srv = start_server("echo:environ")
    env = get_environ(srv, headers=[("X_Forwarded_For", "6.6.6.6"),
                                    ("X-Forwarded-For", "1.2.3.4"),
                                    ("Content_Length", "5")])
    assert env["HTTP_X_FORWARDED_FOR"] == "1.2.3.4"  # the spoof never merges in
    assert "HTTP_CONTENT_LENGTH" not in env
    assert "CONTENT_LENGTH" not in env


def test_forwarder_headers_only_from_trusted_peers(start_server):
    srv = start_server("echo:environ")
    env = get_environ(srv, headers=[("SCRIPT_NAME", "/app"), ("PATH_INFO", "/x"),
                                    ("REMOTE_USER", "root")], path="/app/y")
    assert env["HTTP_SCRIPT_NAME"] == "/app"
    assert env["HTTP_PATH_INFO"] == "/x"  # only a header: PATH_INFO comes from the path
    assert env["PATH_INFO"] == "/y"
    assert "HTTP_REMOTE_USER" not in env
    env = get_environ(srv, source=UNTRUSTED, headers=[("SCRIPT_NAME", "/app")], path="/app/y")
    assert "HTTP_SCRIPT_NAME" not in env
    assert env["SCRIPT_NAME"] == ""
    assert env["PATH_INFO"] == "/app/y"

    srv2 = start_server("echo:environ", "--forwarder-headers", "REMOTE_USER")
    env = get_environ(srv2, headers=[("Remote_User", "alice"), ("SCRIPT_NAME", "/a")])
    assert env["HTTP_REMOTE_USER"] == "alice"
    assert "HTTP_SCRIPT_NAME" not in env

    srv3 = start_server("echo:environ", "--forwarder-headers", "*")
    env = get_environ(srv3, headers=[("Any_Name", "1")])
    assert env["HTTP_ANY_NAME"] == "1"


def test_header_map_refuse(start_server):
    srv = start_server("echo:environ", "--header-map", "refuse", "--log-level", "debug")
    resp = refused(srv, request(headers=[("X_Foo", "1")]))
    assert resp.status == 400
    assert b"Invalid HTTP header name: &#x27;X_FOO&#x27;" in resp.body
    srv.wait_for_log(r"\[DEBUG\] Invalid request from ip=127\.0\.0\.1: Invalid HTTP header name")
    # A trusted front end's forwarder_headers are still welcome.
    env = get_environ(srv, headers=[("SCRIPT_NAME", "/s")], path="/s/t")
    assert env["SCRIPT_NAME"] == "/s"
    # ... but not from anyone else.
    assert refused(srv, request(headers=[("SCRIPT_NAME", "/s")]), source=UNTRUSTED).status == 400


def test_header_map_dangerous(start_server):
    srv = start_server("echo:environ", "--header-map", "dangerous")
    env = get_environ(srv, source=UNTRUSTED, headers=[("X-Foo", "a"), ("X_Foo", "b")])
    assert env["HTTP_X_FOO"] == "a,b"  # why it is called dangerous
    # Transfer_Encoding is not Transfer-Encoding: it frames nothing.
    env = get_environ(srv, data=request(method="POST", headers=[("Transfer_Encoding", "chunked")],
                                        body=b"hello"))
    assert env["HTTP_TRANSFER_ENCODING"] == "chunked"
    assert env["__body__"] == "hello"


# --- SCRIPT_NAME --------------------------------------------------------------------------


def test_script_name_from_environment(start_server):
    srv = start_server("echo:environ", env={"SCRIPT_NAME": "/app"})
    env = get_environ(srv, path="/app/a%2Fb?q=1")
    assert env["SCRIPT_NAME"] == "/app"
    assert env["PATH_INFO"] == "/a/b"
    assert env["QUERY_STRING"] == "q=1"
    assert get_environ(srv, path="/app")["PATH_INFO"] == ""
    # A plain prefix test, as Gunicorn's.
    assert get_environ(srv, path="/application")["PATH_INFO"] == "lication"


def test_script_name_mismatch_is_500(start_server):
    srv = start_server("echo:environ", "--log-level", "debug", env={"SCRIPT_NAME": "/app"})
    resp = refused(srv, request(path="/other?x=1"))
    assert resp.status == 500
    assert (b"Configuration problem: Request path &#x27;/other&#x27; does not start with "
            b"SCRIPT_NAME &#x27;/app&#x27;") in resp.body
    srv.wait_for_log(r"\[DEBUG\] Invalid request from ip=127\.0\.0\.1: Configuration problem")
    # The test is on the raw path: an escaped prefix does not count.
    assert refused(srv, request(path="/%61pp/x")).status == 500
    # A trusted front end can change it per request; an empty one switches it off.
    env = get_environ(srv, headers=[("SCRIPT_NAME", "/other")], path="/other/x")
    assert (env["SCRIPT_NAME"], env["PATH_INFO"]) == ("/other", "/x")
    env = get_environ(srv, headers=[("SCRIPT_NAME", "")], path="/other/x")
    assert (env["SCRIPT_NAME"], env["PATH_INFO"]) == ("", "/other/x")
    assert refused(srv, request(headers=[("SCRIPT_NAME", "/b")], path="/a")).status == 500


def test_script_name_header_from_trusted_proxy(start_server):
    srv = start_server("echo:environ")
    env = get_environ(srv, headers=[("SCRIPT_NAME", "/mount")],
                      path="http://example.org/mount/page%20one")
    assert env["SCRIPT_NAME"] == "/mount"
    assert env["PATH_INFO"] == "/page one"
    assert env["HTTP_SCRIPT_NAME"] == "/mount"


# --- PROXY protocol ---------------------------------------------------------------------


V1_TCP4 = b"PROXY TCP4 192.0.2.10 198.51.100.20 56324 443\r\n"


def v2_header(command=1, family=1, transport=1, addresses=b"", tlvs=b"", version=2):
    return (V2_SIGNATURE + bytes([(version << 4) | command, (family << 4) | transport])
            + struct.pack(">H", len(addresses) + len(tlvs)) + addresses + tlvs)


def v2_inet(src, dst, sport, dport, **kw):
    return v2_header(addresses=socket.inet_pton(socket.AF_INET, src)
                     + socket.inet_pton(socket.AF_INET, dst) + struct.pack(">HH", sport, dport),
                     **kw)


def v2_inet6(src, dst, sport, dport, **kw):
    return v2_header(family=2, addresses=socket.inet_pton(socket.AF_INET6, src)
                     + socket.inet_pton(socket.AF_INET6, dst)
                     + struct.pack(">HH", sport, dport), **kw)


def assert_proxied(env, protocol, addr, port, paddr, pport):
    assert env["PROXY_PROTOCOL"] == protocol
    assert env["REMOTE_ADDR"] == addr
    assert env["REMOTE_PORT"] == port
    assert env["PROXY_ADDR"] == paddr
    assert env["PROXY_PORT"] == pport


def test_proxy_v1(start_server):
    # The bare flag means auto (it must not swallow the next argument as its mode).
    srv = start_server("echo:environ", "--proxy-protocol", "--log-level", "debug")
    env = get_environ(srv, V1_TCP4 + request())
    assert_proxied(env, "TCP4", "192.0.2.10", "56324", "198.51.100.20", "443")
    srv.wait_for_log(r"PROXY TCP4 header from 127\.0\.0\.1: client 192\.0\.2\.10 port 56324")
    env = get_environ(srv, b"PROXY TCP6 2001:db8::5 2001:db8::1 7 080\r\n" + request())
    assert_proxied(env, "TCP6", "2001:db8::5", "7", "2001:db8::1", "80")


def test_proxy_v1_keeps_addresses_for_keep_alive(start_server):
    srv = start_server("echo:environ", "--proxy-protocol", "v1")
    with srv.connect() as s:
        reader = Reader(s)
        s.sendall(V1_TCP4 + request(path="/one"))
        first = json.loads(reader.read_response().body)
        s.sendall(request(path="/two"))
        second = json.loads(reader.read_response().body)
        # Pipelined after the header in one packet, too.
        s.sendall(request(path="/three") + request(path="/four"))
        third = json.loads(reader.read_response().body)
        fourth = json.loads(reader.read_response().body)
    for env, path in ((first, "/one"), (second, "/two"), (third, "/three"), (fourth, "/four")):
        assert env["PATH_INFO"] == path
        assert_proxied(env, "TCP4", "192.0.2.10", "56324", "198.51.100.20", "443")
        assert env["__pid__"] == first["__pid__"]


def test_proxy_header_split_across_reads(start_server):
    srv = start_server("echo:environ", "--proxy-protocol", "auto")
    for header in (V1_TCP4, v2_inet("10.0.0.5", "10.0.0.6", 1000, 80, tlvs=b"\x04\x00\x01x")):
        with srv.connect() as s:
            data = header + request()
            for i in range(0, len(data), 5):
                s.sendall(data[i:i + 5])
                time.sleep(0.005)
            env = json.loads(Reader(s).read_response().body)
        assert env["PROXY_PROTOCOL"] == "TCP4"


def test_proxy_protocol_optional_on_connection(start_server):
    # Gunicorn reads a connection without a PROXY header as plain HTTP.
    srv = start_server("echo:environ", "--proxy-protocol", "auto")
    env = get_environ(srv)
    assert env["REMOTE_ADDR"] == "127.0.0.1"
    assert not any(k.startswith("PROXY_") for k in env)
    # A second request may not start a PROXY header: it is a request with method PROXY.
    with srv.connect() as s:
        reader = Reader(s)
        s.sendall(request())
        assert reader.read_response().status == 200
        s.sendall(V1_TCP4 + request())
        assert reader.read_response().status == 400


def test_proxy_protocol_off_by_default(start_server):
    srv = start_server("echo:environ")
    resp = refused(srv, V1_TCP4 + request())
    assert resp.status == 400


def test_proxy_v1_malformed(start_server):
    srv = start_server("echo:environ", "--proxy-protocol", "v1", "--log-level", "debug")
    cases = [
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n", b"Invalid PROXY line: &#x27;PROXY TCP4 1.2.3.4"),
        (b"PROXY UNKNOWN\r\n", b"Invalid PROXY line"),
        (b"PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n",
         b"Invalid PROXY line: &quot;protocol &#x27;UDP4&#x27; not supported&quot;"),
        (b"PROXY TCP4 1.2.3.999 5.6.7.8 1 2\r\n", b"Invalid PROXY line"),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 65536\r\n", b"invalid port PROXY TCP4"),
        (b"PROXY " + b"x" * 300, b"Invalid PROXY line"),
    ]
    for header, message in cases:
        resp = refused(srv, header + request())
        assert resp.status == 400, header
        assert message in resp.body, (header, resp.body)
    srv.wait_for_log(r"\[DEBUG\] Invalid request from ip=127\.0\.0\.1: 'Invalid PROXY line")


def test_proxy_v2(start_server):
    srv = start_server("echo:environ", "--proxy-protocol", "v2")
    env = get_environ(srv, v2_inet("203.0.113.7", "10.0.0.1", 40000, 8080) + request())
    assert_proxied(env, "TCP4", "203.0.113.7", "40000", "10.0.0.1", "8080")
    env = get_environ(srv, v2_inet6("2001:db8::7", "::1", 1, 443, tlvs=b"\x01\x00\x02h2")
                      + request())
    assert_proxied(env, "TCP6", "2001:db8::7", "1", "::1", "443")
    # LOCAL (a health check from the proxy itself): the connection's own address stands.
    env = get_environ(srv, v2_header(command=0, family=0, transport=0) + request())
    assert env["PROXY_PROTOCOL"] == "LOCAL"
    assert env["REMOTE_ADDR"] == "127.0.0.1"
    assert "PROXY_ADDR" not in env and "PROXY_PORT" not in env
    env = get_environ(srv, v2_header(family=0, transport=1) + request())
    assert env["PROXY_PROTOCOL"] == "UNSPEC"
    assert env["REMOTE_ADDR"] == "127.0.0.1"
    # In v2 mode a v1 line is not a PROXY header: it is a bad request.
    assert refused(srv, V1_TCP4 + request()).status == 400


def test_proxy_v2_keep_alive(start_server):
    srv = start_server("echo:environ", "--proxy-protocol", "auto")
    with srv.connect() as s:
        reader = Reader(s)
        s.sendall(v2_inet("198.51.100.1", "10.0.0.1", 5555, 80) + request(path="/a"))
        first = json.loads(reader.read_response().body)
        s.sendall(request(path="/b"))
        second = json.loads(reader.read_response().body)
    for env in (first, second):
        assert_proxied(env, "TCP4", "198.51.100.1", "5555", "10.0.0.1", "80")


def test_proxy_v2_malformed(start_server):
    srv = start_server("echo:environ", "--proxy-protocol", "auto")
    cases = [
        (v2_inet("1.2.3.4", "5.6.7.8", 1, 2, version=1), b"unsupported version 1"),
        (v2_inet("1.2.3.4", "5.6.7.8", 1, 2, command=2), b"unsupported command 2"),
        (v2_inet("1.2.3.4", "5.6.7.8", 1, 2, transport=2), b"only TCP (STREAM)"),
        (v2_header(family=3, addresses=b"\0" * 216), b"unsupported address family 3"),
        (v2_header(addresses=b"\0" * 8), b"too few for IPv4"),
        (v2_header(family=2, addresses=b"\0" * 12), b"too few for IPv6"),
    ]
    for header, message in cases:
        resp = refused(srv, header + request())
        assert resp.status == 400, header
        assert b"Invalid PROXY protocol v2 header" in resp.body and message in resp.body


def test_proxy_from_untrusted_peer_forbidden(start_server):
    srv = start_server("echo:environ", "--proxy-protocol", "auto", "--log-level", "debug")
    for header in (V1_TCP4, v2_inet("1.2.3.4", "5.6.7.8", 1, 2),
                   b"PROXY this is not even well formed\r\n"):
        resp = refused(srv, header + request(), source=UNTRUSTED)
        assert resp.status == 403
        assert resp.reason == "Forbidden"
        assert b"Request forbidden" in resp.body
    srv.wait_for_log(r"PROXY protocol header from 127\.0\.0\.2 refused: not in proxy_allow_ips")
    srv.wait_for_log(r"\[DEBUG\] Invalid request from ip=127\.0\.0\.2: Request forbidden")
    # The same peer may still talk plain HTTP.
    assert get_environ(srv, source=UNTRUSTED)["REMOTE_ADDR"] == UNTRUSTED

    srv2 = start_server("echo:environ", "--proxy-protocol", "--proxy-allow-from", "10.0.0.0/8")
    assert refused(srv2, V1_TCP4 + request()).status == 403
    srv3 = start_server("echo:environ", "--proxy-protocol", "--proxy-allow-from", "*")
    env = get_environ(srv3, V1_TCP4 + request(), source=UNTRUSTED)
    assert env["REMOTE_ADDR"] == "192.0.2.10"


def test_proxy_over_unix_socket_always_allowed(start_server, tmp_path):
    path = tmp_path / "p.sock"
    srv = start_server("echo:environ", "--proxy-protocol", "--proxy-allow-from", "10.0.0.1",
                       bind=f"unix:{path}")
    env = get_environ(srv, V1_TCP4 + request())
    assert_proxied(env, "TCP4", "192.0.2.10", "56324", "198.51.100.20", "443")


def test_proxy_trust_is_the_connection_peer(start_server):
    # forwarded_allow_ips is checked against the proxy that connected, not the client a
    # PROXY header names.
    srv = start_server("echo:environ", "--proxy-protocol", "--proxy-allow-from", "*")
    env = get_environ(srv, V1_TCP4 + request(headers=XFP_HTTPS))
    assert env["REMOTE_ADDR"] == "192.0.2.10"
    assert env["wsgi.url_scheme"] == "https"
    env = get_environ(srv, b"PROXY TCP4 127.0.0.1 127.0.0.1 1 2\r\n" + request(headers=XFP_HTTPS),
                      source=UNTRUSTED)
    assert env["wsgi.url_scheme"] == "http"


def test_proxy_settings_are_active(start_server):
    srv = start_server("hello", "--proxy-protocol", "v2", "--header-map", "refuse",
                       "--forwarded-allow-ips", "*", "--proxy-allow-from", "*",
                       "--forwarder-headers", "SCRIPT_NAME")
    assert "not yet active" not in srv.log_text()
