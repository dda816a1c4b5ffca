"""Bad input gets Toxiproxy's 4xx and ``{"error", "status"}``, never a 500, and traffic goes on."""

from __future__ import annotations

import httpx
import pytest

from chaos.proxy.process import ProxyServerProcess
from chaos.testing.proxy import TcpServer, clear, connect, round_trips

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def server():
    with ProxyServerProcess() as proc:
        yield proc


@pytest.fixture(scope="module")
def live(server):
    """An echo proxy with an open connection that must keep working through every test."""
    with TcpServer() as upstream, server.client() as tp:
        clear(tp)
        port = tp.create("live", upstream.address).listen_port
        tp.create("target", upstream.address)
        with connect(port) as sock:
            yield sock


@pytest.fixture
def api(server, live):
    with httpx.Client(base_url=server.url, timeout=5) as http:
        yield http
    assert round_trips(live, 3), "the live connection stopped working"


TOXICS = "/proxies/target/toxics"

CASES = [
    ("POST", TOXICS, {"type": "nope"}, 400, "invalid toxic type"),
    ("POST", TOXICS, {"attributes": {}}, 400, "invalid toxic type"),
    ("POST", TOXICS, {"type": "latency", "stream": "sideways"}, 400,
     "stream was invalid, can be either upstream or downstream"),
    ("POST", TOXICS, {"type": "latency", "attributes": {"latency": -1}}, 400, None),
    ("POST", TOXICS, {"type": "latency", "attributes": {"latency": "10"}}, 400, None),
    ("POST", TOXICS, {"type": "latency", "attributes": {"latency": 1.5}}, 400, None),
    ("POST", TOXICS, {"type": "latency", "attributes": {"jitter": True}}, 400, None),
    ("POST", TOXICS, {"type": "bandwidth", "attributes": {"rate": -5}}, 400, None),
    ("POST", TOXICS, {"type": "timeout", "attributes": {"timeout": None}}, 400, None),
    ("POST", TOXICS, {"type": "latency", "attributes": [1]}, 400, None),
    ("POST", TOXICS, {"type": "latency", "toxicity": 2}, 400, None),
    ("POST", TOXICS, {"type": "latency", "toxicity": "half"}, 400, None),
    ("POST", TOXICS, {"type": "slicer", "attributes": {"average_size": 10,
                                                       "size_variation": 20}}, 400, None),
    ("POST", TOXICS, [1, 2], 400, None),
    ("POST", "/proxies/missing/toxics", {"type": "latency"}, 404, "proxy not found"),
    ("GET", "/proxies/missing/toxics", None, 404, "proxy not found"),
    ("GET", TOXICS + "/missing", None, 404, "toxic not found"),
    ("PATCH", TOXICS + "/missing", {"attributes": {}}, 404, "toxic not found"),
    ("DELETE", TOXICS + "/missing", None, 404, "toxic not found"),
    ("DELETE", "/proxies/missing", None, 404, "proxy not found"),
    ("POST", "/proxies", {"name": "live", "upstream": "127.0.0.1:1"}, 409,
     "proxy already exists"),
    ("POST", "/proxies", {"name": 5, "upstream": "127.0.0.1:1"}, 400, None),
    ("POST", "/proxies", {"name": "n", "upstream": "nowhere"}, 400, None),
    ("POST", "/proxies", {"name": "n", "upstream": "127.0.0.1:70000"}, 400, None),
    ("POST", "/proxies", {"name": "n", "upstream": "127.0.0.1:1", "listen": "x:y"}, 400, None),
    ("POST", "/proxies", {"name": "n", "upstream": "127.0.0.1:1", "enabled": "yes"}, 400,
     None),
    ("POST", "/proxies", "just a string", 400, None),
    ("PATCH", "/proxies/target", {"enabled": 1}, 400, None),
    ("PATCH", "/proxies/target", {"listen": 8080}, 400, None),
    ("POST", "/populate", {"name": "x"}, 400, None),
    ("POST", "/populate", [{"name": "a", "upstream": "127.0.0.1:1"},
                           {"name": "a", "upstream": "127.0.0.1:2"}], 400, None),
]


@pytest.mark.parametrize("method, path, body, status, message", CASES)
def test_bad_request_gets_toxiproxy_status_and_error_body(api, method, path, body, status,
                                                          message):
    r = api.request(method, path, json=body) if body is not None else api.request(method, path)
    assert r.status_code == status, r.text
    data = r.json()
    assert set(data) == {"error", "status"} and data["status"] == status
    if message is not None:
        assert data["error"] == message
    else:
        assert data["error"].startswith("bad request body")


@pytest.mark.parametrize("raw", [b"{", b"", b"{\"name\": ", b"\xff\xfe", b"nul"])
@pytest.mark.parametrize("path", ["/proxies", "/populate", TOXICS, "/proxies/target",
                                  TOXICS.replace("toxics", "toxics/x")])
def test_malformed_json_is_400(api, raw, path):
    r = api.post(path, content=raw, headers={"Content-Type": "application/json"})
    if path.endswith("/x"):  # unknown toxic: 404 comes first, as in Toxiproxy
        assert r.status_code == 404
        return
    assert r.status_code == 400, r.text
    assert r.json()["error"].startswith("bad request body")


def test_listen_on_a_taken_port_is_a_4xx(api, live):
    taken = live.getpeername()[1]
    r = api.post("/proxies", json={"name": "clash", "upstream": "127.0.0.1:1",
                                   "listen": f"127.0.0.1:{taken}"})
    assert r.status_code == 409 and "listen" in r.json()["error"]
    assert api.get("/proxies/clash").status_code == 404


def test_unknown_route_and_method_are_json_4xx(api):
    assert api.get("/nope").status_code == 404
    r = api.put("/proxies")
    assert r.status_code == 405 and r.json()["status"] == 405


def test_upstream_down_closes_the_client_only(api, live):
    port = int(api.post("/proxies", json={"name": "dead", "upstream": "127.0.0.1:9"})
               .json()["listen"].rsplit(":", 1)[1])
    with connect(port) as sock:
        sock.sendall(b"x")
        try:
            assert sock.recv(1) == b""
        except ConnectionResetError:
            pass
    api.delete("/proxies/dead")
