from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from system.ring import HashRing

pytestmark = pytest.mark.unit

KEYS = [f"key-{i}" for i in range(20_000)]
node_sets = st.sets(st.text("abcdefgh123", min_size=1, max_size=6), min_size=1, max_size=8)


def spread(ring: HashRing) -> float:
    """max/min primary ownership over KEYS."""
    counts = Counter(ring.owner(k) for k in KEYS)
    return max(counts.values()) / min(counts.values())


def test_virtual_nodes_balance_the_ring():
    nodes = [f"node-{i}" for i in range(5)]
    balanced = spread(HashRing(nodes, vnodes=64))
    naive = spread(HashRing(nodes, vnodes=1))
    assert balanced < 1.6
    assert naive > 2 * balanced  # what the virtual nodes buy


@given(node_sets, st.lists(st.text(min_size=1, max_size=20), min_size=1, max_size=30),
       st.integers(1, 5))
@settings(max_examples=60, deadline=None)
def test_preference_lists_are_distinct_deterministic_and_sized(nodes, keys, n):
    a, b = HashRing(nodes, vnodes=16), HashRing(sorted(nodes), vnodes=16)
    for key in keys:
        pref = a.preference_list(key, n)
        assert pref == b.preference_list(key, n)
        assert len(pref) == min(n, len(nodes)) and len(set(pref)) == len(pref)
        assert set(pref) <= nodes


@given(node_sets, st.text("xyz", min_size=1, max_size=4), st.integers(1, 4))
@settings(max_examples=60, deadline=None)
def test_adding_a_node_only_inserts_it_into_preference_lists(nodes, new, n):
    if new in nodes:
        return
    before, after = HashRing(nodes, vnodes=16), HashRing(nodes, vnodes=16).with_node(new)
    for key in KEYS[:300]:
        old, cur = before.preference_list(key, n), after.preference_list(key, n)
        # the new list is the old one with the new node inserted (and the last one pushed out)
        assert [x for x in cur if x != new] == list(old[: len(cur) - (new in cur)])


def test_adding_a_node_moves_about_one_in_n_plus_one_keys_only_to_it():
    nodes = [f"node-{i}" for i in range(4)]
    before = HashRing(nodes)
    after = before.with_node("node-4")
    moved = [k for k in KEYS if before.owner(k) != after.owner(k)]
    assert all(after.owner(k) == "node-4" for k in moved)
    assert 0.12 < len(moved) / len(KEYS) < 0.28  # about 1/5


def test_removing_a_node_moves_only_its_keys():
    ring = HashRing([f"node-{i}" for i in range(5)])
    smaller = ring.without_node("node-2")
    for k in KEYS[:5000]:
        if ring.owner(k) != "node-2":
            assert smaller.owner(k) == ring.owner(k)


def test_ring_values_are_immutable_and_comparable():
    ring = HashRing(["a", "b"])
    bigger = ring.with_node("c")
    assert ring.nodes == {"a", "b"} and bigger.nodes == {"a", "b", "c"}
    assert bigger.without_node("c") == ring and hash(bigger.without_node("c")) == hash(ring)
    assert HashRing().preference_list("k", 3) == () and HashRing().owner("k") is None
    assert abs(sum(bigger.ownership().values()) - 1) < 0.01
    with pytest.raises(ValueError, match="vnodes"):
        HashRing(["a"], vnodes=0)
