"""The error log's destinations: --error-logfile with --capture-output, USR1 reopening
moved files, syslog (UDP and unix datagrams, Gunicorn's line format and priorities),
Python logging configurations (dict, JSON, INI), --logger-class, and client
disconnects kept out of the error level.

Servers here often log to a file, not stderr: they are started with wait=False and
waited for through the file. Syslog is received on a local socket made by the test.
"""

import json
import os
import re
import signal
import socket
import struct

import pytest

from conftest import BOOTING_RE, LISTENING_RE, BIN, APPS_DIR, server_env
from helpers import DatagramReceiver, get, read_text, wait_gone, wait_in_file, wait_until

APP = "logging_app:app"
LINE_RE = r"\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d{4}\] \[\d+\] \[%s\] "


def ready_from(srv, path, workers=1):
    """Fills in srv's address from a log file (the server logs there, not to stderr)."""
    m = wait_in_file(path, LISTENING_RE, srv=srv)
    srv.url = m.group(1)
    srv.host, _, port = srv.url[len("http://"):].rpartition(":")
    srv.port = int(port)
    wait_in_file(path, BOOTING_RE, count=workers)
    return srv


def start_to_file(start_server, path, *args, **kwargs):
    srv = start_server(APP, "--error-logfile", str(path), *args, wait=False, **kwargs)
    return ready_from(srv, path)


# --- capture-output and USR1 ---------------------------------------------------------


def test_capture_output_sends_print_and_stderr_to_the_error_log(start_server, tmp_path):
    log = tmp_path / "error.log"
    srv = start_to_file(start_server, log, "--capture-output")
    assert get(srv, "/print").status_code == 200
    wait_in_file(log, r"app-fd1-write")
    text = read_text(log)
    for line in ("app-print-stdout", "app-write-stderr", "app-fd1-write"):
        assert line in text
    assert re.search(LINE_RE % "INFO" + "Starting gunicorn-c", text)
    # Nothing reached the pipes the server was started with.
    assert "app-" not in srv.log_text() and "app-" not in srv.stdout_text()


def test_without_capture_output_prints_stay_on_stdout(start_server, tmp_path):
    log = tmp_path / "error.log"
    srv = start_to_file(start_server, log)
    assert get(srv, "/print").status_code == 200
    wait_until(lambda: "app-print-stdout" in srv.stdout_text(), what="the print on stdout")
    assert "app-" not in read_text(log)


def reopened_by(srv, path, new, old, line, tries=50):
    """Sends requests for `path` until the worker has reopened its log: each writes
    `line` to the file `new` or to the file `old` it was moved to. Waits for each
    request's line (in one file or the other) before looking where it went."""
    def count():
        return read_text(new).count(line) + read_text(old).count(line)

    before = count()
    for n in range(1, tries + 1):
        assert get(srv, path).status_code == 200
        wait_until(lambda: count() >= before + n, what=f"the line of request {n} for {path}")
        if line in read_text(new):
            return
    raise AssertionError(f"{tries} requests and the worker has not reopened {new}")


def test_usr1_reopens_moved_error_access_and_captured_logs(start_server, tmp_path):
    log, access = tmp_path / "error.log", tmp_path / "access.log"
    srv = start_to_file(start_server, log, "--capture-output", "--access-logfile", str(access))
    assert get(srv, "/").status_code == 200
    wait_in_file(access, r'"GET / HTTP/1.1" 200')
    os.rename(log, tmp_path / "error.log.1")
    os.rename(access, tmp_path / "access.log.1")
    srv.send_signal(signal.SIGUSR1)
    # The master reopens at once; the worker when its loop gets the signal, which it
    # logs nowhere: each request's access line lands in the old file or the new one,
    # so requests are sent until one lands in the new file.
    reopened_by(srv, "/print", access, tmp_path / "access.log.1", "GET /print")
    assert "app-print-stdout" in read_text(log)
    assert get(srv, "/raise").status_code == 500
    wait_in_file(log, LINE_RE % "ERROR" + r"Error handling request GET /raise\nTraceback")
    assert "RuntimeError: app-raised-this" in read_text(log)
    assert srv.stop() == 0
    new = read_text(log)
    assert re.search(LINE_RE % "INFO" + r"Shutting down: Master", new), new  # the master
    assert "app-fd1-write" in new and "app-write-stderr" in new  # captured, in the worker
    assert "GET /raise" in read_text(access)
    old = read_text(tmp_path / "error.log.1")
    assert "Starting gunicorn-c" in old and "Shutting down" not in old
    assert "GET /raise" not in read_text(tmp_path / "access.log.1")


