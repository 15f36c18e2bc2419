"""Configuration and application loading: sources and their order, config files,
--print-config / --check-config, every way to name an application and every way to
get it wrong, and the generated settings documentation.

Most checks run the binary with --print-config or --check-config, which load
everything and exit without serving; the others start a real server."""

import os
import re
import shutil
import subprocess

import pytest
import requests

from conftest import APPS_DIR, CRASH_RE, REPO_ROOT, embedded_python, run_cli, server_env
from helpers import url

GUNICORN = shutil.which("gunicorn", path="/usr/bin")
SETTINGS_COUNT = 122  # Gunicorn 26.1's 118, --access-log-json, --virtualenv, --http2-cleartext (its HEAD), --metrics-bind


def cli(*args, cwd=APPS_DIR, env=None, timeout=20):
    out = run_cli(*args, cwd=cwd, env=server_env(env), timeout=timeout)
    # A sanitizer build (GUNICORN_C_BIN) reports memory errors on stderr.
    assert not CRASH_RE.search(out.stderr), out.stderr
    return out


def printed(out):
    """The name -> value lines of --print-config output."""
    assert out.returncode == 0, out.stderr
    values = {}
    for line in out.stdout.splitlines():
        name, sep, value = line.partition(" = ")
        assert sep, f"not a setting line: {line!r}"
        values[name.rstrip()] = value
    return values


def write(path, text):
    path.write_text(text)
    return path


# --- sources and precedence -----------------------------------------------------------


@pytest.fixture
def workers_conf(tmp_path):
    return write(tmp_path / "gunicorn.conf.py", "workers = 2\n")


def test_config_file_beats_defaults_and_environment_defaults(workers_conf):
    assert printed(cli("--print-config", "hello"))["workers"] == "1"
    assert printed(cli("--print-config", "hello", env={"WEB_CONCURRENCY": "5"}))["workers"] == "5"
    out = cli("--print-config", "-c", str(workers_conf), "hello", env={"WEB_CONCURRENCY": "5"})
    assert printed(out)["workers"] == "2"


def test_same_setting_from_three_sources(workers_conf):
    env = {"GUNICORN_CMD_ARGS": "--workers 3"}
    # config file < GUNICORN_CMD_ARGS < command line
    assert printed(cli("--print-config", "-c", str(workers_conf), "hello"))["workers"] == "2"
    out = cli("--print-config", "-c", str(workers_conf), "hello", env=env)
    assert printed(out)["workers"] == "3"
    out = cli("--print-config", "-c", str(workers_conf), "-w", "4", "hello", env=env)
    assert printed(out)["workers"] == "4"


def test_precedence_holds_on_a_running_server(start_server, tmp_path):
    conf = write(tmp_path / "c.py", "raw_env = ['GC_TEST_A=file', 'GC_TEST_B=file']\n"
                                    "timeout = 7\n")
    srv = start_server("envcheck", "-c", str(conf), "-e", "GC_TEST_A=cli",
                       env={"GUNICORN_CMD_ARGS": "-e GC_TEST_B=env -t 9"})
    got = requests.get(url(srv, "/?GC_TEST_A&GC_TEST_B"), timeout=5).json()
    # Each source's list replaces the lower one's: the command line's raw_env wins
    # whole, so GC_TEST_B (given by the file and GUNICORN_CMD_ARGS) is not set at all.
    assert got["now"] == {"GC_TEST_A": "cli", "GC_TEST_B": None}
    assert got["at_import"] == {"GC_TEST_A": "cli"}


def test_lists_are_replaced_not_merged(tmp_path):
    conf = write(tmp_path / "c.py", "bind = ['unix:/tmp/a.sock', 'unix:/tmp/b.sock']\n"
                                    "raw_env = ['A=1']\n")
    values = printed(cli("--print-config", "-c", str(conf), "hello"))
    assert values["bind"] == "['unix:/tmp/a.sock', 'unix:/tmp/b.sock']"
    out = cli("--print-config", "-c", str(conf), "-b", "127.0.0.1:9", "hello",
              env={"GUNICORN_CMD_ARGS": "-e B=2 -e C=3"})
    values = printed(out)
    assert values["bind"] == "['127.0.0.1:9']"
    assert values["raw_env"] == "['B=2', 'C=3']"


