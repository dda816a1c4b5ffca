"""Breakers: the circuit-breaker transitions the clients saw, from the events they record
(process ``event:<client>``, ``f`` ``breaker``, key the node, value ``{"from", "to"}``); a
client that records them says so first (``f`` ``breakers``, value ``{"threshold",
"cooldown"}``), so "no transition at all" is a finding, not a missing input.

For every fault on a node, the clients' breakers for that node must open during the fault
(the threshold was crossed), go half-open no sooner than the cooldown after opening, and be
closed again within ``settle_s`` of the heal; every transition must be an edge of the state
machine (closed -> open -> half_open -> closed | open; a late success may close an open one).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from chaos.checkers.base import Validity, Verdict, register
from chaos.history import History

__all__ = ["Breakers"]

EDGES = {("closed", "open"), ("open", "half_open"), ("half_open", "closed"),
         ("half_open", "open"), ("open", "closed")}


@register("breakers")
@dataclass(frozen=True, slots=True)
class Breakers:
    """Open during each fault on a node, half-open after ``cooldown``, closed within
    ``settle_s`` of the heal; only the state machine's edges."""

    cooldown: float = 1.0
    settle_s: float = 3.0
    name: str = "breakers"

    def check(self, history: History, final: Mapping[str, str | None]) -> Verdict:
        events = history.events("breaker")
        declared = history.events("breakers")
        if not events and not declared:
            return Verdict(self.name, Validity.UNKNOWN,
                           "no breaker events recorded (does the client record them?)")
        cooldowns = {op.value.get("cooldown") for op in declared if isinstance(op.value, dict)}
        cooldown = cooldowns.pop() if len(cooldowns) == 1 else self.cooldown
        lanes: dict[tuple[str, str], list] = {}  # (client, node) -> [(t, from, to)]
        for op in events:
            value = op.value if isinstance(op.value, dict) else {}
            lanes.setdefault((op.process, op.key), []).append(
                (op.time, value.get("from"), value.get("to")))
        problems = []
        for (client, node), moves in lanes.items():
            opened_at = None
            for t, old, new in moves:
                if (old, new) not in EDGES:
                    problems.append({"client": client, "node": node, "at": round(t, 3),
                                     "problem": f"{old} -> {new} is not a breaker transition"})
                if new == "open":
                    opened_at = t
                elif new == "half_open" and opened_at is not None \
                        and t - opened_at < cooldown * 0.95:
                    problems.append({"client": client, "node": node, "at": round(t, 3),
                                     "problem": f"half-open {t - opened_at:.2f}s after opening, "
                                                f"before the {cooldown:g}s cooldown"})
        faults = []
        for w in history.fault_windows():
            if not w.target:
                continue
            mine = {c: m for (c, n), m in lanes.items() if n == w.target}
            opened = sorted(c for c, m in mine.items()
                            if any(new == "open" and w.start <= t <= w.end for t, _, new in m))
            still_open = sorted(c for c, m in mine.items()
                                if [new for t, _, new in m if t <= w.end + self.settle_s][-1:]
                                in (["open"], ["half_open"]))
            faults.append({"fault": w.fault, "target": w.target, "opened": len(opened),
                           "clients": len(mine), "still_open": still_open[:10]})
            if not opened:
                problems.append({"node": w.target, "problem": f"no breaker for {w.target} "
                                 f"opened during {w.fault}"})
            if still_open:
                problems.append({"node": w.target, "problem": f"{len(still_open)} breakers for "
                                 f"{w.target} not closed {self.settle_s:g}s after the heal"})
        evidence = {"transitions": len(events), "lanes": len(lanes), "faults": faults}
        if problems:
            return Verdict(self.name, Validity.INVALID,
                           f"{len(problems)} breaker problems: {problems[0]['problem']}",
                           {**evidence, "problems": problems[:20]})
        if not faults:
            return Verdict(self.name, Validity.VALID,
                           f"{len(events)} transitions, all edges of the state machine", evidence)
        return Verdict(self.name, Validity.VALID,
                       f"breakers opened during every fault on a node and closed after it "
                       f"({len(events)} transitions)", evidence)
