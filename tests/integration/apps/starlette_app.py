"""A Starlette application for the `-k asgi` tests (Debian's python3-starlette).

  /              JSON {"framework": "starlette"}
  /items/{id}    path parameter and query string as JSON
  /stream        StreamingResponse of five lines
  /background    answers, then a background task appends "background" to $ASGI_EVENTS
  /ws            WebSocket: echoes text with an "echo: " prefix until the client closes
"""

import os

from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.responses import JSONResponse, PlainTextResponse, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocketDisconnect


def record(line):
    path = os.environ.get("ASGI_EVENTS")
    if path:
        with open(path, "a") as f:
            f.write(line + "\n")


async def home(request):
    return JSONResponse({"framework": "starlette"})


async def item(request):
    return JSONResponse({"id": request.path_params["id"], "q": request.query_params.get("q"),
                         "root_path": request.scope.get("root_path")})


async def stream(request):
    async def lines():
        for i in range(5):
            yield "line %d\n" % i
    return StreamingResponse(lines(), media_type="text/plain")


async def background(request):
    return PlainTextResponse("queued", background=BackgroundTask(record, "background"))


async def ws(websocket):
    await websocket.accept()
    try:
        while True:
            text = await websocket.receive_text()
            await websocket.send_text("echo: " + text)
    except WebSocketDisconnect:
        pass


app = Starlette(routes=[
    Route("/", home),
    Route("/items/{id:int}", item),
    Route("/stream", stream),
    Route("/background", background),
    WebSocketRoute("/ws", ws),
])
