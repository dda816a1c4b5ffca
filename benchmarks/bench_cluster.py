"""Throughput and latency of the cluster on this machine: prints figures, asserts nothing.

    python benchmarks/bench_cluster.py [--duration 8] [--concurrency 16] [--big-keys 1000000]
        [--mesh] [--locust-processes 2] [--skip-size] [--skip-locust]

1. 50/50 writes and reads on random keys through the smart client (reading from all N owners,
   then hedged: R owners first, the others only if those are slow), then through the
   registry gateway; 2. writes only, each client's row followed by the same writes through
   Locust (``chaos.load.Load``, as a chaos run drives it: every operation recorded into the
   history) and their ratio: same workload (100-byte values on --keys random keys shared by
   all users), same concurrency, same cluster and mesh, same client settings; 3. write-only
   throughput with 10k keys stored, then with --big-keys stored (preloaded straight into
   each node's store), and their ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import tempfile
import time
from pathlib import Path

import httpx
import orjson

from chaos.history import OpType
from chaos.load import Load
from chaos.runtime.base import ClusterSpec
from chaos.runtime.local import LocalRuntime
from chaos.traffic import Workload
from system.client import SmartClient, new_event_loop
from system.config import ClientConfig, ClusterSettings
from system.fasthttp import PooledTransport
from system.storage import Record, SQLiteStore
from system.transport import AiohttpTransport
from system.versions import Version


def pct(samples: list[float], q: float) -> float:
    if not samples:
        return float("nan")
    s = sorted(samples)
    return s[min(len(s) - 1, int(q * len(s)))] * 1000


# the client settings of every row, Locust's included (they matter only under faults)
REQUEST_TIMEOUT, RETRIES = 5.0, 2
GATEWAY_TIMEOUT = REQUEST_TIMEOUT * (RETRIES + 1)  # the gateway retries by itself


async def drive(op, concurrency: int, duration: float, write_ratio: float, keys: int, seed: int):
    """(stats, errors, CPU seconds this process spent meanwhile: the load generator's)."""
    lat = {"write": [], "read": []}
    errors = 0
    stop = time.perf_counter() + duration

    async def worker(wid: int):
        nonlocal errors
        rng = random.Random(seed * 1000 + wid)
        while time.perf_counter() < stop:
            kind = "write" if rng.random() < write_ratio else "read"
            key = f"bench-{rng.randrange(keys)}"
            t = time.perf_counter()
            try:
                await op(kind, key, "x" * 100)
                lat[kind].append(time.perf_counter() - t)
            except Exception:
                errors += 1

    started, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(worker(i) for i in range(concurrency)))
    elapsed = time.perf_counter() - started
    return {k: {"per_s": len(v) / elapsed, "p50_ms": pct(v, 0.5), "p99_ms": pct(v, 0.99),
                "n": len(v)} for k, v in lat.items()}, errors, time.process_time() - cpu


async def via_client(registry: str, args, write_ratio: float, transport=None, hedge_after=0.0):
    settings = httpx.get(f"{registry}/cluster-status", timeout=5).json()["settings"]
    config = ClientConfig(registry=registry, seed=args.seed, hedge_after=hedge_after,
                          cluster=ClusterSettings(**settings),  # as Locust's users get them
                          request_timeout=REQUEST_TIMEOUT, retries=RETRIES)
    async with SmartClient(config, transport=transport) as c:
        async def op(kind, key, value):
            if kind == "write":
                await c.put(key, value)
            else:
                await c.get(key)
        await drive(op, args.concurrency, 1.0, write_ratio, args.keys, args.seed)  # warm-up
        return await drive(op, args.concurrency, args.duration, write_ratio, args.keys, args.seed)


async def via_gateway(registry: str, args, write_ratio: float):
    """One HTTP request per operation to the registry's gateway (the lean transport as the
    load generator, so it takes as little as possible of the CPU the cluster needs)."""
    address = registry.split("://", 1)[-1]
    transport = PooledTransport()

    async def op(kind, key, value):
        if kind == "write":
            reply = await transport.request("POST", address, "/data", timeout=GATEWAY_TIMEOUT,
                                            json={"key": key, "value": value})
            ok = reply.status == 200
        else:
            reply = await transport.request("GET", address, f"/data/{key}",
                                            timeout=GATEWAY_TIMEOUT)
            ok = reply.status in (200, 404)
        if not ok:
            raise RuntimeError(reply.status)
    try:
        await drive(op, args.concurrency, 1.0, write_ratio, args.keys, args.seed)
        return await drive(op, args.concurrency, args.duration, write_ratio, args.keys, args.seed)
    finally:
        await transport.close()


