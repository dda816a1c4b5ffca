"""Cost of every registered checker on one run-sized history, and the linearizability
checker's bounds, on this machine: prints figures, asserts nothing.

    python benchmarks/bench_checkers.py [--seed 1] [--ops 100000]

1. A run: ``--ops`` operations by 16 client processes on 200 keys of a 3-node cluster, with a
   kill of node-1 and a partition isolating node-2, recorded as :mod:`chaos.nemesis` records
   them (``nemesis`` invoke + ok for the apply and for the heal). The final state (final
   reads, each replica's versions, 3 copies) and the arrivals per 100 ms at each node come
   with it, so every checker has its input. Each registered checker runs with its defaults
   and is timed; then the total, against the 10 s the issue asks for.
2. Linearizability at 50 clients on 10 keys (about 1,700 operations): a correct history and
   one with a stale read injected, each against 1 s.
3. An adversarial key (many overlapping writes, then reads no order explains) under a small
   budget: the answer is unknown with the reason, and the peak memory it took.

Histories come from simulating a correct register per key, as ``bench_linearizable.simulate``
does (not reused: it has no faults, final state or arrival counts, and the read its ``stale``
injects is not always illegal: 23 of 100 seeds at 50 clients and 10 keys are linearizable,
74 pass the stale-read checker; here the injected read is always both): each process runs operations one after another, each takes effect at a random instant
of its interval and a read returns what the register held then. Operations invoked during a
fault sometimes fail (fast, never took effect) or time out (``info`` after ``TIMEOUT``; half
of the timed-out writes take effect, possibly after the timeout).
"""

from __future__ import annotations

import argparse
import gc
import heapq
import multiprocessing
import random
import resource
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

from chaos.checkers import CHECKERS, Linearizable, Verdict
from chaos.faults import Kill, Partition
from chaos.history import NEMESIS, FinalState, History
from chaos.nemesis import step_record
from chaos.topology import Topology

NODES = ("node-1", "node-2", "node-3")
TIMEOUT = 0.1  # seconds before a client gives up: info
FAULTY_FAIL, FAULTY_INFO = 0.03, 0.04  # outcomes of operations invoked during a fault
HINT_RATE = 1_500.0  # hints a healed node receives per second, on top of the traffic
BUDGET_S = 10.0  # all checkers on the run
LINEARIZABLE_S = 1.0  # linearizability of the 50-client history
INF = float("inf")


@dataclass(frozen=True, slots=True)
class Run:
    """A simulated run: what the checkers read."""

    history: History
    final: FinalState


