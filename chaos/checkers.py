"""Checkers: pure functions of a history (and final reads) returning a :class:`Verdict`.

They never raise: a checker that cannot decide says ``unknown`` with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from chaos.history import History

__all__ = ["Verdict", "availability", "no_lost_writes", "compose", "ReadYourWrites"]


@dataclass(frozen=True, slots=True)
class Verdict:
    name: str
    valid: str  # valid | invalid | unknown
    summary: str
    evidence: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.valid == "valid"

    def as_json(self) -> dict:
        return {"name": self.name, "valid": self.valid, "summary": self.summary,
                "evidence": self.evidence}


def _client_pairs(history: History, f: str | None = None):
    return [(i, c) for i, c in history.completions()
            if i.process != "nemesis" and (f is None or i.f == f)]


def availability(history: History, *, min_ratio: float = 1.0, f: str | None = None) -> Verdict:
    """The share of completed client operations that succeeded must be at least ``min_ratio``."""
    pairs = _client_pairs(history, f)
    if not pairs:
        return Verdict("availability", "unknown", "no completed operations")
    ok = sum(1 for _, c in pairs if c.type == "ok")
    ratio = ok / len(pairs)
    failures = [c.as_json() for _, c in pairs if c.type != "ok"][:10]
    valid = "valid" if ratio >= min_ratio else "invalid"
    return Verdict("availability", valid,
                   f"{ok}/{len(pairs)} operations succeeded ({ratio:.2%}; need {min_ratio:.2%})",
                   {"ok": ok, "total": len(pairs), "ratio": ratio, "first_failures": failures})


def no_lost_writes(history: History, final: dict[str, str | None]) -> Verdict:
    """The final value of every key must be one a correct register could hold: the value of
    a write (acknowledged or indeterminate) that no acknowledged write strictly followed in
    real time. A key whose last acknowledged write is superseded by an older value is lost."""
    writes: dict[str, list] = {}
    for inv, comp in _client_pairs(history, "write"):
        if comp.type != "fail":
            writes.setdefault(inv.key, []).append((inv, comp))
    acked = {k: [w for w in ws if w[1].type == "ok"] for k, ws in writes.items()}
    acked = {k: ws for k, ws in acked.items() if ws}
    if not acked:
        return Verdict("no-lost-writes", "unknown", "no acknowledged writes")
    lost, unread = {}, []
    for key, ws in acked.items():
        if key not in final:
            unread.append(key)
            continue
        # the latest invocation among acknowledged writes bounds what may still be visible
        horizon = max(inv.time for inv, _ in ws)
        allowed = {inv.value for inv, comp in writes[key]
                   if comp.type == "info" or comp.time >= horizon}
        if final[key] not in allowed:
            newest = max(ws, key=lambda w: w[1].time)[0]
            lost[key] = {"read": final[key], "last_acknowledged": newest.value,
                         "acceptable": sorted(map(str, allowed))[:5]}
    if lost:
        return Verdict("no-lost-writes", "invalid",
                       f"{len(lost)} of {len(acked)} keys lost an acknowledged write",
                       {"lost": dict(list(lost.items())[:20]), "checked": len(acked)})
    if unread:
        return Verdict("no-lost-writes", "unknown", f"{len(unread)} keys could not be read back",
                       {"unread": unread[:20]})
    return Verdict("no-lost-writes", "valid",
                   f"all {len(acked)} keys hold their last acknowledged write",
                   {"checked": len(acked)})


def compose(verdicts: list[Verdict]) -> Verdict:
    """invalid if any is invalid, else unknown if any is unknown, else valid."""
    states = {v.valid for v in verdicts}
    valid = "invalid" if "invalid" in states else "unknown" if "unknown" in states else "valid"
    return Verdict("all", valid, "; ".join(f"{v.name}: {v.valid}" for v in verdicts),
                   {v.name: v.as_json() for v in verdicts})


class ReadYourWrites:
    """An online check for one client session whose operations run one after another (a
    Locust user): a read must return the key's last acknowledged write, or a value whose write
    failed after it (a failed write may still have reached a replica), or nothing if no write
    of the key was acknowledged yet."""

    def __init__(self) -> None:
        self.allowed: dict[str, set[str | None]] = {}  # key -> what a read may return

    def wrote(self, key: str, value: str, acknowledged: bool) -> None:
        if acknowledged:
            self.allowed[key] = {value}
        else:
            self.allowed.setdefault(key, {None}).add(value)

    def keys(self) -> list[str]:
        return list(self.allowed)

    def problem(self, key: str, value: str | None) -> str | None:
        """None if ``value`` is a legal read of ``key``, else what is wrong with it."""
        allowed = self.allowed.get(key, {None})
        if value in allowed:
            return None
        shown = sorted(repr(v if v is None else v[:24]) for v in allowed)
        more = f" (and {len(shown) - 5} more)" if len(shown) > 5 else ""
        got = repr(value if value is None else value[:24])
        return f"stale read of {key}: got {got}, expected one of {', '.join(shown[:5])}{more}"
