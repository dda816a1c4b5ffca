"""The smart client: ring routing, quorum fan-out, breakers, retries with jitter, failover.

It learns the members from the registry (``GET /nodes?view=client``) and keeps them cached,
so it goes on reading and writing while the registry is down. Operations go straight to the
owners of a key through a :class:`~system.coordinator.Coordinator`.

Async::

    async with SmartClient(ClientConfig(registry="http://127.0.0.1:5000")) as c:
        await c.put("k", "v"); (await c.get("k")).value

Sync (scripts, Locust)::

    with SyncClient(ClientConfig(...)) as c:
        c.put("k", "v")
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import logging
import random
import sys
import threading
import time
import uuid
from collections.abc import Callable, Coroutine
from typing import Any

from system.breaker import BreakerState, CircuitBreaker
from system.clock import SYSTEM_CLOCK, Clock
from system.config import ClientConfig
from system.coordinator import Coordinator, QuorumError, ReadResult, WriteResult
from system.fasthttp import PooledTransport
from system.transport import Transport, TransportError
from system.validation import check_key, check_value
from system.versions import make_version_source

__all__ = ["SmartClient", "SyncClient", "QuorumError", "RegistryUnavailable", "new_event_loop"]

log = logging.getLogger("chaoslab.client")


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop's loop when installed (about twice the throughput of the stock loop here)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


class RegistryUnavailable(Exception):
    """No member list: the registry did not answer and nothing is cached yet."""


class SmartClient:
    def __init__(self, config: ClientConfig | None = None, *, transport: Transport | None = None,
                 rng: random.Random | None = None,
                 on_breaker: Callable[[str, BreakerState, BreakerState], None] | None = None,
                 clock: Clock = SYSTEM_CLOCK) -> None:
        """``on_breaker(node, old, new)`` hears every circuit-breaker transition (the harness
        records them into its history). ``clock``: where versions and breakers read the time
        (the host's by default; virtual time in the simulated runtime)."""
        self.config = config = config or ClientConfig()
        self.rng = rng or random.Random(config.seed)
        self.id = f"client-{uuid.UUID(int=self.rng.getrandbits(128)).hex[:8]}"
        self.transport = transport or PooledTransport()
        self.coordinator = Coordinator(
            quorum=config.cluster.quorum, transport=self.transport,
            versions=make_version_source(config.cluster.versions, self.id, clock=clock.wall),
            timeout=config.request_timeout, retries=config.retries, backoff=config.backoff,
            rng=self.rng, hedge_after=config.hedge_after, vnodes=config.cluster.vnodes,
            repair=config.cluster.repair == "on", on_breaker=on_breaker,
            breaker_factory=lambda: CircuitBreaker(failure_threshold=config.breaker_threshold,
                                                   cooldown=config.breaker_cooldown,
                                                   clock=clock.monotonic))
        self.registry_reachable = False
        self._refresher: asyncio.Task | None = None

    # ---- lifecycle ----
    async def start(self) -> SmartClient:
        if not await self.refresh() and not self.coordinator.addresses:
            raise RegistryUnavailable(f"registry {self.config.registry} did not answer and no "
                                      "member list is cached")
        if self.config.refresh_interval > 0:
            self._refresher = asyncio.create_task(self._refresh_loop())
        return self

    async def close(self) -> None:
        if self._refresher is not None:
            self._refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresher
        await self.coordinator.drain(timeout=2.0)
        await self.transport.close()

    async def __aenter__(self) -> SmartClient:
        return await self.start()

    async def __aexit__(self, *exc) -> None:
        await self.close()

    # ---- membership ----
    async def refresh(self) -> bool:
        """Fetch the member list; on failure keep the cached one. True if it was fetched."""
        registry = self.config.registry.split("://", 1)[-1].rstrip("/")
        try:
            reply = await self.transport.request(
                "GET", registry, f"/nodes?view={self.config.view}",
                timeout=self.config.request_timeout)
            members = reply.body["members"] if reply.status == 200 else None
        except (TransportError, KeyError, TypeError) as exc:
            if self.registry_reachable:
                log.warning("registry unreachable, using the cached member list: %s", exc)
            self.registry_reachable = False
            return False
        if members is None:
            return False
        self.registry_reachable = True
        # as the nodes do: a member missing from the list (a registry that restarted and has
        # not heard every heartbeat yet) is not a membership change; only "left" removes one
        left = {m["id"] for m in members if m.get("status") == "left"}
        known = {n: a for n, a in self.coordinator.addresses.items() if n not in left}
        changed = self.coordinator.update_members(
            known | {m["id"]: m["address"] for m in members if m.get("status") != "left"})
        if changed:
            log.info("ring is now %s", sorted(self.coordinator.ring.nodes))
        return True

    async def _refresh_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.refresh_interval)
            await self.refresh()

    @property
    def members(self) -> dict[str, str]:
        return dict(self.coordinator.addresses)

    def breaker_states(self) -> dict[str, str]:
        return {n: b.state.value for n, b in self.coordinator.breakers.items()}

    # ---- operations ----
    async def put(self, key: str, value: str, *, request_id: str | None = None) -> WriteResult:
        """Quorum write; raises :class:`QuorumError` (with the counts) when W owners can't ack."""
        return await self.coordinator.write(check_key(key), check_value(value), rid=request_id)

    async def get(self, key: str, *, request_id: str | None = None) -> ReadResult:
        """Quorum read; ``.found``/``.value`` of the newest answer among R owners."""
        return await self.coordinator.read(check_key(key), rid=request_id)


