"""Client for Toxiproxy's HTTP API: works against ``chaos.proxy`` and the real Toxiproxy alike.

Built on httpx, not on ``toxiproxy-python``: that package keeps the server's host and port as
class attributes of a shared ``APIConsumer`` (two servers in one process would silently talk to
whichever was configured last), never calls ``/populate`` (it emulates it proxy by proxy), has no
toxic update, and turns errors into exceptions without the status or Toxiproxy's message. This
client uses only the documented API, with POST for updates (PATCH only exists from 2.6 on).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx

__all__ = ["ProxyInfo", "ToxicInfo", "Toxiproxy", "ToxiproxyError", "ToxiproxyUnreachable"]


class ToxiproxyError(Exception):
    """The API answered an error (``status`` is its HTTP status, 0 if it could not be reached)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}" if status else message)
        self.status = status
        self.message = message


class ToxiproxyUnreachable(ToxiproxyError):
    """No answer from the API (connection refused, timeout)."""

    def __init__(self, message: str) -> None:
        super().__init__(0, message)


@dataclass(frozen=True)
class ToxicInfo:
    name: str
    type: str
    stream: str
    toxicity: float
    attributes: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ToxicInfo:
        return cls(name=data["name"], type=data["type"], stream=data.get("stream", "downstream"),
                   toxicity=float(data.get("toxicity", 1.0)),
                   attributes=dict(data.get("attributes") or {}))


@dataclass(frozen=True)
class ProxyInfo:
    name: str
    listen: str
    upstream: str
    enabled: bool
    toxics: tuple[ToxicInfo, ...] = ()

    @property
    def listen_host(self) -> str:
        host = self.listen.rpartition(":")[0]
        return host[1:-1] if host.startswith("[") else host

    @property
    def listen_port(self) -> int:
        return int(self.listen.rpartition(":")[2])

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ProxyInfo:
        return cls(name=data["name"], listen=data["listen"], upstream=data["upstream"],
                   enabled=bool(data["enabled"]),
                   toxics=tuple(ToxicInfo.from_json(t) for t in data.get("toxics") or ()))


