"""Faults: small frozen values with ``apply`` and ``undo``, usable as context managers.

Undo always runs when used with ``with fault.active(runtime):`` and is safe to repeat.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Protocol

from chaos.runtime.base import Runtime

__all__ = ["Fault", "Kill", "Pause", "FAULTS"]


class Fault(Protocol):
    name: str

    def apply(self, runtime: Runtime) -> None: ...

    def undo(self, runtime: Runtime) -> None: ...


class _Base:
    @contextlib.contextmanager
    def active(self, runtime: Runtime):
        try:
            self.apply(runtime)
            yield self
        finally:
            self.undo(runtime)


@dataclass(frozen=True, slots=True)
class Kill(_Base):
    """SIGKILL a node; undo restarts it on the same data and waits until it is ready."""

    node: str
    name: str = "kill"

    def apply(self, runtime: Runtime) -> None:
        runtime.kill(self.node)

    def undo(self, runtime: Runtime) -> None:
        runtime.restart(self.node)


@dataclass(frozen=True, slots=True)
class Pause(_Base):
    """SIGSTOP (or docker pause) a node; undo resumes it."""

    node: str
    name: str = "pause"

    def apply(self, runtime: Runtime) -> None:
        runtime.pause(self.node)

    def undo(self, runtime: Runtime) -> None:
        runtime.resume(self.node)


FAULTS = {"kill": Kill, "pause": Pause}
