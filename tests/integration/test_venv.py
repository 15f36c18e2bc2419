"""`pip install .` into a virtualenv, and the virtualenv the embedded interpreter uses.

A real virtualenv (``/usr/bin/python3 -m venv --system-site-packages``) gets a small
package of its own, which the system's Python cannot import, and the project itself,
installed offline with pip from a copy of the working tree. Then:

* the installed ``<venv>/bin/gunicorn-c`` serves an application importing that package
  (it finds its virtualenv from where it is installed), and so does
  ``<venv>/bin/python -m gunicorn_c``;
* the build tree's binary (``GUNICORN_C_BIN``) uses the virtualenv when told by
  ``--virtualenv``, ``GUNICORN_CMD_ARGS`` or ``VIRTUAL_ENV``, and not otherwise;
* a --virtualenv that is not one is one error line and exit status 1.

The pip build compiles the C core (about ten seconds on two cores); it runs once per
module and is skipped under a sanitizer build (GC_SANITIZED=1), where it would only
build the same release binary again.
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import BIN, CRASH_RE, REPO_ROOT, Server, server_env

SYSTEM_PYTHON = "/usr/bin/python3"
PACKAGE = "gc_venv_only_probe"  # installed into the virtualenv only
VALUE = "imported from the virtualenv"

APP = f'''\
import sys

import {PACKAGE}


def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [("%s|%s" % ({PACKAGE}.VALUE, sys.prefix)).encode()]
'''


def _missing_tools():
    """Why this module cannot run here, or None."""
    if not os.access(SYSTEM_PYTHON, os.X_OK):
        return f"{SYSTEM_PYTHON} is missing"
    probe = subprocess.run(
        [SYSTEM_PYTHON, "-c", "import setuptools, wheel, venv, ensurepip"],
        capture_output=True, text=True)
    if probe.returncode != 0:
        return (f"{SYSTEM_PYTHON} lacks setuptools/wheel/venv/ensurepip "
                f"(Debian: python3-venv python3-pip python3-setuptools python3-wheel): "
                f"{probe.stderr.strip().splitlines()[-1:]}")
    return None


_reason = _missing_tools()
if _reason:
    pytest.skip(_reason, allow_module_level=True)


def pip_env():
    env = dict(os.environ)
    env.update(PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INPUT="1",
               PYTHONDONTWRITEBYTECODE="1")
    env.pop("VIRTUAL_ENV", None)
    return env


def pip_install(venv, path):
    """`pip install --no-build-isolation --no-index path` into venv; returns seconds."""
    start = time.monotonic()
    out = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "--no-build-isolation",
         "--no-index", str(path)],
        capture_output=True, text=True, env=pip_env(), timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr
    return time.monotonic() - start


@pytest.fixture(scope="module")
def venv(tmp_path_factory):
    """A virtualenv holding PACKAGE, which the system's Python cannot import."""
    root = tmp_path_factory.mktemp("venv")
    venv = root / "env"
    subprocess.run([SYSTEM_PYTHON, "-m", "venv", "--system-site-packages", str(venv)],
                   check=True, env=pip_env(), timeout=120)
    pkg = root / "pkg"
    (pkg / PACKAGE).mkdir(parents=True)
    (pkg / PACKAGE / "__init__.py").write_text(f"VALUE = {VALUE!r}\n")
    (pkg / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools"]\nbuild-backend = "setuptools.build_meta"\n'
        f'[project]\nname = "{PACKAGE.replace("_", "-")}"\nversion = "1.0"\n'
        f'[tool.setuptools]\npackages = ["{PACKAGE}"]\n')
    pip_install(venv, pkg)
    assert subprocess.run([str(venv / "bin" / "python"), "-c", f"import {PACKAGE}"]).returncode == 0
    system = subprocess.run([SYSTEM_PYTHON, "-c", f"import {PACKAGE}"], capture_output=True)
    assert system.returncode != 0, f"{PACKAGE} must be importable in the virtualenv only"
    return venv


@pytest.fixture(scope="module")
def app_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("app")
    (d / "venvapp.py").write_text(APP)
    return d


@pytest.fixture(scope="module")
def installed(venv):
    """The project installed into venv by pip, from a copy of the working tree (an
    in-tree build writes build-pip/ and an egg-info; the build-* directories are left
    out for speed)."""
    if os.environ.get("GC_SANITIZED"):
        pytest.skip("the pip build is a release build: run without GC_SANITIZED")
    if shutil.which("cmake") is None:
        pytest.skip("cmake is not installed")
    src = venv.parent / "src"
    shutil.copytree(REPO_ROOT, src, ignore=shutil.ignore_patterns(
        "build", "build-*", ".git", "__pycache__", "*.egg-info", ".pytest_cache"))
    seconds = pip_install(venv, src)
    sys.stderr.write(f"\n[test_venv] pip install of the project took {seconds:.1f} s\n")
    return venv


