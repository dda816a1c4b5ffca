"""Cost of the linearizability checker on this machine: prints figures, asserts nothing.

    python benchmarks/bench_linearizable.py [--seed 1] [--budget 30]

Histories come from simulating a correct register: each process runs operations one after
another with random durations, so operations overlap across processes; each takes effect at a
random instant of its interval, a read returns what the register held then. A few writes time
out (info) and take effect late or never; a few fail and never take effect. Every history is
linearizable, so the checker must say valid; the figures are what it costs: ops, wall ms,
states explored, ms per 1k ops. 1. one key, 1k / 5k / 20k ops, 4 and 8 processes; 2. many
keys (a run's shape: 20k ops over 200 keys, 2 to 16 processes).
"""

from __future__ import annotations

import argparse
import random
import time

from chaos.checkers.linearizable import Linearizable
from chaos.history import History

INFO_RATIO = 0.02  # writes that time out: half take effect (often after the timeout)
FAIL_RATIO = 0.01  # writes that definitely did not happen


def simulate(rng: random.Random, ops: int, processes: int, keys: int, *,
             write_ratio: float = 0.5, info_ratio: float = INFO_RATIO,
             stale: bool = False) -> History:
    """A history of ``ops`` operations on ``keys`` keys by ``processes`` processes (times in
    seconds, operations of 0.5 to 10 ms), made by a correct register; with ``stale``, one
    read halfway through returns the value before the one it should have (not linearizable)."""
    clock = [rng.uniform(0, 0.005) for _ in range(processes)]
    intervals = []  # (start, end, process, f, key, value, outcome, effect time or None)
    for i in range(ops):
        p = min(range(processes), key=clock.__getitem__)  # the next process to be free
        start = clock[p] + rng.expovariate(1 / 0.001)
        end = start + rng.uniform(0.0005, 0.010)
        clock[p] = end
        key = f"k{rng.randrange(keys)}"
        if rng.random() < write_ratio:
            roll = rng.random()
            if roll < FAIL_RATIO:
                outcome, effect = "fail", None
            elif roll < FAIL_RATIO + info_ratio:
                outcome = "info"
                effect = start + rng.uniform(0, 3 * (end - start)) if rng.random() < 0.5 else None
            else:
                outcome, effect = "ok", rng.uniform(start, end)
            intervals.append([start, end, f"p{p}", "write", key, f"v{i}", outcome, effect])
        else:
            intervals.append([start, end, f"p{p}", "read", key, None, "ok",
                              rng.uniform(start, end)])
    register: dict[str, tuple[str | None, float, str | None]] = {}  # value, end, previous
    candidates = []  # reads that would be stale if they returned the previous value
    for iv in sorted((iv for iv in intervals if iv[7] is not None), key=lambda iv: iv[7]):
        if iv[3] == "write":
            register[iv[4]] = (iv[5], iv[1], register.get(iv[4], (None,))[0])
        else:
            iv[5], written, previous = register.get(iv[4], (None, 0.0, None))
            if written < iv[0] and iv[5] is not None and iv[5] != previous:
                candidates.append((iv, previous))
    if stale and candidates:
        iv, previous = candidates[len(candidates) // 2]
        iv[5] = previous
    events = []
    for start, end, process, f, key, value, outcome, _ in intervals:
        events.append((start, process, "invoke", f, key, value if f == "write" else None))
        events.append((end, process, outcome, f, key, value))
    history = History(clock=lambda: 0.0, t0=0)
    for t, process, type_, f, key, value in sorted(events, key=lambda e: e[0]):
        history.add(process, type_, f, key, value, at=t)
    return history


def bench(label: str, history: History, checker: Linearizable, ops: int) -> None:
    started = time.perf_counter()
    verdict = checker.check(history, {})
    ms = (time.perf_counter() - started) * 1000
    states = verdict.evidence["states"]
    window = (f" (window of {len(verdict.evidence['window'])} ops)"
              if "window" in verdict.evidence else "")
    print(f"{label:<40} {ops:>7} {ms:>10.1f} {states:>10} {ms / ops * 1000:>12.1f}  "
          f"{verdict.valid}{window}")
    if window:
        print(f"    {verdict.summary}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--budget", type=float, default=30.0, help="budget_s per key")
    args = parser.parse_args()
    print(f"seed {args.seed}, budget {args.budget} s per key")
    checker = Linearizable(budget_s=args.budget)
    print(f"{'history':<40} {'ops':>7} {'wall ms':>10} {'states':>10} {'ms/1k ops':>12}  verdict")
    for processes in (4, 8):
        for ops in (1_000, 5_000, 20_000):
            rng = random.Random(f"{args.seed}-one-{processes}-{ops}")
            bench(f"1 key, {processes} processes", simulate(rng, ops, processes, 1), checker, ops)
    for processes in (2, 8, 16):
        rng = random.Random(f"{args.seed}-many-{processes}")
        bench(f"200 keys, {processes} processes", simulate(rng, 20_000, processes, 200),
              checker, 20_000)
    for ops in (5_000, 20_000):
        rng = random.Random(f"{args.seed}-hot-{ops}")
        bench("1 key, 16 processes (hot)", simulate(rng, ops, 16, 1), checker, ops)
    rng = random.Random(f"{args.seed}-timeouts")
    bench("1 key, 8 processes, 20% writes time out",
          simulate(rng, 5_000, 8, 1, info_ratio=0.2), checker, 5_000)
    # 3. not linearizable: the cost of finding it and of shrinking it to a small window
    rng = random.Random(f"{args.seed}-stale-one")
    bench("1 key, 8 processes, one stale read", simulate(rng, 20_000, 8, 1, stale=True),
          checker, 20_000)
    rng = random.Random(f"{args.seed}-stale-many")
    bench("200 keys, 16 processes, one stale read",
          simulate(rng, 20_000, 16, 200, stale=True), checker, 20_000)


if __name__ == "__main__":
    main()
