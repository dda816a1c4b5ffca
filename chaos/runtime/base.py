"""The runtime protocol: how the harness starts a cluster and breaks its processes.

Two backends implement it: :mod:`chaos.runtime.local` (processes on this host) and
:mod:`chaos.runtime.docker` (containers). Network faults are not the runtime's job: they go
through the link mesh of fault proxies (:mod:`chaos.topology`), the same on both.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from system.config import ClusterSettings

__all__ = ["ClusterSpec", "Endpoints", "Runtime"]


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

    def cluster_args(self) -> list[str]:
        s = self.settings
        return [f"--n={s.n}", f"--w={s.w}", f"--r={s.r}", f"--vnodes={s.vnodes}",
                f"--versions={s.versions}", f"--heartbeat-interval={s.heartbeat_interval}",
                f"--suspect-after={s.suspect_after}", f"--dead-after={s.dead_after}"]


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
class Runtime(Protocol):
    name: str
    spec: ClusterSpec

    def start(self) -> Endpoints: ...

    def stop(self) -> None:
        """Stop everything this runtime started and remove what it created. Idempotent."""

    def endpoints(self) -> Endpoints: ...

    def kill(self, node_id: str) -> None:
        """SIGKILL a node (or the registry, as ``"registry"``)."""

    def stop_node(self, node_id: str) -> None:
        """Graceful stop (SIGTERM): the node deregisters."""

    def pause(self, node_id: str) -> None: ...

    def resume(self, node_id: str) -> None: ...

    def restart(self, node_id: str) -> None:
        """Start a stopped or killed node again on the same data, and wait until it is ready."""

    def add_node(self) -> str:
        """Start one more node, with its links, and wait until it is ready; returns its id."""

    def node_ids(self) -> list[str]: ...

    def is_running(self, name: str) -> bool:
        """Whether the service's process or container is running (paused counts)."""

    def service_log(self, name: str) -> str:
        """Everything the service has logged so far."""

    def link_names(self) -> list[str]:
        """The proxy names (``src__dst``) of the link mesh; empty without a mesh."""

    def node_url(self, node_id: str) -> str:
        """The URL the host uses to reach a node directly (not through the mesh)."""
