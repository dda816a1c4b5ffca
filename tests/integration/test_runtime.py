"""Runtime behaviour a fault relies on: the verbs are safe to repeat, ``is_running`` tells the
truth, and a run on an external Toxiproxy leaves that server as it found it."""

from __future__ import annotations

import httpx
import pytest

from chaos.proxy.process import ProxyServerProcess
from chaos.runtime import open_runtime
from chaos.runtime.base import ClusterSpec
from chaos.wait import wait_for

from .helpers import client_for

pytestmark = pytest.mark.integration


@pytest.mark.cluster(nodes=5)
def test_a_started_cluster_has_every_node_knowing_every_node(cluster):
    """Started means each node's gateway knows its peers: the first node to register got a
    member list of itself, and traffic that starts at once through a node gateway that does
    not know a key's owners fails (seen as 5% failed operations in the clock-skew suite's
    first second before the runtimes waited for this)."""
    everyone = set(cluster.node_ids())
    for node in everyone:
        stats = httpx.get(f"{cluster.node_url(node)}/stats", timeout=2).json()
        assert set(stats["members"]) == everyone, (node, stats["members"])


def test_kill_resume_and_restart_are_safe_to_repeat(make_cluster):
    rt = make_cluster()
    assert rt.is_running("node-1")
    rt.resume("node-1")  # not paused: nothing happens
    assert rt.is_running("node-1")
    rt.kill("node-1")
    assert not rt.is_running("node-1")
    rt.kill("node-1")  # already dead: nothing happens
    rt.restart("node-1")
    assert rt.is_running("node-1")
    rt.pause("node-2")
    assert rt.is_running("node-2")  # paused counts as running
    rt.pause("node-2")
    rt.resume("node-2")
    rt.resume("node-2")
    httpx.get(f"{rt.node_url('node-2')}/health", timeout=2).raise_for_status()
    before = rt.service_log("node-3")
    rt.restart("node-3")  # running: stopped first, then started on the same data
    assert rt.is_running("node-3") and len(rt.service_log("node-3")) > len(before)
    with client_for(rt) as c:
        c.put("after", "restarts")
        assert c.get("after").value == "restarts"
    with pytest.raises(KeyError, match="unknown service"):
        rt.kill("node-99")


def test_a_run_on_an_external_toxiproxy_deletes_its_proxies(tmp_path):
    with ProxyServerProcess(seed=1) as server, server.client() as toxiproxy:
        for run in range(2):  # the second run would meet 409 "proxy already exists"
            rt = open_runtime("local", ClusterSpec(nodes=2, seed=run), workdir=str(tmp_path / f"r{run}"),
                              toxiproxy_url=server.url)
            try:
                ep = rt.start()
                assert ep.proxy_api == server.url
                assert set(toxiproxy.proxies()) == {link.name for link in rt.proxies.links()}
                with client_for(rt) as c:
                    c.put(f"k{run}", "v")
            finally:
                rt.stop()
            assert toxiproxy.proxies() == {}
            rt.stop()  # idempotent


def test_scale_up_through_the_registry_goes_through_the_launch_agent(make_cluster):
    rt = make_cluster()
    ep = rt.endpoints()
    r = httpx.post(f"{ep.registry_direct}/scale-up", timeout=10,
                   headers={"authorization": f"Bearer {ep.admin_token}"})
    assert r.status_code in (201, 202), r.text
    wait_for(lambda: "node-4" in rt.node_ids() and rt.is_running("node-4"), timeout=30,
             description="the agent to start node-4")
    assert {"client__node-4", "node-4__registry", "node-1__node-4"} <= \
        {link.name for link in rt.proxies.links()}