def test_capture_output_in_daemon_mode(tmp_path):
    import subprocess
    log, pidfile = tmp_path / "error.log", tmp_path / "app.pid"
    rc = subprocess.call([str(BIN), "-b", "127.0.0.1:0", "--chdir", str(APPS_DIR), "--daemon",
                          "--pid", str(pidfile), "--error-logfile", str(log),
                          "--capture-output", APP], env=server_env(), cwd="/", timeout=10)
    assert rc == 0

    class Srv:
        pass

    srv = ready_from(Srv(), log)
    pid = int(wait_in_file(pidfile, r"\d+").group(0))
    try:
        assert get(srv, "/print").status_code == 200
        wait_in_file(log, "app-fd1-write")
        assert "app-print-stdout" in read_text(log) and "app-write-stderr" in read_text(log)
    finally:
        os.kill(pid, signal.SIGTERM)
    wait_in_file(log, "Shutting down: Master")


# --- syslog ---------------------------------------------------------------------------


@pytest.fixture
def receiver():
    """A syslog daemon on a local UDP socket: keeps every datagram (as bytes)."""
    r = DatagramReceiver()
    yield r
    r.close()


def test_syslog_udp_error_and_access_lines(start_server, receiver):
    srv = start_server(APP, "--log-syslog", "--log-syslog-to", receiver.url,
                       "--log-syslog-prefix", "myprefix", "--log-syslog-facility", "local3")
    wpid = srv.worker_pids()[0]
    # local3 is 19: info is <19*8+6>, warning <+4>, error <+3>; a NUL ends each message.
    pkt = receiver.wait(rb"Starting gunicorn-c")
    assert pkt == b"<158>gunicorn.myprefix.error: [%d] Starting gunicorn-c 0.1.0\x00" % srv.pid
    assert get(srv, "/").status_code == 200
    pkt = receiver.wait(rb"\.access: ")
    assert re.fullmatch(rb'<158>gunicorn\.myprefix\.access: \[%d\] 127\.0\.0\.1 - - \[.*\] '
                        rb'"GET / HTTP/1\.1" 200 3 "-" "python-requests/.*"\x00' % wpid, pkt), pkt
    get(srv, "/glog")
    pkt = receiver.wait(rb"app-logged-warning")
    assert pkt == b"<156>gunicorn.myprefix.error: [%d] app-logged-warning arg\x00" % wpid
    assert get(srv, "/raise").status_code == 500
    pkt = receiver.wait(rb"Error handling request")
    assert pkt.startswith(b"<155>gunicorn.myprefix.error: [%d] Error handling request GET "
                          b"/raise\nTraceback (most recent call last):\n" % wpid), pkt
    assert pkt.endswith(b"RuntimeError: app-raised-this\x00")
    # The error log keeps its own copy (Gunicorn keeps its file handler too); access
    # lines were asked of syslog only.
    srv.wait_for_log(r"\[ERROR\] Error handling request GET /raise")
    assert "GET / HTTP/1.1" not in srv.stdout_text()


def test_syslog_default_prefix_is_the_process_name_and_access_can_stay_out(
        start_server, receiver):
    srv = start_server(APP, "--log-syslog", "--log-syslog-to", receiver.url, "-n", "my:name",
                       "--disable-redirect-access-to-syslog", "--access-logfile", "-")
    receiver.wait(rb"^<14>gunicorn\.my\.name\.error: \[\d+\] Listening at")  # user: 1
    assert get(srv, "/").status_code == 200
    get(srv, "/glog")
    receiver.wait(rb"app-logged-warning")
    # The worker sent its access line (had it gone to syslog) before /glog's warning.
    assert not [p for p in receiver.packets if b".access:" in p]
    wait_until(lambda: '"GET / HTTP/1.1" 200' in srv.stdout_text(), what="the access line")


def test_syslog_unix_datagram_socket(start_server, tmp_path):
    r = DatagramReceiver(path=str(tmp_path / "log.sock"))
    try:
        srv = start_server(APP, "--log-syslog", "--log-syslog-to", r.url,
                           "--log-syslog-facility", "daemon")
        assert get(srv, "/").status_code == 200
        # daemon is 3: info is <30>; the prefix is the app's name with ':' as '.'.
        r.wait(rb"^<30>gunicorn\.logging_app\.app\.error: \[\d+\] Booting worker")
        r.wait(rb"^<30>gunicorn\.logging_app\.app\.access: .*\"GET / HTTP/1\.1\" 200")
    finally:
        r.close()


