"""A 16 KiB response body in one bytes object, with a Content-Length."""

BODY = b"x" * 16384
HEADERS = [("Content-Type", "application/octet-stream"), ("Content-Length", str(len(BODY)))]


def app(environ, start_response):
    start_response("200 OK", HEADERS)
    return [BODY]
