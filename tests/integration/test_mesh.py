"""The link mesh of a runtime (``rt.proxies``): every link has its own proxy, and cutting or
slowing links with the fault values (through the ``nemesis`` fixture) acts on the cluster the
same way on the local and the Docker runtime."""

from __future__ import annotations

import statistics
import time

import httpx
import pytest

from chaos.faults import Latency, Partition
from chaos.runtime.base import ClusterSpec
from chaos.wait import wait_for
from system.config import ClusterSettings

from .helpers import client_for, node_stats, wait_node_has

pytestmark = pytest.mark.integration


def _status(rt) -> dict[str, str]:
    data = httpx.get(f"{rt.endpoints().registry_direct}/cluster-status", timeout=2).json()
    return {n["id"]: n["status"] for n in data["nodes"]}


def test_every_link_has_its_own_proxy(make_cluster):
    rt = make_cluster()
    names = {link.name for link in rt.proxies.links()}
    assert "client__registry" in names
    for n in rt.node_ids():
        assert {f"client__{n}", f"registry__{n}", f"{n}__registry"} <= names
        assert all(f"{m}__{n}" in names for m in rt.node_ids() if m != n)
    assert set(rt.proxies.toxiproxy.proxies()) == names
    assert len(names) == 1 + 3 * 3 + 3 * 2


def test_isolated_node_is_routed_around_then_catches_up(cluster, nemesis):
    with client_for(cluster) as c:
        written = {}
        cut = nemesis.apply(Partition.isolating("node-3", clients=True))
        assert {link for link in cut.cut if "node-3" in (link.src, link.dst)} == cut.cut
        for i in range(100):  # no request may fail while node-3 is cut off
            c.put(f"p{i}", f"v{i}")
            written[f"p{i}"] = f"v{i}"
        wait_for(lambda: _status(cluster)["node-3"] in ("suspect", "dead"), timeout=15,
                 description="the registry to stop hearing node-3")
        assert node_stats(cluster, "node-3")["keys"] < 100  # it really was cut off
        nemesis.undo(cut)
        wait_for(lambda: _status(cluster)["node-3"] == "alive", timeout=15,
                 description="node-3 alive again after the heal")
        wait_node_has(cluster, "node-3", written)  # hints delivered through the healed links


def _quorum(w: int) -> ClusterSpec:
    return ClusterSpec(settings=ClusterSettings(w=w, r=1, heartbeat_interval=0.5))


@pytest.mark.parametrize("cluster,fast", [(_quorum(2), True), (_quorum(3), False)],
                         ids=["w2", "w3"], indirect=["cluster"])
def test_write_does_not_wait_for_a_slow_owner_unless_w_needs_it(cluster, nemesis, fast):
    """W=2 returns before the slow owner answers; W=3 (the control) must wait for it."""
    with client_for(cluster, request_timeout=2.0) as c:
        c.put("warm", "up")
        with nemesis:
            nemesis.apply(Latency("node-1", ms=300))  # every answer from node-1
            took = []
            for i in range(15):
                t = time.perf_counter()
                c.put(f"s{i}", "v")
                took.append(time.perf_counter() - t)
        median = statistics.median(took)
        if fast:
            assert median < 0.15, f"W=2 waited for the slow owner: median {median:.3f}s"
        else:
            assert median >= 0.29, f"W=3 cannot be faster than its slowest owner: {median:.3f}s"
