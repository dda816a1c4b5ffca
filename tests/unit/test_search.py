"""The schedule search: Hypothesis draws schedules over the topology, the first failing one is
shrunk to the smallest that still fails, and the same seed gives the same search."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from hypothesis import given, settings

from chaos.checkers.base import Validity, Verdict
from chaos.faults import Kill, Pause
from chaos.history import History
from chaos.scenario import Scenario
from chaos.search import FAULT_KINDS, PROFILES, schedules, search
from chaos.topology import Topology

pytestmark = pytest.mark.unit

BASE = Scenario(name="probe", seed=5).with_duration(12.0)
NODES = Topology(("node-1", "node-2", "node-3"))


def two_down_at_once(scenario: Scenario):
    """A stand-in cluster with W=2 of 3: invalid when two different nodes are killed or
    frozen at the same time, whatever else happens."""
    down = [s for s in scenario.schedule.steps if isinstance(s.fault, (Kill, Pause))]
    broken = any(a.fault.node != b.fault.node and a.at < b.end and b.at < a.end
                 for i, a in enumerate(down) for b in down[i + 1:])
    verdict = Verdict("all", Validity.INVALID if broken else Validity.VALID,
                      "2 of 3 down" if broken else "fine")
    return SimpleNamespace(verdict=verdict, history=History())


@settings(max_examples=60, deadline=None)
@given(schedules(NODES, start=2.5, end=10.0, max_steps=4))
def test_drawn_schedules_run_as_written(schedule):
    assert 1 <= len(schedule.steps) <= 4
    schedule.validate()  # no two steps holding one resource overlap
    assert all(2.5 <= s.at and s.end <= 10.0 and s.duration >= 0.5 for s in schedule.steps)
    assert [s.at for s in schedule.steps] == sorted(s.at for s in schedule.steps)
    bound = schedule.bind(NODES, __import__("random").Random(0))  # every target exists
    assert len(bound.steps) == len(schedule.steps)


def test_the_search_shrinks_a_failure_to_the_two_steps_that_cause_it():
    found = search(BASE, two_down_at_once, budget=200, seed=3)
    assert found.found, found.describe()
    steps = found.minimal.schedule.steps
    assert len(steps) == 2 and all(isinstance(s.fault, Kill) for s in steps), found.describe()
    assert found.minimal.seed == BASE.seed == 5 and found.verdict.valid is Validity.INVALID
    assert "2-step schedule breaks probe" in found.describe()
    assert found.as_json()["scenario"]["schedule"] == found.minimal.schedule.as_json()


def test_a_search_replays_from_its_seed_and_finds_nothing_in_a_sound_cluster():
    first = search(BASE, two_down_at_once, budget=200, seed=3)
    again = search(BASE, two_down_at_once, budget=200, seed=3)
    assert [t.schedule for t in first.trials] == [t.schedule for t in again.trials]
    sound = search(BASE, lambda sc: SimpleNamespace(
        verdict=Verdict("all", Validity.VALID, "fine"), history=History()), budget=15, seed=3)
    assert not sound.found and len(sound.trials) == 15
    assert "no violation in 15 runs" in sound.describe()


def test_a_schedule_search_refuses_nonsense():
    with pytest.raises(ValueError, match="budget"):
        search(BASE, two_down_at_once, budget=0)
    with pytest.raises(ValueError, match="unknown fault kinds"):
        schedules(NODES, start=1, end=5, kinds=("explode",))
    assert FAULT_KINDS[0] == "kill"  # what shrinking moves towards


def test_schedules_the_runtime_refuses_are_skipped_and_recorded():
    from chaos.faults import ClockSkew
    from chaos.scenario import ScenarioError

    def no_clocks(scenario: Scenario):
        if any(isinstance(s.fault, ClockSkew) for s in scenario.schedule.steps):
            raise ScenarioError("clock-skew cannot run here")
        return two_down_at_once(scenario)

    found = search(BASE, no_clocks, budget=200, seed=3, kinds=("clock-skew", "kill"))
    assert found.found and found.refused and "clock-skew cannot run here" in found.refused[0]
    assert not any(isinstance(s.fault, ClockSkew) for s in found.minimal.schedule.steps)


def sound(scenario: Scenario):
    return SimpleNamespace(verdict=Verdict("all", Validity.VALID, "fine"), history=History())


def test_the_quick_and_deep_profiles_bound_the_draws_and_an_unknown_one_is_refused():
    quick = search(BASE, sound, profile="quick", seed=3)
    assert len(quick.trials) == PROFILES["quick"].budget == 12 and quick.stopped is None
    assert "quick profile, budget 12" in quick.describe()
    deep = search(BASE, sound, profile="deep", seed=3)  # a schedule drawn twice runs once
    assert 12 < len(deep.trials) <= PROFILES["deep"].budget == 300
    assert deep.as_json()["profile"] == "deep"
    with pytest.raises(ValueError, match="unknown profile 'nightly': choose one of quick, deep"):
        search(BASE, sound, profile="nightly")


def test_the_time_limit_ends_a_search_and_shrinking_keeps_the_smallest_failure_so_far():
    now = [0.0]

    def slow(scenario: Scenario):  # every run takes 10 s of the search's clock
        now[0] += 10.0
        return sound(scenario)

    found = search(BASE, slow, budget=50, seed=3, time_limit=25.0, clock=lambda: now[0])
    assert len(found.trials) == 3 and found.stopped == "25 s", found.stopped
    assert "stopped at 25 s" in found.describe()

    def slow_failing(scenario: Scenario):
        now[0] += 10.0
        return two_down_at_once(scenario)

    full = search(BASE, two_down_at_once, budget=200, seed=3)
    first = next(i for i, t in enumerate(full.trials) if t.valid is Validity.INVALID)
    now[0] = 0.0  # time for the first failure and three shrinking runs
    cut = search(BASE, slow_failing, budget=200, seed=3, time_limit=10.0 * (first + 4),
                 clock=lambda: now[0])
    assert len(cut.trials) == first + 4 < len(full.trials) and cut.stopped
    assert cut.found and cut.verdict.valid is Validity.INVALID  # the smallest failure in time
    assert len(cut.minimal.schedule.steps) >= len(full.minimal.schedule.steps)


def test_failing_schedules_are_kept_between_searches_and_tried_first(tmp_path):
    db = str(tmp_path / "examples")
    first = search(BASE, two_down_at_once, budget=200, seed=3, database=db)
    assert first.found and len(first.trials) > 2
    again = search(BASE, two_down_at_once, budget=200, seed=99, database=db)
    replayed = [t.schedule for t in again.trials[:3]]  # what the database holds, first
    assert first.minimal.schedule in replayed, replayed
    assert again.minimal.schedule == first.minimal.schedule and len(again.trials) < len(first.trials)
    fresh = search(BASE, two_down_at_once, budget=200, seed=99)
    assert first.minimal.schedule not in [t.schedule for t in fresh.trials[:3]]
    other = search(BASE.but(seed=6), two_down_at_once, budget=200, seed=99, database=db)
    assert first.minimal.schedule not in [t.schedule for t in other.trials[:3]]  # its own key
