"""Fault schedules drawn by Hypothesis, run against the cluster under load, and the smallest one
that breaks an invariant.

A schedule is a list of timed steps (fault, target, when, how long), drawn from
:func:`schedules` over the scenario's topology: processes killed or frozen, partitions of every
shape the link mesh has, latency, blackholes, clock skew. :func:`search` runs one scenario per
schedule (the base scenario with that schedule, the same seed every time) and judges it with
the scenario's checkers. The first invalid verdict stops the generation; Hypothesis then
shrinks the schedule (fewer steps, earlier, shorter, simpler faults) while it still fails.

On the ``sim`` runtime a run is exact for a seed, so a shrunk candidate that passes really
passes; on real processes it may just have been lucky, which is why the minimal schedule is
confirmed by running it again, by default on local processes (:meth:`Search.confirm`).

::

    found = search(base, runner("sim"), budget=40, seed=7)
    found.minimal        # the smallest failing Scenario, or None
"""

from __future__ import annotations

import dataclasses
import hashlib
import random
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st
from hypothesis.errors import NoSuchExample

from chaos.checkers.base import Validity
from chaos.faults import Blackhole, ClockSkew, Kill, Latency, Partition, Pause
from chaos.nemesis import Schedule, ScheduleError, Step
from chaos.scenario import Scenario, ScenarioError
from chaos.topology import REGISTRY, Topology

__all__ = ["FAULT_KINDS", "PROFILES", "Profile", "schedules", "search", "runner", "Search",
           "Trial", "history_digest", "example_database"]

# the faults a search draws from, simplest first (Hypothesis shrinks towards the first)
FAULT_KINDS = ("kill", "pause", "isolate", "split", "one-way", "latency", "blackhole",
               "clock-skew")


@dataclass(frozen=True, slots=True)
class Profile:
    """A search's budget: ``budget`` schedules drawn, at most ``max_runs`` runs in all
    (shrinking included) and ``time_limit`` seconds; whichever ends first ends the search."""

    name: str
    budget: int
    max_runs: int
    time_limit: float


# quick: what CI runs (the integration tests' 12 draws took 4-30 s each on sim); deep: nightly
PROFILES = {"quick": Profile("quick", budget=12, max_runs=36, time_limit=120.0),
            "deep": Profile("deep", budget=300, max_runs=1200, time_limit=3600.0)}
DATABASE = ".chaoslab/search-examples"  # failing schedules kept between searches


def example_database(path: str | None = DATABASE):
    """Hypothesis's example database in directory ``path`` (None: none). A search replays
    the failing schedules it holds for the same base scenario before drawing new ones."""
    if path is None:
        return None
    from hypothesis.database import DirectoryBasedExampleDatabase

    return DirectoryBasedExampleDatabase(path)


def _faults(kind: str, nodes: tuple[str, ...]) -> st.SearchStrategy:
    node = st.sampled_from(nodes)
    if kind == "kill":
        return node.map(Kill)
    if kind == "pause":
        return node.map(Pause)
    if kind == "isolate":
        return node.map(lambda n: Partition.isolating(n, clients=True))
    if kind == "split":
        return node.map(lambda n: Partition.splitting(n, clients=True))
    if kind == "one-way":  # a node that cannot reach its peers and the registry
        return node.map(lambda n: Partition.one_way(
            n, tuple(o for o in nodes if o != n) + (REGISTRY,)))
    if kind == "latency":
        return st.tuples(node, st.sampled_from((50, 200, 600))).map(
            lambda t: Latency.symmetric(t[0], t[1]))
    if kind == "blackhole":
        return node.map(Blackhole)
    if kind == "clock-skew":
        return st.tuples(node, st.sampled_from((-5000, -60000, 5000))).map(
            lambda t: ClockSkew(t[0], t[1]))
    raise ValueError(f"unknown fault kind {kind!r}: choose one of {', '.join(FAULT_KINDS)}")


