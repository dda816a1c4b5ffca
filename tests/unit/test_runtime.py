"""The runtime's plumbing without starting anything: command lines (system.launch), runtime
selection (open_runtime), the admin client and launch agent, composite waits."""

from __future__ import annotations

import httpx
import orjson
import pytest

import chaos.runtime as runtime_pkg
from chaos.runtime import RuntimeUnavailable, open_runtime
from chaos.runtime.admin import LaunchAgent, RegistryAdmin
from chaos.runtime.base import ClusterSpec
from chaos.runtime.local import LocalRuntime
from chaos.wait import WaitTimeout, all_of, any_of, wait_for
from system.config import ClusterSettings, parse_node_args, parse_registry_args
from system.launch import free_port, node_argv, registry_argv
from system.registry.launcher import LocalProcessLauncher

pytestmark = pytest.mark.unit

SETTINGS = ClusterSettings(n=3, w=3, r=1, vnodes=16, versions="wallclock", heartbeat_interval=0.5,
                           suspect_after=4, dead_after=9)


def test_node_argv_round_trips_through_the_nodes_parser():
    argv = node_argv(SETTINGS, node_id="node-7", port=5107, registry="http://r:5000",
                     data_dir="/d/node-7", storage="memory", host="0.0.0.0",
                     advertise="node-7:5107", load_factor=3, workers=2, python="py")
    assert argv[:3] == ["py", "-m", "system.node"]
    config = parse_node_args(argv[3:], env={})
    assert config.cluster == SETTINGS  # every cluster flag, suspect/dead-after included
    assert (config.id, config.port, config.registry, config.data_dir, config.storage,
            config.host, config.advertise, config.load_factor, config.workers) == \
        ("node-7", 5107, "http://r:5000", "/d/node-7", "memory", "0.0.0.0", "node-7:5107", 3, 2)


def test_registry_argv_round_trips_through_the_registrys_parser():
    argv = registry_argv(SETTINGS, port=5000, admin_token="t", seed=42, host="0.0.0.0",
                         advertise="registry:5000")
    config = parse_registry_args(argv[3:], env={})
    assert config.cluster == SETTINGS
    assert (config.port, config.admin_token, config.launcher, config.seed, config.advertise) == \
        (5000, "t", "delegated", 42, "registry:5000")


def test_the_registrys_local_launcher_passes_every_cluster_flag():
    from system.config import RegistryConfig
    from system.registry.app import Registry

    registry = Registry(RegistryConfig(launcher="local", cluster=SETTINGS))
    assert isinstance(registry.launcher, LocalProcessLauncher)
    assert registry.launcher.settings == SETTINGS  # suspect/dead-after were dropped before


def test_free_port_is_bindable():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", free_port()))


def test_free_ports_are_drawn_below_the_ephemeral_range():
    """Outgoing connections take ports from the ephemeral range: a service's pre-chosen port
    there could be taken before it binds (seen as 'address already in use' under load)."""
    from system.launch import _ephemeral_range

    low, _ = _ephemeral_range()
    ports = {free_port() for _ in range(20)}
    assert all(10000 <= p < low for p in ports) and len(ports) > 1


def test_open_runtime_refuses_bad_combinations_in_one_line():
    for kind, kw in [("docker", {"toxiproxy_url": "http://127.0.0.1:8474"}),
                     ("docker", {"registry_port": 5000}), ("podman", {})]:
        with pytest.raises(RuntimeUnavailable) as err:
            open_runtime(kind, ClusterSpec(), **kw)
        assert "\n" not in str(err.value) and str(err.value)


def test_explicit_docker_without_an_image_says_why(monkeypatch):
    monkeypatch.setattr(runtime_pkg, "image_available", lambda: "no Docker engine answers")
    with pytest.raises(RuntimeUnavailable, match="no Docker engine answers.*--runtime local"):
        open_runtime("docker", ClusterSpec())


def test_auto_falls_back_to_local_and_says_why(monkeypatch, caplog):
    monkeypatch.setattr(runtime_pkg, "image_available", lambda: "no Docker engine answers")
    caplog.set_level("INFO", logger="chaoslab.runtime")
    rt = open_runtime("auto", ClusterSpec(), workdir="/tmp/unused")
    assert isinstance(rt, LocalRuntime)
    assert "no Docker engine answers" in caplog.text
    with_url = open_runtime("auto", ClusterSpec(), toxiproxy_url="http://127.0.0.1:1")
    assert isinstance(with_url, LocalRuntime) and with_url.toxiproxy_url == "http://127.0.0.1:1"


class FakeRegistry:
    """The admin API's launch queue over httpx.MockTransport."""

    def __init__(self) -> None:
        self.pending = [{"id": 1, "action": "launch", "node_id": "node-4"},
                        {"id": 2, "action": "kill", "node_id": "node-9"}]
        self.completed: dict[int, dict] = {}
        self.auth: set[str] = set()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.auth.add(request.headers.get("authorization", ""))
        if request.url.path == "/admin/launches":
            pending, self.pending = self.pending, []
            return httpx.Response(200, json={"pending": pending})
        if request.url.path.startswith("/admin/launches/"):
            self.completed[int(request.url.path.rsplit("/", 1)[1])] = orjson.loads(request.content)
            return httpx.Response(200, json={})
        if request.url.path == "/cluster-status":
            return httpx.Response(200, json={"nodes": [{"id": "node-1", "status": "alive"},
                                                       {"id": "node-2", "status": "dead"}]})
        return httpx.Response(404, json={"error": "no"})


def test_launch_agent_fulfils_and_reports_each_request():
    registry = FakeRegistry()
    admin = RegistryAdmin(lambda: "http://registry", "tok",
                          transport=httpx.MockTransport(registry))
    started, killed = [], []

    def kill(node: str) -> None:
        killed.append(node)
        raise KeyError(f"unknown service {node!r}")

    agent = LaunchAgent(admin, launch=started.append, kill=kill, interval=0.01)
    agent.start()
    try:
        wait_for(lambda: len(registry.completed) == 2, timeout=5)
    finally:
        agent.stop()
        agent.stop()  # idempotent
    assert started == ["node-4"] and killed == ["node-9"]
    assert registry.completed[1] == {"ok": True, "detail": "started node-4"}
    assert registry.completed[2]["ok"] is False and "node-9" in registry.completed[2]["detail"]
    assert registry.auth == {"Bearer tok"}
    assert admin.alive(["node-1", "node-2"]) == ["node-1"]
    admin.close()


def test_any_of_holds_when_one_holds_and_reports_all_when_none_does():
    assert wait_for(any_of(lambda: False, lambda: True), timeout=1) < 1

    def never() -> bool:
        raise ConnectionError("refused")

    with pytest.raises(WaitTimeout, match="never.*refused"):
        wait_for(any_of(never, lambda: False), timeout=0.1, interval=0.01)
    assert wait_for(all_of(lambda: True, any_of(lambda: True)), timeout=1) < 1
