"""--protocol uwsgi behind Debian's nginx (uwsgi_pass with `include uwsgi_params`).

gunicorn-c listens on a unix socket and on 127.0.0.1 with --protocol uwsgi; one nginx
process passes /u/ to the socket and /t/ to the TCP port. Every worker class serves the
same requests: GET with a query, a POST, a 50 MiB upload, a streamed response without a
length. The environ is compared with what Gunicorn 26.1 gives the same application
behind the same nginx (measured; the values are written out below).

Raw-socket clients check what nginx cannot send: a peer outside uwsgi_allow_ips gets 403
(Gunicorn: 500), malformed packets 400 and an unsupported modifier1 501, and the worker
goes on serving.

nginx 1.22 never reuses a uwsgi upstream connection and does not decode a chunked
response (it passes the chunk framing on as body bytes): gunicorn-c closes after each
uwsgi response and never chunks it, which test_stream checks through nginx with a long
--keep-alive (a response ended by keep-alive would take that long).
"""

import hashlib
import os
import socket
import struct

import pytest
import requests

from conftest import APPS_DIR, REPO_ROOT, Server, run_cli, server_lacks
from helpers import free_port
from test_nginx import NGINX, Nginx

pytestmark = pytest.mark.skipif(not os.access(NGINX, os.X_OK),
                                reason="nginx is not installed (Debian: apt-get install nginx)")

APP = "uwsgi_app:application"
MIB = 1024 * 1024
CLASSES = {
    "sync": ["-k", "sync"],
    "gthread": ["-k", "gthread", "--threads", "4"],
    "gevent": ["-k", "gevent"],
}


def site(sock, port, tcp_port):
    return f"""\
server {{
    listen 127.0.0.1:{port};
    client_max_body_size 100m;
    location /u/ {{
        include /etc/nginx/uwsgi_params;
        uwsgi_pass unix:{sock};
    }}
    location /t/ {{
        include /etc/nginx/uwsgi_params;
        uwsgi_pass 127.0.0.1:{tcp_port};
    }}
}}
"""


class Stack:
    def __init__(self, root, klass):
        self.root = root
        self.sock = root / "app.sock"
        self.port = free_port()
        self.srv = Server(APP, "--protocol", "uwsgi", "-b", "127.0.0.1:0", "--keep-alive", "30",
                          *CLASSES[klass], bind=f"unix:{self.sock}").start()
        self.nginx = Nginx(root / "nginx", site(self.sock, self.port, self.srv.port))
        self.nginx.start(self.port)

    def url(self, path):
        return f"http://127.0.0.1:{self.port}{path}"

    def close(self):
        self.nginx.stop()
        rc = self.srv.stop()
        assert rc == 0, self.srv.log_text()


@pytest.fixture(scope="module", params=list(CLASSES))
def stack(request, tmp_path_factory):
    if request.param == "gevent" and server_lacks("gevent"):
        pytest.skip(server_lacks("gevent"))
    st = Stack(tmp_path_factory.mktemp("uwsgi-" + request.param), request.param)
    yield st
    st.close()


def get_json(st, path, **kwargs):
    r = requests.get(st.url(path), timeout=10, **kwargs)
    assert r.status_code == 200, (r.status_code, r.text, st.srv.log_text())
    return r.json()


# What Gunicorn 26.1 gives this application behind the same nginx, on the socket and on
# TCP (REMOTE_PORT: nginx's ephemeral port).
GUNICORN_UNIX = {
    "REQUEST_METHOD": "GET", "PATH_INFO": "/u/env", "QUERY_STRING": "x=1&y=%20",
    "RAW_URI": "/u/env?x=1&y=%20", "SCRIPT_NAME": "", "SERVER_NAME": "example.com",
    "SERVER_PORT": "80", "SERVER_PROTOCOL": "HTTP/1.1", "REMOTE_ADDR": "",
    "REMOTE_PORT": "<absent>", "HTTP_HOST": "example.com", "HTTP_USER_AGENT": "uwsgi-test",
    "HTTP_X_CUSTOM": "v", "CONTENT_TYPE": "", "CONTENT_LENGTH": "",
    "REQUEST_URI": "<absent>", "HTTPS": "<absent>", "HTTP_X_FORWARDED_FOR": "<absent>",
    "wsgi.url_scheme": "http"}


