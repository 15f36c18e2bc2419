"""`python -m gunicorn_c [OPTIONS] APP_MODULE`: run the gunicorn-c executable.

The server is the executable, not this package: this module finds it and replaces the
Python process with it (same arguments; signals then reach the server directly). The
executable is looked for where pip installed it (the package's RECORD), then next to
this interpreter (a virtualenv's bin/), then on PATH.

When this interpreter is a virtualenv's, the server uses that virtualenv's packages:
VIRTUAL_ENV is set for it unless the executable lives in a virtualenv of its own,
which it prefers (docs/install.md).
"""
import os
import shutil
import sys
from importlib import metadata

NAME = "gunicorn-c"


def _installed():
    """The executable pip installed with this package, or None."""
    try:
        files = metadata.distribution(NAME).files or []
    except metadata.PackageNotFoundError:
        return None
    for f in files:
        if f.name == NAME and f.parent.name == "bin":
            return os.path.abspath(str(f.locate()))
    return None


def find_executable():
    """The path of the gunicorn-c executable, or None."""
    for candidate in (_installed(), os.path.join(os.path.dirname(sys.executable), NAME)):
        if candidate and os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return shutil.which(NAME)


def main():
    exe = find_executable()
    if exe is None:
        sys.stderr.write("Error: the gunicorn-c executable is not installed\n")
        return 1
    if sys.prefix != sys.base_prefix:
        os.environ["VIRTUAL_ENV"] = sys.prefix
    os.execv(exe, [exe] + sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
