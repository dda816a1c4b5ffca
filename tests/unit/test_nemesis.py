"""The nemesis: a schedule is a checked plain value; every applied fault is healed exactly
once, newest first, also when the run fails; steps happen on time (virtual time here)."""

from __future__ import annotations

import random

import pytest

from chaos.faults import FaultError, Kill, Latency, Partition, Pause
from chaos.history import History, OpType
from chaos.nemesis import Nemesis, Schedule, ScheduleError, Step
from chaos.testing import FakeCluster, ManualClock
from chaos.topology import Topology

pytestmark = pytest.mark.unit

TOPO = Topology(("node-1", "node-2", "node-3"))


def run(schedule: Schedule, rt=None):
    rt = rt or FakeCluster()
    clock = ManualClock()
    nem = Nemesis(rt, History(clock=clock))
    nem.run(schedule.bind(TOPO, random.Random(1)), t0=clock(), stop=clock, clock=clock)
    return rt, nem


def test_steps_are_applied_and_healed_on_time_in_order():
    rt, nem = run(Schedule.parse(["kill:node-1@2+3", "pause:node-2@4+0.5",
                                  "partition:isolate:node-3@1+6"], at=0, duration=1))
    ops = [(op.time, op.f, op.value["phase"]) for op in nem.history.ops if op.type is OpType.OK]
    assert ops == [(1, "partition", "apply"), (2, "kill", "apply"), (4, "pause", "apply"),
                   (4.5, "pause", "heal"), (5, "kill", "heal"), (7, "partition", "heal")]
    assert rt.healthy
    windows = nem.history.fault_windows()
    assert [(w.fault, w.start, w.end) for w in windows] == [
        ("partition", 1, 7), ("kill", 2, 5), ("pause", 4, 4.5)]


def test_a_heal_and_an_apply_at_the_same_time_heal_first():
    rt, _ = run(Schedule.of((Kill("node-1"), 1, 2), (Pause("node-1"), 3, 1)))
    assert rt.calls == [("kill", "node-1"), ("restart", "node-1"), ("pause", "node-1"),
                        ("resume", "node-1")]


def test_everything_applied_is_healed_once_newest_first_when_the_test_fails():
    rt = FakeCluster()
    with pytest.raises(RuntimeError), Nemesis(rt) as nem:
        nem.apply(Kill("node-1"))
        nem.apply("pause:node-2")
        nem.apply(Partition.isolating("node-3"))
        raise RuntimeError("the test failed")
    assert rt.healthy
    heals = [op.f for op in nem.history.ops if op.value["phase"] == "heal" and op.type is OpType.OK]
    assert heals == ["partition", "pause", "kill"]
    nem.heal()  # again: nothing left
    assert len([c for c in rt.calls if c[0] == "restart"]) == 1


def test_an_interrupted_schedule_still_heals():
    class StopAfterFirst(ManualClock):
        def wait(self, timeout=None):
            self.waits = getattr(self, "waits", 0) + 1
            return self.waits >= 2  # the second step's wait is interrupted

    rt = FakeCluster()
    clock = StopAfterFirst()
    nem = Nemesis(rt, History(clock=clock))
    schedule = Schedule.of((Kill("node-1"), 1, 10), (Pause("node-2"), 2, 1)).bind(
        TOPO, random.Random(0))
    nem.run(schedule, t0=clock(), stop=clock, clock=clock)
    assert ("pause", "node-2") not in rt.calls and rt.healthy


def test_a_failing_apply_is_recorded_and_the_rest_still_heals():
    class Flaky(FakeCluster):
        def pause(self, node_id):
            raise OSError("no such process")

    rt, nem = run(Schedule.of((Kill("node-1"), 1, 5), (Pause("node-2"), 2, 1)), Flaky())
    assert rt.healthy and len(nem.errors) == 1 and "no such process" in nem.errors[0]
    failed = [op for op in nem.history.ops if op.type is OpType.FAIL]
    assert [(op.f, op.value["phase"]) for op in failed] == [("pause", "apply")]


def test_overlapping_faults_on_one_resource_are_refused_at_once():
    rt = FakeCluster()
    nem = Nemesis(rt)
    nem.apply(Kill("node-1"))
    with pytest.raises(FaultError, match="overlap an active fault on process:node-1"):
        nem.apply(Pause("node-1"))
    nem.heal()
    nem.apply(Pause("node-1"))  # healed: free again
    nem.heal()
    assert rt.healthy


@pytest.mark.parametrize("steps,message", [
    ([(Kill("node-1"), 2, 3), (Pause("node-1"), 4, 1)], "overlap on process:node-1"),
    ([(Kill("node-1"), 2, -1)], "heals before it applies"),
    ([(Kill("node-1"), -1, 1)], "must be >= 0"),
    ([(Partition.isolating("node-1"), 1, 5), (Partition.splitting("node-1"), 2, 1)],
     "overlap on link:"),
    ([(Latency("node-1", 100), 1, 5), (Latency("node-1", 100), 2, 1)], "overlap on toxic:"),
])
def test_schedules_that_cannot_run_are_refused_before_anything_starts(steps, message):
    with pytest.raises(ScheduleError, match=message):
        Schedule.of(*steps).bind(TOPO, random.Random(0))


def test_overlapping_faults_on_different_resources_may_coexist():
    Schedule.of((Kill("node-1"), 1, 5), (Kill("node-2"), 2, 1),
                (Latency("node-1", 100), 1, 5), (Latency("node-1", 200), 1, 5)).bind(
        TOPO, random.Random(0))


def test_a_bound_schedule_survives_a_json_round_trip():
    schedule = Schedule.parse(["partition:halves@1+2", "latency:node-2:ms=50@1+2",
                               "kill:node-3@2+1"], at=0, duration=1).bind(TOPO, random.Random(7))
    assert Schedule.from_json(schedule.as_json()) == schedule


def test_written_timings():
    s = Schedule.parse(["kill:node-1", "kill:node-2@5", "kill:node-3@6+2", "pause:node-1+3"],
                       at=1.5, duration=4)
    assert [(st.at, st.duration) for st in s.steps] == [(1.5, 4), (5, 4), (6, 2), (1.5, 3)]
    with pytest.raises(ScheduleError, match="FAULT@AT\\+DURATION"):
        Schedule.parse(["kill:node-1@soon"], at=0, duration=1)
    assert Schedule.single(Kill("node-1"), at=2, heal=5).steps == (Step(Kill("node-1"), 2, 3),)