def test_gunicorn_cmd_args_positional_arguments_are_ignored():
    env = {"GUNICORN_CMD_ARGS": "hello:nope -w 2"}
    values = printed(cli("--print-config", "hello", env=env))
    assert values["workers"] == "2"
    assert values["default_proc_name"] == "hello"
    out = cli("--check-config", env=env)
    assert out.returncode == 1
    assert "Error: No application module specified." in out.stderr


def test_gunicorn_cmd_args_is_shell_split(tmp_path):
    env = {"GUNICORN_CMD_ARGS": "--name 'my app' --env \"A=b c\""}
    values = printed(cli("--print-config", "hello", env=env))
    assert values["proc_name"] == "my app"
    assert values["raw_env"] == "['A=b c']"
    out = cli("--check-config", "hello", env={"GUNICORN_CMD_ARGS": "--name 'open"})
    assert out.returncode == 1
    assert "Error: No closing quotation" in out.stderr


def test_gunicorn_cmd_args_usage_error():
    out = cli("--check-config", "hello", env={"GUNICORN_CMD_ARGS": "--workers=many"})
    assert out.returncode == 2
    assert "argument -w/--workers: invalid int value: 'many'" in out.stderr


def test_config_file_from_gunicorn_cmd_args(tmp_path):
    a = write(tmp_path / "a.py", "workers = 5\n")
    b = write(tmp_path / "b.py", "workers = 6\n")
    env = {"GUNICORN_CMD_ARGS": f"-c {a}"}
    assert printed(cli("--print-config", "hello", env=env))["workers"] == "5"
    # The command line's -c wins; only one file is read.
    assert printed(cli("--print-config", "-c", str(b), "hello", env=env))["workers"] == "6"


def test_default_config_file_in_working_directory(tmp_path):
    shutil.copy(APPS_DIR / "hello.py", tmp_path / "hello.py")
    write(tmp_path / "gunicorn.conf.py", "workers = 7\nproc_name = 'from-default'\n")
    values = printed(cli("--print-config", "hello", cwd=tmp_path))
    assert values["workers"] == "7"
    assert values["proc_name"] == "from-default"
    # The setting still shows its default text, as in Gunicorn.
    assert values["config"] == "./gunicorn.conf.py"
    # Another file given with -c replaces it entirely.
    other = write(tmp_path / "other.py", "timeout = 3\n")
    values = printed(cli("--print-config", "-c", str(other), "hello", cwd=tmp_path))
    assert values["workers"] == "1"
    assert values["timeout"] == "3"


def test_environment_defaults(tmp_path):
    env = {"PORT": "5123", "WEB_CONCURRENCY": "4", "FORWARDED_ALLOW_IPS": "10.1.1.1,10.2.2.2"}
    values = printed(cli("--print-config", "hello", env=env))
    assert values["bind"] == "['0.0.0.0:5123']"
    assert values["workers"] == "4"
    assert values["forwarded_allow_ips"] == "['10.1.1.1', '10.2.2.2']"


# --- config file forms -----------------------------------------------------------------


def test_config_file_forms(tmp_path):
    write(tmp_path / "conf_mod.py", "workers = 9\n")
    plain = write(tmp_path / "plain.py", "workers = 8\n")
    assert printed(cli("--print-config", "-c", str(plain), "hello"))["workers"] == "8"
    assert printed(cli("--print-config", "-c", f"file:{plain}", "hello"))["workers"] == "8"
    # python:MODULE is imported; the working directory is on sys.path.
    out = cli("--print-config", "-c", "python:conf_mod", "hello", cwd=tmp_path,
              env={"PYTHONPATH": str(APPS_DIR)})
    assert printed(out)["workers"] == "9"
    # A relative path is taken from the working directory.
    assert printed(cli("--print-config", "-c", "plain.py", "hello", cwd=tmp_path,
                       env={"PYTHONPATH": str(APPS_DIR)}))["workers"] == "8"