def test_get_with_query_on_the_socket_is_what_gunicorn_gives(stack):
    env = get_json(stack, "/u/env?x=1&y=%20",
                   headers={"Host": "example.com:8080", "X-Custom": "v",
                            "User-Agent": "uwsgi-test"})
    assert env == GUNICORN_UNIX


def test_get_over_tcp_is_what_gunicorn_gives(stack):
    env = get_json(stack, "/t/env?x=1",
                   headers={"Host": "example.com:8080", "X-Custom": "v",
                            "User-Agent": "uwsgi-test"})
    port = env["REMOTE_PORT"]
    assert port.isdigit()
    assert env == dict(GUNICORN_UNIX, PATH_INFO="/t/env", QUERY_STRING="x=1",
                       RAW_URI="/t/env?x=1", SERVER_NAME="127.0.0.1",
                       SERVER_PORT=str(stack.srv.port), REMOTE_ADDR="127.0.0.1",
                       REMOTE_PORT=port)


def test_path_info_is_decoded_once(stack):
    # nginx sends PATH_INFO decoded: %2541 is "%41" there, and stays so. (Gunicorn
    # decodes it again and shows "/u/aAb c".)
    env = get_json(stack, "/u/a%2541b%20c")
    assert env["PATH_INFO"] == "/u/a%41b c"
    assert env["RAW_URI"] == "/u/a%2541b%20c"


@pytest.mark.parametrize("where", ["u", "t"])
def test_post_form(stack, where):
    r = requests.post(stack.url(f"/{where}/env"), data=b"hello",
                      headers={"Content-Type": "text/plain"}, timeout=10)
    env = r.json()
    assert (env["REQUEST_METHOD"], env["CONTENT_TYPE"], env["CONTENT_LENGTH"]) == \
        ("POST", "text/plain", "5")


@pytest.mark.parametrize("where", ["u", "t"])
def test_upload_50_mib(stack, where):
    body = os.urandom(50 * MIB)
    r = requests.post(stack.url(f"/{where}/upload"), data=body, timeout=60)
    assert r.status_code == 200, r.text
    assert r.json() == {"sha256": hashlib.sha256(body).hexdigest(), "length": len(body)}


@pytest.mark.parametrize("where", ["u", "t"])
def test_stream_without_length(stack, where):
    # Not chunked on the uwsgi connection (nginx would pass the framing on as body),
    # and ended by the close: with --keep-alive 30 a kept connection would make nginx
    # wait 30 s for the end, past the client's timeout.
    r = requests.get(stack.url(f"/{where}/stream?n=200"), timeout=10)
    assert r.status_code == 200
    assert r.content == b"".join(b"piece %d\n" % i for i in range(200))


def test_several_requests_in_a_row(stack):
    with requests.Session() as s:
        for i in range(20):
            r = s.get(stack.url(f"/t/env?i={i}"), timeout=10)
            assert r.json()["QUERY_STRING"] == f"i={i}"


# --- raw uwsgi clients ------------------------------------------------------------------


def packet(variables, body=b"", modifier1=0, datasize=None):
    block = b"".join(struct.pack("<H", len(k)) + k + struct.pack("<H", len(v)) + v
                     for k, v in variables)
    size = len(block) if datasize is None else datasize
    return bytes([modifier1]) + struct.pack("<H", size) + b"\0" + block + body


GET = [(b"REQUEST_METHOD", b"GET"), (b"PATH_INFO", b"/raw/env"), (b"HTTP_HOST", b"raw")]


