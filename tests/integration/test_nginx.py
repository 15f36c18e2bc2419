"""Deployment behind real nginx (Debian's nginx package), the classic way.

gunicorn-c listens on a unix socket; nginx, on two loopback ports (plain and TLS with
a certificate made for the test), serves /static/ itself and proxies the rest to the
socket. The nginx site is examples/deploy/nginx-site.conf itself, the file
docs/deploy.md shows: the test only swaps its paths, ports and certificate for
temporary ones (each swap must find its text, so an edit to the file that the test
does not follow fails here), so the documentation and what is tested cannot drift.

Trust: a unix socket peer is always trusted (docs/http.md), so nginx's
X-Forwarded-Proto decides wsgi.url_scheme; the site file drops the two other secure
scheme headers a client could slip through. gunicorn-c also listens on 127.0.0.1 with
`--forwarded-allow-ips ''` (what docs/deploy.md advises for a TCP listener beside the
socket, such as a health check): a client there that claims https is not believed.

nginx runs as one foreground process (`daemon off; master_process off`), so its
upstream keep-alive cache is a single one and connection reuse is deterministic. The
application (apps/deploy_app.py) names the client connections its worker holds by
socket inode: on a unix socket there is no REMOTE_PORT to tell them apart.
"""

import contextlib
import hashlib
import os
import shutil
import socket
import subprocess
import sys

import pytest
import requests

from conftest import BIN, CRASH_RE, REPO_ROOT, Server, server_env, server_lacks
from helpers import free_port, wait_in_file, wait_listening

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
pytestmark = pytest.mark.skipif(not os.access(NGINX, os.X_OK),
                                reason="nginx is not installed (Debian: apt-get install nginx)")

DEPLOY = REPO_ROOT / "examples" / "deploy"
SITE = DEPLOY / "nginx-site.conf"
DEPLOY_DOC = REPO_ROOT / "docs" / "deploy.md"
DJANGO_EXAMPLE = REPO_ROOT / "examples" / "django"
MIB = 1024 * 1024
UPLOAD = 50 * MIB


def make_certificate(directory):
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2", "-subj",
                    "/CN=localhost", "-addext", "subjectAltName=DNS:localhost",
                    "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=30)
    return cert, key


def site_text(sock, static, http_port, https_port, cert, key, edits=()):
    """The example site with its real-world paths replaced; `edits` are further
    (old, new) replacements a test makes to try a variant."""
    text = SITE.read_text()
    swaps = [("listen 80;", f"listen 127.0.0.1:{http_port};"),
             ("listen 443 ssl;", f"listen 127.0.0.1:{https_port} ssl;"),
             ("unix:/run/gunicorn-c.sock", f"unix:{sock}"),
             ("/srv/myproject/static/", f"{static}/"),
             ("/etc/ssl/certs/example.com.pem", str(cert)),
             ("/etc/ssl/private/example.com.key", str(key))] + list(edits)
    for old, new in swaps:
        assert text.count(old) == 1, f"{old!r} is not in {SITE} exactly once"
        text = text.replace(old, new)
    return text


