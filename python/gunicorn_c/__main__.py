"""`python -m gunicorn_c [OPTIONS] APP_MODULE`: run the gunicorn-c executable.

The executable is looked up next to this interpreter first (a virtualenv's bin/), then
on PATH; the process is replaced, so signals reach the server directly.
"""
import os
import shutil
import sys


def main():
    here = os.path.join(os.path.dirname(sys.executable), "gunicorn-c")
    exe = here if os.access(here, os.X_OK) else shutil.which("gunicorn-c")
    if exe is None:
        sys.stderr.write("Error: the gunicorn-c executable is not installed\n")
        return 1
    os.execv(exe, [exe] + sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