def schedules(topology: Topology, *, start: float, end: float, max_steps: int = 4,
              kinds: tuple[str, ...] = FAULT_KINDS) -> st.SearchStrategy[Schedule]:
    """Schedules of 1 to ``max_steps`` steps on ``topology``'s nodes, each applied between
    ``start`` and ``end`` seconds after the traffic starts (tenths of a second) and healed
    0.5 to 4 s later, but before ``end``. Steps that may not overlap (one process killed
    twice) are kept apart: such a schedule is never drawn."""
    if not 0 <= start < end:
        raise ValueError(f"need 0 <= start < end, got {start} and {end}")
    unknown = [k for k in kinds if k not in FAULT_KINDS]
    if unknown or not kinds:
        raise ValueError(f"unknown fault kinds {unknown}: choose from {', '.join(FAULT_KINDS)}")
    lo, hi = round(start * 10), round(end * 10)
    fault = st.sampled_from(kinds).flatmap(lambda k: _faults(k, topology.nodes))
    step = st.builds(lambda f, at, length: Step(f, at / 10, min(length, hi - at) / 10),
                     fault, st.integers(lo, hi - 5), st.integers(5, 40))
    return (st.lists(step, min_size=1, max_size=max_steps)
            .map(lambda steps: Schedule(tuple(sorted(steps, key=lambda s: s.at))))
            .filter(lambda schedule: _can_run(schedule, topology)))


def _can_run(schedule: Schedule, topology: Topology) -> bool:
    try:  # bound, a partition knows its links: two cuts of one link cannot overlap
        schedule.bind(topology, random.Random(0))
    except ScheduleError:
        return False
    return True


@dataclass(frozen=True, slots=True)
class Trial:
    """One schedule run: its verdict and how long the run took (wall seconds)."""

    schedule: Schedule
    valid: Validity
    summary: str
    seconds: float
    digest: str = ""  # of the run's history (see history_digest): equal runs, equal digests
    errors: tuple[str, ...] = ()  # faults the nemesis could not apply or heal

    def as_json(self) -> dict:
        return {"schedule": self.schedule.as_json(), "verdict": str(self.valid),
                "summary": self.summary, "seconds": round(self.seconds, 3),
                "history_sha256": self.digest, "nemesis_errors": list(self.errors)}


@dataclass
class Search:
    """What a search tried and found. ``minimal``: the smallest failing scenario (the base
    with the shrunk schedule, same seed), or None when the budget found none."""

    base: Scenario
    runtime: str
    budget: int
    search_seed: int = 0  # of the draws (the runs use the scenario's seed)
    trials: list[Trial] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)  # drawn schedules the runtime refused
    minimal: Scenario | None = None
    verdict: Trial | None = None  # the minimal schedule's own run
    confirmed: bool | None = None  # None: not confirmed anywhere else
    confirmation: dict[str, Any] | None = None
    profile: str = "quick"
    max_runs: int = 0
    time_limit: float = 0.0
    stopped: str | None = None  # the limit that ended the search early ("36 runs", "120 s")

    @property
    def found(self) -> bool:
        return self.minimal is not None

    def confirm(self, run_one: Callable[[Scenario], Any], runtime: str) -> bool:
        """Run the minimal scenario again with ``run_one`` (another runtime): is the
        violation real outside the simulation?"""
        if self.minimal is None:
            raise ValueError("nothing was found to confirm")
        started = time.monotonic()
        result = run_one(self.minimal)
        self.confirmed = result.verdict.valid is Validity.INVALID
        self.confirmation = {"runtime": runtime, "verdict": str(result.verdict.valid),
                             "summary": result.verdict.summary,
                             "seconds": round(time.monotonic() - started, 3)}
        return self.confirmed

    def as_json(self) -> dict:
        return {"kind": "chaoslab-search", "runtime": self.runtime, "profile": self.profile,
                "budget": self.budget, "max_runs": self.max_runs, "time_limit": self.time_limit,
                "stopped_at": self.stopped, "seed": self.base.seed,
                "search_seed": self.search_seed, "base": self.base.as_json(), "found": self.found,
                "scenario": None if self.minimal is None else self.minimal.as_json(),
                "verdict": None if self.verdict is None else self.verdict.as_json(),
                "confirmed": self.confirmed, "confirmation": self.confirmation,
                "runs": len(self.trials), "trials": [t.as_json() for t in self.trials],
                "refused": self.refused}

    def describe(self) -> str:
        """The finding in a few lines: the minimal schedule, the seed, what broke."""
        if self.minimal is None:
            ended = f"; stopped at {self.stopped}" if self.stopped else ""
            return (f"no violation in {len(self.trials)} runs of {self.base.name} on "
                    f"{self.runtime} (seed {self.base.seed}, {self.profile} profile, budget "
                    f"{self.budget}{ended})")
        steps = "\n".join(f"  {s.at:5.1f}s +{s.duration:.1f}s  {s.fault.describe()}"
                          for s in self.minimal.schedule.steps)
        confirmed = {None: "not confirmed elsewhere", True: "confirmed", False: "NOT confirmed"}
        where = f" on {self.confirmation['runtime']}" if self.confirmation else ""
        return (f"{len(self.minimal.schedule.steps)}-step schedule breaks {self.base.name} "
                f"(seed {self.base.seed}, found in {len(self.trials)} runs on {self.runtime}; "
                f"{confirmed[self.confirmed]}{where}):\n{steps}\n"
                f"  {self.verdict.summary if self.verdict else ''}")


