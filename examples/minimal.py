"""A small WSGI application without a framework: routing, a query string, a JSON body,
and a streamed response, in the standard library only.

    gunicorn-c --chdir examples minimal:app
    curl -s '127.0.0.1:8000/hello?name=you'
    curl -s -X POST --data-binary '{"a": 1, "b": 2}' 127.0.0.1:8000/sum
    curl -s 127.0.0.1:8000/count/5
"""

import json
from urllib.parse import parse_qs


def respond(start_response, status, body, content_type="text/plain; charset=utf-8"):
    data = body.encode() if isinstance(body, str) else body
    start_response(status, [("Content-Type", content_type),
                            ("Content-Length", str(len(data)))])
    return [data]


def hello(environ, start_response):
    name = parse_qs(environ.get("QUERY_STRING", "")).get("name", ["World"])[0]
    return respond(start_response, "200 OK", f"Hello, {name}!\n")


def total(environ, start_response):
    if environ["REQUEST_METHOD"] != "POST":
        return respond(start_response, "405 Method Not Allowed", "POST a JSON object\n")
    # wsgi.input ends where the body ends (gunicorn-c sets wsgi.input_terminated), so
    # read() takes it all, with or without Content-Length.
    try:
        numbers = json.loads(environ["wsgi.input"].read() or b"{}")
        result = {"sum": sum(numbers.values())}
    except (ValueError, TypeError, AttributeError):
        return respond(start_response, "400 Bad Request", "expected {\"name\": number, ...}\n")
    return respond(start_response, "200 OK", json.dumps(result) + "\n", "application/json")


def count(environ, start_response, n):
    # No Content-Length: the server sends the pieces as they come (chunked on HTTP/1.1).
    start_response("200 OK", [("Content-Type", "text/plain")])
    return (f"{i}\n".encode() for i in range(1, n + 1))


def app(environ, start_response):
    path = environ["PATH_INFO"]
    if path in ("/", "/hello"):
        return hello(environ, start_response)
    if path == "/sum":
        return total(environ, start_response)
    if path.startswith("/count/") and path[7:].isdigit():
        return count(environ, start_response, min(int(path[7:]), 1000))
    return respond(start_response, "404 Not Found", "not found\n")
