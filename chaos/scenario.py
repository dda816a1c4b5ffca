"""A chaos run written down as one plain value, and the runner that carries it out.

A :class:`Scenario` holds everything that decides a run's inputs: its name, the one seed,
the cluster (the only place N/W/R live), the workload, the fault schedule and the checkers.
``verdict.json`` holds the whole value, and :meth:`Scenario.from_json` reads it back, so a
recorded run replays from its report. Scenarios are built over the no-op default with
:func:`dataclasses.replace` (or :meth:`Scenario.but`), as Jepsen merges a test over
``noop-test``.

The runner (:func:`run`): start the cluster -> Locust traffic (recorded into the history) ->
a steady-state gate (the cluster must serve the workload healthily before any fault, else the
verdict is ``unknown: unhealthy baseline``, as Chaos Toolkit's steady-state hypothesis) -> the
nemesis applies the schedule and heals it -> the traffic ends -> final reads -> checkers.
"""

from __future__ import annotations

import dataclasses
import logging
import random
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import chaos.observe
from chaos.checkers import CHECKERS, Checker, Compose, Validity, Verdict, make_checker
from chaos.faults.base import FaultError
from chaos.history import FinalState, History, OpType
from chaos.live import LiveStatus
from chaos.nemesis import Nemesis, Schedule, ScheduleError
from chaos.runtime.base import ClusterSpec
from chaos.seeds import derive
from chaos.topology import Topology
from chaos.traffic import Workload
from system.config import ClientConfig, ClusterSettings

__all__ = ["Scenario", "ScenarioError", "RunResult", "run", "client_config"]

log = logging.getLogger("chaoslab.scenario")

STORAGES = ("durable", "memory")


