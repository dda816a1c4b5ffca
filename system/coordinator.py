"""Quorum coordination over a :class:`~system.transport.Transport`.

Used by the smart client and by the registry's gateway. A write gets one version, is sent to
the key's N owners in parallel, and returns as soon as W have acknowledged; the requests to
the slower owners carry on in the background, and any owner that did not acknowledge gets a
hint stored on the owners that did (hinted handoff). A read asks the owners, returns the
newest of the first R answers and repairs stale owners. Owners whose circuit breaker is open
are not asked. An operation that cannot reach its quorum is retried with backoff and jitter,
then fails with :class:`QuorumError` carrying the counts.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import orjson

from system.backoff import Backoff
from system.breaker import BreakerState, CircuitBreaker
from system.quorum import QuorumConfig, Tally
from system.ring import HashRing
from system.storage import Record
from system.transport import Raw, Transport, TransportError
from system.versions import Version, VersionSource

__all__ = ["Coordinator", "WriteResult", "ReadResult", "QuorumError"]

log = logging.getLogger("chaoslab.coordinator")

MAX_RESTAMPS = 2  # past that, the newer versions come from writes overlapping this one


@dataclass(frozen=True, slots=True)
class WriteResult:
    key: str
    version: Version
    owners: tuple[str, ...]
    acks: tuple[str, ...]
    failed: dict[str, str]
    attempts: int
    quorum: QuorumConfig
    restamps: int = 0  # times a replica's newer version made the write stamped again
    superseded_by: list | None = None  # a newer version a replica kept instead (wallclock)
    requests: int = 0  # replica requests sent over every attempt (retry amplification)

    def as_json(self) -> dict:
        out = {
            "key": self.key, "version": self.version.encode(), "n": self.quorum.n,
            "w": self.quorum.w, "acks": len(self.acks), "replicas": list(self.acks),
            "owners": list(self.owners), "failed": self.failed, "attempts": self.attempts,
            "requests": self.requests, "restamps": self.restamps,
        }
        if self.superseded_by is not None:
            out["superseded_by"] = self.superseded_by
        return out


@dataclass(frozen=True, slots=True)
class ReadResult:
    key: str
    record: Record | None
    owners: tuple[str, ...]
    answered: tuple[str, ...]
    failed: dict[str, str]
    repaired: tuple[str, ...]
    attempts: int
    quorum: QuorumConfig
    requests: int = 0  # replica requests sent over every attempt (retry amplification)

    @property
    def found(self) -> bool:
        return self.record is not None

    @property
    def value(self) -> str | None:
        return None if self.record is None else self.record.value

    def as_json(self) -> dict:
        out = {
            "key": self.key, "found": self.found, "n": self.quorum.n, "r": self.quorum.r,
            "replies": len(self.answered), "replicas": list(self.answered),
            "owners": list(self.owners), "failed": self.failed,
            "repaired": list(self.repaired), "attempts": self.attempts, "requests": self.requests,
        }
        if self.record is not None:
            out["value"] = self.record.value
            out["version"] = self.record.version.encode()
        return out


class QuorumError(Exception):
    """Not enough owners answered. ``as_json`` gives the counts for a 503 body.

    ``definite`` is True only when no replica was reached in ANY attempt: none answered,
    none failed in a way that leaves it possible that it applied the request (a timeout, a
    reset, a 5xx), none was still being asked. Then the operation certainly did not happen;
    otherwise it may have (a write that reached one replica in attempt 1 and met open
    breakers in attempt 2 is not definite). The counts are the last attempt's."""

    def __init__(self, op: str, key: str, needed: int, tally: Tally, owners: tuple[str, ...],
                 attempts: int, *, definite: bool = False, requests: int = 0) -> None:
        self.op, self.key, self.needed, self.owners, self.attempts = op, key, needed, owners, attempts
        self.requests = requests  # replica requests sent over every attempt
        self.acks = tuple(tally.ok)
        self.failed = dict(tally.failed)
        self.definite = definite
        super().__init__(
            f"{op} of {key!r} reached {len(self.acks)} of the {needed} answers it needs "
            f"(owners {', '.join(owners) or 'none'}; failed: {self.failed})"
        )

    def as_json(self) -> dict:
        return {
            "error": f"quorum not reached: {len(self.acks)} of {self.needed} needed",
            "status": 503, "op": self.op, "key": self.key, "needed": self.needed,
            "acks": len(self.acks), "replicas": list(self.acks), "owners": list(self.owners),
            "failed": self.failed, "attempts": self.attempts, "requests": self.requests,
            "definite": self.definite,
        }


