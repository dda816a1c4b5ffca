"""A deliberately broken toy key-value cluster, for testing ``--runtime external``.

It speaks the gateway API the harness drives (``POST /data`` ``{"key", "value"}`` -> 200
``{"version"}``; ``GET /data/{key}`` -> 200 ``{"value", "version"}`` or 404; 503 with JSON
when no replica answers), and gets two things wrong on purpose:

- **versions are node-local counters**: the replica that coordinates a write stamps it with
  its own counter, and the replicas keep the highest stamp. Counters of different replicas
  are not comparable (and a restarted replica starts again from 0), so a later write through
  one replica loses to an earlier one through another: acknowledged writes are lost;
- **reads return the first answer**, from whichever replica answers first (an empty,
  restarted one included): reads are stale.

Replicas keep everything in memory. Each process writes its pid to ``--pidfile`` when it
starts, so a control file can kill, pause and restart it by pid. Run either::

    python -m tests.integration.toy_cluster replica --node-id node-1 --port 8101 --pidfile p
    python tests/integration/toy_cluster.py gateway --port 8100 --replicas URL,URL,URL

It imports neither ``chaos`` nor ``system``: it stands for someone else's cluster.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import socket
from pathlib import Path

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

TIMEOUT = 0.5  # seconds the gateway waits on one replica


def replica_app(node_id: str) -> Starlette:
    """One in-memory replica: ``POST /coordinate`` stamps a write with this node's own
    counter (the bug); ``PUT``/``GET /replica/{key}`` store (the highest stamp wins) and read."""
    data: dict[str, tuple[str, list]] = {}
    counter = 0

    def store(key: str, value: str, version: list) -> None:
        current = data.get(key)
        if current is None or (version[1], version[2]) > (current[1][1], current[1][2]):
            data[key] = (value, version)

    async def coordinate(request: Request) -> JSONResponse:
        nonlocal counter
        body = await request.json()
        counter += 1
        version = [0, counter, node_id]
        store(body["key"], body["value"], version)
        return JSONResponse({"version": version})

    async def put(request: Request) -> JSONResponse:
        body = await request.json()
        store(request.path_params["key"], body["value"], body["version"])
        return JSONResponse({"ok": True})

    async def get(request: Request) -> JSONResponse:
        found = data.get(request.path_params["key"])
        if found is None:
            return JSONResponse({"error": "not found"}, status_code=404)
        return JSONResponse({"value": found[0], "version": found[1]})

    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"node": node_id, "keys": len(data)})

    return Starlette(routes=[Route("/coordinate", coordinate, methods=["POST"]),
                             Route("/replica/{key:path}", put, methods=["PUT"]),
                             Route("/replica/{key:path}", get, methods=["GET"]),
                             Route("/health", health)])


def gateway_app(replicas: list[str], seed: int) -> Starlette:
    """The gateway: a write goes to a random replica, which stamps it, then to the others;
    a read asks every replica and returns the first answer."""
    rng = random.Random(seed)
    # h11 writes a request's head and body apart: without NODELAY, Nagle holds the body
    client = httpx.AsyncClient(timeout=TIMEOUT, transport=httpx.AsyncHTTPTransport(
        socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]))

    async def write(request: Request) -> JSONResponse:
        try:
            body = await request.json()
        except ValueError:
            return JSONResponse({"error": "expected JSON"}, status_code=400)
        key, value = body.get("key"), body.get("value")
        if not isinstance(key, str) or not key or not isinstance(value, str):
            return JSONResponse({"error": "key and value must be strings"}, status_code=400)
        order = rng.sample(replicas, len(replicas))
        for i, coordinator in enumerate(order):
            try:
                reply = await client.post(f"{coordinator}/coordinate",
                                          json={"key": key, "value": value})
                reply.raise_for_status()
            except httpx.HTTPError:
                continue
            version = reply.json()["version"]
            others = order[:i] + order[i + 1:]
            await asyncio.gather(*(client.put(f"{r}/replica/{key}",
                                              json={"value": value, "version": version})
                                   for r in others), return_exceptions=True)
            return JSONResponse({"version": version})
        return JSONResponse({"error": "no replica answered", "acks": 0, "needed": 1,
                             "definite": True}, status_code=503)

    async def read(request: Request) -> JSONResponse:
        key = request.path_params["key"]
        pending = {asyncio.ensure_future(client.get(f"{r}/replica/{key}")) for r in replicas}
        try:
            while pending:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    if task.exception() is None and task.result().status_code in (200, 404):
                        reply = task.result()  # the first answer wins: the bug
                        return JSONResponse(reply.json(), status_code=reply.status_code)
        finally:
            for task in pending:
                task.cancel()
        return JSONResponse({"error": "no replica answered", "acks": 0, "needed": 1},
                            status_code=503)

    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"replicas": len(replicas)})

    return Starlette(routes=[Route("/data", write, methods=["POST"]),
                             Route("/data/{key:path}", read, methods=["GET"]),
                             Route("/health", health)],
                     lifespan=lambda app: _closing(client))


@contextlib.asynccontextmanager
async def _closing(client: httpx.AsyncClient):
    yield
    await client.aclose()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="toy_cluster", description=__doc__.split("\n")[0])
    parser.add_argument("role", choices=("replica", "gateway"))
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--node-id", default="node-1")
    parser.add_argument("--replicas", default="", help="the gateway's replicas: URL,URL,...")
    parser.add_argument("--pidfile", default=None)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.role == "gateway":
        replicas = [u.rstrip("/") for u in args.replicas.split(",") if u]
        if not replicas:
            parser.error("the gateway needs --replicas URL,URL,...")
        app = gateway_app(replicas, args.seed)
    else:
        app = replica_app(args.node_id)
    if args.pidfile:
        tmp = Path(f"{args.pidfile}.tmp")
        tmp.write_text(f"{os.getpid()}\n")
        tmp.replace(args.pidfile)  # atomic: a reader never sees half a pid
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
