"""Speed of the schedule search: schedules tried per minute on sim and on local processes, in
the same run, and what the quick profile costs.

    python benchmarks/bench_search.py [--sim 10] [--local 3] [--duration 8] [--seed 1]
                                      [--skip-local] [--quick]

Draws ``--sim`` schedules (Hypothesis, search seed ``--seed``) for the sound cluster (the
``noop`` scenario with ``--duration`` seconds of traffic, judged by durability and stale
reads: nothing fails, so every run is a fresh draw and none is a shrink) and runs each on
``sim``; then draws ``--local`` schedules and runs each on local processes. Prints, for
each runtime, the schedules tried, the wall and CPU time (this process's: on local the
cluster and Locust are other processes) and schedules per minute.

``--quick``: the search CI runs (``tests/integration/test_search.py``): 8 s of traffic,
12 draws, at most 36 runs with shrinking, search seed 1, for each weakened cluster and the
sound one, on sim. Prints the runs each search made, its time and the time per schedule.
Prints figures, asserts nothing.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import time

import chaos
from chaos.catalog import SCENARIOS
from chaos.checkers import Linearizable
from chaos.search import PROFILES, runner, search

QUICK_SECONDS = 8.0  # of traffic per run, as tests/integration/test_search.py
QUICK = PROFILES["quick"]


def _weakened(**settings) -> chaos.ClusterSpec:
    spec = chaos.ClusterSpec()
    return dataclasses.replace(spec, settings=dataclasses.replace(spec.settings, **settings))


def _sound(duration: float, seed: int) -> chaos.Scenario:
    return SCENARIOS["noop"].with_duration(duration).but(
        seed=seed, checkers=(chaos.NoLostWrites(), chaos.StaleReads()))


def _timed(base: chaos.Scenario, kind: str, budget: int, seed: int, **options) -> dict:
    wall, cpu = time.perf_counter(), time.process_time()
    found = search(base, runner(kind), budget=budget, seed=seed, runtime=kind, **options)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    runs = len(found.trials)
    return {"runs": runs, "wall": wall, "cpu": cpu, "found": found.found,
            "minimal_steps": len(found.minimal.schedule.steps) if found.minimal else None,
            "per_minute": 60.0 * runs / wall if wall else 0.0}


def rate(args) -> None:
    base = _sound(args.duration, args.seed)
    rows = [("sim", _timed(base, "sim", args.sim, args.seed))]
    if not args.skip_local:
        rows.append(("local", _timed(base, "local", args.local, args.seed)))
    print(f"schedules tried per minute, {base.name} with {args.duration:g} s of traffic, "
          f"search seed {args.seed}, the same run:")
    for kind, r in rows:
        print(f"  {kind:6} {r['runs']:3d} schedules in {r['wall']:7.1f} s wall "
              f"({r['cpu']:6.1f} s CPU of this process): {r['per_minute']:6.1f} per minute, "
              f"{r['wall'] / max(r['runs'], 1):5.2f} s per schedule")
    if len(rows) == 2 and rows[1][1]["per_minute"]:
        print(f"  sim tries {rows[0][1]['per_minute'] / rows[1][1]['per_minute']:.1f}x as many "
              f"schedules per minute as local processes")


def quick(args) -> None:
    base = SCENARIOS["noop"].with_duration(QUICK_SECONDS)
    cases = {
        "w1-r1": (base.but(cluster=_weakened(w=1, r=1), checkers=(chaos.StaleReads(),)), {}),
        "memory": (base.but(cluster=dataclasses.replace(chaos.ClusterSpec(), storage="memory"),
                            checkers=(chaos.NoLostWrites(),)), {}),
        "wallclock": (base.but(cluster=_weakened(versions="wallclock"),
                               workload=dataclasses.replace(SCENARIOS["clock-skew"].workload,
                                                            duration=QUICK_SECONDS),
                               checkers=(chaos.NoLostWrites(), chaos.StaleReads(),
                                         Linearizable())),
                      {"kinds": ("kill", "pause", "clock-skew")}),
        "sound": (_sound(QUICK_SECONDS, 1), {}),
    }
    print(f"quick profile on sim ({QUICK_SECONDS:g} s of traffic, {QUICK.budget} draws, at most "
          f"{QUICK.max_runs} runs and {QUICK.time_limit:g} s, search seed 1):")
    total_runs, total_wall, total_cpu = 0, 0.0, 0.0
    for name, (scenario, options) in cases.items():
        r = _timed(scenario.but(seed=1), "sim", QUICK.budget, 1, max_runs=QUICK.max_runs,
                   **options)
        total_runs, total_wall, total_cpu = (total_runs + r["runs"], total_wall + r["wall"],
                                             total_cpu + r["cpu"])
        found = (f"found, shrunk to {r['minimal_steps']} step(s)" if r["found"]
                 else "nothing found")
        print(f"  {name:10} {r['runs']:3d} schedules in {r['wall']:6.1f} s wall "
              f"({r['cpu']:6.1f} s CPU): {r['wall'] / max(r['runs'], 1):5.2f} s per schedule; "
              f"{found}")
    print(f"  total      {total_runs:3d} schedules in {total_wall:6.1f} s wall "
          f"({total_cpu:6.1f} s CPU): {total_wall / max(total_runs, 1):5.2f} s per schedule, "
          f"{60.0 * total_runs / total_wall:.1f} per minute")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sim", type=int, default=10, help="schedules drawn and run on sim")
    p.add_argument("--local", type=int, default=3, help="schedules drawn and run on local")
    p.add_argument("--duration", type=float, default=8.0, help="seconds of traffic per run")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--skip-local", action="store_true")
    p.add_argument("--quick", action="store_true", help="the quick profile's figures instead")
    args = p.parse_args()
    logging.basicConfig(level=logging.ERROR)  # the simulated services log in this process
    if args.quick:
        quick(args)
    else:
        rate(args)


if __name__ == "__main__":
    main()
