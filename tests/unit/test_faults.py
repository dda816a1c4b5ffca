"""Faults: parsed from their written form, bound to a topology (pure plans), applied to a
runtime through the abilities it declares, and undone idempotently back to healthy."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chaos.faults import (
    FAULTS,
    Blackhole,
    ClockSkew,
    FaultError,
    Flap,
    Kill,
    Latency,
    Partition,
    Pause,
    RegistryDown,
    ScaleUp,
    Stop,
    grudges,
    parse_fault,
)
from chaos.runtime.base import ClusterSpec
from chaos.testing import FakeCluster
from chaos.topology import CLIENT, REGISTRY, Link, Topology
from chaos.wait import wait_for

pytestmark = pytest.mark.unit

TOPO = Topology(("node-1", "node-2", "node-3"))
RNG = random.Random(1)


def bound(fault):
    return fault.bind(TOPO, random.Random(1))


def test_every_family_is_registered_by_name():
    assert {"kill", "stop", "pause", "restart", "registry-down", "partition", "latency",
            "bandwidth", "blackhole", "reset-peer", "flap", "scale-up", "clock-skew"} <= set(FAULTS)


@pytest.mark.parametrize("text,expected", [
    ("kill:node-1", Kill("node-1")),
    ("pause:node=node-2", Pause("node-2")),
    ("partition:isolate:node-3:clients=true", Partition("isolate", ("node-3",), True)),
    ("partition:split:node-1+node-2", Partition("split", ("node-1", "node-2"))),
    ("latency:node-1:ms=150:jitter=10:stream=both", Latency("node-1", 150, 10, "in", "both")),
    ("scale-up:2", ScaleUp(2)),
    ("registry-down", RegistryDown()),
    ("clock-skew:node-2:ms=-8000", ClockSkew("node-2", -8000)),
])
def test_written_form(text, expected):
    assert parse_fault(text) == expected


@pytest.mark.parametrize("text,message", [
    ("kil:node-1", "unknown fault 'kil': choose one of bandwidth, blackhole"),
    ("kill", "kill needs node"),
    ("latency:node-1:ms=fast", "bad value 'fast' for ms: expected int"),
    ("latency:node-1:speed=1", "unknown parameter 'speed': choose one of node, ms"),
    ("partition:diamond", "choose one of isolate, split, halves"),
    ("kill:node-1:extra", "too many arguments"),
    ("flap:node-1:period=0", "period must be positive"),
])
def test_bad_written_forms_say_what_to_write(text, message):
    with pytest.raises(FaultError, match=message.replace("(", r"\(")):
        parse_fault(text)


def test_a_fault_names_the_nodes_it_acts_on():
    """What the history records as the target: the node, never the fault's parameters."""
    assert Latency.symmetric("node-1", 100).targets() == ("node-1",)
    assert Partition.isolating("node-3", clients=True).targets() == ("node-3",)
    assert Partition.one_way("node-1", ("node-2", "registry")).targets() == ("node-1",)
    assert Flap("node-2", 1.0, clients=True).targets() == ("node-2",)
    assert RegistryDown().targets() == ()


def test_binding_checks_targets_against_the_topology():
    with pytest.raises(FaultError, match="unknown target 'node-9': choose one of node-1, node-2, "
                                         "node-3, registry"):
        bound(Kill("node-9"))
    with pytest.raises(FaultError, match="unknown target 'node-7'"):
        bound(Partition.isolating("node-7"))
    assert bound(Kill("registry")) == Kill("registry")


@pytest.mark.parametrize("fault,message", [
    (ClockSkew("registry"), "the registry has no clock to skew"),
    (ClockSkew("node-1", 0), "ms=0 is no skew"),
    (ClockSkew("node-1", 86_400_001), "more than a day"),
])
def test_clock_skew_is_checked_before_anything_starts(fault, message):
    with pytest.raises(FaultError, match=message):
        bound(fault)
    assert bound(ClockSkew("node-1", 1)).resources() == frozenset({"clock:node-1"})


# ---- partition plans are pure functions of the links ---------------------------------------
NODES = st.lists(st.sampled_from([f"n{i}" for i in range(1, 8)]), min_size=3, max_size=7,
                 unique=True)


@given(NODES, st.data())
def test_isolate_cuts_exactly_the_links_of_the_node(nodes, data):
    links = Topology(tuple(nodes)).links
    node = data.draw(st.sampled_from(nodes))
    clients = data.draw(st.booleans())
    cut = grudges.isolate(node, links, clients=clients)
    assert all(node in (link.src, link.dst) for link in cut)
    assert (Link(CLIENT, node) in cut) == clients
    assert {Link(node, REGISTRY), Link(REGISTRY, node)} <= cut
    assert all(Link(node, other) in cut and Link(other, node) in cut
               for other in nodes if other != node)


