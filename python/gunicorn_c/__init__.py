"""gunicorn-c: a Gunicorn-compatible WSGI server whose core is C.

The server itself is the `gunicorn-c` executable; this package lets
`python -m gunicorn_c ...` start it and tells Python code which version is installed.
"""

__version__ = "0.1.0"
version_info = (0, 1, 0)
SERVER_SOFTWARE = "gunicorn-c/%s" % __version__
