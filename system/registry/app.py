"""The registry's HTTP API.

Membership: ``POST /heartbeat``, ``POST /deregister``, ``GET /nodes``, ``GET /cluster-status``.
Gateway: ``POST /data`` (quorum write), ``GET /data/{key}`` (quorum read with read repair); while
the ring has fewer nodes than the quorum, both answer 503 at once saying what is missing.
Probes: ``GET /health`` (the process answers), ``GET /ready`` (the gateway can serve: enough
nodes are alive on the ring for a write and a read quorum; 503 naming what is missing).
Observation: ``GET /metrics`` (Prometheus: requests, gateway quorum outcomes, members by
status; see :mod:`system.metrics`).
Admin (``Authorization: Bearer <token>``; disabled without a configured token):
``POST /kill/{node_id}``, ``POST /scale-up``, ``GET /graduate``, ``PUT /admin/links``,
``GET /admin/launches``, ``POST /admin/launches/{id}``, ``POST /admin/adopt``.

Link table: ``links[from][to]`` is the address participant ``from`` uses to reach node ``to``
(in a harness, the listen address of the fault proxy for that directed link). Heartbeat
replies and ``GET /nodes?view=...`` give each participant its own view.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hmac
import logging
import random

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.routing import Route

from system.backoff import Backoff
from system.breaker import CircuitBreaker
from system.clock import SYSTEM_CLOCK, Clock
from system.config import RegistryConfig
from system.coordinator import Coordinator, QuorumError
from system.fasthttp import PooledTransport
from system.http import (
    EXCEPTION_HANDLERS,
    FastRoutes,
    RequestIdMiddleware,
    error_response,
    json_response,
    read_json,
)
from system.membership import Membership
from system.metrics import Metrics, member_families, quorum_families
from system.metrics import endpoint as metrics_endpoint
from system.registry.graduation import ART, Graduation
from system.registry.launcher import DelegatedLauncher, LocalProcessLauncher, NoLauncher
from system.ring import HashRing
from system.transport import Transport
from system.validation import BadRequest, check_key, check_node_id, check_value
from system.versions import make_version_source

__all__ = ["create_app", "Registry"]

log = logging.getLogger("chaoslab.registry")


def _check_address(value: object) -> str:
    if not isinstance(value, str) or ":" not in value or len(value) > 255:
        raise BadRequest("'address' must be a 'host:port' string")
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise BadRequest(f"'address' {value!r} is not host:port with a port from 1 to 65535")
    return value


class Registry:
    def __init__(self, config: RegistryConfig, *, transport: Transport | None = None,
                 clock: Clock = SYSTEM_CLOCK) -> None:
        """``clock``: where the registry reads the time (the host's by default; virtual time
        in the simulated runtime)."""
        c = config.cluster
        self.config = config
        self.membership = Membership(interval=c.heartbeat_interval, suspect_after=c.suspect_after,
                                     dead_after=c.dead_after, clock=clock.monotonic)
        self.links: dict[str, dict[str, str]] = {}
        self.graduation = Graduation(clock=clock.wall)
        self.node_stats: dict[str, dict] = {}
        self.gateway = Coordinator(
            quorum=c.quorum, transport=transport or PooledTransport(),
            versions=make_version_source(c.versions, f"gateway@{config.advertise}",
                                         clock=clock.wall),
            timeout=config.request_timeout, retries=1, backoff=Backoff(0.02, 0.2, "full"),
            rng=random.Random(config.seed), vnodes=c.vnodes, repair=c.repair == "on",
            breaker_factory=lambda: CircuitBreaker(failure_threshold=3, cooldown=1.0,
                                                   clock=clock.monotonic))
        if config.launcher == "local":
            self.launcher = LocalProcessLauncher(
                registry_url=f"http://{config.advertise}", data_root=config.node_data_root,
                storage=config.node_storage, settings=c)
        elif config.launcher == "delegated":
            self.launcher = DelegatedLauncher()
        else:
            self.launcher = NoLauncher()
        self.scaled: set[str] = set()
        if config.links:
            with open(config.links, "rb") as fh:
                self.set_links(orjson.loads(fh.read()))

    def set_links(self, table: object) -> None:
        if not isinstance(table, dict):
            raise BadRequest("links must be an object {from_id: {to_id: 'host:port'}}")
        checked: dict[str, dict[str, str]] = {}
        for src, row in table.items():
            if not isinstance(row, dict):
                raise BadRequest(f"links[{src!r}] must be an object {{to_id: 'host:port'}}")
            checked[src] = {check_node_id(dst): _check_address(addr) for dst, addr in row.items()}
        for src, row in checked.items():
            self.links.setdefault(src, {}).update(row)
        self.sync_gateway()

    def view(self, viewer: str) -> list[dict]:
        row = self.links.get(viewer, {})
        return [{**m.as_json(), "address": row.get(m.id, m.address)}
                for m in self.membership.members()]  # "left" ones too: so nodes drop them

    def sync_gateway(self) -> None:
        members = self.view("registry")
        self.gateway.update_members({m["id"]: m["address"] for m in members
                                     if m["status"] != "left"})

    def ring(self) -> HashRing:
        return self.gateway.ring

    def note_write(self, result) -> None:
        dead = [m.id for m in self.membership.ring_members() if m.status == "dead"]
        if dead and set(dead) & set(result.owners):
            self.graduation.record("write_while_node_dead", key=result.key, dead=dead,
                                   acks=list(result.acks))

    def note_read(self, result) -> None:
        if result.failed:
            self.graduation.record("read_failover", key=result.key, failed=result.failed,
                                   answered=list(result.answered))

    def readiness(self) -> dict:
        """Whether the gateway can serve quorum writes and reads: at least max(W, R) ring
        members alive. ``missing`` says what it still waits for."""
        c = self.config.cluster
        needed = max(c.w, c.r)
        ring = self.membership.ring_members()
        alive = [m.id for m in ring if m.status == "alive"]
        out = {"ready": len(alive) >= needed, "service": "registry", "alive": alive,
               "ring": [m.id for m in ring], "needed": needed,
               "quorum": {"n": c.n, "w": c.w, "r": c.r}}
        if not out["ready"]:
            out["missing"] = (f"{needed - len(alive)} more alive node(s): quorum operations "
                              f"need max(W={c.w}, R={c.r}) = {needed} alive owners and "
                              f"{len(alive)} of the ring's {len(ring)} node(s) are alive")
        return out

    def unplaceable(self, op: str, key: str) -> dict | None:
        """The 503 body for ``op`` (write or read) of ``key`` when the ring has fewer nodes
        than its quorum, so no owner set can answer; None when the coordinator can try. The
        body has the shape of a quorum error's and is definite (no replica was asked)."""
        c = self.config.cluster
        needed, name = (c.w, "W") if op == "write" else (c.r, "R")
        nodes = sorted(self.ring().nodes)
        if len(nodes) >= needed:
            return None
        return {
            "error": f"cannot place the {op}: the ring has {len(nodes)} node(s) "
                     f"({', '.join(nodes) or 'none'}) and a {op} needs {name}={needed} owners; "
                     f"waiting for {needed - len(nodes)} more node(s) to join (see GET /ready)",
            "status": 503, "op": op, "key": key, "needed": needed, "acks": 0, "replicas": [],
            "owners": nodes, "failed": {}, "attempts": 0, "definite": True,
            "missing": needed - len(nodes),
        }

    def status(self) -> dict:
        c = self.config.cluster
        members = self.membership.members()
        ring = self.ring()
        return {
            "health": self.membership.health(c.n),
            "nodes": [m.as_json() for m in members],
            "settings": dataclasses.asdict(c),  # every field: clients build theirs from it
            "ring": {"nodes": sorted(ring.nodes), "ownership": ring.ownership()},
            "launcher": self.launcher.name,
            "hints": {k: v.get("hints", {}) for k, v in self.node_stats.items()},
        }

    def next_node_id(self) -> str:
        taken = {m.id for m in self.membership.members()} | self.scaled
        for k in range(1, 10_000):
            if f"node-{k}" not in taken:
                return f"node-{k}"
        raise BadRequest("no free node id", status=409)


