"""Shared HTTP plumbing of the services: JSON bodies with limits, errors, request ids, logs.

A request's id travels between hops in the ``X-Request-ID`` header: the middleware takes the
caller's (or makes one), keeps it in a context variable for the time of the request, and the
coordinator sends it on to the replicas. Every log line written meanwhile, by any logger and
by the background tasks the request starts, carries it (``--log-format json``).
"""

from __future__ import annotations

import contextvars
import datetime
import logging
import time
import uuid
from typing import TYPE_CHECKING, Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from system.config import LOG_FORMATS
from system.validation import MAX_VALUE_BYTES, BadRequest

if TYPE_CHECKING:
    from system.metrics import HttpMetrics

__all__ = ["JSON", "json_response", "error_response", "read_json", "RequestIdMiddleware",
           "EXCEPTION_HANDLERS", "FastRoutes", "configure_logging", "JsonFormatter",
           "RequestContextFilter",
           "request_id", "REQUEST_ID_HEADER", "MAX_BODY_BYTES", "serve"]

REQUEST_ID_HEADER = "x-request-id"
# A value of 1 MiB may need up to 6 bytes per character once JSON-escaped; allow that plus room.
MAX_BODY_BYTES = 6 * MAX_VALUE_BYTES + 64 * 1024

access_log = logging.getLogger("chaoslab.access")

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
ROUTE_KEY = "chaoslab.route"  # the route template FastRoutes served (see system.metrics)

# (service id, request id) of the request being served in this context; asyncio tasks
# started while serving it (replica calls, hints, repairs) copy it
_request: contextvars.ContextVar[tuple[str, str]] = contextvars.ContextVar(
    "chaoslab_request", default=("", ""))


class RequestContextFilter(logging.Filter):
    """Stamps every record with ``service`` and ``request_id`` (of the request being served;
    empty outside of one). ``service`` defaults to the process's own."""

    def __init__(self, service: str = "") -> None:
        super().__init__()
        self.service = service

    def filter(self, record: logging.LogRecord) -> bool:
        service, rid = _request.get()
        record.service = service or self.service
        record.request_id = rid
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, message, service,
    request_id; ``exception`` when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        out = {
            "time": datetime.datetime.fromtimestamp(record.created, datetime.UTC)
                    .isoformat(timespec="milliseconds"),
            "level": record.levelname, "logger": record.name, "message": record.getMessage(),
            "service": getattr(record, "service", ""),
            "request_id": getattr(record, "request_id", ""),
        }
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(out).decode()


def configure_logging(*, level: str, fmt: str = "text", service: str = "") -> None:
    """The process's logging: ``text`` (the default, for people) or ``json`` (one object per
    line with the request id, for machines). Does nothing if the root logger already has a
    handler (an embedding program configured logging)."""
    if fmt not in LOG_FORMATS:
        raise ValueError(f"log format must be one of {LOG_FORMATS}, got {fmt!r}")
    handler = logging.StreamHandler()
    handler.addFilter(RequestContextFilter(service))
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(level=level.upper(), handlers=[handler])