@pytest.mark.parametrize("args, message", [
    (["--log-syslog-facility", "nosuch"], "unknown facility name"),
    (["--log-syslog-to", "ftp://example"], "invalid syslog address"),
    (["--log-syslog-to", "udp://127.0.0.1:notaport"], "not a valid port number"),
])
def test_syslog_bad_settings_stop_the_start(start_server, args, message):
    srv = start_server(APP, "--log-syslog", *args, wait=False)
    assert srv.wait() == 1
    assert message in srv.log_text()


# --- Python logging configurations ---------------------------------------------------


def check_python_route(srv, path, tag):
    """The server's lines and the access lines in `path`, in the configuration's format."""
    wait_in_file(path, rf"{tag}\|INFO\|gunicorn\.error\|Booting worker with pid: \d+")
    assert get(srv, "/").status_code == 200
    wait_in_file(path, rf'{tag}\|INFO\|gunicorn\.access\|127\.0\.0\.1 - - .*"GET / HTTP/1\.1" 200')
    assert get(srv, "/raise").status_code == 500
    wait_in_file(path, rf"{tag}\|ERROR\|gunicorn\.error\|Error handling request GET /raise\n"
                       r"Traceback")
    get(srv, "/glog")
    wait_in_file(path, rf"{tag}\|WARNING\|gunicorn\.error\|app-logged-warning arg")
    # stderr has no line in the C format: everything went through Python.
    assert "Booting worker" not in srv.log_text()


def test_logconfig_dict(start_server, tmp_path):
    out = tmp_path / "dict.log"
    conf = tmp_path / "conf.py"
    conf.write_text(f"""logconfig_dict = {{
    "formatters": {{"custom": {{"format": "DICT|%(levelname)s|%(name)s|%(message)s"}}}},
    "handlers": {{"file": {{"class": "logging.FileHandler", "filename": {str(out)!r},
                           "formatter": "custom"}}}},
    "root": {{"level": "WARNING", "handlers": ["file"]}},
    "loggers": {{
        "gunicorn.error": {{"level": "INFO", "handlers": ["file"], "propagate": False}},
        "gunicorn.access": {{"level": "INFO", "handlers": ["file"], "propagate": False}},
    }},
}}
""")
    srv = start_server(APP, "-c", str(conf), wait=False)
    ready_from(srv, out)
    check_python_route(srv, out, "DICT")
    # USR1 reopens the handler's file in the master and the worker.
    os.rename(out, tmp_path / "dict.log.1")
    srv.send_signal(signal.SIGUSR1)
    reopened_by(srv, "/", out, tmp_path / "dict.log.1", "gunicorn.access")
    assert srv.stop() == 0
    assert "DICT|INFO|gunicorn.error|Shutting down: Master" in read_text(out)
    assert "gunicorn.access" in read_text(out)


def test_logconfig_json(start_server, tmp_path):
    out = tmp_path / "json.log"
    conf = tmp_path / "log.json"
    conf.write_text(json.dumps({
        "version": 1,
        "formatters": {"j": {"format": "JSON|%(levelname)s|%(name)s|%(message)s"}},
        "handlers": {"f": {"class": "logging.FileHandler", "filename": str(out),
                           "formatter": "j"}},
        "root": {"handlers": ["f"], "level": "WARNING"},
        "loggers": {"gunicorn.error": {"handlers": ["f"], "level": "INFO"},
                    "gunicorn.access": {"handlers": ["f"], "level": "INFO"}},
    }))
    srv = start_server(APP, "--log-config-json", str(conf), wait=False)
    ready_from(srv, out)
    check_python_route(srv, out, "JSON")


def test_logconfig_ini(start_server, tmp_path):
    out = tmp_path / "ini.log"
    conf = tmp_path / "log.ini"
    conf.write_text(f"""[loggers]
keys=root, gunicorn.error, gunicorn.access

[handlers]
keys=file

[formatters]
keys=ini

[logger_root]
level=INFO
handlers=file

[logger_gunicorn.error]
level=INFO
handlers=file
propagate=0
qualname=gunicorn.error

[logger_gunicorn.access]
level=INFO
handlers=file
propagate=0
qualname=gunicorn.access

[handler_file]
class=FileHandler
formatter=ini
args=({str(out)!r}, 'a')

[formatter_ini]
format=INI|%(levelname)s|%(name)s|%(message)s
""")
    srv = start_server(APP, "--log-config", str(conf), wait=False)
    ready_from(srv, out)
    check_python_route(srv, out, "INI")


