"""``GET /metrics`` and ``--log-format json`` of the registry and the nodes, in process.

A registry and three nodes are real apps talking through :class:`AsgiTransport` (httpx's
ASGI transport by address): no network, no lifespans (so no heartbeat or handoff loops; the
tests drive those duties themselves)."""

from __future__ import annotations

import io
import logging

import httpx
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from system.config import NodeConfig, RegistryConfig, parse_node_args, parse_registry_args
from system.http import ROUTE_KEY, JsonFormatter, RequestContextFilter
from system.metrics import HttpMetrics
from system.node.app import create_app as create_node
from system.registry.app import create_app as create_registry
from system.transport import Raw, Reply, TransportError

pytestmark = pytest.mark.unit

NODES = ("node-1", "node-2", "node-3")


class AsgiTransport:
    """Requests to in-process apps by address; an address in ``down`` refuses connections."""

    def __init__(self) -> None:
        self.apps: dict[str, object] = {}
        self.down: set[str] = set()

    async def request(self, method, address, path, *, json=None, timeout, headers=None) -> Reply:
        if address in self.down or address not in self.apps:
            raise TransportError(address, "cannot connect", definite=True)
        content = None if json is None else bytes(json) if isinstance(json, Raw) else orjson.dumps(json)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=self.apps[address]),
                                     base_url=f"http://{address}") as client:
            r = await client.request(method, path, content=content,
                                     headers={"content-type": "application/json", **(headers or {})})
        return Reply.parse(r.status_code, r.content)

    async def close(self) -> None:
        return None


def inner(app):
    """The Starlette app under the request-id middleware and the fast routes."""
    return app.app.app


class Cluster:
    def __init__(self, tmp_path) -> None:
        self.net = AsgiTransport()
        self.nodes = {}
        for node_id in NODES:
            app = create_node(NodeConfig(id=node_id, port=1, storage="memory",
                                         data_dir=str(tmp_path)), transport=self.net)
            self.net.apps[f"{node_id}:1"] = app
            self.nodes[node_id] = app
        self.registry = create_registry(RegistryConfig(launcher="none", seed=1),
                                        transport=self.net)
        self.gateway = inner(self.registry).state.registry.gateway

    def client(self, app) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://svc")

    def service(self, node_id: str):
        return inner(self.nodes[node_id]).state.service

    async def scrape(self, app) -> dict[tuple[str, frozenset], float]:
        """Every sample of ``GET /metrics``: {(name, labels): value}."""
        async with self.client(app) as c:
            r = await c.get("/metrics")
        assert r.status_code == 200, r.text
        assert r.headers["content-type"].startswith("text/plain; version="), r.headers
        return {(s.name, frozenset(s.labels.items())): s.value
                for family in text_string_to_metric_families(r.text) for s in family.samples}


def sample(samples, name: str, **labels) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


@pytest.fixture
async def cluster(tmp_path):
    c = Cluster(tmp_path)
    async with c.client(c.registry) as reg:
        for node_id in NODES:
            r = await reg.post("/heartbeat", json={"id": node_id, "address": f"{node_id}:1"})
            assert r.status_code == 200, r.text
    return c


async def families(app) -> dict[str, str]:
    """{family: type} of ``GET /metrics``, without the library's ``_created`` timestamps."""
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://s") as c:
        r = await c.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain; version=")
    return {f.name: f.type for f in text_string_to_metric_families(r.text)
            if not f.name.endswith("_created")}


async def test_metrics_is_prometheus_text_with_every_family(cluster):
    shared = {"chaoslab_http_requests": "counter",
              "chaoslab_http_request_duration_seconds": "histogram",
              "chaoslab_quorum_operations": "counter", "chaoslab_quorum_restamps": "counter",
              "chaoslab_read_repairs": "counter"}
    assert await families(cluster.registry) == {**shared, "chaoslab_members": "gauge"}
    assert await families(cluster.nodes["node-1"]) == {
        **shared, "chaoslab_hints_pending": "gauge", "chaoslab_hints_delivered": "counter",
        "chaoslab_rebalanced_keys": "counter"}


