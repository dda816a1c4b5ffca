"""Toxiproxy 2.x's HTTP API as a Starlette app over a ``ProxyCollection``."""

from __future__ import annotations

import logging
import random

import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from chaos.proxy import VERSION, errors, metrics
from chaos.proxy.collection import ProxyCollection
from chaos.proxy.request_ids import HEADER as REQUEST_ID_HEADER
from chaos.proxy.request_ids import RequestIds
from chaos.proxy.toxics import ToxicSpec

log = logging.getLogger(__name__)


def _json(data: object, status: int = 200) -> Response:
    return Response(orjson.dumps(data), status_code=status, media_type="application/json")


def _error(exc: errors.ApiError) -> Response:
    return _json(exc.body(), exc.status)


async def _body(request: Request) -> object:
    raw = await request.body()
    if not raw.strip():
        raise errors.bad_request("EOF")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise errors.bad_request(str(exc)) from exc


class _RejectBrowsers:
    """Like Toxiproxy: browsers get 403, so a web page cannot drive this unauthenticated API."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http":
            agent = dict(scope.get("headers", [])).get(b"user-agent", b"")
            if agent.startswith(b"Mozilla/"):
                await PlainTextResponse("User agent not allowed\n", 403)(scope, receive, send)
                return
        await self.app(scope, receive, send)


class _RequestId:
    """Like Toxiproxy, every response carries a new ``X-Toxiproxy-Request-Id`` (an xid)."""

    def __init__(self, app, ids: RequestIds) -> None:
        self.app = app
        self.ids = ids

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        header = (REQUEST_ID_HEADER.encode("ascii"), self.ids.next().encode("ascii"))

        async def send_with_id(message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), header]}
            await send(message)

        await self.app(scope, receive, send_with_id)


def create_app(collection: ProxyCollection, *, proxy_metrics: bool = False,
               request_ids: RequestIds | None = None) -> Starlette:
    """The API app; every handler answers errors as ``{"error", "status"}``.

    ``/metrics`` exists only with ``proxy_metrics`` (``--proxy-metrics``), as in Toxiproxy.
    """
    if request_ids is None:  # the counter starts at a draw from the server seed
        request_ids = RequestIds(counter=random.Random(f"{collection.seed}/request-ids")
                                 .getrandbits(24))

    async def reset(request: Request) -> Response:
        await collection.reset()
        return Response(status_code=204)

    async def proxies(request: Request) -> Response:
        if request.method == "GET":
            return _json({name: p.to_json() for name, p in collection.proxies.items()})
        proxy = await collection.create(await _body(request))
        return _json(proxy.to_json(), 201)

    async def populate(request: Request) -> Response:
        created = await collection.populate(await _body(request))
        return _json({"proxies": [p.to_json() for p in created]}, 201)

    async def proxy(request: Request) -> Response:
        name = request.path_params["proxy"]
        if request.method == "GET":
            return _json(collection.get(name).to_json())
        if request.method == "DELETE":
            await collection.delete(name)
            return Response(status_code=204)
        collection.get(name)  # 404 before 400, as Toxiproxy
        updated = await collection.update(name, await _body(request))
        return _json(updated.to_json())

    async def toxics(request: Request) -> Response:
        target = collection.get(request.path_params["proxy"])
        if request.method == "GET":
            return _json([t.to_json() for t in target.toxic_list()])
        spec = ToxicSpec.parse(await _body(request))
        return _json(target.add_toxic(spec).to_json())

    async def toxic(request: Request) -> Response:
        target = collection.get(request.path_params["proxy"])
        name = request.path_params["toxic"]
        if request.method == "GET":
            return _json(target.get_toxic(name).to_json())
        if request.method == "DELETE":
            target.remove_toxic(name)
            return Response(status_code=204)
        target.get_toxic(name)
        return _json(target.update_toxic(name, await _body(request)).to_json())

    async def version(request: Request) -> Response:
        return Response(orjson.dumps({"version": VERSION}) + b"\n",
                        media_type="application/json;charset=utf-8")

    async def metrics_text(request: Request) -> Response:
        return PlainTextResponse(metrics.render(collection.meters()),
                                 media_type="text/plain; version=0.0.4")

    async def api_error(request: Request, exc: Exception) -> Response:
        return _error(exc)  # type: ignore[arg-type]

    async def http_error(request: Request, exc: Exception) -> Response:
        status = getattr(exc, "status_code", 500)
        return _json({"error": getattr(exc, "detail", "error"), "status": status}, status)

    async def crash(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return _json({"error": f"internal error: {exc}", "status": 500}, 500)

    routes = [
        Route("/reset", reset, methods=["POST"]),
        Route("/proxies", proxies, methods=["GET", "POST"]),
        Route("/populate", populate, methods=["POST"]),
        Route("/proxies/{proxy}", proxy, methods=["GET", "POST", "PATCH", "DELETE"]),
        Route("/proxies/{proxy}/toxics", toxics, methods=["GET", "POST"]),
        Route("/proxies/{proxy}/toxics/{toxic}", toxic,
              methods=["GET", "POST", "PATCH", "DELETE"]),
        Route("/version", version, methods=["GET"]),
    ]
    if proxy_metrics:
        routes.append(Route("/metrics", metrics_text, methods=["GET"]))
    app = Starlette(routes=routes, exception_handlers={
        errors.ApiError: api_error, HTTPException: http_error, Exception: crash})
    app.add_middleware(_RejectBrowsers)
    app.add_middleware(_RequestId, ids=request_ids)  # outermost: refusals get an id too
    return app
