"""The Python side of the ASGI worker class (gunicorn-c -k asgi): compiled into the
executable and imported as _gunicorn_c_asgi in each ASGI worker.

C does the HTTP: it accepts, reads and parses each request, builds its scope, and
writes what the application sends (src/workers/asgi.c, docs/asgi.md). What is left
here is what must be a coroutine: the application's task for each request, with the
`receive` and `send` callables it awaits, and the lifespan protocol. The libuv loop of
the worker runs inside the asyncio loop: its descriptor is watched with add_reader and
its timers with call_at (Server.serve), so both share the one thread.

A request's `receive` and `send` (HTTP or WebSocket) are the request's Channel's own (a
C type, whose awaitables are C too: src/workers/asgi.c). finish() tells C when the task
ends."""

import asyncio
import os
import traceback

import _gunicorn_c as _c

ERROR, INFO, DEBUG = 40, 20, 10
EXCEPTION = 41  # ERROR in the log; StatsD counts it as gunicorn.log.exception


def _log_exception(message):
    _c.log(EXCEPTION, message + "\n" + traceback.format_exc().rstrip("\n"))


def new_loop(kind):
    """The event loop --asgi-loop asks for: auto is uvloop when it is importable."""
    if kind in ("auto", "uvloop"):
        try:
            import uvloop
        except ImportError:
            if kind == "uvloop":
                raise
        else:
            return uvloop.new_event_loop()
    return asyncio.new_event_loop()


async def pathsend(ch, message):
    """http.response.pathsend: the file's bytes as the body (its size as the length)."""
    with open(message["path"], "rb") as f:
        size = os.fstat(f.fileno()).st_size
        ch.declare_length(size)
        while True:
            piece = f.read(262144)
            more = len(piece) == 262144
            if ch.send_body(piece, more):
                await ch.drain()
            if not more:
                break


class Server:
    """The worker's ASGI side: the application, the loop, lifespan, one task a request."""

    def __init__(self, app, loop_kind, lifespan, grace):
        self.app = app
        self.loop = new_loop(loop_kind)
        asyncio.set_event_loop(self.loop)
        self.lifespan = lifespan  # "auto", "on" or "off"
        self.grace = grace
        self.state = {}
        self.lifespan_queue = None
        self.lifespan_task = None
        self.supports_lifespan = False
        self.exit = None  # a SystemExit a request's task raised

    # --- lifespan ------------------------------------------------------------------

    def startup(self):
        """Runs lifespan startup. Returns True to serve, False to fail the boot."""
        if self.lifespan == "off":
            return True
        return self.loop.run_until_complete(self._startup())

    async def _startup(self):
        self.lifespan_queue = asyncio.Queue()
        self.lifespan_done = asyncio.Event()
        self.lifespan_result = self.loop.create_future()
        scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"},
                 "state": self.state}
        self.lifespan_task = self.loop.create_task(self._lifespan(scope))
        await self.lifespan_queue.put({"type": "lifespan.startup"})
        outcome, message = await self.lifespan_result
        if outcome == "complete":
            self.supports_lifespan = True
            return True
        if outcome == "unsupported":
            if self.lifespan == "on":
                _c.log(ERROR, "ASGI lifespan startup failed: the application does not "
                       "support lifespan (--asgi-lifespan on)")
                return False
            _c.log(DEBUG, "ASGI lifespan unsupported by the application: going on without")
            return True
        _c.log(ERROR, "ASGI lifespan startup failed%s" % (": " + message if message else ""))
        return False

    async def _lifespan(self, scope):
        self.lifespan_received = False

        async def receive():
            self.lifespan_received = True
            return await self.lifespan_queue.get()

        async def send(message):
            kind = message["type"]
            if kind == "lifespan.startup.complete":
                self._lifespan_outcome("complete", None)
            elif kind == "lifespan.startup.failed":
                self._lifespan_outcome("failed", message.get("message", ""))
            elif kind == "lifespan.shutdown.complete":
                self._lifespan_outcome("complete", None)
            elif kind == "lifespan.shutdown.failed":
                self._lifespan_outcome("failed", message.get("message", ""))

        try:
            await self.app(scope, receive, send)
        except BaseException as e:
            if not self.lifespan_received:
                # An application without lifespan raises on the unknown scope type
                # before it asks for an event.
                if self.lifespan == "on":
                    _log_exception("Exception in ASGI lifespan")
                    self._lifespan_outcome("failed", repr(e))
                else:
                    _c.log(DEBUG, "ASGI lifespan raised %r: taken as unsupported" % (e,))
                    self._lifespan_outcome("unsupported", None)
                return
            _log_exception("Exception in ASGI lifespan")
            self._lifespan_outcome("failed", repr(e))
        else:
            self._lifespan_outcome("unsupported", None)

    def _lifespan_outcome(self, outcome, message):
        if not self.lifespan_result.done():
            self.lifespan_result.set_result((outcome, message))

    def shutdown(self):
        """Runs lifespan shutdown (the worker is leaving gracefully)."""
        if not self.supports_lifespan:
            return
        try:
            self.loop.run_until_complete(self._shutdown())
        except BaseException:
            _log_exception("ASGI lifespan shutdown failed")

    async def _shutdown(self):
        self.lifespan_result = self.loop.create_future()
        await self.lifespan_queue.put({"type": "lifespan.shutdown"})
        outcome, message = await self.lifespan_result
        if outcome == "failed":
            _c.log(ERROR, "ASGI lifespan shutdown failed%s" % (": " + message if message else ""))

    # --- requests ------------------------------------------------------------------

    def client_gone(self, task):
        """The client of a running request went away: the task may go on for
        --asgi-disconnect-grace-period seconds (it gets http.disconnect meanwhile),
        then it is cancelled."""
        if task.done():
            return
        if self.grace > 0:
            self.loop.call_later(self.grace, task.cancel)
        else:
            task.cancel()

    async def run(self, scope, ch):
        """A request's task (C creates it, with the scope and the Channel)."""
        try:
            await self.app(scope, ch.receive, ch.send)
        except asyncio.CancelledError:
            ch.finish(0)
            raise
        except SystemExit as e:
            # INT, QUIT or ABRT (--timeout) raised in the application's code: the loop
            # stops and serve() raises it, out of run_forever, as the worker's exit.
            ch.finish(2)
            self.exit = e
            self.loop.stop()
        except BaseException:
            if not ch.client_gone():
                target = scope["raw_path"].decode("latin-1")
                if scope["query_string"]:
                    target += "?" + scope["query_string"].decode("latin-1")
                _log_exception("Error handling request %s %s" % (scope.get("method", "GET"), target))
            ch.finish(2)
        else:
            ch.finish(1)  # (3 when C knows the response is not complete)

    def serve(self, fd, turn):
        """Runs the loop until C says to stop (Server.stop): libuv inside asyncio."""
        self.loop.add_reader(fd, turn)
        self.loop.call_soon(turn)
        try:
            self.loop.run_forever()
        finally:
            self.loop.remove_reader(fd)
        if self.exit is not None:
            raise self.exit

    def stop(self):
        self.loop.stop()

    def cancel_all(self, tasks):
        """The graceful timeout, or a quick stop: every request task (C's list) is
        cancelled."""
        for task in tasks:
            task.cancel()
        if tasks:
            try:
                self.loop.run_until_complete(asyncio.wait(tasks, timeout=1))
            except BaseException:
                pass

