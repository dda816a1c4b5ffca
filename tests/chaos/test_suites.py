"""The chaos suites: each named scenario under Locust load with its thresholds, on the runtime
chosen with ``--runtime``, and for each threshold a weakened cluster it must catch."""

from __future__ import annotations

import dataclasses

import pytest

import chaos
from chaos.catalog import SCENARIOS
from chaos.checkers import LatencyPerWindow, Linearizable
from chaos.history import OpType

pytestmark = pytest.mark.chaos

SECONDS = 10.0  # of traffic per scenario: steady state, the faults, recovery


def named(name: str, **changes) -> chaos.Scenario:
    return SCENARIOS[name].with_duration(SECONDS).but(**changes)


def quorum(**settings) -> chaos.ClusterSpec:
    spec = chaos.ClusterSpec()
    fields = {f.name: getattr(spec.settings, f.name)
              for f in dataclasses.fields(chaos.ClusterSettings)}
    return dataclasses.replace(spec, settings=chaos.ClusterSettings(**(fields | settings)))


def failed(result, f: str) -> list:
    return [c for i, c in result.history.completions()
            if i.is_client and i.f == f and c.type is not OpType.OK]


def part(result, name: str) -> chaos.Verdict:
    (verdict,) = [p for p in result.verdict.parts if p.name == name]
    return verdict


def test_one_node_killed_under_load_every_operation_succeeds(chaos_run):
    """Availability, durability, and catch-up: the restarted node gets what it missed."""
    result = chaos_run(named("kill-one"))
    assert result.valid, result.explain()
    assert part(result, "convergence").evidence["keys"] > 0


def test_a_killed_node_never_catches_up_without_repair(chaos_run):
    """The control: with hinted handoff and read repair off, the restarted node keeps the
    holes of its downtime, and convergence must see them."""
    result = chaos_run(named("kill-one", cluster=quorum(repair="off")))
    verdict = part(result, "convergence")
    assert verdict.valid is chaos.Validity.INVALID, result.explain()
    assert all("node-1" in d["behind"] or d["missing"] for d in verdict.evidence["divergent"].values())


def test_one_node_killed_with_w3_is_caught(chaos_run):
    """The control: W=3 cannot write while an owner is down."""
    result = chaos_run(named("kill-one", cluster=quorum(w=3)))
    assert result.verdict.valid is chaos.Validity.INVALID, result.explain()
    assert failed(result, "write")


def test_two_nodes_killed_writes_fail_with_the_counts_and_nothing_acknowledged_is_lost(chaos_run):
    result = chaos_run(named("kill-two"))
    assert result.valid, result.explain()
    failures = failed(result, "write")
    assert failures, "with two of three owners down, W=2 writes must fail"
    assert any("1 of 2" in (c.error or "") or "acks" in (c.error or "") for c in failures), \
        [c.error for c in failures[:5]]


def test_retries_without_breakers_multiply_the_load_on_a_failing_cluster(chaos_run):
    """The control for retry amplification: with two owners down every write retries; a
    client whose breakers never open sends every attempt to every owner (measured 2.9x the
    healthy requests per operation, against 1.2x with breakers), and the checker must see it."""
    sc = named("kill-two")
    result = chaos_run(sc.but(workload=dataclasses.replace(sc.workload, breaker_threshold=10**6)))
    amplification = part(result, "amplification")
    assert amplification.valid is chaos.Validity.INVALID, result.explain()
    assert max(w["attempts_per_op"] for w in amplification.evidence["windows"]) > 1
    assert part(result, "durability").ok


@pytest.mark.parametrize("storage,expected", [("durable", "valid"), ("memory", "invalid")])
def test_full_outage_and_recovery_keeps_acknowledged_writes_only_when_durable(
        chaos_run, storage, expected):
    result = chaos_run(named("full-outage",
                             cluster=dataclasses.replace(chaos.ClusterSpec(), storage=storage)))
    assert result.verdict.valid == expected, result.explain()


@pytest.mark.parametrize("w,fails_over", [(2, True), (3, False)])
def test_a_paused_node_is_failed_over_within_the_stated_time(chaos_run, w, fails_over):
    """Breakers open, traffic fails over within the scenario's 1.5 s, and the resumed node
    gets no herd. The control: W=3 needs the frozen owner, so its keys stall for the whole
    pause, and the failover checker must catch it."""
    result = chaos_run(named("pause-one", cluster=quorum(w=w)))
    failover = part(result, "failover")
    if fails_over:
        assert result.valid, result.explain()
    else:
        assert failover.valid is chaos.Validity.INVALID, result.explain()
        assert failover.evidence["faults"][0]["failed"] > 0


@pytest.mark.parametrize("w,expected", [(2, "valid"), (3, "invalid")])
@pytest.mark.parametrize("name", ["isolate-one", "split", "flapping", "blackhole"])
def test_network_faults_lose_nothing_and_keep_serving(chaos_run, name, w, expected):
    """Each cuts the clients off one owner of every key: W=2 goes on with the other two,
    the control W=3 cannot, and availability must catch it."""
    result = chaos_run(named(name, cluster=quorum(w=w)))
    assert result.verdict.valid == expected, result.explain()
    if expected == "invalid":
        assert failed(result, "write") and part(result, "durability").ok  # nothing lost, though


@pytest.mark.parametrize("wr,expected", [(2, "valid"), (1, "invalid")])
def test_no_read_is_stale_with_overlapping_quorums_even_without_repair(chaos_run, wr, expected):
    """node-3 is cut off, then comes back without hinted handoff or read repair, holding
    old copies. R+W>N still reads the newest; the control W=1/R=1 reads node-3's old copies,
    and both the stale-read and the linearizability checker must catch it."""
    result = chaos_run(named("isolate-one", cluster=quorum(w=wr, r=wr, repair="off"),
                             checkers=(chaos.StaleReads(), Linearizable())))
    assert result.verdict.valid == expected, result.explain()
    assert part(result, "stale-reads").valid == part(result, "linearizable").valid == expected


