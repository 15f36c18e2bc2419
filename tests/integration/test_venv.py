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

README's recipe is also run with a Python that is not Debian's (pyenv's, whose
virtualenvs have pip and an old setuptools but no wheel, and do not see Debian's
packages): the build must not need setuptools or wheel.

Each pip build compiles the C core (20 to 35 seconds on two cores; the module runs two,
about a minute in all); they are skipped under a sanitizer build (GC_SANITIZED=1),
where they would only build the same release binary again.
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
PYENV_PYTHON = "/root/.pyenv/versions/3.11.7/bin/python3"
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
    """`venv/bin/pip install --no-build-isolation --no-index path` (README's recipe);
    returns seconds."""
    start = time.monotonic()
    out = subprocess.run(
        [str(venv / "bin" / "pip"), "install", "--no-build-isolation", "--no-index",
         str(path)],
        capture_output=True, text=True, env=pip_env(), timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr
    return time.monotonic() - start


def copy_tree(dst):
    """A copy of the working tree to install from (the build-* directories are left
    out for speed)."""
    shutil.copytree(REPO_ROOT, dst, ignore=shutil.ignore_patterns(
        "build", "build-*", ".git", "__pycache__", "*.egg-info", ".pytest_cache"))
    return sorted(p.name for p in dst.iterdir())


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
    """The project installed into venv by pip, from a copy of the working tree (at
    venv/../src; what it held before is venv/../src.before)."""
    skip_unless_pip_build()
    src = venv.parent / "src"
    (venv.parent / "src.before").write_text("\n".join(copy_tree(src)))
    seconds = pip_install(venv, src)
    sys.stderr.write(f"\n[test_venv] pip install of the project took {seconds:.1f} s\n")
    return venv


def skip_unless_pip_build():
    if os.environ.get("GC_SANITIZED"):
        pytest.skip("the pip build is a release build: run without GC_SANITIZED")
    if shutil.which("cmake") is None:
        pytest.skip("cmake is not installed")


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
    assert re.fullmatch(r"\d+\.\d+\.\d+", version), version
    assert exe == str(installed / "bin" / "gunicorn-c")


def version_of(venv):
    """(what `venv/bin/gunicorn-c --version` says, gunicorn_c.__version__ in venv)."""
    out = subprocess.run([str(venv / "bin" / "gunicorn-c"), "--version"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    m = re.fullmatch(r"gunicorn-c \(version (\S+)\)\n", out.stdout)
    assert m, out.stdout
    py = subprocess.run([str(venv / "bin" / "python"), "-c",
                         "import gunicorn_c; print(gunicorn_c.__version__)"],
                        capture_output=True, text=True, timeout=30, cwd="/")
    assert py.returncode == 0, py.stderr
    return m.group(1), py.stdout.strip()


def test_executable_version_is_the_package_version(installed):
    exe, package = version_of(installed)
    assert exe == package
    meta = subprocess.run(
        [str(installed / "bin" / "python"), "-c",
         "from importlib.metadata import version; print(version('gunicorn-c'))"],
        capture_output=True, text=True, timeout=30, cwd="/")
    assert meta.stdout.strip() == exe, meta.stderr


def test_pip_install_leaves_the_source_tree_as_it_was(installed):
    before = (installed.parent / "src.before").read_text().split("\n")
    assert sorted(p.name for p in (installed.parent / "src").iterdir()) == before


def test_sdist_carries_what_ctest_needs(tmp_path):
    """`python3 setup.py sdist` (the backend's build_sdist) holds the CMake inputs, the
    unit tests and the fuzz corpus that ctest's fuzz_corpus replays; nothing is written
    into the source tree."""
    import tarfile
    out = subprocess.run([SYSTEM_PYTHON, "setup.py", "sdist", "-d", str(tmp_path)],
                         capture_output=True, text=True, cwd=REPO_ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    sdist = Path(out.stdout.split()[-1])
    with tarfile.open(sdist) as tar:
        names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
    corpus = {str(p.relative_to(REPO_ROOT)) for p in (REPO_ROOT / "tests/fuzz/corpus").iterdir()}
    assert corpus and corpus <= names, sorted(corpus - names)[:5]
    for need in ("CMakeLists.txt", "PKG-INFO", "pyproject.toml", "include/gunicorn_c.h",
                 "tests/fuzz/replay.c", "tests/fuzz/fuzz_http_parser.c",
                 "python/gunicorn_c_build.py", "python/gunicorn_c/__init__.py"):
        assert need in names, need
    assert not any("__pycache__" in n or n.startswith("build") for n in names)


# --- README's recipe with a Python that is not Debian's ------------------------------


def other_python():
    """A CPython that is not /usr/bin/python3: `python3` on PATH when it is not
    Debian's, else pyenv's 3.11.7; None when there is neither."""
    candidates = [shutil.which("python3"), PYENV_PYTHON]
    for cand in candidates:
        if not cand or not os.access(cand, os.X_OK):
            continue
        out = subprocess.run([cand, "-c", "import sys; print(sys.executable)"],
                             capture_output=True, text=True, timeout=30)
        exe = out.stdout.strip()
        if out.returncode == 0 and exe and not exe.startswith("/usr/bin/"):
            return exe
    return None


HELLO = """\
import sys


def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [("%s|%s" % (sys.prefix, sys.version.split()[0])).encode()]
"""


def test_readme_recipe_with_a_python_that_is_not_debians(tmp_path):
    """python3 -m venv --system-site-packages venv
    venv/bin/pip install --no-build-isolation --no-index /path/to/gunicorn-c
    with pyenv's python3: its virtualenv has pip and setuptools 65 but no wheel, and
    Debian's wheel is not visible to it."""
    python = other_python()
    if python is None:
        pytest.skip(f"no python3 other than {SYSTEM_PYTHON} (nor {PYENV_PYTHON})")
    skip_unless_pip_build()
    venv = tmp_path / "venv"
    subprocess.run([python, "-m", "venv", "--system-site-packages", str(venv)],
                   check=True, env=pip_env(), timeout=120)
    src = tmp_path / "src"
    before = copy_tree(src)
    seconds = pip_install(venv, src)
    sys.stderr.write(f"\n[test_venv] pip install with {python} took {seconds:.1f} s\n")
    assert sorted(p.name for p in src.iterdir()) == before  # no build directory left
    exe, package = version_of(venv)
    assert exe == package
    app_dir = tmp_path / "app"
    app_dir.mkdir()
    (app_dir / "venvapp.py").write_text(HELLO)
    version = subprocess.run([python, "-c", "import platform; print(platform.python_version())"],
                             capture_output=True, text=True, timeout=30).stdout.strip()
    assert serve(venv / "bin" / "gunicorn-c", app_dir) == f"{venv}|{version}"


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
