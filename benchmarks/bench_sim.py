"""Speed of the simulated runtime: virtual seconds per wall second for a scenario at its load.

    python benchmarks/bench_sim.py [--scenario kill-one] [--seed 1] [--latency 0.008]
                                   [--twice] [--repeat 5]

Runs the catalog scenario (default: the catalog's default, ``kill-one``, with the default
workload: 8 smart-client users for 12 s) on ``--runtime sim`` through the scenario runner,
and prints the virtual time it covered, the wall and CPU time it took, and the ratio. The
machine may be shared: CPU seconds of this process say what the simulation itself cost.
``--twice`` runs it again with the same seed and compares the fingerprints (history and
injected events); ``--repeat N`` runs it N times (same seed) and prints the median and the
best of each figure, since a shared or virtual machine's CPU time varies from run to run; ``--latency`` sets the one-way delay of a link (seconds; jitter half of it).

``--compare [--runtime local] [--duration 10]``: every catalog scenario (or ``--only A,B``),
shortened to ``--duration`` seconds as the chaos suites do, once on sim and once on the
other runtime with the same seed; a table of both verdicts, whether they agree and the
times. Prints figures, asserts nothing.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import tempfile
import time

from chaos.catalog import DEFAULT, scenario_named
from chaos.runtime.sim import SimRuntime
from chaos.scenario import run
from chaos.sim.determinism import fingerprint, first_divergence, history_lines


def once(name: str, seed: int, latency: float | None):
    sc = scenario_named(name).but(seed=seed)
    spec = sc.cluster.__class__(**{**_fields(sc.cluster), "seed": seed})
    options = {} if latency is None else {"latency": latency, "jitter": latency / 2}
    rt = SimRuntime(spec, **options)
    phase: dict[str, float] = {}
    make_load = rt.load_factory

    def timed_load(*args, **kwargs):  # the traffic phase's own wall and virtual time
        load = make_load(*args, **kwargs)
        start, wait = load.start, load.wait

        def started():
            phase["wall"], phase["virtual"] = time.perf_counter(), rt.clock()
            phase["cpu"] = time.process_time()
            return start()

        def waited(timeout=None):
            code = wait(timeout)
            if "ended" not in phase:  # the first wait ends the traffic; stop() waits again
                phase["ended"] = 1.0
                phase["wall"] = time.perf_counter() - phase["wall"]
                phase["virtual"] = rt.clock() - phase["virtual"]
                phase["cpu"] = time.process_time() - phase["cpu"]
            return code

        load.start, load.wait = started, waited
        return load

    rt.load_factory = timed_load
    with tempfile.TemporaryDirectory(prefix="bench-sim-") as directory:
        wall, cpu = time.perf_counter(), time.process_time()
        v0 = rt.clock()
        result = run(sc, rt, directory=directory, progress=lambda _m: None)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        virtual = rt.loop.time() - v0  # the loop outlives stop(): its clock still reads
    rt.phase = phase
    return result, rt, virtual, wall, cpu


def _fields(obj) -> dict:
    return {f: getattr(obj, f) for f in obj.__dataclass_fields__}


def compare(names: list[str], seed: int, duration: float, other: str) -> None:
    """The verdict of each scenario on sim and on ``other``, side by side."""
    from chaos.runtime import open_runtime

    rows = []
    for name in names:
        sc = scenario_named(name).with_duration(duration).but(seed=seed)
        row = [name]
        for kind in ("sim", other):
            spec = sc.cluster.__class__(**{**_fields(sc.cluster), "seed": seed})
            with tempfile.TemporaryDirectory(prefix=f"cmp-{kind}-") as directory:
                wall = time.perf_counter()
                try:
                    rt = open_runtime(kind, spec, workdir=directory + "/rt")
                    result = run(sc, rt, directory=directory, progress=lambda _m: None)
                    verdict = str(result.verdict.valid)
                    why = [f"{p.name}:{p.valid}" for p in result.verdict.parts if not p.ok]
                except Exception as exc:  # noqa: BLE001 - a refused or failed run is a row too
                    verdict, why = "error", [f"{type(exc).__name__}: {str(exc)[:90]}"]
                row += [verdict, f"{time.perf_counter() - wall:.1f}s", " ".join(why)]
        rows.append(row)
        same = "same" if row[1] == row[4] else "DIFFERENT"
        print(f"{name:14} sim {row[1]:8} {row[2]:>6}  {other} {row[4]:8} {row[5]:>6}  {same:9} "
              f"sim[{row[3]}] {other}[{row[6]}]", flush=True)
    agree = sum(1 for r in rows if r[1] == r[4])
    print(f"{agree} of {len(rows)} scenarios give the same verdict on sim and {other}")


def _repeat(args, runs: list, fp) -> None:
    """Run ``args.repeat - 1`` more times; the median and best of each figure over all."""
    for _ in range(args.repeat - 1):
        again, rt, virtual, wall, cpu = once(args.scenario, args.seed, args.latency)
        runs.append((virtual, wall, cpu, rt.phase))
        if fingerprint(again.history, rt.events) != fp:
            print("a repeated run DIFFERS from the first")

    def figures(name: str, values: list[tuple[float, float, float]]) -> None:
        by_wall = sorted(v / w for v, w, _ in values)
        by_cpu = sorted(v / c for v, _, c in values)
        cpus = sorted(c for _, _, c in values)
        print(f"{name} over {len(values)} runs: x real time median "
              f"{statistics.median(by_wall):.1f} best {by_wall[-1]:.1f}; virtual s per CPU s "
              f"median {statistics.median(by_cpu):.1f} best {by_cpu[-1]:.1f} (CPU s median "
              f"{statistics.median(cpus):.2f}, best {cpus[0]:.2f})")

    figures("whole run", [(v, w, c) for v, w, c, _ in runs])
    figures("traffic phase", [(p["virtual"], p["wall"], p["cpu"]) for *_, p in runs])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scenario", default=DEFAULT)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--latency", type=float, default=None)
    p.add_argument("--twice", action="store_true")
    p.add_argument("--repeat", type=int, default=1, help="runs; prints median and best")
    p.add_argument("--compare", action="store_true")
    p.add_argument("--runtime", default="local", help="--compare: the runtime to compare with")
    p.add_argument("--duration", type=float, default=10.0, help="--compare: seconds of traffic")
    p.add_argument("--only", default="", help="--compare: comma-separated scenario names")
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if args.compare:
        from chaos.catalog import SCENARIOS

        names = [n for n in args.only.split(",") if n] or list(SCENARIOS)
        compare(names, args.seed, args.duration, args.runtime)
        return
    result, rt, virtual, wall, cpu = once(args.scenario, args.seed, args.latency)
    ops = result.load.get("operations", 0)
    traffic = result.scenario.workload.duration
    print(f"scenario {args.scenario} seed {args.seed} on sim (link latency "
          f"{rt.network.latency * 1000:g} ms +- {rt.network.jitter * 1000:g} ms)")
    print(f"verdict: {result.verdict.valid}  operations: {ops} ({ops / traffic:.0f} per virtual s)")
    print(f"virtual time {virtual:.1f} s (traffic {traffic:g} s, then final reads and quiet)")
    print(f"wall {wall:.2f} s, CPU {cpu:.2f} s")
    print(f"speed, whole run: {virtual / wall:.1f} virtual s per wall s; "
          f"{virtual / cpu:.1f} per CPU s")
    ph = rt.phase
    print(f"speed, traffic phase ({ph['virtual']:.1f} virtual s in {ph['wall']:.2f} wall s, "
          f"{ph['cpu']:.2f} CPU s): {ph['virtual'] / ph['wall']:.1f}x real time; "
          f"{ph['virtual'] / ph['cpu']:.1f} virtual s per CPU s")
    print(f"CPU per operation: {cpu / max(ops, 1) * 1e6:.0f} us")
    fp = fingerprint(result.history, rt.events)
    print(f"fingerprint: {fp.short()}")
    if args.repeat > 1:
        _repeat(args, [(virtual, wall, cpu, ph)], fp)
    if args.twice:
        again, rt2, *_ = once(args.scenario, args.seed, args.latency)
        fp2 = fingerprint(again.history, rt2.events)
        if fp2 == fp:
            print("second run: identical (history and injected events)")
        else:
            print("second run DIFFERS: "
                  + (first_divergence(history_lines(result.history),
                                      history_lines(again.history)) or "in the injected events"))


if __name__ == "__main__":
    main()
