"""Builds gunicorn-c for `pip install .`: CMake compiles the C core, setuptools packs it.

The metadata lives in pyproject.toml; this file only adds the build step. Debian 12
ships no CMake-driving build backend (scikit-build-core, scikit-build), so the backend
is setuptools, which every Python installation has, and the build step is ours:

  build_cmake    configures and builds the two executables, gunicorn-c and
                 gunicorn-c-ctl, in a CMake build directory under setuptools' build
                 directory, embedding the Python that runs the build (the base
                 interpreter when that Python is a virtualenv's);
  build_scripts  copies them, unchanged, where setuptools installs scripts: the
                 environment's bin/;
  bdist_wheel    tags the wheel for this Python and platform, not as pure Python.

Environment: GC_CMAKE_ARGS adds arguments to the CMake configure step (shlex-split),
CMAKE_BUILD_PARALLEL_LEVEL sets the build's parallelism (default: the CPU count).
docs/install.md has the details.
"""
import hashlib
import os
import shlex
import shutil
import subprocess
import sys

from setuptools import Command, setup

try:
    from setuptools.command.build_scripts import build_scripts
except ImportError:  # setuptools before 69: distutils' (setuptools carries its own copy)
    from distutils.command.build_scripts import build_scripts

EXECUTABLES = ("gunicorn-c", "gunicorn-c-ctl")
HERE = os.path.dirname(os.path.abspath(__file__))


def embedded_python():
    """The interpreter the executables embed.

    In a virtualenv, its base interpreter: the executables find the virtualenv they are
    installed in at run time (bin/../pyvenv.cfg), so the wheel names no virtualenv.
    """
    base = getattr(sys, "_base_executable", None)
    if base and os.path.isfile(base):
        return base
    return sys.executable


class build_cmake(Command):
    description = "build the gunicorn-c executables with CMake"
    user_options = []

    def initialize_options(self):
        self.build_temp = None
        self.cmake_dir = None

    def finalize_options(self):
        self.set_undefined_options("build", ("build_temp", "build_temp"))
        python = embedded_python()
        # One CMake directory per interpreter: a cache never mixes two Pythons.
        tag = hashlib.sha256(python.encode()).hexdigest()[:8]
        self.cmake_dir = os.path.join(self.build_temp, "cmake-" + tag)
        self.python = python

    def run(self):
        cmake = shutil.which("cmake")
        if cmake is None:
            raise SystemExit("error: building gunicorn-c needs cmake (Debian: apt install cmake)")
        configure = [
            cmake, "-S", HERE, "-B", self.cmake_dir,
            "-DCMAKE_BUILD_TYPE=Release",
            "-DPython3_EXECUTABLE=" + self.python,
        ] + shlex.split(os.environ.get("GC_CMAKE_ARGS", ""))
        jobs = os.environ.get("CMAKE_BUILD_PARALLEL_LEVEL") or str(os.cpu_count() or 1)
        compile_ = [cmake, "--build", self.cmake_dir, "-j", jobs, "--target"] + list(EXECUTABLES)
        for cmd in (configure, compile_):
            self.announce(" ".join(shlex.quote(c) for c in cmd), level=2)
            subprocess.check_call(cmd)

    def get_outputs(self):
        return [os.path.join(self.cmake_dir, name) for name in EXECUTABLES]


class build_executables(build_scripts):
    """Puts the executables CMake built where setuptools collects scripts from.

    setuptools' own step would try to rewrite a script's "#!" line; these are ELF
    files, so they are copied byte for byte and made executable.
    """

    def run(self):
        self.run_command("build_cmake")
        self.mkpath(self.build_dir)
        for src in self.get_finalized_command("build_cmake").get_outputs():
            if not os.path.isfile(src):
                raise SystemExit("error: CMake did not produce %s" % src)
            dst = os.path.join(self.build_dir, os.path.basename(src))
            self.copy_file(src, dst, preserve_mode=False)
            os.chmod(dst, 0o755)

    def get_source_files(self):
        return []  # the scripts are built, not shipped in an sdist


cmdclass = {"build_cmake": build_cmake, "build_scripts": build_executables}

try:  # setuptools 70.1 and later have their own; before, the wheel package has it
    from setuptools.command.bdist_wheel import bdist_wheel
except ImportError:
    try:
        from wheel.bdist_wheel import bdist_wheel
    except ImportError:  # no wheel package: pip falls back to `setup.py install`
        bdist_wheel = None

if bdist_wheel is not None:

    class bdist_wheel_platform(bdist_wheel):
        """The wheel holds executables linked to this Python's libpython: tag it with
        this interpreter's ABI and platform (cp311-cp311-linux_x86_64, say)."""

        def finalize_options(self):
            super().finalize_options()
            self.root_is_pure = False

    cmdclass["bdist_wheel"] = bdist_wheel_platform

# The scripts are the executables build_cmake makes; listing their names is what makes
# setuptools run build_scripts and install_scripts. setuptools' build directory is
# build-pip, not build: build/ is the CMake directory of ./dev.sh build.
setup(
    scripts=list(EXECUTABLES),
    cmdclass=cmdclass,
    options={"build": {"build_base": "build-pip"}},
)
