"""The transport seam between coordinators and nodes.

A :class:`Transport` sends one JSON request to ``address`` (``host:port``) and returns a
:class:`Reply`, or raises :class:`TransportError` saying whether the request certainly did
not reach the peer (``definite``: connection refused) or may have (a timeout). Coordinators
are written against this protocol, so tests swap in :class:`MockTransport`, which calls a
plain function instead of the network (the idea of httpx's ``MockTransport``).
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import Any, NamedTuple, Protocol

import aiohttp
import orjson

__all__ = ["Reply", "Raw", "TransportError", "Transport", "AiohttpTransport", "MockTransport"]


class Reply(NamedTuple):
    status: int
    body: Any

    @classmethod
    def parse(cls, status: int, raw: bytes) -> Reply:
        """A reply from its raw body: JSON, or the start of a non-JSON body as an error."""
        try:
            body = orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError:
            body = {"error": raw[:200].decode("utf-8", "replace")}
        return cls(status, body)


class TransportError(Exception):
    def __init__(self, address: str, reason: str, *, definite: bool) -> None:
        super().__init__(f"{address}: {reason}")
        self.address = address
        self.reason = reason
        self.definite = definite  # True: the request was certainly not processed


class Transport(Protocol):
    async def request(
        self, method: str, address: str, path: str, *, json: Any = None, timeout: float,
        headers: dict[str, str] | None = None,
    ) -> Reply: ...

    async def close(self) -> None: ...


class Raw(bytes):
    """A JSON body serialized once, sent as is to every replica."""


class AiohttpTransport:
    """HTTP/1.1 with keep-alive connection pools (aiohttp)."""

    def __init__(self, *, pool_size: int = 256) -> None:
        self._pool_size = pool_size
        self._session: aiohttp.ClientSession | None = None
        self._timeouts: dict[float, aiohttp.ClientTimeout] = {}

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=self._pool_size, limit_per_host=64,
                                             ttl_dns_cache=300, enable_cleanup_closed=True)
            self._session = aiohttp.ClientSession(
                connector=connector, json_serialize=lambda o: orjson.dumps(o).decode(),
                skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding"),
                auto_decompress=False,
            )
        return self._session

    async def request(self, method, address, path, *, json=None, timeout, headers=None) -> Reply:
        session = self._get_session()
        data = None if json is None else json if isinstance(json, Raw) else orjson.dumps(json)
        hdrs = _JSON_HEADERS if data is not None else {}
        if headers:
            hdrs = {**hdrs, **headers}
        limit = self._timeouts.get(timeout)
        if limit is None:
            limit = self._timeouts[timeout] = aiohttp.ClientTimeout(total=timeout)
        try:
            async with session.request(method, f"http://{address}{path}", data=data, headers=hdrs,
                                       timeout=limit) as resp:
                raw = await resp.read()
                status = resp.status
        except (aiohttp.ClientConnectorError, ConnectionRefusedError) as exc:
            raise TransportError(address, f"cannot connect: {exc}", definite=True) from None
        except TimeoutError:
            raise TransportError(address, f"no answer within {timeout}s", definite=False) from None
        except aiohttp.ClientError as exc:
            raise TransportError(address, f"{type(exc).__name__}: {exc}", definite=False) from None
        return Reply.parse(status, raw)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


_JSON_HEADERS = {"content-type": "application/json"}

Handler = Callable[[str, str, str, Any], Reply | Awaitable[Reply]]


class MockTransport:
    """Routes every request to ``handler(method, address, path, json)``.

    The handler may return a :class:`Reply` (or an awaitable of one) or raise
    :class:`TransportError` to simulate a dead or slow peer.
    """

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.calls: list[tuple[str, str, str, Any]] = []
        self.headers: list[dict[str, str] | None] = []  # of each call, in the same order

    async def request(self, method, address, path, *, json=None, timeout, headers=None) -> Reply:
        if isinstance(json, Raw):
            json = orjson.loads(bytes(json))
        self.calls.append((method, address, path, json))
        self.headers.append(headers)
        result = self.handler(method, address, path, json)
        if inspect.isawaitable(result):
            try:
                result = await asyncio.wait_for(result, timeout)
            except TimeoutError:
                raise TransportError(address, f"no answer within {timeout}s", definite=False) from None
        return result

    async def close(self) -> None:
        return None
