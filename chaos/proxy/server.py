"""One proxy: its listener, its live connections and its toxics (upstream chain, downstream chain)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from chaos.proxy import addresses, errors
from chaos.proxy.link import Connection, Side
from chaos.proxy.metrics import ByteMeter
from chaos.proxy.toxics import STREAMS, ToxicSpec

log = logging.getLogger(__name__)


class Proxy:
    """A named TCP proxy from ``listen`` to ``upstream``; toxics apply to live connections too."""

    def __init__(self, *, name: str, listen: str, upstream: str, seed: int) -> None:
        addresses.split(listen, field="listen", allow_zero=True)
        addresses.split(upstream, field="upstream", allow_zero=False)
        self.name = name
        self.requested_listen = listen  # as asked, e.g. 127.0.0.1:0 (for /populate)
        self.listen = listen  # as bound, e.g. 127.0.0.1:40123
        self.upstream = upstream
        self.seed = seed
        self.enabled = False
        self.connections: set[Connection] = set()
        self.meters = {stream: ByteMeter() for stream in STREAMS}
        self._toxics: dict[str, ToxicSpec] = {}
        self._server: asyncio.Server | None = None
        self._accepted = 0

    # -- listener ------------------------------------------------------------------------------

    async def start(self) -> None:
        if self._server is not None:
            return
        host, port = addresses.split(self.listen, field="listen", allow_zero=True)
        try:
            # One socket on one resolved address, as Go's net.Listen (localhost: 127.0.0.1).
            ip = await addresses.resolve_host(host)
            self._server = await asyncio.get_running_loop().create_server(
                lambda: Side("client", on_made=self._accept), ip, port,
                reuse_address=True, backlog=1024)
        except OSError as exc:
            raise errors.ApiError(f"listen tcp {self.listen}: {exc.strerror or exc}", 409) from exc
        bound_ip, bound_port = self._server.sockets[0].getsockname()[:2]
        self.listen = addresses.join(bound_ip, bound_port)  # the resolved address, as Toxiproxy
        self.enabled = True
        log.info("proxy %s listening on %s -> %s", self.name, self.listen, self.upstream)

    def stop(self) -> None:
        """Close the listener and every connection."""
        if self._server is not None:
            self._server.close()
            self._server = None
        for conn in list(self.connections):
            conn.close(abort=True)
        self.enabled = False

    async def listens_on(self, listen: str) -> bool:
        """Whether ``listen`` is this proxy's listen address once resolved, so that
        ``localhost:P`` matches ``127.0.0.1:P`` (an unresolvable host matches nothing)."""
        if listen == self.listen:
            return True
        try:
            return await addresses.resolve_listen(listen) == \
                await addresses.resolve_listen(self.listen)
        except OSError:
            return False

    async def update(self, *, listen: str, upstream: str, enabled: bool) -> None:
        """Restart only if the address or upstream really changes; else keep connections."""
        if upstream != self.upstream or not await self.listens_on(listen):
            self.stop()
            self.listen, self.requested_listen, self.upstream = listen, listen, upstream
        if enabled and self._server is None:
            await self.start()
        elif not enabled:
            self.stop()

    def upstream_address(self) -> tuple[str, int]:
        return addresses.split(self.upstream, field="upstream", allow_zero=False)

    def _accept(self, side: Side) -> None:
        ordinal = self._accepted
        self._accepted += 1
        self.connections.add(Connection(self, ordinal, side))

    def forget(self, conn: Connection) -> None:
        self.connections.discard(conn)

    # -- toxics --------------------------------------------------------------------------------

    def toxic_list(self) -> list[ToxicSpec]:
        """Upstream toxics, then downstream ones, each in the order added (as Toxiproxy)."""
        specs = list(self._toxics.values())
        return [s for s in specs if s.stream == "upstream"] + \
               [s for s in specs if s.stream == "downstream"]

    def get_toxic(self, name: str) -> ToxicSpec:
        spec = self._toxics.get(name)
        if spec is None:
            raise errors.toxic_not_found()
        return spec

    def add_toxic(self, spec: ToxicSpec) -> ToxicSpec:
        if spec.name in self._toxics:
            raise errors.toxic_exists()
        self._toxics[spec.name] = spec
        for conn in list(self.connections):
            conn.add_toxic(spec)
        return spec

    def update_toxic(self, name: str, body: object) -> ToxicSpec:
        spec = self.get_toxic(name).updated(body)
        self._toxics[name] = spec
        for conn in list(self.connections):
            conn.update_toxic(spec)
        return spec

    def remove_toxic(self, name: str) -> None:
        spec = self.get_toxic(name)
        del self._toxics[name]
        for conn in list(self.connections):
            conn.remove_toxic(spec)

    def reset_toxics(self) -> None:
        for name in list(self._toxics):
            self.remove_toxic(name)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "listen": self.listen, "upstream": self.upstream,
                "enabled": self.enabled, "toxics": [t.to_json() for t in self.toxic_list()]}
