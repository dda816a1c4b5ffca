"""A synthesized run: a realistic history without a cluster, for the report's tests, its
benchmark and its docs.

:func:`synthetic_run` builds a :class:`chaos.scenario.RunResult` the way a real run ends:
client processes doing sequential reads and writes (linearizable by construction: each
operation takes effect at one instant between its invocation and completion), the
nemesis's apply and heal records for each step of the schedule, failures and timeouts on
the keys of a faulted node while its fault lasts, the clients' breakers opening and
closing, and the real checkers' verdict. Everything derives from ``seed``.
"""

from __future__ import annotations

import dataclasses
import math
import random
from collections.abc import Sequence

from chaos.checkers import Compose
from chaos.history import NEMESIS, FinalState, History, Op, OpType
from chaos.nemesis import Schedule, step_record
from chaos.scenario import RunResult, Scenario, steady_state_verdict
from chaos.traffic import Workload

__all__ = ["synthetic_run", "DEFAULT_SCHEDULE"]

DEFAULT_SCHEDULE = ("kill:node-2@4+4", "partition:isolate:node-3@11+3")


def synthetic_run(*, operations: int = 2000, keys: int = 20, processes: int = 8,
                  duration: float = 20.0, schedule: Sequence[str] = DEFAULT_SCHEDULE,
                  checkers: Sequence[str] = ("availability", "failover", "linearizable"),
                  stale_read: bool = False, seed: int = 1, nodes: int = 3) -> RunResult:
    """A finished run of ``operations`` client operations over ``duration`` seconds.
    ``schedule``: steps in their written form (``kill:node-2@4+4``); ``stale_read``: one read
    returns a value overwritten before it began (so ``linearizable`` finds it invalid)."""
    rng = random.Random(seed)
    sc = Scenario(name="synthetic", description="a synthesized run (no cluster)", seed=seed,
                  workload=dataclasses.replace(Workload(), duration=duration, keys=keys,
                                               users=processes),
                  schedule=Schedule.parse(schedule, at=0, duration=0),
                  checkers=tuple(checkers)).plan()
    steps = sc.schedule.steps
    node_names = [f"node-{i}" for i in range(1, nodes + 1)]
    down = [(s.at, s.end, node_names.index(s.fault.nodes[0]) if s.fault.kind == "partition"
             else node_names.index(getattr(s.fault, "node", node_names[0])))
            for s in steps if s.fault.kind in ("kill", "partition", "pause", "stop")]
    ops: list[Op] = []
    calls = []  # (effect time, invoke, completion) of everything that may take effect
    per_process = max(1, math.ceil(operations / processes))
    slot = duration / per_process
    made = 0
    for p in range(processes):
        process = f"w0-{p}"
        for n in range(per_process):
            if made == operations:
                break
            made += 1
            start = n * slot + rng.uniform(0, 0.3 * slot)
            key_index = rng.randrange(keys)
            key = f"k{key_index}"
            write = rng.random() < 0.5
            faulted = any(a <= start <= b and key_index % nodes == node
                          for a, b, node in down)
            roll = rng.random()
            outcome = (OpType.FAIL if faulted and roll < 0.3 else
                       OpType.INFO if faulted and roll < 0.5 else OpType.OK)
            took = min(0.6 * slot, rng.lognormvariate(math.log(0.002), 0.5)
                       * (20 if faulted else 1))
            value = f"{process}-{n}" if write else None
            inv = Op(0, process, OpType.INVOKE, "write" if write else "read", key, value, start)
            comp = Op(0, process, outcome, inv.f, key, value, start + took,
                      None if outcome is OpType.OK else "timeout" if outcome is OpType.INFO
                      else "no replica reached")
            ops += (inv, comp)
            if outcome is OpType.OK:
                calls.append((start + rng.random() * took, inv, comp))
    final = _linearize(calls, ops, stale_read)
    ops += _nemesis(steps)
    ops += _breakers(steps)
    history = History(clock=lambda: 0.0, t0=0.0)
    history.absorb(ops)
    verdict = Compose(sc.resolved_checkers()).check(history, FinalState(final))
    gate = steady_state_verdict(history, until=sc.steady_state, min_ok=sc.steady_min_ok)
    verdict = dataclasses.replace(verdict, parts=(gate, *verdict.parts))
    load = {"exit_code": 0, "operations": made, "ops_per_s": made / duration}
    timings = {"cluster_start_s": 1.0, "traffic_s": duration, "total_s": duration + 2.0}
    return RunResult(sc, history, final, verdict, timings, None, load, ())


def _linearize(calls, ops: list[Op], stale_read: bool) -> dict[str, str | None]:
    """Give each ok read the value of its key at the instant it took effect (ops are
    replaced in place); return the final value of each key."""
    state: dict[str, str | None] = {}
    done_writes: dict[str, list[tuple[Op, Op]]] = {}
    position = {id(op): i for i, op in enumerate(ops)}
    stale = None
    for _, inv, comp in sorted(calls, key=lambda c: c[0]):
        if inv.f == "write":
            state[inv.key] = inv.value
            done_writes.setdefault(inv.key, []).append((inv, comp))
            continue
        value = state.get(inv.key)
        writes = done_writes.get(inv.key, [])
        if stale_read and stale is None and len(writes) >= 2:
            (old, old_end), (new, new_end) = writes[-2], writes[-1]
            if old_end.time < new.time and new_end.time < inv.time:
                value = stale = old.value  # overwritten before this read began
        ops[position[id(comp)]] = dataclasses.replace(comp, value=value)
    return dict(state)


def _nemesis(steps) -> list[Op]:
    out = []
    for i, s in enumerate(steps):
        heal = max(s.end, s.at + 0.05)
        for phase, t in (("apply", s.at), ("heal", heal)):
            target, value = step_record(s.fault, i, phase)
            out += (Op(0, NEMESIS, OpType.INVOKE, s.fault.kind, target, value, t),
                    Op(0, NEMESIS, OpType.OK, s.fault.kind, target, value, t + 0.05))
    return out


def _breakers(steps) -> list[Op]:
    lane = "event:smart-client-1"
    out = [Op(0, lane, OpType.INFO, "breakers", None, {"threshold": 3, "cooldown": 1.0}, 0.0)]
    for s in steps:
        node = getattr(s.fault, "node", None) or (getattr(s.fault, "nodes", None) or (None,))[0]
        if node is None or s.duration <= 0:
            continue
        for t, old, new in ((s.at + 0.2, "closed", "open"), (s.end + 0.1, "open", "half-open"),
                            (s.end + 0.15, "half-open", "closed")):
            out.append(Op(0, lane, OpType.INFO, "breaker", node, {"from": old, "to": new}, t))
    return out
