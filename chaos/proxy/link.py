"""One proxied TCP connection: two sockets, and a ``Link`` per direction through the toxic chain.

With no toxic on a direction the link is a fast path: bytes received on one socket are written
straight to the other in the same callback, and a full write buffer pauses reading on the source
(backpressure). With toxics, each chunk is turned into scheduled chunks by the chain (each toxic
takes what the previous one released, so two latency toxics add up) and a writer task sends them
when due, in order. The chain is updated on live connections by the proxy.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
from collections import deque
from time import monotonic
from typing import TYPE_CHECKING

from chaos.proxy.metrics import ByteMeter
from chaos.proxy.rng import draw_rng
from chaos.proxy.toxics import CLOSE, EOF, RESET, ActiveToxic, Chunk, Stamped, ToxicSpec

if TYPE_CHECKING:
    from chaos.proxy.server import Proxy

log = logging.getLogger(__name__)

WRITE_HIGH_WATER = 512 * 1024  # transport buffer above which the source is paused
PENDING_HIGH = 1024 * 1024  # scheduled bytes above which the source is paused
PENDING_LOW = 256 * 1024


def _tune(transport: asyncio.BaseTransport) -> None:
    sock = transport.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
    transport.set_write_buffer_limits(high=WRITE_HIGH_WATER)  # type: ignore[attr-defined]


class Side(asyncio.Protocol):
    """One socket of a connection; it forwards events to the links that use it."""

    def __init__(self, role: str, on_made=None) -> None:
        self.role = role
        self.on_made = on_made
        self.transport: asyncio.Transport | None = None
        self.conn: Connection | None = None
        self.reader: Link | None = None  # the link reading from this socket
        self.writer: Link | None = None  # the link writing to this socket

    def connection_made(self, transport) -> None:
        self.transport = transport
        _tune(transport)
        if self.on_made is not None:
            self.on_made(self)

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)

    def eof_received(self) -> bool:
        self.reader.feed_eof()
        return True  # keep the socket open for the other direction (half-close)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.conn is not None:
            self.conn.side_lost(self)

    def pause_writing(self) -> None:
        self.writer.dst_blocked(True)

    def resume_writing(self) -> None:
        self.writer.dst_blocked(False)


class Link:
    """One direction of a connection: reads ``src``, runs the toxic chain, writes ``dst``."""

    def __init__(self, conn: Connection, direction: str, src: Side, dst: Side,
                 meter: ByteMeter) -> None:
        self.conn = conn
        self.direction = direction
        self.src = src
        self.dst = dst
        self.meter = meter
        self.toxics: dict[str, ActiveToxic] = {}
        self.pending: deque[Chunk] = deque()
        self.pending_bytes = 0
        self.finished = False
        self._eof_seen = False
        self._early: list[bytes | str] = []
        self._task: asyncio.Task | None = None
        self._holds: set[str] = set()
        self._dst_blocked = False
        self._writable = asyncio.Event()
        self._writable.set()
        self._timers: list[asyncio.TimerHandle] = []

    # -- toxic chain ---------------------------------------------------------------------------

    def add_toxic(self, spec: ToxicSpec, ordinal: int) -> None:
        rng = draw_rng(self.conn.proxy.seed, self.conn.proxy.name, spec.name, ordinal)
        self.toxics[spec.name] = ActiveToxic(spec, rng, monotonic(), self)

    def update_toxic(self, spec: ToxicSpec) -> None:
        active = self.toxics.get(spec.name)
        if active is not None:
            active.retune(spec, monotonic(), self)

    def remove_toxic(self, name: str) -> None:
        active = self.toxics.pop(name, None)
        if active is not None:
            active.stop(monotonic(), self)

    def schedule(self, at: float, action: str) -> asyncio.TimerHandle:
        """``Effects.schedule``: run ``action`` at monotonic time ``at``."""
        handle = asyncio.get_running_loop().call_later(max(0.0, at - monotonic()), self._act, action)
        self._timers = [t for t in self._timers if not t.cancelled()]
        self._timers.append(handle)
        return handle

    # -- data path -----------------------------------------------------------------------------

    def feed(self, data: bytes) -> None:
        self.meter.received += len(data)
        if self.finished:
            return
        if not self.toxics and self._task is None:  # fast path: nothing scheduled
            self._write(data)
            return
        now = monotonic()
        chunks: list[Stamped] = [(now, data, now)]
        for active in list(self.toxics.values()):  # the chain, in the order toxics were added
            chunks = active.process(chunks, self)
            if not chunks:
                return
        self._enqueue([(ready, payload) for ready, payload, _ in chunks])

    def feed_eof(self) -> None:
        if self.finished or self._eof_seen:
            return
        self._eof_seen = True
        now = monotonic()
        for active in list(self.toxics.values()):
            if active.on_eof(now, self):
                return
        delay = sum(active.eof_delay() for active in self.toxics.values())
        if delay == 0 and self._task is None:
            self._send_eof()
            return
        last = self.pending[-1][0] if self.pending else now
        self._enqueue([(max(now, last) + delay, EOF)])

    def _write(self, data: bytes) -> None:
        transport = self.dst.transport
        # upstream still connecting, or open but what came before not yet flushed by
        # connected(): keep it (bounded), so nothing overtakes the buffered bytes
        if transport is None or self._early:
            self._early.append(data)
            if sum(len(d) for d in self._early) > PENDING_HIGH:
                self.hold("connecting")
        elif not transport.is_closing():
            transport.write(data)
            self.meter.sent += len(data)

    def connected(self) -> None:
        """The destination socket is open: send what arrived before it."""
        early, self._early = self._early, []
        for data in early:
            if data == EOF:
                self._send_eof()
            else:
                self._write(data)
        self.release("connecting")

    def _enqueue(self, chunks: list[Chunk]) -> None:
        for chunk in chunks:
            self.pending.append(chunk)
            if isinstance(chunk[1], bytes):
                self.pending_bytes += len(chunk[1])
        if self.pending_bytes > PENDING_HIGH:
            self.hold("pending")
        if self._task is None and self.pending:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        try:
            while self.pending:
                ready, payload = self.pending[0]
                wait = ready - monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                    continue
                if self._dst_blocked:
                    await self._writable.wait()
                    continue
                self.pending.popleft()
                if isinstance(payload, bytes):
                    self.pending_bytes -= len(payload)
                    self._write(payload)
                    if self.pending_bytes < PENDING_LOW:
                        self.release("pending")
                else:
                    self._act(payload)
        except Exception:  # a bug must not leave the connection hanging
            log.exception("link %s of %s failed", self.direction, self.conn.proxy.name)
            self.conn.close()
        finally:
            self._task = None

    def _act(self, action: str) -> None:
        if action == EOF:
            self._send_eof()
        elif action == RESET:
            self.conn.close(reset=True)
        elif action == CLOSE:
            self.conn.close()

    def _send_eof(self) -> None:
        transport = self.dst.transport
        if transport is None or self._early:  # not connected() yet: the EOF goes after the rest
            self._early.append(EOF)
            return
        if not transport.is_closing():
            try:
                if transport.can_write_eof():
                    transport.write_eof()
            except OSError:
                pass
        self.finished = True
        self.conn.link_finished()

    # -- flow control --------------------------------------------------------------------------

    def hold(self, reason: str) -> None:
        if not self._holds and self.src.transport is not None:
            try:
                self.src.transport.pause_reading()
            except (RuntimeError, AttributeError):
                pass
        self._holds.add(reason)

    def release(self, reason: str) -> None:
        if reason not in self._holds:
            return
        self._holds.discard(reason)
        if not self._holds and self.src.transport is not None \
                and not self.src.transport.is_closing():
            try:
                self.src.transport.resume_reading()
            except (RuntimeError, AttributeError):
                pass

    def dst_blocked(self, blocked: bool) -> None:
        self._dst_blocked = blocked
        if blocked:
            self._writable.clear()
            self.hold("dst")
        else:
            self._writable.set()
            self.release("dst")

    def shutdown(self) -> None:
        """Drop everything scheduled; the connection is closing."""
        self.finished = True
        self.pending.clear()
        self.pending_bytes = 0
        for handle in self._timers:
            handle.cancel()
        self._timers.clear()
        for active in self.toxics.values():
            active.state.cancel_timers()
        if self._task is not None and self._task is not asyncio.current_task():
            self._task.cancel()


def _set_linger_zero(transport: asyncio.BaseTransport | None) -> None:
    sock = transport.get_extra_info("socket") if transport is not None else None
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass


class Connection:
    """A client socket accepted by a proxy, its upstream socket and the two links."""

    def __init__(self, proxy: Proxy, ordinal: int, client: Side) -> None:
        self.proxy = proxy
        self.ordinal = ordinal
        self.client = client
        self.upstream = Side("upstream")
        self.closed = False
        client.conn = self.upstream.conn = self
        up = Link(self, "upstream", client, self.upstream, proxy.meters["upstream"])
        down = Link(self, "downstream", self.upstream, client, proxy.meters["downstream"])
        self.links = {"upstream": up, "downstream": down}
        client.reader, client.writer = up, down
        self.upstream.reader, self.upstream.writer = down, up
        for spec in proxy.toxic_list():
            self.links[spec.stream].add_toxic(spec, ordinal)
        self._connect_task = asyncio.get_running_loop().create_task(self._connect())

    async def _connect(self) -> None:
        host, port = self.proxy.upstream_address()
        try:
            await asyncio.get_running_loop().create_connection(lambda: self.upstream, host, port)
        except (TimeoutError, OSError) as exc:
            log.info("proxy %s: upstream %s unreachable: %s", self.proxy.name,
                     self.proxy.upstream, exc)
            self.close()
            return
        if self.closed:
            self.upstream.transport.abort()
            return
        self.links["upstream"].connected()

    # -- chain updates from the proxy ------------------------------------------------------------

    def add_toxic(self, spec: ToxicSpec) -> None:
        if not self.closed:
            self.links[spec.stream].add_toxic(spec, self.ordinal)

    def update_toxic(self, spec: ToxicSpec) -> None:
        if not self.closed:
            self.links[spec.stream].update_toxic(spec)

    def remove_toxic(self, spec: ToxicSpec) -> None:
        if not self.closed:
            self.links[spec.stream].remove_toxic(spec.name)

    # -- lifecycle -----------------------------------------------------------------------------

    def link_finished(self) -> None:
        if all(link.finished for link in self.links.values()):
            self.close()

    def side_lost(self, side: Side) -> None:
        """A socket closed: nothing more can go to it; what came from it ends with EOF."""
        if self.closed:
            return
        side.writer.shutdown()
        side.writer.finished = True
        side.reader.feed_eof()
        self.link_finished()

    def close(self, *, reset: bool = False, abort: bool = False) -> None:
        if self.closed:
            return
        self.closed = True
        for link in self.links.values():
            link.shutdown()
        if not self._connect_task.done() and self._connect_task is not asyncio.current_task():
            self._connect_task.cancel()
        for side in (self.client, self.upstream):
            transport = side.transport
            if transport is None:
                continue
            if reset:
                _set_linger_zero(transport)
                transport.abort()
            elif abort:
                transport.abort()
            else:
                transport.close()
        self.proxy.forget(self)
