"""The node's HTTP API and its background duties (heartbeats, hinted handoff, rebalancing).

Public: ``GET /data/{key}`` (this replica's copy), ``GET /keys`` (``?versions=true``: with
each copy's version), ``GET /stats``,
``GET /health`` (the process answers), ``GET /ready`` (the store is open and the node has a
member list).
Gateway: every node can coordinate, as in Dynamo: ``POST /gateway/data`` and
``GET /gateway/data/{key}`` are the registry gateway's API (quorum write, quorum read),
with versions from this node's clock.
Internal (coordinators and peers): ``POST /internal/write``, ``POST /internal/read``,
``POST /internal/batch`` (records pushed by a peer), ``POST /internal/hints``,
``GET|POST /internal/clock`` (the clock's skew: the clock-skew fault).
Observation: ``GET /stats/arrivals`` (replica writes and reads that arrived per 100 ms, a
handed-off batch counting each of its records, on the host's monotonic clock: how a harness
measures a herd on a recovering node), ``GET /metrics``
(Prometheus; with ``--workers`` > 1 each worker serves its own, see :mod:`system.metrics`).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import random
import time
from collections import Counter

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.routing import Route

from system.backoff import Backoff
from system.breaker import CircuitBreaker
from system.clock import SYSTEM_CLOCK, Clock
from system.config import NodeConfig, parse_node_args
from system.coordinator import Coordinator, QuorumError
from system.fasthttp import PooledTransport
from system.http import (
    EXCEPTION_HANDLERS,
    FastRoutes,
    RequestIdMiddleware,
    configure_logging,
    error_response,
    json_response,
    read_json,
)
from system.metrics import Metrics, node_families, quorum_families
from system.metrics import endpoint as metrics_endpoint
from system.ring import HashRing
from system.storage import Record, Store, open_store
from system.transport import Transport, TransportError
from system.validation import BadRequest, check_key, check_node_id, check_value
from system.versions import SkewedClock, Version, make_version_source

__all__ = ["NodeService", "create_app", "app_from_argv"]

log = logging.getLogger("chaoslab.node")

HANDOFF_BATCH = 256
SCAN_BATCH = 1000
FORMING = 0.1  # seconds to the next heartbeat while the member list forms (see below)
BOOTING = 2.0  # seconds after start a node counts its member list as forming


class Arrivals:
    """Replica requests counted per ``bucket`` seconds of the monotonic clock (system-wide on
    Linux, shared by the host's processes and containers), for the last ``keep`` buckets."""

    __slots__ = ("bucket", "keep", "_counts", "_clock")

    def __init__(self, *, bucket: float = 0.1, keep: int = 6000, clock=time.monotonic) -> None:
        self.bucket, self.keep, self._clock = bucket, keep, clock
        self._counts: dict[int, int] = {}

    def note(self, n: int = 1) -> None:
        b = int(self._clock() / self.bucket)
        counts = self._counts
        if b not in counts:
            counts[b] = 0
            if len(counts) > self.keep:
                del counts[next(iter(counts))]  # the oldest: buckets are added in time order
        counts[b] += n

    def as_json(self) -> dict:
        return {"bucket_s": self.bucket, "clock": "monotonic",
                "buckets": [[round(b * self.bucket, 3), n] for b, n in self._counts.items()]}


class NodeService:
    """State and duties of one node, separate from the HTTP layer."""

    def __init__(self, config: NodeConfig, *, store: Store | None = None,
                 transport: Transport | None = None, clock: Clock = SYSTEM_CLOCK) -> None:
        """``clock``: where the node reads the time (the host's by default; virtual time in
        the simulated runtime)."""
        self.config = config
        self.time = clock
        self.id = config.id
        self.n = config.cluster.n
        self.store = store or open_store(config.storage, config.data_dir, config.id)
        self.transport = transport or PooledTransport()
        self.addresses: dict[str, str] = {}
        # the ring this node last knew survives restarts: members coming back after a restart
        # of theirs, of this node or of the registry are not a membership change
        known = self.store.get_meta("ring")
        self.ring = HashRing(orjson.loads(known) if known else (), vnodes=config.cluster.vnodes)
        self.has_members = False
        self.registry_ok = False
        self.counters: Counter[str] = Counter()
        self.started = clock.wall()
        self._booted = clock.monotonic()
        self._retry_at: dict[str, float] = {}
        self._tasks: list[asyncio.Task] = []
        self._rebalance: asyncio.Task | None = None
        self.repair = config.cluster.repair == "on"
        self.clock = SkewedClock(config.clock_skew_ms, base=clock.wall)
        self.arrivals = Arrivals(clock=clock.monotonic)
        self._jitter = random.Random(None if config.seed is None else f"{config.seed}:{self.id}:handoff")
        c = config.cluster
        self.gateway = Coordinator(
            quorum=c.quorum, transport=self.transport,
            versions=make_version_source(c.versions, self.id, clock=self.clock),
            timeout=config.request_timeout, retries=1, backoff=Backoff(0.02, 0.2, "full"),
            rng=random.Random(None if config.seed is None else f"{config.seed}:{self.id}"),
            vnodes=c.vnodes, repair=c.repair == "on",
            breaker_factory=lambda: CircuitBreaker(failure_threshold=3, cooldown=1.0,
                                                   clock=clock.monotonic))
        self.gateway.update_members({}, self.ring.nodes)

    # ---- lifecycle -------------------------------------------------------------------
    async def start(self) -> None:
        self._tasks = [asyncio.create_task(self._heartbeat_loop(), name="heartbeat")]
        if self.repair:  # --repair off (weakened): a node that missed writes never gets them
            self._tasks.append(asyncio.create_task(self._handoff_loop(), name="handoff"))

    async def stop(self) -> None:
        for task in [*self._tasks, self._rebalance]:
            if task is not None:
                task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self.gateway.drain(timeout=1.0)
        with contextlib.suppress(TransportError):
            await self.transport.request("POST", _hostport(self.config.registry), "/deregister",
                                         json={"id": self.id}, timeout=0.5)
        await self.transport.close()
        self.store.close()

    # ---- replica operations ----------------------------------------------------------
    def burn(self) -> None:
        """Simulated CPU work per request (``--load-factor``)."""
        if self.config.load_factor:
            h = b"x"
            for _ in range(self.config.load_factor):
                h = hashlib.sha256(h).digest()

    def owns(self, key: str) -> bool | None:
        """Whether this node is one of the key's owners; None while the ring is unknown."""
        if not self.has_members or self.id not in self.ring.nodes:
            return None
        return self.id in self.ring.preference_list(key, self.n)

    def apply_write(self, record: Record, owners: list[str], hint_for: list[str]) -> bool:
        applied = self.store.put(record)
        self.gateway.versions.observe(record.version)  # this node's writes come after it
        targets = set(hint_for)
        if self.has_members and self.id in self.ring.nodes and self.repair:
            # a coordinator (or a peer) with an older ring may have missed owners this node
            # knows of; a copy this node does not own is handed to them, then dropped
            targets.update(o for o in self.ring.preference_list(record.key, self.n)
                           if o not in owners)
        targets.discard(self.id)
        for target in targets:
            self.store.add_hints(target, [record.key])
        self.counters["writes"] += 1
        return applied

    # ---- heartbeats ------------------------------------------------------------------
    async def _heartbeat_loop(self) -> None:
        interval = self.config.cluster.heartbeat_interval
        registry = _hostport(self.config.registry)
        while True:
            started = self.time.monotonic()
            # while the member list forms, the next heartbeat comes soon: in the node's first
            # seconds (its registry, or the proxy in front of it, may be starting, and the
            # first of a cluster's nodes to register gets a list of itself) and after a reply
            # that changed the list
            forming = not self.has_members or self.time.monotonic() - self._booted < BOOTING
            try:
                reply = await self.transport.request(
                    "POST", registry, "/heartbeat", timeout=max(interval, 0.5),
                    json={"id": self.id, "address": self.config.advertise,
                          "stats": {"keys_approx": self.counters["writes"],
                                    "hints": self.store.hint_counts()}})
                if reply.status == 200:
                    self.registry_ok = True
                    known = self.addresses
                    self._update_members(reply.body["members"])
                    forming = forming or self.addresses != known
                else:
                    log.warning("registry refused the heartbeat: %s %s", reply.status, reply.body)
            except TransportError as exc:
                if self.registry_ok:
                    log.warning("registry unreachable, keeping the cached member list: %s", exc)
                self.registry_ok = False
            except (KeyError, TypeError) as exc:
                log.warning("malformed heartbeat reply: %r", exc)
            wait = min(interval, FORMING) if forming else interval
            await asyncio.sleep(max(0.0, wait - (self.time.monotonic() - started)))

    def _update_members(self, members: list[dict]) -> None:
        """Adopt the registry's member list. The ring keeps every node it knew until the
        registry says that node left (a graceful departure): a node the registry has not
        heard from again yet is down, not gone, and keeps its token ranges."""
        self.addresses = {m["id"]: m["address"] for m in members if m.get("status") != "left"}
        left = {m["id"] for m in members if m.get("status") == "left"}
        nodes = (set(self.addresses) | self.ring.nodes) - left
        self.has_members = True
        self.gateway.update_members(self.addresses, nodes)
        new_ring = HashRing(nodes, vnodes=self.ring.vnodes)
        if new_ring == self.ring:
            return
        old_ring, self.ring = self.ring, new_ring
        self.store.set_meta("ring", orjson.dumps(sorted(nodes)).decode())
        # a fresh node has nothing to move; without repair (weakened) nothing is ever handed off
        if old_ring.nodes and self.id in new_ring.nodes and self.repair:
            log.info("ring changed %s -> %s: rebalancing", sorted(old_ring.nodes), sorted(new_ring.nodes))
            if self._rebalance is not None:
                self._rebalance.cancel()
            self._rebalance = asyncio.create_task(self._rebalance_scan(old_ring, new_ring))

    async def _rebalance_scan(self, old: HashRing, new: HashRing) -> None:
        """Hint every key whose new owners include nodes that were not owners before; the
        handoff loop pushes them and drops keys this node no longer owns once delivered."""
        after, moved = "", 0
        while True:
            batch = self.store.scan(after, SCAN_BATCH)
            if not batch:
                break
            for rec in batch:
                before = old.preference_list(rec.key, self.n)
                for target in new.preference_list(rec.key, self.n):
                    if target not in before and target != self.id:
                        self.store.add_hints(target, [rec.key])
                        moved += 1
            after = batch[-1].key
            await asyncio.sleep(0)
        log.info("rebalance: %d key copies to hand off", moved)
        self.counters["rebalance_hints"] += moved

    # ---- hinted handoff --------------------------------------------------------------
    async def _handoff_loop(self) -> None:
        while True:  # jittered: peers that see a node come back do not start together
            await asyncio.sleep(self.config.handoff_interval * self._jitter.uniform(0.5, 1.5))
            for target in list(self.store.hint_counts()):
                if self.time.monotonic() < self._retry_at.get(target, 0) or target not in self.addresses:
                    continue
                try:
                    await self._hand_off(target)
                except TransportError as exc:
                    log.debug("handoff to %s deferred: %s", target, exc)
                    self._retry_at[target] = self.time.monotonic() + 1.0

    async def _hand_off(self, target: str) -> None:
        """Push ``target``'s hints: at ``handoff_rate`` records/s in batches of a tenth of a
        second's worth, each gap drawn around its mean (or all at once when the rate is 0)."""
        rate = self.config.cluster.handoff_rate
        batch = max(1, min(HANDOFF_BATCH, round(rate / 10))) if rate else HANDOFF_BATCH
        while hints := self.store.hints(target, batch):
            records = [r for r in (self.store.get(k) for k, _ in hints) if r is not None]
            if records:
                reply = await self.transport.request(
                    "POST", self.addresses[target], "/internal/batch", timeout=5.0,
                    json={"records": [r.as_json() for r in records]})
                if reply.status != 200:
                    raise TransportError(target, f"HTTP {reply.status}", definite=True)
            self.store.remove_hints(target, hints)  # a key re-hinted meanwhile stays hinted
            self.counters["handed_off"] += len(records)
            for rec in records:  # keys this node only held for the new owners
                if self.owns(rec.key) is False and not self.store.has_hints_for_key(rec.key):
                    self.store.delete_if(rec.key, rec.version)
                    self.counters["dropped_after_handoff"] += 1
            await asyncio.sleep(len(hints) / rate * self._jitter.uniform(0.5, 1.5) if rate else 0)

    def stats(self) -> dict:
        return {
            "id": self.id, "address": self.config.advertise, "storage": self.config.storage,
            "keys": self.store.count(), "hints": self.store.hint_counts(),
            "counters": dict(self.counters), "members": self.addresses,
            "ring": sorted(self.ring.nodes), "registry_reachable": self.registry_ok,
            "uptime_s": round(self.time.wall() - self.started, 3),
            "clock_skew_ms": self.clock.skew_ms,
        }


# ---- HTTP layer ------------------------------------------------------------------------

def _parse_record(raw: object) -> Record:
    if not isinstance(raw, dict):
        raise BadRequest("each record must be a JSON object with key, value and version")
    try:
        version = Version.decode(raw.get("version"))
    except ValueError as exc:
        raise BadRequest(str(exc)) from None
    return Record(check_key(raw.get("key")), check_value(raw.get("value")), version)


def _str_list(body: dict, name: str) -> list[str]:
    value = body.get(name, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise BadRequest(f"'{name}' must be a list of node ids")
    return value


def _object(body: object) -> dict:
    if not isinstance(body, dict):
        raise BadRequest(f"expected a JSON object, got {type(body).__name__}")
    return body


def create_app(config: NodeConfig, *, store: Store | None = None,
               transport: Transport | None = None, clock: Clock = SYSTEM_CLOCK) -> Starlette:
    svc = NodeService(config, store=store, transport=transport, clock=clock)
    metrics = Metrics()
    metrics.add(quorum_families(svc.gateway.counts))
    metrics.add(node_families(svc.counters, svc.store.hint_counts))

    async def health(request: Request):
        return json_response({"status": "ok", "id": svc.id})

    async def ready(request: Request):
        if svc.has_members:
            return json_response({"ready": True, "id": svc.id})
        return error_response(503, "not ready: no member list from the registry yet", id=svc.id)

    async def get_data(request: Request):
        key = check_key(request.path_params["key"])
        svc.burn()
        rec = svc.store.get(key)
        if rec is None:
            return error_response(404, f"key {key!r} not found on {svc.id}", key=key)
        return json_response(rec.as_json())

    # the replica hot path: served by FastRoutes, without the framework's stack
    async def internal_read(body: dict, scope):
        svc.arrivals.note()
        key = check_key(body.get("key"))
        svc.burn()
        svc.counters["reads"] += 1
        rec = svc.store.get(key)
        if rec is None:
            return 200, {"key": key, "found": False}
        return 200, {"key": key, "found": True, "value": rec.value, "version": rec.version.encode()}

    async def internal_write(body: dict, scope):
        svc.arrivals.note()
        record = _parse_record(body)
        owners, hint_for = _str_list(body, "owners"), _str_list(body, "hint_for")
        svc.burn()
        applied = svc.apply_write(record, owners, hint_for)
        if applied:
            return 200, {"applied": True, "node": svc.id}
        kept = svc.store.get(record.key)  # the newer version kept: the coordinator may restamp
        return 200, {"applied": False, "node": svc.id,
                     **({"current": kept.version.encode()} if kept is not None else {})}

    # the node as a coordinator: the gateway's API, versions from this node's clock
    async def gateway_write(body: dict, scope):
        key, value = check_key(body.get("key")), check_value(body.get("value"))
        if not svc.has_members:
            return 503, {"error": f"{svc.id} has no member list yet: cannot place {key!r}"}
        try:
            result = await svc.gateway.write(key, value, rid=scope.get("request_id"))
        except QuorumError as exc:
            return 503, exc.as_json()
        return 200, {**result.as_json(), "coordinator": svc.id}

    async def gateway_read(key: str, scope):
        key = check_key(key)
        if not svc.has_members:
            return 503, {"error": f"{svc.id} has no member list yet: cannot place {key!r}"}
        try:
            result = await svc.gateway.read(key, rid=scope.get("request_id"))
        except QuorumError as exc:
            return 503, exc.as_json()
        return (200 if result.found else 404), {**result.as_json(), "coordinator": svc.id}

    async def clock(request: Request):
        if request.method == "POST":
            if svc.config.workers > 1:
                raise BadRequest(f"{svc.id} runs {svc.config.workers} workers: its clock can "
                                 "only be skewed at start (--clock-skew-ms)", status=409)
            body = _object(await read_json(request))
            try:
                svc.clock.set(body.get("skew_ms"))
            except ValueError as exc:
                raise BadRequest(f"'skew_ms': {exc}") from None
            log.warning("clock skew set to %+d ms", svc.clock.skew_ms)
        return json_response({"id": svc.id, "skew_ms": svc.clock.skew_ms,
                              "now_ms": int(svc.clock() * 1000)})

    async def internal_batch(request: Request):
        body = _object(await read_json(request, limit=256 * 1024 * 1024))
        raw = body.get("records")
        if not isinstance(raw, list):
            raise BadRequest("'records' must be a list")
        records = [_parse_record(r) for r in raw]
        svc.arrivals.note(len(records))
        applied = svc.store.put_many(records)
        for rec in records:  # pushed by a peer whose ring says this node owns them
            if svc.owns(rec.key) is False:
                svc.apply_write(rec, [svc.id], [])
        svc.counters["batch_applied"] += applied
        return json_response({"applied": applied, "received": len(records), "node": svc.id})

    async def internal_hints(request: Request):
        body = _object(await read_json(request))
        target = check_node_id(body.get("target"))
        keys = [check_key(k) for k in _str_list(body, "keys")]
        if target != svc.id:
            svc.store.add_hints(target, keys)
        return json_response({"stored": len(keys)})

    async def keys(request: Request):
        after = request.query_params.get("after", "")
        try:
            limit = int(request.query_params.get("limit", "1000"))
        except ValueError:
            raise BadRequest("'limit' must be an integer") from None
        if not 1 <= limit <= 10000:
            raise BadRequest("'limit' must be between 1 and 10000")
        versions = request.query_params.get("versions", "false")
        if versions not in ("true", "false"):
            raise BadRequest("'versions' must be true or false")
        recs = svc.store.scan(after, limit)
        out = {"keys": [r.key for r in recs], "next": recs[-1].key if len(recs) == limit else None}
        if versions == "true":  # what a convergence check compares across replicas
            out["versions"] = [r.version.encode() for r in recs]
        return json_response(out)

    async def stats(request: Request):
        return json_response(svc.stats())

    async def arrivals(request: Request):
        return json_response({"id": svc.id, **svc.arrivals.as_json()})

    @contextlib.asynccontextmanager
    async def lifespan(app):
        await svc.start()
        try:
            yield
        finally:
            await svc.stop()

    app = Starlette(
        routes=[
            Route("/health", health), Route("/ready", ready),
            Route("/data/{key:path}", get_data), Route("/keys", keys), Route("/stats", stats),
            Route("/stats/arrivals", arrivals), Route("/metrics", metrics_endpoint(metrics)),
            Route("/internal/batch", internal_batch, methods=["POST"]),
            Route("/internal/hints", internal_hints, methods=["POST"]),
            Route("/internal/clock", clock, methods=["GET", "POST"]),
        ],
        exception_handlers=EXCEPTION_HANDLERS,
        lifespan=lifespan,
    )
    app.state.service = svc
    app.state.metrics = metrics
    fast = FastRoutes(app, {("POST", "/internal/read"): internal_read,
                            ("POST", "/internal/write"): internal_write,
                            ("POST", "/gateway/data"): gateway_write},
                      prefixes={("GET", "/gateway/data/{key}"): gateway_read})
    return RequestIdMiddleware(fast, service=svc.id, metrics=metrics.http)


def app_from_argv():
    """uvicorn factory for ``--workers > 1`` (each worker re-reads the same command line and,
    being a process of its own, configures its own logging)."""
    config = parse_node_args()
    configure_logging(level=config.log_level, fmt=config.log_format, service=config.id)
    return create_app(config)


def _hostport(url: str) -> str:
    return url.split("://", 1)[-1].rstrip("/")