async def test_a_write_counts_an_ok_quorum_write_and_its_requests(cluster):
    before = await cluster.scrape(cluster.registry)
    assert sample(before, "chaoslab_quorum_operations_total", op="write", outcome="ok") == 0
    assert sample(before, "chaoslab_members", status="alive") == 3
    async with cluster.client(cluster.registry) as c:
        r = await c.post("/data", json={"key": "k", "value": "v"})
        assert r.status_code == 200, r.text
        assert (await c.get("/data/a%2Fb")).status_code == 404  # read quorum: ok, not found
    await cluster.gateway.drain()
    after = await cluster.scrape(cluster.registry)
    assert sample(after, "chaoslab_quorum_operations_total", op="write", outcome="ok") == 1
    assert sample(after, "chaoslab_quorum_operations_total", op="write", outcome="quorum_error") == 0
    assert sample(after, "chaoslab_quorum_operations_total", op="read", outcome="ok") == 1
    assert sample(after, "chaoslab_quorum_restamps_total") == 0
    # route templates, never raw paths
    assert sample(after, "chaoslab_http_requests_total", route="/data", method="POST",
                  status="200") == 1
    assert sample(after, "chaoslab_http_requests_total", route="/data/{key}", method="GET",
                  status="404") == 1
    assert sample(after, "chaoslab_http_request_duration_seconds_count", route="/data",
                  method="POST") == 1
    assert sample(after, "chaoslab_http_requests_total", route="/heartbeat", method="POST",
                  status="200") == 3
    assert not any("a%2Fb" in str(labels) or "a/b" in str(labels) for _, labels in after)
    for node_id in NODES:  # N=3 owners of three nodes: each got the write and the read
        node = await cluster.scrape(cluster.nodes[node_id])
        assert sample(node, "chaoslab_http_requests_total", route="/internal/write",
                      method="POST", status="200") == 1
        assert sample(node, "chaoslab_http_requests_total", route="/internal/read",
                      method="POST", status="200") == 1


async def test_a_failed_quorum_counts_the_error_outcome(cluster):
    cluster.net.down.update({"node-2:1", "node-3:1"})
    async with cluster.client(cluster.registry) as c:
        assert (await c.post("/data", json={"key": "k", "value": "v"})).status_code == 503
        assert (await c.get("/data/k")).status_code == 503
    await cluster.gateway.drain()
    m = await cluster.scrape(cluster.registry)
    assert sample(m, "chaoslab_quorum_operations_total", op="write", outcome="quorum_error") == 1
    assert sample(m, "chaoslab_quorum_operations_total", op="read", outcome="quorum_error") == 1
    assert sample(m, "chaoslab_quorum_operations_total", op="write", outcome="ok") == 0
    assert sample(m, "chaoslab_http_requests_total", route="/data", method="POST",
                  status="503") == 1


async def test_the_node_gateway_counts_its_quorums_too(cluster):
    for node_id in NODES:  # the node coordinates with the member list the registry gives
        cluster.service(node_id)._update_members(
            [{"id": n, "address": f"{n}:1", "status": "alive"} for n in NODES])
    node = cluster.nodes["node-1"]
    async with cluster.client(node) as c:
        assert (await c.post("/gateway/data", json={"key": "k", "value": "v"})).status_code == 200
        assert (await c.get("/gateway/data/k")).status_code == 200
    await cluster.service("node-1").gateway.drain()
    m = await cluster.scrape(node)
    assert sample(m, "chaoslab_quorum_operations_total", op="write", outcome="ok") == 1
    assert sample(m, "chaoslab_quorum_operations_total", op="read", outcome="ok") == 1
    assert sample(m, "chaoslab_http_requests_total", route="/gateway/data/{key}", method="GET",
                  status="200") == 1
    assert sample(m, "chaoslab_http_requests_total", route="/gateway/data", method="POST",
                  status="200") == 1


