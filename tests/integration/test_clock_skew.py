"""Clock skew on one node of a running cluster, through the fault and the node's gateway.

Every node coordinates writes sent to its ``/gateway/data`` with versions from its own
clock. A write that ended before another began must win: with hybrid logical clocks it does
even from a node a minute behind; with ``--versions wallclock`` it is lost, and the
durability checker says so.
"""

from __future__ import annotations

import random

import httpx
import pytest

from chaos import History, NoLostWrites, Validity
from chaos.checkers import Linearizable
from chaos.faults import ClockSkew
from chaos.pytest_plugin import spec_from
from chaos.topology import Topology
from chaos.wait import wait_for

pytestmark = pytest.mark.integration


def _write(node_url: str, key: str, value: str, history: History, process: str) -> dict:
    history.add(process, "invoke", "write", key, value)
    r = httpx.post(f"{node_url}/gateway/data", json={"key": key, "value": value}, timeout=5)
    assert r.status_code == 200, r.text
    history.add(process, "ok", "write", key, value, version=str(r.json()["version"]))
    return r.json()


@pytest.mark.parametrize("versions", ["hlc", "wallclock"])
def test_a_node_whose_clock_runs_behind_loses_updates_only_with_wall_clocks(make_cluster, versions):
    rt = make_cluster(spec_from({"versions": versions}, 0))
    on_time, behind = rt.node_url("node-1"), rt.node_url("node-2")
    wait_for(lambda: all(httpx.get(f"{u}/gateway/data/probe", timeout=2).status_code == 404
                         for u in (on_time, behind)), timeout=10, description="node gateways")
    fault = ClockSkew("node-2", ms=-60_000).bind(Topology(tuple(rt.node_ids())), random.Random(0))
    history = History()
    with fault.active(rt):
        assert httpx.get(f"{behind}/internal/clock", timeout=2).json()["skew_ms"] == -60_000
        for i in range(5):
            _write(on_time, f"k{i}", f"first-{i}", history, "p1")
            answer = _write(behind, f"k{i}", f"second-{i}", history, "p2")
            assert answer["coordinator"] == "node-2"
    assert httpx.get(f"{behind}/internal/clock", timeout=2).json()["skew_ms"] == 0  # healed
    gateway = rt.endpoints().registry
    final = {}
    for i in range(5):
        history.add("p3", "invoke", "read", f"k{i}")
        final[f"k{i}"] = httpx.get(f"{gateway}/data/k{i}", timeout=5).json()["value"]
        history.add("p3", "ok", "read", f"k{i}", final[f"k{i}"])
    lost = NoLostWrites().check(history, final)
    order = Linearizable().check(history, final)
    if versions == "hlc":
        assert final == {f"k{i}": f"second-{i}" for i in range(5)}
        assert lost.valid is Validity.VALID, lost.explain()
        assert order.valid is Validity.VALID, order.explain()
    else:  # the weakened mode: the later writes lose to the earlier, and the checkers see it
        assert final == {f"k{i}": f"first-{i}" for i in range(5)}
        assert lost.valid is Validity.INVALID and len(lost.evidence["lost"]) == 5
        assert order.valid is Validity.INVALID, order.explain()
        assert "first-" in order.summary, order.summary


def test_the_clock_endpoint_refuses_bad_input_and_keeps_the_skew(make_cluster):
    rt = make_cluster(spec_from({"nodes": 3}, 0))
    url = f"{rt.node_url('node-1')}/internal/clock"
    assert httpx.post(url, json={"skew_ms": 250}, timeout=2).status_code == 200
    for body in ({"skew_ms": "5"}, {"skew_ms": 1.5}, {"skew_ms": 10**12}, {}, [1]):
        r = httpx.post(url, json=body, timeout=2)
        assert r.status_code == 400 and ("skew" in r.text or "object" in r.text), r.text
    r = httpx.post(url, content=b"{not json", timeout=2)
    assert r.status_code == 400, r.text
    assert httpx.get(url, timeout=2).json()["skew_ms"] == 250
