"""The live dashboard's web server: a Starlette app, bound to 127.0.0.1 only.

``GET /`` the page (self-contained: no CDN, works offline), ``GET /events`` server-sent
events (one ``snapshot`` event per poll, each a :meth:`Collector.poll` snapshot as JSON),
``GET /snapshot`` the latest snapshot once. One poller task polls the cluster every
``interval`` seconds while at least one page listens, and shares each snapshot with all of
them: an idle dashboard costs the cluster nothing.

:class:`Dashboard` runs the server in a thread (tests, notebooks); :func:`serve` runs it in
the foreground until Ctrl-C (``chaoslab dashboard``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
from collections.abc import AsyncIterator

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response, StreamingResponse
from starlette.routing import Route

from chaos.dashboard.collect import Collector, Target
from chaos.dashboard.page import PAGE
from chaos.wait import wait_for

__all__ = ["Hub", "create_app", "Dashboard", "serve", "bind", "HOST", "DEFAULT_PORT",
           "DEFAULT_INTERVAL"]

log = logging.getLogger("chaoslab.dashboard")

HOST = "127.0.0.1"  # never another interface: the page shows the cluster's addresses
DEFAULT_PORT = 8765
DEFAULT_INTERVAL = 0.5


class Hub:
    """Polls while someone listens; every listener gets the newest snapshot (a slow one
    skips snapshots rather than queueing them)."""

    def __init__(self, collector: Collector, *, interval: float = DEFAULT_INTERVAL) -> None:
        self.collector = collector
        self.interval = interval
        self.latest: dict | None = None
        self._listeners: set[asyncio.Queue] = set()
        self._task: asyncio.Task | None = None

    @property
    def polling(self) -> bool:
        """Whether the poller runs (someone listens, or it is finishing its last poll)."""
        return self._task is not None and not self._task.done()

    async def _run(self) -> None:
        while self._listeners:
            try:
                snapshot = await self.collector.poll()
            except Exception as exc:  # noqa: BLE001 - the page shows it, the poller goes on
                log.warning("poll failed: %s", exc, exc_info=True)
                snapshot = {"error": f"{type(exc).__name__}: {exc}"}
            self.latest = snapshot
            for queue in list(self._listeners):
                if queue.full():
                    queue.get_nowait()
                queue.put_nowait(snapshot)
            await asyncio.sleep(self.interval)  # pacing of the polls, not a wait for anything

    @contextlib.asynccontextmanager
    async def listen(self) -> AsyncIterator[asyncio.Queue]:
        queue: asyncio.Queue = asyncio.Queue(maxsize=1)
        if self.latest is not None:
            queue.put_nowait(self.latest)
        self._listeners.add(queue)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="dashboard-poller")
        try:
            yield queue
        finally:
            self._listeners.discard(queue)

    async def snapshot(self) -> dict:
        """The newest snapshot, polling once if nobody is listening."""
        if self._listeners and self.latest is not None:
            return self.latest
        self.latest = await self.collector.poll()
        return self.latest

    async def close(self) -> None:
        self._listeners.clear()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        await self.collector.aclose()


def _event(snapshot: dict) -> bytes:
    return b"event: snapshot\ndata: " + orjson.dumps(snapshot) + b"\n\n"


def create_app(target: Target, *, interval: float = DEFAULT_INTERVAL,
               collector: Collector | None = None) -> Starlette:
    hub = Hub(collector or Collector(target), interval=interval)

    async def page(request: Request):
        return HTMLResponse(PAGE, headers={"cache-control": "no-store"})

    async def events(request: Request):
        async def stream() -> AsyncIterator[bytes]:
            yield b"retry: 1000\n\n"
            async with hub.listen() as queue:
                while True:
                    yield _event(await queue.get())

        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"cache-control": "no-store",
                                          "x-accel-buffering": "no"})

    async def snapshot(request: Request):
        return Response(orjson.dumps(await hub.snapshot()), media_type="application/json")

    @contextlib.asynccontextmanager
    async def lifespan(app):
        try:
            yield
        finally:
            await hub.close()

    app = Starlette(routes=[Route("/", page), Route("/events", events),
                            Route("/snapshot", snapshot)], lifespan=lifespan)
    app.state.hub = hub
    return app


def bind(port: int) -> socket.socket:
    """A listening socket on 127.0.0.1:``port`` (0: a free one); OSError if taken."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((HOST, port))
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def _server(app: Starlette) -> uvicorn.Server:
    return uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False,
                                         timeout_graceful_shutdown=1, lifespan="on"))


class Dashboard:
    """The dashboard served from a thread: ``with Dashboard(target) as d: d.url``."""

    def __init__(self, target: Target, *, port: int = 0,
                 interval: float = DEFAULT_INTERVAL) -> None:
        self.sock = bind(port)
        self.port = self.sock.getsockname()[1]
        self.url = f"http://{HOST}:{self.port}"
        self.server = _server(create_app(target, interval=interval))
        self._thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]},
                                        name="chaoslab-dashboard", daemon=True)

    def start(self) -> Dashboard:
        self._thread.start()
        wait_for(lambda: self.server.started, timeout=10, interval=0.02,
                 description=f"the dashboard to listen on {self.url}",
                 abort=lambda: None if self._thread.is_alive() else "its thread ended")
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        self.sock.close()

    def __enter__(self) -> Dashboard:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve(target: Target, sock: socket.socket, *, interval: float = DEFAULT_INTERVAL) -> None:
    """Serve on ``sock`` (from :func:`bind`) until Ctrl-C or SIGTERM."""
    _server(create_app(target, interval=interval)).run(sockets=[sock])
