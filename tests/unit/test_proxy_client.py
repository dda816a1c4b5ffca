"""chaos.toxiproxy over httpx.MockTransport: requests sent, replies parsed, errors raised."""

from __future__ import annotations

import json

import httpx
import pytest

from chaos.proxy.addresses import join, split
from chaos.proxy.errors import ApiError
from chaos.proxy.metrics import ByteMeter, render
from chaos.toxiproxy import ProxyInfo, Toxiproxy, ToxiproxyError, ToxiproxyUnreachable

pytestmark = pytest.mark.unit

PROXY = {"name": "a", "listen": "127.0.0.1:4000", "upstream": "127.0.0.1:5000",
         "enabled": True, "toxics": []}


def client(handler) -> Toxiproxy:
    return Toxiproxy("http://tp:8474", transport=httpx.MockTransport(handler))


def test_create_sends_the_documented_body_and_parses_the_reply():
    seen = []

    def handler(request):
        seen.append((request.method, request.url.path, json.loads(request.content)))
        return httpx.Response(201, json=PROXY)

    info = client(handler).create("a", "127.0.0.1:5000")
    assert seen == [("POST", "/proxies", {"name": "a", "upstream": "127.0.0.1:5000",
                                          "listen": "127.0.0.1:0", "enabled": True})]
    assert info == ProxyInfo.from_json(PROXY) and info.listen_port == 4000


def test_errors_carry_status_and_toxiproxy_message():
    tp = client(lambda r: httpx.Response(404, json={"error": "proxy not found", "status": 404}))
    with pytest.raises(ToxiproxyError) as err:
        tp.get("zz")
    assert err.value.status == 404 and "proxy not found" in err.value.message


def test_toxic_calls_and_name_quoting():
    seen = []

    def handler(request):
        seen.append((request.method, request.url.raw_path.decode(), request.content))
        if request.method == "DELETE":
            return httpx.Response(204)
        return httpx.Response(200, json={"name": "n", "type": "latency", "stream": "upstream",
                                         "toxicity": 0.5, "attributes": {"latency": 1}})

    tp = client(handler)
    tp.add_toxic("a b", "latency", stream="upstream", toxicity=0.5, latency=1)
    tp.update_toxic("a b", "n", jitter=2)
    tp.remove_toxic("a b", "n")
    assert [s[1] for s in seen] == ["/proxies/a%20b/toxics", "/proxies/a%20b/toxics/n",
                                    "/proxies/a%20b/toxics/n"]
    assert json.loads(seen[0][2]) == {"type": "latency", "stream": "upstream", "toxicity": 0.5,
                                      "attributes": {"latency": 1}}
    assert json.loads(seen[1][2]) == {"attributes": {"jitter": 2}}


def test_version_accepts_json_and_plain_text():
    assert client(lambda r: httpx.Response(200, json={"version": "2.9.0"})).version() == "2.9.0"
    assert client(lambda r: httpx.Response(200, text="2.1.4")).version() == "2.1.4"


def test_wait_ready_raises_a_clear_error_at_the_deadline():
    def refuse(request):
        raise httpx.ConnectError("refused")

    with pytest.raises(ToxiproxyUnreachable, match="not ready after 0.1s"):
        client(refuse).wait_ready(0.1, interval_s=0.01)


def test_listen_helpers_handle_ipv6():
    info = ProxyInfo(name="x", listen="[::]:8080", upstream="u:1", enabled=True)
    assert (info.listen_host, info.listen_port) == ("::", 8080)


def test_addresses_and_metrics():
    assert split("[::1]:80", field="listen", allow_zero=False) == ("::1", 80)
    assert split(":0", field="listen", allow_zero=True) == ("127.0.0.1", 0)
    assert join("::1", 80) == "[::1]:80"
    for bad in ("nohost", "h:x", "h:70000", "h:0"):
        with pytest.raises(ApiError):
            split(bad, field="upstream", allow_zero=False)
    text = render([("p", "l:1", "u:2", "upstream", ByteMeter(received=3, sent=2))])
    assert 'toxiproxy_proxy_sent_bytes_total{direction="upstream",listener="l:1",proxy="p",' \
           'upstream="u:2"} 2' in text
