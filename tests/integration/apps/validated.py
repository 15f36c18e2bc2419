"""Apps wrapped in wsgiref.validate.validator: any PEP 3333 violation by the server
(in the environ, wsgi.input, start_response, or iterable handling) raises an
AssertionError or issues a WSGIWarning."""

from wsgiref.validate import validator


def _simple(environ, start_response):
    inp = environ["wsgi.input"]
    body = inp.read(int(environ.get("CONTENT_LENGTH") or 0))
    environ["wsgi.errors"].write("")
    data = b"validated: " + body
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(data)))])
    return [data]


def _streaming(environ, start_response):
    lines = list(environ["wsgi.input"])
    write = start_response("200 OK", [("Content-Type", "text/plain")])
    write(b"streamed:")

    def gen():
        for line in lines:
            yield line
        yield b";end"
    return gen()


application = validator(_simple)
streaming = validator(_streaming)