_embedded = []


def embedded_version():
    """(major, minor) of the Python the build tree's binary embeds, probed once."""
    if not _embedded:
        with tempfile.TemporaryDirectory(prefix="gc-venv-probe-") as tmp:
            Path(tmp, "probe.py").write_text(
                "import sys\nprint('probe %d.%d' % sys.version_info[:2])\napp = None\n")
            out = subprocess.run([str(BIN), "--check-config", "--chdir", tmp, "probe"],
                                 capture_output=True, text=True, env=server_env(), timeout=60)
        m = re.search(r"^probe (\d+)\.(\d+)$", out.stdout, re.M)
        assert m, out.stdout + out.stderr
        _embedded.append((int(m.group(1)), int(m.group(2))))
    return _embedded[0]


def same_python(venv):
    """Skips unless the build tree's binary embeds the Python the virtualenv was made
    with (./dev.sh test may build against another CPython)."""
    cfg = (venv / "pyvenv.cfg").read_text()
    made = tuple(int(x) for x in re.search(r"^version = (\d+)\.(\d+)", cfg, re.M).groups())
    embedded = embedded_version()
    if embedded != made:
        pytest.skip(f"{BIN} embeds Python {embedded[0]}.{embedded[1]}; "
                    f"the virtualenv is {made[0]}.{made[1]}")


def serve(argv0, app_dir, *args, env=None, prefix=()):
    """Starts the server as argv0 (plus prefix arguments), fetches / and stops it;
    returns the response body."""
    srv = Server("venvapp:app", *args, app_dir=app_dir, env=env)
    srv.argv = [str(argv0), *prefix, *srv.argv[1:]]
    srv.env.pop("VIRTUAL_ENV", None)
    srv.env.update(env or {})
    srv.start(timeout=30)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{srv.port}/", timeout=10) as resp:
            assert resp.status == 200
            body = resp.read().decode()
    finally:
        rc = srv.stop()
    assert rc == 0, srv.log_text()
    assert not CRASH_RE.search(srv.log_text()), srv.log_text()
    return body


def check_config(argv0, app_dir, *args, env=None):
    """Runs `argv0 --check-config ... venvapp:app` to completion (it imports the app)."""
    run_env = server_env()
    run_env.pop("VIRTUAL_ENV", None)
    run_env.update(env or {})
    out = subprocess.run(
        [str(argv0), "--check-config", "--chdir", str(app_dir), *args, "venvapp:app"],
        capture_output=True, text=True, env=run_env, cwd="/", timeout=60)
    assert not CRASH_RE.search(out.stderr), out.stderr
    return out


# --- pip install ---------------------------------------------------------------------


