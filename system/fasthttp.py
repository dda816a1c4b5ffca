"""A lean HTTP/1.1 keep-alive client transport: asyncio protocols plus the httptools parser.

Why not aiohttp here: a quorum write is three requests, and on this 2-core machine aiohttp's
per-request machinery cost about 1.1 ms of client CPU per write, more than the three nodes
together; this transport does the same for a fraction of that (see
``benchmarks/bench_cluster.py``, which measures both in one run). It speaks only what the
cluster's services answer: JSON bodies with Content-Length or chunked encoding.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from typing import Any

import httptools
import orjson

from system.transport import Raw, Reply, TransportError

__all__ = ["PooledTransport"]

MAX_IDLE_PER_PEER = 64


class _Connection(asyncio.Protocol):
    __slots__ = ("transport", "parser", "waiter", "status", "body", "closed", "keep_alive")

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.waiter: asyncio.Future | None = None
        self.status = 0
        self.body: list[bytes] = []
        self.closed = False
        self.keep_alive = True

    # asyncio.Protocol
    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(ConnectionError(f"malformed HTTP response: {exc}"))
            self.close()

    def connection_lost(self, exc) -> None:
        self.closed = True
        self._fail(ConnectionResetError("connection closed before the response was complete"))

    # httptools callbacks
    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()
        self.keep_alive = self.parser.should_keep_alive()

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        waiter, self.waiter = self.waiter, None
        body, self.body = b"".join(self.body), []
        if waiter is not None and not waiter.done():
            waiter.set_result((self.status, body))

    def _fail(self, exc: Exception) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)

    def send(self, data: bytes) -> asyncio.Future:
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(data)
        return self.waiter

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class PooledTransport:
    """Keep-alive connections pooled per peer; one request at a time per connection."""

    def __init__(self) -> None:
        self._idle: dict[str, list[_Connection]] = defaultdict(list)
        self._busy: set[_Connection] = set()

    async def _connect(self, address: str) -> _Connection:
        host, _, port = address.rpartition(":")
        loop = asyncio.get_running_loop()
        try:
            _, conn = await loop.create_connection(_Connection, host, int(port))
        except OSError as exc:
            raise TransportError(address, f"cannot connect: {exc}", definite=True) from None
        return conn

    async def request(self, method: str, address: str, path: str, *, json: Any = None,
                      timeout: float, headers: dict[str, str] | None = None) -> Reply:
        data = b"" if json is None else json if isinstance(json, Raw) else orjson.dumps(json)
        extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items()) if headers else ""
        head = (f"{method} {path} HTTP/1.1\r\nHost: {address}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n{extra}\r\n")
        idle = self._idle[address]
        conn = None
        while idle and conn is None:
            candidate = idle.pop()
            conn = None if candidate.closed else candidate
        try:
            async with asyncio.timeout(timeout):
                if conn is None:
                    conn = await self._connect(address)
                self._busy.add(conn)
                status, raw = await conn.send(head.encode("latin-1") + data)
        except TimeoutError:
            if conn is not None:
                conn.close()  # a late answer must not be read as the next request's
            raise TransportError(address, f"no answer within {timeout}s", definite=False) from None
        except (ConnectionError, OSError) as exc:
            if conn is not None:
                conn.close()
            raise TransportError(address, f"{type(exc).__name__}: {exc}", definite=False) from None
        finally:
            if conn is not None:
                self._busy.discard(conn)
        if conn.keep_alive and not conn.closed and len(idle) < MAX_IDLE_PER_PEER:
            idle.append(conn)
        else:
            conn.close()
        return Reply.parse(status, raw)

    async def close(self) -> None:
        for conns in self._idle.values():
            for conn in conns:
                conn.close()
        self._idle.clear()
        for conn in list(self._busy):
            conn.close()
        with contextlib.suppress(Exception):
            await asyncio.sleep(0)
