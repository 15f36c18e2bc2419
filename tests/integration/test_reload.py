"""--reload: a worker restarts when the application's code (or an extra file) changes;
--reload-engine: noticed by inotify, or by polling the files each second.

Split out of test_signals.py (test names unchanged).
"""

import os
import re
import subprocess

import pytest

from conftest import BIN, BOOTING_RE, server_env
from helpers import get


# --- --reload ------------------------------------------------------------------------------


RELOAD_APP = '''
VERSION = "{version}"


def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [VERSION.encode()]
'''


@pytest.mark.parametrize("how", ["in-place", "replace"])
def test_reload_restarts_the_worker_on_a_code_change(start_server, tmp_path, how):
    module = tmp_path / "reload_app.py"
    module.write_text(RELOAD_APP.format(version="one"))
    srv = start_server("reload_app", "--reload", app_dir=tmp_path)
    (old,) = srv.worker_pids()
    assert get(srv.port).text == "one"
    mark = srv.log_mark()
    if how == "in-place":
        module.write_text(RELOAD_APP.format(version="two"))
    else:  # as editors save: write a new file, rename it over the old one
        tmp = tmp_path / "reload_app.py.swp"
        tmp.write_text(RELOAD_APP.format(version="two"))
        os.replace(tmp, module)
    srv.wait_for_log(r"Worker reloading: .*reload_app\.py modified", since=mark)
    new = int(srv.wait_for_log(BOOTING_RE, since=mark).group(1))
    assert new != old
    assert get(srv.port).text == "two"


def test_reload_extra_file(start_server, tmp_path):
    module = tmp_path / "reload_app.py"
    module.write_text(RELOAD_APP.format(version="one"))
    extra = tmp_path / "settings.toml"
    extra.write_text("a = 1\n")
    srv = start_server("reload_app", "--reload", "--reload-extra-file", str(extra),
                       app_dir=tmp_path)
    (old,) = srv.worker_pids()
    assert get(srv.port).text == "one"  # booted: the files are watched from now on
    mark = srv.log_mark()
    extra.write_text("a = 2\n")
    srv.wait_for_log(rf"Worker reloading: {re.escape(str(extra))} modified", since=mark)
    new = int(srv.wait_for_log(BOOTING_RE, since=mark).group(1))
    assert new != old
    assert get(srv.port).text == "one"


def test_without_reload_code_changes_are_ignored(start_server, tmp_path):
    module = tmp_path / "reload_app.py"
    module.write_text(RELOAD_APP.format(version="one"))
    srv = start_server("reload_app", "--log-level", "debug", app_dir=tmp_path)
    (old,) = srv.worker_pids()
    served = rf"\[{old}\] \[DEBUG\] GET /"  # each request, as it reaches the app
    assert get(srv.port).text == "one"
    srv.wait_for_log(served)
    # A worker with --reload says (at debug level) that it watches files before it
    # serves anything: this one does not.
    assert "Watching" not in srv.log_text()
    module.write_text(RELOAD_APP.format(version="two"))
    # Had a watcher been there, the worker would have seen the change (it is written
    # before the next connection is made) by the time its loop comes round for the
    # request after next, and would have said so before that request's line.
    assert get(srv.port).text == "one"
    assert get(srv.port).text == "one"
    srv.wait_for_log(served, count=3)
    assert "Worker reloading" not in srv.log_text()
    assert srv.live_worker_pids() == [old]


# --- --reload-engine -----------------------------------------------------------------------

WATCHING_RE = r"Watching (\d+) files for changes \((\d+) with inotify, (\d+) polled each second\)"


@pytest.mark.parametrize("engine", ["auto", "inotify", "poll"])
@pytest.mark.parametrize("how", ["in-place", "replace"])
def test_reload_engine(start_server, tmp_path, engine, how):
    module = tmp_path / "reload_app.py"
    module.write_text(RELOAD_APP.format(version="one"))
    srv = start_server("reload_app", "--reload", "--reload-engine", engine, "--log-level",
                       "debug", app_dir=tmp_path)
    (old,) = srv.worker_pids()
    total, inotify, polled = map(int, srv.wait_for_log(WATCHING_RE).groups())
    assert total > 1  # the application and the modules it brought in
    # Every file with the one engine asked for (inotify is there on this machine).
    assert (inotify, polled) == ((0, total) if engine == "poll" else (total, 0))
    srv.wait_for_log(r"\[WARNING\] Reloader is on\. Use in development only!")
    # The worker answers only once it watches (the first look of poll is taken then),
    # so the change below is made after it and must be noticed.
    assert get(srv.port).text == "one"
    mark = srv.log_mark()
    if how == "in-place":
        module.write_text(RELOAD_APP.format(version="two, longer"))
    else:
        tmp = tmp_path / "reload_app.py.new"
        tmp.write_text(RELOAD_APP.format(version="two, longer"))
        os.replace(tmp, module)
    srv.wait_for_log(rf"Worker reloading: {re.escape(str(module))} modified", since=mark)
    new = int(srv.wait_for_log(BOOTING_RE, since=mark).group(1))
    assert new != old
    assert get(srv.port).text == "two, longer"
    # One change, one restart: the stopping worker said it once.
    assert srv.log_text().count("Worker reloading:") == 1


