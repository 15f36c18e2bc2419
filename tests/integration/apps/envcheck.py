"""Answers with environment variables named in the query string
(`/?A&B` -> {"A": ..., "B": ...}); used for --env and GUNICORN_CMD_ARGS tests."""

import json
import os

# Read at import time too, so a test can tell whether --env was applied before the
# application was imported.
AT_IMPORT = {k: v for k, v in os.environ.items() if k.startswith("GC_TEST_")}


def application(environ, start_response):
    names = [n for n in environ.get("QUERY_STRING", "").split("&") if n]
    body = json.dumps({"now": {n: os.environ.get(n) for n in names},
                       "at_import": AT_IMPORT}).encode()
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(body)))])
    return [body]