def exchange(addr, data, shut=False):
    """Sends `data` (then a FIN with `shut`), returns everything until the server
    closes."""
    family = socket.AF_UNIX if isinstance(addr, str) else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.settimeout(10)
        s.connect(addr)
        s.sendall(data)
        if shut:
            s.shutdown(socket.SHUT_WR)
        out = b""
        while True:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            out += chunk
        return out


def status_of(raw):
    assert raw.startswith(b"HTTP/1.1 "), raw[:200]
    return int(raw[9:12])


@pytest.fixture
def raw_server(start_server, tmp_path):
    """gunicorn-c alone (no nginx), uwsgi on a socket and on TCP."""
    def start(*args):
        return start_server(APP, "--protocol", "uwsgi", "-b", "127.0.0.1:0", *args,
                            bind=f"unix:{tmp_path / 'raw.sock'}")
    return start


def test_raw_packet_is_served_and_closed(raw_server):
    srv = raw_server()
    for addr in (srv.unix_path, ("127.0.0.1", srv.port)):
        out = exchange(addr, packet(GET))
        assert status_of(out) == 200
        head, _, body = out.partition(b"\r\n\r\n")
        assert b"\r\nConnection: close\r\n" in head + b"\r\n"
        assert b'"PATH_INFO": "/raw/env"' in body


@pytest.mark.parametrize("data, status, shut", [
    (packet(GET, modifier1=5), 501, False),
    (packet(GET)[:9], 400, True),                     # cut in the variables
    (packet(GET, datasize=7), 400, False),            # a size that cuts a variable
    (packet(GET + [(b"CONTENT_LENGTH", b"-1")]), 400, False),
    (packet(GET + [(b"CONTENT_LENGTH", b"10")], b"short"), 400, True),
    (packet([(b"REQUEST_METHOD", b"GE T")]), 400, False),
    (packet(GET + [(b"HTTP_X_A", b"a\r\nInjected: 1")]), 400, False),
], ids=["modifier1", "cut-vars", "datasize", "negative-length", "short-body", "method",
        "crlf-value"])
def test_bad_packets_are_refused(raw_server, data, status, shut):
    srv = raw_server()
    out = exchange(("127.0.0.1", srv.port), data, shut)
    assert status_of(out) == status, out
    # The worker is still there and serves the next packet.
    assert status_of(exchange(("127.0.0.1", srv.port), packet(GET))) == 200


def test_https_variable_sets_the_scheme(raw_server):
    srv = raw_server()
    out = exchange(srv.unix_path, packet([(b"PATH_INFO", b"/env"), (b"HTTPS", b"on"),
                                          (b"HTTP_HOST", b"example.com")]))
    body = out.partition(b"\r\n\r\n")[2]
    assert b'"wsgi.url_scheme": "https"' in body
    assert b'"SERVER_PORT": "443"' in body


def test_no_early_hints_on_uwsgi(raw_server):
    # The front end reads one head per response: a 103 would be taken for the answer.
    srv = raw_server()
    out = exchange(srv.unix_path, packet([(b"PATH_INFO", b"/hints")]))
    assert out.startswith(b"HTTP/1.1 200 OK\r\n"), out[:100]
    assert b"103" not in out.partition(b"\r\n\r\n")[0]


def test_stalled_body_gets_408(raw_server):
    srv = raw_server("--timeout", "1")
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(10)
        s.connect(srv.unix_path)
        s.sendall(packet(GET + [(b"CONTENT_LENGTH", b"10")], b"abc"))
        out = b""
        while b"\r\n" not in out:
            chunk = s.recv(4096)
            assert chunk, out
            out += chunk
    assert status_of(out) == 408


def test_too_many_fields_is_431(raw_server):
    srv = raw_server("--limit-request-fields", "3")
    fields = [(b"HTTP_X_%d" % i, b"v") for i in range(4)]
    assert status_of(exchange(srv.unix_path, packet(GET[:2] + fields))) == 431
    assert status_of(exchange(srv.unix_path, packet(GET[:2] + fields[:3]))) == 200


