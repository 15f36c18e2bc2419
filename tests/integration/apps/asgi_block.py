"""An ASGI app that blocks its event loop (a synchronous sleep in a coroutine), for
--timeout under -k asgi."""

import time


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    time.sleep(60)
