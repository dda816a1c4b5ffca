"""Recovery: what "jittered recovery" means, measured on the node that comes back.

The herd peak is the busiest 100 ms of replica writes and reads arriving at a node just after
the fault that held it heals (a batch its peers hand off counts each record: a node coming
back gets what it missed from every peer at once, unless they pace it), over the steady mean: that node's arrivals before the first fault,
or, when it has none (a killed node restarts with fresh counters), the mean node's.
The counts come from the nodes themselves (``history.series["arrivals:<node>"]``, filled by
the scenario runner from ``GET /stats/arrivals``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from chaos.checkers.base import Validity, Verdict, register
from chaos.history import History

__all__ = ["HerdPeak", "RetryAmplification"]


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


@register("amplification")
@dataclass(frozen=True, slots=True)
class RetryAmplification:
    """Retry amplification: the replica requests the clients sent per operation inside each
    fault window, over the same before the first fault. Retries multiply a client's load on
    a cluster that is already failing; backoff and breakers are what keep it down (an owner
    behind an open breaker gets no request). ``max_ratio`` is the most a window may reach.

    The counts are the clients' own (``Op.requests`` on each completion, from the smart
    client or the gateway's answer); operations without them are left out."""

    max_ratio: float = 2.0
    name: str = "amplification"

    def check(self, history: History, final: Mapping[str, str | None]) -> Verdict:
        windows = history.fault_windows()
        if not windows:
            return Verdict(self.name, Validity.UNKNOWN, "no fault to measure retries in")
        first = min(w.start for w in windows)
        costs = [(comp.time, comp.attempts or 0, comp.requests) for inv, comp in history.completions()
                 if inv.is_client and not comp.interrupted and comp.requests is not None]
        healthy = [r for t, _, r in costs if t < first]
        if len(healthy) < 10:
            return Verdict(self.name, Validity.UNKNOWN,
                           f"{len(healthy)} operations with request counts before the first "
                           "fault: too few to compare with")
        base = sum(healthy) / len(healthy)
        rows, worst = [], None
        for w in windows:
            inside = [(a, r) for t, a, r in costs if w.start <= t <= w.end]
            if not inside:
                continue
            mean = sum(r for _, r in inside) / len(inside)
            row = {"fault": w.fault, "target": w.target, "start": round(w.start, 3),
                   "end": round(w.end, 3), "operations": len(inside),
                   "requests_per_op": round(mean, 2),
                   "attempts_per_op": round(sum(a for a, _ in inside) / len(inside), 2),
                   "max_attempts": max(a for a, _ in inside),
                   "ratio": round(mean / base, 2) if base else float("inf")}
            rows.append(row)
            if worst is None or row["ratio"] > worst["ratio"]:
                worst = row
        evidence = {"healthy_requests_per_op": round(base, 2), "windows": rows}
        if worst is None:
            return Verdict(self.name, Validity.UNKNOWN, "no operation completed inside a fault",
                           evidence)
        valid = Validity.VALID if worst["ratio"] <= self.max_ratio else Validity.INVALID
        return Verdict(self.name, valid,
                       f"retries sent {worst['ratio']:.1f}x the healthy replica requests per "
                       f"operation during {worst['fault']} {worst['target'] or ''} "
                       f"({worst['requests_per_op']:g} against {base:.2f}; "
                       f"{worst['attempts_per_op']:g} attempts per operation; allowed "
                       f"{self.max_ratio:g}x)".replace("  (", " ("), evidence)
