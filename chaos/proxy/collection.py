"""The set of proxies of one server: create, update, delete, populate, reset.

Request bodies are validated here, completely, before anything changes.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from chaos.proxy import addresses, errors
from chaos.proxy.metrics import ByteMeter
from chaos.proxy.server import Proxy

DEFAULT_LISTEN = "127.0.0.1:0"


@dataclass(frozen=True)
class ProxyFields:
    """A validated proxy definition from a request."""

    name: str
    listen: str
    upstream: str
    enabled: bool

    @classmethod
    def parse(cls, body: object, *, where: str = "") -> ProxyFields:
        if not isinstance(body, dict):
            raise errors.bad_request(f"expected a JSON object{where}")
        name = _opt_str(body, "name", where)
        upstream = _opt_str(body, "upstream", where)
        if not name:
            raise errors.missing_field(f"name{where}")
        if not upstream:
            raise errors.missing_field(f"upstream{where}")
        listen = _opt_str(body, "listen", where) or DEFAULT_LISTEN
        enabled = body.get("enabled", True)
        if enabled is None:
            enabled = True
        if not isinstance(enabled, bool):
            raise errors.bad_request(f"enabled must be true or false{where}, got {enabled!r}")
        addresses.split(listen, field="listen", allow_zero=True)
        addresses.split(upstream, field="upstream", allow_zero=False)
        return cls(name=name, listen=listen, upstream=upstream, enabled=enabled)


async def _check_listen(fields: ProxyFields, where: str = "") -> None:
    """The listen host of a proxy to start must resolve: a 400 before anything changes."""
    if not fields.enabled:
        return  # as Toxiproxy, a disabled proxy's listen is kept as given, unresolved
    host, _ = addresses.split(fields.listen, field="listen", allow_zero=True)
    try:
        await addresses.resolve_host(host)
    except OSError as exc:
        raise errors.bad_request(f"listen host {host!r} does not resolve{where}: "
                                 f"{exc.strerror or exc}") from exc


def _opt_str(body: dict, key: str, where: str) -> str:
    value = body.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise errors.bad_request(f"{key} must be a string{where}, got {value!r}")
    return value


class ProxyCollection:
    """All proxies of a server, keyed by name; mutations are serialised by a lock."""

    def __init__(self, *, seed: int) -> None:
        self.seed = seed
        self.proxies: dict[str, Proxy] = {}
        self.lock = asyncio.Lock()

    def get(self, name: str) -> Proxy:
        proxy = self.proxies.get(name)
        if proxy is None:
            raise errors.proxy_not_found()
        return proxy

    async def create(self, body: object) -> Proxy:
        fields = ProxyFields.parse(body)
        async with self.lock:
            if fields.name in self.proxies:
                raise errors.proxy_exists()
            await _check_listen(fields)
            proxy = self._new(fields)
            if fields.enabled:
                await proxy.start()
            self.proxies[fields.name] = proxy
            return proxy

    def _new(self, fields: ProxyFields) -> Proxy:
        return Proxy(name=fields.name, listen=fields.listen, upstream=fields.upstream,
                     seed=self.seed)

    async def update(self, name: str, body: object) -> Proxy:
        async with self.lock:
            proxy = self.get(name)
            if not isinstance(body, dict):
                raise errors.bad_request("expected a JSON object")
            merged = {"name": name, "listen": proxy.listen, "upstream": proxy.upstream,
                      "enabled": proxy.enabled}
            merged.update({k: body[k] for k in ("listen", "upstream", "enabled") if k in body})
            fields = ProxyFields.parse(merged)
            await _check_listen(fields)
            await proxy.update(listen=fields.listen, upstream=fields.upstream,
                               enabled=fields.enabled)
            return proxy

    async def delete(self, name: str) -> None:
        async with self.lock:
            self.get(name).stop()
            del self.proxies[name]

    async def populate(self, body: object) -> list[Proxy]:
        """Validate every entry first; keep identical proxies (and toxics), replace others."""
        if not isinstance(body, list):
            raise errors.bad_request("expected a JSON list of proxies")
        wanted: list[ProxyFields] = []
        for i, item in enumerate(body):
            fields = ProxyFields.parse(item, where=f" at proxy {i + 1}")
            if any(w.name == fields.name for w in wanted):
                raise errors.bad_request(f"duplicate proxy name {fields.name!r}")
            await _check_listen(fields, where=f" at proxy {i + 1}")
            wanted.append(fields)
        done: list[Proxy] = []
        async with self.lock:
            for fields in wanted:
                existing = self.proxies.get(fields.name)
                if existing is not None and existing.upstream == fields.upstream and (
                        fields.listen == existing.requested_listen
                        or await existing.listens_on(fields.listen)):
                    done.append(existing)
                    continue
                if existing is not None:
                    existing.stop()
                    del self.proxies[fields.name]
                proxy = self._new(fields)
                if fields.enabled:
                    try:
                        await proxy.start()
                    except errors.ApiError as exc:
                        raise PopulateError(exc, done) from exc
                self.proxies[fields.name] = proxy
                done.append(proxy)
        return done

    async def reset(self) -> None:
        """Enable every proxy and remove every toxic; proxies are kept."""
        async with self.lock:
            for proxy in self.proxies.values():
                await proxy.start()
                proxy.reset_toxics()

    def close(self) -> None:
        for proxy in self.proxies.values():
            proxy.stop()

    def meters(self) -> list[tuple[str, str, str, str, ByteMeter]]:
        return [(p.name, p.listen, p.upstream, d, m)
                for p in self.proxies.values() for d, m in p.meters.items()]


class PopulateError(errors.ApiError):
    """A populate that failed part-way; the reply lists the proxies already applied."""

    def __init__(self, cause: errors.ApiError, applied: list[Proxy]) -> None:
        super().__init__(cause.message, cause.status)
        self.applied = applied

    def body(self) -> dict[str, Any]:
        return {**super().body(), "proxies": [p.to_json() for p in self.applied]}