def test_config_file_without_python_extension_is_read_with_a_warning(tmp_path):
    conf = write(tmp_path / "gunicorn.conf", "workers = 3\n")
    out = cli("--print-config", "-c", str(conf), "hello")
    assert printed(out)["workers"] == "3"
    assert "!!! WARNING: configuration file should have a valid Python extension." in out.stderr


def test_config_file_runs_as_module_config(tmp_path):
    conf = write(tmp_path / "c.py", "import sys\n"
                                    "proc_name = __name__ + ':' + str('__config__' in sys.modules)\n"
                                    "pidfile = __file__\n")
    values = printed(cli("--print-config", "-c", str(conf), "hello"))
    assert values["proc_name"] == "__config__:True"
    assert values["pidfile"] == str(conf)


def test_missing_config_file():
    for location in ("nope.py", "file:nope.py"):
        out = cli("--check-config", "-c", location, "hello")
        assert out.returncode == 1
        assert out.stderr == "\nError: 'nope.py' doesn't exist\n"


def test_missing_config_module():
    out = cli("--check-config", "-c", "python:no_such_config_module", "hello")
    assert out.returncode == 1
    assert "Error: No module named 'no_such_config_module'" in out.stderr


def test_config_file_that_raises(tmp_path):
    conf = write(tmp_path / "bad.py", "workers = 2\nraise RuntimeError('config says no')\n")
    out = cli("--check-config", "-c", str(conf), "hello")
    assert out.returncode == 1
    assert out.stderr.startswith(f"Failed to read config file: {conf}\nTraceback")
    assert "RuntimeError: config says no" in out.stderr
    syntax = write(tmp_path / "syntax.py", "workers = = 2\n")
    out = cli("--check-config", "-c", str(syntax), "hello")
    assert out.returncode == 1
    assert f"Failed to read config file: {syntax}" in out.stderr
    assert "SyntaxError" in out.stderr


def test_real_world_config_file_runs_unchanged(start_server, tmp_path):
    """A gunicorn.conf.py written for Gunicorn: unix socket, workers, worker class,
    log paths, process name, daemon off, hooks, and the helpers such files hold."""
    sock = tmp_path / "app.sock"
    marks = tmp_path / "marks"
    marks.mkdir()
    conf = write(tmp_path / "gunicorn.conf.py", f"""\
import multiprocessing
import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent
bind = "unix:{sock}"
workers = 2
worker_class = "sync"
errorlog = "-"
loglevel = "info"
accesslog = os.path.join(str(BASE_DIR), "access.log")
proc_name = "realworld"
daemon = False
timeout = 30
keepalive = 5
_private = multiprocessing.cpu_count()


def _touch(name):
    (Path({str(marks)!r}) / name).write_text(str(os.getpid()))


def on_starting(server):
    _touch("on_starting")


def when_ready(server):
    _touch("when_ready")


def post_fork(server, worker):
    _touch("post_fork")


def worker_exit(server, worker):
    _touch("worker_exit")
""")
    srv = start_server("hello", "-c", str(conf), bind=f"unix:{sock}", workers=2)
    with srv.connect() as s:
        s.sendall(b"GET / HTTP/1.0\r\n\r\n")
        assert b"Hello, World!" in s.recv(65536)
    log = srv.log_text()
    assert "not yet active" not in log
    assert (tmp_path / "access.log").is_file()  # the config file's accesslog
    # Helpers, imports, private and upper-case names are not reported.
    assert "is not a setting" not in log
    for name in ("on_starting", "when_ready", "post_fork"):
        assert (marks / name).is_file(), f"{name} was not called:\n{log}"
    assert (marks / "on_starting").read_text() == str(srv.pid)
    assert srv.stop() == 0


# --- values ------------------------------------------------------------------------------


@pytest.mark.parametrize("line, value, error", [
    ("workers = 'abc'", "abc", "invalid literal for int() with base 0: 'abc'"),
    ("workers = -3", "-3", "Value must be positive: -3"),
    ("timeout = 1.5", "1.5", "int() can't convert non-string with explicit base"),
    ("daemon = 'maybe'", "maybe", "Invalid boolean: maybe"),
    ("preload_app = 1", "1", "Invalid type for casting: 1"),
    ("reload_engine = 'fast'", "fast", "Invalid reload_engine: 'fast'"),
    ("loglevel = 7", "7", "Not a string: 7"),
    ("bind = [1]", "[1]", "Not a string: 1"),
    ("secure_scheme_headers = []", "[]", "Value is not a dictionary: [] "),
    ("user = 'no-such-user-here'", "no-such-user-here", "No such user: 'no-such-user-here'"),
], ids=["int", "negative", "float", "bool", "bool-type", "choice", "string", "list", "dict",
        "user"])
