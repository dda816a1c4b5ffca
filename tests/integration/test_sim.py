"""The simulated runtime: the real services in this process on virtual time. The same seed
twice gives byte-identical histories and injected-event logs; the runtime's verbs do what
the faults expect of them."""

from __future__ import annotations

import time

import pytest

from chaos.catalog import SCENARIOS
from chaos.runtime import open_runtime
from chaos.runtime.base import ClusterSpec
from chaos.scenario import Scenario, run
from chaos.sim.determinism import event_lines, fingerprint, first_divergence, history_lines
from chaos.traffic import Workload

pytestmark = pytest.mark.integration

SECONDS = 6.0  # of traffic: steady state, the fault, recovery


def _run(scenario: Scenario, directory):
    rt = open_runtime("sim", ClusterSpec(**{**_fields(scenario.cluster), "seed": scenario.seed}))
    result = run(scenario, rt, directory=directory, progress=lambda _m: None)
    return result, rt


def _fields(obj) -> dict:
    return {f: getattr(obj, f) for f in obj.__dataclass_fields__}


@pytest.mark.parametrize("name", ["kill-one", "isolate-one"])
def test_the_same_seed_twice_gives_the_same_run_event_for_event(name, tmp_path):
    scenario = SCENARIOS[name].with_duration(SECONDS).but(seed=11)
    first, rt1 = _run(scenario, tmp_path / "a")
    second, rt2 = _run(scenario, tmp_path / "b")
    a, b = fingerprint(first.history, rt1.events), fingerprint(second.history, rt2.events)
    divergence = (first_divergence(history_lines(first.history), history_lines(second.history))
                  or first_divergence(event_lines(rt1.events), event_lines(rt2.events),
                                      what="injected event"))
    assert a == b, divergence
    assert a.operations > 1000 and a.injected >= 2  # traffic ran, the fault was injected
    assert first.valid, first.explain()


def test_another_seed_gives_another_run(tmp_path):
    base = SCENARIOS["noop"].with_duration(3.0)
    one, rt1 = _run(base.but(seed=1), tmp_path / "a")
    two, rt2 = _run(base.but(seed=2), tmp_path / "b")
    assert fingerprint(one.history, rt1.events) != fingerprint(two.history, rt2.events)


def test_a_run_costs_less_wall_time_than_the_virtual_time_it_covers(tmp_path):
    scenario = Scenario(name="quiet", seed=3, workload=Workload(users=1, duration=30.0),
                        steady_state=1.0)
    started = time.perf_counter()
    result, rt = _run(scenario, tmp_path)
    assert result.valid, result.explain()
    assert time.perf_counter() - started < 30.0


def test_kill_pause_restart_and_scale_up_do_what_the_faults_expect():
    rt = open_runtime("sim", ClusterSpec(seed=5))
    try:
        rt.start()
        t = rt.clock()
        rt.kill("node-1")
        assert not rt.is_running("node-1")
        rt.kill("node-1")  # already dead: nothing happens
        rt.restart("node-1")
        assert rt.is_running("node-1") and rt.clock() - t >= rt.boot
        rt.pause("node-2")
        assert rt.is_running("node-2")  # paused counts as running
        rt.resume("node-2")
        rt.resume("node-2")  # not paused: nothing happens
        new = rt.add_node()
        assert new == "node-4" and rt.node_ids() == ["node-1", "node-2", "node-3", "node-4"]
        rt.restart("registry")
        assert [text for _, text in rt.events][:3] == ["kill node-1", "start node-1",
                                                       "pause node-2"]
    finally:
        rt.stop()


def test_a_killed_memory_node_comes_back_empty_and_a_durable_one_does_not():
    for storage, kept in (("durable", True), ("memory", False)):
        rt = open_runtime("sim", ClusterSpec(seed=5, storage=storage))
        try:
            rt.start()
            rt.run(_write(rt))
            before = rt.processes["node-1"].service.store.count()
            rt.kill("node-1")
            rt.restart("node-1")
            after = rt.processes["node-1"].service.store.count()
            assert before > 0 and (after == before if kept else after == 0)
        finally:
            rt.stop()


async def _write(rt):
    from chaos.sim.network import SimTransport
    from system.client import SmartClient
    from system.config import ClientConfig

    client = SmartClient(ClientConfig(registry=rt.endpoints().registry, seed=1),
                         transport=SimTransport(rt.network, "client"), clock=rt.service_clock())
    await client.start()
    for i in range(20):
        await client.put(f"k{i}", "v")
    await client.close()


def test_a_flapping_link_and_a_skewed_clock_run_on_virtual_time():
    """The faults that act on an interval or on a clock use the simulation's own: a flap
    cuts and restores its links every period of virtual time; a clock skew moves the node's
    virtual wall clock."""
    import random

    from chaos.faults import ClockSkew, Flap

    rt = open_runtime("sim", ClusterSpec(seed=5))
    rt.start()
    try:
        flap = Flap("node-2", 0.5).bind(SCENARIOS["flapping"].topology, random.Random(0))
        started = rt.clock()
        flap.apply(rt)
        rt.loop.advance(1.6)
        flap.undo(rt)
        rt.loop.advance(1.0)  # stopped: nothing more
        toggles = [(round(t - started, 2), text.split()[0]) for t, text in rt.events
                   if t >= started and text.split()[0] in ("cut", "restore")]
        assert toggles == [(0.0, "cut"), (0.5, "restore"), (1.0, "cut"), (1.5, "restore"),
                           (1.6, "restore")], toggles
        skew = ClockSkew("node-1", -5000)
        before = rt.processes["node-1"].service.clock()
        skew.apply(rt)
        assert before - rt.processes["node-1"].service.clock() == pytest.approx(5.0, abs=0.01)
        skew.undo(rt)
    finally:
        rt.stop()


def test_the_history_has_the_records_locust_users_write(tmp_path):
    """invoke then ok / fail / info, with the version, attempts and replica requests, and the
    smart client's breaker lane, as chaos.locust.KVUser records them."""
    result, _ = _run(SCENARIOS["kill-one"].with_duration(SECONDS).but(seed=4), tmp_path)
    ops = result.history.client_ops()
    assert {op.type.value for op in ops} >= {"invoke", "ok"}
    writes = [op for op in ops if op.f == "write" and op.type.value == "ok"]
    assert writes and all(op.version and op.attempts and op.requests for op in writes)
    assert all(op.process.startswith("smart-client-sim-") for op in ops)
    lanes = {op.f for op in result.history.events()}
    assert "breakers" in lanes
    assert [op.type.value for op in result.history.nemesis_ops()] == ["invoke", "ok"] * 2


def test_options_of_other_runtimes_are_refused_for_sim():
    from chaos.runtime import RuntimeUnavailable

    with pytest.raises(RuntimeUnavailable, match="toxiproxy_url"):
        open_runtime("sim", ClusterSpec(), toxiproxy_url="http://127.0.0.1:1")
