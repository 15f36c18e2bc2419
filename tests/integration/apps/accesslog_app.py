"""The application the access log tests run under both gunicorn-c and Gunicorn.

Each path gives a response shape whose access log line is worth comparing."""


def app(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/raise":
        raise RuntimeError("the access log test asked for a 500")
    if path == "/late-raise":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return _late_failure()
    if path == "/204":
        start_response("204 No Content", [])
        return [b""]
    if path == "/304":
        start_response("304 Not Modified", [("ETag", '"abc"')])
        return [b""]
    if path == "/stream":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return (b"x" * n for n in (10, 200, 3000))
    if path == "/headers":
        start_response("201 Created", [
            ("Content-Type", "text/plain; charset=utf-8"),
            ("X-Quoted", 'say "hi"'),
            ("X-Latin", "caf\u00e9"),
            ("X-Dup", "first"),
            ("X-Dup", "second"),
            ("Content-Length", "5"),
        ])
        return [b"hello"]
    if path == "/proxyfix":
        # What werkzeug's ProxyFix does: the log shows the rewritten address.
        environ["REMOTE_ADDR"] = environ.get("HTTP_X_FORWARDED_FOR", "-")
        environ["custom.key"] = 'v"al'
    if path == "/newline":
        environ["custom.nl"] = 'a\nb\r\x01"\\\u20ac\U0001f600'
    if path == "/post":
        body = environ["wsgi.input"].read()
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return [body]
    body = b"hello world\n"
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(body)))])
    return [body]


def _late_failure():
    yield b"partial"
    raise RuntimeError("failed after the headers")
