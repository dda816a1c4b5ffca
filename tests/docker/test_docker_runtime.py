"""Container-only checks of the Docker runtime (containers, network and waits on
testcontainers; cleanup by label, without Ryuk)."""

from __future__ import annotations

import httpx
import pytest

from chaos.runtime.base import ClusterSpec
from chaos.runtime.docker import LABEL, DockerRuntime, engine_answers
from chaos.wait import WaitTimeout, wait_for

pytestmark = [pytest.mark.docker,
              pytest.mark.skipif(not engine_answers(), reason="no Docker engine answers")]


@pytest.fixture(scope="module")
def session_labels(request) -> dict[str, str]:
    from chaos.pytest_plugin import SESSION_LABEL

    return {SESSION_LABEL: request.config.chaos_session}


@pytest.fixture(scope="module")
def cluster(session_labels):
    rt = DockerRuntime(ClusterSpec(), labels=session_labels)
    try:
        rt.start()
        yield rt
    finally:
        rt.stop()


def _client(rt, **kw):
    from tests.integration.helpers import client_for

    return client_for(rt, **kw)


def test_published_ports_are_bound_to_loopback_only(cluster):
    import docker

    client = docker.from_env()
    containers = client.containers.list(filters={"label": f"{LABEL}={cluster.run_id}"})
    assert {c.name.rsplit("-", 1)[-1] for c in containers} >= {"proxy", "registry"}
    bindings = [b for c in containers for bs in (c.attrs["NetworkSettings"]["Ports"] or {}).values()
                for b in (bs or [])]
    assert bindings and all(b["HostIp"] == "127.0.0.1" for b in bindings), bindings


def test_no_container_mounts_the_docker_socket(cluster):
    import docker

    client = docker.from_env()
    for c in client.containers.list(filters={"label": f"{LABEL}={cluster.run_id}"}):
        sources = [m.get("Source", "") for m in c.attrs["Mounts"]]
        assert not any("docker.sock" in s for s in sources), (c.name, sources)


def test_pause_freezes_a_node_and_the_client_fails_over(cluster):
    with _client(cluster, request_timeout=0.5) as c:
        c.put("before", "1")
        cluster.pause("node-2")
        try:
            import docker

            node = cluster.containers["node-2"].get_wrapped_container()
            assert docker.from_env().containers.get(node.id).status == "paused"
            assert cluster.is_running("node-2")
            with pytest.raises(httpx.TimeoutException):
                httpx.get(f"{cluster.node_url('node-2')}/health", timeout=0.5)
            for i in range(30):  # every write succeeds through the other owners
                c.put(f"paused{i}", str(i))
                assert c.get(f"paused{i}").value == str(i)
            wait_for(lambda: c.client.breaker_states()["node-2"] in ("open", "half_open"),
                     timeout=5, description="node-2's breaker to open after its timeouts")
        finally:
            cluster.resume("node-2")
        httpx.get(f"{cluster.node_url('node-2')}/health", timeout=2).raise_for_status()


def test_kill_restart_and_resume_are_safe_to_repeat(cluster):
    cluster.resume("node-3")  # not paused: nothing happens
    cluster.kill("node-3")
    assert not cluster.is_running("node-3")
    cluster.kill("node-3")  # already dead: nothing happens
    old_port = cluster.host_ports["node-3"]
    cluster.restart("node-3")  # on the same volume; it may come back on another host port
    assert cluster.is_running("node-3")
    httpx.get(f"{cluster.node_url('node-3')}/health", timeout=2).raise_for_status()
    assert isinstance(old_port, int)


def test_containers_carry_the_run_and_session_labels(cluster, session_labels):
    import docker

    flt = {"label": [f"{LABEL}={cluster.run_id}",
                     *(f"{k}={v}" for k, v in session_labels.items())]}
    client = docker.from_env()
    names = {c.name.removeprefix(f"{cluster.prefix}-")
             for c in client.containers.list(all=True, filters=flt)}
    assert names == {"proxy", "registry", *cluster.node_ids()}
    assert [n.name for n in client.networks.list(filters=flt)] == [f"{cluster.prefix}-net"]


def test_a_failed_start_leaves_nothing_behind(session_labels):
    import docker

    rt = DockerRuntime(ClusterSpec(storage="tape"), ready_timeout=20,  # nodes refuse "tape"
                       labels=session_labels)
    with pytest.raises(WaitTimeout, match="exited"):  # at once, not after the timeout
        rt.start()
    client = docker.from_env()
    flt = {"label": f"{LABEL}={rt.run_id}"}
    assert client.containers.list(all=True, filters=flt) == []
    assert client.networks.list(filters=flt) == []
    assert client.volumes.list(filters=flt) == []
