"""A raw ASGI 3 application (no framework) for the `-k asgi` tests, routed by path.

HTTP paths:
  /scope        every key of the scope as JSON (bytes as latin-1 text, tuples as lists)
  /echo         reads every http.request message; answers the body, with the number of
                messages in X-Messages and whether more_body was ever true in X-Streamed
  /stream?n=N   N body chunks sent with more_body=True (no Content-Length), then the end
  /stream-cl    Content-Length 10, the body in a more_body part and an empty last part
  /listen       a task waits on receive() while the response is sent, then is cancelled
  /wait         starts the response, then waits for http.disconnect and appends
                "disconnect PATH-QUERY" to $ASGI_EVENTS (the test gives the file)
  /early        sends http.response.informational 103 (Link header) then 200; the body
                says whether the scope's extensions offered it ("offered"/"not offered")
  /trailers     if offered, a chunked body then http.response.trailers; else "no trailers"
  /pathsend     if offered, http.response.pathsend of this file; else "no pathsend"
  /raise-before raises before http.response.start
  /raise-after  starts the response, sends a part, then raises
  /nothing      returns without starting a response
  /slow?id=X    appends "slow-start X" to $ASGI_EVENTS on the first body message, reads
                the rest of the body, then answers "slow done X BODY"
  /loop         the running event loop's class, "module.Name"
  /pid          the worker's pid
  other         "hello" (13 bytes with a newline: the benchmark's hello)

WebSocket paths:
  /ws           accepts (with the first subprotocol offered, if any, when ?proto=1), echoes
                text and bytes; a text "close:CODE" makes the app close with that code
  /ws-reject    websocket.close before accept (the server answers 403)
  /ws-deny      a denial response (websocket.http.response.start/body, 401) if the scope
                offers the extension, else websocket.close
  /ws-scope     accepts and sends the scope as JSON text, then closes with 1000

Lifespan: startup puts {"started": pid} in the state and appends "startup PID" to
$ASGI_EVENTS; shutdown appends "shutdown PID". The variants `nolifespan_app` (raises on a
lifespan scope, as apps without lifespan support do) and `failing_app` (answers
lifespan.startup.failed) are in this module too.
"""

import asyncio
import inspect
import json
import os

EVENTS = os.environ.get("ASGI_EVENTS")


def record(line):
    if EVENTS:
        with open(EVENTS, "a") as f:
            f.write(line + "\n")


def jsonable(value):
    if isinstance(value, bytes):
        return value.decode("latin-1")
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return repr(value)


async def respond(send, status, body, headers=(), content_type=b"text/plain"):
    hdrs = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status,
                "headers": hdrs + list(headers)})
    await send({"type": "http.response.body", "body": body})


async def drain(receive):
    """Reads the request body to its end; returns (body, messages, streamed)."""
    body, count, streamed = b"", 0, False
    while True:
        msg = await receive()
        if msg["type"] == "http.disconnect":
            break
        count += 1
        body += msg.get("body", b"")
        if msg.get("more_body", False):
            streamed = True
        else:
            break
    return body, count, streamed


def query(scope):
    out = {}
    for part in scope.get("query_string", b"").decode("latin-1").split("&"):
        if part:
            k, _, v = part.partition("=")
            out[k] = v
    return out


