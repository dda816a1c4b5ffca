"""Admin operations through the registry (kill, scale-up, graduate) and the CLI lifecycle."""

from __future__ import annotations

import os
import subprocess
import sys

import httpx
import orjson
import pytest

from chaos.wait import wait_for

from .helpers import admin

pytestmark = pytest.mark.integration


def test_graduation_after_every_victory_condition(make_cluster):
    rt = make_cluster()
    gw = rt.endpoints().registry_direct
    r = admin(rt, "POST", "/kill/node-1")
    assert r.status_code == 200 and r.json()["killed"] is True, r.text
    wait_for(lambda: not rt.is_running("node-1"), timeout=10, description="node-1 killed")
    for i in range(20):  # writes acknowledged while node-1 is dead, reads that fail over
        assert httpx.post(f"{gw}/data", json={"key": f"g{i}", "value": "v"}).status_code == 200
        assert httpx.get(f"{gw}/data/g{i}").status_code == 200
    missing = admin(rt, "GET", "/graduate").json()["missing"]
    assert "write_while_node_dead" not in missing and "read_failover" not in missing
    assert admin(rt, "POST", "/scale-up").status_code in (201, 202)
    rt.restart("node-1")

    def graduated() -> bool:
        return admin(rt, "GET", "/graduate").status_code == 200
    wait_for(graduated, timeout=30, interval=0.3, description="all victory conditions")
    body = admin(rt, "GET", "/graduate").json()
    assert body["graduated"] and "graduate" in body["art"]
    assert body["seen"]["recovery"]["node"] == "node-1"


def test_kill_of_a_node_not_started_by_the_launcher_only_marks_it_dead(make_cluster):
    rt = make_cluster()
    gw = rt.endpoints().registry_direct
    r = httpx.post(f"{gw}/heartbeat", json={"id": "stranger", "address": "127.0.0.1:1"})
    assert r.status_code == 200
    r = admin(rt, "POST", "/kill/stranger")
    assert r.status_code == 200 and r.json()["killed"] is False
    assert "marked dead only" in r.json()["message"]
    status = {n["id"]: n["status"] for n in httpx.get(f"{gw}/cluster-status").json()["nodes"]}
    assert status["stranger"] == "dead" and status["node-1"] == "alive"


def test_cli_up_status_down_leaves_nothing_behind(request, tmp_path):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    runtime = request.config.getoption("--runtime")
    up = subprocess.Popen([sys.executable, "-m", "chaos.cli", "up", "--runtime", runtime],
                          cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    state_file = tmp_path / ".chaoslab" / "state.json"
    try:
        wait_for(state_file.exists, timeout=120, interval=0.2, description="chaoslab up ready",
                 abort=lambda: None if up.poll() is None else up.stdout.read().decode())
        state = orjson.loads(state_file.read_bytes())
        out = subprocess.run([sys.executable, "-m", "chaos.cli", "status", "--json"], cwd=tmp_path,
                             capture_output=True, check=True, timeout=30)
        status = orjson.loads(out.stdout)
        assert status["health"] == "healthy"
        assert sorted(n["id"] for n in status["nodes"]) == ["node-1", "node-2", "node-3"]
        human = subprocess.run([sys.executable, "-m", "chaos.cli", "status"], cwd=tmp_path,
                               capture_output=True, check=True, timeout=30).stdout.decode()
        assert "healthy" in human and "node-2" in human
        subprocess.run([sys.executable, "-m", "chaos.cli", "down"], cwd=tmp_path, check=True,
                       timeout=60)
        assert up.wait(30) == 0
    finally:
        if up.poll() is None:
            up.kill()
            up.wait()
    assert not state_file.exists()
    assert state["runtime"] == runtime
    for url in [state["registry_direct"], *state["nodes"].values()]:
        with pytest.raises(httpx.TransportError):
            httpx.get(f"{url}/health", timeout=1)
    if runtime == "docker":
        import docker

        label = "org.chaoslab.run"
        assert docker.from_env().containers.list(all=True, filters={"label": label}) == [], \
            "chaoslab down left containers behind"
