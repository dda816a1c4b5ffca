"""The registry's view of membership, derived from heartbeats.

A node is ``alive`` while heartbeats arrive, ``suspect`` after ``suspect_after`` missed
intervals, ``dead`` after ``dead_after``; a node that deregisters is ``left``. Pure: time comes
from an injected monotonic ``clock``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Member", "Membership", "HEALTH_LEVELS"]

HEALTH_LEVELS = ("healthy", "degraded", "critical")


@dataclass(frozen=True, slots=True)
class Member:
    id: str
    address: str
    status: str  # alive | suspect | dead | left
    since_heartbeat: float
    incarnation: int  # bumped each time a dead or departed node comes back

    def as_json(self) -> dict:
        return {
            "id": self.id,
            "address": self.address,
            "status": self.status,
            "seconds_since_heartbeat": round(self.since_heartbeat, 3),
            "incarnation": self.incarnation,
        }


class Membership:
    def __init__(
        self,
        *,
        interval: float = 2.0,
        suspect_after: int = 2,
        dead_after: int = 3,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not interval > 0:
            raise ValueError(f"interval must be positive, got {interval}")
        if not 0 < suspect_after <= dead_after:
            raise ValueError(
                f"need 0 < suspect_after <= dead_after, got {suspect_after} and {dead_after}"
            )
        self.interval = interval
        self.suspect_after = suspect_after
        self.dead_after = dead_after
        self._clock = clock
        self._last: dict[str, float] = {}
        self._address: dict[str, str] = {}
        self._left: set[str] = set()
        self._forced_dead: set[str] = set()
        self._incarnation: dict[str, int] = {}

    def heartbeat(self, node_id: str, address: str) -> bool:
        """Record a heartbeat; True when the node (re)joined rather than just kept beating."""
        rejoined = node_id not in self._last or self.status(node_id) in ("dead", "left")
        if rejoined:
            self._incarnation[node_id] = self._incarnation.get(node_id, 0) + 1
        self._last[node_id] = self._clock()
        self._address[node_id] = address
        self._left.discard(node_id)
        self._forced_dead.discard(node_id)
        return rejoined

    def deregister(self, node_id: str) -> bool:
        if node_id not in self._last:
            return False
        self._left.add(node_id)
        return True

    def mark_dead(self, node_id: str) -> bool:
        if node_id not in self._last:
            return False
        self._forced_dead.add(node_id)
        return True

    def __contains__(self, node_id: object) -> bool:
        return node_id in self._last

    def status(self, node_id: str) -> str:
        if node_id not in self._last:
            raise KeyError(node_id)
        if node_id in self._left:
            return "left"
        if node_id in self._forced_dead:
            return "dead"
        missed = (self._clock() - self._last[node_id]) / self.interval
        if missed >= self.dead_after:
            return "dead"
        if missed >= self.suspect_after:
            return "suspect"
        return "alive"

    def members(self) -> list[Member]:
        now = self._clock()
        return [
            Member(
                node_id,
                self._address[node_id],
                self.status(node_id),
                now - self._last[node_id],
                self._incarnation[node_id],
            )
            for node_id in sorted(self._last)
        ]

    def ring_members(self) -> list[Member]:
        """Members that keep their place on the ring: every node that has not left.

        A dead node keeps its token range (its keys are served by the rest of the preference
        list and handed back when it returns); only a graceful departure moves keys away.
        """
        return [m for m in self.members() if m.status != "left"]

    def health(self, replication: int) -> str:
        """healthy: all alive; degraded: some not alive but a quorum of N survives;
        critical: fewer than a majority of N alive."""
        ring = self.ring_members()
        alive = sum(1 for m in ring if m.status == "alive")
        if ring and alive == len(ring):
            return "healthy"
        if alive >= min(replication, len(ring)) // 2 + 1:
            return "degraded"
        return "critical"
