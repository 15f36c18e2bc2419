"""Application factories for the app-loading tests: `factories:create_app(...)` with
literal arguments, and factories that fail in different ways."""

import json


def create_app(greeting="hello", name="world", **extra):
    """Returns an app that answers with the arguments the factory received."""
    body = json.dumps({"greeting": greeting, "name": name, "extra": extra}).encode()

    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "application/json"),
                                  ("Content-Length", str(len(body)))])
        return [body]

    return app


def takes_nothing():
    return create_app()


def raises_type_error():
    # A TypeError from inside the factory is the application's own error, not a
    # wrong call: it must keep its traceback.
    return len(42)


def returns_none():
    return None


class NotAnApp:
    pass


instance = NotAnApp()