class Nginx:
    """One nginx process in the foreground, everything it writes under `root`."""

    def __init__(self, root, site):
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        (root / "site.conf").write_text(site)
        temps = "\n".join(f"    {kind}_temp_path {root}/{kind}_temp;"
                          for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        (root / "nginx.conf").write_text(f"""\
daemon off;
master_process off;
pid {root}/nginx.pid;
error_log {root}/error.log info;
events {{ worker_connections 256; }}
http {{
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    access_log {root}/access.log;
{temps}
    include {root}/site.conf;
}}
""")
        self.proc = None

    def start(self, port):
        with socket.socket() as probe:  # the port must be free: ours to answer on
            assert probe.connect_ex(("127.0.0.1", port)) != 0, f"port {port} is taken"
        self.proc = subprocess.Popen(
            [NGINX, "-e", str(self.root / "error.log"), "-p", str(self.root),
             "-c", str(self.root / "nginx.conf")],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            wait_listening(port, proc=self.proc)
        except AssertionError as e:
            stderr = self.proc.stderr.read().decode() if self.proc.poll() is not None else ""
            raise AssertionError(f"nginx: {e}\n{stderr}\n{self.error_log()}") from None
        return self

    def error_log(self):
        path = self.root / "error.log"
        return path.read_text() if path.exists() else ""

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self.proc:
            self.proc.stderr.close()


class Stack:
    """gunicorn-c on a unix socket (and 127.0.0.1) with nginx in front of it."""

    def __init__(self, root):
        self.root = root
        self.sock = root / "app.sock"
        self.static = root / "static"
        self.static.mkdir(parents=True, exist_ok=True)
        self.cert, self.key = make_certificate(root)
        self.http_port, self.https_port = free_port(), free_port()
        self.srv = None
        self.nginxes = []

    def start_server(self, app, *args, **kwargs):
        self.srv = Server(app, *args, bind=f"unix:{self.sock}", **kwargs).start()
        return self.srv

    def start_nginx(self, name="nginx", edits=()):
        site = site_text(self.sock, self.static, self.http_port, self.https_port,
                         self.cert, self.key, edits)
        n = Nginx(self.root / name, site)
        self.nginxes.append(n)
        return n.start(self.http_port)

    def stop_nginx(self, n):
        n.stop()
        self.nginxes.remove(n)

    @contextlib.contextmanager
    def variant(self, name, edits):
        """nginx with the site edited, in place of the running one, for one test."""
        for n in list(self.nginxes):
            self.stop_nginx(n)
        n = self.start_nginx(name, edits)
        try:
            yield n
        finally:
            self.stop_nginx(n)
            self.start_nginx(name + "-after")

    def url(self, path, tls=False):
        if tls:
            return f"https://localhost:{self.https_port}{path}"
        return f"http://localhost:{self.http_port}{path}"

    def get(self, path, tls=False, **kwargs):
        kwargs.setdefault("timeout", 10)
        return requests.get(self.url(path, tls), verify=str(self.cert), **kwargs)

    def post(self, path, tls=False, **kwargs):
        kwargs.setdefault("timeout", 60)
        return requests.post(self.url(path, tls), verify=str(self.cert), **kwargs)

    def close(self):
        for n in list(self.nginxes):
            self.stop_nginx(n)
        if self.srv is not None:
            rc = self.srv.stop()
            assert rc == 0, self.srv.log_text()
            crash = CRASH_RE.search(self.srv.log_text())
            assert not crash, self.srv.log_text()


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """The classic setup, shared by the tests that do not change it."""
    st = Stack(tmp_path_factory.mktemp("nginx"))
    try:
        st.start_server("deploy_app", "-b", "127.0.0.1:0", "--keep-alive", "75",
                        "--forwarded-allow-ips", "")
        st.start_nginx()
        yield st
    finally:
        st.close()


def app_env(st, path="/env", tls=False, headers=None):
    r = st.get(path, tls=tls, headers=headers)
    assert r.status_code == 200, (r.status_code, r.text[:300])
    assert r.headers["Server"].startswith("nginx"), r.headers
    return r.json()


def served(st):
    return st.get("/count").json()["served"]


# --- the request as the application sees it ---------------------------------------------


def test_request_reaches_the_app_through_nginx(stack):
    env = app_env(stack, "/env?q=1")
    assert env["PATH_INFO"] == "/env"
    assert env["QUERY_STRING"] == "q=1"
    assert env["HTTP_HOST"] == "localhost"  # proxy_set_header Host $host
    assert env["SERVER_PROTOCOL"] == "HTTP/1.1"  # proxy_http_version 1.1
    assert env["HTTP_CONNECTION"] is None  # proxy_set_header Connection ""
    # A unix socket has no peer address: the client is in X-Forwarded-For.
    assert env["REMOTE_ADDR"] == ""
    assert env["HTTP_X_FORWARDED_FOR"] == "127.0.0.1"
    assert env["wsgi.url_scheme"] == "http"
    assert env["HTTP_X_FORWARDED_PROTO"] == "http"
    # nginx appends the address it saw to what the client sent.
    env = app_env(stack, headers={"X-Forwarded-For": "203.0.113.7"})
    assert env["HTTP_X_FORWARDED_FOR"] == "203.0.113.7, 127.0.0.1"


def test_http10_client_without_host_still_reaches_the_app(stack):
    # $host falls back to the server_name, so nginx never sends gunicorn-c an
    # HTTP/1.1 request without Host (which gunicorn-c refuses with 400).
    conn = socket.create_connection(("127.0.0.1", stack.http_port), timeout=10)
    with conn:
        conn.sendall(b"GET /env HTTP/1.0\r\n\r\n")
        data = b""
        while chunk := conn.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), data[:300]
    assert b'"HTTP_HOST": "example.com"' in body


def test_https_reaches_the_app_as_https(stack):
    env = app_env(stack, tls=True)
    assert env["wsgi.url_scheme"] == "https"
    assert env["HTTP_X_FORWARDED_PROTO"] == "https"
    assert env["HTTP_HOST"] == "localhost"


def test_client_cannot_claim_https_through_nginx(stack):
    # nginx replaces X-Forwarded-Proto and drops the two other scheme headers that
    # gunicorn-c would believe from the socket (without the two drops this is a 400:
    # "Contradictory scheme headers").
    env = app_env(stack, headers={"X-Forwarded-Proto": "https", "X-Forwarded-Ssl": "on",
                                  "X-Forwarded-Protocol": "ssl"})
    assert env["wsgi.url_scheme"] == "http"
    assert env["HTTP_X_FORWARDED_PROTO"] == "http"
    assert env["HTTP_X_FORWARDED_SSL"] is None
    assert env["HTTP_X_FORWARDED_PROTOCOL"] is None
    env = app_env(stack, tls=True, headers={"X-Forwarded-Proto": "http"})
    assert env["wsgi.url_scheme"] == "https"


def test_scheme_header_trusted_on_the_socket_not_on_tcp(stack):
    srv = stack.srv
    tcp = lambda: socket.create_connection((srv.host, srv.port), timeout=5)  # noqa: E731
    for connect, scheme in ((srv.connect, "https"), (tcp, "http")):
        with connect() as s:
            s.sendall(b"GET /env HTTP/1.1\r\nHost: x\r\nX-Forwarded-Proto: https\r\n"
                      b"Connection: close\r\n\r\n")
            data = b""
            while chunk := s.recv(65536):
                data += chunk
        assert data.startswith(b"HTTP/1.1 200"), data[:300]
        assert f'"wsgi.url_scheme": "{scheme}"'.encode() in data, (scheme, data)


# --- static files -----------------------------------------------------------------------


def test_static_files_are_served_by_nginx(stack):
    css = b"body { color: #123456; }\n" * 100
    (stack.static / "site.css").write_bytes(css)
    (stack.static / "img").mkdir(exist_ok=True)
    (stack.static / "img" / "dot.svg").write_bytes(b"<svg/>")
    before = served(stack)
    r = stack.get("/static/site.css")
    assert r.status_code == 200
    assert r.content == css
    assert r.headers["Content-Type"] == "text/css"
    assert r.headers["Cache-Control"] == "max-age=604800"  # expires 7d
    r = stack.get("/static/img/dot.svg", tls=True)
    assert (r.status_code, r.content) == (200, b"<svg/>")
    assert r.headers["Content-Type"] == "image/svg+xml"
    assert stack.get("/static/missing.css").status_code == 404
    # None of those reached the application: only the two /count requests did.
    assert served(stack) == before + 1


# --- uploads ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def upload_body():
    data = os.urandom(UPLOAD)
    return data, hashlib.sha256(data).hexdigest()


def test_upload_with_content_length(stack, upload_body):
    data, digest = upload_body
    r = stack.post("/upload", data=data)
    assert r.status_code == 200, r.text[:300]
    assert r.json() == {"sha256": digest, "length": UPLOAD, "content_length": str(UPLOAD),
                        "transfer_encoding": None}


def pieces(data, size=MIB):
    for i in range(0, len(data), size):
        yield data[i:i + size]


def test_chunked_upload_arrives_with_content_length(stack, upload_body):
    # By default nginx reads the whole chunked body, then sends it with a length.
    data, digest = upload_body
    r = stack.post("/upload", data=pieces(data), tls=True)
    assert r.status_code == 200, r.text[:300]
    assert r.json() == {"sha256": digest, "length": UPLOAD, "content_length": str(UPLOAD),
                        "transfer_encoding": None}


def test_body_over_client_max_body_size_is_refused_by_nginx(stack):
    before = served(stack)
    with socket.create_connection(("127.0.0.1", stack.http_port), timeout=10) as s:
        s.sendall(b"POST /upload HTTP/1.1\r\nHost: localhost\r\n"
                  b"Content-Length: %d\r\n\r\n" % (65 * MIB))
        head = s.recv(65536)
    assert head.startswith(b"HTTP/1.1 413"), head[:200]
    assert served(stack) == before + 1


def test_unbuffered_chunked_upload_streams_to_gunicorn_c(stack, upload_body):
    # proxy_request_buffering off: nginx passes the chunks on as they come, and
    # gunicorn-c reads (and spools) the body before the application runs.
    edits = [("proxy_request_buffering on;", "proxy_request_buffering off;")]
    with stack.variant("nginx-unbuffered", edits):
        data, digest = upload_body
        r = stack.post("/upload", data=pieces(data))
        assert r.status_code == 200, r.text[:300]
        assert r.json() == {"sha256": digest, "length": UPLOAD, "content_length": None,
                            "transfer_encoding": "chunked"}
        r = stack.post("/upload", data=data)
        assert r.json()["sha256"] == digest


# --- keep-alive between nginx and gunicorn-c --------------------------------------------


def connections_seen(st, n=5):
    seen = []
    for i in range(n):
        env = app_env(st, tls=bool(i % 2))  # a new client connection each time
        seen.append(tuple(env["connections"]))
    return seen


def test_upstream_keepalive_reuses_one_connection(stack):
    seen = connections_seen(stack)
    assert all(len(c) == 1 for c in seen), seen
    assert len(set(seen)) == 1, seen


def test_without_upstream_keepalive_each_request_connects(stack):
    # The same site without `keepalive 16;`: nginx connects anew for every request.
    # This is what the test above would see if keep-alive were broken.
    edits = [("keepalive 16;", ""), ("keepalive_timeout 60s;", "")]
    with stack.variant("nginx-no-keepalive", edits):
        seen = connections_seen(stack)
        assert len(set(seen)) == len(seen), seen


# --- systemd units ----------------------------------------------------------------------


SYSTEMD_WRAPPER = ["/bin/sh", "-c",
                   'export LISTEN_PID=$$ LISTEN_FDS=1; exec "$0" "$@" 3<&0 0</dev/null']


def test_socket_activation_behind_nginx(tmp_path):
    """What gunicorn-c.socket + gunicorn-c.service do, without systemd: the test makes
    the listening socket, hands it over as fd 3 with LISTEN_FDS, and listens on
    NOTIFY_SOCKET. The service's config file is examples/gunicorn.conf.py, whose own
    `bind` is ignored."""
    st = Stack(tmp_path)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(st.sock))
    os.chmod(st.sock, 0o600)
    listener.listen(64)
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp_path / "notify"))
    notify.settimeout(10)
    try:
        st.srv = Server("deploy_app", "-c", str(REPO_ROOT / "examples" / "gunicorn.conf.py"),
                        workers=None, wrapper=SYSTEMD_WRAPPER,
                        popen={"stdin": listener.fileno()},
                        env={"NOTIFY_SOCKET": str(tmp_path / "notify"),
                             "WEB_CONCURRENCY": "2"}).start()
        assert st.srv.urls == [f"unix:{st.sock}"]
        assert "READY=1" in notify.recv(4096).decode().split("\n")
        st.srv.wait_for_log(r"Ready: deploy_app, workers: 2")
        st.start_nginx()
        env = app_env(st, tls=True)
        assert env["wsgi.url_scheme"] == "https"
        assert env["pid"] in st.srv.worker_pids()
        st.close()
        st.srv = None
        # The socket file is systemd's: gunicorn-c leaves it for the next start.
        assert st.sock.is_socket()
    finally:
        st.close()
        listener.close()
        notify.close()


