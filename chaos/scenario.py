"""A chaos run as a plain value (cluster, workload, nemesis, checkers) and its runner.

The runner: start the runtime -> traffic from smart clients recording a history -> apply the
fault at ``fault_at`` and undo it at ``heal_at`` -> stop traffic -> final reads -> checkers.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import dataclass, field

from chaos.checkers import Verdict, availability, compose, no_lost_writes
from chaos.faults import FAULTS
from chaos.history import History
from chaos.runtime.base import ClusterSpec, Runtime
from system.client import SmartClient
from system.config import ClientConfig
from system.coordinator import QuorumError
from system.transport import TransportError

__all__ = ["Workload", "Scenario", "RunResult", "run_scenario"]

log = logging.getLogger("chaoslab.scenario")


@dataclass(frozen=True, slots=True)
class Workload:
    concurrency: int = 8
    keys: int = 200
    write_ratio: float = 0.5
    duration: float = 12.0
    max_ops: int = 200_000  # a hard bound besides the duration


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str = "kill-one-node"
    cluster: ClusterSpec = field(default_factory=ClusterSpec)
    workload: Workload = field(default_factory=Workload)
    fault: str = "kill"  # a name from chaos.faults.FAULTS
    target: str = "node-1"
    fault_at: float = 3.0
    heal_at: float = 8.0
    min_availability: float = 1.0
    client: ClientConfig = field(default_factory=ClientConfig)


@dataclass
class RunResult:
    scenario: Scenario
    seed: int
    history: History
    final: dict[str, str | None]
    verdict: Verdict
    timings: dict[str, float]


async def _worker(wid: int, client: SmartClient, history: History, wl: Workload,
                  rng: random.Random, stop_at: float, budget: list[int]) -> None:
    proc = f"w{wid}"
    while time.monotonic() < stop_at and budget[0] > 0:
        budget[0] -= 1
        key = f"key-{rng.randrange(wl.keys)}"
        if rng.random() < wl.write_ratio:
            value = f"{proc}-{budget[0]}"
            history.add(proc, "invoke", "write", key, value)
            try:
                await client.put(key, value)
                history.add(proc, "ok", "write", key, value)
            except QuorumError as exc:
                definite = all(r == "circuit open" or r.startswith("cannot connect")
                               for r in exc.failed.values())
                kind = "fail" if not exc.acks and definite else "info"
                history.add(proc, kind, "write", key, value, error=str(exc)[:200])
            except TransportError as exc:
                history.add(proc, "info", "write", key, value, error=str(exc)[:200])
        else:
            history.add(proc, "invoke", "read", key)
            try:
                res = await client.get(key)
                history.add(proc, "ok", "read", key, res.value)
            except (QuorumError, TransportError) as exc:
                history.add(proc, "fail", "read", key, error=str(exc)[:200])


async def _traffic_and_nemesis(sc: Scenario, runtime: Runtime, history: History, seed: int,
                               registry: str, timings: dict) -> dict[str, str | None]:
    rng = random.Random(seed)
    cfg = ClientConfig(**{**{f: getattr(sc.client, f) for f in sc.client.__dataclass_fields__},
                          "registry": registry, "seed": rng.randrange(2**32)})
    fault = FAULTS[sc.fault](sc.target)
    async with SmartClient(cfg) as client:
        t0 = time.monotonic()
        stop_at = t0 + sc.workload.duration
        budget = [sc.workload.max_ops]
        workers = [asyncio.create_task(_worker(i, client, history, sc.workload,
                                               random.Random(rng.randrange(2**32)), stop_at, budget))
                   for i in range(sc.workload.concurrency)]

        async def nemesis():
            await asyncio.sleep(sc.fault_at)
            history.add("nemesis", "invoke", sc.fault, sc.target)
            await asyncio.to_thread(fault.apply, runtime)
            history.add("nemesis", "info", sc.fault, sc.target)
            timings["fault_applied"] = time.monotonic() - t0
            await asyncio.sleep(max(0.0, sc.heal_at - (time.monotonic() - t0)))
            history.add("nemesis", "invoke", "heal", sc.target)
            await asyncio.to_thread(fault.undo, runtime)
            history.add("nemesis", "info", "heal", sc.target)
            timings["healed"] = time.monotonic() - t0

        nem = asyncio.create_task(nemesis())
        try:
            await asyncio.gather(*workers)
            await nem
        finally:
            nem.cancel()
            if "healed" not in timings:  # undo always runs
                await asyncio.to_thread(fault.undo, runtime)
        await client.coordinator.drain()
        final: dict[str, str | None] = {}
        for key in sorted({op.key for op in history.ops if op.f == "write"}):
            try:
                final[key] = (await client.get(key)).value
            except (QuorumError, TransportError):
                pass
        return final


def run_scenario(sc: Scenario, runtime: Runtime, *, seed: int) -> RunResult:
    timings: dict[str, float] = {}
    started = time.monotonic()
    endpoints = runtime.start()
    timings["cluster_start_s"] = time.monotonic() - started
    try:
        history = History()
        final = asyncio.run(_traffic_and_nemesis(sc, runtime, history, seed, endpoints.registry,
                                                 timings))
    finally:
        runtime.stop()
    verdict = compose([availability(history, min_ratio=sc.min_availability),
                       no_lost_writes(history, final)])
    return RunResult(sc, seed, history, final, verdict, timings)
