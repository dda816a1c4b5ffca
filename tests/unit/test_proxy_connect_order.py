"""The fault proxy keeps a connection's bytes in order while its upstream socket opens.

A client's bytes that arrive while the proxy is still connecting upstream are buffered and
flushed once it is connected. Bytes (or an EOF) that arrive after the upstream socket is
open but before that flush must queue behind the buffer, not overtake it. When they did,
an HTTP client that writes headers and body separately (httpx does) now and then had its
body delivered before its headers, and the service behind the proxy answered
``400 Invalid HTTP request received.`` to a valid request: the 1-in-5 failure of the compose
stack test's first write.

The tests make the race deterministic: the "next segment" is delivered from the upstream
socket's ``connection_made``, the moment the window opens.
"""

from __future__ import annotations

import asyncio

import pytest

from chaos.proxy.link import Connection, Side
from chaos.proxy.server import Proxy

pytestmark = pytest.mark.unit


class FakeClientSocket(asyncio.Transport):
    """The client's side of a proxied connection, as far as the proxy uses it."""

    def __init__(self) -> None:
        super().__init__()
        self.sent = bytearray()
        self.closed = False

    def get_extra_info(self, name, default=None):
        return default

    def set_write_buffer_limits(self, high=None, low=None) -> None:
        pass

    def write(self, data) -> None:
        self.sent += data

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = True


async def proxied(on_upstream_open) -> bytes:
    """What the upstream receives (until EOF, or 1 s of silence) when the client sends
    ``HEAD|`` while the proxy connects and ``on_upstream_open(client)`` runs as the upstream
    socket opens."""
    received = asyncio.get_running_loop().create_future()

    async def upstream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        data = b""
        try:
            while chunk := await asyncio.wait_for(reader.read(65536), 1.0):
                data += chunk
        except TimeoutError:
            pass
        received.set_result(data)
        writer.close()

    server = await asyncio.start_server(upstream, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    proxy = Proxy(name="client__registry", listen="127.0.0.1:0", upstream=f"127.0.0.1:{port}",
                  seed=0)
    client = Side("client")
    client.connection_made(FakeClientSocket())
    conn = Connection(proxy, 0, client)
    conn.upstream.on_made = lambda side: on_upstream_open(client)
    client.data_received(b"HEAD|")  # the upstream is still connecting: buffered
    try:
        return await asyncio.wait_for(received, 5.0)
    finally:
        conn.close()
        server.close()
        # take the connect task's outcome (it fails when the EOF overtook the buffer), so no
        # "exception was never retrieved" is logged later from a garbage collection
        await asyncio.gather(conn._connect_task, return_exceptions=True)


async def test_data_arriving_as_the_upstream_opens_queues_behind_the_buffered_data():
    def next_segment_then_close(client: Side) -> None:
        client.data_received(b"BODY|")
        client.eof_received()

    assert await proxied(next_segment_then_close) == b"HEAD|BODY|"


async def test_an_eof_arriving_as_the_upstream_opens_follows_the_buffered_data():
    assert await proxied(lambda client: client.eof_received()) == b"HEAD|"