async def http(scope, receive, send):
    path = scope["path"]
    ext = scope.get("extensions") or {}
    q = query(scope)
    if path == "/scope":
        await drain(receive)
        await respond(send, 200, json.dumps(jsonable(scope)).encode(),
                      content_type=b"application/json")
    elif path == "/echo":
        body, count, streamed = await drain(receive)
        await respond(send, 200, body, [(b"x-messages", str(count).encode()),
                                        (b"x-streamed", b"1" if streamed else b"0")])
    elif path == "/stream":
        await drain(receive)
        n = int(q.get("n", "5"))
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/plain")]})
        for i in range(n):
            await send({"type": "http.response.body", "body": b"chunk %d\n" % i,
                        "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
    elif path == "/stream-cl":
        # As Django and Starlette send a response of known length: Content-Length, then
        # the body in parts with more_body, the last one empty.
        await drain(receive)
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/plain"), (b"content-length", b"10")]})
        await send({"type": "http.response.body", "body": b"0123456789", "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
    elif path == "/listen":
        # As Starlette's StreamingResponse and Django's handler do: a task waits on
        # receive() for http.disconnect while the response is sent, then is cancelled.
        await drain(receive)
        listener = asyncio.ensure_future(receive())
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"listened", "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        listener.cancel()
    elif path == "/wait":
        await drain(receive)
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"waiting\n", "more_body": True})
        while True:
            msg = await receive()
            if msg["type"] == "http.disconnect":
                record("disconnect " + scope["query_string"].decode("latin-1"))
                return
    elif path == "/early":
        await drain(receive)
        offered = "http.response.informational" in ext
        await send({"type": "http.response.informational", "status": 103,
                    "headers": [(b"link", b"</style.css>; rel=preload; as=style")]})
        await respond(send, 200, b"offered" if offered else b"not offered")
    elif path == "/trailers":
        await drain(receive)
        if "http.response.trailers" not in ext:
            await respond(send, 200, b"no trailers")
            return
        await send({"type": "http.response.start", "status": 200, "trailers": True,
                    "headers": [(b"content-type", b"text/plain"), (b"trailer", b"x-sum")]})
        await send({"type": "http.response.body", "body": b"part one ", "more_body": True})
        await send({"type": "http.response.body", "body": b"part two", "more_body": False})
        await send({"type": "http.response.trailers", "headers": [(b"x-sum", b"42")],
                    "more_trailers": False})
    elif path == "/pathsend":
        await drain(receive)
        if "http.response.pathsend" not in ext:
            await respond(send, 200, b"no pathsend")
            return
        me = os.path.abspath(__file__)
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/x-python"),
                                (b"content-length", str(os.path.getsize(me)).encode())]})
        await send({"type": "http.response.pathsend", "path": me})
    elif path == "/raise-before":
        raise RuntimeError("asgi-app-error-before-start")
    elif path == "/raise-after":
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"partial", "more_body": True})
        raise RuntimeError("asgi-app-error-after-start")
    elif path == "/nothing":
        await drain(receive)
        return
    elif path == "/slow":
        # In flight until the client sends the rest of its body: a graceful stop must
        # let it finish.
        ident = q.get("id", "")
        first = await receive()
        record("slow-start " + ident)
        body = first.get("body", b"")
        if first.get("more_body"):
            rest, _, _ = await drain(receive)
            body += rest
        await respond(send, 200, b"slow done " + ident.encode() + b" " + body)
    elif path == "/big":
        # n pieces of 64 KiB, each awaited: a client that reads slowly holds it back.
        await drain(receive)
        n = int(q.get("n", "16"))
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/octet-stream")]})
        piece = b"b" * 65536
        for _ in range(n):
            await send({"type": "http.response.body", "body": piece, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        record("big sent")
    elif path == "/tasked":
        # receive and send's awaitables the ways frameworks use them: as a task, through
        # ensure_future and wait_for, and checked as coroutines.
        loop = asyncio.get_running_loop()
        first = receive()
        kinds = [asyncio.iscoroutine(first), inspect.isawaitable(first)]
        msg = await loop.create_task(first)
        kinds.append(msg["type"])
        await asyncio.wait_for(send({"type": "http.response.start", "status": 200,
                                     "headers": [(b"content-type", b"text/plain")]}), 5)
        await asyncio.ensure_future(send({"type": "http.response.body",
                                          "body": repr(kinds).encode()}))
    elif path == "/loop":
        await drain(receive)
        loop = type(asyncio.get_running_loop())
        await respond(send, 200, (loop.__module__ + "." + loop.__name__).encode())
    elif path == "/pid":
        await drain(receive)
        await respond(send, 200, str(os.getpid()).encode())
    else:
        await drain(receive)
        await respond(send, 200, b"Hello, World!")


async def websocket(scope, receive, send):
    path = scope["path"]
    ext = scope.get("extensions") or {}
    msg = await receive()
    assert msg["type"] == "websocket.connect", msg
    if path == "/ws-reject":
        await send({"type": "websocket.close", "code": 1008})
        return
    if path == "/ws-deny":
        if "websocket.http.response" in ext:
            body = b"denied by the app"
            await send({"type": "websocket.http.response.start", "status": 401,
                        "headers": [(b"content-type", b"text/plain"),
                                    (b"content-length", str(len(body)).encode())]})
            await send({"type": "websocket.http.response.body", "body": body})
        else:
            await send({"type": "websocket.close", "code": 1008})
        return
    accept = {"type": "websocket.accept"}
    if query(scope).get("proto") == "1" and scope.get("subprotocols"):
        accept["subprotocol"] = scope["subprotocols"][0]
    await send(accept)
    if path == "/ws-scope":
        await send({"type": "websocket.send", "text": json.dumps(jsonable(scope))})
        await send({"type": "websocket.close", "code": 1000})
        return
    while True:
        msg = await receive()
        if msg["type"] == "websocket.disconnect":
            record("ws-disconnect %s" % msg.get("code"))
            return
        text = msg.get("text")
        if text is not None:
            if text.startswith("close:"):
                code = int(text[6:])
                await send({"type": "websocket.close", "code": code, "reason": "asked"})
                return
            await send({"type": "websocket.send", "text": text})
        else:
            await send({"type": "websocket.send", "bytes": msg.get("bytes") or b""})


async def lifespan(scope, receive, send):
    while True:
        msg = await receive()
        if msg["type"] == "lifespan.startup":
            if "state" in scope:
                scope["state"]["started"] = os.getpid()
            record("startup %d" % os.getpid())
            await send({"type": "lifespan.startup.complete"})
        elif msg["type"] == "lifespan.shutdown":
            record("shutdown %d" % os.getpid())
            await send({"type": "lifespan.shutdown.complete"})
            return


async def app(scope, receive, send):
    if scope["type"] == "http":
        await http(scope, receive, send)
    elif scope["type"] == "websocket":
        await websocket(scope, receive, send)
    elif scope["type"] == "lifespan":
        await lifespan(scope, receive, send)


async def nolifespan_app(scope, receive, send):
    """An app that knows only HTTP: a lifespan scope makes it raise."""
    if scope["type"] != "http":
        raise ValueError("unsupported scope type %s" % scope["type"])
    await http(scope, receive, send)


async def failing_app(scope, receive, send):
    """Lifespan startup fails: the worker must not serve."""
    if scope["type"] == "lifespan":
        msg = await receive()
        if msg["type"] == "lifespan.startup":
            record("startup-failing %d" % os.getpid())
            await send({"type": "lifespan.startup.failed", "message": "database unreachable"})
        return
    await http(scope, receive, send)


async def hello(scope, receive, send):
    """The benchmark's raw hello: no lifespan, no routing."""
    if scope["type"] != "http":
        if scope["type"] == "lifespan":
            while True:
                msg = await receive()
                await send({"type": msg["type"] + ".complete"})
                if msg["type"] == "lifespan.shutdown":
                    return
        return
    await receive()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain"), (b"content-length", b"13")]})
    await send({"type": "http.response.body", "body": b"Hello, World!"})
