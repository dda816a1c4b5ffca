"""A scenario is one plain value (checked and planned before anything starts, replayable from
its JSON) and the runner carries it out: steady-state gate, schedule, final reads, checkers.
The runner is driven here with an in-memory cluster, traffic and client."""

from __future__ import annotations

import dataclasses
import threading
import time

import pytest

from chaos.catalog import SCENARIOS
from chaos.checkers import Availability, NoLostWrites, Validity
from chaos.faults import Kill, Partition, Pause
from chaos.history import History
from chaos.nemesis import Schedule
from chaos.runtime.base import ClusterSpec
from chaos.scenario import Scenario, ScenarioError, client_config, final_reads, run
from chaos.testing import FakeCluster
from chaos.traffic import Workload
from system.config import ClusterSettings

pytestmark = pytest.mark.unit

FAST = Workload(duration=0.6, users=2)
KILL = Scenario(name="kill", workload=FAST, steady_state=0.1,
                schedule=Schedule.single(Kill("node-1"), at=0.2, duration=0.2),
                checkers=(Availability(min_ratio=1.0), NoLostWrites()))


class FakeLoad:
    """Traffic that writes ``k0..k4`` in turn; ``fails`` says which writes fail."""

    def __init__(self, workload, *, host, seed, directory, t0, fails=lambda t: False):
        self.t0, self.fails, self.workload = t0, fails, workload
        self.started = self.stopped = False

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stopped = True

    def start(self):
        self.started = True

    def _ops(self, until: float) -> History:
        h = History(t0=self.t0)
        t, i = 0.0, 0
        while t < until:
            key, value = f"k{i % 5}", f"v{i}"
            h.add("p1", "invoke", "write", key, value, at=self.t0 + t)
            h.add("p1", "fail" if self.fails(t) else "ok", "write", key, value,
                  at=self.t0 + t + 0.001)
            t, i = t + 0.01, i + 1
        return h

    def snapshot(self):
        return self._ops(time.monotonic() - self.t0)

    def stop(self):
        self.stopped = True

    def wait(self, timeout):
        return 0

    def history(self, extra=()):
        h = self._ops(self.workload.duration)
        h.absorb(extra)
        return h

    cpu_seconds = 0.1
    cpu_share = 0.05


class FakeKV:
    def __init__(self, final):
        self.final = final

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass

    def get(self, key):
        return self.final(key), None


def run_fake(scenario, tmp_path, *, fails=lambda t: False, final=None, rt=None):
    rt = rt or FakeCluster(scenario.cluster)
    last = {}
    for i in range(60):
        last[f"k{i % 5}"] = f"v{i}"
    reads = final or (lambda key: last[key])
    result = run(scenario, rt, directory=tmp_path, started=True,
                 load_factory=lambda *a, **kw: FakeLoad(*a, **kw, fails=fails),
                 kv_factory=lambda *a: FakeKV(reads))
    return rt, result


def test_a_healthy_run_is_valid_and_heals_what_it_broke(tmp_path):
    rt, result = run_fake(KILL, tmp_path)
    assert result.verdict.valid is Validity.VALID, result.explain()
    assert [p.name for p in result.verdict.parts] == ["steady-state", "availability",
                                                      "durability"]
    assert rt.calls == [("kill", "node-1"), ("restart", "node-1")] and rt.healthy
    assert [w.fault for w in result.history.fault_windows()] == ["kill"]


def test_an_unhealthy_baseline_is_unknown_and_no_fault_is_applied(tmp_path):
    rt, result = run_fake(KILL, tmp_path, fails=lambda t: True)
    assert result.verdict.valid is Validity.UNKNOWN
    assert "unhealthy baseline" in result.verdict.summary
    assert rt.calls == []


def test_a_lost_write_makes_the_run_invalid(tmp_path):
    _, result = run_fake(KILL, tmp_path, final=lambda key: "v0")
    assert result.verdict.valid is Validity.INVALID
    assert result.verdict.parts[-1].name == "durability"


def test_failures_during_the_fault_are_judged_by_the_scenarios_threshold(tmp_path):
    during = lambda t: 0.25 < t < 0.35  # noqa: E731
    _, strict = run_fake(KILL, tmp_path / "a", fails=during)
    lenient = KILL.but(checkers=(Availability(min_ratio=0.5), NoLostWrites()))
    _, ok = run_fake(lenient, tmp_path / "b", fails=during)
    assert strict.verdict.valid is Validity.INVALID and ok.verdict.valid is Validity.VALID