def test_pip_install_puts_both_executables_in_bin(installed):
    for name in ("gunicorn-c", "gunicorn-c-ctl"):
        exe = installed / "bin" / name
        assert exe.is_file() and os.access(exe, os.X_OK), name
        assert exe.read_bytes()[:4] == b"\x7fELF", name
    out = subprocess.run([str(installed / "bin" / "gunicorn-c"), "--version"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0 and "gunicorn-c (version " in out.stdout + out.stderr
    ctl = subprocess.run([str(installed / "bin" / "gunicorn-c-ctl"), "--help"],
                         capture_output=True, text=True, timeout=30)
    assert ctl.returncode == 0 and "usage: gunicorn-c-ctl" in ctl.stdout, ctl.stderr


def test_installed_binary_serves_an_app_importing_a_venv_only_package(installed, app_dir):
    body = serve(installed / "bin" / "gunicorn-c", app_dir)
    assert body == f"{VALUE}|{installed}"


def test_python_m_gunicorn_c(installed, app_dir):
    python = installed / "bin" / "python"
    out = subprocess.run([str(python), "-m", "gunicorn_c", "--version"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert re.search(r"gunicorn-c \(version \d", out.stdout + out.stderr)
    body = serve(python, app_dir, prefix=("-m", "gunicorn_c"))
    assert body == f"{VALUE}|{installed}"


def test_the_package_is_installed_with_the_executables(installed):
    out = subprocess.run(
        [str(installed / "bin" / "python"), "-c",
         "import gunicorn_c, gunicorn_c.__main__ as m; print(gunicorn_c.__version__); "
         "print(m.find_executable())"],
        capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    version, exe = out.stdout.split()
    assert version == "0.1.0"
    assert exe == str(installed / "bin" / "gunicorn-c")


# --- the build tree's binary ---------------------------------------------------------


def test_without_a_virtualenv_the_package_is_not_importable(venv, app_dir):
    out = check_config(BIN, app_dir)
    assert out.returncode == 1
    assert f"No module named '{PACKAGE}'" in out.stderr


def test_virtualenv_option(venv, app_dir):
    same_python(venv)
    body = serve(BIN, app_dir, "--virtualenv", str(venv))
    assert body == f"{VALUE}|{venv}"
    out = check_config(BIN, app_dir, f"--virtualenv={venv}")
    assert out.returncode == 0, out.stderr


def test_virtualenv_relative_and_abbreviated(venv, app_dir):
    same_python(venv)
    out = subprocess.run(
        [str(BIN), "--check-config", "--chdir", str(app_dir), "--virtualen", "env",
         "venvapp:app"],
        capture_output=True, text=True, env=server_env(), cwd=venv.parent, timeout=60)
    assert out.returncode == 0, out.stderr


def test_virtualenv_in_gunicorn_cmd_args(venv, app_dir):
    same_python(venv)
    out = check_config(BIN, app_dir, env={"GUNICORN_CMD_ARGS": f"-w 1 --virtualenv '{venv}'"})
    assert out.returncode == 0, out.stderr
    # The command line wins over GUNICORN_CMD_ARGS.
    out = check_config(BIN, app_dir, "--virtualenv", str(venv),
                       env={"GUNICORN_CMD_ARGS": "--virtualenv /nonexistent"})
    assert out.returncode == 0, out.stderr


def test_virtual_env_variable(venv, app_dir):
    same_python(venv)
    body = serve(BIN, app_dir, env={"VIRTUAL_ENV": str(venv)})
    assert body == f"{VALUE}|{venv}"


def test_bad_virtual_env_variable_is_a_warning(venv, app_dir, tmp_path):
    out = check_config(BIN, app_dir, env={"VIRTUAL_ENV": str(tmp_path / "gone")})
    assert "Ignoring VIRTUAL_ENV=" in out.stderr
    assert f"No module named '{PACKAGE}'" in out.stderr  # the build-time Python was used


def test_bad_virtualenv_is_one_error_line(app_dir, tmp_path):
    bad = tmp_path / "not-a-venv"
    bad.mkdir()
    out = check_config(BIN, app_dir, "--virtualenv", str(bad))
    assert out.returncode == 1
    assert out.stderr.splitlines() == [
        f"Error: --virtualenv {bad} is not a usable virtualenv: "
        f"{bad}/pyvenv.cfg: No such file or directory"]


def test_virtualenv_of_another_python_version(app_dir, tmp_path):
    fake = tmp_path / "py27"
    (fake / "bin").mkdir(parents=True)
    (fake / "pyvenv.cfg").write_text("home = /usr/bin\nversion = 2.7.18\n")
    os.symlink(SYSTEM_PYTHON, fake / "bin" / "python3")
    out = check_config(BIN, app_dir, "--virtualenv", str(fake))
    assert out.returncode == 1
    assert len(out.stderr.splitlines()) == 1
    assert "it was made with Python 2.7; gunicorn-c embeds Python 3." in out.stderr


def test_config_file_and_hooks_run_in_the_virtualenv(venv, app_dir, tmp_path):
    same_python(venv)
    conf = tmp_path / "conf.py"
    conf.write_text(
        f"import {PACKAGE}\n"
        "def on_starting(server):\n"
        "    import sys\n"
        "    print('on_starting', sys.prefix, flush=True)\n")
    srv = Server("venvapp:app", "-c", str(conf), "--virtualenv", str(venv), app_dir=app_dir)
    srv.env.pop("VIRTUAL_ENV", None)
    srv.start(timeout=30)
    assert srv.stop() == 0, srv.log_text()
    assert f"on_starting {venv}" in srv.out_lines, srv.out_lines
    assert "comes too late" not in srv.log_text()
    # --print-config shows the value the interpreter was started with.
    out = check_config(BIN, app_dir, "--print-config", "--virtualenv", str(venv))
    assert out.returncode == 0, out.stderr
    assert re.search(rf"^virtualenv\s*=\s*{re.escape(str(venv))}$", out.stdout, re.M), out.stdout


def test_virtualenv_in_the_config_file_comes_too_late(venv, app_dir, tmp_path):
    same_python(venv)
    conf = tmp_path / "conf.py"
    conf.write_text(f"virtualenv = {str(tmp_path / 'elsewhere')!r}\n")
    # VIRTUAL_ENV chose the interpreter; the config file's value is reported, not used.
    out = check_config(BIN, app_dir, "-c", str(conf), env={"VIRTUAL_ENV": str(venv)})
    assert out.returncode == 0, out.stderr
    assert "comes too late to apply" in out.stderr
