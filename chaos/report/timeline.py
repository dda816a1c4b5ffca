"""The run as data over time, for the report's plot and the journal (pure: no I/O).

Only client operations count as operations: the nemesis's records and the clients'
observations (``event:`` processes, e.g. a breaker that moved) are never successes or
failures. An operation cut short by the end of the run (``interrupted``) is counted apart,
not as an indefinite one: it is the harness's doing, not the system's.

Operations are bucketed by their completion time into at most ``max_points`` buckets (the
plot is downsampled; the checkers and their evidence never are).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from chaos.history import NEMESIS, FaultWindow, History, Op, OpType

__all__ = ["Timeline", "Mark", "timeline", "client_pairs", "latency_summary", "bucket_size",
           "percentile", "key_operations", "MEMBERSHIP_FAULTS"]

MAX_POINTS = 2000
MIN_BUCKET = 0.25  # seconds: finer buckets hold too few operations for a p99
MEMBERSHIP_FAULTS = frozenset({"scale-up"})  # steps that change who the members are
_NICE = (1.0, 2.0, 2.5, 5.0)


@dataclass(frozen=True, slots=True)
class Mark:
    """Something that happened at one instant: a membership change or a breaker that moved."""

    time: float
    kind: str  # "membership", "breaker", or the ``f`` of another observation
    lane: str  # what it happened to: a node, or "cluster"
    label: str  # e.g. "closed→open"
    detail: str = ""  # who saw it
    state: str | None = None  # a breaker's new state


@dataclass(frozen=True, slots=True)
class Timeline:
    """Client operations per bucket of ``bucket`` seconds (``times``: each bucket's start):
    completed ok / fail / info, and the p50 and p99 latency of the ok ones in ms (None: no
    ok operation in that bucket). ``faults``: every fault window; ``marks``: membership
    changes and breaker transitions."""

    bucket: float
    times: tuple[float, ...]
    ok: tuple[int, ...]
    fail: tuple[int, ...]
    info: tuple[int, ...]
    p50_ms: tuple[float | None, ...]
    p99_ms: tuple[float | None, ...]
    faults: tuple[FaultWindow, ...]
    marks: tuple[Mark, ...]
    span: float  # seconds from t0 to the last record

    def per_second(self, counts: Sequence[int]) -> list[float]:
        return [n / self.bucket for n in counts]


def bucket_size(span: float, *, max_points: int = MAX_POINTS,
                minimum: float = MIN_BUCKET) -> float:
    """The smallest "nice" bucket (1, 2, 2.5 or 5 times a power of ten) of at least
    ``minimum`` seconds that cuts ``span`` seconds into at most ``max_points`` buckets."""
    need = max(minimum, span / max(1, max_points))
    scale = 10.0 ** math.floor(math.log10(need))
    for step in (*_NICE, 10.0):
        if step * scale >= need * (1 - 1e-9):
            return step * scale
    return 10.0 * scale  # unreachable: 10 * scale >= need


def percentile(ordered: Sequence[float], q: float) -> float | None:
    """The nearest-rank ``q`` percentile (0-100) of an ordered sequence; None if empty."""
    if not ordered:
        return None
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def client_pairs(history: History) -> list[tuple[Op, Op]]:
    """(invoke, completion) of every client operation, in order of completion."""
    return [(i, c) for i, c in history.completions() if i.is_client]


def latency_summary(pairs: Sequence[tuple[Op, Op]], duration: float | None = None) -> dict:
    """Counts by outcome, the share of ok among the operations the run did not cut short,
    throughput (ok per second over ``duration``, or over the span of the completions) and
    latency percentiles of the ok operations, in ms."""
    counts = {"ok": 0, "fail": 0, "info": 0, "interrupted": 0}
    latencies = []
    for inv, comp in pairs:
        if comp.interrupted:
            counts["interrupted"] += 1
        elif comp.type is OpType.OK:
            counts["ok"] += 1
            latencies.append((comp.time - inv.time) * 1000)
        elif comp.type is OpType.FAIL:
            counts["fail"] += 1
        else:
            counts["info"] += 1
    latencies.sort()
    if duration is None:
        duration = (max(c.time for _, c in pairs) - min(i.time for i, _ in pairs)
                    if pairs else 0.0)
    total = len(pairs)
    judged = total - counts["interrupted"]  # the end of the run is not the system's doing
    return {
        "operations": total, **counts,
        "ok_ratio": round(counts["ok"] / judged, 5) if judged else None,
        "duration_s": round(duration, 3),
        "ok_per_s": round(counts["ok"] / duration, 2) if duration > 0 else None,
        "latency_ms": {name: _round(percentile(latencies, q))
                       for name, q in (("p50", 50), ("p90", 90), ("p99", 99),
                                       ("p999", 99.9), ("max", 100))},
    }


def timeline(history: History, *, max_points: int = MAX_POINTS,
             min_bucket: float = MIN_BUCKET, pairs: Sequence[tuple[Op, Op]] | None = None,
             windows: Sequence[FaultWindow] | None = None) -> Timeline:
    """The history bucketed for the plot, with its fault windows and marks (``pairs``,
    ``windows``: the history's client pairs and fault windows, when already at hand)."""
    ops = history.ops
    span = max((op.time for op in ops), default=0.0)
    bucket = bucket_size(span, max_points=max_points, minimum=min_bucket)
    n = int(span // bucket) + 1
    ok, fail, info = [0] * n, [0] * n, [0] * n
    latencies: list[list[float]] = [[] for _ in range(n)]
    for inv, comp in client_pairs(history) if pairs is None else pairs:
        b = min(n - 1, max(0, int(comp.time // bucket)))
        if comp.type is OpType.OK:
            ok[b] += 1
            latencies[b].append((comp.time - inv.time) * 1000)
        elif comp.type is OpType.FAIL:
            fail[b] += 1
        elif not comp.interrupted:
            info[b] += 1
    p50, p99 = [], []
    for values in latencies:
        values.sort()
        p50.append(_round(percentile(values, 50)))
        p99.append(_round(percentile(values, 99)))
    return Timeline(bucket, tuple(round(i * bucket, 6) for i in range(n)), tuple(ok),
                    tuple(fail), tuple(info), tuple(p50), tuple(p99),
                    tuple(history.fault_windows() if windows is None else windows),
                    tuple(marks(ops, max_points)), span)


def marks(ops: Sequence[Op], limit: int = MAX_POINTS) -> list[Mark]:
    """Membership changes (a membership step that succeeded, or a client's membership
    observation) and breaker transitions, in time order; at most ``limit``, thinned evenly."""
    found = []
    for op in ops:
        if op.process == NEMESIS:
            phase = op.value.get("phase") if isinstance(op.value, dict) else None
            if op.f in MEMBERSHIP_FAULTS and op.type is OpType.OK and phase == "apply":
                found.append(Mark(op.time, "membership", "cluster",
                                  f"{op.f} {op.key or ''}".strip(), "nemesis"))
        elif op.is_event:
            if op.f == "breaker" and isinstance(op.value, dict):
                old, new = op.value.get("from", "?"), op.value.get("to", "?")
                found.append(Mark(op.time, "breaker", str(op.key), f"{old}→{new}",
                                  op.process.removeprefix("event:"), str(new)))
            elif op.f != "breakers":  # "breakers": how a client's breakers are set
                label = op.f if op.value is None else f"{op.f} {_text(op.value)}"
                found.append(Mark(op.time, "membership" if "member" in op.f else op.f,
                                  str(op.key or "cluster"), label,
                                  op.process.removeprefix("event:")))
    found.sort(key=lambda m: m.time)
    if len(found) > limit:
        step = len(found) / limit
        found = [found[int(i * step)] for i in range(limit)]
    return found


def key_operations(history: History, key: str, start: float, end: float, *,
                   values: frozenset = frozenset(), limit: int = 200) -> list[dict]:
    """The client operations on ``key`` around [start, end] (as far again on each side),
    and the writes of ``values`` wherever they are (where a value read came from): the
    context of a linearizability checker's window. The ``limit`` nearest to the window."""
    pad = max(end - start, 0.01)
    found = []
    for inv, comp in client_pairs(history):
        if inv.key != key:
            continue
        near = inv.time <= end + pad and comp.time >= start - pad
        source = inv.f == "write" and inv.value in values
        if near or source:
            found.append({"process": inv.process, "f": inv.f,
                          "value": inv.value if inv.f == "write" else comp.value,
                          "invoke": inv.time, "completion": comp.time,
                          "type": str(comp.type)})
    found.sort(key=lambda op: abs(op["invoke"] - (start + end) / 2))
    return sorted(found[:limit], key=lambda op: op["invoke"])


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def _text(value) -> str:
    text = str(value)
    return text if len(text) <= 60 else text[:59] + "…"
