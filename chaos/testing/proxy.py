"""Helpers shared by the proxy tests and the benchmark: local upstream servers and probes.

Upstream servers run on their own asyncio loop in a background thread and always stop on exit.
"""

from __future__ import annotations

import asyncio
import socket
import statistics
import threading
import time
from collections.abc import Awaitable, Callable

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Echo every byte back until the client closes."""
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()


def blob(size: int) -> Handler:
    """Send ``size`` bytes as soon as a client connects, then close."""
    payload = bytes(range(256)) * (65536 // 256)

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            left = size
            while left > 0:
                part = payload[:min(left, len(payload))]
                writer.write(part)
                left -= len(part)
                await writer.drain()
            await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    return handler


def sink() -> Handler:
    """Read until EOF, then answer the byte count as ASCII and close."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        total = 0
        try:
            while data := await reader.read(262144):
                total += len(data)
            writer.write(str(total).encode())
            await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    return handler


class TcpServer:
    """A TCP server on 127.0.0.1 running ``handler`` per connection, in a background thread."""

    def __init__(self, handler: Handler = echo) -> None:
        self.handler = handler
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def __enter__(self) -> TcpServer:
        self._thread = threading.Thread(target=self._run, name="test-upstream", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("test upstream server did not start within 10s")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(10)

    def _run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        server = await asyncio.start_server(self._handle, "127.0.0.1", 0, backlog=1024)
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        async with server:
            await self._stop.wait()

    async def _handle(self, reader, writer) -> None:
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        await self.handler(reader, writer)


def connect(port: int, *, timeout: float = 5.0) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def recv_exactly(sock: socket.socket, n: int) -> bytes:
    parts, got = [], 0
    while got < n:
        data = sock.recv(n - got)
        if not data:
            raise ConnectionError(f"closed after {got} of {n} bytes")
        parts.append(data)
        got += len(data)
    return b"".join(parts)


def recv_all(sock: socket.socket, *, max_bytes: int = 1 << 30) -> bytes:
    """Read until the peer closes; a reset after some bytes raises ConnectionResetError."""
    parts, got = [], 0
    while got < max_bytes and (data := sock.recv(65536)):
        parts.append(data)
        got += len(data)
    return b"".join(parts)


def round_trips(sock: socket.socket, count: int, payload: bytes = b"x") -> list[float]:
    """Seconds for each of ``count`` echo round trips of ``payload``."""
    times = []
    for _ in range(count):
        start = time.perf_counter()
        sock.sendall(payload)
        recv_exactly(sock, len(payload))
        times.append(time.perf_counter() - start)
    return times


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000.0


def refused(port: int) -> bool:
    """True if a connection to 127.0.0.1:port is refused."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0):
            return False
    except ConnectionRefusedError:
        return True
    except OSError:
        return False


def clear(client) -> None:
    """Remove every proxy (and so every toxic) from a server, for test isolation."""
    client.reset()
    for name in client.proxies():
        client.delete(name)
