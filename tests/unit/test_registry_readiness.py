"""The registry gateway while nodes join: ``/ready`` means "can serve", and a valid write or
read it cannot place yet is a 503 saying what is missing, never a 4xx.

In process through httpx's ASGI transport, with the replicas behind a MockTransport: no network."""

from __future__ import annotations

import httpx
import pytest

from system.config import RegistryConfig
from system.registry.app import create_app
from system.transport import MockTransport, Reply

pytestmark = pytest.mark.unit

NODES = ["node-1", "node-2", "node-3"]


def replica(method, address, path, body):
    if path == "/internal/write":
        return Reply(200, {"applied": True, "node": address})
    if path == "/internal/read":
        return Reply(200, {"key": body["key"], "found": False})
    return Reply(200, {"stored": 0})


@pytest.fixture
async def gateway():
    app = create_app(RegistryConfig(launcher="none", seed=1), transport=MockTransport(replica))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://registry") as client:
        yield client


async def join(client: httpx.AsyncClient, *node_ids: str) -> None:
    for i, node_id in enumerate(node_ids):
        r = await client.post("/heartbeat", json={"id": node_id, "address": f"10.0.0.{i + 1}:5001"})
        assert r.status_code == 200, r.text


@pytest.mark.parametrize("joined", [0, 1], ids=["no-nodes", "one-node"])
async def test_a_write_the_ring_cannot_place_is_a_503_naming_what_is_missing(gateway, joined):
    await join(gateway, *NODES[:joined])
    r = await gateway.post("/data", json={"key": "k", "value": "v"})
    assert r.status_code == 503, r.text
    body = r.json()
    assert (body["op"], body["needed"], body["acks"], body["definite"]) == ("write", 2, 0, True)
    assert body["missing"] == 2 - joined
    assert f"the ring has {joined} node(s)" in body["error"] and "W=2" in body["error"]
    assert body["owners"] == NODES[:joined]


async def test_a_read_the_ring_cannot_place_is_a_503_too(gateway):
    await join(gateway, "node-1")
    r = await gateway.get("/data/k")
    assert r.status_code == 503, r.text
    assert r.json()["op"] == "read" and "R=2" in r.json()["error"]


async def test_ready_only_once_a_quorum_of_nodes_is_alive(gateway):
    assert (await gateway.get("/health")).status_code == 200  # liveness: the process answers
    r = await gateway.get("/ready")
    assert r.status_code == 503, r.text
    assert r.json()["needed"] == 2 and r.json()["alive"] == []
    assert "2 more alive node(s)" in r.json()["error"]
    await join(gateway, "node-1")
    r = await gateway.get("/ready")
    assert r.status_code == 503 and "1 more alive node(s)" in r.json()["error"], r.text
    await join(gateway, "node-2")
    r = await gateway.get("/ready")
    assert r.status_code == 200, r.text
    assert r.json()["ready"] is True and r.json()["alive"] == ["node-1", "node-2"]


async def test_every_valid_write_while_nodes_join_is_200_or_503_never_4xx(gateway):
    statuses = []
    for joined in range(len(NODES) + 1):
        if joined:
            await join(gateway, NODES[joined - 1])
        ready = (await gateway.get("/ready")).status_code == 200
        r = await gateway.post("/data", json={"key": f"k{joined}", "value": "v"})
        assert r.status_code == (200 if ready else 503), r.text
        statuses.append(r.status_code)
    assert statuses == [503, 503, 200, 200]
    assert (await gateway.get("/data/k3")).status_code == 404  # placed reads work too