def test_logconfig_missing_file_stops_the_start(start_server, tmp_path):
    srv = start_server(APP, "--log-config", str(tmp_path / "nope.ini"), wait=False)
    assert srv.wait() == 1
    assert "log config" in srv.log_text() and "not found" in srv.log_text()


def test_logger_class_gets_every_line(start_server, tmp_path):
    rec = tmp_path / "calls.txt"
    srv = start_server(APP, "--logger-class", "recording_logger.RecordingLogger",
                       "--log-level", "debug", wait=False,
                       env={"RECORDING_LOGGER_FILE": str(rec),
                            "PYTHONPATH": str(APPS_DIR)})
    m = wait_in_file(rec, r"info\|Listening at: (\S+) \((\d+)\)")
    srv.host, _, port = m.group(1)[len("http://"):].rpartition(":")
    srv.port = int(port)
    wait_in_file(rec, r"info\|Booting worker with pid")
    assert get(srv, "/raise").status_code == 500
    wait_in_file(rec, r"error\|Error handling request GET /raise\\nTraceback")
    srv.send_signal(signal.SIGUSR1)
    wait_in_file(rec, r"reopen_files", count=2)  # the master and the worker
    text = read_text(rec)
    assert re.search(r"\|init loglevel=debug errorlog=- proc_name=logging_app:app "
                     r"user_is_int=True\n", text), text
    assert "|close_on_exec\n" in text
    assert re.search(r"debug\|GET /raise", text)
    assert "Booting worker" not in srv.log_text()


def test_default_logger_class_named_explicitly_keeps_the_c_writers(start_server):
    srv = start_server(APP, "--logger-class", "gunicorn.glogging.Logger")
    assert re.search(LINE_RE % "INFO" + "Booting worker", srv.log_text())


# --- client disconnects ---------------------------------------------------------------


@pytest.mark.parametrize("level", ["debug", "info"])
def test_client_disconnect_is_not_an_error(start_server, level):
    srv = start_server(APP, "--log-level", level)
    for linger in (True, False):
        s = srv.connect()
        s.sendall(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
        s.recv(65536)
        if linger:  # an RST rather than a FIN
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()
        if level == "debug":
            srv.wait_for_log(r"\[DEBUG\] Ignored client disconnection", count=2 if not linger
                             else 1)
    assert get(srv, "/").status_code == 200  # the worker is fine
    # A line about the disconnections would be in once the worker has exited (and
    # stderr closed): stopping the server is the event that ends the log.
    assert srv.stop() == 0
    text = srv.log_text()
    assert "[ERROR]" not in text and "Traceback" not in text, text


# --- --enable-stdio-inheritance ------------------------------------------------------------


@pytest.mark.parametrize("inherit", [True, False], ids=["-R", "without-R"])
def test_daemon_stdio_inheritance(tmp_path, inherit):
    """A daemon's stdout and stderr go to /dev/null, unless -R keeps them where they
    were redirected (a file here, not a terminal)."""
    import subprocess
    log, pidfile, out = tmp_path / "error.log", tmp_path / "app.pid", tmp_path / "out.txt"
    args = [str(BIN), "-b", "127.0.0.1:0", "--chdir", str(APPS_DIR), "--daemon",
            "--pid", str(pidfile), "--error-logfile", str(log), APP]
    if inherit:
        args.insert(1, "-R")
    with open(out, "wb") as f:
        rc = subprocess.call(args, env=server_env(), cwd="/", stdout=f, stderr=f,
                             stdin=subprocess.DEVNULL, timeout=10)
    assert rc == 0

    class Srv:
        pass

    srv = ready_from(Srv(), log)
    pid = int(wait_in_file(pidfile, r"\d+").group(0))
    try:
        # The app prints (flushed), writes to sys.stderr and to fd 1 before it answers.
        assert get(srv, "/print").status_code == 200
    finally:
        os.kill(pid, signal.SIGTERM)
    wait_in_file(log, "Shutting down: Master")
    wait_gone(pid)
    text = read_text(out)
    for line in ("app-print-stdout", "app-write-stderr", "app-fd1-write"):
        assert (line in text) == inherit, text
