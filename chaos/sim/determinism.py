"""Determinism of simulated runs: a run's fingerprint, and where two runs part.

A run's history (its ``history.jsonl`` dump: every operation and fault record, times
included) and its injected-event log (what the runtime did: kills, restarts, pauses, cuts,
toxics, on virtual time) are hashed; the same seed twice must give the same hashes. When
they differ, :func:`first_divergence` names the first record that does.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import orjson

from chaos.history import History

__all__ = ["Fingerprint", "fingerprint", "history_lines", "event_lines", "first_divergence"]


def history_lines(history: History) -> list[bytes]:
    """The lines of the history's ``history.jsonl`` dump (:meth:`History.dump`)."""
    return [orjson.dumps(op.as_json()) for op in history.ops]


def event_lines(events: Sequence[tuple[float, str]]) -> list[bytes]:
    return [orjson.dumps([t, text]) for t, text in events]


def _digest(lines: list[bytes]) -> str:
    h = hashlib.sha256()
    for line in lines:
        h.update(line + b"\n")
    return h.hexdigest()


@dataclass(frozen=True, slots=True)
class Fingerprint:
    history: str  # sha256 of the history's JSONL dump
    events: str  # sha256 of the injected-event log
    operations: int
    injected: int

    def short(self) -> str:
        return f"history {self.history[:16]} ({self.operations} records), events " \
               f"{self.events[:16]} ({self.injected})"


def fingerprint(history: History, events: Sequence[tuple[float, str]]) -> Fingerprint:
    lines = history_lines(history)
    return Fingerprint(_digest(lines), _digest(event_lines(events)), len(lines), len(events))


def first_divergence(a: Sequence[bytes], b: Sequence[bytes], *, what: str = "record") -> str | None:
    """None when ``a`` and ``b`` are the same; else the first differing entry of each."""
    for i, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            return (f"{what} {i} differs:\n  first run:  {x.decode(errors='replace')}\n"
                    f"  second run: {y.decode(errors='replace')}")
    if len(a) != len(b):
        longer, which = (a, "first") if len(a) > len(b) else (b, "second")
        return (f"the {which} run has {abs(len(a) - len(b))} more {what}s, from {what} "
                f"{min(len(a), len(b))}: {longer[min(len(a), len(b))].decode(errors='replace')}")
    return None
