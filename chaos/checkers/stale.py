"""Stale reads: a read invoked after a write was acknowledged returns that write's value or
a newer one. With R+W>N a quorum system promises it; it is much cheaper than full
linearizability (one pass per key), so it can always run.

Judged on values, not on the versions the system reports (those are what is under test):
every write has a unique value. A read of value ``x`` is stale when some write ``W`` was
acknowledged before the read began, and the write of ``x`` had completed before ``W`` began
(so ``x`` is strictly older than ``W``), or when it finds nothing after ``W``. An
indeterminate (``info``) write may take effect at any time after its invocation, so it is
never strictly older than anything. A read of a value no write wrote, or one whose write
definitely failed, is reported too.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping
from dataclasses import dataclass

from chaos.checkers.base import Validity, Verdict, register
from chaos.history import History, OpType

__all__ = ["StaleReads"]

INF = float("inf")


@register("stale-reads")
@dataclass(frozen=True, slots=True)
class StaleReads:
    """No read misses a write acknowledged before it began."""

    name: str = "stale-reads"

    def check(self, history: History, final: Mapping[str, str | None]) -> Verdict:
        writes: dict[str, dict[str, tuple[float, float, OpType]]] = {}  # key -> value -> op
        reads: list[tuple] = []
        for inv, comp in history.completions():
            if not inv.is_client:
                continue
            if inv.f == "write":
                end = comp.time if comp.type is OpType.OK else INF
                writes.setdefault(inv.key, {})[inv.value] = (inv.time, end, comp.type)
            elif inv.f == "read" and comp.type is OpType.OK:
                reads.append((inv, comp))
        if not reads:
            return Verdict(self.name, Validity.UNKNOWN, "no successful reads to judge")
        # per key: acknowledged writes by completion, with the latest invocation so far
        acked: dict[str, tuple[list[float], list[float], list[str]]] = {}
        for key, ws in writes.items():
            done = sorted((end, start, value) for value, (start, end, t) in ws.items()
                          if t is OpType.OK)
            ends, latest, values = [], [], []
            best, best_value = -INF, None
            for end, start, value in done:
                if start > best:
                    best, best_value = start, value
                ends.append(end)
                latest.append(best)
                values.append(best_value)
            acked[key] = (ends, latest, values)
        stale, phantom = [], []
        for inv, comp in reads:
            ends, latest, values = acked.get(inv.key, ([], [], []))
            i = bisect.bisect_left(ends, inv.time)  # writes acknowledged before the read began
            if i == 0:
                floor, must_see = -INF, None
            else:
                floor, must_see = latest[i - 1], values[i - 1]
            got = comp.value
            if got is None:
                if must_see is not None:
                    stale.append(_row(inv, comp, got, must_see, "found nothing"))
                continue
            source = writes.get(inv.key, {}).get(got)
            if source is None or source[2] is OpType.FAIL:
                phantom.append(_row(inv, comp, got, must_see,
                                    "no write wrote it" if source is None else "its write failed"))
            elif source[1] < floor:  # its write ended before the newer acknowledged one began
                stale.append(_row(inv, comp, got, must_see, "an older value"))
        evidence = {"reads": len(reads)}
        if stale or phantom:
            parts = []
            if stale:
                parts.append(f"{len(stale)} stale reads")
                evidence["stale"] = stale[:20]
            if phantom:
                parts.append(f"{len(phantom)} reads of values never (successfully) written")
                evidence["phantom"] = phantom[:20]
            return Verdict(self.name, Validity.INVALID,
                           f"{' and '.join(parts)} among {len(reads)} reads", evidence)
        return Verdict(self.name, Validity.VALID,
                       f"all {len(reads)} reads saw the last write acknowledged before them",
                       evidence)


def _row(inv, comp, got, expected, why: str) -> dict:
    return {"key": inv.key, "process": inv.process, "read": _short(got),
            "at_least": _short(expected), "invoked": round(inv.time, 4),
            "completed": round(comp.time, 4), "why": why}


def _short(value):
    return value if value is None or len(value) <= 40 else value[:40] + "…"
