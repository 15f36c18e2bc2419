"""gunicorn-c's PEP 517 build backend (pyproject.toml: build-backend, backend-path).

It needs nothing but the Python standard library, cmake and a C toolchain: not
setuptools, not wheel. So `pip install --no-build-isolation --no-index .` works offline
with any CPython 3.8+ that has pip, Debian's or pyenv's (whose virtualenvs have no
wheel, and on 3.12+ no setuptools either).

  build_wheel     configures and builds the two executables, gunicorn-c and
                  gunicorn-c-ctl, with CMake in a temporary directory (or GC_BUILD_DIR),
                  embedding the Python that runs the build (the base interpreter when it
                  is a virtualenv's), and packs them as scripts, with the gunicorn_c
                  package from python/, into a wheel tagged for this Python and platform;
  build_editable  the same, but the package is a .pth pointing at python/;
  build_sdist     the files MANIFEST.in names (include, graft, recursive-include,
                  global-exclude), plus PKG-INFO.

The version has one source, include/gunicorn_c.h (GUNICORN_C_VERSION_MAJOR, _MINOR,
_PATCH); CMake reads it too. Metadata is pyproject.toml's [project] table.

Environment: GC_CMAKE_ARGS adds arguments to the CMake configure step (shlex-split),
CMAKE_BUILD_PARALLEL_LEVEL sets the build's parallelism (default: the CPU count),
GC_BUILD_DIR keeps the CMake build directory there (faster rebuilds) instead of a
temporary one. docs/install.md has the details.
"""
import base64
import fnmatch
import hashlib
import io
import os
import re
import shlex
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import tempfile
import time
import zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = "gunicorn_c"
EXECUTABLES = ("gunicorn-c", "gunicorn-c-ctl")
HEADER = os.path.join("include", "gunicorn_c.h")


def fail(message):
    """Stops the build with one line (pip shows it as the backend's error)."""
    sys.stderr.write("error: %s\n" % message)
    raise SystemExit(1)


# --- metadata ---------------------------------------------------------------------------


def version(root=ROOT):
    """"MAJOR.MINOR.PATCH" from include/gunicorn_c.h, the only place it is written."""
    with open(os.path.join(root, HEADER), encoding="utf-8") as f:
        text = f.read()
    parts = []
    for part in ("MAJOR", "MINOR", "PATCH"):
        m = re.search(r"^#define GUNICORN_C_VERSION_%s (\d+)$" % part, text, re.M)
        if not m:
            fail("%s has no GUNICORN_C_VERSION_%s line" % (HEADER, part))
        parts.append(m.group(1))
    return ".".join(parts)


def _load_toml(path):
    try:
        import tomllib  # 3.11+
    except ImportError:
        try:
            import tomli as tomllib
        except ImportError:
            try:  # pip carries one; it is importable without build isolation
                from pip._vendor import tomli as tomllib
            except ImportError:
                fail("reading pyproject.toml on Python < 3.11 needs tomli: "
                     "run `pip install tomli` (or build with network access)")
    with open(path, "rb") as f:
        return tomllib.load(f)


def project():
    meta = _load_toml(os.path.join(ROOT, "pyproject.toml"))["project"]
    meta["version"] = version()
    return meta


def metadata_text(meta):
    """Core metadata 2.1: a wheel's METADATA, an sdist's PKG-INFO."""
    lines = ["Metadata-Version: 2.1", "Name: " + meta["name"], "Version: " + meta["version"]]
    if "description" in meta:
        lines.append("Summary: " + meta["description"])
    if "requires-python" in meta:
        lines.append("Requires-Python: " + meta["requires-python"])
    lic = meta.get("license", {})
    if "text" in lic:
        lines.append("License: " + lic["text"])
    lines += ["Classifier: " + c for c in meta.get("classifiers", [])]
    body = ""
    readme = meta.get("readme")
    if isinstance(readme, str):
        with open(os.path.join(ROOT, readme), encoding="utf-8") as f:
            body = f.read()
        if readme.endswith(".md"):
            lines.append("Description-Content-Type: text/markdown")
    return "\n".join(lines) + "\n\n" + body


def dist_name(meta):
    return re.sub(r"[-_.]+", "_", meta["name"]).lower()


# --- the executables --------------------------------------------------------------------


def embedded_python():
    """The interpreter the executables embed: in a virtualenv, its base interpreter.

    The executables find the virtualenv they are installed in at run time
    (bin/../pyvenv.cfg), so the wheel names no virtualenv.
    """
    base = getattr(sys, "_base_executable", None)
    if base and os.path.isfile(base):
        return base
    return sys.executable


