"""Recovery: what "jittered recovery" means, measured on the node that comes back.

The herd peak is the busiest 100 ms of replica requests arriving at a node just after the
fault that held it heals, over the steady mean: that node's arrivals before the first fault,
or, when it has none (a killed node restarts with fresh counters), the mean node's.
The counts come from the nodes themselves (``history.series["arrivals:<node>"]``, filled by
the scenario runner from ``GET /stats/arrivals``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from chaos.checkers.base import Validity, Verdict, register
from chaos.history import History

__all__ = ["HerdPeak"]


@register("herd")
@dataclass(frozen=True, slots=True)
class HerdPeak:
    """After each healed fault on a node, the peak 100 ms of arrivals at it within
    ``window`` seconds of the heal must stay below ``max_ratio`` times its steady mean."""

    max_ratio: float = 3.0
    window: float = 2.0
    name: str = "herd"

    def check(self, history: History, final: Mapping[str, str | None]) -> Verdict:
        windows = [w for w in history.fault_windows() if w.target]
        if not windows:
            return Verdict(self.name, Validity.UNKNOWN, "no fault on a node to recover from")
        first = min(w.start for w in windows)
        means = {name.split(":", 1)[1]: _steady_mean(series, first)
                 for name, series in history.series.items() if name.startswith("arrivals:")}
        fleet = [m for m in means.values() if m is not None]
        found, worst = [], None
        for w in windows:
            series = history.series.get(f"arrivals:{w.target}")
            if not series:
                found.append({"target": w.target, "problem": "no arrival counts"})
                continue
            mean = means.get(w.target)
            if mean is None and fleet:
                mean = sum(fleet) / len(fleet)
            if not mean:
                found.append({"target": w.target, "problem": "no steady period to compare with"})
                continue
            after = [(t, n) for t, n in series if w.end - 0.2 <= t <= w.end + self.window]
            peak_t, peak = max(after, key=lambda tn: tn[1], default=(w.end, 0))
            ratio = peak / mean if mean else float("inf")
            row = {"target": w.target, "fault": w.fault, "healed_at": round(w.end, 3),
                   "peak": peak, "peak_at": round(peak_t, 3), "steady_mean": round(mean, 2),
                   "ratio": round(ratio, 2)}
            found.append(row)
            if worst is None or ratio > worst["ratio"]:
                worst = row
        if worst is None:
            return Verdict(self.name, Validity.UNKNOWN, found[0]["problem"] + f" for {found[0]['target']}",
                           {"windows": found})
        valid = Validity.VALID if worst["ratio"] <= self.max_ratio else Validity.INVALID
        return Verdict(self.name, valid,
                       f"herd peak {worst['ratio']:.1f}x the steady mean on {worst['target']} "
                       f"({worst['peak']} requests in 100 ms at t={worst['peak_at']:.2f}s; "
                       f"allowed {self.max_ratio:g}x)", {"windows": found})


def _steady_mean(series, first: float) -> float | None:
    """Mean arrivals per 100 ms from 0.5 s to the first fault; None without enough of it.
    Buckets with no arrival are missing from a series: they count as zeros."""
    steady = [n for t, n in series if 0.5 <= t < first]
    if len(steady) < 5:
        return None
    return sum(steady) / max(len(steady), round((first - 0.5) / 0.1))
