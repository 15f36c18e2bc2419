"""The core as a library (docs/embedding.md): install it, link a C program, serve.

The module installs the build that ``GUNICORN_C_BIN`` comes from to a temporary prefix
with ``cmake --install`` (when that build is not sanitized and makes the libraries;
otherwise it builds the project once, Release, into a temporary directory),
and builds ``examples/embed`` against that prefix with its Makefile: once with the
shared library (``pkg-config gunicorn-c``), once with the archive (``pkg-config --static
gunicorn-c-static``). Each program then runs a real server in its own process.
Under GC_SANITIZED the module is skipped: what it installs is never the sanitized
build, so the other lane covers it.
"""

import os
import re
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from conftest import APPS_DIR, REPO_ROOT, Server

EXAMPLE_DIR = REPO_ROOT / "examples" / "embed"
PUBLIC_SYMBOLS = {"gunicorn_c_main", "gunicorn_c_version"}


def run(cmd, **kwargs):
    """Runs a build step; fails the test with its output when it fails."""
    proc = subprocess.run(cmd, capture_output=True, text=True, **kwargs)
    if proc.returncode != 0:
        pytest.fail(f"{' '.join(map(str, cmd))} exited {proc.returncode}:\n"
                    f"{proc.stdout}\n{proc.stderr}", pytrace=False)
    return proc


def reusable_build():
    """The build directory GUNICORN_C_BIN comes from, when installing it is what a user
    would do: this checkout's, not sanitized, with the libraries. Else None."""
    binary = os.environ.get("GUNICORN_C_BIN")
    if not binary:
        return None
    build = Path(binary).resolve().parent
    cache = build / "CMakeCache.txt"
    if not cache.exists():
        return None
    values = dict(re.findall(r"^(\w+):\w+=(.*)$", cache.read_text(), re.M))
    if Path(values.get("CMAKE_HOME_DIRECTORY", "")).resolve() != Path(REPO_ROOT).resolve():
        return None
    if values.get("GC_SANITIZE", "OFF").upper() in ("ON", "1", "TRUE", "YES"):
        return None
    if values.get("GC_LIBRARIES", "ON").upper() in ("OFF", "0", "FALSE", "NO"):
        return None
    return build