def build_executables(build_dir):
    """Configures and builds the executables in build_dir; returns their paths."""
    cmake = shutil.which("cmake")
    if cmake is None:
        fail("building gunicorn-c needs cmake 3.18+ (Debian: apt install cmake)")
    if not sysconfig.get_config_var("Py_ENABLE_SHARED"):
        fail("gunicorn-c embeds Python and needs a shared libpython, which %s lacks: "
             "use a Python built with --enable-shared (pyenv: "
             "PYTHON_CONFIGURE_OPTS=--enable-shared pyenv install ...)" % embedded_python())
    configure = [
        cmake, "-S", ROOT, "-B", build_dir,
        "-DCMAKE_BUILD_TYPE=Release",
        "-DPython3_EXECUTABLE=" + embedded_python(),
        # The executables are installed as built: give them the install run path (the
        # libpython directory when it is not a system one), not the build tree's, which
        # CMake pads with empty entries.
        "-DCMAKE_BUILD_WITH_INSTALL_RPATH=ON",
    ] + shlex.split(os.environ.get("GC_CMAKE_ARGS", ""))
    jobs = os.environ.get("CMAKE_BUILD_PARALLEL_LEVEL") or str(os.cpu_count() or 1)
    compile_ = [cmake, "--build", build_dir, "-j", jobs, "--target"] + list(EXECUTABLES)
    for cmd in (configure, compile_):
        sys.stderr.write(" ".join(shlex.quote(c) for c in cmd) + "\n")
        sys.stderr.flush()
        # CMake's output goes to stderr: PEP 517 hooks' stdout may be parsed by the caller.
        subprocess.check_call(cmd, stdout=sys.stderr.fileno())
    paths = [os.path.join(build_dir, name) for name in EXECUTABLES]
    for p in paths:
        if not os.path.isfile(p):
            fail("CMake did not produce %s" % p)
    return paths


# --- wheels -----------------------------------------------------------------------------


def wheel_tag():
    """cp311-cp311-linux_x86_64, say: the executables link this Python's libpython."""
    py = "cp%d%d" % sys.version_info[:2]
    plat = re.sub(r"[-.]", "_", sysconfig.get_platform())
    return "%s-%s%s-%s" % (py, py, getattr(sys, "abiflags", ""), plat)


class WheelWriter:
    def __init__(self, path):
        self.zip = zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED)
        self.record = []

    def add(self, arcname, data, mode=0o644):
        info = zipfile.ZipInfo(arcname, date_time=(1980, 1, 1, 0, 0, 0))
        info.external_attr = (0o100000 | mode) << 16
        info.compress_type = zipfile.ZIP_DEFLATED
        self.zip.writestr(info, data)
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
        self.record.append("%s,sha256=%s,%d" % (arcname, digest.decode(), len(data)))

    def add_file(self, arcname, path, mode=0o644):
        with open(path, "rb") as f:
            self.add(arcname, f.read(), mode)

    def close(self, record_name):
        self.record.append(record_name + ",,")
        self.zip.writestr(zipfile.ZipInfo(record_name, date_time=(1980, 1, 1, 0, 0, 0)),
                          "\n".join(self.record) + "\n")
        self.zip.close()


def write_dist_info(add, meta, tag):
    di = "%s-%s.dist-info" % (dist_name(meta), meta["version"])
    add(di + "/METADATA", metadata_text(meta).encode())
    add(di + "/WHEEL", ("Wheel-Version: 1.0\nGenerator: gunicorn_c_build\n"
                        "Root-Is-Purelib: false\nTag: %s\n" % tag).encode())
    add(di + "/top_level.txt", (PACKAGE + "\n").encode())
    return di