class Toxiproxy:
    """One Toxiproxy server, by URL; instances are independent (no shared state)."""

    def __init__(self, url: str = "http://127.0.0.1:8474", *, timeout: float = 5.0,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.url = url.rstrip("/")
        self._http = httpx.Client(base_url=self.url, timeout=timeout, transport=transport,
                                  headers={"User-Agent": "chaoslab-toxiproxy-client"})

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Toxiproxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Toxiproxy({self.url!r})"

    # -- transport -----------------------------------------------------------------------------

    def _call(self, method: str, path: str, body: object = None, expect: int = 200) -> Any:
        try:
            response = self._http.request(method, path, json=body)
        except httpx.TransportError as exc:
            raise ToxiproxyUnreachable(
                f"cannot reach Toxiproxy at {self.url} ({exc.__class__.__name__}: {exc}); "
                "is the server running? Start one with `python -m chaos.proxy`") from exc
        if response.status_code >= 400:
            try:
                message = response.json().get("error") or response.text
            except ValueError:
                message = response.text.strip()
            raise ToxiproxyError(response.status_code, f"{method} {path}: {message}")
        if response.status_code != expect:
            raise ToxiproxyError(response.status_code,
                                 f"{method} {path}: expected {expect}, got {response.status_code}")
        return response.json() if response.content and expect != 204 else None

    @staticmethod
    def _path(*parts: str) -> str:
        return "/" + "/".join(quote(part, safe="") for part in parts)

    # -- API -----------------------------------------------------------------------------------

    def version(self) -> str:
        try:
            response = self._http.get("/version")
        except httpx.TransportError as exc:
            raise ToxiproxyUnreachable(f"cannot reach Toxiproxy at {self.url}: {exc}") from exc
        if response.status_code != 200:
            raise ToxiproxyError(response.status_code, f"GET /version: {response.text.strip()}")
        try:  # 2.6+ answers {"version": ...}; older versions plain text
            data = response.json()
        except ValueError:
            return response.text.strip()
        return str(data["version"]) if isinstance(data, dict) else str(data)

    def wait_ready(self, deadline_s: float = 10.0, *, interval_s: float = 0.05) -> str:
        """Poll ``/version`` until the server answers and return it; raise
        :class:`ToxiproxyUnreachable` after ``deadline_s`` seconds."""
        from chaos.wait import Strategy, WaitTimeout, wait_for

        answered: list[str] = []
        answers = Strategy(lambda: bool(answered.append(self.version()) or True),
                           f"Toxiproxy at {self.url} to answer /version")
        try:
            wait_for(answers, timeout=deadline_s, interval=interval_s)
        except WaitTimeout:
            raise ToxiproxyUnreachable(
                f"Toxiproxy at {self.url} not ready after {deadline_s:.1f}s (last error: "
                f"{answers.last}); check that it started and listens on that address") from None
        return answered[-1]

    def proxies(self) -> dict[str, ProxyInfo]:
        data = self._call("GET", "/proxies")
        return {name: ProxyInfo.from_json(p) for name, p in data.items()}

    def create(self, name: str, upstream: str, *, listen: str = "127.0.0.1:0",
               enabled: bool = True) -> ProxyInfo:
        body = {"name": name, "upstream": upstream, "listen": listen, "enabled": enabled}
        return ProxyInfo.from_json(self._call("POST", "/proxies", body, expect=201))

    def populate(self, proxies: list[Mapping[str, Any]]) -> list[ProxyInfo]:
        data = self._call("POST", "/populate", list(proxies), expect=201)
        return [ProxyInfo.from_json(p) for p in data.get("proxies") or []]

    def get(self, name: str) -> ProxyInfo:
        return ProxyInfo.from_json(self._call("GET", self._path("proxies", name)))

    def update(self, name: str, **fields: Any) -> ProxyInfo:
        """Change ``listen``, ``upstream`` and/or ``enabled``."""
        return ProxyInfo.from_json(self._call("POST", self._path("proxies", name), fields))

    def enable(self, name: str) -> ProxyInfo:
        return self.update(name, enabled=True)

    def disable(self, name: str) -> ProxyInfo:
        return self.update(name, enabled=False)

    def delete(self, name: str) -> None:
        self._call("DELETE", self._path("proxies", name), expect=204)

    def add_toxic(self, proxy: str, type: str, *, name: str | None = None,
                  stream: str = "downstream", toxicity: float = 1.0,
                  **attributes: Any) -> ToxicInfo:
        body: dict[str, Any] = {"type": type, "stream": stream, "toxicity": toxicity,
                                "attributes": attributes}
        if name is not None:
            body["name"] = name
        return ToxicInfo.from_json(self._call("POST", self._path("proxies", proxy, "toxics"), body))

    def update_toxic(self, proxy: str, name: str, *, toxicity: float | None = None,
                     **attributes: Any) -> ToxicInfo:
        body: dict[str, Any] = {"attributes": attributes}
        if toxicity is not None:
            body["toxicity"] = toxicity
        path = self._path("proxies", proxy, "toxics", name)
        return ToxicInfo.from_json(self._call("POST", path, body))

    def remove_toxic(self, proxy: str, name: str) -> None:
        self._call("DELETE", self._path("proxies", proxy, "toxics", name), expect=204)

    def toxics(self, proxy: str) -> list[ToxicInfo]:
        data = self._call("GET", self._path("proxies", proxy, "toxics"))
        return [ToxicInfo.from_json(t) for t in data]

    def reset(self) -> None:
        """Enable every proxy and remove every toxic."""
        self._call("POST", "/reset", expect=204)

    # -- faults with a guaranteed undo ---------------------------------------------------------

    @contextmanager
    def toxic(self, proxy: str, type: str, **kwargs: Any) -> Iterator[ToxicInfo]:
        """Add a toxic for the duration of the block; it is removed even on error."""
        info = self.add_toxic(proxy, type, **kwargs)
        try:
            yield info
        finally:
            try:
                self.remove_toxic(proxy, info.name)
            except ToxiproxyError as exc:
                if exc.status != 404:
                    raise

    @contextmanager
    def disabled(self, name: str) -> Iterator[None]:
        """Disable a proxy for the duration of the block; it is enabled again even on error."""
        self.disable(name)
        try:
            yield
        finally:
            self.enable(name)
