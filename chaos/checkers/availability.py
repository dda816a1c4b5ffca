"""Availability: the share of client operations that succeeded, overall or in fault windows."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from chaos.checkers.base import Validity, Verdict, register
from chaos.history import History, OpType

__all__ = ["Availability"]


@register("availability")
@dataclass(frozen=True, slots=True)
class Availability:
    """At least ``min_ratio`` of the completed client operations succeeded.

    ``during``: ``all`` operations, only those invoked inside a fault window (``faults``), or
    only those outside every window (``healthy``). Nemesis records never count. ``f`` limits
    it to one kind of operation (``write`` or ``read``). Operations cut short by the end of
    the run (``interrupted``) are the harness's doing and do not count."""

    min_ratio: float = 1.0
    during: Literal["all", "faults", "healthy"] = "all"
    f: str | None = None
    name: str = "availability"

    def __post_init__(self) -> None:
        if not 0.0 <= self.min_ratio <= 1.0:
            raise ValueError(f"min_ratio must be from 0 to 1, got {self.min_ratio}")
        if self.during not in ("all", "faults", "healthy"):
            raise ValueError(f"during must be all, faults or healthy, got {self.during!r}")

    def check(self, history: History, final: Mapping[str, str | None]) -> Verdict:
        windows = history.fault_windows()

        def in_fault(t: float) -> bool:
            return any(w.start <= t <= w.end for w in windows)

        pairs = [(i, c) for i, c in history.completions()
                 if i.is_client and not c.interrupted and (self.f is None or i.f == self.f)
                 and (self.during == "all" or in_fault(i.time) == (self.during == "faults"))]
        scope = "" if self.during == "all" else f" {'during' if self.during == 'faults' else 'outside'} faults"
        if not pairs:
            return Verdict(self.name, Validity.UNKNOWN, f"no completed operations{scope}")
        ok = sum(1 for _, c in pairs if c.type is OpType.OK)
        ratio = ok / len(pairs)
        failures = [c.as_json() for _, c in pairs if c.type is not OpType.OK][:10]
        valid = Validity.VALID if ratio >= self.min_ratio else Validity.INVALID
        return Verdict(self.name, valid,
                       f"{ok}/{len(pairs)} operations{scope} succeeded ({ratio:.2%}; need "
                       f"{self.min_ratio:.2%})",
                       {"ok": ok, "total": len(pairs), "ratio": ratio, "during": self.during,
                        "first_failures": failures})