def test_bad_config_file_value(tmp_path, line, value, error):
    name = line.split(" = ")[0]
    conf = write(tmp_path / "c.py", line + "\n")
    out = cli("--check-config", "-c", str(conf), "hello")
    assert out.returncode == 1
    assert out.stderr == f"Invalid value for {name}: {value}\n\n\nError: {error}\n"


@pytest.mark.parametrize("args, error", [
    (["--reload-engine", "fast"], "Error: Invalid reload_engine: 'fast'"),
    (["-w", "-2"], "Error: Value must be positive: -2"),
    (["--chdir", "/no/such/dir"], "Error: can't chdir to '/no/such/dir'"),
    (["-k", "gevent_pywsgi2"], "Error: class uri 'gevent_pywsgi2' invalid or not found"),
    (["-k", "tornado"], "Error: worker class 'tornado' cannot apply to gunicorn-c"),
    (["-k", "eventlet"], "Error: worker class 'eventlet' is not in gunicorn-c"),
    (["-k", "myapp.workers.Custom"],
     "Error: worker class 'myapp.workers.Custom': gunicorn-c cannot load Python worker classes"),
    (["--log-level", "loud"], "Error: Invalid log level: 'loud'"),
], ids=["choice", "negative", "chdir", "unknown-worker-class", "tornado", "eventlet", "dotted",
        "log-level"])
def test_bad_command_line_value(args, error):
    out = cli("--check-config", *args, "hello")
    assert out.returncode == 1
    assert out.stderr.startswith("\n" + error), out.stderr


def test_bad_int_and_bool_on_the_command_line_are_usage_errors():
    out = cli("--check-config", "-t", "soon", "hello")
    assert out.returncode == 2
    assert "argument -t/--timeout: invalid int value: 'soon'" in out.stderr
    out = cli("--check-config", "--daemon=yes", "hello")
    assert out.returncode == 2
    assert "argument -D/--daemon: ignored explicit argument 'yes'" in out.stderr


def test_config_file_value_forms(tmp_path):
    conf = write(tmp_path / "c.py", """\
workers = "0x4"
timeout = True
daemon = "TRUE"
bind = "unix:/tmp/one.sock"
forwarded_allow_ips = "10.0.0.1, 10.0.0.2"
umask = 0o22
user = 0
raw_env = ("A=1", "B=2")
secure_scheme_headers = {"X-SCHEME": "https"}
pythonpath = "  /srv/a  "
proxy_allow_ips = ["10.0.0.3", "10.0.0.4"]
reload_extra_files = ["/no/such/file.html"]
statsd_host = "localhost:8125"
""")
    values = printed(cli("--print-config", "-c", str(conf), "hello"))
    assert values["workers"] == "4"
    assert values["timeout"] == "1"
    assert values["daemon"] == "True"
    assert values["bind"] == "['unix:/tmp/one.sock']"
    assert values["forwarded_allow_ips"] == "['10.0.0.1', '10.0.0.2']"
    assert values["umask"] == "18"
    assert values["user"] == "0"
    assert values["raw_env"] == "['A=1', 'B=2']"
    assert values["secure_scheme_headers"] == "{'X-SCHEME': 'https'}"
    assert values["pythonpath"] == "/srv/a"
    # More lenient than Gunicorn (docs/configuration.md): a list where Gunicorn wants a
    # comma-separated string, files that do not exist yet, statsd_host as given.
    assert values["proxy_allow_ips"] == "['10.0.0.3', '10.0.0.4']"
    assert values["reload_extra_files"] == "['/no/such/file.html']"
    assert values["statsd_host"] == "localhost:8125"


def test_umask_accepts_octal_and_hex_on_the_command_line():
    for form in ("0022", "0o22", "0x12", "18"):
        assert printed(cli("--print-config", "-m", form, "hello"))["umask"] == "18"


