"""For the StatsD tests: a status per path, and an application error."""


def app(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/boom":
        raise RuntimeError("boom for the StatsD tests")
    status = "404 Not Found" if path == "/missing" else "200 OK"
    data = path.encode()
    start_response(status, [("Content-Type", "text/plain"),
                            ("Content-Length", str(len(data)))])
    return [data]
