"""API conformance of chaos.proxy over real HTTP: raw requests, toxiproxy-python, our client."""

from __future__ import annotations

import httpx
import pytest
import toxiproxy as toxiproxy_python
from toxiproxy.api import APIConsumer

from chaos.proxy.process import ProxyServerProcess
from chaos.testing.proxy import TcpServer, clear, connect, recv_exactly, refused
from chaos.toxiproxy import Toxiproxy, ToxiproxyError
from chaos.wait import wait_for

pytestmark = pytest.mark.integration


class MetricsServerProcess(ProxyServerProcess):
    """The server with ``--proxy-metrics``, so that ``/metrics`` exists (404 without it)."""

    def command(self) -> list[str]:
        return [*super().command(), "--proxy-metrics"]


@pytest.fixture(scope="module")
def server():
    with MetricsServerProcess(seed=11) as proc:
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


def test_version_is_json_with_a_2x_version(api):
    r = api.get("/version")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/json")
    assert r.json()["version"].startswith("2.")


def test_create_defaults_and_shapes(api, upstream):
    r = api.post("/proxies", json={"name": "a", "upstream": upstream.address})
    assert r.status_code == 201
    body = r.json()
    assert set(body) == {"name", "listen", "upstream", "enabled", "toxics"}
    assert body["enabled"] is True and body["toxics"] == []
    host, port = body["listen"].rsplit(":", 1)
    assert host == "127.0.0.1" and int(port) > 0  # the real ephemeral port
    assert api.get("/proxies").json() == {"a": body}
    assert api.get("/proxies/a").json() == body
    with connect(int(port)) as sock:
        sock.sendall(b"ping")
        assert recv_exactly(sock, 4) == b"ping"


@pytest.mark.parametrize("body, message", [
    ({"upstream": "127.0.0.1:1"}, "missing required field: name"),
    ({"name": "x"}, "missing required field: upstream"),
    ({"name": "", "upstream": "127.0.0.1:1"}, "missing required field: name"),
])
def test_create_missing_field_is_400(api, body, message):
    r = api.post("/proxies", json=body)
    assert r.status_code == 400
    assert r.json() == {"error": message, "status": 400}


def test_create_existing_is_409_and_disabled_does_not_listen(api, upstream):
    r = api.post("/proxies", json={"name": "d", "upstream": upstream.address,
                                   "listen": "127.0.0.1:0", "enabled": False})
    assert r.status_code == 201 and r.json()["enabled"] is False
    r = api.post("/proxies", json={"name": "d", "upstream": upstream.address})
    assert r.status_code == 409
    assert r.json() == {"error": "proxy already exists", "status": 409}


@pytest.mark.parametrize("method", ["POST", "PATCH"])
def test_update_is_partial_and_disable_closes_everything(api, upstream, method):
    created = api.post("/proxies", json={"name": "u", "upstream": upstream.address}).json()
    port = int(created["listen"].rsplit(":", 1)[1])
    sock = connect(port)
    sock.sendall(b"1")
    assert recv_exactly(sock, 1) == b"1"
    r = api.request(method, "/proxies/u", json={"enabled": False})
    assert r.status_code == 200
    assert r.json() == {**created, "enabled": False}
    assert refused(port)
    sock.settimeout(5)
    try:
        assert sock.recv(1) == b""  # the live connection was closed
    except ConnectionResetError:
        pass
    sock.close()
    r = api.request(method, "/proxies/u", json={"enabled": True})
    assert r.json()["enabled"] is True and r.json()["listen"] == created["listen"]
    with connect(port) as again:
        again.sendall(b"2")
        assert recv_exactly(again, 1) == b"2"


def test_update_listen_and_upstream_restart_the_listener(api, upstream):
    created = api.post("/proxies", json={"name": "m", "upstream": "127.0.0.1:9"}).json()
    old_port = int(created["listen"].rsplit(":", 1)[1])
    r = api.patch("/proxies/m", json={"upstream": upstream.address, "listen": "127.0.0.1:0"})
    assert r.status_code == 200
    body = r.json()
    assert body["upstream"] == upstream.address
    new_port = int(body["listen"].rsplit(":", 1)[1])
    assert new_port != 0 and new_port != old_port
    with connect(new_port) as sock:
        sock.sendall(b"ok")
        assert recv_exactly(sock, 2) == b"ok"


def test_delete_is_204_then_404(api, upstream):
    port = int(api.post("/proxies", json={"name": "x", "upstream": upstream.address})
               .json()["listen"].rsplit(":", 1)[1])
    r = api.delete("/proxies/x")
    assert r.status_code == 204 and r.content == b""
    assert refused(port)
    for method in ("GET", "DELETE", "PATCH"):
        r = api.request(method, "/proxies/x", json={"enabled": True})
        assert r.status_code == 404
        assert r.json() == {"error": "proxy not found", "status": 404}