def test_unknown_config_names_are_reported_not_fatal(tmp_path):
    conf = write(tmp_path / "c.py", """\
import os
import multiprocessing
from os.path import join
from collections import OrderedDict

BASE_DIR = os.getcwd()
_cores = multiprocessing.cpu_count()
wrokers = 3
log_colour = "blue"


def helper():
    return 1


def when_redy(server):
    pass
""")
    out = cli("--check-config", "-c", str(conf), "hello")
    assert out.returncode == 0, out.stderr
    warnings = re.findall(r"\[WARNING\] (.*)", out.stderr)
    assert warnings == [
        "Config file: 'wrokers' is not a setting and is ignored (did you mean 'workers'?)",
        "Config file: 'log_colour' is not a setting and is ignored",
        "Config file: 'when_redy' is not a setting and is ignored (did you mean 'when_ready'?)",
    ]


def test_settings_that_cannot_apply_are_refused(tmp_path):
    conf = write(tmp_path / "c.py", "dirty_workers = 2\n")
    out = cli("--check-config", "-c", str(conf), "hello")
    assert out.returncode == 1
    assert "Error: setting 'dirty_workers' cannot apply: gunicorn-c has no dirty arbiters." \
        in out.stderr
    out = cli("--check-config", "--http-protocols", "h2,h1", "hello")
    assert out.returncode == 0, out.stderr
    out = cli("--check-config", "--http-protocols", "h2,h4", "hello")
    assert out.returncode == 1
    assert "Invalid protocol 'h4'. Valid protocols: h1, h2, h3" in out.stderr
    out = cli("--check-config", "--http-protocols", "h2,H2", "hello")
    assert out.returncode == 1
    assert "Duplicate protocols specified" in out.stderr
    out = cli("--check-config", "--http2-max-frame-size", "1000", "hello")
    assert out.returncode == 1
    assert "http2_max_frame_size must be between 16384 and 16777215" in out.stderr
    out = cli("--check-config", "--asgi-lifespan", "maybe", "hello")
    assert out.returncode == 1
    assert "Invalid ASGI lifespan: maybe" in out.stderr
    # Their defaults are harmless, wherever they come from.
    conf = write(tmp_path / "d.py", "http_protocols = 'h1'\ndirty_apps = []\n")
    assert cli("--check-config", "-c", str(conf), "hello").returncode == 0


def test_settings_not_yet_active_warn_only_when_set():
    out = cli("--check-config", "hello")
    assert out.returncode == 0
    assert "not yet active" not in out.stderr
    # The last Debugging and Logging settings that were pending are active now.
    out = cli("--check-config", "--reload-engine", "inotify", "--spew", "-R", "--threads", "4",
              "hello")
    assert out.returncode == 0
    assert "not yet active" not in out.stderr


# --- hooks -------------------------------------------------------------------------------


def test_hooks_are_stored_and_printed(tmp_path):
    conf = write(tmp_path / "c.py", """\
import os.path

def when_ready(server):
    pass

def post_request(worker, req):
    pass

pre_fork = "os.path.samefile"
""")
    values = printed(cli("--print-config", "-c", str(conf), "hello"))
    assert values["when_ready"] == "<when_ready()>"
    assert values["post_request"] == "<post_request()>"
    assert values["pre_fork"] == "<samefile()>"
    assert values["on_starting"] == "None"


@pytest.mark.parametrize("text, value, error", [
    ("def when_ready():\n    pass\n", "<function when_ready at", "Value must have an arity of: 1"),
    ("def post_request(worker):\n    pass\n", "<function post_request at",
     "Value must have an arity of: 4"),
    ("on_exit = 3\n", "3", "Value is not callable: 3"),
    ("on_exit = 'nodots'\n", "nodots",
     "Value 'nodots' is not import string. Format: module[.submodules...].object"),
    ("on_exit = 'os.no_such_function'\n", "os.no_such_function",
     "Can not load 'no_such_function' from 'os'"),
], ids=["arity", "post-request-arity", "not-callable", "not-import-string", "missing"])
def test_bad_hooks(tmp_path, text, value, error):
    conf = write(tmp_path / "c.py", text)
    out = cli("--check-config", "-c", str(conf), "hello")
    assert out.returncode == 1
    assert out.stderr.startswith("Invalid value for ") and value in out.stderr
    assert out.stderr.endswith(f"\nError: {error}\n")


