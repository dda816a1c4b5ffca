"""Bad input gets a clear 4xx naming the problem: never a 500, never a change of stored data."""

from __future__ import annotations

import httpx
import pytest

from .helpers import admin, node_value

pytestmark = pytest.mark.integration

BIG = "x" * (1024 * 1024 + 1)


@pytest.fixture(scope="module")
def seeded(shared_cluster):
    gw = shared_cluster.endpoints().registry_direct
    r = httpx.post(f"{gw}/data", json={"key": "stable", "value": "original"})
    assert r.status_code == 200
    return shared_cluster


def _unchanged(rt):
    gw = rt.endpoints().registry_direct
    assert httpx.get(f"{gw}/data/stable").json()["value"] == "original"


@pytest.mark.parametrize("body,status,words", [
    (b"{not json", 400, "malformed JSON"),
    (b"", 400, "empty"),
    (b"[1,2]", 400, "JSON object"),
    (b'{"value":"v"}', 400, "'key' must be a string"),
    (b'{"key":"stable"}', 400, "'value' must be a string"),
    (b'{"key":5,"value":"v"}', 400, "'key' must be a string, got int"),
    (b'{"key":"stable","value":{"a":1}}', 400, "'value' must be a string, got dict"),
    (b'{"key":"","value":"v"}', 400, "must not be empty"),
    (b'{"key":"' + b"k" * 257 + b'","value":"v"}', 400, "257 bytes"),
    (b'{"key":"a\\u0001b","value":"v"}', 400, "control characters"),
    (b'{"key":"stable","value":"' + BIG.encode() + b'"}', 413, "limit"),
])
@pytest.mark.parametrize("gateway", ["registry", "node"])
def test_gateway_rejects_bad_writes(seeded, body, status, words, gateway):
    """The registry's gateway, and every node's (``/gateway/data``): the same checks."""
    gw = (seeded.endpoints().registry_direct if gateway == "registry"
          else f"{seeded.node_url('node-1')}/gateway")
    r = httpx.post(f"{gw}/data", content=body, headers={"content-type": "application/json"})
    assert r.status_code == status, r.text
    assert words in r.json()["error"] and r.json()["status"] == status
    _unchanged(seeded)


def test_oversized_body_refused_before_reading(seeded):
    gw = seeded.endpoints().registry_direct
    r = httpx.post(f"{gw}/data", content=b"{" + b" " * (8 * 1024 * 1024) + b"}")
    assert r.status_code == 413
    _unchanged(seeded)


@pytest.mark.parametrize("path,body,words", [
    ("/internal/write", {"key": "stable", "value": "evil", "version": "nope"}, "version must be"),
    ("/internal/write", {"key": "stable", "value": "evil", "version": [1, 0, "x"], "owners": "n1"},
     "'owners' must be a list"),
    ("/internal/write", {"key": "stable", "value": 3, "version": [1, 0, "x"]}, "'value' must be"),
    ("/internal/batch", {"records": [{"key": "stable", "value": "evil", "version": [True, 0, "x"]}]},
     "version must be"),
    ("/internal/batch", {"records": "all"}, "'records' must be a list"),
    ("/internal/hints", {"target": "../etc", "keys": ["a"]}, "'id' may contain only"),
    ("/internal/read", {"key": None}, "'key' must be a string"),
])
def test_node_rejects_bad_internal_requests(seeded, path, body, words):
    node = seeded.node_url("node-1")
    r = httpx.post(f"{node}{path}", json=body)
    assert r.status_code == 400, r.text
    assert words in r.json()["error"]
    assert node_value(seeded, "node-1", "stable") == "original"


def test_heartbeat_validation(seeded):
    gw = seeded.endpoints().registry_direct
    for body, words in [({"id": "n 1", "address": "h:1"}, "may contain only"),
                        ({"id": "n1", "address": "nohost"}, "host:port"),
                        ({"id": "n1", "address": "h:99999"}, "port from 1 to 65535")]:
        r = httpx.post(f"{gw}/heartbeat", json=body)
        assert r.status_code == 400 and words in r.json()["error"], r.text
    ids = [n["id"] for n in httpx.get(f"{gw}/cluster-status").json()["nodes"]]
    assert ids == ["node-1", "node-2", "node-3"]


def test_admin_tokens_and_unknown_nodes(seeded):
    gw = seeded.endpoints().registry_direct
    assert httpx.post(f"{gw}/kill/node-1").status_code == 401
    r = httpx.post(f"{gw}/kill/node-1", headers={"authorization": "Bearer wrong"})
    assert r.status_code == 401 and "wrong admin token" in r.json()["error"]
    r = admin(seeded, "POST", "/kill/node-99")
    assert r.status_code == 404 and "node-99" in r.json()["error"]
    assert httpx.post(f"{gw}/deregister", json={"id": "node-99"}).status_code == 404
    r = admin(seeded, "GET", "/graduate")
    assert r.status_code == 409 and set(r.json()["missing"]) >= {"scale_up", "recovery"}
    statuses = {n["status"] for n in httpx.get(f"{gw}/cluster-status").json()["nodes"]}
    assert statuses == {"alive"}


def test_unknown_route_is_a_json_404(seeded):
    r = httpx.get(f"{seeded.endpoints().registry_direct}/nope")
    assert r.status_code == 404 and "no route" in r.json()["error"]


def test_request_id_reaches_every_hop(seeded):
    gw = seeded.endpoints().registry_direct
    r = httpx.post(f"{gw}/data", json={"key": "traced", "value": "v"},
                   headers={"x-request-id": "trace-me-42"})
    assert r.headers["x-request-id"] == "trace-me-42"
    generated = httpx.get(f"{gw}/data/traced").headers["x-request-id"]
    assert len(generated) >= 8
    logs = {name: seeded.service_log(name) for name in ("registry", "node-1", "node-2", "node-3")}
    assert "rid=trace-me-42" in logs["registry"]
    replicas = r.json()["replicas"]
    assert all("rid=trace-me-42" in logs[n] for n in replicas)
