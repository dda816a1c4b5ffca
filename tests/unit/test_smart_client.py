"""The smart client's member list: a registry that restarted and has not heard every node yet
does not shrink the client's ring; only a node that left is removed."""

from __future__ import annotations

import pytest

from system.client import SmartClient
from system.config import ClientConfig
from system.transport import MockTransport, Reply

pytestmark = pytest.mark.unit


def member(node: str, status: str = "alive") -> dict:
    return {"id": node, "address": f"{node}:1", "status": status}


async def test_a_partial_member_list_does_not_shrink_the_ring():
    answers = [[member("node-1"), member("node-2"), member("node-3")],
               [member("node-2")],  # the registry just restarted: one heartbeat so far
               [member("node-1"), member("node-2", "dead"), member("node-3", "left")]]

    def registry(method, address, path, body):
        return Reply(200, {"members": answers.pop(0)})

    client = SmartClient(ClientConfig(refresh_interval=0), transport=MockTransport(registry))
    await client.refresh()
    assert client.coordinator.ring.nodes == {"node-1", "node-2", "node-3"}
    await client.refresh()
    assert client.coordinator.ring.nodes == {"node-1", "node-2", "node-3"}
    await client.refresh()
    assert client.coordinator.ring.nodes == {"node-1", "node-2"}  # dead stays, left goes
