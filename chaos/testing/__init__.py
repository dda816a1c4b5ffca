"""Test doubles for writing and unit-testing faults, schedules and checkers without a cluster.

:class:`FakeCluster` has every runtime ability (kill, pause, the link mesh, scale-up) over
in-memory state, and records each call, so a test can assert what a fault or a schedule did.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from chaos.runtime.base import ClusterSpec, Endpoints
from chaos.topology import Link, Topology

__all__ = ["FakeCluster", "FakeProxies", "ManualClock"]


class FakeProxies:
    """The link mesh in memory: which links are cut, which toxics each link has."""

    def __init__(self, links) -> None:
        self._links = set(links)
        self.disabled: set[Link] = set()
        self.toxics: dict[Link, dict[str, dict]] = {}
        self.calls: list[tuple] = []
        self.url = "fake://toxiproxy"

    def links(self) -> frozenset[Link]:
        return frozenset(self._links)

    def _known(self, links):
        links = set(links)
        unknown = links - self._links
        if unknown:
            raise KeyError(f"no proxy for link(s) {sorted(map(str, unknown))}")
        return links

    def disable(self, links) -> None:
        links = self._known(links)
        self.calls.append(("disable", frozenset(links)))
        self.disabled |= links

    def enable(self, links) -> None:
        links = self._known(links)
        self.calls.append(("enable", frozenset(links)))
        self.disabled -= links

    def add_toxic(self, links, type: str, *, name: str, stream: str = "downstream",
                  toxicity: float = 1.0, **attributes) -> None:
        for link in self._known(links):
            if name in self.toxics.setdefault(link, {}):
                raise ValueError(f"toxic {name} already exists on {link}")
            self.toxics[link][name] = {"type": type, "stream": stream, **attributes}
        self.calls.append(("add_toxic", name))

    def remove_toxic(self, links, name: str) -> None:
        for link in self._known(links):
            self.toxics.get(link, {}).pop(name, None)
        self.calls.append(("remove_toxic", name))


@dataclass
class FakeCluster:
    """A cluster that exists only in memory; ``calls`` lists every verb called on it."""

    spec: ClusterSpec = field(default_factory=ClusterSpec)
    mesh: bool = True
    name: str = "fake"
    calls: list[tuple[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.running = {n: True for n in (*self.spec.node_ids(), "registry")}
        self.paused: set[str] = set()
        self.proxies = FakeProxies(Topology(tuple(self.spec.node_ids())).links) if self.mesh else None
        self._lock = threading.Lock()

    def _call(self, verb: str, node: str) -> None:
        if node not in self.running:
            raise KeyError(f"unknown service {node!r}; known: {sorted(self.running)}")
        with self._lock:
            self.calls.append((verb, node))

    def start(self) -> Endpoints:
        return self.endpoints()

    def stop(self) -> None:
        self.calls.append(("stop", "cluster"))

    def endpoints(self) -> Endpoints:
        return Endpoints(registry="http://fake-registry", registry_direct="http://fake-registry",
                         nodes={n: f"http://{n}" for n in self.node_ids()}, proxy_api=None,
                         admin_token="")

    def node_ids(self) -> list[str]:
        return [n for n in self.running if n != "registry"]

    def node_url(self, node_id: str) -> str:
        return f"http://{node_id}"

    def service_log(self, name: str) -> str:
        return ""

    def kill(self, node_id: str) -> None:
        self._call("kill", node_id)
        self.running[node_id] = False
        self.paused.discard(node_id)

    def stop_node(self, node_id: str) -> None:
        self._call("stop", node_id)
        self.running[node_id] = False
        self.paused.discard(node_id)

    def restart(self, node_id: str) -> None:
        self._call("restart", node_id)
        self.running[node_id] = True
        self.paused.discard(node_id)

    def is_running(self, name: str) -> bool:
        return self.running[name]

    def pause(self, node_id: str) -> None:
        self._call("pause", node_id)
        self.paused.add(node_id)

    def resume(self, node_id: str) -> None:
        if node_id in self.paused:
            self._call("resume", node_id)
            self.paused.discard(node_id)

    def add_node(self, node_id: str | None = None) -> str:
        node_id = node_id or f"node-{len(self.node_ids()) + 1}"
        self.running[node_id] = True
        self.calls.append(("add_node", node_id))
        return node_id

    @property
    def healthy(self) -> bool:
        """Everything running, nothing paused, no link cut, no toxic left."""
        mesh_ok = self.proxies is None or (
            not self.proxies.disabled and not any(self.proxies.toxics.values()))
        return all(self.running.values()) and not self.paused and mesh_ok


class ManualClock:
    """A clock that moves only when told (``advance``) or when something waits on it: pass
    ``clock`` and ``waiter`` to :meth:`chaos.nemesis.Nemesis.run` to run a schedule in no
    time."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.stopped = False

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    def wait(self, timeout: float | None = None) -> bool:
        """``threading.Event.wait`` on virtual time: returns at once, time moved on."""
        if timeout:
            self.now += timeout
        return self.stopped

    def set(self) -> None:
        self.stopped = True

    def is_set(self) -> bool:
        return self.stopped
