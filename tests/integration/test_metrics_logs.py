"""``GET /metrics`` and ``--log-format json`` of real processes: one request's id on the
registry's line and on every replica's, through the link mesh."""

from __future__ import annotations

import httpx
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from chaos.runtime.local import LocalRuntime
from chaos.topology import REGISTRY
from chaos.wait import wait_for

pytestmark = pytest.mark.integration

RID = "it-json-rid-1"


def json_lines(rt, name: str) -> list[dict]:
    """Every line of a service's log; each one must be a JSON object."""
    return [orjson.loads(line) for line in rt.service_log(name).splitlines() if line.strip()]


def samples(url: str) -> dict[tuple[str, frozenset], float]:
    r = httpx.get(f"{url}/metrics", timeout=5)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain; version="), r.headers
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(r.text) for s in family.samples}


def test_json_logs_carry_the_request_id_across_hops_and_metrics_move(make_cluster, monkeypatch):
    monkeypatch.setenv("CHAOSLAB_LOG_FORMAT", "json")  # the processes inherit the environment
    rt = make_cluster()
    if not isinstance(rt, LocalRuntime):
        pytest.skip("the environment reaches local processes only")
    gw = rt.endpoints().registry_direct
    r = httpx.post(f"{gw}/data", json={"key": "k", "value": "v"}, headers={"x-request-id": RID},
                   timeout=10)
    assert r.status_code == 200 and r.headers["x-request-id"] == RID, r.text
    nodes = rt.node_ids()

    def every_hop_logged() -> bool:
        return all(any(line["request_id"] == RID for line in json_lines(rt, name))
                   for name in [REGISTRY, *nodes])

    wait_for(every_hop_logged, timeout=10, interval=0.1,
             description="the request id on the registry's and every node's log")
    registry = [line for line in json_lines(rt, REGISTRY) if line["request_id"] == RID]
    assert [(line["service"], line["logger"]) for line in registry] == [("registry",
                                                                        "chaoslab.access")]
    assert registry[0]["message"].startswith("registry POST /data 200 ")
    for node in nodes:
        mine = [line for line in json_lines(rt, node) if line["request_id"] == RID]
        assert [(line["service"], line["message"].split()[:4]) for line in mine] == [
            (node, [node, "POST", "/internal/write", "200"])]
        assert set(mine[0]) == {"time", "level", "logger", "message", "service", "request_id"}

    m = samples(gw)
    ok = frozenset({"op": "write", "outcome": "ok"}.items())
    assert m[("chaoslab_quorum_operations_total", ok)] == 1
    assert m[("chaoslab_http_requests_total",
              frozenset({"route": "/data", "method": "POST", "status": "200"}.items()))] == 1
    assert m[("chaoslab_members", frozenset({"status": "alive"}.items()))] == len(nodes)
    for node in nodes:
        n = samples(rt.node_url(node))
        assert n[("chaoslab_http_requests_total", frozenset(
            {"route": "/internal/write", "method": "POST", "status": "200"}.items()))] == 1