class SyncClient:
    """A blocking facade over :class:`SmartClient`, running it on a private event loop thread.

    Safe to share between threads, and between greenlets under gevent's monkey-patching
    (Locust): there the loop runs on a native thread and callers wait on a gevent watcher,
    so a waiting greenlet yields to the others instead of blocking the process."""

    def __init__(self, config: ClientConfig | None = None, **kwargs: Any) -> None:
        self._bridge: _Bridge = _GeventBridge() if _gevent_patched() else _ThreadBridge()
        try:
            self._client = self._run(self._make(config, kwargs))
        except BaseException:
            self._bridge.stop()
            raise

    async def _make(self, config, kwargs) -> SmartClient:
        return await SmartClient(config, **kwargs).start()

    def _run(self, coro: Coroutine, timeout: float | None = 60.0):
        return self._bridge.run(coro, timeout)

    @property
    def client(self) -> SmartClient:
        return self._client

    def put(self, key: str, value: str, **kw) -> WriteResult:
        return self._run(self._client.put(key, value, **kw))

    def get(self, key: str, **kw) -> ReadResult:
        return self._run(self._client.get(key, **kw))

    def refresh(self) -> bool:
        return self._run(self._client.refresh())

    def close(self) -> None:
        try:
            if self._bridge.running:
                with contextlib.suppress(Exception):
                    self._run(self._shutdown(), timeout=10)
        finally:
            self._bridge.stop()

    async def _shutdown(self) -> None:
        """Close the client, then cancel what abandoned calls left running on the loop."""
        await self._client.close()
        me = asyncio.current_task()
        left = [t for t in asyncio.all_tasks() if t is not me]
        for task in left:
            task.cancel()
        if left:
            await asyncio.wait(left, timeout=2)

    def __enter__(self) -> SyncClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _gevent_patched() -> bool:
    monkey = sys.modules.get("gevent.monkey")
    return monkey is not None and monkey.is_module_patched("threading")


