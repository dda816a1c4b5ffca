"""The API app in memory (httpx's ASGI transport): request ids, and /metrics only when enabled."""

from __future__ import annotations

import base64
import re

import httpx
import pytest

from chaos.proxy.__main__ import parse_args
from chaos.proxy.api import create_app
from chaos.proxy.collection import ProxyCollection
from chaos.proxy.request_ids import HEADER, RequestIds

pytestmark = pytest.mark.unit

XID = re.compile(r"[0-9a-v]{20}")


def test_request_ids_are_xids():
    # The example of github.com/rs/xid: time 1300816219, machine 60f486, pid e428, counter 4271561.
    ids = RequestIds(counter=4271560, clock=lambda: 1300816219, machine=bytes.fromhex("60f486"),
                     pid=0xE428)
    assert ids.next() == "9m4e2mr0ui3e8a215n4g"
    following = [ids.next() for _ in range(100)]
    assert all(XID.fullmatch(i) for i in following)
    assert following == sorted(following) and len(set(following)) == 100


def test_request_id_counter_wraps_at_24_bits():
    ids = RequestIds(counter=0xFFFFFE, clock=lambda: 7, machine=b"abc", pid=1)
    raw = [base64.b32hexdecode(ids.next().upper() + "====") for _ in range(2)]
    assert [r[9:] for r in raw] == [b"\xff\xff\xff", b"\x00\x00\x00"]
    assert all(r[:9] == b"\x00\x00\x00\x07abc\x00\x01" for r in raw)


async def request(app, method: str, path: str, **kwargs) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://proxy") as client:
        return await client.request(method, path, **kwargs)


@pytest.mark.parametrize("method, path, kwargs, status", [
    ("GET", "/version", {}, 200),
    ("GET", "/proxies", {}, 200),
    ("POST", "/proxies", {"content": b"{"}, 400),
    ("GET", "/proxies/missing", {}, 404),
    ("GET", "/nowhere", {}, 404),
    ("GET", "/proxies", {"headers": {"User-Agent": "Mozilla/5.0"}}, 403),
])
async def test_every_response_carries_a_new_request_id(method, path, kwargs, status):
    app = create_app(ProxyCollection(seed=1))
    first = await request(app, method, path, **kwargs)
    second = await request(app, method, path, **kwargs)
    assert first.status_code == second.status_code == status
    assert XID.fullmatch(first.headers[HEADER]) and XID.fullmatch(second.headers[HEADER])
    assert first.headers[HEADER] != second.headers[HEADER]


async def test_metrics_is_404_unless_proxy_metrics_is_on():
    off = await request(create_app(ProxyCollection(seed=1)), "GET", "/metrics")
    assert off.status_code == 404
    on = await request(create_app(ProxyCollection(seed=1), proxy_metrics=True), "GET", "/metrics")
    assert on.status_code == 200 and "toxiproxy_proxy_sent_bytes_total" in on.text


def test_proxy_metrics_flag_mirrors_toxiproxy_server():
    assert parse_args([]).proxy_metrics is False
    assert parse_args(["--proxy-metrics"]).proxy_metrics is True