def _build(wheel_directory, editable):
    meta = project()
    tag = wheel_tag()
    name = "%s-%s-%s.whl" % (dist_name(meta), meta["version"], tag)
    keep = os.environ.get("GC_BUILD_DIR")
    tmp = None if keep else tempfile.mkdtemp(prefix="gunicorn-c-build-")
    try:
        build_dir = os.path.abspath(keep) if keep else tmp
        if keep:
            # One CMake directory per interpreter: a cache never mixes two Pythons.
            py = embedded_python()
            build_dir = os.path.join(build_dir, "cmake-" + hashlib.sha256(py.encode()).hexdigest()[:8])
        exes = build_executables(build_dir)
        whl = WheelWriter(os.path.join(wheel_directory, name))
        data = "%s-%s.data" % (dist_name(meta), meta["version"])
        for exe in exes:
            whl.add_file("%s/scripts/%s" % (data, os.path.basename(exe)), exe, 0o755)
        pkg_dir = os.path.join(ROOT, "python", PACKAGE)
        if editable:
            whl.add("__editable__.%s.pth" % dist_name(meta),
                    (os.path.join(ROOT, "python") + "\n").encode())
        else:
            for fn in sorted(os.listdir(pkg_dir)):
                if fn.endswith(".py") and fn != "_version.py":
                    whl.add_file("%s/%s" % (PACKAGE, fn), os.path.join(pkg_dir, fn))
            whl.add(PACKAGE + "/_version.py",
                    ('"""Written by the build (python/gunicorn_c_build.py)."""\n'
                     "version = %r\n" % meta["version"]).encode())
        di = write_dist_info(whl.add, meta, tag)
        whl.close(di + "/RECORD")
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    return name


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    return _build(wheel_directory, editable=False)


def build_editable(wheel_directory, config_settings=None, metadata_directory=None):
    return _build(wheel_directory, editable=True)


def prepare_metadata_for_build_wheel(metadata_directory, config_settings=None):
    meta = project()

    def add(arcname, data):
        path = os.path.join(metadata_directory, arcname)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)

    return write_dist_info(add, meta, wheel_tag())


prepare_metadata_for_build_editable = prepare_metadata_for_build_wheel


def get_requires_for_build_wheel(config_settings=None):
    return []


get_requires_for_build_editable = get_requires_for_build_sdist = get_requires_for_build_wheel


# --- sdists -----------------------------------------------------------------------------

ALWAYS = ("pyproject.toml", "setup.py", "MANIFEST.in", "python/gunicorn_c_build.py")


def _walk(top):
    for dirpath, dirnames, filenames in os.walk(os.path.join(ROOT, top)):
        dirnames.sort()
        for fn in sorted(filenames):
            yield os.path.relpath(os.path.join(dirpath, fn), ROOT)


def sdist_files():
    """The files MANIFEST.in names, relative to the root, sorted."""
    files = set(f for f in ALWAYS if os.path.isfile(os.path.join(ROOT, f)))
    files.update(_walk(os.path.join("python", PACKAGE)))
    excludes = []
    with open(os.path.join(ROOT, "MANIFEST.in"), encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            words = line.split("#", 1)[0].split()
            if not words:
                continue
            cmd, args = words[0], words[1:]
            if cmd == "include":
                for pat in args:
                    d, base = os.path.split(pat)
                    for fn in (os.listdir(os.path.join(ROOT, d)) if os.path.isdir(os.path.join(ROOT, d)) else []):
                        if fnmatch.fnmatch(fn, base) and os.path.isfile(os.path.join(ROOT, d, fn)):
                            files.add(os.path.join(d, fn))
            elif cmd == "graft":
                for d in args:
                    files.update(_walk(d))
            elif cmd == "recursive-include":
                for path in _walk(args[0]):
                    if any(fnmatch.fnmatch(os.path.basename(path), p) for p in args[1:]):
                        files.add(path)
            elif cmd == "global-exclude":
                excludes += args
            else:
                fail("MANIFEST.in:%d: %s is not supported by gunicorn_c_build" % (lineno, cmd))
    return sorted(f for f in files
                  if not any(fnmatch.fnmatch(part, pat)
                             for part in f.split(os.sep) for pat in excludes))


def build_sdist(sdist_directory, config_settings=None):
    meta = project()
    base = "%s-%s" % (dist_name(meta), meta["version"])
    name = base + ".tar.gz"
    mtime = int(os.environ.get("SOURCE_DATE_EPOCH", time.time()))

    def normalize(info):
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        info.mtime = mtime
        return info

    with tarfile.open(os.path.join(sdist_directory, name), "w:gz", format=tarfile.PAX_FORMAT) as tar:
        for rel in sdist_files():
            tar.add(os.path.join(ROOT, rel), arcname=base + "/" + rel, recursive=False,
                    filter=normalize)
        data = metadata_text(meta).encode()
        info = normalize(tarfile.TarInfo(base + "/PKG-INFO"))
        info.size = len(data)
        info.mode = 0o644
        tar.addfile(info, io.BytesIO(data))
    return name