def history_digest(history) -> str:
    """sha256 of the history's records as written to history.jsonl: two runs of the sim with
    one seed must give the same digest."""
    import orjson

    h = hashlib.sha256()
    for op in history.ops:
        h.update(orjson.dumps(op.as_json(), option=orjson.OPT_SORT_KEYS) + b"\n")
    return h.hexdigest()


def search(base: Scenario, run_one: Callable[[Scenario], Any], *,
           profile: str | Profile = "quick", budget: int | None = None,
           seed: int | None = None, max_steps: int = 4, runtime: str = "sim",
           kinds: tuple[str, ...] = FAULT_KINDS, max_runs: int | None = None,
           time_limit: float | None = None, database: str | None = None,
           on_trial: Callable[[Trial], None] | None = None,
           clock: Callable[[], float] = time.monotonic) -> Search:
    """Draw schedules for ``base`` (its own schedule is replaced), run each with
    ``run_one(scenario) -> RunResult``, and shrink the first that is invalid.

    ``profile`` (``quick`` or ``deep``, see :data:`PROFILES`) sets the budget: schedules
    drawn, runs in all (shrinking included) and seconds; ``budget``, ``max_runs`` and
    ``time_limit`` override its figures. Past ``max_runs`` or the time limit, candidates
    count as passing: the drawing stops, and shrinking keeps the smallest failure so far.
    The draws come from ``seed`` (default: the scenario's), so a search replays; every run
    uses the scenario's own seed, so on ``sim`` a schedule's run is exact. ``database``: a
    directory of Hypothesis's example database (see :func:`example_database`); failing
    schedules found there for the same base are tried first."""
    if isinstance(profile, str):
        if profile not in PROFILES:
            raise ValueError(f"unknown profile {profile!r}: choose one of {', '.join(PROFILES)}")
        profile = PROFILES[profile]
    budget = profile.budget if budget is None else budget
    if max_runs is None:  # a budget of one's own: shrinking may add 3x its runs
        max_runs = profile.max_runs if budget is None else 4 * budget
    limit = max_runs
    time_limit = profile.time_limit if time_limit is None else time_limit
    if budget < 1:
        raise ValueError(f"budget must be at least 1 run, got {budget}")
    seed = base.seed if seed is None else seed
    topology = base.topology
    start = base.steady_state + 0.5
    end = max(start + 1.0, base.workload.duration - 2.0)
    strategy = schedules(topology, start=start, end=end, max_steps=max_steps, kinds=kinds)
    found = Search(base=base, runtime=runtime, budget=budget, search_seed=seed,
                   profile=profile.name, max_runs=limit, time_limit=time_limit)
    seen: dict[str, Trial] = {}
    began = clock()

    def fails(schedule: Schedule) -> bool:
        key = repr(schedule.as_json())
        if key in seen:  # shrinking revisits candidates: a run is exact, or nearly
            return seen[key].valid is Validity.INVALID
        if len(found.trials) >= limit:
            found.stopped = found.stopped or f"{limit} runs"
            return False
        if clock() - began >= time_limit:
            found.stopped = found.stopped or f"{time_limit:g} s"
            return False
        started = clock()
        try:
            result = run_one(base.but(schedule=schedule))
        except ScenarioError as exc:  # a fault this runtime refuses (before anything ran)
            found.refused.append(f"{'; '.join(s.fault.describe() for s in schedule.steps)}: "
                                 f"{exc}")
            seen[key] = Trial(schedule, Validity.UNKNOWN, str(exc), 0.0)
            return False
        trial = Trial(schedule, result.verdict.valid, result.verdict.summary,
                      clock() - started, history_digest(result.history),
                      tuple(getattr(result, "errors", ())))
        seen[key] = trial
        found.trials.append(trial)
        if on_trial is not None:
            on_trial(trial)
        # a run whose faults could not all be injected or healed tested something else
        return trial.valid is Validity.INVALID and not trial.errors

    db = example_database(database)
    try:
        minimal = _find(strategy, fails, seed=seed, database=db,
                        key=_database_key(base, runtime, kinds, max_steps), config=settings(
                            max_examples=budget, deadline=None, derandomize=False,
                            report_multiple_bugs=False,
                            phases=(Phase.reuse, Phase.generate, Phase.shrink),
                            suppress_health_check=list(HealthCheck)))
    except NoSuchExample:
        return found
    found.minimal = base.but(schedule=minimal, name=f"{base.name}-minimal")
    found.verdict = seen[repr(minimal.as_json())]
    return found


