"""The one place that polls a running cluster for the dashboard and ``status --watch``.

:func:`find_target` says where the cluster is (``--registry``, a run directory's
``live.json``, ``chaoslab up``'s ``.chaoslab/state.json``, or a running scenario's
``live.json`` found under the usual artifact folders). :class:`Collector` polls it: the
registry's ``GET /cluster-status`` and ``GET /metrics``, each node's ``GET /stats`` and
``GET /metrics`` (concurrently, each with a short timeout), and the run directory's live files
(:mod:`chaos.live`: faults active now, the harness's breakers). :meth:`Collector.poll` returns
one plain JSON-able snapshot; rates are differences of the Prometheus counters over the last
``window`` seconds of polls (:mod:`chaos.dashboard.rates`).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
import orjson

from chaos.dashboard.rates import (
    GATEWAY_ROUTES,
    REPLICA_ROUTES,
    Scrape,
    combine,
    parse_scrape,
)
from chaos.live import read_breakers, read_live
from system.ring import key_hash

__all__ = ["Target", "TargetError", "NoCluster", "find_target", "Collector", "Fetch",
           "FetchError", "HttpFetch", "ring_arcs", "breaker_summary", "STATE_FILE", "RUN_GLOBS"]

log = logging.getLogger("chaoslab.dashboard")

STATE_FILE = Path(".chaoslab") / "state.json"
# where a running scenario's live.json is looked for: `chaoslab run`'s default report
# folders and the pytest plugin's artifacts
RUN_GLOBS = ("reports/*/live.json", ".chaoslab/artifacts/*/live.json")
LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
BREAKER_ORDER = ("closed", "half_open", "open")  # worst last


class TargetError(ValueError):
    """A bad address or run folder; one line that says how to fix it."""


class NoCluster(TargetError):
    """Nothing says where a cluster runs (no ``up`` state, no running scenario)."""


@dataclass(frozen=True, slots=True)
class Target:
    """Where the cluster is, as this host reaches it."""

    registry: str  # the registry itself (status, metrics), not through the mesh
    nodes: Mapping[str, str] = field(default_factory=dict)  # node id -> URL known in advance
    run_dir: Path | None = None  # a running scenario's directory (faults, breakers)
    source: str = ""  # what said so, for people
    direct: bool = False  # ``nodes`` are the nodes themselves (a run's), not through the mesh


def _url(raw: str, what: str) -> str:
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise TargetError(f"{what} {raw!r} is not an http:// URL (e.g. http://127.0.0.1:5000)")
    return raw.rstrip("/")


def _from_live(path: Path) -> Target:
    live = read_live(path.parent)
    if live is None or not live.get("registry_direct"):
        raise TargetError(f"{path} holds no cluster address: is a scenario running there?")
    return Target(live["registry_direct"], dict(live.get("nodes") or {}), path.parent,
                  f"scenario {live.get('scenario') or '?'} ({path})", direct=True)


def find_target(*, registry: str | None = None, run: str | Path | None = None,
                cwd: Path | None = None) -> Target:
    """The cluster to watch: ``registry`` if given (with ``run`` for its faults and
    breakers), else ``run``'s ``live.json``, else ``chaoslab up``'s state, else the newest
    running scenario found under :data:`RUN_GLOBS`. Raises :class:`TargetError`."""
    cwd = cwd or Path.cwd()
    run_dir = None
    if run is not None:
        run_dir = Path(run)
        if not (run_dir / "live.json").is_file():
            raise TargetError(f"no live.json in {run_dir}: give the artifact folder of a "
                              "running scenario (its --report directory)")
    if registry is not None:
        live = read_live(run_dir) if run_dir else None
        return Target(_url(registry, "--registry"), dict((live or {}).get("nodes") or {}),
                      run_dir, f"--registry {registry}", direct=live is not None)
    if run_dir is not None:
        return _from_live(run_dir / "live.json")
    state = cwd / STATE_FILE
    if state.is_file():
        try:
            data = orjson.loads(state.read_bytes())
            return Target(data["registry_direct"], dict(data.get("nodes") or {}), None,
                          f"chaoslab up ({STATE_FILE})")
        except (OSError, orjson.JSONDecodeError, KeyError, TypeError) as exc:
            raise TargetError(f"cannot read {state}: {exc}") from None
    running = []
    for pattern in RUN_GLOBS:
        for path in cwd.glob(pattern):
            live = read_live(path.parent)
            if live and live.get("running") and live.get("registry_direct"):
                running.append((live.get("started") or 0, path))
    if running:
        return _from_live(max(running)[1])
    raise NoCluster("no cluster to watch: start one with `chaoslab up` (or a scenario with "
                      "`chaoslab run`), or give --registry URL or --run DIR")


def ring_arcs(nodes: Iterable[str], vnodes: int) -> list[tuple[float, str]]:
    """The ring's tokens as ``(position from 0 to 1, owner)``, sorted: each owner holds the
    arc from the previous token up to its own (the placement of :class:`system.ring.HashRing`)."""
    return list(_arcs(tuple(sorted(nodes)), vnodes))


@functools.lru_cache(maxsize=8)
def _arcs(nodes: tuple[str, ...], vnodes: int) -> tuple[tuple[float, str], ...]:
    space = float(1 << 64)
    return tuple(sorted((key_hash(f"{node}#{i}") / space, node) for node in nodes
                        for i in range(vnodes)))


def breaker_summary(boards: list[dict], nodes: Iterable[str]) -> dict[str, dict]:
    """Per node: how many of the harness's clients see its breaker closed, half open or open
    (a client that never saw a transition for a node has it closed), and the worst state."""
    out = {}
    for node in nodes:
        counts = dict.fromkeys(BREAKER_ORDER, 0)
        for board in boards:
            state = (board.get("breakers") or {}).get(node, {}).get("state", "closed")
            counts[state if state in counts else "open"] += 1
        worst = next((s for s in reversed(BREAKER_ORDER) if counts[s]), None)
        out[node] = {"state": worst, "counts": counts, "clients": len(boards)}
    return out


def _loopback_url(address: str | None) -> str | None:
    """A node's advertised ``host:port`` as a URL, if this host reaches it as is."""
    if not address or ":" not in address:
        return None
    host = address.rpartition(":")[0].strip("[]")
    return f"http://{address}" if host in LOOPBACK else None


