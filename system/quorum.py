"""Quorum arithmetic: how many answers an operation needs and whether it can still get them.

Pure: a :class:`Tally` is fed the outcome of each replica request and says when the
operation has succeeded, or has definitely failed, without waiting for the slowest replica.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["QuorumConfig", "Tally"]


@dataclass(frozen=True, slots=True)
class QuorumConfig:
    """Replication factor ``n``, write quorum ``w`` and read quorum ``r``."""

    n: int = 3
    w: int = 2
    r: int = 2

    def __post_init__(self) -> None:
        if self.n < 1:
            raise ValueError(f"N must be at least 1, got {self.n}")
        for name, value in (("W", self.w), ("R", self.r)):
            if not 1 <= value <= self.n:
                raise ValueError(f"{name} must be between 1 and N={self.n}, got {value}")

    @property
    def strong(self) -> bool:
        """True when every read quorum overlaps every write quorum (R + W > N)."""
        return self.r + self.w > self.n


@dataclass(slots=True)
class Tally:
    """Counts the answers of one quorum operation sent to ``total`` replicas."""

    needed: int
    total: int
    ok: dict[str, Any] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    doubtful: set[str] = field(default_factory=set)  # failed, but may have applied it
    sent: int = 0  # requests sent to replicas (an owner behind an open breaker gets none)

    def __post_init__(self) -> None:
        if self.needed < 1:
            raise ValueError(f"a quorum needs at least 1 answer, got {self.needed}")

    def record_ok(self, node: str, payload: Any = None) -> None:
        self.failed.pop(node, None)
        self.doubtful.discard(node)
        self.ok[node] = payload

    def record_fail(self, node: str, reason: str, *, definite: bool = False) -> None:
        """``definite``: the replica certainly did not apply the request (it was never
        sent, or was refused); by default a failure is doubtful (a timeout may have applied)."""
        if node not in self.ok:
            self.failed[node] = reason
            if definite:
                self.doubtful.discard(node)
            else:
                self.doubtful.add(node)

    @property
    def reached(self) -> bool:
        """Some replica answered, or may have applied the request (a doubtful failure)."""
        return bool(self.ok or self.doubtful)

    @property
    def pending(self) -> int:
        return self.total - len(self.ok) - len(self.failed)

    @property
    def succeeded(self) -> bool:
        return len(self.ok) >= self.needed

    @property
    def impossible(self) -> bool:
        """Not enough replicas left that could still answer."""
        return len(self.ok) + self.pending < self.needed

    @property
    def decided(self) -> bool:
        return self.succeeded or self.impossible
