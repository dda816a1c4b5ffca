"""The server as a process: --config, --host 0.0.0.0, explicit listen addresses, shutdown."""

from __future__ import annotations

import json

import pytest

from chaos.proxy.process import ProxyServerError, ProxyServerProcess, free_port
from chaos.testing.proxy import TcpServer, connect, recv_exactly, refused
from chaos.toxiproxy import Toxiproxy, ToxiproxyUnreachable

pytestmark = pytest.mark.integration


def test_config_file_is_applied_at_start(tmp_path):
    with TcpServer() as upstream:
        port = free_port()
        config = tmp_path / "proxies.json"
        config.write_text(json.dumps([
            {"name": "a", "upstream": upstream.address, "listen": f"127.0.0.1:{port}"},
            {"name": "b", "upstream": upstream.address, "enabled": False}]))
        with ProxyServerProcess(config=config) as server, server.client() as tp:
            proxies = tp.proxies()
            assert set(proxies) == {"a", "b"} and not proxies["b"].enabled
            assert proxies["a"].listen == f"127.0.0.1:{port}"
            with connect(port) as sock:
                sock.sendall(b"cfg")
                assert recv_exactly(sock, 3) == b"cfg"


def test_bad_config_fails_fast_with_the_reason(tmp_path):
    config = tmp_path / "bad.json"
    config.write_text(json.dumps([{"name": "a"}]))
    with pytest.raises(ProxyServerError, match="missing required field: upstream"):
        ProxyServerProcess(config=config, attempts=1).start()


def test_binds_all_interfaces_and_explicit_listen_addresses():
    with TcpServer() as upstream, ProxyServerProcess(host="0.0.0.0") as server, \
            server.client() as tp:
        any_port, lo_port = free_port(), free_port()
        a = tp.create("any", upstream.address, listen=f"0.0.0.0:{any_port}")
        b = tp.create("lo", upstream.address, listen=f"127.0.0.1:{lo_port}")
        assert (a.listen, b.listen) == (f"0.0.0.0:{any_port}", f"127.0.0.1:{lo_port}")
        for port in (any_port, lo_port):
            with connect(port) as sock:
                sock.sendall(b"ok")
                assert recv_exactly(sock, 2) == b"ok"


def test_stop_ends_the_server_and_its_listeners():
    with TcpServer() as upstream:
        server = ProxyServerProcess().start()
        try:
            port = server.client().create("p", upstream.address).listen_port
            proc = server.proc
        finally:
            server.stop()
        assert proc.returncode is not None
        assert refused(port)
        with pytest.raises(ToxiproxyUnreachable, match="not ready after"):
            Toxiproxy(server.url).wait_ready(0.2)