def test_reload_engine_poll_watches_extra_files(start_server, tmp_path):
    module = tmp_path / "reload_app.py"
    module.write_text(RELOAD_APP.format(version="one"))
    extra = tmp_path / "settings.toml"
    extra.write_text("a = 1\n")
    srv = start_server("reload_app", "--reload", "--reload-engine", "poll",
                       "--reload-extra-file", str(extra), app_dir=tmp_path)
    (old,) = srv.worker_pids()
    assert get(srv.port).text == "one"
    mark = srv.log_mark()
    extra.write_text("a = 22\n")
    srv.wait_for_log(rf"Worker reloading: {re.escape(str(extra))} modified", since=mark)
    assert int(srv.wait_for_log(BOOTING_RE, since=mark).group(1)) != old


def test_reload_engine_bad_value():
    out = subprocess.run([str(BIN), "--reload-engine", "fsevents", "hello"], env=server_env(),
                         capture_output=True, text=True, timeout=10)
    assert out.returncode == 1
    assert out.stderr.strip().endswith("Error: Invalid reload_engine: 'fsevents'")


LAZY_APP = '''
def application(environ, start_response):
    import lazy_helper  # imported at the first request, not at boot
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [lazy_helper.VALUE.encode()]
'''


@pytest.mark.parametrize("engine", ["inotify", "poll"])
def test_reload_watches_modules_imported_after_boot(start_server, tmp_path, engine):
    (tmp_path / "lazy_app.py").write_text(LAZY_APP)
    helper = tmp_path / "lazy_helper.py"
    helper.write_text('VALUE = "one"\n')
    srv = start_server("lazy_app", "--reload", "--reload-engine", engine, "--log-level",
                       "debug", app_dir=tmp_path)
    (old,) = srv.worker_pids()
    mark = srv.log_mark()
    assert get(srv.port).text == "one"
    # Within a second the worker sees that sys.modules grew and watches the new file.
    srv.wait_for_log(rf"\[{old}\] \[DEBUG\] Watching {re.escape(str(helper))} for changes too",
                     since=mark)
    helper.write_text('VALUE = "two, longer"\n')
    srv.wait_for_log(rf"Worker reloading: {re.escape(str(helper))} modified", since=mark)
    assert int(srv.wait_for_log(BOOTING_RE, since=mark).group(1)) != old
    assert get(srv.port).text == "two, longer"


@pytest.mark.parametrize("engine", ["inotify", "poll"])
def test_reload_extra_file_pattern_picks_up_new_files(start_server, tmp_path, engine):
    module = tmp_path / "reload_app.py"
    module.write_text(RELOAD_APP.format(version="one"))
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "a.toml").write_text("a = 1\n")
    srv = start_server("reload_app", "--reload", "--reload-engine", engine, "--log-level",
                       "debug", "--reload-extra-file", str(conf / "**" / "*.toml"),
                       app_dir=tmp_path)
    (old,) = srv.worker_pids()
    assert get(srv.port).text == "one"
    mark = srv.log_mark()
    (conf / "sub").mkdir()
    late = conf / "sub" / "b.toml"
    late.write_text("b = 1\n")  # its creation is no change: it was not watched yet
    srv.wait_for_log(rf"\[{old}\] \[DEBUG\] Watching {re.escape(str(late))} for changes too",
                     since=mark)
    late.write_text("b = 22\n")
    srv.wait_for_log(rf"Worker reloading: {re.escape(str(late))} modified", since=mark)
    assert int(srv.wait_for_log(BOOTING_RE, since=mark).group(1)) != old
    assert srv.log_text().count("Worker reloading:") == 1


@pytest.mark.parametrize("engine", ["inotify", "poll"])
def test_reload_extra_file_that_does_not_exist_yet(start_server, tmp_path, engine):
    module = tmp_path / "reload_app.py"
    module.write_text(RELOAD_APP.format(version="one"))
    extra = tmp_path / "later.toml"
    srv = start_server("reload_app", "--reload", "--reload-engine", engine, "--log-level",
                       "debug", "--reload-extra-file", str(extra), app_dir=tmp_path)
    (old,) = srv.worker_pids()
    # inotify cannot watch a file that is not there: it is polled (one more polled file).
    total, inotify, polled = map(int, srv.wait_for_log(WATCHING_RE).groups())
    assert polled == (total if engine == "poll" else 1)
    assert get(srv.port).text == "one"
    mark = srv.log_mark()
    extra.write_text("a = 1\n")  # created: no change yet, the first look of it is taken
    srv.wait_for_log(rf"\[{old}\] \[DEBUG\] Watching {re.escape(str(extra))} for changes: "
                     r"it exists now", since=mark)
    extra.write_text("a = 22\n")
    srv.wait_for_log(rf"Worker reloading: {re.escape(str(extra))} modified", since=mark)
    assert int(srv.wait_for_log(BOOTING_RE, since=mark).group(1)) != old
