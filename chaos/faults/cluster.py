"""Faults on membership: the cluster grows while traffic goes on."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from chaos.faults.base import FaultBase, register, require
from chaos.runtime.base import Scalable

__all__ = ["ScaleUp"]


@register("scale-up")
@dataclass(frozen=True, slots=True)
class ScaleUp(FaultBase):
    """``count`` new nodes join; the ring rebalances and keys move while traffic continues.
    A one-off: the grown cluster is healthy, so there is nothing to undo."""

    count: int = 1
    instant = True

    def __post_init__(self) -> None:
        if not 1 <= self.count <= 16:
            raise ValueError(f"count must be from 1 to 16, got {self.count}")

    def apply(self, runtime: Any) -> None:
        require(runtime, Scalable, self.kind, "add nodes")
        for _ in range(self.count):
            runtime.add_node()

    def undo(self, runtime: Any) -> None:
        """Nothing: new members are not a fault to take back."""

    def resources(self) -> frozenset[str]:
        return frozenset({"membership"})
