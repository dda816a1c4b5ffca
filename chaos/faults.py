"""Faults: small frozen values with ``apply`` and ``undo``, usable as context managers.

Undo always runs when used with ``with fault.active(runtime):`` and is safe to repeat.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Protocol

from chaos.runtime.base import Runtime

__all__ = ["Fault", "Kill", "Pause", "CutLinks", "SlowLinks", "isolate", "FAULTS"]


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


@dataclass(frozen=True, slots=True)
class CutLinks(_Base):
    """Disable the proxies of the given links (``src__dst`` names): their connections close
    and new ones are refused. Undo enables them again."""

    links: tuple[str, ...]
    name: str = "partition"

    def apply(self, runtime: Runtime) -> None:
        for link in self.links:
            runtime.toxiproxy.disable(link)

    def undo(self, runtime: Runtime) -> None:
        for link in self.links:
            runtime.toxiproxy.enable(link)


@dataclass(frozen=True, slots=True)
class SlowLinks(_Base):
    """Add ``latency_ms`` (+- ``jitter_ms``) to the downstream of the given links."""

    links: tuple[str, ...]
    latency_ms: int = 200
    jitter_ms: int = 0
    name: str = "latency"
    toxic: str = "chaoslab_latency"

    def apply(self, runtime: Runtime) -> None:
        for link in self.links:
            runtime.toxiproxy.add_toxic(link, "latency", name=self.toxic,
                                        latency=self.latency_ms, jitter=self.jitter_ms)

    def undo(self, runtime: Runtime) -> None:
        from chaos.toxiproxy import ToxiproxyError

        for link in self.links:
            with contextlib.suppress(ToxiproxyError):  # undo is safe to repeat
                runtime.toxiproxy.remove_toxic(link, self.toxic)


def isolate(node: str, runtime: Runtime) -> CutLinks:
    """Every link into and out of ``node``: the client, the registry and its peers lose it."""
    links = [link for link in runtime.link_names() if node in link.split("__")]
    return CutLinks(tuple(sorted(links)))


FAULTS = {"kill": Kill, "pause": Pause}
