"""Behaviours where chaos.proxy once differed from Toxiproxy, checked end to end over real TCP.

Chained latency toxics, the request id header, listen addresses given by host name, and
``/metrics`` off by default.
"""

from __future__ import annotations

import re

import httpx
import pytest

from chaos.proxy.process import ProxyServerProcess, free_port
from chaos.testing.proxy import (
    TcpServer,
    clear,
    connect,
    median_ms,
    recv_exactly,
    round_trips,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def server():
    with ProxyServerProcess(seed=3) as proc:  # default flags: no --proxy-metrics
        yield proc


@pytest.fixture(scope="module")
def upstream():
    with TcpServer() as srv:
        yield srv


@pytest.fixture
def api(server):
    with httpx.Client(base_url=server.url, timeout=5) as http, server.client() as client:
        yield http
        clear(client)


def port_of(listen: str) -> int:
    return int(listen.rsplit(":", 1)[1])


def test_two_latency_toxics_on_one_direction_add_up(api, upstream):
    with connect(upstream.port) as sock:
        base = median_ms(round_trips(sock, 10))
    port = port_of(api.post("/proxies", json={"name": "chain", "upstream": upstream.address})
                   .json()["listen"])
    for name in ("first", "second"):
        r = api.post("/proxies/chain/toxics", json={"name": name, "type": "latency",
                                                     "attributes": {"latency": 150}})
        assert r.status_code == 200, r.text
    with connect(port) as sock:
        added = median_ms(round_trips(sock, 5)) - base
    assert 300.0 <= added <= 330.0, f"added {added:.1f} ms for two 150 ms latency toxics"


def test_every_response_carries_an_x_toxiproxy_request_id(api):
    responses = [api.get("/version"), api.get("/proxies"), api.get("/proxies/missing"),
                 api.post("/proxies", content=b"{"),
                 api.get("/proxies", headers={"User-Agent": "Mozilla/5.0"})]
    assert [r.status_code for r in responses] == [200, 200, 404, 400, 403]
    ids = [r.headers.get("X-Toxiproxy-Request-Id", "") for r in responses]
    assert all(re.fullmatch(r"[0-9a-v]{20}", i) for i in ids), ids  # xids, as zerolog's hlog
    assert len(set(ids)) == len(ids)


def test_a_localhost_listen_is_answered_resolved(api, upstream):
    port = free_port()
    r = api.post("/proxies", json={"name": "lh", "upstream": upstream.address,
                                   "listen": f"localhost:{port}"})
    assert r.status_code == 201, r.text
    assert r.json()["listen"] == f"127.0.0.1:{port}"  # as Toxiproxy: the address it listens on
    assert api.get("/proxies/lh").json()["listen"] == f"127.0.0.1:{port}"
    with connect(port) as sock:
        sock.sendall(b"a")
        assert recv_exactly(sock, 1) == b"a"


def test_naming_the_same_address_by_host_name_restarts_nothing(api, upstream):
    port = free_port()
    api.post("/proxies", json={"name": "same", "upstream": upstream.address,
                               "listen": f"127.0.0.1:{port}"})
    api.post("/proxies/same/toxics", json={"type": "noop"})
    before = api.get("/proxies/same").json()
    with connect(port) as sock:
        sock.sendall(b"a")
        assert recv_exactly(sock, 1) == b"a"
        r = api.patch("/proxies/same", json={"listen": f"localhost:{port}",
                                             "upstream": upstream.address})
        assert r.status_code == 200 and r.json() == before
        r = api.post("/populate", json=[{"name": "same", "upstream": upstream.address,
                                         "listen": f"localhost:{port}"}])
        assert r.status_code == 201 and r.json()["proxies"] == [before]  # kept, toxic too
        sock.sendall(b"b")  # the established connection was neither closed nor restarted
        assert recv_exactly(sock, 1) == b"b"


def test_a_disabled_proxy_keeps_its_listen_as_given_until_it_listens(api, upstream):
    port = free_port()
    r = api.post("/proxies", json={"name": "off", "upstream": upstream.address,
                                   "listen": f"localhost:{port}", "enabled": False})
    assert r.status_code == 201 and r.json()["listen"] == f"localhost:{port}"  # as Toxiproxy
    r = api.patch("/proxies/off", json={"enabled": True})
    assert r.status_code == 200 and r.json()["listen"] == f"127.0.0.1:{port}"


@pytest.mark.parametrize("method, path, body", [
    ("POST", "/proxies", {"name": "nx", "upstream": "127.0.0.1:9",
                          "listen": "no-such-host.invalid:0"}),
    ("PATCH", "/proxies/target", {"listen": "no-such-host.invalid:0"}),
    ("POST", "/populate", [{"name": "nx", "upstream": "127.0.0.1:9",
                            "listen": "no-such-host.invalid:0"}]),
])
def test_an_unresolvable_listen_host_is_a_400_that_changes_nothing(api, upstream, method, path,
                                                                   body):
    before = api.post("/proxies", json={"name": "target", "upstream": upstream.address}).json()
    r = api.request(method, path, json=body)
    assert r.status_code == 400, r.text
    assert "no-such-host.invalid" in r.json()["error"]
    assert api.get("/proxies").json() == {"target": before}


def test_metrics_is_404_without_proxy_metrics(api):
    assert api.get("/metrics").status_code == 404
