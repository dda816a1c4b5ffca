"""system/ring.py: preference lists, balance, minimal movement and immutability."""

from __future__ import annotations

import hashlib
from collections import Counter

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from system.ring import DEFAULT_VNODES, HashRing, key_hash

pytestmark = pytest.mark.unit

KEYS = [f"key-{i}" for i in range(20_000)]
FIVE = [f"node-{i}" for i in range(5)]

node_names = st.text("abcdefgh123#-", min_size=1, max_size=6)
node_sets = st.sets(node_names, min_size=1, max_size=8)
keys = st.lists(st.text(max_size=20), min_size=1, max_size=25)


def primary_shares(ring: HashRing, keys=KEYS) -> dict[str, float]:
    counts = Counter(ring.owner(k) for k in keys)
    return {node: counts.get(node, 0) / len(keys) for node in ring.nodes}


def worst_deviation(ring: HashRing) -> float:
    """The largest relative distance of a node's primary share from the fair 1/n."""
    fair = 1 / len(ring)
    return max(abs(share - fair) / fair for share in primary_shares(ring).values())


# ---- hashing and construction -----------------------------------------------------------


def test_key_hash_is_a_stable_64_bit_position():
    # pinned: a change here would move every key of every existing cluster
    assert key_hash("k") == key_hash("k")
    assert key_hash("") != key_hash("k")
    assert all(0 <= key_hash(f"x{i}") < 2**64 for i in range(100))
    assert key_hash("node-0#0") == int.from_bytes(
        hashlib.blake2b(b"node-0#0", digest_size=8).digest(), "big")


@pytest.mark.parametrize("vnodes", [0, -1])
def test_fewer_than_one_vnode_is_rejected_with_the_value(vnodes):
    with pytest.raises(ValueError, match=rf"vnodes must be at least 1, got {vnodes}"):
        HashRing(["a"], vnodes=vnodes)


def test_defaults_and_accessors():
    ring = HashRing(["b", "a", "a"])
    assert ring.vnodes == DEFAULT_VNODES == 64
    assert ring.nodes == frozenset({"a", "b"}) and len(ring) == 2
    assert repr(ring) == "HashRing(['a', 'b'], vnodes=64)"
    assert len(HashRing(["a", "b"], vnodes=7)._tokens) == 14  # one token per vnode


def test_an_empty_ring_has_no_owner():
    ring = HashRing()
    assert len(ring) == 0 and ring.preference_list("k", 3) == () and ring.owner("k") is None
    assert ring.ownership() == {}


@pytest.mark.parametrize("n", [0, -2])
def test_a_non_positive_preference_list_is_empty(n):
    assert HashRing(FIVE).preference_list("k", n) == ()


# ---- preference lists -------------------------------------------------------------------


@given(node_sets, keys, st.integers(1, 10), st.integers(1, 24))
@settings(max_examples=60, deadline=None)
def test_preference_lists_are_distinct_sized_and_deterministic(nodes, ks, n, vnodes):
    a = HashRing(nodes, vnodes=vnodes)
    b = HashRing(sorted(nodes, reverse=True), vnodes=vnodes)  # built in another order
    for key in ks:
        pref = a.preference_list(key, n)
        assert pref == b.preference_list(key, n)
        assert len(pref) == min(n, len(nodes))
        assert len(set(pref)) == len(pref) and set(pref) <= nodes
        assert a.owner(key) == pref[0]
        # a shorter list is a prefix of a longer one: replicas are added, never reshuffled
        assert a.preference_list(key, n + 1)[: len(pref)] == pref


def test_asking_for_more_replicas_than_nodes_gives_every_node():
    ring = HashRing(["a", "b", "c"])
    for key in KEYS[:200]:
        assert sorted(ring.preference_list(key, 5)) == ["a", "b", "c"]


def test_preference_list_walks_clockwise_from_the_key():
    """The primary is the node of the first token strictly after the key's hash (wrapping)."""
    ring = HashRing(FIVE, vnodes=8)
    tokens = sorted((key_hash(f"{node}#{i}"), node) for node in FIVE for i in range(8))
    for key in KEYS[:500]:
        h = key_hash(key)
        expected = next((node for t, node in tokens if t > h), tokens[0][1])
        assert ring.owner(key) == expected


# ---- balance: what the virtual nodes buy ------------------------------------------------


def test_64_vnodes_give_every_node_about_a_fair_share_of_keys():
    shares = primary_shares(HashRing(FIVE, vnodes=64))
    assert sum(shares.values()) == pytest.approx(1)
    for node, share in shares.items():
        assert share == pytest.approx(1 / 5, rel=0.25), node


