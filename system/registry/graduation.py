"""The victory conditions behind ``GET /graduate``: evidence the cluster survived for real."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["Graduation", "CONDITIONS", "ART"]

CONDITIONS = {
    "write_while_node_dead": "a write acknowledged while a node was dead",
    "read_failover": "a read that succeeded although an owner failed",
    "scale_up": "a scale-up whose new node joined",
    "recovery": "a dead node back and caught up (no hints left for it)",
}

ART = r"""
   ____ _                     _       _
  / ___| |__   __ _  ___  ___| | __ _| |__
 | |   | '_ \ / _` |/ _ \/ __| |/ _` | '_ \
 | |___| | | | (_| | (_) \__ \ | (_| | |_) |
  \____|_| |_|\__,_|\___/|___/_|\__,_|_.__/
        _______
       /       \      the cluster lost nodes, kept its writes,
      |  (o)(o) |     failed over, grew, and healed.
      |   ___   |
       \_______/      you graduate.
        |_|_|_|
"""


@dataclass
class Graduation:
    seen: dict[str, dict] = field(default_factory=dict)
    _returned: dict[str, float] = field(default_factory=dict)
    clock: Callable[[], float] = time.time  # wall clock

    def record(self, condition: str, **evidence) -> None:
        if condition not in CONDITIONS:
            raise KeyError(condition)
        self.seen.setdefault(condition, {"at": self.clock(), **evidence})

    def node_returned(self, node_id: str) -> None:
        self._returned[node_id] = self.clock()

    def check_recovery(self, hints_by_holder: dict[str, dict[str, int]]) -> None:
        """A returned node has caught up once no live holder keeps hints for it."""
        for node_id in list(self._returned):
            if not any(h.get(node_id) for h in hints_by_holder.values()):
                self.record("recovery", node=node_id)
                del self._returned[node_id]

    def missing(self) -> dict[str, str]:
        return {k: v for k, v in CONDITIONS.items() if k not in self.seen}
