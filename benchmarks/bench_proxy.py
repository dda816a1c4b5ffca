"""Benchmark chaos.proxy against a direct connection measured in the same run (prints, no asserts).

    python benchmarks/bench_proxy.py [--samples 2000] [--bulk-mb 512] [--concurrent 100]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from chaos.proxy.process import ProxyServerProcess
from chaos.testing.proxy import TcpServer, connect, round_trips, sink


def rtt_stats(port: int, samples: int) -> tuple[float, float]:
    with connect(port) as sock:
        round_trips(sock, 200)  # warm up
        times = sorted(round_trips(sock, samples))
    return statistics.median(times) * 1000, times[int(len(times) * 0.99)] * 1000


def bulk_mb_per_s(port: int, megabytes: int) -> float:
    block = b"\xab" * (1 << 20)
    with connect(port, timeout=60) as sock:
        start = time.perf_counter()
        for _ in range(megabytes):
            sock.sendall(block)
        sock.shutdown(1)  # the sink answers the byte count after EOF
        answer = sock.recv(64)
        elapsed = time.perf_counter() - start
    assert int(answer) == megabytes << 20, answer
    return megabytes * (1 << 20) / elapsed / 1e6


def concurrent_errors(port: int, count: int, rounds: int = 20) -> int:
    async def client() -> int:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            for i in range(rounds):
                payload = f"{i:08d}".encode() * 16
                writer.write(payload)
                if await reader.readexactly(len(payload)) != payload:
                    return 1
            writer.close()
            return 0
        except (OSError, asyncio.IncompleteReadError):
            return 1

    async def run() -> int:
        return sum(await asyncio.gather(*(client() for _ in range(count))))

    return asyncio.run(run())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--bulk-mb", type=int, default=512)
    parser.add_argument("--concurrent", type=int, default=100)
    args = parser.parse_args()
    with TcpServer() as echo, TcpServer(sink()) as drain, \
            ProxyServerProcess(log_level="warning") as server, server.client() as tp:
        echo_proxy = tp.create("echo", echo.address).listen_port
        sink_proxy = tp.create("sink", drain.address).listen_port
        d_med, d_p99 = rtt_stats(echo.port, args.samples)
        p_med, p_p99 = rtt_stats(echo_proxy, args.samples)
        d_bulk = bulk_mb_per_s(drain.port, args.bulk_mb)
        p_bulk = bulk_mb_per_s(sink_proxy, args.bulk_mb)
        errors = concurrent_errors(echo_proxy, args.concurrent)
    rows = [
        ("RTT median (ms)", f"{d_med:.3f}", f"{p_med:.3f}", f"added {p_med - d_med:+.3f}"),
        ("RTT p99 (ms)", f"{d_p99:.3f}", f"{p_p99:.3f}", f"added {p_p99 - d_p99:+.3f}"),
        (f"bulk {args.bulk_mb} MiB (MB/s)", f"{d_bulk:.0f}", f"{p_bulk:.0f}",
         f"ratio {p_bulk / d_bulk:.2f}"),
        (f"{args.concurrent} concurrent conns", "-", f"{errors} errors", ""),
    ]
    print(f"{'figure':<28}{'direct':>12}{'proxied':>14}  note")
    for name, direct, proxied, note in rows:
        print(f"{name:<28}{direct:>12}{proxied:>14}  {note}")


if __name__ == "__main__":
    main()