class JSON(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def json_response(content: Any, status: int = 200, headers: dict | None = None) -> JSON:
    return JSON(content, status_code=status, headers=headers)


def error_response(status: int, message: str, **extra: Any) -> JSON:
    return JSON({"error": message, "status": status, **extra}, status_code=status)


async def read_json(request: Request, *, limit: int = MAX_BODY_BYTES) -> Any:
    """The request body as JSON, refusing bodies over ``limit`` before reading them whole."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            if int(declared) > limit:
                raise BadRequest(f"request body is {declared} bytes; the limit is {limit}", 413)
        except ValueError:
            raise BadRequest("invalid Content-Length header") from None
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BadRequest(f"request body exceeds the limit of {limit} bytes", 413)
        chunks.append(chunk)
    return decode_json(b"".join(chunks))


def decode_json(body: bytes) -> Any:
    """A request body as JSON, or a :class:`BadRequest` saying what is wrong with it."""
    if not body:
        raise BadRequest("request body is empty; expected a JSON object")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"malformed JSON: {exc}") from None


async def _bad_request(request: Request, exc: BadRequest) -> JSON:
    return error_response(exc.status, exc.message)


async def _no_route(request: Request, exc) -> JSON:
    return error_response(getattr(exc, "status_code", 404),
                          f"no route {request.method} {request.url.path}")


# Starlette exception handlers of every service: JSON errors that name the problem.
EXCEPTION_HANDLERS = {BadRequest: _bad_request, 404: _no_route, 405: _no_route}


def request_id(request: Request) -> str:
    return request.scope.get("request_id") or request.headers.get(REQUEST_ID_HEADER) or ""


class RequestIdMiddleware:
    """Give every request an id (the caller's ``X-Request-ID`` or a new one), echo it in the
    response, and write one access-log line with it; every log line written while the
    request is served carries the id too (see :class:`RequestContextFilter`). Counts and
    times the request into ``metrics`` when given. Also turns a ``BadRequest`` escaping a
    handler, or any other exception, into a JSON error instead of a bare 500 page."""

    def __init__(self, app, *, service: str, metrics: HttpMetrics | None = None) -> None:
        self.app = app
        self.service = service
        self.metrics = metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        rid = None
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                rid = value.decode("latin-1")[:128]
                break
        if not rid:
            rid = uuid.uuid4().hex[:16]
        scope["request_id"] = rid
        token = _request.set((self.service, rid))
        status_holder = [500]
        started = time.perf_counter()

        async def send_with_id(message):
            if message["type"] == "http.response.start":
                status_holder[0] = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", rid.encode("latin-1"))]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except BadRequest as exc:
            await error_response(exc.status, exc.message)(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            if self.metrics is not None:
                self.metrics.observe(scope, status_holder[0], elapsed)
            if access_log.isEnabledFor(logging.INFO):
                access_log.info(
                    "%s %s %s %d %.1fms rid=%s", self.service, scope["method"], scope["path"],
                    status_holder[0], elapsed * 1000, rid,
                )
            _request.reset(token)


def serve(app, *, host: str, port: int, log_level: str, workers: int = 1, factory: str | None = None,
          log_format: str = "text", service: str = "") -> None:
    """Run an ASGI app with uvicorn (uvloop and httptools when installed). ``factory`` (for
    ``workers`` > 1) configures each worker's logging itself."""
    import uvicorn

    configure_logging(level=log_level, fmt=log_format, service=service)
    # json: uvicorn's own lines go through the root handler too, instead of its text handlers
    lean = {**_LEAN, **({"log_config": None} if log_format == "json" else {})}
    if workers > 1 and factory:
        uvicorn.run(factory, factory=True, host=host, port=port, workers=workers,
                    log_level=log_level, **lean)
    else:
        uvicorn.run(app, host=host, port=port, log_level=log_level, timeout_graceful_shutdown=2,
                    **lean)


# The access log is ours (RequestIdMiddleware); no proxy-header rewriting, no per-response
# Date/Server headers: about 10% of a node's CPU per request.
_LEAN = {"access_log": False, "proxy_headers": False, "server_header": False, "date_header": False}


class FastRoutes:
    """Serve a few hot JSON endpoints straight from ASGI, without the framework's routing and
    middleware stack; everything else goes to ``app``.

    ``routes[(method, path)]`` handlers get ``(json_body, scope)``; ``prefixes[(method,
    template)]`` handlers, with a template such as ``/data/{key}``, get ``(rest_of_path,
    scope)`` for any path that starts with the part before ``{`` (the path is already
    percent-decoded). Both return ``(status, payload)``; a :class:`BadRequest` becomes its
    4xx. The scope's ``chaoslab.route`` names the route served (the metrics' label)."""

    def __init__(self, app, routes: dict[tuple[str, str], Any] | None = None, *,
                 prefixes: dict[tuple[str, str], Any] | None = None,
                 limit: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.routes = routes or {}
        # (method, prefix) -> (template, handler)
        self.prefixes = {(m, t.partition("{")[0]): (t, h) for (m, t), h in (prefixes or {}).items()}
        self.limit = limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        method, path = scope["method"], scope["path"]
        try:
            handler = self.routes.get((method, path))
            if handler is not None:
                scope[ROUTE_KEY] = path
                status, payload = await handler(await self._body(receive), scope)
            else:
                for (m, prefix), (template, handler) in self.prefixes.items():
                    if m == method and path.startswith(prefix) and len(path) > len(prefix):
                        scope[ROUTE_KEY] = template
                        status, payload = await handler(path[len(prefix):], scope)
                        break
                else:
                    return await self.app(scope, receive, send)
        except BadRequest as exc:
            status, payload = exc.status, {"error": exc.message, "status": exc.status}
        data = orjson.dumps(payload)
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(data)).encode())]})
        await send({"type": "http.response.body", "body": data})

    async def _body(self, receive) -> Any:
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise BadRequest("client disconnected before sending the body")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                raise BadRequest(f"request body exceeds the limit of {self.limit} bytes", 413)
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        parsed = decode_json(b"".join(chunks))
        if not isinstance(parsed, dict):
            raise BadRequest(f"expected a JSON object, got {type(parsed).__name__}")
        return parsed