async def test_read_repair_is_counted(cluster):
    cluster.net.down.add("node-3:1")
    async with cluster.client(cluster.registry) as c:
        assert (await c.post("/data", json={"key": "k", "value": "v"})).status_code == 200
        await cluster.gateway.drain()
        cluster.net.down.clear()
        r = await c.get("/data/k")
        assert r.status_code == 200 and r.json()["value"] == "v"
    await cluster.gateway.drain()
    m = await cluster.scrape(cluster.registry)
    assert sample(m, "chaoslab_read_repairs_total") == 1  # node-3, which missed the write
    assert cluster.service("node-3").store.get("k").value == "v"


async def test_hints_pending_delivered_and_rebalanced_keys(cluster):
    svc = cluster.service("node-1")
    two = [{"id": n, "address": f"{n}:1", "status": "alive"} for n in NODES[:2]]
    svc._update_members(two)
    node = cluster.nodes["node-1"]
    async with cluster.client(node) as c:
        for i in range(5):
            r = await c.post("/internal/write", json={
                "key": f"k{i}", "value": "v", "version": [1, i, "t"], "owners": list(NODES[:2]),
                "hint_for": []})
            assert r.status_code == 200, r.text
    m = await cluster.scrape(node)
    assert sample(m, "chaoslab_rebalanced_keys_total") == 0
    assert not any(name == "chaoslab_hints_pending" for name, _ in m)
    svc._update_members([*two, {"id": "node-3", "address": "node-3:1", "status": "alive"}])
    await svc._rebalance  # with N=3, node-3 is a new owner of every key
    m = await cluster.scrape(node)
    assert sample(m, "chaoslab_rebalanced_keys_total") == 5
    assert sample(m, "chaoslab_hints_pending", target="node-3") == 5
    await svc._hand_off("node-3")
    m = await cluster.scrape(node)
    assert sample(m, "chaoslab_hints_delivered_total") == 5
    assert sample(m, "chaoslab_hints_pending", target="node-3") == 0  # a known target stays
    assert cluster.service("node-3").store.count() == 5


async def test_members_by_status(cluster):
    async with cluster.client(cluster.registry) as c:
        assert (await c.post("/deregister", json={"id": "node-3"})).status_code == 200
    m = await cluster.scrape(cluster.registry)
    assert {s: sample(m, "chaoslab_members", status=s)
            for s in ("alive", "suspect", "dead", "left")} == {"alive": 2, "suspect": 0,
                                                                "dead": 0, "left": 1}


async def test_bad_input_stays_4xx_and_unknown_paths_do_not_make_labels(cluster):
    async with cluster.client(cluster.registry) as c:
        assert (await c.post("/data", content=b"{not json")).status_code == 400
        assert (await c.get("/no/such/path-123")).status_code == 404
        assert (await c.post("/metrics")).status_code == 405
        assert (await c.request("BREW", "/metrics")).status_code == 405
    m = await cluster.scrape(cluster.registry)
    assert sample(m, "chaoslab_http_requests_total", route="/data", method="POST",
                  status="400") == 1
    assert sample(m, "chaoslab_http_requests_total", route="unmatched", method="GET",
                  status="404") == 1
    assert sample(m, "chaoslab_http_requests_total", route="/metrics", method="OTHER",
                  status="405") == 1
    assert not any("path-123" in str(labels) for _, labels in m)


def test_latency_buckets_are_cumulative_and_merge_the_statuses():
    m = HttpMetrics()
    scope = {"method": "GET", ROUTE_KEY: "/x"}
    for status, seconds in [(200, 0.0005), (200, 0.003), (404, 0.003), (200, 10.0)]:
        m.observe(scope, status, seconds)
    requests, latency = m.collect()
    assert {(s.labels["status"], s.value) for s in requests.samples} == {("200", 3), ("404", 1)}
    got = {(s.name.rsplit("_", 1)[-1], s.labels.get("le")): s.value for s in latency.samples}
    assert got[("bucket", "0.0005")] == 1  # a bucket counts values up to its bound included
    assert got[("bucket", "0.001")] == 1 and got[("bucket", "0.0025")] == 1
    assert got[("bucket", "0.005")] == 3 and got[("bucket", "5.0")] == 3
    assert got[("bucket", "+Inf")] == 4 and got[("count", None)] == 4
    assert got[("sum", None)] == pytest.approx(10.0065)