def test_peer_outside_the_allow_list_gets_403(raw_server):
    srv = raw_server("--uwsgi-allow-from", "10.0.0.0/8,192.168.1.1")
    out = exchange(("127.0.0.1", srv.port), packet(GET))
    assert status_of(out) == 403, out
    assert b"Forbidden uWSGI request from 127.0.0.1" in out
    # A unix socket's peer always may, as in Gunicorn.
    assert status_of(exchange(srv.unix_path, packet(GET))) == 200


def test_allow_list_takes_networks(raw_server):
    srv = raw_server("--uwsgi-allow-from", "127.0.0.0/8")
    assert status_of(exchange(("127.0.0.1", srv.port), packet(GET))) == 200


def test_a_bad_allow_list_is_refused_at_start():
    # As Gunicorn 26.1: every entry but * must be an address or a network.
    out = run_cli("--check-config", "--protocol", "uwsgi", "--uwsgi-allow-from",
                  "10.0.0.0/8,bogus", "--chdir", str(APPS_DIR), APP)
    assert out.returncode == 1
    assert "'bogus' does not appear to be an IPv4 or IPv6 network" in out.stderr


def test_nginx_shows_the_403(tmp_path, start_server):
    sock = tmp_path / "app.sock"
    srv = start_server(APP, "--protocol", "uwsgi", "-b", "127.0.0.1:0",
                       "--uwsgi-allow-from", "10.0.0.1", bind=f"unix:{sock}")
    port = free_port()
    n = Nginx(tmp_path / "nginx", site(sock, port, srv.port)).start(port)
    try:
        r = requests.get(f"http://127.0.0.1:{port}/t/env", timeout=10)
        assert r.status_code == 403
        assert "Forbidden uWSGI request" in r.text
        assert requests.get(f"http://127.0.0.1:{port}/u/env", timeout=10).status_code == 200
    finally:
        n.stop()


def test_the_documented_site(tmp_path, start_server):
    # examples/deploy/nginx-uwsgi-site.conf, the file docs/deploy.md shows, with its
    # paths and port swapped for temporary ones.
    sock, static, port = tmp_path / "app.sock", tmp_path / "static", free_port()
    static.mkdir()
    (static / "a.txt").write_text("static\n")
    text = (REPO_ROOT / "examples" / "deploy" / "nginx-uwsgi-site.conf").read_text()
    assert text in (REPO_ROOT / "docs" / "deploy.md").read_text(), \
        "docs/deploy.md does not show examples/deploy/nginx-uwsgi-site.conf as it is"
    for old, new in (("listen 80;", f"listen 127.0.0.1:{port};"),
                     ("unix:/run/gunicorn-c.sock", f"unix:{sock}"),
                     ("/srv/myproject/static/", f"{static}/"),
                     # nginx -p here resolves a relative include against the prefix.
                     ("include uwsgi_params;", "include /etc/nginx/uwsgi_params;")):
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    start_server(APP, "--protocol", "uwsgi", bind=f"unix:{sock}")
    n = Nginx(tmp_path / "nginx", text).start(port)
    try:
        base = f"http://127.0.0.1:{port}"
        env = requests.get(base + "/env?q=1", headers={"X-Forwarded-For": "10.9.8.7"},
                           timeout=10).json()
        assert (env["PATH_INFO"], env["QUERY_STRING"], env["REMOTE_ADDR"]) == ("/env", "q=1", "")
        # nginx appends the address it saw to what the client sent.
        assert env["HTTP_X_FORWARDED_FOR"] == "10.9.8.7, 127.0.0.1"
        assert requests.get(base + "/static/a.txt", timeout=10).text == "static\n"
        body = os.urandom(3 * MIB)
        up = requests.post(base + "/upload", data=body, timeout=30).json()
        assert up == {"sha256": hashlib.sha256(body).hexdigest(), "length": len(body)}
        r = requests.get(base + "/stream?n=3", timeout=10)
        assert r.content == b"piece 0\npiece 1\npiece 2\n"
    finally:
        n.stop()