@pytest.fixture(scope="module")
def prefix(tmp_path_factory):
    """The project built and installed under a temporary prefix, once per module."""
    for tool in ("cmake", "pkg-config", "make", "cc", "nm", "readelf"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed")
    if os.environ.get("GC_SANITIZED"):
        pytest.skip("the installed library is not the sanitized build: tested in the other lane")
    root = tmp_path_factory.mktemp("embed")
    build, prefix = root / "build", root / "prefix"
    reused = reusable_build()
    if reused is not None:
        build.symlink_to(reused)  # test_api_contract reads the cache there
    env = {k: v for k, v in os.environ.items() if k not in ("CFLAGS", "LDFLAGS")}
    if not (build / "CMakeCache.txt").exists():
        run(["cmake", "-S", REPO_ROOT, "-B", build, "-DCMAKE_BUILD_TYPE=Release"], env=env)
    run(["cmake", "--build", build, "-j", str(min(os.cpu_count() or 1, 8)), "--target",
         "gunicorn-c", "gunicorn-c-ctl", "gunicorn_c_shared", "gunicorn_c_static"], env=env)
    run(["cmake", "--install", build, "--prefix", prefix])
    return prefix


@pytest.fixture(scope="module")
def programs(prefix, tmp_path_factory):
    """examples/embed built by its own Makefile: {"shared": path, "static": path}."""
    out = tmp_path_factory.mktemp("embed-bin")
    run(["make", "-C", EXAMPLE_DIR, f"PREFIX={prefix}", f"OUT={out}"])
    return {"shared": out / "embed-shared", "static": out / "embed-static"}


def needed(path):
    """The DT_NEEDED entries of an ELF file."""
    text = run(["readelf", "-d", path]).stdout
    return re.findall(r"\(NEEDED\)\s+Shared library: \[(.+?)\]", text)


def test_install_layout(prefix):
    for rel in ("bin/gunicorn-c", "bin/gunicorn-c-ctl", "include/gunicorn_c.h",
                "lib/libgunicorn-c.a", "lib/libgunicorn-c.so", "lib/libgunicorn-c.so.0",
                "lib/pkgconfig/gunicorn-c.pc", "lib/pkgconfig/gunicorn-c-static.pc"):
        assert (prefix / rel).exists(), rel
    soname = re.search(r"\(SONAME\)\s+Library soname: \[(.+?)\]",
                       run(["readelf", "-d", prefix / "lib/libgunicorn-c.so"]).stdout)
    assert soname and soname.group(1) == "libgunicorn-c.so.0"
    # The installed executable serves as the build tree's does.
    version = run([prefix / "bin/gunicorn-c", "--version"]).stdout
    assert "0.1.0" in version


def test_shared_library_exports_only_the_public_api(prefix):
    text = run(["nm", "-D", "--defined-only", prefix / "lib/libgunicorn-c.so"]).stdout
    # "ADDR T name@@GUNICORN_C_0"; the version node itself is an absolute symbol (A).
    symbols = {line.split()[2].split("@")[0] for line in text.splitlines()
               if len(line.split()) == 3 and line.split()[1] != "A"}
    assert symbols == PUBLIC_SYMBOLS


def test_static_archive_shows_only_the_public_api(prefix):
    """The archive is self-contained (llhttp inside) and hides everything else too."""
    archive = prefix / "lib/libgunicorn-c.a"
    text = run(["nm", "-g", "--defined-only", archive]).stdout
    assert set(re.findall(r" [TDBR] (\S+)$", text, re.M)) == PUBLIC_SYMBOLS
    undefined = set(run(["nm", "-u", archive]).stdout.split())
    assert not {s for s in undefined if s.startswith("gc_")}
    libs = run(["pkg-config", "--static", "--libs",
                prefix / "lib/pkgconfig/gunicorn-c-static.pc"]).stdout
    if "-lllhttp" not in libs:  # llhttp compiled from its sources: it is in the archive
        assert not {s for s in undefined if s.startswith("llhttp")}


@pytest.mark.parametrize("kind", ["shared", "static"])
def test_example_serves_in_process(programs, kind):
    program = programs[kind]
    libs = needed(program)
    if kind == "shared":
        assert "libgunicorn-c.so.0" in libs
    else:
        assert not any(lib.startswith("libgunicorn-c") for lib in libs)

    srv = Server("hello:app")
    srv.argv[0] = str(program)
    srv.start()
    try:
        # The server runs in the program's own process: the arbiter's pid is its pid.
        assert "embed: built with gunicorn-c 0.1.0, running with 0.1.0" in srv.log_text()
        conn = srv.http_connection()
        conn.request("GET", "/")
        resp = conn.getresponse()
        assert resp.status == 200
        assert resp.read() == b"Hello, World!\n"
        assert resp.getheader("Server") == "gunicorn-c"
        conn.close()
        assert srv.stop(signal.SIGTERM) == 0
    finally:
        if srv.proc.poll() is None:
            srv.kill_all()
    # gunicorn_c_main returned to the program, which reported the status itself.
    assert re.search(r"^embed: .*embed-%s: server stopped with status 0$" % kind,
                     srv.log_text(), re.M), srv.log_text()


def test_example_usage_error_status(programs):
    proc = subprocess.run([programs["shared"], "--no-such-option"], capture_output=True,
                          text=True, timeout=10, cwd=APPS_DIR)
    assert proc.returncode == 2
    assert "server stopped with status 2" in proc.stderr


API_CHECK = r"""
#include <Python.h>
#include <stdio.h>
#include <string.h>
#include <gunicorn_c.h>

/* Names the library uses inside: the program's own must not clash with them. */
int llhttp_execute(void);
int llhttp_execute(void)
{
    return 42;
}
void gc__buf_init(void);
void gc__buf_init(void)
{
}

int main(int argc, char **argv)
{
    char *version_argv[] = {"api-check", "--version", NULL};
    if (strcmp(gunicorn_c_version(), GUNICORN_C_VERSION_STRING) != 0)
        return 10;
    if (GUNICORN_C_VERSION_HEX != ((GUNICORN_C_VERSION_MAJOR << 16) |
                                   (GUNICORN_C_VERSION_MINOR << 8) | GUNICORN_C_VERSION_PATCH))
        return 11;
    if (llhttp_execute() != 42)
        return 13;
    if (argc > 1 && strcmp(argv[1], "python-first") == 0) {
        Py_Initialize();
        int rc = gunicorn_c_main(2, version_argv);
        /* The program's interpreter is still there, untouched. */
        if (!Py_IsInitialized() || PyRun_SimpleString("x = 1") != 0)
            return 12;
        Py_Finalize();
        return rc;
    }
    int first = gunicorn_c_main(2, version_argv);
    int second = gunicorn_c_main(2, version_argv);
    printf("first=%d second=%d\n", first, second);
    return 0;
}
"""


@pytest.mark.parametrize("kind", ["shared", "static"])
def test_api_contract(prefix, tmp_path, kind):
    """Version macros and function agree; one server per process; Python not
    pre-initialised; the program's symbols and the library's internal ones never meet."""
    src = tmp_path / "api_check.c"
    src.write_text(API_CHECK)
    exe = tmp_path / "api-check"
    name = "gunicorn-c" if kind == "shared" else "gunicorn-c-static"
    pc = ["pkg-config", prefix / f"lib/pkgconfig/{name}.pc"]
    # The test program calls Python itself, so it also links the embedded interpreter,
    # which --static lists (for the shared library too).
    cflags = run([*pc, "--cflags"]).stdout.split()
    libs = run([*pc, "--static", "--libs"]).stdout.split()
    cache = (prefix.parent / "build" / "CMakeCache.txt").read_text()
    python = re.search(r"^_?Python3_EXECUTABLE:\w+=(.+)$", cache, re.M).group(1)
    pyinc = run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['include'])"])
    run(["cc", "-o", exe, src, *cflags, f"-I{pyinc.stdout.strip()}", *libs,
         f"-Wl,-rpath,{prefix / 'lib'}"])

    proc = subprocess.run([exe], capture_output=True, text=True, timeout=10)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-1] == "first=0 second=1"
    assert "gunicorn-c (version 0.1.0)" in proc.stdout
    assert "runs only once per process" in proc.stderr

    proc = subprocess.run([exe, "python-first"], capture_output=True, text=True, timeout=10)
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    assert "already initialised Python" in proc.stderr