@dataclass
class Coordinator:
    """Coordinates quorum operations for one process (a client or the gateway)."""

    quorum: QuorumConfig
    transport: Transport
    versions: VersionSource
    timeout: float = 1.0
    retries: int = 2
    backoff: Backoff = field(default_factory=Backoff)
    rng: random.Random = field(default_factory=random.Random)
    breaker_factory: Callable[[], CircuitBreaker] = CircuitBreaker
    hedge_after: float = 0.0
    vnodes: int = 64
    repair: bool = True  # hinted handoff and read repair (False: the weakened mode)
    on_breaker: Callable[[str, BreakerState, BreakerState], None] | None = None  # node, old, new
    sleep: Callable[[float], object] = asyncio.sleep
    addresses: dict[str, str] = field(default_factory=dict)
    ring: HashRing = field(default_factory=HashRing)
    breakers: dict[str, CircuitBreaker] = field(default_factory=dict)
    # outcomes: write_ok, write_quorum_error, read_ok, read_quorum_error, restamps, read_repairs
    counts: Counter[str] = field(default_factory=Counter)
    _background: set[asyncio.Task] = field(default_factory=set)

    # ---- membership -------------------------------------------------------------------
    def update_members(self, addresses: dict[str, str], ring_nodes: Iterable[str] | None = None) -> bool:
        """Replace the member table; True if the ring changed."""
        self.addresses = dict(addresses)
        nodes = frozenset(addresses if ring_nodes is None else ring_nodes)
        if nodes == self.ring.nodes:
            return False
        self.ring = HashRing(nodes, vnodes=self.vnodes)
        return True

    def breaker(self, node: str) -> CircuitBreaker:
        b = self.breakers.get(node)
        if b is None:
            b = self.breakers[node] = self.breaker_factory()
            if self.on_breaker is not None:
                b.on_change = functools.partial(self.on_breaker, node)
        return b

    # ---- requests to one owner --------------------------------------------------------
    async def _call(self, node: str, path: str, body: dict, rid: str | None):
        address = self.addresses.get(node)
        if address is None:
            raise TransportError(node, "no address known for this node", definite=True)
        headers = {"x-request-id": rid} if rid else None
        try:
            reply = await self.transport.request("POST", address, path, json=body,
                                                 timeout=self.timeout, headers=headers)
        except TransportError:
            self.breaker(node).record_failure()
            raise
        except BaseException:  # cancelled or unexpected: still release a half-open probe
            self.breaker(node).record_failure()
            raise
        if reply.status >= 500:
            self.breaker(node).record_failure()
            raise TransportError(address, f"HTTP {reply.status}: {_err(reply.body)}", definite=False)
        self.breaker(node).record_success()
        if reply.status >= 400:
            raise TransportError(address, f"HTTP {reply.status}: {_err(reply.body)}", definite=True)
        return reply.body

    def _spawn(self, coro) -> asyncio.Task:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    async def drain(self, timeout: float = 5.0) -> None:
        """Wait for background replication, hints and repairs (used in tests and shutdown)."""
        if self._background:
            await asyncio.wait(list(self._background), timeout=timeout)

    # ---- fan-out ------------------------------------------------------------------------
    def _allowed(self, nodes, tally: Tally) -> list[str]:
        """The nodes whose breaker lets a request through now; the others fail at once."""
        allowed = []
        for node in nodes:
            if self.breaker(node).allow():
                allowed.append(node)
            else:
                tally.record_fail(node, "circuit open", definite=True)
        return allowed

    async def _fan_out(self, tally: Tally, first: list[str], path: str, body: dict | Raw,
                       rid: str | None, *, hedge: Iterable[str] = ()) -> dict[asyncio.Task, str]:
        """Send ``body`` to ``first`` in parallel and feed ``tally`` until it is decided. The
        ``hedge`` owners are asked too once ``hedge_after`` passes, or as soon as the first
        ones can no longer make the quorum. Returns the requests still running."""
        tasks: dict[asyncio.Task, str] = {}
        loop = asyncio.get_running_loop()  # ensure_future's, without its checks per task

        def launch(nodes) -> None:
            tally.sent += len(nodes)
            for node in nodes:
                tasks[loop.create_task(self._call(node, path, body, rid))] = node

        launch(first)
        rest = list(hedge)
        try:
            while not tally.decided:
                if rest and len(tally.ok) + len(tasks) < tally.needed:
                    launch(self._allowed(rest, tally))
                    rest = []
                    continue
                if not tasks:
                    break
                await _first_done(tasks, self.hedge_after if rest else None)
                done = [t for t in tasks if t.done()]
                if not done:  # the first owners are slow: hedge
                    launch(self._allowed(rest, tally))
                    rest = []
                for task in done:  # in the order they were sent (never a set's: by address)
                    _settle(task, tasks.pop(task), tally)
        except asyncio.CancelledError:  # the caller gave up: the sent requests run on, tracked
            self._let_run(tasks)
            raise
        return tasks

    def _let_run(self, tasks) -> None:
        """Requests nobody waits for any more: they run on, tracked (``drain`` waits for
        them), and their outcome is taken so asyncio does not log it."""
        for task in tasks:
            self._background.add(task)
            task.add_done_callback(self._background.discard)
            task.add_done_callback(_forget)

    # ---- write ------------------------------------------------------------------------
    async def write(self, key: str, value: str, *, rid: str | None = None) -> WriteResult:
        """Write with one version; retried with backoff when the quorum is not reached. A
        replica holding a newer version answers with it: the write is stamped again past it
        and sent again (at most ``MAX_RESTAMPS`` times), so a coordinator whose clock runs
        behind does not lose an update that ended before its own began. A bare wall clock
        (``--versions wallclock``) cannot move past it, and that write is lost to the newer
        one: the weakened mode's lost update."""
        version = self.versions.now()
        delays = self.backoff.delays(self.rng)
        reached = False  # some replica was (or may have been) reached in some attempt
        attempt, restamps, sent = 1, 0, 0
        while True:
            owners = self.ring.preference_list(key, self.quorum.n)
            tally = Tally(needed=self.quorum.w, total=max(len(owners), 1))
            allowed = self._allowed(owners, tally)
            # owners behind an open breaker get a hint stored with the write itself
            hint_for = [o for o in owners if o not in allowed] if self.repair else []
            body = Raw(orjson.dumps({"key": key, "value": value, "version": version.encode(),
                                     "owners": owners, "hint_for": hint_for}))
            tasks = await self._fan_out(tally, allowed, "/internal/write", body, rid)
            sent += tally.sent
            reached = reached or tally.reached or bool(tasks)  # before late answers come
            self._after_write(key, tally, tasks, rid)
            if tally.succeeded:
                newer = _superseded_by(tally, version)
                if newer is not None and restamps < MAX_RESTAMPS:
                    self.versions.observe(newer)
                    fresh = self.versions.now()
                    if fresh > newer:
                        version, restamps = fresh, restamps + 1
                        continue
                self.counts["write_ok"] += 1
                self.counts["restamps"] += restamps
                return WriteResult(key, version, owners, tuple(tally.ok), dict(tally.failed),
                                   attempt, self.quorum, restamps,
                                   newer.encode() if newer is not None else None, sent)
            if attempt > self.retries:
                self.counts["write_quorum_error"] += 1
                raise QuorumError("write", key, self.quorum.w, tally, owners, attempt,
                                  definite=not reached, requests=sent)
            attempt += 1
            await self.sleep(next(delays))

    def _after_write(self, key: str, tally: Tally, tasks: dict[asyncio.Task, str],
                     rid: str | None = None) -> None:
        """Let the slower owners finish in the background; once all have answered, leave
        hints for every owner that missed the write (those behind an open breaker were
        hinted inside the write itself)."""
        def settled(task: asyncio.Task) -> None:
            _settle(task, tasks[task], tally)
            if tally.pending == 0:
                self._leave_hints(key, tally, rid)

        if not tasks:
            self._leave_hints(key, tally, rid)
        for task in tasks:
            self._background.add(task)  # drain() waits for it; a reference keeps it alive
            task.add_done_callback(self._background.discard)
            task.add_done_callback(settled)

    def _leave_hints(self, key: str, tally: Tally, rid: str | None = None) -> None:
        missed = [n for n, why in tally.failed.items() if why != "circuit open"]
        if tally.ok and missed and self.repair:
            self._spawn(self._send_hints(key, list(tally.ok), missed, rid))

    async def _send_hints(self, key: str, holders: list[str], missed: list[str],
                          rid: str | None) -> None:
        """Ask the owners that took the write to keep hints for those that missed it (the
        request id of the write goes with them, so its log lines join the write's)."""
        for holder in holders:
            for target in missed:
                try:
                    await self._call(holder, "/internal/hints", {"target": target, "keys": [key]}, rid)
                except TransportError as exc:
                    log.info("could not leave a hint for %s on %s: %s", target, holder, exc)

    # ---- read -------------------------------------------------------------------------
    async def read(self, key: str, *, rid: str | None = None) -> ReadResult:
        delays = self.backoff.delays(self.rng)
        body = {"key": key}
        reached, sent = False, 0
        for attempt in range(1, self.retries + 2):
            owners = self.ring.preference_list(key, self.quorum.n)
            tally = Tally(needed=self.quorum.r, total=max(len(owners), 1))
            if self.hedge_after > 0:  # ask R owners first, the others only if they are slow
                healthy = [o for o in owners if self.breaker(o).state is BreakerState.CLOSED]
                first = self._allowed(healthy[: self.quorum.r], tally)
                hedge = [o for o in owners if o not in first and o not in tally.failed]
            else:
                first, hedge = self._allowed(owners, tally), []
            tasks = await self._fan_out(tally, first, "/internal/read", body, rid, hedge=hedge)
            sent += tally.sent
            reached = reached or tally.reached or bool(tasks)
            if tally.succeeded:
                records = {n: _record(key, b) for n, b in tally.ok.items()}
                newest = max((r for r in records.values() if r is not None),
                             key=lambda r: r.version, default=None)
                stale = []
                if newest is not None:
                    self.versions.observe(newest.version)
                    stale = [n for n, r in records.items() if r is None or r.version < newest.version]
                if self.repair and newest is not None:  # the late answers are repaired too
                    self._spawn(self._repair(newest, stale, tasks, owners, rid))
                else:
                    self._let_run(tasks)
                self.counts["read_ok"] += 1
                return ReadResult(key, newest, owners, tuple(tally.ok), dict(tally.failed),
                                  tuple(stale), attempt, self.quorum, sent)
            self._let_run(tasks)  # the owners still asked after the quorum failed
            if attempt <= self.retries:
                await self.sleep(next(delays))
        self.counts["read_quorum_error"] += 1
        raise QuorumError("read", key, self.quorum.r, tally, owners, attempt,
                          definite=not reached, requests=sent)

    async def _repair(self, newest: Record, stale: list[str], late: dict[asyncio.Task, str],
                      owners: tuple[str, ...], rid: str | None = None) -> None:
        """Write the newest record to owners that answered with an older one (or late), with
        the read's request id."""
        if late:
            await asyncio.wait(list(late))
            for task, node in late.items():
                if not task.cancelled() and task.exception() is None:
                    rec = _record(newest.key, task.result())
                    if rec is None or rec.version < newest.version:
                        stale.append(node)
        body = {**newest.as_json(), "owners": owners, "hint_for": []}
        for node in stale:
            try:
                await self._call(node, "/internal/write", body, rid)
                self.counts["read_repairs"] += 1
            except TransportError as exc:
                log.info("read repair of %r on %s failed: %s", newest.key, node, exc)