def test_one_vnode_per_node_is_much_worse_balanced():
    with_vnodes = worst_deviation(HashRing(FIVE, vnodes=64))
    without = worst_deviation(HashRing(FIVE, vnodes=1))
    assert with_vnodes < 0.25
    assert without > 0.5  # some node has at least half again (or half less) than its share
    assert without > 3 * with_vnodes


@pytest.mark.parametrize("prefix", ["node-", "n", "replica_", "10.0.0."])
def test_balance_improves_with_vnodes_whatever_the_node_names(prefix):
    nodes = [f"{prefix}{i}" for i in range(5)]
    balanced = worst_deviation(HashRing(nodes, vnodes=64))
    assert balanced < 0.35
    assert balanced < worst_deviation(HashRing(nodes, vnodes=1))


def test_ownership_reports_the_hash_space_share_that_keys_actually_see():
    ring = HashRing(FIVE)
    owned, seen = ring.ownership(), primary_shares(ring)
    assert list(owned) == sorted(FIVE)
    assert sum(owned.values()) == pytest.approx(1, abs=1e-3)
    for node in FIVE:
        assert owned[node] == pytest.approx(seen[node], abs=0.02)
    assert HashRing(["solo"]).ownership() == {"solo": 1.0}


# ---- minimal movement -------------------------------------------------------------------


@pytest.mark.parametrize("n", [3, 4, 5, 8])
def test_adding_a_node_moves_about_one_in_n_plus_one_keys_and_only_to_it(n):
    before = HashRing([f"node-{i}" for i in range(n)])
    after = before.with_node("newcomer")
    moved = [k for k in KEYS if before.owner(k) != after.owner(k)]
    assert all(after.owner(k) == "newcomer" for k in moved)  # no moves between old nodes
    assert len(moved) / len(KEYS) == pytest.approx(1 / (n + 1), rel=0.3)


def test_removing_a_node_moves_only_its_keys():
    ring = HashRing(FIVE)
    smaller = ring.without_node("node-2")
    moved = 0
    for k in KEYS:
        if ring.owner(k) == "node-2":
            moved += 1
            assert smaller.owner(k) != "node-2"
        else:
            assert smaller.owner(k) == ring.owner(k)
    assert moved / len(KEYS) == pytest.approx(1 / 5, rel=0.3)


@given(node_sets, node_names, st.integers(1, 5), keys)
@settings(max_examples=60, deadline=None)
def test_adding_a_node_only_inserts_it_into_preference_lists(nodes, new, n, ks):
    assume(new not in nodes)
    before = HashRing(nodes, vnodes=8)
    after = before.with_node(new)
    for key in ks + KEYS[:20]:
        old, cur = before.preference_list(key, n), after.preference_list(key, n)
        # the new list is the old one with the newcomer inserted somewhere (pushing the
        # last one out when the list was already full); the old nodes keep their order
        kept = [x for x in cur if x != new]
        assert kept == list(old[: len(kept)])
        assert len(cur) == min(n, len(nodes) + 1)
        if new not in cur:
            assert cur == old


@given(node_sets, st.integers(1, 5), keys)
@settings(max_examples=60, deadline=None)
def test_removing_a_node_only_deletes_it_from_preference_lists(nodes, n, ks):
    gone = sorted(nodes)[0]
    before = HashRing(nodes, vnodes=8)
    after = before.without_node(gone)
    for key in ks:
        old, cur = before.preference_list(key, n), after.preference_list(key, n)
        assert gone not in cur
        survivors = [x for x in old if x != gone]
        assert list(cur[: len(survivors)]) == survivors  # order kept, a successor appended
        assert len(cur) == min(n, len(nodes) - 1)


# ---- immutable values -------------------------------------------------------------------


def test_with_and_without_node_return_new_rings_and_leave_the_original_alone():
    ring = HashRing(["a", "b"], vnodes=16)
    owners = [ring.owner(k) for k in KEYS[:300]]
    bigger = ring.with_node("c")
    smaller = ring.without_node("a")
    assert ring.nodes == {"a", "b"} and [ring.owner(k) for k in KEYS[:300]] == owners
    assert bigger.nodes == {"a", "b", "c"} and smaller.nodes == {"b"}
    assert bigger.vnodes == smaller.vnodes == 16
    assert bigger is not ring and smaller is not ring


def test_rings_are_equal_and_hash_equal_by_node_set_and_vnodes():
    ring = HashRing(["a", "b"])
    assert ring.with_node("c").without_node("c") == ring
    assert hash(ring.with_node("c").without_node("c")) == hash(ring)
    assert ring.with_node("a") == ring  # adding a present node changes nothing
    assert ring.without_node("zz") == ring  # removing an absent one neither
    assert ring != HashRing(["a", "b"], vnodes=8)
    assert ring != HashRing(["a"]) and ring != {"a", "b"}
    assert len({ring, HashRing(["b", "a"]), HashRing(["a"])}) == 2