def test_systemd_units_verify(tmp_path):
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    for unit in ("gunicorn-c.socket", "gunicorn-c.service"):
        text = (DEPLOY / unit).read_text()
        (tmp_path / unit).write_text(text.replace("/usr/local/bin/gunicorn-c", str(BIN)))
    out = subprocess.run([analyze, "verify", "--man=no", "gunicorn-c.socket",
                          "gunicorn-c.service"], cwd=tmp_path, capture_output=True,
                         text=True, timeout=30)
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stderr.strip() == "", out.stderr


def test_docs_show_the_example_files():
    doc = DEPLOY_DOC.read_text()
    for path in (SITE, DEPLOY / "gunicorn-c.socket", DEPLOY / "gunicorn-c.service",
                 DJANGO_EXAMPLE / "settings_production.py"):
        assert path.read_text() in doc, f"docs/deploy.md does not show {path} as it is"


# --- Django, per examples/django ----------------------------------------------------------


DJANGO_ENV = {"DJANGO_SETTINGS_MODULE": "myproject.settings_production",
              "DJANGO_SECRET_KEY": "gc-test-not-secret",
              "DJANGO_ALLOWED_HOSTS": "localhost,127.0.0.1"}

SCHEME_VIEW = '''\
from django.http import HttpResponse


def scheme(request):
    return HttpResponse("%s %s %s" % (request.scheme, request.is_secure(), request.get_host()))
'''


