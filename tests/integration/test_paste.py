"""PasteDeploy: `--paste development.ini` (Debian's python3-pastedeploy) loads the
application from the ini's [app:...] section, and its [server:main] host and port
become the default bind."""

import re
import signal
import subprocess
import time

import pytest
import requests

from conftest import (BIN, CRASH_RE, LISTENING_RE, run_cli as _run_cli, server_env,
                      skip_unless_server_imports)
from helpers import free_port

pytest.importorskip("paste.deploy")
skip_unless_server_imports("paste.deploy")

APP = '''\
import json


def app_factory(global_conf, **local_conf):
    body = json.dumps({"local": local_conf,
                       "global": {k: v for k, v in global_conf.items()
                                  if k not in ("here", "__file__")}}).encode()

    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "application/json"),
                                  ("Content-Length", str(len(body)))])
        return [body]

    return app
'''

INI = '''\
[app:main]
paste.app_factory = pasteapp:app_factory
greeting = hello from paste

[app:other]
paste.app_factory = pasteapp:app_factory
greeting = the other one

[server:main]
use = egg:gunicorn#main
host = 127.0.0.1
port = {port}
'''


def run_cli(*args, **kwargs):
    out = _run_cli(*args, **kwargs)
    assert not CRASH_RE.search(out.stderr), out.stderr
    return out


@pytest.fixture
def paste_dir(tmp_path):
    (tmp_path / "pasteapp.py").write_text(APP)
    port = free_port()
    (tmp_path / "development.ini").write_text(INI.format(port=port))
    return tmp_path, port


class PasteServer:
    """gunicorn-c run from the ini's directory without -b, so that the ini decides."""

    def __init__(self, cwd, *args):
        self.proc = subprocess.Popen([str(BIN), *args], cwd=cwd, env=server_env(),
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True)
        self.log = []
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            line = self.proc.stderr.readline()
            if not line:
                break
            self.log.append(line)
            m = LISTENING_RE.search(line)
            if m:
                self.url = m.group(1)
                return
        self.stop()
        raise AssertionError("server did not start:\n" + "".join(self.log))

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(10)
        self.log.append(self.proc.stderr.read())
        self.proc.stderr.close()
        assert not CRASH_RE.search("".join(self.log)), "".join(self.log)
        return self.proc.returncode


@pytest.fixture
def paste_server():
    servers = []

    def start(cwd, *args):
        srv = PasteServer(cwd, *args)
        servers.append(srv)
        return srv

    yield start
    for srv in servers:
        assert srv.stop() in (0, -signal.SIGTERM)


def test_paste_app_and_server_section(paste_server, paste_dir):
    cwd, port = paste_dir
    srv = paste_server(cwd, "--paste", "development.ini")
    assert srv.url == f"http://127.0.0.1:{port}"
    got = requests.get(srv.url + "/", timeout=5).json()
    assert got["local"] == {"greeting": "hello from paste"}


def test_paste_section_global_conf_and_bind_override(paste_server, paste_dir):
    cwd, port = paste_dir
    other = free_port()
    srv = paste_server(cwd, "--paster", "development.ini#other", "--paste-global", "color=blue",
                       "-b", f"127.0.0.1:{other}")
    # The command line's --bind wins over the ini's host and port.
    assert srv.url == f"http://127.0.0.1:{other}"
    got = requests.get(srv.url + "/", timeout=5).json()
    assert got["local"] == {"greeting": "the other one"}
    assert got["global"] == {"color": "blue"}


def test_paste_print_and_check_config(paste_dir):
    cwd, port = paste_dir
    out = run_cli("--print-config", "--paste", "development.ini", cwd=cwd)
    assert out.returncode == 0, out.stderr
    values = dict(re.findall(r"^(\w+) += (.*)$", out.stdout, re.M))
    assert values["bind"] == f"['127.0.0.1:{port}']"
    assert values["default_proc_name"] == str(cwd / "development.ini")
    assert values["paste"] == "development.ini"


def test_paste_errors(paste_dir):
    cwd, _ = paste_dir
    out = run_cli("--check-config", "--paste", "missing.ini", cwd=cwd)
    assert out.returncode == 1
    assert out.stderr == f"\nError: '{cwd / 'missing.ini'}' not found\n"
    out = run_cli("--check-config", "--paste", "development.ini#nosuch", cwd=cwd)
    assert out.returncode == 1
    assert "Error while loading the application:" in out.stderr
    assert "LookupError" in out.stderr