def via_locust(registry: str, args, client: str, workdir: str):
    """Write-only through Locust (``args.concurrency`` users in ``--locust-processes``
    processes), the workload of the rows it is compared with: the ``shared`` pattern, random
    keys among ``--keys`` that all users write, as ``drive`` does (``own`` would give each
    user keys of its own: 16 times the key space). Rates from the recorded history, the first
    second left out as warm-up, as ``drive``'s warm-up run is."""
    workload = Workload(client=client, users=args.concurrency, processes=args.locust_processes,
                        duration=args.duration + 1, pattern="shared", keys=args.keys,
                        write_ratio=1.0, value_size=100, request_timeout=REQUEST_TIMEOUT,
                        retries=RETRIES)
    directory = Path(workdir) / f"locust-{client}-{time.monotonic_ns()}"
    t0 = time.monotonic()
    with Load(workload, host=registry, seed=args.seed, directory=directory, t0=t0) as load:
        load.start()
        time.sleep(1.0)  # a window inside the run, for Locust's CPU in steady state
        cpu = [(time.monotonic() - t0, load.cpu_seconds)]
        time.sleep(max(args.duration - 1.0, 0.5))
        cpu.append((time.monotonic() - t0, load.cpu_seconds))
        load.wait()
        history = load.history()
    lat: dict[str, list[float]] = {"write": [], "read": []}
    errors = 0
    ops = history.client_ops()
    start = ops[0].time + 1.0 if ops else 0.0
    end = max((op.time for op in ops), default=start)
    for invoke, done in history.completions():
        if invoke.time < start:
            continue
        if done.type is OpType.OK:
            lat[done.f].append(done.time - invoke.time)
        elif done.error != "interrupted":
            errors += 1
    elapsed = max(end - start, 1e-9)
    stats = {k: {"per_s": len(v) / elapsed, "p50_ms": pct(v, 0.5), "p99_ms": pct(v, 0.99),
                 "n": len(v)} for k, v in lat.items()}
    (since, cpu0), (until, cpu1) = cpu
    done = sum(1 for _, op in history.completions()
               if op.type is OpType.OK and since <= op.time < until)
    return (stats, errors), (cpu1 - cpu0) / max(done, 1)


def run(coro):
    """Run on uvloop when installed, as the services do."""
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        return runner.run(coro)


def row(label: str, res) -> None:
    stats, errors = res[:2]
    w, r = stats["write"], stats["read"]
    print(f"{label:<34} {w['per_s']:>8.0f} {w['p50_ms']:>7.1f} {w['p99_ms']:>7.1f} "
          f"{r['per_s']:>8.0f} {r['p50_ms']:>7.1f} {r['p99_ms']:>7.1f} {errors:>6}")


def locust_row(registry: str, args, workdir: str, client: str, name: str, base) -> None:
    """The Locust row of ``client`` right after the row it is compared with (``base``), so
    that both see the machine in the same state."""
    if args.skip_locust:
        return
    res, cpu_per_op = via_locust(registry, args, client, workdir)
    row(f"locust {client}, writes only", res)
    locust_rate, base_rate = res[0]["write"]["per_s"], base[0]["write"]["per_s"]
    base_cpu = base[2] / max(base[0]["write"]["n"], 1)
    print(f"  locust/{name} {locust_rate:.0f}/{base_rate:.0f} writes/s = "
          f"{locust_rate / max(base_rate, 1e-9):.2f} (same writes: {args.keys:,} shared random "
          f"keys, {args.concurrency} at a time, through {args.locust_processes} Locust "
          f"process(es), each recorded)")
    print(f"  load generator CPU per write: Locust {cpu_per_op * 1000:.2f} ms, "
          f"{name} row {base_cpu * 1000:.2f} ms")


