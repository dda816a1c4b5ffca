"""system/membership.py: heartbeats -> alive / suspect / dead / left, and cluster health."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from system.membership import HEALTH_LEVELS, Member, Membership

from .clock import FakeClock

pytestmark = pytest.mark.unit


@pytest.fixture
def members(fake) -> Membership:
    return Membership(interval=2.0, suspect_after=2, dead_after=3, clock=lambda: fake.now)


def statuses(m: Membership) -> dict[str, str]:
    return {x.id: x.status for x in m.members()}


# ---- construction -----------------------------------------------------------------------


@pytest.mark.parametrize("suspect,dead", [(0, 3), (-1, 3), (3, 2), (0, 0)])
def test_suspect_must_come_before_dead(suspect, dead):
    with pytest.raises(ValueError, match=rf"need 0 < suspect_after <= dead_after, got {suspect} and {dead}"):
        Membership(suspect_after=suspect, dead_after=dead)


def test_suspect_and_dead_may_coincide(fake):
    m = Membership(interval=1.0, suspect_after=2, dead_after=2, clock=lambda: fake.now)
    m.heartbeat("a", "a:1")
    fake.now = 2.0
    assert m.status("a") == "dead"  # dead wins over suspect at the same moment


@pytest.mark.parametrize("interval", [0.0, -1.0])
def test_a_non_positive_interval_is_rejected(interval):
    with pytest.raises(ValueError, match="interval"):
        Membership(interval=interval)


# ---- the life of one node ---------------------------------------------------------------


def test_alive_then_suspect_then_dead_at_the_interval_boundaries(members, fake):
    assert members.heartbeat("a", "h:1") is True  # a join
    fake.now = 3.999  # less than 2 intervals of 2 s
    assert members.status("a") == "alive"
    fake.now = 4.0
    assert members.status("a") == "suspect"
    fake.now = 5.999
    assert members.status("a") == "suspect"
    fake.now = 6.0
    assert members.status("a") == "dead"
    fake.now = 1e6
    assert members.status("a") == "dead"


def test_heartbeats_keep_a_node_alive(members, fake):
    members.heartbeat("a", "h:1")
    for t in range(1, 40):
        fake.now = t * 3.5  # every 3.5 s: under the 4 s suspicion threshold
        assert members.status("a") == "alive"
        assert members.heartbeat("a", "h:1") is False


def test_a_heartbeat_revives_a_suspect_without_a_new_incarnation(members, fake):
    members.heartbeat("a", "h:1")
    fake.now = 5.0
    assert members.status("a") == "suspect"
    assert members.heartbeat("a", "h:1") is False  # not a rejoin
    assert members.status("a") == "alive" and members.members()[0].incarnation == 1


def test_a_dead_node_that_beats_again_rejoins_with_a_new_incarnation(members, fake):
    members.heartbeat("a", "h:1")
    fake.now = 6.0
    assert members.status("a") == "dead"
    assert members.heartbeat("a", "h:2") is True
    (a,) = members.members()
    assert (a.status, a.incarnation, a.address, a.since_heartbeat) == ("alive", 2, "h:2", 0.0)
    assert members.heartbeat("a", "h:2") is False  # just beating now
    assert members.members()[0].incarnation == 2


def test_mark_dead_is_dead_until_the_next_heartbeat_which_is_a_rejoin(members, fake):
    members.heartbeat("a", "h:1")
    assert members.mark_dead("a") is True
    assert members.status("a") == "dead"  # at once, whatever the clock says
    assert members.heartbeat("a", "h:1") is True
    assert members.status("a") == "alive" and members.members()[0].incarnation == 2


def test_deregister_is_left_and_a_later_heartbeat_rejoins(members, fake):
    members.heartbeat("a", "h:1")
    assert members.deregister("a") is True
    assert members.status("a") == "left" and "a" in members
    fake.now = 100.0
    assert members.status("a") == "left"  # left is not overridden by missed beats
    members.mark_dead("a")
    assert members.status("a") == "left"  # nor by mark_dead
    assert members.heartbeat("a", "h:1") is True
    assert members.status("a") == "alive" and members.members()[0].incarnation == 2


def test_unknown_nodes(members):
    assert "zz" not in members
    with pytest.raises(KeyError):
        members.status("zz")
    assert members.deregister("zz") is False and members.mark_dead("zz") is False
    assert "zz" not in members and members.members() == []


@settings(deadline=None)
@given(st.sampled_from([0.5, 1.0, 2.0]), st.integers(1, 4), st.integers(0, 4),
       st.lists(st.floats(0, 30), min_size=1, max_size=20))
def test_status_follows_the_missed_intervals_and_never_improves_without_a_heartbeat(
        interval, suspect_after, extra, gaps):
    dead_after = suspect_after + extra
    fake = FakeClock()
    m = Membership(interval=interval, suspect_after=suspect_after, dead_after=dead_after,
                   clock=lambda: fake.now)
    m.heartbeat("a", "a:1")
    rank = {"alive": 0, "suspect": 1, "dead": 2}
    worst = 0
    for gap in sorted(gaps):
        fake.now = gap
        status = m.status("a")
        missed = gap / interval
        expected = "dead" if missed >= dead_after else "suspect" if missed >= suspect_after else "alive"
        assert status == expected
        assert rank[status] >= worst
        worst = rank[status]


# ---- the member list --------------------------------------------------------------------


def test_members_are_sorted_and_report_time_since_heartbeat(members, fake):
    for node in "cab":
        members.heartbeat(node, f"{node}:1")
        fake.now += 1.25
    fake.now = 5.0
    listed = members.members()
    assert [x.id for x in listed] == ["a", "b", "c"]
    assert [x.since_heartbeat for x in listed] == [3.75, 2.5, 5.0]
    assert [x.status for x in listed] == ["alive", "alive", "suspect"]
    assert all(isinstance(x, Member) for x in listed)


def test_member_as_json(members, fake):
    members.heartbeat("a", "h:1")
    fake.now = 1.23456
    assert members.members()[0].as_json() == {
        "id": "a", "address": "h:1", "status": "alive",
        "seconds_since_heartbeat": 1.235, "incarnation": 1,
    }
    with pytest.raises(dataclasses.FrozenInstanceError):
        members.members()[0].status = "dead"  # type: ignore[misc]


def test_ring_members_keep_dead_and_suspect_nodes_but_not_departed_ones(members, fake):
    for node in "abcd":
        members.heartbeat(node, f"{node}:1")
    fake.now = 4.0
    members.heartbeat("a", "a:1")
    members.heartbeat("b", "b:1")  # c and d are now suspect
    members.mark_dead("c")
    members.deregister("d")
    assert statuses(members) == {"a": "alive", "b": "alive", "c": "dead", "d": "left"}
    assert [x.id for x in members.ring_members()] == ["a", "b", "c"]


# ---- health -----------------------------------------------------------------------------


def test_health_levels():
    assert HEALTH_LEVELS == ("healthy", "degraded", "critical")


def test_health_of_three_nodes_with_n3(members):
    for node in "abc":
        members.heartbeat(node, f"{node}:1")
    assert members.health(3) == "healthy"
    members.mark_dead("a")
    assert members.health(3) == "degraded"  # 2 of 3 alive: a majority of N survives
    members.mark_dead("b")
    assert members.health(3) == "critical"  # 1 of 3 alive


def test_suspect_nodes_count_as_not_alive(members, fake):
    for node in "abc":
        members.heartbeat(node, f"{node}:1")
    fake.now = 4.0
    members.heartbeat("a", "a:1")
    assert statuses(members) == {"a": "alive", "b": "suspect", "c": "suspect"}
    assert members.health(3) == "critical"


def test_departed_nodes_do_not_count_against_health(members):
    for node in "abcd":
        members.heartbeat(node, f"{node}:1")
    members.deregister("d")
    assert members.health(3) == "healthy"


def test_an_empty_cluster_is_critical(members):
    assert members.health(3) == "critical"
    members.heartbeat("a", "a:1")
    members.deregister("a")
    assert members.health(3) == "critical"


def test_a_single_alive_node_is_healthy(members):
    members.heartbeat("a", "a:1")
    assert members.health(3) == "healthy"


@settings(deadline=None)
@given(st.integers(1, 7), st.integers(0, 7), st.integers(1, 5))
def test_health_is_majority_of_min_n_and_ring_size_alive(size, down, replication):
    down = min(down, size)
    m = Membership(interval=1.0, clock=lambda: 0.0)
    for i in range(size):
        m.heartbeat(f"n{i}", f"n{i}:1")
    for i in range(down):
        m.mark_dead(f"n{i}")
    alive = size - down
    if alive == size:
        expected = "healthy"
    elif alive >= min(replication, size) // 2 + 1:
        expected = "degraded"
    else:
        expected = "critical"
    assert m.health(replication) == expected
