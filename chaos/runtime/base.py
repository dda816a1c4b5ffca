"""The runtime protocol: how the harness starts a cluster and breaks its processes.

Two backends implement it: :mod:`chaos.runtime.local` (processes on this host) and
:mod:`chaos.runtime.docker` (containers), on a shared base (:mod:`chaos.runtime.meshed`);
:func:`chaos.runtime.open_runtime` picks one. The services' command lines are
:mod:`system.launch`'s. Network faults are not the runtime's job: they go
through the link mesh of fault proxies (:mod:`chaos.topology`), the same on both.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from chaos.runtime.mesh import LinkProxies
from system.config import ClusterSettings

__all__ = ["ClusterSpec", "Endpoints", "Cluster", "Killable", "Pausable", "Meshed", "Scalable",
           "ClockSettable", "Ticking", "Runtime"]


@dataclass(frozen=True, slots=True)
class ClusterSpec:
    """What to start: a plain value, so a scenario can be written down and replayed."""

    nodes: int = 3
    settings: ClusterSettings = field(default_factory=lambda: ClusterSettings(
        heartbeat_interval=0.5))
    storage: str = "durable"  # durable | memory (weakened)
    mesh: bool = True  # every link through its own fault proxy (chaos.proxy)
    load_factor: int = 0
    node_workers: int = 1
    log_level: str = "info"
    seed: int = 0

    def node_ids(self) -> list[str]:
        return [f"node-{i}" for i in range(1, self.nodes + 1)]


@dataclass(frozen=True, slots=True)
class Endpoints:
    """Where the host reaches the cluster (all on 127.0.0.1)."""

    registry: str  # URL the host's clients use (through the client->registry proxy if meshed)
    registry_direct: str  # URL of the registry itself (admin, status) as the host reaches it
    nodes: dict[str, str]  # node id -> URL the host uses (through client->node proxies)
    proxy_api: str | None  # Toxiproxy API URL, None without a mesh
    admin_token: str

    def as_json(self) -> dict:
        return {"registry": self.registry, "registry_direct": self.registry_direct,
                "nodes": dict(self.nodes), "proxy_api": self.proxy_api}


@runtime_checkable
class Cluster(Protocol):
    """What every runtime does: start, stop and say where things are. Abilities beyond
    that (:class:`Killable`, :class:`Pausable`, :class:`Meshed`, :class:`Scalable`) are
    separate protocols, so a fault asks only for what it uses."""

    name: str
    spec: ClusterSpec

    def start(self) -> Endpoints: ...

    def stop(self) -> None:
        """Stop everything this runtime started and remove what it created (also its proxies
        on an external Toxiproxy). Idempotent."""

    def endpoints(self) -> Endpoints: ...

    def node_ids(self) -> list[str]: ...

    def node_url(self, node_id: str) -> str:
        """The URL the host uses to reach a node directly (not through the mesh)."""

    def service_log(self, name: str) -> str:
        """Everything the service has logged so far."""


@runtime_checkable
class Killable(Protocol):
    """Services (nodes, or ``"registry"``) can be killed, stopped and brought back."""

    def kill(self, node_id: str) -> None:
        """SIGKILL (a paused service is killed too)."""

    def stop_node(self, node_id: str) -> None:
        """Graceful stop (SIGTERM): a node deregisters."""

    def restart(self, node_id: str) -> None:
        """Start a stopped or killed service again on the same data, and wait until it is
        ready; a running one is stopped first."""

    def is_running(self, name: str) -> bool:
        """Whether the service's process or container is running (paused counts)."""


@runtime_checkable
class Pausable(Protocol):
    def pause(self, node_id: str) -> None:
        """Freeze (SIGSTOP, docker pause): connections stay open, nothing is answered."""

    def resume(self, node_id: str) -> None:
        """Unfreeze; a service that is not paused is left alone."""


@runtime_checkable
class Meshed(Protocol):
    """Every link of the cluster goes through its own proxy (``None`` without a mesh)."""

    proxies: LinkProxies | None


@runtime_checkable
class Scalable(Protocol):
    def add_node(self, node_id: str | None = None) -> str:
        """Start one more node, with its links, and wait until it is ready; returns its id."""


@runtime_checkable
class ClockSettable(Protocol):
    """A runtime that sets a node's clock itself (the simulation's are virtual); elsewhere the
    clock-skew fault goes through the node's ``POST /internal/clock``."""

    def set_clock_skew(self, node_id: str, ms: int) -> None:
        """Run ``node_id``'s wall clock ``ms`` milliseconds off (0: back to true)."""


@runtime_checkable
class Ticking(Protocol):
    """A runtime with a clock of its own (the simulation's virtual time): a fault that acts
    on an interval asks it for a timer instead of starting a thread."""

    def every(self, period: float, action: Callable[[], None]) -> Callable[[], None]:
        """Call ``action`` every ``period`` seconds of the runtime's time; returns the
        function that stops it."""


@runtime_checkable
class Runtime(Cluster, Killable, Pausable, Meshed, Scalable, Protocol):
    """Both built-in runtimes (local processes and Docker) have every ability."""