def preload(workdir: str, nodes: list[str], count: int) -> float:
    started = time.perf_counter()
    for node in nodes:
        store = SQLiteStore(os.path.join(workdir, "data", node, f"{node}.sqlite3"))
        batch = 50_000
        for start in range(0, count, batch):
            store.put_many(Record(f"pre-{i:08d}", "y" * 100, Version(1, 0, "preload"))
                           for i in range(start, min(count, start + batch)))
        store.set_meta("ring", orjson.dumps(sorted(nodes)).decode())  # a cluster that ran before
        store.close()
    return time.perf_counter() - started


def cluster(workdir: str, args) -> LocalRuntime:
    return LocalRuntime(ClusterSpec(mesh=args.mesh, log_level=args.log_level), workdir=workdir)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--duration", type=float, default=8.0)
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--keys", type=int, default=10_000, help="key space of the random workload")
    p.add_argument("--big-keys", type=int, default=1_000_000)
    p.add_argument("--small-keys", type=int, default=10_000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--mesh", action="store_true", help="every link through the fault proxy")
    p.add_argument("--hedge-after-ms", type=float, default=10.0,
                   help="hedged reads row: ask R owners, the others after this long")
    p.add_argument("--skip-size", action="store_true", help="skip the stored-keys comparison")
    p.add_argument("--locust-processes", type=int, default=1,
                   help="Locust processes for the Locust rows (1: no master/workers)")
    p.add_argument("--skip-locust", action="store_true", help="skip the Locust rows")
    p.add_argument("--log-level", default="warning",
                   help="services' log level; 'info' adds the per-request access log (~6%% here)")
    args = p.parse_args()
    print(f"3 local nodes, N=3 W=2 R=2, {args.concurrency} concurrent operations, "
          f"{args.duration:.0f}s per run, 100-byte values, mesh={'on' if args.mesh else 'off'}, "
          f"log level {args.log_level}, cpus={os.cpu_count()}, "
          f"locust processes {args.locust_processes}")
    print(f"{'':<34} {'writes/s':>8} {'p50':>7} {'p99':>7} {'reads/s':>8} {'p50':>7} {'p99':>7} "
          f"{'errors':>6}")
    with tempfile.TemporaryDirectory() as tmp:
        rt = cluster(tmp, args)
        ep = rt.start()
        try:
            row("smart client, 50/50", run(via_client(ep.registry, args, 0.5)))
            row(f"  same, hedged reads ({args.hedge_after_ms:g} ms)",
                run(via_client(ep.registry, args, 0.5, hedge_after=args.hedge_after_ms / 1000)))
            row("gateway, 50/50", run(via_gateway(ep.registry, args, 0.5)))
            base_smart = run(via_client(ep.registry, args, 1.0))
            row("smart client, writes only", base_smart)
            locust_row(ep.registry, args, tmp, "smart", "smart client", base_smart)
            row("  same with the aiohttp transport",
                run(via_client(ep.registry, args, 1.0, transport=AiohttpTransport())))
            base_gateway = run(via_gateway(ep.registry, args, 1.0))
            row("gateway, writes only", base_gateway)
            locust_row(ep.registry, args, tmp, "gateway", "gateway", base_gateway)
        finally:
            rt.stop()
    if args.skip_size:
        return
    results = {}
    for count in (args.small_keys, args.big_keys):
        with tempfile.TemporaryDirectory() as tmp:
            spent = preload(tmp, ["node-1", "node-2", "node-3"], count)
            rt = cluster(tmp, args)
            ep = rt.start()
            try:
                res = run(via_client(ep.registry, args, 1.0))
                results[count] = res[0]["write"]["per_s"]
                row(f"client writes, {count:,} keys stored", res)
                print(f"  (preloaded {count:,} keys into each node in {spent:.1f}s)")
            finally:
                rt.stop()
    ratio = results[args.big_keys] / results[args.small_keys]
    print(f"write throughput with {args.big_keys:,} keys / with {args.small_keys:,} keys: "
          f"{ratio:.2f}")
    print(f"median check: {statistics.median(results.values()):.0f} writes/s")


if __name__ == "__main__":
    main()
