"""`docker-compose -f compose/docker-compose.yml up` gives a working cluster a user can curl."""

from __future__ import annotations

import shutil
import socket
import subprocess
import uuid
from pathlib import Path

import httpx
import pytest

from chaos.runtime.docker import engine_answers
from chaos.wait import wait_for

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = [shutil.which("docker-compose") or "docker-compose", "-f",
           str(ROOT / "compose" / "docker-compose.yml")]


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


pytestmark = [
    pytest.mark.docker,
    pytest.mark.skipif(not engine_answers(), reason="no Docker engine answers"),
    pytest.mark.skipif(shutil.which("docker-compose") is None, reason="docker-compose not installed"),
]


def test_compose_stack_serves_writes_and_reads_through_the_proxy():
    if not all(_port_free(p) for p in (8474, 29000, 29001, 29002, 29003)):
        pytest.skip("the compose ports (8474, 29000-29003) are in use on 127.0.0.1")
    from chaos.runtime.images import ensure_image

    ensure_image()  # tags chaoslab:latest, which the compose file runs
    project = ["-p", f"chaoslabtest{uuid.uuid4().hex[:6]}"]
    try:
        subprocess.run([*COMPOSE, *project, "up", "-d"], check=True, capture_output=True,
                       timeout=180)

        def healthy() -> bool:
            out = subprocess.run([*COMPOSE, *project, "ps"], capture_output=True, text=True).stdout
            return out.count("(healthy)") == 5
        wait_for(healthy, timeout=90, interval=0.5, description="5 healthy services")
        # healthy means ready: the first write through the client's proxy is placed
        r = httpx.post("http://127.0.0.1:29000/data", json={"key": "k", "value": "v"}, timeout=5)
        assert r.status_code == 200, r.text
        assert r.json()["acks"] >= 2, r.text
        r = httpx.get("http://127.0.0.1:29000/data/k", timeout=5)
        assert r.status_code == 200 and r.json()["value"] == "v", r.text
        r = httpx.get("http://127.0.0.1:8474/proxies", timeout=5)
        assert r.status_code == 200 and r.json()["client__node-1"], r.text
    finally:
        subprocess.run([*COMPOSE, *project, "down", "-v"], capture_output=True, timeout=120)
