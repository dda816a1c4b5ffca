"""Convergence: once the faults are healed and hinted handoff has had its quiet period, every
copy of every key is the same newest version, on as many replicas as the key has owners.

It reads ``final.replicas`` (node -> key -> version, read from each node's own API by the
scenario runner) and ``final.copies`` (the owners per key, ``min(N, nodes)``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from chaos.checkers.base import Validity, Verdict, register
from chaos.history import History

__all__ = ["Convergence"]


@register("convergence")
@dataclass(frozen=True, slots=True)
class Convergence:
    """Every key: all copies hold the newest version, and at least ``final.copies`` do."""

    name: str = "convergence"

    def check(self, history: History, final: Mapping[str, str | None]) -> Verdict:
        replicas = getattr(final, "replicas", None)
        copies = getattr(final, "copies", None)
        if not replicas or not copies:
            return Verdict(self.name, Validity.UNKNOWN, "no replica contents were read")
        held: dict[str, dict[str, tuple]] = {}
        for node, keys in replicas.items():
            for key, version in keys.items():
                held.setdefault(key, {})[node] = tuple(version)
        if not held:
            return Verdict(self.name, Validity.UNKNOWN, "the replicas hold no keys")
        divergent = {}
        for key, versions in held.items():
            newest = max(versions.values())
            behind = {n: list(v) for n, v in versions.items() if v != newest}
            current = sorted(n for n, v in versions.items() if v == newest)
            if behind or len(current) < copies:
                divergent[key] = {"newest": list(newest), "on": current, "behind": behind,
                                  "missing": copies - len(current) if len(current) < copies else 0}
        evidence = {"keys": len(held), "nodes": sorted(replicas), "copies": copies}
        if divergent:
            shown = dict(sorted(divergent.items())[:20])
            return Verdict(self.name, Validity.INVALID,
                           f"{len(divergent)} of {len(held)} keys diverge across replicas "
                           f"(an older copy, or fewer than {copies} copies of the newest)",
                           {**evidence, "divergent": shown})
        return Verdict(self.name, Validity.VALID,
                       f"all {len(held)} keys hold their newest version on {copies} replicas",
                       evidence)