def test_a_resumed_node_flooded_with_everything_it_missed_is_caught(chaos_run):
    """The control for the herd: the peers hand node-2 back the writes it missed all at
    once (``handoff_rate=0``) instead of paced with jitter, and the herd checker must see the
    burst (measured 12x-19x the steady mean against 2.4x paced)."""
    result = chaos_run(named("pause-one", cluster=quorum(handoff_rate=0.0)))
    herd = part(result, "herd")
    assert herd.valid is chaos.Validity.INVALID, result.explain()
    assert herd.evidence["windows"][0]["target"] == "node-2"
    assert part(result, "durability").ok and part(result, "availability").ok  # only the herd


def test_a_client_whose_breakers_never_open_is_caught(chaos_run):
    """The control for the breakers: a threshold no pause reaches. The checker must see that
    no breaker opened while node-2 was frozen."""
    sc = named("pause-one")
    result = chaos_run(sc.but(workload=dataclasses.replace(sc.workload, breaker_threshold=10**6)))
    breakers = part(result, "breakers")
    assert breakers.valid is chaos.Validity.INVALID, result.explain()
    assert "no breaker for node-2 opened" in breakers.summary


@pytest.mark.parametrize("versions,expected", [("hlc", "valid"), ("wallclock", "invalid")])
def test_a_node_whose_clock_runs_behind_loses_no_update_with_hybrid_clocks(chaos_run, versions,
                                                                          expected):
    """Every node coordinates writes of shared keys; node-2's clock runs 5 s behind. Hybrid
    logical clocks stamp past the replicas' newer versions; the control, wall-clock
    versions, lets node-2's later writes lose to earlier ones, and the stale-read and
    linearizability checkers must catch it."""
    result = chaos_run(named("clock-skew", cluster=quorum(versions=versions)))
    assert result.verdict.valid == expected, result.explain()
    assert part(result, "linearizable").valid == expected, result.explain()


@pytest.mark.parametrize("gateways,expected", [(None, "valid"), ("nodes", "invalid")])
def test_a_one_way_cut_from_a_replica_costs_only_what_it_coordinates(chaos_run, gateways, expected):
    """node-1 cannot reach its peers or the registry, which marks it dead; they and the
    clients still reach it, and the ring keeps a node until it leaves, so no key moves: the
    smart client, which coordinates its own quorums, loses nothing (W=3 would not either: it
    still reaches node-1). The control sends the traffic through every node's gateway, so a
    third of it is coordinated by node-1, which cannot reach the other owners: availability
    must catch it (measured 84% of operations succeeded)."""
    sc = named("one-way")
    if gateways:
        sc = sc.but(workload=dataclasses.replace(sc.workload, client="gateway", gateways=gateways))
    result = chaos_run(sc)
    assert result.verdict.valid == expected, result.explain()
    if expected == "invalid":
        assert not part(result, "availability").ok and part(result, "durability").ok


@pytest.mark.parametrize("w,expected", [(2, "valid"), (3, "invalid")])
def test_a_slow_replica_does_not_slow_quorum_writes_unless_w_waits_for_it(chaos_run, w, expected):
    # 1.2x the healthy window's p99, plus 10 ms: the scheduling noise of a busy 2-core machine
    result = chaos_run(named("slow-replica", cluster=quorum(w=w),
                             checkers=(LatencyPerWindow(max_ratio=1.2, slack_ms=10),)))
    assert result.verdict.valid == expected, result.explain()


@pytest.mark.parametrize("client,expected", [("smart", "valid"), ("gateway", "invalid")])
def test_registry_death_smart_clients_go_on_from_their_cache(chaos_run, client, expected):
    """The control: gateway clients go through the registry, so they must fail."""
    sc = named("registry-down")
    result = chaos_run(sc.but(workload=dataclasses.replace(sc.workload, client=client)))
    assert result.verdict.valid == expected, result.explain()


def settled_before_join(result) -> tuple[set[str], set[str]]:
    """Keys whose every write completed before the new node joined, and those of them the
    new node holds once the run has quieted: it can only have them by rebalancing."""
    (join,) = [op.time for op in result.history.nemesis_ops() if op.f == "scale-up"][:1]
    last: dict[str, float] = {}
    for inv, comp in result.history.completions():
        if inv.is_client and inv.f == "write" and comp.type is not OpType.FAIL:
            last[inv.key] = max(last.get(inv.key, 0.0), comp.time)
    settled = {k for k, t in last.items() if t < join}
    new = set(result.final.replicas) - set(result.scenario.cluster.node_ids())
    (node,) = new
    return settled, settled & set(result.final.replicas[node])


MOVED_SHARE = 0.5  # of the 3/4 of settled keys a fourth node owns with N=3


@pytest.mark.parametrize("repair,moves", [("on", True), ("off", False)])
def test_scale_up_under_load_fails_nothing_and_moves_keys(chaos_run, repair, moves):
    """The control: without hinted handoff, nothing is handed to the new node."""
    result = chaos_run(named("scale-up", cluster=quorum(repair=repair)))
    settled, moved = settled_before_join(result)
    assert settled, "no key was written only before the join: lengthen the steady state"
    if moves:
        assert result.valid, result.explain()
        assert len(moved) >= MOVED_SHARE * 0.75 * len(settled), (len(moved), len(settled))
    else:
        assert not moved, f"{len(moved)} keys reached the new node without handoff"
