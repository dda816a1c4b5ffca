"""Container-only checks of the Docker runtime."""

from __future__ import annotations

import httpx
import pytest

from chaos.runtime.base import ClusterSpec
from chaos.runtime.docker import LABEL, DockerRuntime, engine_answers
from chaos.wait import WaitTimeout, wait_for

pytestmark = [pytest.mark.docker,
              pytest.mark.skipif(not engine_answers(), reason="no Docker engine answers")]


def runtime(spec: ClusterSpec, **kw) -> DockerRuntime:
    from tests.conftest import SESSION, SESSION_LABEL

    return DockerRuntime(spec, labels={SESSION_LABEL: SESSION}, **kw)


@pytest.fixture(scope="module")
def cluster():
    rt = runtime(ClusterSpec())
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

            status = docker.from_env().containers.get(cluster.containers["node-2"].id).status
            assert status == "paused"
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


def test_a_failed_start_leaves_nothing_behind():
    import docker

    rt = runtime(ClusterSpec(storage="tape"), ready_timeout=20)  # the nodes refuse "tape"
    with pytest.raises(WaitTimeout):
        rt.start()
    client = docker.from_env()
    flt = {"label": f"{LABEL}={rt.run_id}"}
    assert client.containers.list(all=True, filters=flt) == []
    assert client.networks.list(filters=flt) == []
    assert client.volumes.list(filters=flt) == []