class FetchError(Exception):
    """A GET that gave no 200 answer; the message says why, in one line."""


Fetch = Callable[[str, float], Awaitable[str]]  # url, timeout -> the 200 answer's body


class HttpFetch:
    """GET over keep-alive connections with aiohttp (about a third of httpx's CPU per
    request: the dashboard makes several a second, on the cluster's machine)."""

    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None

    async def __call__(self, url: str, timeout: float) -> str:
        if self._session is None:  # made on the running loop
            self._session = aiohttp.ClientSession(trust_env=False)
        try:
            async with self._session.get(url, timeout=aiohttp.ClientTimeout(total=timeout),
                                         allow_redirects=False) as reply:
                if reply.status != 200:
                    raise FetchError(f"HTTP {reply.status}")
                return await reply.text()
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            reason = str(exc) or f"no answer in {timeout:g}s"
            raise FetchError(f"{type(exc).__name__}: {reason}") from None

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


class Collector:
    """Polls one cluster; :meth:`poll` gives a snapshot (plain JSON-able data).

    Each poll reads the registry's status and metrics and every node's metrics; a node's
    ``/stats`` (its key count is a scan of its store) at most every ``stats_every`` seconds.
    Rates come from the metrics scrapes of the last ``window`` seconds (two polls at least).
    ``fetch`` is the HTTP seam (:class:`HttpFetch`); ``clock`` (monotonic) times the scrapes,
    ``wall`` stamps snapshots and ages faults."""

    def __init__(self, target: Target, *, fetch: Fetch | None = None, timeout: float = 0.8,
                 window: float = 1.0, stats_every: float = 2.0,
                 clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time) -> None:
        self.target = target
        self.timeout, self.window, self.stats_every = timeout, window, stats_every
        self._clock, self._wall = clock, wall
        self._fetch = fetch or HttpFetch()
        self._scrapes: dict[str, deque[Scrape]] = {}
        self._stats: dict[str, tuple[float, dict]] = {}  # node -> (when, its /stats)

    async def __aenter__(self) -> Collector:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        close = getattr(self._fetch, "aclose", None)
        if close is not None:
            await close()

    # ---- HTTP ----
    async def _json(self, url: str) -> dict | str:
        """The JSON object answered, or a one-line reason it did not come."""
        try:
            body = orjson.loads(await self._fetch(url, self.timeout))
        except FetchError as exc:
            return str(exc)
        except orjson.JSONDecodeError as exc:
            return f"not JSON: {exc}"
        return body if isinstance(body, dict) else f"not a JSON object: {type(body).__name__}"

    async def _scrape(self, name: str, base: str) -> str | None:
        """Scrape ``base/metrics`` into the service's window; the error, if any."""
        at = self._clock()
        try:
            scrape = parse_scrape(await self._fetch(f"{base}/metrics", self.timeout), at=at)
        except (FetchError, ValueError, KeyError) as exc:
            self._scrapes.pop(name, None)  # no stale rates for a service that is down
            return str(exc) if isinstance(exc, FetchError) else f"unreadable metrics: {exc!r}"
        kept = self._scrapes.setdefault(name, deque())
        kept.append(scrape)
        while len(kept) > 2 and kept[1].at <= at - self.window:
            kept.popleft()  # keep one scrape at least `window` old
        return None

    def _pair(self, name: str) -> tuple[Scrape | None, Scrape] | None:
        kept = self._scrapes.get(name)
        if not kept:
            return None
        return (kept[0] if len(kept) > 1 else None), kept[-1]

    # ---- one poll ----
    async def poll(self) -> dict:
        """Everything the dashboard shows, now."""
        t = self.target
        status, registry_error = await asyncio.gather(
            self._json(f"{t.registry}/cluster-status"), self._scrape("registry", t.registry))
        registry_ok = isinstance(status, dict)
        members = status.get("nodes", []) if registry_ok else []
        urls = {m["id"]: self._node_url(m["id"], m.get("address")) for m in members}
        for node, url in t.nodes.items():
            urls.setdefault(node, url)
        polled = [n for n, u in urls.items() if u is not None and not any(
            m["id"] == n and m["status"] == "left" for m in members)]
        results = await asyncio.gather(*(self._poll_node(n, urls[n]) for n in polled))
        per_node = dict(zip(polled, results, strict=True))
        for node in set(self._scrapes) - set(urls) - {"registry"}:
            del self._scrapes[node]  # a node no longer known
        return self._snapshot(status if registry_ok else None,
                              None if registry_ok else status, registry_error, urls, per_node)

    def _node_url(self, node: str, address: str | None) -> str | None:
        """The node itself where known (a run's URLs, or an advertised loopback address),
        else the URL `up` gave clients (through the mesh: a partition hides the node)."""
        known = self.target.nodes.get(node)
        if known and self.target.direct:
            return known
        return _loopback_url(address) or known

    async def _node_stats(self, node: str, url: str) -> dict | str:
        now = self._clock()
        cached = self._stats.get(node)
        if cached is not None and now - cached[0] < self.stats_every:
            return cached[1]
        stats = await self._json(f"{url}/stats")
        if isinstance(stats, str):
            self._stats.pop(node, None)
        else:
            self._stats[node] = (now, stats)
        return stats

    async def _poll_node(self, node: str, url: str) -> dict:
        metrics_error, stats = await asyncio.gather(self._scrape(node, url),
                                                    self._node_stats(node, url))
        if metrics_error is not None:  # no stale keys for a node that does not answer
            self._stats.pop(node, None)
            return {"reachable": False, "error": metrics_error}
        if isinstance(stats, str):
            return {"reachable": True, "error": stats}
        return {"reachable": True, "error": metrics_error, "keys": stats.get("keys"),
                "hints_pending": sum((stats.get("hints") or {}).values()),
                "registry_reachable": stats.get("registry_reachable")}

    def _run_files(self) -> tuple[dict | None, list[dict]]:
        run_dir = self.target.run_dir
        if run_dir is None:
            return None, []
        return read_live(run_dir), read_breakers(run_dir)

    def _snapshot(self, status: dict | None, status_error: str | None,
                  metrics_error: str | None, urls: Mapping[str, str | None],
                  per_node: Mapping[str, dict]) -> dict:
        now = self._wall()
        live, boards = self._run_files()
        members = (status or {}).get("nodes", [])
        settings = (status or {}).get("settings", {})
        ring = (status or {}).get("ring", {})
        ownership = ring.get("ownership", {})
        vnodes = settings.get("vnodes")
        ids = [m["id"] for m in members] + sorted(set(urls) - {m["id"] for m in members})
        breakers = breaker_summary(boards, ids)
        nodes = []
        for node in ids:
            member = next((m for m in members if m["id"] == node), {})
            polled = per_node.get(node, {"reachable": False, "error": "no address from this host"})
            pair = self._pair(node)
            replica = combine([pair], REPLICA_ROUTES) if pair else None
            nodes.append({
                "id": node, "status": member.get("status", "unknown"),
                "since_heartbeat": member.get("seconds_since_heartbeat"),
                "incarnation": member.get("incarnation"), "address": member.get("address"),
                "url": urls.get(node), "on_ring": node in ring.get("nodes", []),
                "share": ownership.get(node), "vnodes": vnodes if node in ownership else 0,
                **polled, "traffic": replica.as_json() if replica else None,
                "breaker": breakers[node] if boards else None,
            })
        pairs = [p for p in (self._pair(n) for n in ["registry", *ids]) if p]
        gateway, replica = combine(pairs, GATEWAY_ROUTES), combine(pairs, REPLICA_ROUTES)
        faults = []
        for f in (live or {}).get("faults", []):
            heals = f.get("heals_at")
            faults.append({**f, "age_s": round(now - f["applied_at"], 1),
                           "heals_in_s": None if heals is None else round(heals - now, 1)})
        return {
            "time": now, "source": self.target.source, "registry": self.target.registry,
            "registry_ok": status is not None,
            "registry_error": status_error or metrics_error,
            "health": (status or {}).get("health", "unknown"), "settings": settings,
            "nodes": nodes,
            "ring": {"vnodes": vnodes, "nodes": ring.get("nodes", []),
                     "arcs": [[round(p, 6), n] for p, n in
                              ring_arcs(ring.get("nodes", []), vnodes or 0)]},
            "traffic": {"gateway": gateway.as_json() if gateway else None,
                        "replica": replica.as_json() if replica else None,
                        "window_s": self.window},
            "run": None if live is None else {
                "scenario": live.get("scenario"), "seed": live.get("seed"),
                "running": live.get("running"), "pid": live.get("pid")},
            "faults": faults,
            "breakers": {"clients": len(boards),
                         "source": None if self.target.run_dir is None else str(
                             self.target.run_dir)},
        }
