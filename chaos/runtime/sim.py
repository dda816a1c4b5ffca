"""The simulated backend: the whole cluster in this process, on virtual time.

The registry and the nodes are the real services (``system.registry.app.create_app``,
``system.node.app.create_app`` and their ``NodeService``), each given a virtual clock and a
:class:`~chaos.sim.network.SimTransport`; their requests cross the simulated link mesh
(:mod:`chaos.sim.network`) and are served by their ASGI apps in process. Nodes keep their
real stores (SQLite in a temporary directory, or memory). One thread, one
:class:`~chaos.sim.loop.VirtualLoop`: the same seed gives the same run, event for event.

Every verb of the protocols is synchronous, like the other runtimes': it runs the loop
until it is done (virtual time passes, the wall clock hardly does). The runner paces itself
on :attr:`SimRuntime.clock` and :meth:`SimRuntime.pacer`, drives traffic with
:mod:`chaos.sim.traffic`, and reads the nodes through :attr:`SimRuntime.observer`.

- kill: the process's tasks are cancelled and its store closed, nothing else runs for it
  (what SQLite committed survives; a memory store is gone); restart opens a new
  incarnation on the same data after ``boot`` virtual seconds (a process's start-up);
- pause: nothing is delivered to or from it, and what it was serving waits, until resume;
- stop: a graceful stop (the node deregisters);
- the links: :class:`~chaos.sim.network.SimLinks` as ``proxies`` (the faults' cut and toxics).

Faults that cannot run here are refused before the run (:meth:`SimRuntime.refusal`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import tempfile
from types import SimpleNamespace
from typing import Any

from chaos.runtime.base import ClusterSpec, Endpoints
from chaos.seeds import derive
from chaos.sim.loop import VirtualLoop
from chaos.sim.network import CURRENT, Network, Process, SimLinks, SimTransport
from chaos.topology import REGISTRY, all_links, links_of_new_node
from system.clock import Clock
from system.config import NodeConfig, RegistryConfig
from system.http import FastRoutes
from system.storage import SQLiteStore, Store, open_store

__all__ = ["SimRuntime", "SimPacer"]

log = logging.getLogger("chaoslab.runtime.sim")

READY_TIMEOUT = 30.0  # virtual seconds


def _task_factory(loop: asyncio.AbstractEventLoop, coro, context=None) -> asyncio.Task:
    """Every task belongs to the process whose context made it (None: the clients')."""
    task = asyncio.Task(coro, loop=loop, context=context)
    owner = context.get(CURRENT) if context is not None else CURRENT.get()
    if owner is not None:
        if not owner.alive:  # made while dying (a finally block): it never runs
            task.cancel()
        tasks = owner.tasks
        if len(tasks) >= owner.prune_at:  # done tasks are dropped now and then, not one by one
            for done in [t for t in tasks if t.done()]:
                del tasks[done]
            owner.prune_at = max(256, 2 * len(tasks))
        tasks[task] = None
    return task


def _starlette(app: Any) -> Any:
    """The Starlette app under the services' ASGI middleware."""
    while not hasattr(app, "state"):
        app = app.app
    return app


def _open_store(config: NodeConfig) -> Store:
    """The node's real store. SQLite gets what only one process that always closes it
    needs (no file locks between transactions, no fsync: a kill here closes the store, and
    no host ever crashes), and checkpoints its WAL every 10,000 pages instead of 1,000 (a
    run's writes then mostly stay in the WAL until the store closes): the same commits,
    about half the cost."""
    if config.storage == "durable":
        return SQLiteStore(os.path.join(config.data_dir, f"{config.id}.sqlite3"), sync="off",
                           exclusive=True, checkpoint_pages=10_000)
    return open_store(config.storage, config.data_dir, config.id)


def _inline_routes(app: Any) -> frozenset[tuple[str, str]]:
    """The exact routes of the service's :class:`~system.http.FastRoutes`: plain coroutines
    that need no task of their own to start, so the simulation serves them in the callback
    where they arrive (see :meth:`chaos.sim.network.Process.deliver`)."""
    while not hasattr(app, "state"):
        if isinstance(app, FastRoutes):
            return frozenset(app.routes)
        app = app.app
    return frozenset()


class SimPacer:
    """The runner's stop event on virtual time: ``wait(seconds)`` lets them pass on the
    simulated cluster (unless the run was stopped), as ``threading.Event.wait`` paces a real
    run."""

    def __init__(self, runtime: SimRuntime, stop: Any) -> None:
        self.runtime, self.stop = runtime, stop

    def wait(self, timeout: float | None = None) -> bool:
        if self.stop.is_set():
            return True
        if timeout:
            self.runtime.loop.advance(timeout)
        return self.stop.is_set()

    def is_set(self) -> bool:
        return self.stop.is_set()

    def set(self) -> None:
        self.stop.set()


class SimRuntime:
    """The cluster of ``spec`` in this process on virtual time (see the module docstring).

    ``latency`` +- ``jitter``: the one-way delay of a message on a link, in seconds (the
    default is near what the local runtime's proxied links give under the default load);
    ``boot``: virtual seconds a restarted service takes to start; ``workdir``: the nodes'
    data (a temporary directory, removed on stop, when not given)."""

    name = "sim"

    def __init__(self, spec: ClusterSpec | None = None, *, workdir: str | None = None,
                 latency: float = 0.008, jitter: float = 0.004, boot: float = 1.0) -> None:
        self.spec = spec or ClusterSpec()
        self.boot = boot
        self._own_workdir = workdir is None
        self.workdir = workdir or ""
        self.loop = VirtualLoop()
        self.loop.set_task_factory(_task_factory)
        self.network = Network(self.loop, seed=derive(self.spec.seed, "sim-network"), latency=latency,
                               jitter=jitter, mesh=self.spec.mesh)
        self.proxies: SimLinks | None = SimLinks(self.network) if self.spec.mesh else None
        self.processes = self.network.processes
        self._incarnations: dict[str, int] = {}
        self._nodes: list[str] = []
        self._skew: dict[str, int] = {}
        self._started = False
        self.observer = SimpleNamespace(node_arrivals=_node_arrivals,
                                        wait_until_quiet=_wait_until_quiet,
                                        replica_versions=_replica_versions)

    # ---- time, for the runner ----
    def clock(self) -> float:
        """The virtual monotonic clock (what the runner and the histories count on)."""
        return self.loop.time()

    def pacer(self, stop: Any) -> SimPacer:
        return SimPacer(self, stop)

    def run(self, awaitable):
        """Run ``awaitable`` on the simulation's loop to its end."""
        return self.loop.run(awaitable)

    def service_clock(self) -> Clock:
        """The clock every service reads: the virtual one (a node's skew is its own)."""
        return Clock(wall=self.loop.wall, monotonic=self.loop.time)

    @property
    def events(self) -> list[tuple[float, str]]:
        """What was injected (kills, restarts, pauses, cuts, toxics), on virtual time."""
        return self.network.events

    # ---- traffic, for the runner ----
    def load_factory(self, workload, *, host: str, seed: int, directory, t0: float):
        from chaos.sim.traffic import SimLoad

        return SimLoad(self, workload, host=host, seed=seed, directory=directory, t0=t0)

    def kv_factory(self, client: str, registry: str, config):
        from chaos.sim.traffic import SimKV

        return SimKV(self, client, registry, config)

    # ---- lifecycle ----
    def start(self) -> Endpoints:
        if self._started:
            return self.endpoints()
        if self._own_workdir:
            base = "/dev/shm" if os.path.isdir("/dev/shm") else None
            self.workdir = tempfile.mkdtemp(prefix="chaoslab-sim-", dir=base)
        ids = self.spec.node_ids()
        if self.proxies is not None:
            for link in all_links(ids):
                self.proxies.create(link)
        self._spawn(REGISTRY)
        for node in ids:
            self._nodes.append(node)
            self._spawn(node)
        self._wait_ready(ids, converged=True)
        self._started = True
        return self.endpoints()

    def stop(self) -> None:
        """Stop every service (killed: the run is over) and remove the temporary data."""
        for name in list(self.processes):
            with contextlib.suppress(Exception):
                self._kill(name, note=False)
        with contextlib.suppress(Exception):
            self.loop.advance(0)
        pending = [t for t in asyncio.all_tasks(self.loop) if not t.done()]
        for task in pending:
            task.cancel()
        if pending:
            with contextlib.suppress(Exception):
                self.loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        if not self.loop.is_closed():
            self.loop.close()
        if self._own_workdir and self.workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = ""

    # ---- addresses ----
    def endpoints(self) -> Endpoints:
        url = f"http://{self.network.address(REGISTRY)}"
        return Endpoints(registry=url, registry_direct=url,
                         nodes={n: self.node_url(n) for n in self._nodes},
                         proxy_api=self.proxies.url if self.proxies else None, admin_token="")

    def node_ids(self) -> list[str]:
        return list(self._nodes)

    def node_url(self, node_id: str) -> str:
        self._check(node_id)
        return f"http://{self.network.address(node_id)}"

    def service_log(self, name: str) -> str:
        self._check(name)
        return ""  # the services log through this process's logging

    def _check(self, name: str) -> None:
        if name != REGISTRY and name not in self._nodes:
            raise KeyError(f"unknown service {name!r}; known: registry, {', '.join(self._nodes)}")

    # ---- the services ----
    def _spawn(self, name: str) -> Process:
        """A new incarnation of ``name``, started (its store reopened, its duties begun)."""
        from system.node.app import create_app as node_app
        from system.registry.app import create_app as registry_app

        n = self._incarnations[name] = self._incarnations.get(name, 0) + 1
        proc = Process(name, n, self.loop)
        transport = SimTransport(self.network, name, proc)
        s, address = self.spec, self.network.address(name)
        host, _, port = address.rpartition(":")
        if name == REGISTRY:
            config = RegistryConfig(host=host, port=int(port), launcher="none",
                                    seed=derive(s.seed, "gateway"), log_level=s.log_level,
                                    cluster=s.settings)
            proc.app = registry_app(config, transport=transport, clock=self.service_clock())
            proc.service = _starlette(proc.app).state.registry
        else:
            config = NodeConfig(id=name, host=host, port=int(port),
                                registry=f"http://{self.network.address(REGISTRY)}",
                                data_dir=os.path.join(self.workdir, "data", name),
                                storage=s.storage, load_factor=s.load_factor,
                                log_level=s.log_level, seed=derive(s.seed, f"gateway:{name}"),
                                clock_skew_ms=self._skew.get(name, 0), cluster=s.settings)
            proc.app = node_app(config, store=_open_store(config), transport=transport,
                                clock=self.service_clock())
            proc.service = _starlette(proc.app).state.service
        proc.inline = _inline_routes(proc.app)
        self.processes[name] = proc
        if name != REGISTRY:
            self.loop.run(proc.spawn(proc.service.start()))
        return proc

    def _proc(self, name: str) -> Process:
        self._check(name)
        proc = self.processes.get(name)
        if proc is None:
            raise KeyError(f"{name} was never started")
        return proc

    def _wait_ready(self, ids: list[str], *, converged: bool = False) -> None:
        """Until each node has a member list and the registry sees each alive; with
        ``converged``, until each node's ring holds every node too (a local cluster gets
        there while its processes and Locust start; here no time passes unless waited)."""
        def ready() -> bool:
            reg = self.processes.get(REGISTRY)
            for node in ids:
                proc = self.processes.get(node)
                if proc is None or not proc.alive or not proc.service.has_members:
                    return False
                if reg is not None and reg.alive:
                    membership = reg.service.membership
                    if node not in membership or membership.status(node) != "alive":
                        return False
                if converged and not set(ids) <= proc.service.ring.nodes:
                    return False
            return True

        self.loop.advance_until(ready, timeout=READY_TIMEOUT, what=f"{', '.join(ids)} ready")

    def _kill(self, name: str, *, note: bool = True) -> None:
        proc = self.processes.get(name)
        if proc is None or not proc.alive:
            return
        proc.kill()
        self.loop.advance(0)  # the cancellations run; nothing else of it ever will
        if name != REGISTRY:
            with contextlib.suppress(Exception):
                proc.service.store.close()
        if note:
            self.network.note(f"kill {name}")

    # ---- Killable ----
    def is_running(self, name: str) -> bool:
        """Whether the service's current incarnation is alive (paused counts)."""
        self._check(name)
        proc = self.processes.get(name)
        return proc is not None and proc.alive

    def kill(self, node_id: str) -> None:
        self._proc(node_id)
        self._kill(node_id)

    def stop_node(self, node_id: str) -> None:
        """Graceful: the node stops its duties, deregisters and closes its store."""
        proc = self._proc(node_id)
        if not proc.alive:
            return
        proc.resume()
        self.network.note(f"stop {node_id}")
        if node_id == REGISTRY:
            reg = proc.service
            self.loop.run(proc.spawn(reg.gateway.drain(timeout=2.0)))
        else:
            self.loop.run(proc.spawn(proc.service.stop()))
        self._kill(node_id, note=False)

    def restart(self, node_id: str) -> None:
        """A new incarnation on the same data, after ``boot`` virtual seconds; waits until
        it is ready (a node: member list and seen alive)."""
        proc = self._proc(node_id)
        if proc.alive:
            self.stop_node(node_id)
        self.loop.advance(self.boot)
        self.network.note(f"start {node_id}")
        self._spawn(node_id)
        if node_id == REGISTRY:
            self.loop.advance(0)
        else:
            self._wait_ready([node_id])

    # ---- Pausable ----
    def pause(self, node_id: str) -> None:
        proc = self._proc(node_id)
        if proc.alive and not proc.paused:
            proc.pause()
            self.network.note(f"pause {node_id}")

    def resume(self, node_id: str) -> None:
        proc = self._proc(node_id)
        if proc.paused:
            proc.resume()
            self.network.note(f"resume {node_id}")
            self.loop.advance(0)

    # ---- Scalable ----
    def add_node(self, node_id: str | None = None) -> str:
        node_id = node_id or next(f"node-{k}" for k in range(1, 10_000)
                                  if f"node-{k}" not in self._nodes)
        if node_id in self._nodes:
            raise ValueError(f"{node_id} already exists; nodes: {', '.join(self._nodes)}")
        if self.proxies is not None:
            for link in links_of_new_node(self._nodes, node_id):
                self.proxies.create(link)
        self._nodes.append(node_id)
        self.network.note(f"add {node_id}")
        self._spawn(node_id)
        self._wait_ready([node_id])
        return node_id

    # ---- the clock fault ----
    def set_clock_skew(self, node_id: str, ms: int) -> None:
        """Run ``node_id``'s wall clock ``ms`` off (what ``POST /internal/clock`` does)."""
        proc = self._proc(node_id)
        self._skew[node_id] = ms
        if proc.alive:
            proc.service.clock.set(ms)
        self.network.note(f"clock-skew {node_id} {ms:+d}ms")

    def every(self, period: float, action: Any) -> Any:
        """Call ``action`` every ``period`` virtual seconds (a flapping link); returns the
        function that stops it."""
        handle = None

        def tick() -> None:
            nonlocal handle
            action()
            handle = self.loop.call_later(period, tick)

        handle = self.loop.call_later(period, tick)
        return lambda: handle.cancel()

    def refusal(self, fault: Any) -> str | None:
        """Why ``fault`` cannot run on the simulation (None: it can)."""
        return None


# ---- what the runner reads from the nodes after a run (chaos.observe's, in process) ----
def _services(runtime: SimRuntime):
    for node in runtime.node_ids():
        proc = runtime.processes.get(node)
        if proc is not None and proc.alive and not proc.paused:
            yield node, proc.service


def _node_arrivals(runtime: SimRuntime, *, t0: float) -> dict[str, list[tuple[float, float]]]:
    series = {}
    for node, svc in _services(runtime):
        buckets = svc.arrivals.as_json()["buckets"]
        if buckets:
            series[f"arrivals:{node}"] = [(round(t - t0, 3), n) for t, n in buckets]
    return series


def _wait_until_quiet(runtime: SimRuntime, *, timeout: float = 15.0) -> float:
    def quiet() -> bool:
        return not any(any(svc.store.hint_counts().values()) for _, svc in _services(runtime))

    try:
        return runtime.loop.advance_until(quiet, timeout=timeout, interval=0.2,
                                          what="hints delivered")
    except TimeoutError:
        return timeout


def _replica_versions(runtime: SimRuntime) -> dict[str, dict[str, tuple]]:
    out: dict[str, dict[str, tuple]] = {}
    for node, svc in _services(runtime):
        copies: dict[str, tuple] = {}
        after = ""
        while page := svc.store.scan(after, 10_000):
            copies.update((r.key, tuple(r.version.encode())) for r in page)
            after = page[-1].key
        out[node] = copies
    return out

