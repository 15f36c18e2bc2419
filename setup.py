"""For those used to `python3 setup.py ...`: gunicorn-c is not built with setuptools.

pip builds it with the project's own PEP 517 backend, python/gunicorn_c_build.py
(pyproject.toml), which needs only the standard library, cmake and a C toolchain:

  pip install --no-build-isolation --no-index .   install (docs/install.md)
  python3 setup.py sdist [-d DIR]                  the source distribution (default: dist/)
  python3 setup.py bdist_wheel [-d DIR]            a wheel for this Python
"""
import argparse
import os
import sys

sys.dont_write_bytecode = True  # no python/__pycache__ in the tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "python"))
import gunicorn_c_build  # noqa: E402


def main(argv):
    parser = argparse.ArgumentParser(prog="setup.py", usage="%(prog)s {sdist,bdist_wheel} [-d DIR]")
    parser.add_argument("command")
    parser.add_argument("-d", "--dist-dir", default="dist")
    args, _ = parser.parse_known_args(argv)
    hooks = {"sdist": gunicorn_c_build.build_sdist, "bdist_wheel": gunicorn_c_build.build_wheel}
    if args.command not in hooks:
        sys.stderr.write("error: setup.py %s is not supported: install with "
                         "`pip install --no-build-isolation --no-index .`\n" % args.command)
        return 1
    os.makedirs(args.dist_dir, exist_ok=True)
    print(os.path.join(args.dist_dir, hooks[args.command](args.dist_dir)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
