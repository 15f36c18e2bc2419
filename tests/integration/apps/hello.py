"""Hello world, as `hello` (default variable), `hello:app` and the factory
`hello:create_app()`."""


def application(environ, start_response):
    data = b"Hello, World!\n"
    start_response("200 OK", [
        ("Content-Type", "text/plain"),
        ("Content-Length", str(len(data))),
    ])
    return iter([data])


app = application


def create_app():
    return application


# Not applications: for the "App failed to load" checks.
not_callable = "a string is not a WSGI application"
nothing = None
