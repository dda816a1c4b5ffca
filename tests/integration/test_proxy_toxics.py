"""Each toxic measured end to end over real TCP, through a chaos.proxy server process."""

from __future__ import annotations

import asyncio
import time

import pytest

from chaos.proxy.process import ProxyServerProcess
from chaos.testing.proxy import (
    TcpServer,
    blob,
    clear,
    connect,
    median_ms,
    recv_all,
    recv_exactly,
    refused,
    round_trips,
)

pytestmark = pytest.mark.integration

SAMPLES = 40


@pytest.fixture(scope="module")
def server():
    with ProxyServerProcess(seed=5) as proc:
        yield proc


@pytest.fixture(scope="module")
def echo_server():
    with TcpServer() as srv:
        yield srv


@pytest.fixture
def tp(server):
    with server.client() as client:
        yield client
        clear(client)


@pytest.fixture
def echo(tp, echo_server):
    """A proxy named ``echo`` in front of the echo server; yields its port."""
    return tp.create("echo", echo_server.address).listen_port


def direct_median_ms(port: int) -> float:
    with connect(port) as sock:
        round_trips(sock, 5)
        return median_ms(round_trips(sock, SAMPLES))


def test_latency_adds_L_to_L_plus_2_ms_at_the_median(tp, echo, echo_server):
    base = direct_median_ms(echo_server.port)
    tp.add_toxic("echo", "latency", latency=25)
    with connect(echo) as sock:
        added = median_ms(round_trips(sock, SAMPLES)) - base
    assert 25.0 <= added <= 27.0, f"added {added:.2f} ms for latency 25 ms"


def test_jitter_spreads_delays_within_bounds(tp, echo):
    tp.add_toxic("echo", "latency", latency=30, jitter=10)
    with connect(echo) as sock:
        samples = [t * 1000 for t in round_trips(sock, SAMPLES)]
    assert min(samples) >= 20.0 - 0.5, samples
    assert max(samples) <= 40.0 + 15.0, samples  # upper slack for a loaded machine
    assert max(samples) - min(samples) >= 8.0, f"no spread: {samples}"


def test_toxics_apply_to_existing_connections(tp, echo):
    with connect(echo) as sock:
        before = median_ms(round_trips(sock, 10))
        tp.add_toxic("echo", "latency", latency=30)
        during = median_ms(round_trips(sock, 10))
        tp.remove_toxic("echo", "latency_downstream")
        after = median_ms(round_trips(sock, 10))
    assert before < 10 and during >= 30 and after < 10, (before, during, after)


def test_bandwidth_within_15_percent_of_the_rate(tp):
    size, rate_kb = 1_000_000, 2000  # 1 MB at 2000 KB/s: 0.5 s
    with TcpServer(blob(size)) as source:
        port = tp.create("bw", source.address).listen_port
        tp.add_toxic("bw", "bandwidth", rate=rate_kb)
        start = time.perf_counter()
        with connect(port) as sock:
            data = recv_all(sock)
        elapsed = time.perf_counter() - start
    assert len(data) == size
    measured = size / elapsed / 1000
    assert abs(measured - rate_kb) <= 0.15 * rate_kb, f"{measured:.0f} KB/s for {rate_kb}"


def test_timeout_holds_data_then_closes(tp, echo):
    tp.add_toxic("echo", "timeout", timeout=300)
    with connect(echo) as sock:
        start = time.perf_counter()
        sock.sendall(b"held")
        try:
            data = recv_all(sock)
        except ConnectionResetError:
            data = b""
        elapsed = time.perf_counter() - start
    assert data == b"" and 0.25 <= elapsed <= 3.0, (data, elapsed)


def test_timeout_zero_holds_until_removed_and_removal_closes(tp, echo):
    tp.add_toxic("echo", "timeout", timeout=0)
    with connect(echo) as sock:
        sock.sendall(b"held")
        sock.settimeout(0.3)
        with pytest.raises(TimeoutError):
            sock.recv(10)  # held: no data, no close
        sock.settimeout(5)
        tp.remove_toxic("echo", "timeout_downstream")
        start = time.perf_counter()
        try:
            assert sock.recv(10) == b""
        except ConnectionResetError:
            pass
        assert time.perf_counter() - start < 2.0