async def _first_done(tasks, timeout: float | None) -> None:
    """Return once one of ``tasks`` is done, or after ``timeout`` seconds: what
    ``asyncio.wait(tasks, timeout=timeout, return_when=FIRST_COMPLETED)`` waits for, without
    its argument checks and result sets (it runs once or twice per quorum operation)."""
    loop = asyncio.get_running_loop()
    waiter = loop.create_future()

    def wake(_: object = None) -> None:
        if not waiter.done():
            waiter.set_result(None)

    timer = loop.call_later(timeout, wake) if timeout is not None else None
    for task in tasks:
        task.add_done_callback(wake)
    try:
        await waiter
    finally:
        if timer is not None:
            timer.cancel()
        for task in tasks:
            task.remove_done_callback(wake)


def _forget(task: asyncio.Task) -> None:
    """Take the outcome of a request nobody waits for, so asyncio does not log it."""
    if not task.cancelled():
        task.exception()


def _settle(task: asyncio.Task, node: str, tally: Tally) -> None:
    if task.cancelled():
        tally.record_fail(node, "cancelled")
        return
    exc = task.exception()
    if exc is None:
        tally.record_ok(node, task.result())
    elif isinstance(exc, TransportError):
        tally.record_fail(node, exc.reason, definite=exc.definite)
    else:
        log.error("unexpected error from %s: %r", node, exc)
        tally.record_fail(node, f"{type(exc).__name__}: {exc}")


def _superseded_by(tally: Tally, version: Version) -> Version | None:
    """The newest version a replica kept instead of ``version`` (``current`` in its answer),
    if any is newer."""
    newest = None
    for body in tally.ok.values():
        if isinstance(body, dict) and body.get("applied") is False and "current" in body:
            try:
                current = Version.decode(body["current"])
            except ValueError:
                continue
            if current > version and (newest is None or current > newest):
                newest = current
    return newest


def _record(key: str, body) -> Record | None:
    if not isinstance(body, dict) or body.get("found") is False or "version" not in body:
        return None
    return Record(key, body["value"], Version.decode(body["version"]))


def _err(body) -> str:
    if isinstance(body, dict) and "error" in body:
        return str(body["error"])
    return str(body)[:200]