class _Found(Exception):
    pass


def _find(strategy, condition: Callable[[Any], bool], *, seed: int, database, key: bytes,
          config: settings):
    """``hypothesis.find`` with seeded draws *and* an example database. ``find(random=...)``
    seeds through ``@seed``, which switches the database off (Hypothesis keeps seeded runs
    and stored examples apart); here the stored failing examples are replayed first, then
    the draws come from ``seed``. The two attributes below are Hypothesis's own, as
    ``find`` sets them; tests/unit/test_search.py fails if a release changes them."""
    last: list[Any] = []

    @config
    @given(strategy)
    def test(value):
        if condition(value):
            last[:] = [value]
            raise _Found

    test = hypothesis_seed(random.Random(seed).getrandbits(64))(test)
    if database is not None:  # what @seed switched off
        test._hypothesis_internal_use_settings = settings(
            test._hypothesis_internal_use_settings, database=database)
        test._hypothesis_internal_database_key = key
    try:
        test()
    except _Found:
        return last[0]
    raise NoSuchExample("no failing schedule")


def _database_key(base: Scenario, runtime: str, kinds: tuple[str, ...], max_steps: int) -> bytes:
    """What a stored failing schedule belongs to: the base scenario without its schedule
    (its cluster, workload, checkers and seed), the runtime and what may be drawn."""
    import orjson

    what = {**base.as_json(), "schedule": None, "runtime": runtime, "kinds": list(kinds),
            "max_steps": max_steps}
    return b"chaoslab-search:" + hashlib.sha256(
        orjson.dumps(what, option=orjson.OPT_SORT_KEYS)).hexdigest().encode()


def runner(kind: str, *, progress: Callable[[str], None] | None = None,
           **runtime_options: Any) -> Callable[[Scenario], Any]:
    """``run_one(scenario)``: start a fresh cluster of the runtime ``kind`` for the scenario,
    run it into a temporary directory and return its RunResult (the cluster is stopped)."""
    from chaos.runtime import open_runtime
    from chaos.scenario import run

    def run_one(scenario: Scenario):
        with tempfile.TemporaryDirectory(prefix="chaoslab-search-") as tmp:
            spec = dataclasses.replace(scenario.cluster, seed=scenario.seed)
            options = dict(runtime_options)
            if kind in ("local", "external"):
                options.setdefault("workdir", tmp)
            rt = open_runtime(kind, spec, **options)
            return run(scenario, rt, directory=f"{tmp}/run", progress=progress or (lambda m: None))

    return run_one
