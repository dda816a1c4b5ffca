"""system/quorum.py: quorum configuration and the tally of one quorum operation."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from system.quorum import QuorumConfig, Tally

pytestmark = pytest.mark.unit


# ---- QuorumConfig -----------------------------------------------------------------------


def test_defaults_are_n3_w2_r2_and_strong():
    q = QuorumConfig()
    assert (q.n, q.w, q.r) == (3, 2, 2) and q.strong


@pytest.mark.parametrize("n,w,r,message", [
    (0, 1, 1, "N must be at least 1, got 0"),
    (-1, 1, 1, "N must be at least 1, got -1"),
    (3, 0, 2, "W must be between 1 and N=3, got 0"),
    (3, 4, 2, "W must be between 1 and N=3, got 4"),
    (3, 2, 0, "R must be between 1 and N=3, got 0"),
    (3, 2, 5, "R must be between 1 and N=3, got 5"),
    (1, 1, 2, "R must be between 1 and N=1, got 2"),
])
def test_config_rejects_impossible_quorums_naming_the_field(n, w, r, message):
    with pytest.raises(ValueError) as err:
        QuorumConfig(n, w, r)
    assert str(err.value) == message


@settings(deadline=None)
@given(st.integers(-2, 8), st.integers(-2, 10), st.integers(-2, 10))
def test_config_is_valid_exactly_when_one_le_w_r_le_n(n, w, r):
    valid = n >= 1 and 1 <= w <= n and 1 <= r <= n
    try:
        q = QuorumConfig(n, w, r)
    except ValueError:
        assert not valid
    else:
        assert valid
        assert q.strong == (r + w > n)


@pytest.mark.parametrize("n,w,r,strong", [
    (3, 2, 2, True), (3, 3, 1, True), (3, 1, 3, True), (1, 1, 1, True), (5, 3, 3, True),
    (3, 1, 1, False), (3, 2, 1, False), (3, 1, 2, False), (4, 2, 2, False), (5, 2, 3, False),
])
def test_strong_iff_read_and_write_quorums_overlap(n, w, r, strong):
    assert QuorumConfig(n, w, r).strong is strong


def test_config_is_a_frozen_value():
    q = QuorumConfig(3, 2, 2)
    assert q == QuorumConfig(3, 2, 2) and hash(q) == hash(QuorumConfig(3, 2, 2))
    with pytest.raises(dataclasses.FrozenInstanceError):
        q.w = 1  # type: ignore[misc]


# ---- Tally ------------------------------------------------------------------------------


@pytest.mark.parametrize("needed", [0, -1])
def test_tally_needs_at_least_one_answer(needed):
    with pytest.raises(ValueError, match="at least 1 answer"):
        Tally(needed=needed, total=3)


def test_fresh_tally_is_pending_and_undecided():
    t = Tally(needed=2, total=3)
    assert t.pending == 3 and not t.succeeded and not t.impossible and not t.decided


def test_succeeds_exactly_at_the_needed_oks():
    t = Tally(needed=2, total=3)
    t.record_ok("a", "pa")
    assert not t.decided
    t.record_ok("b", "pb")
    assert t.succeeded and t.decided and not t.impossible
    assert t.ok == {"a": "pa", "b": "pb"} and t.pending == 1


def test_impossible_as_soon_as_the_remaining_replicas_cannot_make_it():
    t = Tally(needed=2, total=3)
    t.record_fail("a", "down")
    assert not t.decided  # b and c can still answer
    t.record_fail("b", "timeout")
    assert t.impossible and t.decided and not t.succeeded
    assert t.failed == {"a": "down", "b": "timeout"} and t.pending == 1


def test_needing_more_than_were_asked_is_impossible_from_the_start():
    t = Tally(needed=3, total=2)
    assert t.impossible and t.decided


def test_a_late_success_replaces_an_earlier_failure():
    t = Tally(needed=2, total=3)
    t.record_fail("a", "timeout")
    t.record_ok("a", 1)
    assert t.ok == {"a": 1} and t.failed == {} and t.pending == 2


def test_a_failure_after_a_success_of_the_same_node_is_ignored():
    t = Tally(needed=1, total=3)
    t.record_ok("a", 1)
    t.record_fail("a", "late error")
    assert t.ok == {"a": 1} and t.failed == {} and t.succeeded


def test_answers_from_the_same_node_count_once():
    t = Tally(needed=2, total=3)
    t.record_ok("a", 1)
    t.record_ok("a", 2)
    assert not t.succeeded and t.ok == {"a": 2} and t.pending == 2
    t.record_fail("b", "x")
    t.record_fail("b", "y")
    assert t.failed == {"b": "y"} and t.pending == 1


def test_tallies_do_not_share_their_answers():
    a, b = Tally(needed=1, total=1), Tally(needed=1, total=1)
    a.record_ok("n")
    assert b.ok == {} and not b.succeeded


events = st.integers(1, 6).flatmap(lambda total: st.tuples(
    st.just(total),
    st.integers(1, total + 1),
    st.lists(st.tuples(st.integers(0, total - 1), st.booleans()), max_size=3 * total),
))


@given(events)
@settings(max_examples=150, deadline=None)
def test_tally_matches_a_model_of_answers(case):
    """Over any sequence of ok/fail answers (repeats included) the tally decides exactly
    when it must: success at ``needed`` oks, impossible once oks + pending < needed."""
    total, needed, answers = case
    t = Tally(needed=needed, total=total)
    ok: set[int] = set()
    failed: set[int] = set()
    was_succeeded = False
    for node, is_ok in answers:
        if is_ok:
            t.record_ok(f"n{node}", node)
            ok.add(node)
            failed.discard(node)
        else:
            t.record_fail(f"n{node}", "down")
            if node not in ok:
                failed.add(node)
        pending = total - len(ok) - len(failed)
        assert t.pending == pending
        assert set(t.ok) == {f"n{i}" for i in ok} and set(t.failed) == {f"n{i}" for i in failed}
        assert t.succeeded == (len(ok) >= needed)
        assert t.impossible == (len(ok) + pending < needed)
        assert not (t.succeeded and t.impossible)
        assert t.decided == (t.succeeded or t.impossible)
        assert t.succeeded or not was_succeeded  # once succeeded, always succeeded
        was_succeeded = t.succeeded


@settings(deadline=None)
@given(st.integers(1, 6).flatmap(lambda total: st.tuples(
    st.just(total), st.integers(1, total), st.permutations(range(total)),
    st.lists(st.booleans(), min_size=total, max_size=total))))
def test_every_replica_answering_always_decides(case):
    total, needed, order, outcomes = case
    t = Tally(needed=needed, total=total)
    for node, ok in zip(order, outcomes, strict=True):
        if ok:
            t.record_ok(str(node))
        else:
            t.record_fail(str(node), "down")
    assert t.pending == 0 and t.decided
    assert t.succeeded == (sum(outcomes) >= needed)