@pytest.fixture(scope="module")
def django_project(tmp_path_factory):
    pytest.importorskip("django")
    pytest.importorskip("whitenoise")
    if server_lacks("django", "whitenoise"):
        pytest.skip(server_lacks("django", "whitenoise"))
    root = tmp_path_factory.mktemp("django")
    env = server_env(DJANGO_ENV)
    subprocess.run([sys.executable, "-m", "django", "startproject", "myproject", str(root)],
                   check=True, env=env, capture_output=True, text=True, timeout=60)
    pkg = root / "myproject"
    shutil.copy(DJANGO_EXAMPLE / "settings_production.py", pkg / "settings_production.py")
    (pkg / "views_gc.py").write_text(SCHEME_VIEW)
    with open(pkg / "urls.py", "a") as f:
        f.write("\nfrom myproject import views_gc  # noqa: E402\n"
                "urlpatterns += [path('scheme/', views_gc.scheme)]\n")
    out = subprocess.run([sys.executable, "manage.py", "collectstatic", "--noinput"],
                         cwd=root, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    css = root / "static" / "admin" / "css" / "base.css"
    assert css.is_file(), out.stdout
    return root, css.read_bytes()


def django_args(project, access_log):
    args = ["--access-logfile", str(access_log)]
    for k, v in DJANGO_ENV.items():
        args += ["-e", f"{k}={v}"]
    return args + ["--chdir", str(project)]


def test_django_behind_nginx(tmp_path, django_project):
    project, css = django_project
    st = Stack(tmp_path)
    st.static = project / "static"  # STATIC_ROOT, where collectstatic put the files
    log = tmp_path / "access.log"
    try:
        st.start_server("myproject.wsgi", *django_args(project, log), app_dir_flag=None)
        st.start_nginx()
        r = st.get("/admin/login/", tls=True)
        assert r.status_code == 200, r.text[:500]
        assert "/static/admin/css/base.css" in r.text
        r = st.get("/static/admin/css/base.css", tls=True)
        assert (r.status_code, r.content) == (200, css)
        assert r.headers["Content-Type"] == "text/css"
        assert st.get("/scheme/", tls=True).text == "https True localhost"
        assert st.get("/scheme/").text == "http False localhost"
        lines = log.read_text()
        assert "/admin/login/" in lines
        assert "/static/" not in lines  # nginx answered those
    finally:
        st.close()


def test_django_without_nginx_whitenoise(tmp_path, django_project):
    project, css = django_project
    log = tmp_path / "access.log"
    srv = Server("myproject.wsgi", *django_args(project, log), app_dir_flag=None).start()
    try:
        base = f"http://127.0.0.1:{srv.port}"
        r = requests.get(base + "/admin/login/", timeout=10)
        assert r.status_code == 200, r.text[:500]
        r = requests.get(base + "/static/admin/css/base.css", timeout=10)
        assert (r.status_code, r.content) == (200, css)
        assert r.headers["Content-Type"].startswith("text/css")
        # The line is written once the response is complete, which the client may see
        # a moment earlier.
        wait_in_file(log, r"GET /static/admin/css/base\.css")
    finally:
        assert srv.stop() == 0, srv.log_text()


# --- the small examples -----------------------------------------------------------------


def test_minimal_example(start_server):
    srv = start_server("minimal:app", app_dir=REPO_ROOT / "examples")
    base = f"http://127.0.0.1:{srv.port}"
    assert requests.get(base + "/hello?name=you", timeout=5).text == "Hello, you!\n"
    r = requests.post(base + "/sum", data=b'{"a": 1, "b": 2}', timeout=5)
    assert r.json() == {"sum": 3}
    assert requests.post(base + "/sum", data=b"x", timeout=5).status_code == 400
    r = requests.get(base + "/count/3", timeout=5)
    assert (r.text, r.headers["Transfer-Encoding"]) == ("1\n2\n3\n", "chunked")
    assert requests.get(base + "/nope", timeout=5).status_code == 404


def test_example_config_file():
    out = subprocess.run([str(BIN), "-c", str(REPO_ROOT / "examples" / "gunicorn.conf.py"),
                          "--print-config", "hello:app"], capture_output=True, text=True,
                         timeout=10, cwd=REPO_ROOT / "examples",
                         env=server_env({"WEB_CONCURRENCY": "3"}))
    assert out.returncode == 0, out.stderr
    settings = {k.strip(): v for k, _, v in
                (line.partition(" = ") for line in out.stdout.splitlines())}
    assert settings["workers"] == "3"  # from $WEB_CONCURRENCY
    assert settings["keepalive"] == "75"
    assert settings["bind"] == "['unix:/run/gunicorn-c.sock']"
    assert "%({x-forwarded-for}i)s" in settings["access_log_format"]