def test_a_fault_that_cannot_be_injected_makes_the_verdict_unknown(tmp_path):
    class CannotPause(FakeCluster):
        def pause(self, node_id):
            raise OSError("operation not permitted")

    sc = KILL.but(schedule=Schedule.single(Pause("node-2"), at=0.2, duration=0.1))
    rt, result = run_fake(sc, tmp_path, rt=CannotPause(sc.cluster))
    assert result.verdict.valid is Validity.UNKNOWN and "not permitted" in result.errors[0]


@pytest.mark.parametrize("change,message", [
    (dict(schedule=Schedule.single(Kill("node-1"), at=0.05, duration=0.1)), "inside the"),
    (dict(schedule=Schedule.single(Kill("node-1"), at=0.3, duration=1)), "after the traffic"),
    (dict(schedule=Schedule.single(Kill("node-7"), at=0.3, duration=0.1)), "unknown target"),
    (dict(cluster=ClusterSpec(mesh=False),
          schedule=Schedule.single(Partition.isolating("node-1"), at=0.3, duration=0.1)),
     "needs the link mesh"),
    (dict(cluster=ClusterSpec(nodes=2)), "2 nodes cannot hold N=3"),
    (dict(cluster=ClusterSpec(storage="tape")), "unknown storage 'tape'"),
    (dict(checkers=("durability", "nope")), "unknown checker 'nope'"),
    (dict(steady_state=5), "must fit in the traffic"),
])
def test_a_scenario_that_cannot_run_is_refused_before_anything_starts(change, message):
    with pytest.raises(ScenarioError, match=message):
        KILL.but(**change).plan()


def test_quorum_lives_in_one_place_and_the_client_derives_it():
    sc = KILL.but(cluster=ClusterSpec(settings=ClusterSettings(w=3, r=1)), seed=5)
    config = client_config(sc, "http://127.0.0.1:1")
    assert (config.cluster.w, config.cluster.r) == (3, 1)
    assert config.request_timeout == sc.workload.request_timeout
    assert config.seed == client_config(sc, "x").seed != client_config(sc.but(seed=6), "x").seed


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_every_named_scenario_plans_and_replays_from_its_json(name):
    planned = SCENARIOS[name].but(seed=42).plan()
    assert Scenario.from_json(planned.as_json()) == planned


def test_stretching_keeps_each_steps_share_of_the_time():
    sc = SCENARIOS["kill-one"]
    short = sc.with_duration(6)
    assert short.workload.duration == 6 and short.steady_state == sc.steady_state / 2
    assert [(s.at, s.duration) for s in short.schedule.steps] == [
        (s.at / 2, s.duration / 2) for s in sc.schedule.steps]
    short.plan()
    with pytest.raises(ScenarioError, match="duration must be positive"):
        sc.with_duration(0)


def test_the_default_scenario_is_a_no_op():
    noop = Scenario()
    assert noop.schedule.steps == () and noop.name == "noop"
    assert dataclasses.replace(noop, seed=3).plan().seed == 3


class SharedKV:
    """A client that says it is safe to share between threads; key "bad" never answers,
    "flaky" answers on its second try."""

    def __init__(self, threadsafe: bool) -> None:
        self.threadsafe = threadsafe
        self.threads: set[int] = set()
        self.tries: dict[str, int] = {}
        self.lock = threading.Lock()
        self.barrier = threading.Barrier(2, timeout=5)

    def get(self, key):
        with self.lock:
            self.threads.add(threading.get_ident())
            self.tries[key] = self.tries.get(key, 0) + 1
        if self.threadsafe and key in ("k0", "k1"):
            self.barrier.wait()  # only passes if two reads run at once
        if key == "bad" or (key == "flaky" and self.tries[key] == 1):
            raise TimeoutError(key)
        return f"v-{key}", None


@pytest.mark.parametrize("threadsafe", [True, False])
def test_final_reads_read_every_key_at_once_only_through_a_shareable_client(threadsafe):
    kv = SharedKV(threadsafe)
    keys = ["k0", "k1", "flaky", "bad", *(f"x{i}" for i in range(40))]
    final = final_reads(kv, keys)
    assert final == {k: f"v-{k}" for k in keys if k != "bad"}  # the unreadable one left out
    assert kv.tries["bad"] == 3 and kv.tries["flaky"] == 2
    assert (len(kv.threads) > 1) is threadsafe