@given(NODES, st.integers(0, 2**32), st.booleans())
def test_halves_cut_only_between_sides_and_keep_the_registry_with_the_majority(nodes, seed,
                                                                              clients):
    """With ``clients`` the clients stay with the majority too: they lose the minority."""
    links = Topology(tuple(nodes)).links
    cut = grudges.halves(nodes, links, random.Random(seed), clients=clients)
    minority = {n for n in nodes if Link(n, REGISTRY) in cut}
    assert 1 <= len(minority) <= len(nodes) // 2
    side = {n: n in minority for n in [*nodes, REGISTRY, CLIENT]}
    crossing = {link for link in links if (clients or CLIENT not in (link.src, link.dst))
                and side[link.src] != side[link.dst]}
    assert cut == crossing
    assert grudges.halves(nodes, links, random.Random(seed), clients=clients) == cut  # seeded


@given(st.integers(3, 9))
def test_majorities_ring_every_node_hears_a_different_majority(n):
    nodes = [f"n{i}" for i in range(n)]
    cut = grudges.majorities_ring(nodes, Topology(tuple(nodes)).links)
    heard = {dst: frozenset(src for src in nodes if Link(src, dst) not in cut) for dst in nodes}
    majority = n // 2 + 1
    assert all(len(h) >= majority for h in heard.values())
    assert len(set(heard.values())) == n


def test_one_way_cuts_one_direction_only():
    cut = bound(Partition.one_way("node-1", ("node-2", "node-3"))).cut
    assert cut == {Link("node-1", "node-2"), Link("node-1", "node-3")}


def test_bridge_keeps_the_middle_node_connected():
    cut = bound(Partition("bridge")).cut
    assert cut == {Link("node-1", "node-3"), Link("node-3", "node-1")}


def test_a_partition_that_cuts_nothing_is_refused():
    with pytest.raises(FaultError, match="cuts no link"):
        Partition("one-way", ("node-1",), to=("node-1",)).bind(TOPO, RNG)


# ---- applied through the runtime's abilities, undone back to healthy -------------------------
def test_kill_undo_restarts_once_and_is_safe_to_repeat():
    rt = FakeCluster()
    fault = Kill("node-1")
    fault.apply(rt)
    fault.undo(rt)
    fault.undo(rt)  # a second undo is not a second fault
    assert rt.calls == [("kill", "node-1"), ("restart", "node-1")] and rt.healthy
    Kill("node-2").undo(FakeCluster())  # undo without apply: nothing to do
    assert rt.healthy


def test_undo_of_a_paused_then_killed_node_brings_it_back():
    rt = FakeCluster()
    Pause("node-1").apply(rt)
    Stop("node-1").apply(rt)
    Stop("node-1").undo(rt)
    assert rt.healthy


def test_partition_and_toxics_apply_to_the_mesh_and_undo_cleanly():
    rt = FakeCluster()
    part = bound(Partition.isolating("node-2"))
    slow = bound(Latency.symmetric("node-1", 100))
    hole = bound(Blackhole("node-3"))
    with part.active(rt), slow.active(rt), hole.active(rt):
        assert rt.proxies.disabled == part.cut
        assert all(sum(t["type"] == "latency" for t in rt.proxies.toxics[link].values()) == 2
                   for link in slow.via)  # one toxic per stream
        assert all(any(t["type"] == "timeout" for t in rt.proxies.toxics[link].values())
                   for link in hole.via)
    assert rt.healthy
    slow.undo(rt)  # again: nothing left to remove, no error
    assert rt.healthy


def test_two_latencies_on_one_link_are_two_toxics():
    rt = FakeCluster()
    a, b = bound(Latency("node-1", 150)), bound(Latency("node-1", 151))
    a.apply(rt)
    b.apply(rt)
    assert len(rt.proxies.toxics[Link("node-2", "node-1")]) == 2


def test_a_network_fault_without_a_mesh_says_so_instead_of_cutting_nothing():
    rt = FakeCluster(mesh=False)
    with pytest.raises(FaultError, match="needs the link mesh"):
        bound(Partition.isolating("node-1")).apply(rt)
    with pytest.raises(FaultError, match="needs the link mesh"):
        bound(Latency("node-1")).apply(rt)


def test_an_unbound_partition_refuses_to_guess():
    with pytest.raises(FaultError, match="bind it"):
        Partition.isolating("node-1").apply(FakeCluster())


def test_a_fault_needing_an_ability_the_runtime_lacks_says_so():
    class CannotKill:
        name = "readonly"

    with pytest.raises(FaultError, match="kill needs a runtime that can kill services; "
                                         "readonly cannot"):
        Kill("node-1").apply(CannotKill())


def test_flap_cuts_and_restores_until_undone():
    rt = FakeCluster()
    flap = bound(Flap("node-2", period=0.01))
    flap.apply(rt)
    wait_for(lambda: sum(1 for c in rt.proxies.calls if c[0] == "enable") >= 2, timeout=5,
             description="the link to flap twice")
    flap.undo(rt)
    calls = len(rt.proxies.calls)
    assert rt.healthy
    flap.undo(rt)
    assert len(rt.proxies.calls) == calls + 1 and rt.healthy  # stopped: only the final enable


def test_scale_up_adds_nodes_and_has_nothing_to_undo():
    rt = FakeCluster(ClusterSpec(nodes=3))
    with ScaleUp(2).active(rt):
        pass
    assert rt.node_ids() == ["node-1", "node-2", "node-3", "node-4", "node-5"]
