"""gunicorn-c: a Gunicorn-compatible WSGI server whose core is C.

The server itself is the `gunicorn-c` executable; this package lets
`python -m gunicorn_c ...` start it and tells Python code which version is installed.
"""


def _version():
    """The version, which is written once, in include/gunicorn_c.h.

    An installed package has it in _version.py (written by the build); an editable
    install or a checkout reads the header next to python/.
    """
    try:
        from gunicorn_c._version import version
        return version
    except ImportError:
        pass
    import os
    import re
    header = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, os.pardir,
                          "include", "gunicorn_c.h")
    try:
        with open(header, encoding="utf-8") as f:
            text = f.read()
        return ".".join(re.search(r"^#define GUNICORN_C_VERSION_%s (\d+)$" % part, text, re.M)
                        .group(1) for part in ("MAJOR", "MINOR", "PATCH"))
    except (OSError, AttributeError):
        return "0+unknown"


__version__ = _version()
version_info = tuple(int(x) if x.isdigit() else x for x in __version__.split("."))
SERVER_SOFTWARE = "gunicorn-c/%s" % __version__