def test_toxic_crud_defaults_merge_and_uniqueness(api, upstream):
    api.post("/proxies", json={"name": "t", "upstream": upstream.address})
    r = api.post("/proxies/t/toxics", json={"type": "latency", "attributes": {"latency": 5}})
    assert r.status_code == 200
    assert r.json() == {"name": "latency_downstream", "type": "latency", "stream": "downstream",
                        "toxicity": 1.0, "attributes": {"latency": 5, "jitter": 0}}
    r = api.post("/proxies/t/toxics", json={"type": "latency", "stream": "upstream"})
    assert r.status_code == 200 and r.json()["name"] == "latency_upstream"
    r = api.post("/proxies/t/toxics", json={"type": "latency", "attributes": {"latency": 1}})
    assert r.status_code == 409
    assert r.json() == {"error": "toxic already exists", "status": 409}
    r = api.post("/proxies/t/toxics", json={"type": "bandwidth", "name": "latency_upstream"})
    assert r.status_code == 409  # names are unique per proxy, across streams
    listed = api.get("/proxies/t/toxics").json()
    assert [t["name"] for t in listed] == ["latency_upstream", "latency_downstream"]
    assert api.get("/proxies/t").json()["toxics"] == listed
    r = api.patch("/proxies/t/toxics/latency_downstream",
                  json={"attributes": {"jitter": 2}, "toxicity": 0.5})
    assert r.status_code == 200
    assert r.json()["attributes"] == {"latency": 5, "jitter": 2}
    assert r.json()["toxicity"] == 0.5
    r = api.post("/proxies/t/toxics/latency_downstream", json={"attributes": {"latency": 7}})
    assert r.json()["attributes"] == {"latency": 7, "jitter": 2} and r.json()["toxicity"] == 0.5
    assert api.get("/proxies/t/toxics/latency_downstream").json() == r.json()
    assert api.delete("/proxies/t/toxics/latency_downstream").status_code == 204
    r = api.get("/proxies/t/toxics/latency_downstream")
    assert r.status_code == 404 and r.json() == {"error": "toxic not found", "status": 404}


@pytest.mark.parametrize("type_, attributes", [
    ("latency", {"latency": 0, "jitter": 0}), ("bandwidth", {"rate": 0}),
    ("slow_close", {"delay": 0}), ("timeout", {"timeout": 0}), ("reset_peer", {"timeout": 0}),
    ("slicer", {"average_size": 0, "size_variation": 0, "delay": 0}),
    ("limit_data", {"bytes": 0}), ("noop", {}),
])
def test_every_toxic_type_and_its_attribute_names(api, upstream, type_, attributes):
    api.post("/proxies", json={"name": "k", "upstream": upstream.address})
    given = {**attributes, "average_size": 10} if type_ == "slicer" else attributes
    r = api.post("/proxies/k/toxics", json={"type": type_, "attributes": given})
    assert r.status_code == 200, r.text
    assert set(r.json()["attributes"]) == set(attributes)


def test_populate_keeps_identical_and_replaces_differing(api, upstream):
    r = api.post("/populate", json=[
        {"name": "p1", "upstream": upstream.address},
        {"name": "p2", "upstream": upstream.address, "listen": "127.0.0.1:0"}])
    assert r.status_code == 201
    first = {p["name"]: p for p in r.json()["proxies"]}
    assert set(first) == {"p1", "p2"}
    api.post("/proxies/p1/toxics", json={"type": "noop"})
    api.post("/proxies/p2/toxics", json={"type": "noop"})
    r = api.post("/populate", json=[
        {"name": "p1", "upstream": upstream.address},
        {"name": "p2", "upstream": "127.0.0.1:9"}])
    assert r.status_code == 201
    second = {p["name"]: p for p in r.json()["proxies"]}
    assert second["p1"]["listen"] == first["p1"]["listen"]
    assert [t["name"] for t in second["p1"]["toxics"]] == ["noop_downstream"]  # kept
    assert second["p2"]["upstream"] == "127.0.0.1:9" and second["p2"]["toxics"] == []


def test_populate_validates_everything_first(api, upstream):
    r = api.post("/populate", json=[{"name": "ok", "upstream": upstream.address},
                                    {"name": "bad"}])
    assert r.status_code == 400
    assert r.json() == {"error": "missing required field: upstream at proxy 2", "status": 400}
    assert api.get("/proxies").json() == {}


def test_reset_enables_and_clears_but_keeps_proxies(api, upstream):
    api.post("/proxies", json={"name": "r1", "upstream": upstream.address, "enabled": False})
    api.post("/proxies", json={"name": "r2", "upstream": upstream.address})
    api.post("/proxies/r2/toxics", json={"type": "timeout", "attributes": {"timeout": 0}})
    r = api.post("/reset")
    assert r.status_code == 204 and r.content == b""
    proxies = api.get("/proxies").json()
    assert set(proxies) == {"r1", "r2"}
    assert all(p["enabled"] and p["toxics"] == [] for p in proxies.values())


