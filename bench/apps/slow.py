"""A 10 ms application: sleeps, then answers 13 bytes (bench/fairness.py's slow10)."""

import time

BODY = b"Hello, World!"
HEADERS = [("Content-Type", "text/plain"), ("Content-Length", str(len(BODY)))]


def app(environ, start_response):
    time.sleep(0.01)
    start_response("200 OK", HEADERS)
    return [BODY]