async def test_metrics_answers_while_the_store_is_closed(cluster, tmp_path):
    app = create_node(NodeConfig(id="node-9", port=1, data_dir=str(tmp_path / "durable")),
                      transport=cluster.net)
    inner(app).state.service.store.close()  # as during shutdown: the hint table is gone
    m = await cluster.scrape(app)
    assert sample(m, "chaoslab_hints_delivered_total") == 0
    assert not any(name == "chaoslab_hints_pending" for name, _ in m)


# ---- --log-format json ------------------------------------------------------------------

@pytest.fixture
def json_log():
    """Every log record of the test, as the services write them with ``--log-format json``."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RequestContextFilter("test-process"))
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield lambda: [orjson.loads(line) for line in stream.getvalue().splitlines()]
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


async def test_one_request_id_on_the_registry_and_every_replica_line(cluster, json_log):
    async with cluster.client(cluster.registry) as c:
        r = await c.post("/data", json={"key": "k", "value": "v"},
                         headers={"x-request-id": "rid-json-1"})
        assert r.status_code == 200 and r.headers["x-request-id"] == "rid-json-1"
        await cluster.gateway.drain()
        r = await c.get("/data/k")  # no id given: the registry makes one and passes it on
        await cluster.gateway.drain()
    lines = json_log()
    assert lines and all(set(line) == {"time", "level", "logger", "message", "service",
                                       "request_id"} for line in lines)
    mine = [line for line in lines if line["request_id"] == "rid-json-1"]
    access = {line["service"]: line["message"] for line in mine if line["logger"] == "chaoslab.access"}
    assert access.keys() == {"registry", *NODES}
    assert access["registry"].startswith("registry POST /data 200 ")
    assert access["node-1"].startswith("node-1 POST /internal/write 200 ")
    made = r.headers["x-request-id"]
    assert made and made != "rid-json-1"
    assert {line["service"] for line in lines if line["request_id"] == made} == {"registry", *NODES}
    assert all(line["time"].endswith("+00:00") and line["level"] == "INFO" for line in mine)


def test_json_formatter_outside_a_request_and_with_an_exception():
    handler_filter, fmt = RequestContextFilter("node-7"), JsonFormatter()
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.getLogger("chaoslab.node").makeRecord(
            "chaoslab.node", logging.ERROR, __file__, 1, "failed: %s", ("x",),
            exc_info=__import__("sys").exc_info())
    assert handler_filter.filter(record)
    line = orjson.loads(fmt.format(record))
    assert (line["service"], line["request_id"], line["level"], line["message"]) == (
        "node-7", "", "ERROR", "failed: x")
    assert "ValueError: boom" in line["exception"]


def test_log_format_flag_and_environment():
    assert parse_node_args(["--id", "n"], env={}).log_format == "text"  # the default
    assert parse_node_args(["--id", "n", "--log-format", "json"], env={}).log_format == "json"
    assert parse_node_args(["--id", "n"], env={"CHAOSLAB_LOG_FORMAT": "json"}).log_format == "json"
    assert parse_registry_args([], env={"CHAOSLAB_LOG_FORMAT": "json"}).log_format == "json"
    assert parse_registry_args(["--log-format", "text"],
                               env={"CHAOSLAB_LOG_FORMAT": "json"}).log_format == "text"
    with pytest.raises(SystemExit):
        parse_registry_args([], env={"CHAOSLAB_LOG_FORMAT": "xml"})
    with pytest.raises(ValueError, match="log format must be one of text, json"):
        NodeConfig(id="n", log_format="yaml")
