"""Failover: how long the clients went without a successful operation on the keys a fault
affected, and which operations failed in between.

The keys a fault on node X affected are those X holds a copy of (from the replicas read
after the run, ``final.replicas``); without those, the keys with an operation that did not
succeed inside the fault's window. The failover time of a fault is the longest stretch of
its window (from the fault's start to its heal) in which no operation of one kind (reads,
writes) on those keys completed successfully: a client that fails over at once sees none.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from chaos.checkers.base import Validity, Verdict, register
from chaos.history import History, OpType

__all__ = ["Failover"]


@register("failover")
@dataclass(frozen=True, slots=True)
class Failover:
    """Every fault on a node is failed over within ``max_s`` seconds."""

    max_s: float = 1.5
    name: str = "failover"

    def check(self, history: History, final: Mapping[str, str | None]) -> Verdict:
        windows = [w for w in history.fault_windows() if w.target]
        if not windows:
            return Verdict(self.name, Validity.UNKNOWN, "no fault on a node to fail over from")
        pairs = [(i, c) for i, c in history.completions() if i.is_client and not c.interrupted]
        replicas = getattr(final, "replicas", None) or {}
        rows, worst = [], None
        for w in windows:
            if w.target in replicas:
                keys, source = set(replicas[w.target]), "copies on the node"
            else:
                keys = {i.key for i, c in pairs
                        if c.type is not OpType.OK and w.start <= c.time <= w.end}
                source = "keys with a failed operation"
            inside = [(i, c) for i, c in pairs if i.key in keys and w.start <= c.time <= w.end]
            if not inside:
                rows.append({"target": w.target, "fault": w.fault, "keys": len(keys),
                             "problem": "no operation on the affected keys in the window"})
                continue
            gap, at, kind = 0.0, w.start, None
            for f in sorted({i.f for i, _ in inside}):  # reads may go on while writes stall
                ok = sorted(c.time for i, c in inside if i.f == f and c.type is OpType.OK)
                edges = [w.start, *ok, w.end]
                longest = max((b - a, a) for a, b in zip(edges, edges[1:], strict=False))
                if longest[0] > gap:
                    (gap, at), kind = longest, f
            failed = [c for _, c in inside if c.type is not OpType.OK]
            row = {"target": w.target, "fault": w.fault, "keys": len(keys), "keys_from": source,
                   "failover_s": round(gap, 3), "outage_from": round(at, 3), "outage_of": kind,
                   "operations": len(inside), "failed": len(failed),
                   "failed_examples": [{"key": c.key, "f": c.f, "type": str(c.type),
                                        "at": round(c.time, 3), "error": c.error}
                                       for c in failed[:5]]}
            rows.append(row)
            if worst is None or gap > worst["failover_s"]:
                worst = row
        if worst is None:
            return Verdict(self.name, Validity.UNKNOWN, rows[0]["problem"], {"faults": rows})
        valid = Validity.VALID if worst["failover_s"] <= self.max_s else Validity.INVALID
        return Verdict(self.name, valid,
                       f"failover {worst['failover_s']:.2f}s ({worst['outage_of']}s) after {worst['fault']} "
                       f"{worst['target']} ({worst['failed']} of {worst['operations']} operations "
                       f"on its {worst['keys']} keys failed; allowed {self.max_s:g}s)",
                       {"faults": rows})