class ScenarioError(ValueError):
    """A scenario that cannot run as written; one line naming the problem and the choices."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Scenario:
    """A chaos run written down: replaying this value replays the run's inputs."""

    name: str = "noop"
    description: str = ""
    seed: int = 0  # the only seed: proxy, gateway, client, workload and plan derive from it
    cluster: ClusterSpec = field(default_factory=ClusterSpec)  # the only N/W/R
    workload: Workload = field(default_factory=Workload)
    schedule: Schedule = field(default_factory=Schedule)  # empty: no faults
    checkers: tuple[Checker | str, ...] = ("availability", "durability", "stale-reads")
    steady_state: float = 2.0  # seconds of traffic that must be healthy before any fault
    steady_min_ok: float = 0.99  # the share of operations that must succeed in that time
    quiet: float = 15.0  # after the traffic: at most this long for hinted handoff to catch up

    def but(self, **changes: Any) -> Scenario:
        """A copy with ``changes`` (``dataclasses.replace``)."""
        return dataclasses.replace(self, **changes)

    def with_duration(self, duration: float) -> Scenario:
        """The same run stretched or shrunk to ``duration`` seconds of traffic: the steady
        state and every step keep their share of the time."""
        if not duration > 0:
            raise ScenarioError(f"duration must be positive (seconds), got {duration}")
        k = duration / self.workload.duration
        steps = tuple(dataclasses.replace(s, at=s.at * k, duration=s.duration * k)
                      for s in self.schedule.steps)
        return self.but(workload=dataclasses.replace(self.workload, duration=duration),
                        schedule=Schedule(steps), steady_state=self.steady_state * k)

    @property
    def topology(self) -> Topology:
        return Topology(tuple(self.cluster.node_ids()))

    def plan(self, runtime: Any = None) -> Scenario:
        """The scenario checked and its schedule bound (targets checked, partitions
        computed), before anything starts. Raises :class:`ScenarioError` (one line).

        ``runtime`` (or anything with its ``refusal(fault)`` and ``topology``): a runtime that
        cannot carry out every fault, such as the external one, refuses steps here, and its
        topology (the links it can cut) is the one the schedule is bound to."""
        c, s = self.cluster, self.cluster.settings
        if c.nodes < 1:
            raise ScenarioError(f"nodes must be at least 1, got {c.nodes}")
        if c.nodes < s.n:
            raise ScenarioError(f"{c.nodes} nodes cannot hold N={s.n} replicas: use at least "
                                f"{s.n} nodes or a smaller N")
        if c.storage not in STORAGES:
            raise ScenarioError(f"unknown storage {c.storage!r}: choose one of "
                                f"{', '.join(STORAGES)}")
        if not 0 <= self.steady_state < self.workload.duration:
            raise ScenarioError(f"the steady state ({self.steady_state:g}s) must fit in the "
                                f"traffic's {self.workload.duration:g}s")
        if not 0.0 <= self.steady_min_ok <= 1.0:
            raise ScenarioError(f"steady_min_ok must be from 0 to 1, got {self.steady_min_ok}")
        if not 0.0 <= self.quiet <= 600:
            raise ScenarioError(f"quiet must be from 0 to 600 seconds, got {self.quiet}")
        for checker in self.checkers:
            try:
                make_checker(checker)
            except (ValueError, TypeError) as exc:
                raise ScenarioError(str(exc)) from None
        refusal = getattr(runtime, "refusal", None)
        for i, step in enumerate(self.schedule.steps, 1):
            why = refusal(step.fault) if refusal is not None else None
            if why:
                raise ScenarioError(f"step {i} ({step.fault.describe()}): {why}")
        try:
            schedule = self.schedule.bind(_topology(self, runtime),
                                          random.Random(derive(self.seed, "plan")))
        except (FaultError, ScheduleError) as exc:
            raise ScenarioError(str(exc)) from None
        for i, step in enumerate(schedule.steps, 1):
            if step.fault.needs_mesh and not c.mesh:
                raise ScenarioError(f"step {i} ({step.fault.kind}) needs the link mesh, and "
                                    "this cluster runs without one (mesh=False)")
            if step.at < self.steady_state:
                raise ScenarioError(f"step {i} ({step.fault.describe()}) starts at "
                                    f"{step.at:g}s, inside the {self.steady_state:g}s steady "
                                    "state: start it later or shorten the steady state")
            if step.end > self.workload.duration:
                raise ScenarioError(f"step {i} ({step.fault.describe()}) heals at "
                                    f"{step.end:g}s, after the traffic ends "
                                    f"({self.workload.duration:g}s): lengthen the duration")
        return self.but(schedule=schedule)

    def resolved_checkers(self) -> tuple[Checker, ...]:
        return tuple(make_checker(c) for c in self.checkers)

    # ---- the value as JSON (verdict.json holds it; from_json replays it) ----
    def as_json(self) -> dict:
        cluster = dataclasses.asdict(self.cluster)
        return {
            "name": self.name, "description": self.description, "seed": self.seed,
            "cluster": cluster, "workload": dataclasses.asdict(self.workload),
            "schedule": self.schedule.as_json(),
            "checkers": [_checker_json(c) for c in self.resolved_checkers()],
            "steady_state": self.steady_state, "steady_min_ok": self.steady_min_ok,
            "quiet": self.quiet,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Scenario:
        try:
            cluster = dict(data["cluster"])
            cluster["settings"] = ClusterSettings(**cluster["settings"])
            checkers = []
            for c in data["checkers"]:
                c = dict(c)
                checkers.append(make_checker(c.pop("checker"), **c))
            return cls(name=data["name"], description=data.get("description", ""),
                       seed=int(data["seed"]), cluster=ClusterSpec(**cluster),
                       workload=Workload(**data["workload"]),
                       schedule=Schedule.from_json(data["schedule"]),
                       checkers=tuple(checkers), steady_state=float(data["steady_state"]),
                       steady_min_ok=float(data["steady_min_ok"]),
                       quiet=float(data.get("quiet", 15.0)))
        except (KeyError, TypeError, ValueError) as exc:
            raise ScenarioError(f"not a recorded scenario: {exc}") from None


def _topology(scenario: Scenario, runtime: Any) -> Topology:
    """The runtime's own topology when it has one (the external runtime's), else the
    scenario's."""
    return getattr(runtime, "topology", None) or scenario.topology


def _checker_json(checker: Checker) -> dict:
    name = next((n for n, cls in CHECKERS.items() if isinstance(checker, cls)), None)
    # the options a scenario file can hold: fields shown in the repr (an injected clock is not)
    fields = ({f.name: getattr(checker, f.name) for f in dataclasses.fields(checker)
               if f.repr and f.init} if dataclasses.is_dataclass(checker) else {})
    return {"checker": name or checker.name, **fields}


def client_config(scenario: Scenario, registry: str) -> ClientConfig:
    """The smart client's configuration, derived from the scenario (never given twice)."""
    return ClientConfig(registry=registry, cluster=scenario.cluster.settings,
                        request_timeout=scenario.workload.request_timeout,
                        retries=scenario.workload.retries, seed=derive(scenario.seed, "client"))


@dataclass(frozen=True, slots=True)
class RunResult:
    """What a run gave: the planned scenario, the merged history, the final reads, the
    verdict (``valid`` / ``explain()`` for a test's assert), timings and Locust's figures."""

    scenario: Scenario
    history: History
    final: Mapping[str, str | None]
    verdict: Verdict
    timings: Mapping[str, float]
    directory: str | None = None
    load: Mapping[str, Any] = field(default_factory=dict)
    errors: tuple[str, ...] = ()

    @property
    def valid(self) -> bool:
        return self.verdict.ok

    @property
    def seed(self) -> int:
        return self.scenario.seed

    def explain(self) -> str:
        lines = [self.verdict.explain(), f"seed {self.seed}"]
        lines += [f"error: {e}" for e in self.errors]
        if self.directory:
            lines.append(f"artifacts: {self.directory}")
        return "\n".join(lines)


def steady_state_verdict(history: History, *, until: float, min_ok: float) -> Verdict:
    """Whether the traffic was healthy during the first ``until`` seconds."""
    pairs = [(i, c) for i, c in history.completions() if i.is_client and c.time <= until]
    ok = sum(1 for _, c in pairs if c.type is OpType.OK)
    if not pairs:
        return Verdict("steady-state", Validity.UNKNOWN,
                       f"unhealthy baseline: no operation completed in the first {until:.1f}s")
    ratio = ok / len(pairs)
    valid = Validity.VALID if ratio >= min_ok else Validity.UNKNOWN
    summary = (f"{ok}/{len(pairs)} operations succeeded in the first {until:.1f}s "
               f"({ratio:.2%}; need {min_ok:.2%})")
    if valid is not Validity.VALID:
        summary = "unhealthy baseline: " + summary
    return Verdict("steady-state", valid, summary, {"ok": ok, "total": len(pairs)})


def final_reads(client, keys: list[str], *, attempts: int = 3) -> dict[str, str | None]:
    """Read every key once more after the run (a key that cannot be read is left out).
    Sixteen at a time through a client that is safe to share between threads (the smart
    client and the gateway adapter say so with ``threadsafe``), else in turn."""
    def read(key: str) -> tuple[str, str | None] | None:
        for _ in range(attempts):
            try:
                return key, client.get(key)[0]
            except Exception as exc:  # an unreadable key is judged unknown by the checkers
                log.debug("final read of %s failed: %s", key, exc)
        return None

    if getattr(client, "threadsafe", False) and len(keys) > 1:
        with ThreadPoolExecutor(max_workers=16) as pool:
            answers = list(pool.map(read, keys))
    else:
        answers = [read(key) for key in keys]
    return dict(a for a in answers if a is not None)


def run(scenario: Scenario, runtime: Any, *, directory: str | Path,
        progress: Callable[[str], None] | None = None, load_factory: Any = None,
        kv_factory: Any = None, stop: threading.Event | None = None,
        started: bool = False) -> RunResult:
    """Carry out ``scenario`` on ``runtime`` (built from ``scenario.cluster``); artifacts go
    to ``directory``. ``started``: the runtime is already up (and is left up).

    Every fault is healed, the traffic stopped and (unless ``started``) the cluster stopped
    on the way out, whatever happens."""
    # a runtime may bring its own traffic, clock and observation (sim: in process, on
    # virtual time); by default, Locust and the host's monotonic clock
    load_factory = load_factory or getattr(runtime, "load_factory", None)
    kv_factory = kv_factory or getattr(runtime, "kv_factory", None)
    if load_factory is None:
        from chaos.load import Load as load_factory
    if kv_factory is None:
        from chaos.traffic import make_kv as kv_factory
    clock = getattr(runtime, "clock", time.monotonic)
    observe = getattr(runtime, "observer", chaos.observe)
    say = progress or (lambda message: log.info("%s", message))
    sc = scenario.plan(runtime)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    stop = stop or threading.Event()
    if hasattr(runtime, "pacer"):
        stop = runtime.pacer(stop)  # waits that let virtual time pass
    timings: dict[str, float] = {}
    began = time.monotonic()
    load_seed = derive(sc.seed, "workload")
    # Locust imports itself (~0.9 s) while the cluster starts, then waits for its address
    early = load_factory(sc.workload, host=None, seed=load_seed, directory=directory,
                         t0=clock()).launch() if getattr(load_factory, "launches_early", False) \
        else None
    try:
        if not started:
            say(f"starting the cluster ({runtime.name}, {sc.cluster.nodes} nodes)")
            runtime.start()
            timings["cluster_start_s"] = time.monotonic() - began
    except BaseException:
        if early is not None:
            early.stop()
        raise
    try:
        endpoints = runtime.endpoints()
        live = LiveStatus(directory, runtime, scenario=sc.name, seed=sc.seed, schedule=sc.schedule)
        say(f"traffic: {sc.workload.users} {sc.workload.client} users for "
            f"{sc.workload.duration:g}s; steady state {sc.steady_state:g}s")
        if early is not None:
            early.host = endpoints.registry
        with early or load_factory(sc.workload, host=endpoints.registry, seed=load_seed,
                                   directory=directory, t0=clock()) as load:
            load.start()
            # the schedule counts from the moment the users run, not from Locust's start-up
            t0 = load.t0 = clock()
            nemesis_log = History(clock=clock, t0=t0)
            nemesis = Nemesis(runtime, nemesis_log, topology=_topology(sc, runtime),
                              rng=random.Random(derive(sc.seed, "nemesis")),
                              on_event=live.relay(say))
            live.watch(nemesis)  # the faults active now, for `chaoslab dashboard`
            baseline = None
            if sc.steady_state > 0:
                stop.wait(max(0.0, t0 + sc.steady_state - clock()))  # pacing
                baseline = steady_state_verdict(load.snapshot(), until=sc.steady_state,
                                                min_ok=sc.steady_min_ok)
                say(f"steady state: {baseline.summary}")
            if baseline is not None and not baseline.ok:
                load.stop()
            else:
                with nemesis:
                    nemesis.run(sc.schedule, t0=t0, stop=stop, clock=clock)
                timings["faults_healed_s"] = clock() - t0
            code = load.wait(timeout=sc.workload.duration + 60)
            history = load.history(extra=nemesis_log.ops)
            operations = sum(1 for inv, _ in history.completions() if inv.is_client)
            load_stats = {"exit_code": code, "operations": operations,
                          "ops_per_s": operations / sc.workload.duration,
                          "cpu_seconds": round(load.cpu_seconds, 2),
                          "cpu_share": round(load.cpu_share, 3)}
        timings["traffic_s"] = clock() - t0
        keys = sorted({op.key for op in history.client_ops() if op.f == "write"})
        registered = getattr(observe, "wait_until_registered", None)
        if registered is not None:  # a registry that restarted lists every node again
            timings["registered_s"] = registered(runtime)
        say(f"final reads of {len(keys)} keys")
        t = time.monotonic()
        with kv_factory(sc.workload.client, endpoints.registry,
                        client_config(sc, endpoints.registry)) as kv:
            final = final_reads(kv, keys)
        timings["final_reads_s"] = time.monotonic() - t
        history.series.update(observe.node_arrivals(runtime, t0=history.t0))
        t = time.monotonic()
        timings["quiet_s"] = observe.wait_until_quiet(runtime, timeout=sc.quiet)
        final = FinalState(final, replicas=observe.replica_versions(runtime),
                           copies=min(sc.cluster.settings.n, len(runtime.node_ids())))
        timings["replica_reads_s"] = time.monotonic() - t
    finally:
        if early is not None:
            early.stop()  # it never got as far as the traffic
        if not started:
            t = time.monotonic()
            runtime.stop()
            timings["stop_s"] = time.monotonic() - t
    t = time.monotonic()
    if baseline is not None and not baseline.ok:
        verdict = Verdict("all", Validity.UNKNOWN, baseline.summary, parts=(baseline,))
    else:
        verdict = Compose(sc.resolved_checkers()).check(history, final)
        if nemesis.errors:  # a fault that could not be injected: nothing was tested
            verdict = Verdict("all", Validity.combine([verdict.valid, Validity.UNKNOWN]),
                              f"{verdict.summary}; nemesis errors: {len(nemesis.errors)}",
                              verdict.evidence, verdict.parts)
        if baseline is not None:
            verdict = dataclasses.replace(verdict, parts=(baseline, *verdict.parts))
    timings["checks_s"] = time.monotonic() - t
    timings["total_s"] = time.monotonic() - began
    return RunResult(sc, history, final, verdict, timings, str(directory), load_stats,
                     tuple(nemesis.errors))
