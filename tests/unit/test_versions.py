from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from system.versions import HLC, Version, WallClockVersions, make_version_source

pytestmark = pytest.mark.unit


class FakeClock:
    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


@given(st.lists(st.floats(0, 2000, allow_nan=False), min_size=1, max_size=60))
def test_hlc_is_strictly_monotonic_whatever_the_wall_clock_does(times):
    clock = FakeClock()
    hlc = HLC("a", clock=clock)
    last = None
    for t in times:
        clock.t = t
        v = hlc.now()
        assert last is None or v > last
        last = v


@given(st.lists(st.tuples(st.booleans(), st.floats(0, 100, allow_nan=False)), max_size=60))
def test_two_hlcs_exchanging_versions_stay_ahead_of_what_they_saw(steps):
    ca, cb = FakeClock(50), FakeClock(10)  # b's clock is 40 s behind
    a, b = HLC("a", clock=ca), HLC("b", clock=cb)
    seen = set()
    for a_sends, dt in steps:
        ca.t += dt / 10
        cb.t += dt / 10
        src, dst = (a, b) if a_sends else (b, a)
        v = src.now()
        assert v not in seen
        seen.add(v)
        dst.observe(v)
        assert dst.now() > v


def test_wallclock_mode_loses_a_later_write_from_a_slower_clock():
    """The weakness the chaos suites must catch: skewed clocks order writes wrongly."""
    fast, slow = WallClockVersions("a", clock=FakeClock(100)), WallClockVersions("b", clock=FakeClock(90))
    first = fast.now()
    second = slow.now()  # written later in real time
    assert second < first
    hlc_fast, hlc_slow = HLC("a", clock=FakeClock(100)), HLC("b", clock=FakeClock(90))
    v1 = hlc_fast.now()
    hlc_slow.observe(v1)  # a coordinator that has seen the first write
    assert hlc_slow.now() > v1


def test_encode_decode_round_trip_and_rejections():
    v = Version(5, 2, "n")
    assert Version.decode(v.encode()) == v
    for bad in ["5.2.n", [5, 2], [True, 0, "n"], [5, False, "n"], [5, 2, 3], None, [5.0, 2, "n"]]:
        with pytest.raises(ValueError, match="version must be"):
            Version.decode(bad)
    with pytest.raises(ValueError, match="unknown versions kind"):
        make_version_source("lamport", "a")