def test_hooks_from_the_config_file_are_called(start_server, tmp_path):
    calls = tmp_path / "calls.txt"
    conf = write(tmp_path / "hooks.py", f"""\
def _note(what):
    with open({str(calls)!r}, "a") as f:
        f.write(what + "\\n")

def on_starting(server):
    _note("on_starting")

def when_ready(server):
    _note("when_ready")

def post_worker_init(worker):
    _note("post_worker_init")

def pre_request(worker, req):
    _note("pre_request " + req.path)

def post_request(worker, req, environ):
    _note("post_request " + environ["PATH_INFO"])
""")
    srv = start_server("hello", "-c", str(conf))
    assert requests.get(url(srv, "/hooked"), timeout=5).status_code == 200
    assert srv.stop() == 0
    lines = calls.read_text().splitlines()
    assert lines[:2] == ["on_starting", "when_ready"]
    assert "post_worker_init" in lines
    assert "pre_request /hooked" in lines
    assert "post_request /hooked" in lines


# --- --print-config and --check-config ---------------------------------------------------


def test_print_config_lists_every_setting_sorted_and_aligned():
    out = cli("--print-config", "-w", "3", "-b", "unix:/tmp/x.sock", "-e", "A=1", "hello")
    assert out.returncode == 0
    lines = out.stdout.splitlines()
    assert len(lines) == SETTINGS_COUNT
    names = [line.split(" ")[0] for line in lines]
    assert names == sorted(names)
    width = max(len(n) for n in names)
    assert all(line[width:width + 3] == " = " for line in lines)
    values = printed(out)
    assert values["workers"] == "3"
    assert values["bind"] == "['unix:/tmp/x.sock']"
    assert values["raw_env"] == "['A=1']"
    assert values["print_config"] == "True"
    assert values["default_proc_name"] == "hello"
    assert values["chdir"] == str(APPS_DIR)
    assert values["user"] == str(os.geteuid())
    assert values["sendfile"] == "None"


@pytest.mark.skipif(GUNICORN is None, reason="Debian's gunicorn is not installed")
def test_print_config_matches_gunicorn():
    """Names and values agree with Debian's Gunicorn 20.1 for the same command line
    (settings that changed after 20.1 excepted)."""
    args = ["--print-config", "-w", "3", "-b", "unix:/tmp/x.sock", "-b", "127.0.0.1:9",
            "-e", "A=1", "-m", "0022", "-t", "5", "--keep-alive", "4", "-n", "web",
            "--max-requests", "100", "--preload", "--no-sendfile", "hello"]
    ours = printed(cli(*args))
    theirs = printed(subprocess.run([GUNICORN, *args], capture_output=True, text=True,
                                    cwd=APPS_DIR, env=server_env(), timeout=30))
    # tolerate_dangerous_framing is a Debian patch of 20.1 (Gunicorn had it only in 22.0).
    assert set(theirs) - {"tolerate_dangerous_framing"} <= set(ours)
    changed = {  # since 20.1: defaults changed, or hooks print their default's name
        "forwarded_allow_ips", "proxy_allow_ips", "proxy_protocol", "config"}
    for name, value in theirs.items():
        if name in changed or name not in ours or value.startswith("<"):
            continue
        assert ours[name] == value, name


def test_check_config_exit_codes():
    out = cli("--check-config", "hello")
    assert (out.returncode, out.stdout, out.stderr) == (0, "", "")
    out = cli("--check-config", "hello:nope")
    assert out.returncode == 1
    assert out.stderr.startswith("\nError while loading the application:\n\n")
    assert "AppImportError: Failed to find attribute 'nope' in 'hello'." in out.stderr
    out = cli("--check-config", "no_such_module_here")
    assert out.returncode == 1
    assert "ModuleNotFoundError: No module named 'no_such_module_here'" in out.stderr
    out = cli("--print-config", "hello:nope")
    assert out.returncode == 1
    assert len(out.stdout.splitlines()) == SETTINGS_COUNT
    # Neither starts a server.
    assert "Listening at" not in out.stderr


