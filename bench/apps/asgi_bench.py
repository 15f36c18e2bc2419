"""The ASGI applications of bench/asgi.py (one module, so that every server loads the
same code):

  hello   raw ASGI 3: "Hello, World!" with Content-Length; a WebSocket on any path
          echoes every message back (text as text, bytes as bytes); lifespan answered
  fastapi FastAPI, GET /json -> {"message": "Hello, World!"}
"""

HELLO = b"Hello, World!"
HEADERS = [(b"content-type", b"text/plain"), (b"content-length", b"13")]


async def hello(scope, receive, send):
    kind = scope["type"]
    if kind == "http":
        await receive()
        await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
        await send({"type": "http.response.body", "body": HELLO})
    elif kind == "websocket":
        msg = await receive()  # websocket.connect
        await send({"type": "websocket.accept"})
        while True:
            msg = await receive()
            if msg["type"] != "websocket.receive":
                return
            if msg.get("text") is not None:
                await send({"type": "websocket.send", "text": msg["text"]})
            else:
                await send({"type": "websocket.send", "bytes": msg["bytes"]})
    elif kind == "lifespan":
        while True:
            msg = await receive()
            await send({"type": msg["type"] + ".complete"})
            if msg["type"] == "lifespan.shutdown":
                return


def _fastapi():
    from fastapi import FastAPI

    api = FastAPI()

    @api.get("/json")
    async def json_endpoint():
        return {"message": "Hello, World!"}

    return api


fastapi = _fastapi()
