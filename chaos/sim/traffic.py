"""The traffic of a simulated run: Locust's users, in process, on virtual time.

Locust cannot run inside the simulation (gevent, its own processes, the wall clock), so
:class:`SimLoad` plays the same :class:`~chaos.traffic.Workload` the way
:class:`chaos.locust.KVUser` does: ``users`` tasks, each with its own seeded RNG (derived as
Locust's users derive theirs), the same key and value streams, and the same records, invoke
then ok / fail / info with the version, the attempts and the replica requests; the smart
client's breaker moves go to the same event lane. It has the face of
:class:`chaos.load.Load` (``start``, ``snapshot``, ``wait``, ``stop``, ``history``) so the
scenario runner drives it unchanged. :class:`SimKV` is the blocking client of the final
reads. Both talk to the cluster through the ``client`` side of the simulated links.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import quote

from chaos.checkers import ReadYourWrites
from chaos.history import EVENT, INTERRUPTED, History, Op
from chaos.seeds import derive
from chaos.sim.network import SimTransport
from chaos.topology import CLIENT
from chaos.traffic import (
    ConnectFailed,
    ConnectionLost,
    Rejected,
    Timeout,
    Unavailable,
    Workload,
    _http_error,
    outcome,
    version_text,
)
from system.client import SmartClient
from system.config import ClientConfig, ClusterSettings
from system.coordinator import QuorumError
from system.transport import TransportError
from system.validation import BadRequest

__all__ = ["SimLoad", "SimKV", "OP_COST", "STOP_GRACE"]

OP_COST = 0.001  # virtual seconds a user spends on its side of each operation (Locust's CPU)
STOP_GRACE = 5.0  # as Load's --stop-timeout: users may finish their operation this long
HOT_SHARE = 0.9  # as chaos.locust
Tries = tuple[int | None, int | None]


def _think(loop, seconds: float) -> asyncio.Future:
    """``asyncio.sleep(seconds)`` for a user (never paused: no handle needed), cheaper."""
    fut = loop.create_future()
    loop.call_wire(seconds, _wake, fut)
    return fut


def _wake(fut: asyncio.Future) -> None:
    if not fut.done():  # else the user was cancelled meanwhile
        fut.set_result(None)


def _int(raw: Any) -> int | None:
    return raw if isinstance(raw, int) and not isinstance(raw, bool) else None


def _tried(exc: BaseException, tries: Tries) -> BaseException:
    exc.tries = tries  # type: ignore[attr-defined]
    return exc


# ---- the clients, as coroutines ---------------------------------------------------------
class _SmartAsync:
    """The smart client, as :class:`chaos.traffic.SmartKV` wraps it, on the event loop."""

    def __init__(self, client: SmartClient) -> None:
        self.client = client

    async def _call(self, op: str, coro) -> Any:
        try:
            return await coro
        except QuorumError as exc:
            raise _tried(Unavailable(op, acks=len(exc.acks), needed=exc.needed,
                                     definite=exc.definite), (exc.attempts, exc.requests)) from exc
        except BadRequest as exc:
            raise Rejected(op, exc.status, str(exc)) from exc

    async def put(self, key: str, value: str) -> tuple[str | None, Tries]:
        result = await self._call("write", self.client.put(key, value))
        return version_text(result.version.encode()), (result.attempts, result.requests)

    async def get(self, key: str) -> tuple[tuple[str | None, str | None], Tries]:
        result = await self._call("read", self.client.get(key))
        tries = (result.attempts, result.requests)
        if result.record is None:
            return (None, None), tries
        return (result.record.value, version_text(result.record.version.encode())), tries

    async def close(self) -> None:
        await self.client.close()


class _GatewayAsync:
    """The gateway's HTTP API, as :class:`chaos.traffic.GatewayKV` uses it; ``bases`` are
    the gateways (the registry, or every node's ``/gateway``), one drawn per operation."""

    def __init__(self, transport: SimTransport, bases: list[tuple[str, str]], timeout: float,
                 rng: random.Random | None = None) -> None:
        self.transport, self.bases, self.timeout, self.rng = transport, bases, timeout, rng

    async def _request(self, op: str, method: str, path: str, body: Any) -> tuple[int, dict]:
        address, prefix = self.rng.choice(self.bases) if self.rng else self.bases[0]
        try:
            reply = await self.transport.request(method, address, prefix + path, json=body,
                                                 timeout=self.timeout)
        except TransportError as exc:
            if exc.definite:
                raise ConnectFailed(f"{op}: cannot connect ({exc.reason})") from exc
            if exc.reason.startswith("no answer"):
                raise Timeout(f"{op}: no answer in time ({exc.reason})") from exc
            raise ConnectionLost(f"{op}: connection lost ({exc.reason})") from exc
        return reply.status, reply.body if isinstance(reply.body, dict) else {}

    async def put(self, key: str, value: str) -> tuple[str | None, Tries]:
        status, body = await self._request("write", "POST", "/data", {"key": key, "value": value})
        tries = (_int(body.get("attempts")), _int(body.get("requests")))
        if status != 200:
            raise _tried(_http_error("write", status, body), tries)
        return version_text(body.get("version")), tries

    async def get(self, key: str) -> tuple[tuple[str | None, str | None], Tries]:
        status, body = await self._request("read", "GET", f"/data/{quote(key, safe='')}", None)
        tries = (_int(body.get("attempts")), _int(body.get("requests")))
        if status == 404:
            return (None, None), tries
        if status != 200:
            raise _tried(_http_error("read", status, body), tries)
        return (body.get("value"), version_text(body.get("version"))), tries

    async def close(self) -> None:
        return None


async def _make_client(runtime, kind: str, registry: str, config: ClientConfig | None, *,
                       workload: Workload | None = None, seed: int = 0,
                       on_breaker=None):
    """The async client of ``kind`` (``smart`` or ``gateway``) on the client's side."""
    transport = SimTransport(runtime.network, CLIENT)
    reg = registry.split("://", 1)[-1].rstrip("/")
    if kind == "gateway":
        w = workload
        timeout = config.request_timeout * (config.retries + 1)
        if w is not None and w.gateways == "nodes":
            reply = await transport.request("GET", reg, "/nodes?view=client", timeout=5.0)
            bases = [(m["address"], "/gateway") for m in reply.body["members"]
                     if m["status"] != "left"]
            return _GatewayAsync(transport, bases, timeout,
                                 random.Random(derive(seed, "gateways-0")))
        return _GatewayAsync(transport, [(reg, "")], timeout)
    if kind != "smart":
        raise ValueError(f"unknown client {kind!r}: choose smart or gateway")
    client = SmartClient(config, transport=transport, on_breaker=on_breaker,
                         clock=runtime.service_clock())
    await client.start()
    return _SmartAsync(client)


# ---- the load ---------------------------------------------------------------------------
class SimLoad:
    """``workload`` played on the simulated cluster (the face of :class:`chaos.load.Load`).
    Records are kept in memory with absolute virtual times; :meth:`history` puts them on the
    axis of ``t0``."""

    def __init__(self, runtime, workload: Workload, *, host: str, seed: int,
                 directory: str | Path, t0: float) -> None:
        self.runtime, self.workload, self.host, self.seed, self.t0 = (runtime, workload, host,
                                                                      seed, t0)
        self.directory = Path(directory)
        self.namespace = f"kv{derive(seed, 'workload')}"
        self.label = "smart-client" if workload.client == "smart" else "gateway"
        self.cpu_seconds = 0.0  # no Locust process: nothing of its own to measure
        self.cpu_share = 0.0
        self._records: list[tuple] = []
        self._tasks: list[asyncio.Task] = []
        self._kv: Any = None
        self._end = 0.0
        self._failed = False
        self._code: int | None = None

    def _add(self, process: str, type_: str, f: str, key: str | None = None, value: Any = None,
             error: str | None = None, tries: Tries = (None, None),
             version: str | None = None) -> None:
        self._records.append((self.runtime.loop.time(), process, type_, f, key, value, error,
                              version, tries[0], tries[1]))

    # ---- lifecycle ----
    def start(self) -> SimLoad:
        loop, w = self.runtime.loop, self.workload
        self._end = loop.time() + w.duration
        self._kv = self.runtime.run(self._client())
        self._tasks = [loop.create_task(self._user(n)) for n in range(1, w.users + 1)]
        loop.advance(0)
        return self

    async def _client(self):
        w = self.workload
        lane = f"{EVENT}smart-client-sim"
        config = None
        if w.client == "smart":
            transport = SimTransport(self.runtime.network, CLIENT)
            reg = self.host.split("://", 1)[-1].rstrip("/")
            status = (await transport.request("GET", reg, "/cluster-status", timeout=5.0)).body
            config = ClientConfig(
                registry=self.host, cluster=ClusterSettings(**status["settings"]),
                request_timeout=w.request_timeout, retries=w.retries, jitter=w.jitter,
                breaker_threshold=w.breaker_threshold, breaker_cooldown=w.breaker_cooldown,
                seed=derive(self.seed, "client-0"))
            self._add(lane, "info", "breakers", None, {"threshold": w.breaker_threshold,
                                                       "cooldown": w.breaker_cooldown})
        else:
            config = ClientConfig(registry=self.host, request_timeout=w.request_timeout,
                                  retries=w.retries)

        def breaker_moved(node: str, old, new) -> None:
            self._add(lane, "info", "breaker", node, {"from": str(old), "to": str(new)})

        return await _make_client(self.runtime, w.client, self.host, config, workload=w,
                                  seed=self.seed, on_breaker=breaker_moved)

    async def _user(self, n: int) -> None:
        """One virtual user: :class:`chaos.locust.KVUser`'s stream of operations."""
        w, loop = self.workload, self.runtime.loop
        process = f"{self.label}-sim-{n}"
        rng = random.Random(derive(self.seed, f"user-{self.label}-0-{n}"))
        prefix = f"{self.namespace}-{w.pattern}" + (f"-{process}" if w.pattern == "own" else "")
        serial = itertools.count()
        check = ReadYourWrites()

        def next_key() -> str:
            if w.pattern == "hot" and rng.random() < HOT_SHARE:
                return f"{prefix}-0"
            return f"{prefix}-{rng.randrange(w.keys)}"

        def next_value() -> str:
            stamp = f"{process}:{next(serial)}:"
            return stamp + "x" * max(0, w.value_size - len(stamp))

        async def write(key: str, value: str) -> None:
            if w.pattern == "own":
                check.wrote(key, value, False)
            self._add(process, "invoke", "write", key, value)
            try:
                version, tries = await self._kv.put(key, value)
            except asyncio.CancelledError:
                self._add(process, "info", "write", key, value, INTERRUPTED)
                raise
            except Exception as exc:  # noqa: BLE001 - every outcome is recorded
                self._fail("write", process, key, value, exc)
                return
            self._add(process, "ok", "write", key, value, tries=tries, version=version)
            if w.pattern == "own":
                check.wrote(key, value, True)

        async def read(key: str) -> None:
            self._add(process, "invoke", "read", key)
            try:
                (value, version), tries = await self._kv.get(key)
            except asyncio.CancelledError:
                self._add(process, "info", "read", key, None, INTERRUPTED)
                raise
            except Exception as exc:  # noqa: BLE001
                self._fail("read", process, key, None, exc)
                return
            self._add(process, "ok", "read", key, value, tries=tries, version=version)

        while loop.time() < self._end:
            await _think(loop, OP_COST)
            if rng.random() < w.write_ratio:
                await write(next_key(), next_value())
            elif w.pattern == "own":
                keys = check.keys()
                if keys:
                    await read(rng.choice(keys))
                else:
                    await write(next_key(), next_value())
            else:
                await read(next_key())

    def _fail(self, f: str, process: str, key: str, value: str | None, exc: Exception) -> None:
        self._failed = True
        self._add(process, outcome(exc), f, key, value, f"{type(exc).__name__}: {exc}",
                  tries=getattr(exc, "tries", (None, None)))

    def wait(self, timeout: float | None = None) -> int:
        """Until every user ends (the duration is over), at most ``STOP_GRACE`` after the
        end: an operation still running then is interrupted (``info``). 0, or 1 when some
        operation failed (Locust's exit code)."""
        if self._code is not None:
            return self._code
        loop = self.runtime.loop
        with contextlib.suppress(TimeoutError):
            loop.advance_until(lambda: all(t.done() for t in self._tasks),
                               timeout=max(self._end - loop.time(), 0.0) + STOP_GRACE,
                               interval=0.1, what="the users to finish")
        for task in self._tasks:
            task.cancel()
        self.runtime.run(asyncio.gather(*self._tasks, return_exceptions=True))
        if self._kv is not None:
            self.runtime.run(self._kv.close())
        self._code = 1 if self._failed else 0
        return self._code

    def stop(self) -> int:
        if self._code is None and self._tasks:
            self._end = min(self._end, self.runtime.loop.time())
        return self.wait() if self._tasks else 0

    def __enter__(self) -> SimLoad:
        return self

    def __exit__(self, *exc) -> None:
        if not self.runtime.loop.is_closed():
            self.stop()

    # ---- results ----
    def _history(self, extra: Iterable[Op] = ()) -> History:
        h = History(clock=self.runtime.clock, t0=self.t0)
        for t, process, type_, f, key, value, error, version, attempts, requests in self._records:
            h.add(process, type_, f, key, value, error, version=version, attempts=attempts,
                  requests=requests, at=t)
        extra = list(extra)
        if extra:
            h.absorb(extra)
        return h

    def snapshot(self) -> History:
        return self._history()

    def history(self, extra: Iterable[Op] = ()) -> History:
        return self._history(extra)

    @property
    def exit_code(self) -> int | None:
        return self._code


class SimKV:
    """A blocking :class:`~chaos.traffic.KVClient` on the simulated cluster (the runner's
    final reads): each call runs the loop until it is done."""

    def __init__(self, runtime, client: str, registry: str, config: ClientConfig) -> None:
        self.runtime = runtime
        self._kv = runtime.run(_make_client(runtime, client, registry, config))
        self._tries: Tries = (None, None)

    def put(self, key: str, value: str) -> str | None:
        version, self._tries = self.runtime.run(self._kv.put(key, value))
        return version

    def get(self, key: str) -> tuple[str | None, str | None]:
        result, self._tries = self.runtime.run(self._kv.get(key))
        return result

    def tries(self) -> Tries:
        return self._tries

    def close(self) -> None:
        self.runtime.run(self._kv.close())

    def __enter__(self) -> SimKV:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
