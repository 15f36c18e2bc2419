"""A FastAPI application for the `-k asgi` tests and the benchmark (Debian's
python3-fastapi).

  GET  /json           {"message": "Hello, World!"} (the benchmark's JSON endpoint)
  GET  /add?a=1&b=2    query parameters, validated as ints (422 otherwise)
  POST /items          a pydantic model body, echoed with a computed total (422 if invalid)
  WS   /ws             echoes text with an "fastapi: " prefix until the client closes
"""

from fastapi import FastAPI, WebSocket, WebSocketDisconnect
from pydantic import BaseModel

app = FastAPI()


class Item(BaseModel):
    name: str
    price: float
    quantity: int = 1


@app.get("/json")
async def hello():
    return {"message": "Hello, World!"}


@app.get("/add")
async def add(a: int, b: int = 0):
    return {"sum": a + b}


@app.post("/items")
async def create(item: Item):
    return {"name": item.name, "total": item.price * item.quantity}


@app.websocket("/ws")
async def ws(websocket: WebSocket):
    await websocket.accept()
    try:
        while True:
            text = await websocket.receive_text()
            await websocket.send_text("fastapi: " + text)
    except WebSocketDisconnect:
        pass