class _Bridge:
    """An event loop on its own native thread, and a way for blocking callers to run
    coroutines on it."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop

    @property
    def running(self) -> bool:
        return self.loop.is_running()

    def run(self, coro: Coroutine, timeout: float | None):
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError


class _ThreadBridge(_Bridge):
    def __init__(self) -> None:
        super().__init__(new_event_loop())
        self._thread = threading.Thread(target=self.loop.run_forever, name="chaoslab-client",
                                        daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine, timeout: float | None):
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result(timeout)
        except BaseException:  # timeout or Ctrl-C: do not leave the operation running
            future.cancel()
            raise

    def stop(self) -> None:
        if self.loop.is_running():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=5)
        if not self.loop.is_running():
            self.loop.close()


class _GeventBridge(_Bridge):
    """Under gevent, ``threading`` makes greenlets, and a greenlet blocked in the event loop's
    poll would freeze every other one. So the loop (uvloop: libuv, untouched by the patches)
    runs on a thread from the original ``_thread``, and a caller waits on a gevent ``async_``
    watcher, which the loop thread may signal.

    Calls cross in batches: callers queue in ``_starting`` and the loop, woken once, starts
    all of them; the ended ones queue in ``_ended`` and the hub, woken once through the one
    watcher of the bridge's life, resumes all their callers. (A watcher and a wakeup per call
    cost about twice the CPU per call: 60-70 us against 30 here, on top of the operation.)
    Callers must be greenlets of the thread that made the client, as they are under
    monkey-patching."""

    def __init__(self) -> None:
        try:
            import uvloop
        except ImportError as exc:  # asyncio's own loop would use the patched sockets
            raise RuntimeError("SyncClient under gevent needs uvloop") from exc
        import gevent
        from gevent import monkey

        super().__init__(uvloop.new_event_loop())
        self._hub = gevent.get_hub()
        self._starting: collections.deque[_Call] = collections.deque()
        self._ended: collections.deque[_Call] = collections.deque()
        self._start_scheduled = False
        self._waiting = 0  # callers waiting: only then does the watcher keep the hub running
        self._watcher = self._hub.loop.async_(ref=False)
        self._watcher.start(self._resume)
        monkey.get_original("_thread", "start_new_thread")(self.loop.run_forever, ())
        try:
            self._poll_until(self.loop.is_running, 5.0)
        except BaseException:
            self.stop()
            raise

    def run(self, coro: Coroutine, timeout: float | None):
        import gevent
        from gevent.hub import Waiter

        if gevent.get_hub() is not self._hub:
            coro.close()
            raise RuntimeError("this SyncClient serves the greenlets of the thread that made "
                               "it: make one client per native thread")
        call = _Call(coro, Waiter())
        self._starting.append(call)
        if not self._start_scheduled:  # else a pending _start takes this call too
            self._start_scheduled = True
            self.loop.call_soon_threadsafe(self._start)
        if not self._waiting:
            self._watcher.ref = True
        self._waiting += 1
        try:
            with gevent.Timeout(timeout, TimeoutError(f"no answer within {timeout} s")):
                call.waiter.get()
        except BaseException:
            call.abandoned = True
            # runs after the _start that takes the call (the loop keeps call order)
            self.loop.call_soon_threadsafe(_abandon, call)
            raise
        finally:
            self._waiting -= 1
            if not self._waiting:
                self._watcher.ref = False
        return call.task.result()

    def _start(self) -> None:  # on the loop thread
        self._start_scheduled = False
        starting = self._starting
        while starting:
            call = starting.popleft()
            call.task = self.loop.create_task(call.coro)
            call.task.add_done_callback(functools.partial(self._end, call))

    def _end(self, call: _Call, _task: asyncio.Task) -> None:  # on the loop thread
        if not call.abandoned:
            self._ended.append(call)
            with contextlib.suppress(Exception):  # the bridge may be stopped by now
                self._watcher.send()

    def _resume(self) -> None:  # on the hub: the callers of every call ended so far
        ended = self._ended
        while ended:
            call = ended.popleft()
            if not call.abandoned:
                call.waiter.switch(None)

    def stop(self) -> None:
        if self.loop.is_running():
            self.loop.call_soon_threadsafe(self.loop.stop)
            try:
                self._poll_until(lambda: not self.loop.is_running(), 5.0)
            except TimeoutError:
                log.warning("the client's event loop did not stop within 5 s; leaving it")
                return
        if not self.loop.is_closed():
            self.loop.close()
        self._watcher.stop()
        self._watcher.close()

    @staticmethod
    def _poll_until(condition, timeout: float) -> None:
        import gevent

        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise TimeoutError("the client's event loop thread did not answer")
            gevent.sleep(0.005)


class _Call:
    """One call crossing the gevent bridge."""

    __slots__ = ("coro", "waiter", "task", "abandoned")

    def __init__(self, coro: Coroutine, waiter) -> None:
        self.coro, self.waiter = coro, waiter
        self.task: asyncio.Task | None = None
        self.abandoned = False


def _abandon(call: _Call) -> None:
    """The caller gave up (timeout, or its greenlet was killed): cancel the operation, or, if
    it already ended, take its outcome so asyncio does not log it as never retrieved."""
    task = call.task
    if task is None:  # never started
        call.coro.close()
    elif not task.done():
        task.cancel()
    elif not task.cancelled():
        task.exception()
