"""chaos.traffic: the outcome of an error (typed, never by message), and both adapters over
mock transports (httpx's for the gateway, system.transport's for the smart client)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import re
import socket
import threading

import httpx
import pytest

from chaos import traffic
from chaos.traffic import (
    ConnectFailed,
    ConnectionLost,
    GatewayKV,
    KVError,
    Rejected,
    ServerError,
    SmartKV,
    Timeout,
    Unavailable,
    outcome,
    version_key,
    version_text,
)
from system.config import ClientConfig
from system.coordinator import QuorumError
from system.quorum import Tally
from system.transport import MockTransport, Reply, TransportError

pytestmark = pytest.mark.unit


# ---- outcome -----------------------------------------------------------------------------
@pytest.mark.parametrize("exc,expected", [
    (Unavailable("write", acks=0, needed=2, definite=True), "fail"),
    (Unavailable("write", acks=1, needed=2, definite=False), "info"),
    (Unavailable("write", acks=0, needed=2, definite=False), "info"),  # a replica timed out
    (Rejected("write", 400, "bad key"), "fail"),
    (ConnectFailed("write: cannot connect"), "fail"),
    (Timeout("read: no answer in time"), "info"),
    (ConnectionLost("write: connection lost"), "info"),
    (ServerError("write: HTTP 502"), "info"),
    (TransportError("a:1", "cannot connect", definite=True), "fail"),
    (TransportError("a:1", "no answer", definite=False), "info"),
    (TimeoutError("definite"), "info"),  # the message never decides
    (RuntimeError("quorum not reached: no replica reached"), "info"),
    (KVError("anything"), "info"),
])
def test_outcome_is_fail_only_when_the_error_says_definite(exc, expected):
    assert outcome(exc) == expected


def test_outcome_of_a_quorum_error_follows_its_definite_flag():
    tally = Tally(needed=2, total=3)
    assert outcome(QuorumError("write", "k", 2, tally, ("a",), 1, definite=True)) == "fail"
    assert outcome(QuorumError("write", "k", 2, tally, ("a",), 1, definite=False)) == "info"


def test_a_truthy_but_not_true_definite_is_not_trusted():
    class Odd(KVError):
        definite = "yes"

    assert outcome(Odd("x")) == "info"


def test_version_text_orders_like_the_system_versions():
    a, b = version_text([1700, 2, "n1"]), version_text([1700, 10, "gateway@h:1"])
    assert a == "1700.2@n1" and version_key(a) < version_key(b)
    assert version_key(b) == (1700, 10, "gateway@h:1") and version_text(None) is None


# ---- the gateway adapter over httpx.MockTransport ----------------------------------------
VERSION = [1796291105418, 3, "gateway@127.0.0.1:5000"]


def gateway(handler) -> GatewayKV:
    return GatewayKV("http://gw:1", timeout=1, transport=httpx.MockTransport(handler))


def test_gateway_put_and_get_speak_the_documented_api():
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append((request.method, request.url.path, request.content))
        if request.method == "POST":
            return httpx.Response(200, json={"key": "k", "version": VERSION, "acks": 2})
        if request.url.path == "/data/k":
            return httpx.Response(200, json={"found": True, "value": "v", "version": VERSION})
        return httpx.Response(404, json={"found": False})

    kv = gateway(handler)
    assert kv.put("k", "v") == "1796291105418.3@gateway@127.0.0.1:5000"
    assert kv.get("k") == ("v", "1796291105418.3@gateway@127.0.0.1:5000")
    assert kv.get("missing") == (None, None)
    assert seen[0] == ("POST", "/data", b'{"key":"k","value":"v"}')


def test_the_gateway_tells_what_each_operation_cost():
    """Attempts and replica requests come from the gateway's answer, per calling thread,
    whatever the outcome; an answer without them leaves them unknown."""
    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            return httpx.Response(200, json={"key": "k", "version": VERSION, "attempts": 2,
                                             "requests": 4})
        if request.url.path == "/data/k":
            return httpx.Response(503, json={"error": "quorum", "needed": 2, "acks": 0,
                                             "definite": True, "attempts": 4, "requests": 6})
        return httpx.Response(404, json={"found": False})

    kv = gateway(handler)
    kv.put("k", "v")
    assert kv.tries() == (2, 4)
    with pytest.raises(Unavailable):
        kv.get("k")
    assert kv.tries() == (4, 6)
    kv.get("missing")
    assert kv.tries() == (None, None)


@pytest.mark.parametrize("body,kind,expected", [
    ({"error": "quorum not reached: 0 of 2 needed", "needed": 2, "acks": 0, "definite": True},
     Unavailable, "fail"),
    ({"error": "quorum not reached: 1 of 2 needed", "needed": 2, "acks": 1, "definite": False},
     Unavailable, "info"),
    ({"error": "quorum not reached: 0 of 2 needed", "needed": 2, "acks": 0},  # no flag: unsure
     Unavailable, "info"),
])
def test_gateway_503_is_definite_only_as_its_body_says(body, kind, expected):
    kv = gateway(lambda request: httpx.Response(503, json=body))
    with pytest.raises(kind) as err:
        kv.put("k", "v")
    assert outcome(err.value) == expected
    assert "k" not in str(err.value).split(":")[0]  # the message names the kind, not the key


@pytest.mark.parametrize("status,kind,expected", [
    (400, Rejected, "fail"), (413, Rejected, "fail"), (500, ServerError, "info"),
    (502, ServerError, "info"), (503, ServerError, "info"),  # a 503 without the counts
])
def test_gateway_http_errors_are_typed(status, kind, expected):
    kv = gateway(lambda request: httpx.Response(status, text="nope"))
    with pytest.raises(kind) as err:
        kv.get("k")
    assert outcome(err.value) == expected


@pytest.mark.parametrize("raised,kind,expected", [
    (httpx.ConnectError("refused"), ConnectFailed, "fail"),
    (httpx.ConnectTimeout("connect"), ConnectFailed, "fail"),
    (httpx.ReadTimeout("read"), Timeout, "info"),
    (httpx.WriteTimeout("write"), Timeout, "info"),
    (httpx.RemoteProtocolError("server disconnected"), ConnectionLost, "info"),
    (httpx.ReadError("reset"), ConnectionLost, "info"),
])
def test_gateway_transport_failures_are_typed(raised, kind, expected):
    def handler(request):
        raise raised

    kv = gateway(handler)
    for call in (lambda: kv.put("k", "v"), lambda: kv.get("k")):
        with pytest.raises(kind) as err:
            call()
        assert outcome(err.value) == expected


def test_gateway_quotes_the_key_in_the_path():
    paths = []

    def handler(request):
        paths.append(request.url.raw_path)
        return httpx.Response(404)

    gateway(handler).get("a/b c")
    assert paths == [b"/data/a%2Fb%20c"]


# ---- the smart-client adapter over system.transport.MockTransport ------------------------
MEMBERS = {"members": [{"id": n, "address": f"{n}:1", "status": "alive"} for n in "abc"]}


def smart(handler, **config) -> SmartKV:
    async def handle(method, address, path, body):
        if path.startswith("/nodes"):
            return Reply(200, MEMBERS)
        return await handler(address, path, body)

    cfg = ClientConfig(registry="http://reg:1", refresh_interval=0, request_timeout=0.05,
                       retries=1, backoff_base=0.001, backoff_cap=0.002, seed=1, **config)
    return SmartKV(cfg, transport=MockTransport(handle))


def test_smart_put_returns_the_version_and_get_the_newest_value():
    store: dict = {}

    async def handler(address, path, body):
        if path == "/internal/write":
            store.setdefault(address, {})[body["key"]] = body
            return Reply(200, {"applied": True})
        rec = store.get(address, {}).get(body["key"])
        return Reply(200, {"found": False} if rec is None else
                     {"found": True, "value": rec["value"], "version": rec["version"]})

    with smart(handler) as kv:
        version = kv.put("k", "v1")
        assert version is not None and version_key(version)[2].startswith("client-")
        assert kv.get("k") == ("v1", version)
        assert kv.get("other") == (None, None)


def test_smart_quorum_error_with_no_replica_reached_is_a_definite_failure():
    async def handler(address, path, body):
        raise TransportError(address, "cannot connect", definite=True)

    with smart(handler) as kv, pytest.raises(Unavailable) as err:
        kv.put("k", "v")
    assert err.value.definite and outcome(err.value) == "fail"


def test_smart_quorum_error_after_replica_timeouts_may_have_happened():
    async def handler(address, path, body):
        await asyncio.sleep(1)  # beyond the 0.05 s request timeout
        return Reply(200, {"applied": True})

    with smart(handler) as kv, pytest.raises(Unavailable) as err:
        kv.put("k", "v")
    assert not err.value.definite and outcome(err.value) == "info"


def test_smart_rejects_an_invalid_key_definitely():
    async def handler(address, path, body):
        raise AssertionError("nothing may be sent")

    with smart(handler) as kv, pytest.raises(Rejected) as err:
        kv.put("", "v")
    assert outcome(err.value) == "fail"


# ---- the gateway adapter's socket client (the one it uses under gevent) ------------------
class CannedServer:
    """A loopback HTTP server answering each request with the next of ``answers`` (raw
    bytes; None: close the connection without answering; "hang": never answer)."""

    def __init__(self, answers: list) -> None:
        self.answers = list(answers)
        self.requests: list[bytes] = []
        self.connections = 0
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.stop = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while self.answers:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._talk, args=(conn,), daemon=True).start()

    def _talk(self, conn: socket.socket) -> None:
        with conn:
            buf = b""
            while self.answers:
                while b"\r\n\r\n" not in buf:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    buf += chunk
                head, _, buf = buf.partition(b"\r\n\r\n")
                length = int(re.search(rb"content-length: (\d+)", head, re.I).group(1))
                while len(buf) < length:
                    buf += conn.recv(65536)
                self.requests.append(head + b"\r\n\r\n" + buf[:length])
                buf = buf[length:]
                answer = self.answers.pop(0)
                if answer is None:
                    return
                if answer == "hang":
                    self.stop.wait(10)
                    return
                conn.sendall(answer)

    def close(self) -> None:
        self.stop.set()
        self.sock.close()


def answer(status: int, body: dict, *, close: bool = False) -> bytes:
    data = json.dumps(body).encode()
    return (f"HTTP/1.1 {status} X\r\ncontent-type: application/json\r\n"
            f"content-length: {len(data)}\r\n{'connection: close' + chr(13) + chr(10) if close else ''}"
            f"\r\n").encode() + data


@pytest.fixture
def canned(monkeypatch):
    """A GatewayKV with the client it uses under gevent, over a CannedServer."""
    monkeypatch.setattr(traffic, "_gevent_patched", lambda: True)
    servers = []

    def make(answers, timeout=2.0):
        server = CannedServer(answers)
        servers.append(server)
        return GatewayKV(server.url, timeout=timeout), server
    yield make
    for server in servers:
        server.close()


def test_socket_client_speaks_the_api_over_one_kept_alive_connection(canned):
    parts = [b'{"found"', b':true,"value":"v","version":[1,2,"n1"]}', b""]
    chunked = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n" + b"".join(
        b"%x\r\n%s\r\n" % (len(part), part) for part in parts)
    kv, server = canned([answer(200, {"version": VERSION}), chunked, answer(404, {})])
    with kv:
        assert kv.put("k", "v") == "1796291105418.3@gateway@127.0.0.1:5000"
        assert kv.get("a/b") == ("v", "1.2@n1")
        assert kv.get("missing") == (None, None)
    assert server.connections == 1
    first = server.requests[0]
    assert first.startswith(b"POST /data HTTP/1.1\r\n")
    assert first.endswith(b'\r\n\r\n{"key":"k","value":"v"}')
    assert server.requests[1].startswith(b"GET /data/a%2Fb HTTP/1.1\r\n")


def test_socket_client_reconnects_after_connection_close(canned):
    kv, server = canned([answer(200, {"version": VERSION}, close=True),
                         answer(200, {"version": VERSION})])
    with kv:
        kv.put("k", "v1")
        kv.put("k", "v2")
    assert server.connections == 2


def test_socket_client_does_not_reuse_a_connection_idle_too_long(canned, fake):
    kv, server = canned([answer(200, {"version": VERSION})] * 3)
    kv._http._clock = lambda: fake.now
    with kv:
        kv.put("k", "v1")
        fake.now += 1.0
        kv.put("k", "v2")  # reused
        fake.now += 5.0  # the server may be closing it by now
        kv.put("k", "v3")
    assert server.connections == 2


def test_socket_client_failures_are_typed(canned):
    kv, server = canned([None, "hang", answer(503, {"needed": 2, "acks": 0, "definite": True})],
                        timeout=0.3)
    with kv:
        with pytest.raises(ConnectionLost) as lost:  # closed after the request was sent
            kv.put("k", "v")
        with pytest.raises(Timeout) as late:
            kv.put("k", "v")
        with pytest.raises(Unavailable) as unavailable:
            kv.put("k", "v")
    assert [outcome(e.value) for e in (lost, late, unavailable)] == ["info", "info", "fail"]
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with GatewayKV(f"http://127.0.0.1:{port}", timeout=0.3) as refused, \
            pytest.raises(ConnectFailed) as err:
        refused.get("k")
    assert outcome(err.value) == "fail"


def test_node_gateways_are_served_under_a_path_and_drawn_per_operation(canned, monkeypatch):
    """A node's gateway API lives under /gateway: both clients keep the path; each
    operation goes to a node drawn from the seeded RNG."""
    _, first = canned([answer(200, {"version": VERSION})] * 4)
    _, second = canned([answer(200, {"version": VERSION})] * 4)
    kv = traffic.NodeGatewaysKV([first.url, second.url], 2.0, rng=random.Random(3))
    with contextlib.closing(kv):
        for i in range(6):
            kv.put(f"k{i}", "v")
    sent = first.requests + second.requests
    assert len(sent) == 6 and first.requests and second.requests
    assert all(r.startswith(b"POST /gateway/data HTTP/1.1\r\n") for r in sent)
