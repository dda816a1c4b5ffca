"""Faults on processes or containers: the runtime's job (signals, or the Docker API).

``node`` is a node id or ``registry``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from chaos.faults.base import FaultBase, register, require
from chaos.runtime.base import Killable, Pausable
from chaos.topology import REGISTRY

__all__ = ["Kill", "Pause", "Restart", "Stop", "RegistryDown"]


def _back_up(runtime: Any, node: str) -> None:
    """Undo of every process fault: running and not frozen, and nothing done if it is."""
    if isinstance(runtime, Pausable):
        runtime.resume(node)  # a no-op unless paused
    if not runtime.is_running(node):
        runtime.restart(node)


@register("kill")
@dataclass(frozen=True, slots=True)
class Kill(FaultBase):
    """SIGKILL (``docker kill``): no goodbye, nothing flushed that was not committed."""

    node: str

    def apply(self, runtime: Any) -> None:
        require(runtime, Killable, self.kind, "kill services")
        runtime.kill(self.node)

    def undo(self, runtime: Any) -> None:
        _back_up(runtime, self.node)


@register("stop")
@dataclass(frozen=True, slots=True)
class Stop(FaultBase):
    """A graceful stop (SIGTERM): a node deregisters before it goes."""

    node: str

    def apply(self, runtime: Any) -> None:
        require(runtime, Killable, self.kind, "stop services")
        runtime.stop_node(self.node)

    def undo(self, runtime: Any) -> None:
        _back_up(runtime, self.node)


@register("pause")
@dataclass(frozen=True, slots=True)
class Pause(FaultBase):
    """Freeze (SIGSTOP, ``docker pause``): connections stay open and nothing answers."""

    node: str

    def apply(self, runtime: Any) -> None:
        require(runtime, Pausable, self.kind, "pause services")
        runtime.pause(self.node)

    def undo(self, runtime: Any) -> None:
        require(runtime, Pausable, self.kind, "pause services")
        runtime.resume(self.node)


@register("restart")
@dataclass(frozen=True, slots=True)
class Restart(FaultBase):
    """Stop and start again at once, on the same data (a one-off: nothing to heal)."""

    node: str
    instant = True

    def apply(self, runtime: Any) -> None:
        require(runtime, Killable, self.kind, "restart services")
        runtime.restart(self.node)

    def undo(self, runtime: Any) -> None:
        _back_up(runtime, self.node)


@register("registry-down")
@dataclass(frozen=True, slots=True)
class RegistryDown(FaultBase):
    """The registry is killed: clients and nodes go on from their cached member lists."""

    def apply(self, runtime: Any) -> None:
        require(runtime, Killable, self.kind, "kill services")
        runtime.kill(REGISTRY)

    def undo(self, runtime: Any) -> None:
        _back_up(runtime, REGISTRY)

    def resources(self) -> frozenset[str]:
        return frozenset({f"process:{REGISTRY}"})
