"""system/versions.py: the hybrid logical clock, the weakened wall-clock mode, encoding."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from system.versions import HLC, ZERO, Version, WallClockVersions, make_version_source

pytestmark = pytest.mark.unit


class FakeClock:
    """Seconds since the epoch, set by the test."""

    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


# clock readings in milliseconds; the fake clock is set to ms / 1000 seconds
millis = st.integers(0, 5_000_000)


def physical(ms: int) -> int:
    """What the HLC reads from a clock set to ``ms / 1000`` s (float truncation included)."""
    return int(ms / 1000 * 1000)
# readings that repeat (stalls) and go backwards as often as forwards
clock_walks = st.lists(st.sampled_from([0, 1, 2, 5, 1000]) | millis, min_size=1, max_size=60)
versions = st.builds(Version, st.integers(0, 10_000_000), st.integers(0, 1000), st.text(max_size=8))


# ---- Version values ---------------------------------------------------------------------


def test_versions_order_by_wall_then_counter_then_node():
    assert Version(1, 9, "z") < Version(2, 0, "a")
    assert Version(2, 0, "z") < Version(2, 1, "a")
    assert Version(2, 1, "a") < Version(2, 1, "b")
    assert ZERO == Version(0, 0, "") and ZERO < Version(0, 0, "a")


@settings(deadline=None)
@given(versions)
def test_encode_decode_round_trips_also_through_json(v):
    assert v.encode() == [v.wall_ms, v.counter, v.node]
    assert Version.decode(v.encode()) == v
    assert Version.decode(json.loads(json.dumps(v.encode()))) == v
    assert Version.decode(tuple(v.encode())) == v


@pytest.mark.parametrize("bad", [
    "5.2.n", "[5, 2, 'n']", None, 5, {"wall_ms": 5, "counter": 2, "node": "n"},
    [], [5, 2], [5, 2, "n", "extra"],
    [True, 0, "n"], [5, False, "n"],  # bools are ints in Python, not here
    [5.0, 2, "n"], [5, 2.0, "n"], ["5", 2, "n"], [5, "2", "n"],
    [5, 2, 3], [5, 2, None], [5, 2, ["n"]],
])
def test_decode_rejects_bad_shapes_with_a_message_that_shows_the_shape(bad):
    with pytest.raises(ValueError, match=r"version must be \[wall_ms:int, counter:int, node:str\]"):
        Version.decode(bad)


def test_decoded_values_are_plain_ints_and_str():
    v = Version.decode([7, 1, "n"])
    assert type(v) is Version and type(v.wall_ms) is int and type(v.counter) is int


# ---- HLC --------------------------------------------------------------------------------


def test_hlc_uses_the_wall_clock_in_milliseconds_and_counts_within_a_millisecond():
    clock = FakeClock(12.345)
    hlc = HLC("a", clock=clock)
    assert hlc.now() == Version(12345, 0, "a")
    assert hlc.now() == Version(12345, 1, "a")  # clock stalled: the counter moves
    assert hlc.now() == Version(12345, 2, "a")
    clock.t = 12.346
    assert hlc.now() == Version(12346, 0, "a")  # clock moved: the counter resets


def test_hlc_keeps_going_forward_when_the_clock_jumps_back():
    clock = FakeClock(100)
    hlc = HLC("a", clock=clock)
    first = hlc.now()
    clock.t = 40  # NTP step backwards by a minute
    assert [hlc.now() for _ in range(3)] == [Version(100_000, i, "a") for i in (1, 2, 3)]
    assert hlc.now() > first
    clock.t = 100.001
    assert hlc.now() == Version(100_001, 0, "a")


@settings(deadline=None)
@given(clock_walks)
def test_hlc_is_strictly_monotonic_whatever_the_wall_clock_does(walk):
    clock = FakeClock()
    hlc = HLC("a", clock=clock)
    issued = []
    for ms in walk:
        clock.t = ms / 1000
        v = hlc.now()
        # never below physical time, never more than the highest reading seen
        assert v.wall_ms == max(physical(x) for x in walk[: len(issued) + 1])
        issued.append(v)
    assert all(a < b for a, b in zip(issued, issued[1:], strict=False))
    assert len(set(issued)) == len(issued)


@given(clock_walks, versions)
@settings(max_examples=80, deadline=None)
def test_after_observe_every_version_is_greater_than_the_observed_one(walk, seen):
    clock = FakeClock()
    hlc = HLC("me", clock=clock)
    for ms in walk[: len(walk) // 2]:
        clock.t = ms / 1000
        hlc.now()
    hlc.observe(seen)
    for ms in walk[len(walk) // 2:]:
        clock.t = ms / 1000
        assert hlc.now() > seen


@settings(deadline=None)
@given(clock_walks, versions)
def test_observing_an_older_version_changes_nothing(walk, seen):
    clock = FakeClock()
    hlc, twin = HLC("me", clock=clock), HLC("me", clock=clock)
    for ms in walk:
        clock.t = ms / 1000
        last = hlc.now()
        assert twin.now() == last
    if seen[:2] > last[:2]:
        seen = Version(last.wall_ms, last.counter, seen.node)  # a tie counts as older too
    hlc.observe(seen)
    assert hlc.now() == twin.now()


def test_observe_carries_the_remote_wall_time_forward():
    """A node whose clock is behind adopts the remote time instead of going back in time."""
    behind = HLC("b", clock=FakeClock(10))
    remote = Version(50_000, 7, "a")
    behind.observe(remote)
    assert behind.now() == Version(50_000, 8, "b")
    behind.observe(Version(50_000, 3, "c"))  # older: ignored
    assert behind.now() == Version(50_000, 9, "b")


# one step: (who acts, clock advance in ms for both nodes (may be negative), send?)
steps = st.lists(st.tuples(st.sampled_from("ab"), st.integers(-2000, 2000), st.booleans()),
                 max_size=80)


@given(steps, st.integers(-60_000, 60_000))
@settings(max_examples=100, deadline=None)
def test_two_hlcs_exchanging_versions_give_a_causal_total_order(plan, skew_ms):
    """Each node's versions exceed everything it has seen (its own or received), directly or
    transitively; all versions are distinct, so sorting them is a total order."""
    clocks = {"a": FakeClock(100), "b": FakeClock(100 + skew_ms / 1000)}
    hlcs = {name: HLC(name, clock=clocks[name]) for name in "ab"}
    floor = {"a": ZERO, "b": ZERO}  # the greatest version each node has seen
    issued: list[Version] = []
    for actor, advance, send in plan:
        for clock in clocks.values():
            clock.t += advance / 1000
        v = hlcs[actor].now()
        assert v > floor[actor] and v.node == actor
        floor[actor] = v
        issued.append(v)
        if send:
            other = "b" if actor == "a" else "a"
            hlcs[other].observe(v)
            floor[other] = max(floor[other], v)
    assert len(set(issued)) == len(issued)
    assert sorted(issued) == sorted(set(issued))


def test_hlc_fixes_the_skew_that_wall_clock_versions_suffer():
    fast, slow = HLC("a", clock=FakeClock(100)), HLC("b", clock=FakeClock(90))
    first = fast.now()
    slow.observe(first)  # the second writer has read the first write
    assert slow.now() > first


# ---- the weakened wall-clock mode -------------------------------------------------------


def test_wallclock_versions_are_the_bare_clock():
    clock = FakeClock(12.345)
    w = WallClockVersions("a", clock=clock)
    assert w.now() == Version(12345, 0, "a")
    clock.t = 1
    assert w.now() == Version(1000, 0, "a")  # goes back with the clock


def test_wallclock_mode_loses_a_later_write_from_a_slower_clock():
    """The documented weakness the chaos suites must catch: last-write-wins on skewed clocks
    keeps the earlier write, even when the later writer has seen it."""
    fast = WallClockVersions("b", clock=FakeClock(100))
    slow = WallClockVersions("a", clock=FakeClock(90))
    first = fast.now()
    slow.observe(first)  # a no-op: there is nothing to carry forward
    second = slow.now()  # written later in real time
    assert second < first
    assert max(first, second) == first  # last-write-wins keeps the earlier write


def test_wallclock_mode_gives_equal_versions_within_a_millisecond():
    clock = FakeClock(5)
    w = WallClockVersions("a", clock=clock)
    assert w.now() == w.now()  # two writes, one version: one of them is lost


@settings(deadline=None)
@given(clock_walks)
def test_wallclock_mode_is_never_ahead_of_the_hlc(walk):
    clock = FakeClock()
    hlc, wall = HLC("a", clock=clock), WallClockVersions("a", clock=clock)
    for ms in walk:
        clock.t = ms / 1000
        assert wall.now() <= hlc.now()


# ---- choosing a source ------------------------------------------------------------------


def test_make_version_source_by_name():
    clock = FakeClock(3)
    hlc = make_version_source("hlc", "a", clock=clock)
    wall = make_version_source("wallclock", "a", clock=clock)
    assert isinstance(hlc, HLC) and isinstance(wall, WallClockVersions)
    assert hlc.now() == wall.now() == Version(3000, 0, "a")


def test_make_version_source_rejects_unknown_kinds_naming_the_choices():
    with pytest.raises(ValueError, match=r"unknown versions kind 'lamport': use 'hlc' or 'wallclock'"):
        make_version_source("lamport", "a")
