"""A raw ASGI 3 application for tests/integration/test_asgi_ops.py: the operations side
of `-k asgi` (PROXY protocol, proxy headers, access log, StatsD, control socket, limits,
slow clients, nginx, reloads). Routed by path:

  /scope        the scope as JSON (bytes as latin-1 text, tuples as lists); any path
                ending in /scope, whatever the root_path
  /info         {"pid": the worker's pid} (what test_signals.ClientLoop reads)
  /status/N     "status N" with that status code
  /raise        raises before http.response.start (a 500 from the server)
  /stream?n=N   N chunks "chunk I\\n" with more_body, no Content-Length; &pad=K adds K
                dots to each
  /seen         {"seen": the raw path of every request this worker handed the
                application, "whole": of those whose body arrived whole}: a request
                refused at its head is never seen, one refused in its body is never
                whole (the task starts at the head and sees http.disconnect)
  /hold?id=X    reads the first body message, appends "hold X" to $ASGI_EVENTS, reads the
                rest of the body, then answers "held X BODY": in flight for as long as
                the client keeps back the end of its body
  other         "Hello, World!"

WebSocket: /ws accepts and echoes text and bytes; /ws-scope sends the scope as JSON text
and closes with 1000.
"""

import json
import os

from asgi_app import jsonable, record  # (the same $ASGI_EVENTS file)
seen = []  # every request's raw path, as its task starts
whole = []  # the raw path of every request whose body arrived whole




async def body_of(receive, scope=None):
    body = b""
    while True:
        msg = await receive()
        if msg["type"] == "http.disconnect":
            return body
        body += msg.get("body", b"")
        if not msg.get("more_body", False):
            if scope is not None:
                whole.append(scope["raw_path"].decode("latin-1"))
            return body


async def respond(send, status, body, content_type=b"text/plain"):
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", content_type),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


async def http(scope, receive, send):
    path = scope["path"]
    seen.append(scope["raw_path"].decode("latin-1"))
    query = dict(p.partition("=")[::2] for p in scope["query_string"].decode().split("&") if p)
    if path == "/hold":
        first = await receive()
        record("hold " + query.get("id", ""))
        body = first.get("body", b"")
        if first.get("more_body"):
            body += await body_of(receive)
        await respond(send, 200, b"held " + query.get("id", "").encode() + b" " + body)
        return
    body = await body_of(receive, scope)
    if path.endswith("/scope"):
        await respond(send, 200, json.dumps(jsonable(scope)).encode(), b"application/json")
    elif path == "/info":
        await respond(send, 200, json.dumps({"pid": os.getpid()}).encode(), b"application/json")
    elif path.startswith("/status/"):
        code = int(path[len("/status/"):])
        await respond(send, code, b"status %d" % code)
    elif path == "/raise":
        raise RuntimeError("asgi-ops-app-error")
    elif path == "/stream":
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/plain")]})
        pad = int(query.get("pad", "0"))
        for i in range(int(query.get("n", "5"))):
            await send({"type": "http.response.body", "body": b"chunk %d\n" % i + b"." * pad,
                        "more_body": True})
        await send({"type": "http.response.body", "body": b""})
    elif path == "/seen":
        await respond(send, 200, json.dumps({"seen": seen, "whole": whole})
                      .encode(), b"application/json")
    elif path == "/echo":
        await respond(send, 200, body)
    else:
        await respond(send, 200, b"Hello, World!")


async def websocket(scope, receive, send):
    msg = await receive()
    assert msg["type"] == "websocket.connect", msg
    await send({"type": "websocket.accept"})
    if scope["path"] == "/ws-scope":
        await send({"type": "websocket.send", "text": json.dumps(jsonable(scope))})
        await send({"type": "websocket.close", "code": 1000})
        return
    while True:
        msg = await receive()
        if msg["type"] == "websocket.disconnect":
            record("ws-disconnect %s" % msg.get("code"))
            return
        if msg.get("text") is not None:
            await send({"type": "websocket.send", "text": msg["text"]})
        else:
            await send({"type": "websocket.send", "bytes": msg.get("bytes") or b""})


async def app(scope, receive, send):
    if scope["type"] == "http":
        await http(scope, receive, send)
    elif scope["type"] == "websocket":
        await websocket(scope, receive, send)
    elif scope["type"] == "lifespan":
        while True:
            msg = await receive()
            await send({"type": msg["type"] + ".complete"})
            if msg["type"] == "lifespan.shutdown":
                return
