from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from system.quorum import QuorumConfig, Tally

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("n,w,r,field", [(3, 0, 2, "W"), (3, 4, 2, "W"), (3, 2, 0, "R"),
                                         (3, 2, 5, "R"), (0, 1, 1, "N")])
def test_config_rejects_impossible_quorums(n, w, r, field):
    with pytest.raises(ValueError, match=field):
        QuorumConfig(n, w, r)


def test_strong_iff_read_and_write_quorums_overlap():
    assert QuorumConfig(3, 2, 2).strong
    assert not QuorumConfig(3, 1, 1).strong
    assert not QuorumConfig(3, 2, 1).strong
    assert QuorumConfig(3, 3, 1).strong


@given(st.integers(1, 5).flatmap(lambda total: st.tuples(
    st.just(total), st.integers(1, total), st.lists(st.booleans(), min_size=total, max_size=total))))
def test_tally_decides_exactly_when_it_must(case):
    total, needed, outcomes = case
    t = Tally(needed=needed, total=total)
    oks = fails = 0
    for i, ok in enumerate(outcomes):
        if ok:
            t.record_ok(f"n{i}", i)
            oks += 1
        else:
            t.record_fail(f"n{i}", "down")
            fails += 1
        assert t.succeeded == (oks >= needed)
        assert t.impossible == (oks + (total - oks - fails) < needed)
        assert not (t.succeeded and t.impossible)
    assert t.decided and t.pending == 0


def test_a_late_success_replaces_an_earlier_failure():
    t = Tally(needed=2, total=3)
    t.record_fail("a", "timeout")
    t.record_ok("a", 1)
    t.record_fail("a", "ignored after success")
    assert t.ok == {"a": 1} and t.failed == {} and t.pending == 2
