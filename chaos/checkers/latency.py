"""Latency per window: a quantile of successful operations inside the fault windows against
the same quantile outside them ("a slow replica does not slow quorum writes")."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from chaos.checkers.base import Validity, Verdict, register
from chaos.history import History, OpType

__all__ = ["LatencyPerWindow", "quantile"]


def quantile(values: list[float], q: float) -> float:
    """The ``q`` quantile (nearest rank) of ``values``."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


@register("latency")
@dataclass(frozen=True, slots=True)
class LatencyPerWindow:
    """The ``q`` quantile of ok ``f`` operations invoked during faults is at most
    ``max_ratio`` times (plus ``slack_ms``) the same quantile outside every fault window."""

    max_ratio: float = 1.2
    q: float = 0.99
    f: str = "write"
    slack_ms: float = 2.0  # a floor: 1.2 x 3 ms is within a scheduler's noise
    min_samples: int = 50
    name: str = "latency"

    def check(self, history: History, final: Mapping[str, str | None]) -> Verdict:
        windows = history.fault_windows()
        faulty: list[float] = []
        healthy: list[float] = []
        for inv, comp in history.completions():
            if not inv.is_client or inv.f != self.f or comp.type is not OpType.OK:
                continue
            during = any(w.start <= inv.time <= w.end for w in windows)
            (faulty if during else healthy).append((comp.time - inv.time) * 1000)
        if len(faulty) < self.min_samples or len(healthy) < self.min_samples:
            return Verdict(self.name, Validity.UNKNOWN,
                           f"too few ok {self.f}s to compare ({len(faulty)} during faults, "
                           f"{len(healthy)} outside; need {self.min_samples} each)")
        during_q, healthy_q = quantile(faulty, self.q), quantile(healthy, self.q)
        bound = healthy_q * self.max_ratio + self.slack_ms
        valid = Validity.VALID if during_q <= bound else Validity.INVALID
        p = f"p{self.q * 100:g}"
        return Verdict(self.name, valid,
                       f"{self.f} {p} {during_q:.1f} ms during faults vs {healthy_q:.1f} ms "
                       f"healthy (bound {bound:.1f} ms = {self.max_ratio:g}x + "
                       f"{self.slack_ms:g} ms)",
                       {"during_ms": during_q, "healthy_ms": healthy_q, "bound_ms": bound,
                        "samples": {"during": len(faulty), "healthy": len(healthy)}})