def test_reset_peer_resets_the_connection(tp, echo):
    tp.add_toxic("echo", "reset_peer", stream="upstream", timeout=50)
    with connect(echo) as sock:
        sock.sendall(b"boom")
        with pytest.raises(ConnectionResetError):
            sock.recv(10)


def test_limit_data_closes_after_exactly_n_bytes(tp):
    with TcpServer(blob(200_000)) as source:
        port = tp.create("lim", source.address).listen_port
        tp.add_toxic("lim", "limit_data", bytes=12_345)
        with connect(port) as sock:
            data = recv_all(sock)
    assert len(data) == 12_345
    assert data == (bytes(range(256)) * 100)[:12_345]


def test_slicer_delivers_every_byte_in_smaller_chunks(tp, echo):
    tp.add_toxic("echo", "slicer", average_size=100, size_variation=50, delay=2000)
    payload = bytes(range(256)) * 20  # 5120 bytes, one write
    with connect(echo) as sock:
        sock.sendall(payload)
        chunks, got = [], 0
        while got < len(payload):
            chunk = sock.recv(65536)
            assert chunk, "closed early"
            chunks.append(chunk)
            got += len(chunk)
    assert b"".join(chunks) == payload
    assert len(chunks) >= 10, [len(c) for c in chunks]


def test_slow_close_delays_the_close(tp):
    with TcpServer(blob(10)) as source:
        port = tp.create("sc", source.address).listen_port
        tp.add_toxic("sc", "slow_close", delay=300)
        start = time.perf_counter()
        with connect(port) as sock:
            assert recv_all(sock) == bytes(range(10))
        elapsed = time.perf_counter() - start
    assert 0.28 <= elapsed <= 3.0, elapsed


def test_noop_passes_everything(tp, echo):
    tp.add_toxic("echo", "noop")
    with connect(echo) as sock:
        sock.sendall(b"x" * 100_000)
        assert recv_exactly(sock, 100_000) == b"x" * 100_000


def test_disabled_proxy_refuses_and_enable_restores(tp, echo):
    tp.disable("echo")
    assert refused(echo)
    tp.enable("echo")
    with connect(echo) as sock:
        assert round_trips(sock, 1)


def test_reset_restores_everything(tp, echo):
    tp.add_toxic("echo", "timeout", timeout=0)
    tp.add_toxic("echo", "latency", stream="upstream", latency=200)
    tp.disable("echo")
    tp.reset()
    with connect(echo) as sock:
        assert median_ms(round_trips(sock, 10)) < 20


def affected_connections(port: int, count: int, threshold_s: float) -> list[bool]:
    """Open ``count`` connections in order, then one concurrent round trip on each: those
    slower than the fastest by ``threshold_s`` or more (the 200 round trips queue up behind
    each other on a busy machine, so every one is slower than an idle one would be)."""

    async def run() -> list[bool]:
        conns = [await asyncio.open_connection("127.0.0.1", port) for _ in range(count)]
        try:
            async def probe(reader, writer) -> float:
                start = time.perf_counter()
                writer.write(b"?")
                await reader.readexactly(1)
                return time.perf_counter() - start

            times = await asyncio.gather(*(probe(r, w) for r, w in conns))
        finally:
            for _, writer in conns:
                writer.close()
        fastest = min(times)
        return [t - fastest >= threshold_s for t in times]

    return asyncio.run(run())


def test_toxicity_half_affects_about_half_of_200_connections(tp, echo):
    tp.add_toxic("echo", "latency", latency=1000, toxicity=0.5)
    hits = sum(affected_connections(echo, 200, threshold_s=0.5))
    assert 70 <= hits <= 130, hits  # binomial(200, 0.5): mean 100, sd 7