def simulate_run(rng: random.Random, ops: int, *, processes: int = 16, keys: int = 200,
                 faults: bool = True, stale: bool = False) -> Run:
    """A run of ``ops`` operations on ``keys`` keys by ``processes`` processes (operations of
    0.5 to 10 ms, about 1 ms apart), with a kill and a partition (``faults``); with
    ``stale``, one read halfway through returns the value before the one it must see (its
    write ended before the newer one began, which ended before the read began): neither
    linearizable nor free of stale reads."""
    topology = Topology(NODES)
    span = ops / processes * 0.00625  # about how long the run lasts
    steps = []  # (fault bound to the topology, its node, applied at, healed at)
    if faults:
        for fault, node, at, until in ((Kill("node-1"), "node-1", 0.2, 0.35),
                                       (Partition.isolating("node-2"), "node-2", 0.55, 0.7)):
            steps.append((fault.bind(topology, rng), node, at * span, until * span))

    def faulty(t: float) -> bool:
        return any(at <= t <= until for _, _, at, until in steps)

    clock = [(rng.uniform(0, 0.005), p) for p in range(processes)]
    heapq.heapify(clock)
    ivs = []  # [start, end, process, f, key, value, outcome, effect time or None]
    for i in range(ops):
        free, p = heapq.heappop(clock)
        start = free + rng.expovariate(1 / 0.001)
        f = "write" if rng.random() < 0.5 else "read"
        key = f"k{rng.randrange(keys)}"
        roll = rng.random() if faulty(start) else 1.0
        if roll < FAULTY_FAIL:
            end, outcome, effect = start + rng.uniform(0.0005, 0.003), "fail", None
        elif roll < FAULTY_FAIL + FAULTY_INFO:
            end, outcome = start + TIMEOUT, "info"
            effect = (start + rng.uniform(0, 3 * TIMEOUT)
                      if f == "write" and rng.random() < 0.5 else None)
        else:
            end, outcome = start + rng.uniform(0.0005, 0.010), "ok"
            effect = rng.uniform(start, end)
        heapq.heappush(clock, (end, p))
        ivs.append([start, end, f"c{p}", f, key, f"v{i}" if f == "write" else None, outcome,
                    effect])
    # the registers: key -> (value, its write's start, its ok end or INF, previous, its end)
    register: dict[str, tuple] = {}
    last_write: dict[str, list] = {}
    candidates = []  # reads that are stale if they return the previous value
    for iv in sorted((iv for iv in ivs if iv[7] is not None), key=lambda iv: iv[7]):
        start, end, _, f, key, value, outcome, _ = iv
        if f == "write":
            old = register.get(key, (None, -INF, -INF))
            register[key] = (value, start, end if outcome == "ok" else INF, old[0], old[2])
            last_write[key] = iv
        else:
            now, now_start, now_end, before, before_end = register.get(
                key, (None, -INF, -INF, None, -INF))
            iv[5] = now
            if now_end < start and before is not None and before_end < now_start:
                candidates.append((iv, before))
    if stale and candidates:
        iv, before = candidates[len(candidates) // 2]
        iv[5] = before
    events = []  # (time, order, process, type, f, key, value, error)
    for n, (start, end, process, f, key, value, outcome, _) in enumerate(ivs):
        events.append((start, 2 * n, process, "invoke", f, key, value if f == "write" else None,
                       None))
        error = {"fail": "no replica reached", "info": "timeout"}.get(outcome)
        events.append((end, 2 * n + 1, process, outcome, f, key,
                       None if outcome != "ok" and f == "read" else value, error))
    for step, (fault, _, at, until) in enumerate(steps):  # as Nemesis._record writes them
        heal = min(0.3, (until - at) / 4)  # a kill's heal restarts the node: it takes a while
        for phase, t, took in (("apply", at, 0.02), ("heal", until - heal, heal)):
            target, value = step_record(fault, step, phase)
            events.append((t, -1, NEMESIS, "invoke", fault.kind, target, value, None))
            events.append((t + took, -1, NEMESIS, "ok", fault.kind, target, value, None))
    history = History(clock=lambda: 0.0, t0=0)
    for t, _, process, type_, f, key, value, error in sorted(events, key=lambda e: e[:2]):
        history.add(process, type_, f, key, value, error, at=t)
    history.series = _arrivals(ivs, steps)
    versions = {key: (int(iv[7] * 1000), 0, NODES[int(iv[2][1:]) % len(NODES)])
                for key, iv in last_write.items()}
    final = FinalState({f"k{k}": register.get(f"k{k}", (None,))[0] for k in range(keys)},
                       replicas={node: dict(versions) for node in NODES}, copies=len(NODES))
    return Run(history, final)


def _arrivals(ivs: list, steps: list) -> dict[str, list[tuple[float, float]]]:
    """Replica requests per 100 ms at each node: every operation reaches every node, except
    a killed node (none) and an isolated one (only its own clients' third); after the heal,
    the writes it missed arrive as hints at ``HINT_RATE`` per second."""
    counts: dict[str, dict[int, int]] = {node: {} for node in NODES}
    missed = dict.fromkeys(NODES, 0)
    for start, _, process, f, *_ in ivs:
        b = int(start * 10)
        for node in NODES:
            down = next((fault for fault, n, at, until in steps
                         if n == node and at <= start <= until), None)
            if down is not None and (down.kind == "kill" or int(process[1:]) % 3):
                missed[node] += f == "write"
                continue
            counts[node][b] = counts[node].get(b, 0) + 1
    for _, node, _, until in steps:
        for j in range(missed.pop(node, 0)):
            b = int((until + j / HINT_RATE) * 10)
            counts[node][b] = counts[node].get(b, 0) + 1
    return {f"arrivals:{node}": [(round(b / 10, 3), n) for b, n in sorted(c.items())]
            for node, c in counts.items()}


def adversarial(writes: int) -> History:
    """One key: ``writes`` writes all in flight together, then reads of two of them in an
    order no register allows (a, b, a). Showing it illegal means trying every subset of the
    other writes: the search's states grow as 2 ** writes."""
    history = History(clock=lambda: 0.0, t0=0)
    for i in range(writes):
        history.add(f"c{i}", "invoke", "write", "k", f"v{i}", at=i * 1e-4)
    for i in range(writes):
        history.add(f"c{i}", "ok", "write", "k", f"v{i}", at=1.0 + i * 1e-4)
    for n, value in enumerate(("v0", "v1", "v0")):
        history.add("r", "invoke", "read", "k", at=2.0 + n)
        history.add("r", "ok", "read", "k", value, at=2.5 + n)
    return history


def timed(checker, run: Run) -> tuple[Verdict, float]:
    started = time.perf_counter()
    verdict = checker.check(run.history, run.final)
    return verdict, time.perf_counter() - started


def all_checkers(run: Run) -> None:
    h = run.history
    windows = ", ".join(f"{w.fault} {w.target} {w.start:.1f}-{w.end:.1f}s"
                        for w in h.fault_windows())
    print(f"history: {len(h.client_ops()) // 2} client operations ({len(h)} records) over "
          f"{h.ops[-1].time:.1f} s; faults: {windows}")
    print(f"{'checker':<14} {'verdict':<8} {'seconds':>8}  summary")
    checkers = []
    for name, cls in CHECKERS.items():
        try:
            checkers.append(cls())
        except TypeError as exc:
            print(f"{name:<14} skipped: needs options ({exc})")
    total = 0.0
    for checker in checkers:
        verdict, seconds = timed(checker, run)
        total += seconds
        print(f"{checker.name:<14} {verdict.valid!s:<8} {seconds:>8.3f}  {verdict.summary[:90]}")
    print(f"{'total':<14} {'':<8} {total:>8.3f}  within {BUDGET_S:g} s: "
          f"{'yes' if total <= BUDGET_S else 'no'}")
    # how much of that is the cyclic GC walking the history's records: the same again with
    # them frozen out of its sight (what gc.freeze() after loading a history would save)
    gc.collect()
    gc.freeze()
    try:
        frozen = sum(timed(checker, run)[1] for checker in checkers)
    finally:
        gc.unfreeze()
    print(f"{'total':<14} {'':<8} {frozen:>8.3f}  the same with gc.freeze() after building "
          f"the history (the cyclic GC's share: {max(0.0, total - frozen):.2f} s)")


def linearizability(seed: int) -> None:
    checker = Linearizable()
    print(f"{'history':<34} {'ops':>6} {'seconds':>8} {'states':>8}  verdict")
    for label, stale in (("50 clients, 10 keys", False), ("50 clients, 10 keys, stale read", True)):
        run = simulate_run(random.Random(f"{seed}-lin-{stale}"), 1_700, processes=50, keys=10,
                           faults=False, stale=stale)
        verdict, seconds = timed(checker, run)
        ops = len(run.history) // 2
        print(f"{label:<34} {ops:>6} {seconds:>8.3f} {verdict.evidence['states']:>8}  "
              f"{verdict.valid}; within {LINEARIZABLE_S:g} s: "
              f"{'yes' if seconds <= LINEARIZABLE_S else 'no'}")
        if not verdict.ok:
            print(f"    {verdict.summary}")


def budget_hit(writes: int) -> None:
    """Each budget in a fresh process, so its peak resident set is the search's own."""
    spawn = multiprocessing.get_context("spawn")
    for budget_s, max_states in ((5.0, 1_000_000), (2.0, 50_000)):
        with ProcessPoolExecutor(1, mp_context=spawn) as pool:
            valid, reason, seconds, states, before, peak = pool.submit(
                _adversarial_check, writes, budget_s, max_states).result()
        print(f"{writes} overlapping writes on one key, budget {budget_s:g} s / {max_states} "
              f"states: {valid} in {seconds:.2f} s after {states} states ({reason}); peak "
              f"RSS {peak / 1024:.0f} MiB, {(peak - before) / 1024:.0f} MiB of it the search")


def _adversarial_check(writes: int, budget_s: float, max_states: int) -> tuple:
    """In a child process: the verdict, its reason, seconds, states, and the peak resident
    set (KiB) before and after the check."""
    history = adversarial(writes)
    before = _peak_kib()
    verdict, seconds = timed(Linearizable(budget_s=budget_s, max_states=max_states),
                             Run(history, FinalState()))
    peak = _peak_kib()
    why = verdict.evidence.get("exhausted", {}).get("k", {})
    return (str(verdict.valid), why.get("reason", verdict.summary), seconds,
            verdict.evidence.get("states"), before, peak)


def _peak_kib() -> int:
    """This process's peak resident set in KiB: VmHWM, which starts afresh at exec (a
    spawned child's ``ru_maxrss`` starts at its parent's peak), else ``ru_maxrss``."""
    try:
        with open("/proc/self/status") as fh:
            return next(int(line.split()[1]) for line in fh if line.startswith("VmHWM:"))
    except (OSError, StopIteration, ValueError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--ops", type=int, default=100_000, help="operations in the run")
    parser.add_argument("--writes", type=int, default=40,
                        help="overlapping writes in the adversarial history")
    args = parser.parse_args()
    print(f"seed {args.seed}, {args.ops} operations, 16 clients, 200 keys")
    started = time.perf_counter()
    run = simulate_run(random.Random(f"{args.seed}-run"), args.ops)
    print(f"generated in {time.perf_counter() - started:.1f} s")
    print("\n1. every registered checker, defaults")
    all_checkers(run)
    print("\n2. linearizability, about 1,700 operations")
    linearizability(args.seed)
    print("\n3. out of budget: unknown with the reason")
    budget_hit(args.writes)


if __name__ == "__main__":
    main()