def test_metrics_count_bytes_per_proxy_and_direction(api, upstream):
    port = int(api.post("/proxies", json={"name": "mx", "upstream": upstream.address})
               .json()["listen"].rsplit(":", 1)[1])
    with connect(port) as sock:
        sock.sendall(b"x" * 1000)
        recv_exactly(sock, 1000)
    r = api.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    for kind in ("received", "sent"):
        for direction in ("upstream", "downstream"):
            line = next(line for line in r.text.splitlines()
                        if line.startswith(f"toxiproxy_proxy_{kind}_bytes_total{{")
                        and f'direction="{direction}"' in line and 'proxy="mx"' in line)
            assert line.endswith(" 1000")


def test_browsers_are_refused(api):
    r = api.get("/proxies", headers={"User-Agent": "Mozilla/5.0"})
    assert r.status_code == 403


# --- through toxiproxy-python (it keeps the server address in class attributes) --------------


@pytest.fixture
def toxiproxy_py(server, api):
    saved = APIConsumer.host, APIConsumer.port
    client = toxiproxy_python.Toxiproxy()
    client.update_api_consumer("127.0.0.1", server.port)
    try:
        yield client
    finally:
        APIConsumer.host, APIConsumer.port = saved


def test_toxiproxy_python_drives_the_server(toxiproxy_py, upstream):
    from toxiproxy.exceptions import InvalidToxic, NotFound, ProxyExists

    assert toxiproxy_py.running() and b"version" in toxiproxy_py.version()
    proxy = toxiproxy_py.create(upstream=upstream.address, name="py")
    assert proxy.enabled is True and proxy.listen.startswith("127.0.0.1:")
    with pytest.raises(ProxyExists):
        toxiproxy_py.create(upstream=upstream.address, name="py")
    assert set(toxiproxy_py.proxies()) == {"py"}
    proxy.add_toxic(type="latency", attributes={"latency": 3})
    toxic = proxy.get_toxic("latency_downstream")
    assert toxic.attributes == {"latency": 3, "jitter": 0} and toxic.toxicity == 1.0
    with pytest.raises(InvalidToxic):
        proxy.add_toxic(type="nope")
    proxy.destroy_toxic("latency_downstream")
    assert proxy.toxics() == {}
    port = int(proxy.listen.rsplit(":", 1)[1])
    with proxy.down():
        assert refused(port)
    wait_for(lambda: not refused(port), timeout=5.0, description="proxy re-enabled")
    assert toxiproxy_py.populate([{"name": "py2", "upstream": upstream.address,
                                   "listen": "127.0.0.1:0"}])
    assert toxiproxy_py.reset()
    assert proxy.destroy()
    with pytest.raises(NotFound):
        proxy.destroy()


# --- through chaos.toxiproxy -------------------------------------------------------------------


def test_wrapper_round_trip(server, api, upstream):
    with Toxiproxy(server.url) as tp:
        assert tp.version().startswith("2.")
        info = tp.create("w", upstream.address)
        assert info.listen_host == "127.0.0.1" and info.listen_port > 0 and info.enabled
        assert tp.get("w") == info and tp.proxies() == {"w": info}
        toxic = tp.add_toxic("w", "latency", latency=4, stream="upstream", toxicity=0.5)
        assert (toxic.name, toxic.stream, toxic.toxicity) == ("latency_upstream", "upstream", 0.5)
        assert tp.update_toxic("w", toxic.name, jitter=1).attributes == {"latency": 4, "jitter": 1}
        assert [t.name for t in tp.toxics("w")] == ["latency_upstream"]
        tp.remove_toxic("w", toxic.name)
        with tp.toxic("w", "noop", name="n"):
            assert [t.name for t in tp.toxics("w")] == ["n"]
        assert tp.toxics("w") == []
        assert tp.disable("w").enabled is False
        assert tp.enable("w").enabled is True
        with tp.disabled("w"):
            assert refused(info.listen_port)
        assert tp.get("w").enabled
        populated = tp.populate([{"name": "w", "upstream": upstream.address},
                                 {"name": "w2", "upstream": upstream.address}])
        assert [p.name for p in populated] == ["w", "w2"]
        tp.reset()
        tp.delete("w2")
        with pytest.raises(ToxiproxyError) as err:
            tp.get("w2")
        assert err.value.status == 404 and "proxy not found" in err.value.message


def test_two_wrappers_talk_to_two_servers(server, api, upstream):
    with ProxyServerProcess() as other, Toxiproxy(server.url) as a, other.client() as b:
        a.create("only-a", upstream.address)
        b.create("only-b", upstream.address)
        assert set(a.proxies()) == {"only-a"} and set(b.proxies()) == {"only-b"}