def test_check_config_sees_env_chdir_and_pythonpath(tmp_path):
    out = cli("--check-config", "--chdir", str(APPS_DIR), "hello", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    out = cli("--check-config", "--pythonpath", f"{tmp_path},{APPS_DIR}", "hello:create_app()",
              cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    write(tmp_path / "needs_env.py", "import os\n"
                                     "assert os.environ['GC_TEST_NEEDED'] == 'yes'\n"
                                     "application = lambda e, s: []\n")
    assert cli("--check-config", "needs_env", cwd=tmp_path).returncode == 1
    assert cli("--check-config", "-e", "GC_TEST_NEEDED=yes", "needs_env",
               cwd=tmp_path).returncode == 0


def test_no_application():
    out = cli("--check-config")
    assert out.returncode == 1
    assert out.stderr.endswith("\nError: No application module specified.\n")


def test_bad_env_entry():
    out = cli("-e", "NO_EQUALS_SIGN", "--check-config", "hello")
    assert out.returncode == 1
    assert "Error: environment setting 'NO_EQUALS_SIGN' invalid" in out.stderr


# --- naming the application -------------------------------------------------------------


@pytest.mark.parametrize("target", ["hello", "hello:application", "hello:app",
                                    "hello:create_app()", "factories:takes_nothing()"])
def test_app_forms_check(target):
    out = cli("--check-config", target)
    assert out.returncode == 0, out.stderr


def test_factory_with_literal_arguments(start_server):
    srv = start_server("factories:create_app('bonjour', name=\"monde\", n=3, "
                       "opts={'a': [1, 2]}, flag=True)")
    assert requests.get(url(srv), timeout=5).json() == {
        "greeting": "bonjour", "name": "monde",
        "extra": {"n": 3, "opts": {"a": [1, 2]}, "flag": True}}


def test_wsgi_app_setting(start_server, tmp_path):
    conf = write(tmp_path / "c.py", "wsgi_app = \"factories:create_app(name='from-config')\"\n")
    srv = start_server(None, "-c", str(conf))
    assert requests.get(url(srv), timeout=5).json()["name"] == "from-config"
    # APP_MODULE on the command line wins over wsgi_app.
    values = printed(cli("--print-config", "-c", str(conf), "hello"))
    assert values["wsgi_app"] == "factories:create_app(name='from-config')"
    # wsgi_app does not name the processes (default_proc_name stays 'gunicorn').
    values = printed(cli("--print-config", "-c", str(conf)))
    assert values["default_proc_name"] == "gunicorn"


APP_LOAD_ERRORS = [
    ("hello:nope", "Failed to find attribute 'nope' in 'hello'."),
    ("hello:app.name", "Failed to parse 'app.name' as an attribute name or function call."),
    ("hello:1 +", "Failed to parse '1 +' as an attribute name or function call."),
    ("hello:a[0]", "Failed to parse 'a[0]' as an attribute name or function call."),
    ("hello:app.create()", "Function reference must be a simple name: 'app.create()'"),
    ("factories:create_app(x)", "Failed to parse arguments as literal values: 'create_app(x)'"),
    ("factories:create_app(*[1])",
     "Failed to parse arguments as literal values: 'create_app(*[1])'"),
    # CPython's own message; 3.8's names the function.
    ("factories:create_app(**{'a': 1})", "TypeError: keywords must be strings"
     if (embedded_python().version or (3, 9)) >= (3, 9)
     else "TypeError: create_app() keywords must be strings"),
    ("factories:takes_nothing(1)",
     "TypeError: takes_nothing() takes 0 positional arguments but 1 was given"),
    ("factories:returns_none()", "Failed to find application object: 'returns_none()'"),
    ("hello:nothing", "Failed to find application object: 'nothing'"),
    ("hello:not_callable", "Application object must be callable."),
    ("factories:instance", "Application object must be callable."),
]


@pytest.mark.parametrize("target, message", APP_LOAD_ERRORS,
                         ids=[t for t, _ in APP_LOAD_ERRORS])
def test_app_load_errors_in_check_config(target, message):
    out = cli("--check-config", target)
    assert out.returncode == 1
    assert f"AppImportError: {message}\n" in out.stderr


@pytest.mark.parametrize("target, message", APP_LOAD_ERRORS[::3],
                         ids=[t for t, _ in APP_LOAD_ERRORS[::3]])
def test_app_load_errors_stop_the_server_with_4(start_server, target, message):
    srv = start_server(target, wait=False)
    assert srv.wait(15) == 4
    log = srv.log_text()
    # The worker prints the bare message, as Gunicorn's does.
    assert message in srv.lines
    assert "Reason: App failed to load." in log


def test_py_file_name_gets_a_hint(start_server):
    out = cli("--check-config", "hello.py")
    assert out.returncode == 1
    assert "ImportError: Failed to find application, did you mean 'hello:application'?" \
        in out.stderr
    out = cli("--check-config", "hello.py:app")
    assert "did you mean 'hello:app'?" in out.stderr
    srv = start_server("hello.py", wait=False)
    assert srv.wait(15) == 3
    assert "did you mean 'hello:application'?" in srv.log_text()
    assert "Reason: Worker failed to boot." in srv.log_text()


def test_error_inside_a_factory_is_a_boot_error(start_server):
    out = cli("--check-config", "factories:raises_type_error()")
    assert out.returncode == 1
    assert "in raises_type_error" in out.stderr
    assert "TypeError: object of type 'int' has no len()" in out.stderr
    srv = start_server("factories:raises_type_error()", wait=False)
    assert srv.wait(15) == 3
    assert "Exception in worker process" in srv.log_text()


def test_env_is_set_before_the_app_is_imported(start_server):
    srv = start_server("envcheck", "-e", "GC_TEST_X=1", "--env=GC_TEST_Y=a=b")
    got = requests.get(url(srv, "/?GC_TEST_X&GC_TEST_Y"), timeout=5).json()
    assert got["now"] == {"GC_TEST_X": "1", "GC_TEST_Y": "a=b"}
    assert got["at_import"] == {"GC_TEST_X": "1", "GC_TEST_Y": "a=b"}


def test_pythonpath_entries_go_first(tmp_path):
    # With a module of the same name in two directories, the last entry of
    # --pythonpath wins: Gunicorn inserts each entry at sys.path[0] in turn.
    for name in ("one", "two"):
        (tmp_path / name).mkdir()
        write(tmp_path / name / "which.py", f"NAME = {name!r}\n")
    write(tmp_path / "probe.py", "import which\n"
                                 "assert which.NAME == 'two', which.NAME\n"
                                 "application = lambda e, s: []\n")
    out = cli("--check-config", "--pythonpath", "one,two", "probe", cwd=tmp_path)
    assert out.returncode == 0, out.stderr


# --- the command line ---------------------------------------------------------------------


def test_help_lists_every_flag():
    out = cli("-h")
    assert out.returncode == 0
    for flag in ("-c CONFIG, --config CONFIG", "--error-logfile FILE, --log-file FILE",
                 "--paste STRING, --paster STRING", "-m INT, --umask INT", "--no-sendfile",
                 "--proxy-protocol [MODE]", "--check-config", "--print-config",
                 "--dirty-workers INT", "--no-control-socket"):
        assert flag in out.stdout, flag
    assert "--print-settings-markdown" not in out.stdout


def test_abbreviated_options():
    values = printed(cli("--print-config", "--bin", "127.0.0.1:7", "--max-requests-j", "3",
                         "hello"))
    assert values["bind"] == "['127.0.0.1:7']"
    assert values["max_requests_jitter"] == "3"
    out = cli("--print-config", "--log", "x", "hello")
    assert out.returncode == 2
    assert "ambiguous option: --log could match" in out.stderr


# --- documentation ------------------------------------------------------------------------


def test_settings_doc_is_up_to_date():
    out = cli("--print-settings-markdown")
    assert out.returncode == 0
    committed = (REPO_ROOT / "docs" / "settings.md").read_text()
    assert out.stdout == committed, (
        "docs/settings.md is stale: run tools/gen-settings-doc.sh and commit the result")
