"""An app that reports every request this worker has handed it, for tests that must
show a refused request never reached the application (tests/integration/
test_strict_parsing.py)."""

import json

seen = []


def app(environ, start_response):
    body = environ["wsgi.input"].read()
    seen.append(environ["RAW_URI"])
    out = {
        "seen": seen,
        "body": body.decode("latin-1"),
        "protocol": environ["SERVER_PROTOCOL"],
        "http": {k: v for k, v in environ.items() if k.startswith("HTTP_")},
        "content_length": environ.get("CONTENT_LENGTH"),
    }
    data = json.dumps(out).encode()
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(data)))])
    return [data]