def create_app(config: RegistryConfig, *, transport: Transport | None = None,
               clock: Clock = SYSTEM_CLOCK):
    reg = Registry(config, transport=transport, clock=clock)
    metrics = Metrics()
    metrics.add(quorum_families(reg.gateway.counts))
    metrics.add(member_families(lambda: (m.status for m in reg.membership.members())))

    def require_admin(request: Request) -> None:
        if not config.admin_token:
            raise BadRequest("admin endpoints are disabled: start the registry with "
                             "--admin-token (or CHAOSLAB_ADMIN_TOKEN)", status=403)
        auth = request.headers.get("authorization", "")
        if not auth.startswith("Bearer "):
            raise BadRequest("missing 'Authorization: Bearer <token>' header", status=401)
        if not hmac.compare_digest(auth[7:].encode(), config.admin_token.encode()):
            raise BadRequest("wrong admin token", status=401)

    def known_node(node_id: str) -> str:
        if node_id not in reg.membership:
            raise BadRequest(f"unknown node id {node_id!r}", status=404)
        return node_id

    async def obj(request: Request) -> dict:
        body = await read_json(request)
        if not isinstance(body, dict):
            raise BadRequest(f"expected a JSON object, got {type(body).__name__}")
        return body

    # ---- membership ----
    async def heartbeat(request: Request):
        body = await obj(request)
        node_id = check_node_id(body.get("id"))
        address = _check_address(body.get("address"))
        before = reg.membership.status(node_id) if node_id in reg.membership else None
        rejoined = reg.membership.heartbeat(node_id, address)
        if rejoined:
            log.info("%s joined at %s (was %s)", node_id, address, before)
            reg.sync_gateway()
            if before in ("dead", "left"):
                reg.graduation.node_returned(node_id)
            if node_id in reg.scaled:
                reg.graduation.record("scale_up", node=node_id)
        stats = body.get("stats")
        if isinstance(stats, dict):
            reg.node_stats[node_id] = stats
            reg.graduation.check_recovery({k: v.get("hints") or {} for k, v in reg.node_stats.items()})
        return json_response({"members": reg.view(node_id),
                              "status": reg.membership.status(node_id)})

    async def deregister(request: Request):
        body = await obj(request)
        node_id = known_node(check_node_id(body.get("id")))
        reg.membership.deregister(node_id)
        reg.sync_gateway()
        return json_response({"id": node_id, "status": "left"})

    async def nodes(request: Request):
        viewer = request.query_params.get("view", "client")
        c = config.cluster
        return json_response({"members": reg.view(viewer),
                              "settings": {"n": c.n, "w": c.w, "r": c.r, "vnodes": c.vnodes,
                                           "heartbeat_interval": c.heartbeat_interval}})

    async def cluster_status(request: Request):
        return json_response(reg.status())

    # ---- gateway: the data path, served by FastRoutes ----
    async def put_data(body: dict, scope):
        key, value = check_key(body.get("key")), check_value(body.get("value"))
        refusal = reg.unplaceable("write", key)
        if refusal is not None:
            return 503, refusal
        try:
            result = await reg.gateway.write(key, value, rid=scope.get("request_id"))
        except QuorumError as exc:
            return 503, exc.as_json()
        reg.note_write(result)
        return 200, result.as_json()

    async def get_data(key: str, scope):
        key = check_key(key)
        refusal = reg.unplaceable("read", key)
        if refusal is not None:
            return 503, refusal
        try:
            result = await reg.gateway.read(key, rid=scope.get("request_id"))
        except QuorumError as exc:
            return 503, exc.as_json()
        reg.note_read(result)
        return (200 if result.found else 404), result.as_json()

    # ---- admin ----
    async def kill(request: Request):
        require_admin(request)
        node_id = known_node(request.path_params["node_id"])
        if reg.launcher.owns(node_id):
            outcome = await reg.launcher.kill(node_id)
            reg.membership.mark_dead(node_id)
            return json_response({**outcome, "killed": True,
                                  "message": f"{node_id} stopped by the {reg.launcher.name} launcher"})
        reg.membership.mark_dead(node_id)
        return json_response({"id": node_id, "killed": False, "status": "dead",
                              "message": f"{node_id} was not started by this registry's launcher: "
                                         "marked dead only (its process, if any, still runs)"})

    async def scale_up(request: Request):
        require_admin(request)
        node_id = reg.next_node_id()
        outcome = await reg.launcher.launch(node_id)
        reg.scaled.add(node_id)
        return json_response(outcome, status=201 if outcome.get("state") == "started" else 202)

    async def graduate(request: Request):
        require_admin(request)
        missing = reg.graduation.missing()
        if missing:
            return json_response({"error": "not yet: the cluster has not seen every victory "
                                  "condition", "status": 409, "missing": missing,
                                  "seen": reg.graduation.seen}, status=409)
        return json_response({"graduated": True, "art": ART, "seen": reg.graduation.seen})

    async def put_links(request: Request):
        require_admin(request)
        reg.set_links(await obj(request))
        return json_response({"links": reg.links})

    def delegated() -> DelegatedLauncher:
        if not isinstance(reg.launcher, DelegatedLauncher):
            raise BadRequest("this registry does not delegate launches (--launcher delegated)", 409)
        return reg.launcher

    async def launches(request: Request):
        require_admin(request)
        return json_response({"pending": delegated().pending()})

    async def complete_launch(request: Request):
        require_admin(request)
        try:
            req_id = int(request.path_params["req_id"])
        except ValueError:
            raise BadRequest("launch request id must be an integer") from None
        body = await obj(request)
        ok = body.get("ok", True)
        if not isinstance(ok, bool):
            raise BadRequest("'ok' must be a boolean")
        req = delegated().complete(req_id, ok=ok, detail=str(body.get("detail", "")))
        if ok and req.action == "kill" and req.node_id in reg.membership:
            reg.membership.mark_dead(req.node_id)
        return json_response(req.as_json())

    async def adopt(request: Request):
        require_admin(request)
        body = await obj(request)
        ids = body.get("nodes")
        if not isinstance(ids, list):
            raise BadRequest("'nodes' must be a list of node ids")
        delegated().adopt([check_node_id(i) for i in ids])
        return json_response({"adopted": ids})

    async def health(request: Request):
        return json_response({"status": "ok", "service": "registry"})

    async def ready(request: Request):
        state = reg.readiness()
        if state["ready"]:
            return json_response(state)
        return error_response(503, f"not ready: {state['missing']}", **state)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        try:
            yield
        finally:
            await reg.launcher.close()
            await reg.gateway.drain(timeout=2.0)
            await reg.gateway.transport.close()

    app = Starlette(
        routes=[
            Route("/health", health), Route("/ready", ready),
            Route("/heartbeat", heartbeat, methods=["POST"]),
            Route("/deregister", deregister, methods=["POST"]),
            Route("/nodes", nodes), Route("/cluster-status", cluster_status),
            Route("/kill/{node_id}", kill, methods=["POST"]),
            Route("/scale-up", scale_up, methods=["POST"]),
            Route("/graduate", graduate),
            Route("/admin/links", put_links, methods=["PUT"]),
            Route("/admin/launches", launches),
            Route("/admin/launches/{req_id}", complete_launch, methods=["POST"]),
            Route("/admin/adopt", adopt, methods=["POST"]),
            Route("/metrics", metrics_endpoint(metrics)),
        ],
        exception_handlers=EXCEPTION_HANDLERS,
        lifespan=lifespan,
    )
    app.state.registry = reg
    app.state.metrics = metrics
    fast = FastRoutes(app, {("POST", "/data"): put_data}, prefixes={("GET", "/data/{key}"): get_data})
    return RequestIdMiddleware(fast, service="registry", metrics=metrics.http)

