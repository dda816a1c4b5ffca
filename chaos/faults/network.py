"""Faults on the link mesh: partitions and toxics, the same on every runtime.

Every directed link (``client->node``, ``registry->node``, ``node->registry``, ``node->node``)
has its own proxy. A partition disables the proxies of its cut (open connections close, new
ones are refused). A toxic fault adds a Toxiproxy toxic to the chosen links; ``links`` picks
them around ``node``: ``in`` (every link whose destination is the node: its callers' requests
and the answers to them), ``out`` (the links it opens itself), or ``both``. Toxiproxy's
streams: ``upstream`` is the caller's request on its way to the node, ``downstream`` the
answer on its way back; a toxic acts on one stream, ``both`` puts one on each.
"""

from __future__ import annotations

import dataclasses
import hashlib
import random
import threading
from dataclasses import dataclass, field
from typing import Any, Literal

from chaos.faults import grudges
from chaos.faults.base import FaultBase, FaultError, register
from chaos.runtime.base import Ticking
from chaos.topology import Link, Topology

__all__ = ["Partition", "Latency", "Bandwidth", "Blackhole", "ResetPeer", "Flap"]

Shape = Literal["isolate", "split", "halves", "ring", "bridge", "one-way"]
Around = Literal["in", "out", "both"]
Stream = Literal["upstream", "downstream", "both"]


def _proxies(runtime: Any, kind: str):
    proxies = getattr(runtime, "proxies", None)
    if proxies is None:
        raise FaultError(f"{kind} needs the link mesh, and this cluster runs without one "
                         f"(start it with mesh=True / without --no-mesh)")
    return proxies


def _as_tuple(value: tuple[str, ...] | str) -> tuple[str, ...]:
    return (value,) if isinstance(value, str) else tuple(value)


def _around(node: str, links: frozenset[Link], side: str) -> frozenset[Link]:
    return frozenset(link for link in links
                     if (side in ("in", "both") and link.dst == node)
                     or (side in ("out", "both") and link.src == node))


def _check_nodes(kind: str, nodes, topology: Topology) -> None:
    unknown = [n for n in nodes if n not in topology.services]
    if unknown:
        raise FaultError(f"{kind}: unknown target {unknown[0]!r}: choose one of "
                         f"{', '.join(topology.services)}")


@register("partition")
@dataclass(frozen=True, slots=True)
class Partition(FaultBase):
    """Cut a set of links. ``shape`` says how the cut is computed from the topology
    (:mod:`chaos.faults.grudges`): ``isolate`` ``nodes`` (with ``clients``: their clients'
    links too), ``split`` off ``nodes`` as a minority, random ``halves``, a majorities
    ``ring``, a ``bridge``, or ``one-way`` from ``nodes`` to ``to`` only. ``cut`` is the
    result, filled in by :meth:`bind` (or given directly)."""

    shape: Shape = "isolate"
    nodes: tuple[str, ...] = ()
    clients: bool = False
    to: tuple[str, ...] = ()
    cut: frozenset[Link] = frozenset()
    needs_mesh = True

    @classmethod
    def isolating(cls, node: str, *, clients: bool = False) -> Partition:
        return cls("isolate", (node,), clients)

    @classmethod
    def splitting(cls, *minority: str, clients: bool = False) -> Partition:
        """``clients``: the clients stay with the majority and cannot reach the minority."""
        return cls("split", tuple(minority), clients)

    @classmethod
    def one_way(cls, sources: tuple[str, ...] | str, targets: tuple[str, ...] | str) -> Partition:
        return cls("one-way", _as_tuple(sources), to=_as_tuple(targets))

    def bind(self, topology: Topology, rng: random.Random) -> Partition:
        if self.cut:
            return self
        _check_nodes(self.kind, (*self.nodes, *self.to), topology)
        links, nodes = topology.links, topology.nodes
        needs = {"isolate": 1, "split": 1, "one-way": 1}
        if self.shape in needs and not self.nodes:
            raise FaultError(f"partition {self.shape} needs the nodes it acts on "
                             f"(e.g. {self.shape}:{nodes[0]})")
        if self.shape == "isolate":
            cut = frozenset().union(*(grudges.isolate(n, links, clients=self.clients)
                                      for n in self.nodes))
        elif self.shape == "split":
            cut = grudges.split(self.nodes, nodes, links, clients=self.clients)
        elif self.shape == "halves":
            cut = grudges.halves(nodes, links, rng, clients=self.clients)
        elif self.shape == "ring":
            cut = grudges.majorities_ring(nodes, links)
        elif self.shape == "bridge":
            cut = grudges.bridge(nodes, links)
        elif self.shape == "one-way":
            if not self.to:
                raise FaultError("partition one-way needs targets: one-way:SRC:to=DST")
            cut = grudges.one_way(self.nodes, self.to, links)
        else:
            raise FaultError(f"unknown partition shape {self.shape!r}: choose one of "
                             "isolate, split, halves, ring, bridge, one-way")
        if not cut:
            raise FaultError(f"partition {self.shape} of {', '.join(self.nodes) or 'the nodes'} "
                             f"cuts no link in a cluster of {len(nodes)} nodes")
        return dataclasses.replace(self, cut=cut)

    def apply(self, runtime: Any) -> None:
        _proxies(runtime, self.kind).disable(self._bound())

    def undo(self, runtime: Any) -> None:
        _proxies(runtime, self.kind).enable(self._bound())

    def _bound(self) -> frozenset[Link]:
        if not self.cut:
            raise FaultError("partition: bind it to the cluster's topology first "
                             "(the scenario runner and the nemesis do)")
        return self.cut

    def resources(self) -> frozenset[str]:
        return frozenset(f"link:{link.name}" for link in self.cut)

    def describe(self) -> str:
        who = "+".join(self.nodes)
        to = f" -> {'+'.join(self.to)}" if self.to else ""
        links = f" ({len(self.cut)} links)" if self.cut else ""
        return f"partition {self.shape} {who}{to}".rstrip() + links

    def targets(self) -> tuple[str, ...]:
        """The nodes cut off (isolate), the minority (split), the sources (one-way); a shape
        drawn over the whole cluster (halves, ring, bridge) has none of its own."""
        return self.nodes


def _toxic_name(fault: Any) -> str:
    return "chaoslab_" + hashlib.sha1(fault.describe().encode()).hexdigest()[:10]


def _streams(stream: str) -> tuple[str, ...]:
    return ("upstream", "downstream") if stream == "both" else (stream,)


class _ToxicFault(FaultBase):
    """A Toxiproxy toxic on the links around ``node``; subclasses give its type, stream and
    attributes."""

    __slots__ = ()
    needs_mesh = True
    toxic_type = ""

    def bind(self, topology: Topology, rng: random.Random):
        _check_nodes(self.kind, (self.node,), topology)
        return dataclasses.replace(self, via=_around(self.node, topology.links, self.links))

    def attributes(self) -> dict[str, Any]:
        raise NotImplementedError

    def apply(self, runtime: Any) -> None:
        proxies = _proxies(runtime, self.kind)
        for stream in _streams(self.stream):
            proxies.add_toxic(self._bound(), self.toxic_type, name=f"{_toxic_name(self)}_{stream}",
                              stream=stream, **self.attributes())

    def undo(self, runtime: Any) -> None:
        proxies = _proxies(runtime, self.kind)
        for stream in _streams(self.stream):
            proxies.remove_toxic(self._bound(), f"{_toxic_name(self)}_{stream}")

    def _bound(self) -> frozenset[Link]:
        if not self.via:
            raise FaultError(f"{self.kind}: bind it to the cluster's topology first")
        return self.via

    def resources(self) -> frozenset[str]:
        # toxics stack (two latencies add up): only the same toxic twice would clash
        return frozenset({f"toxic:{_toxic_name(self)}"})


@register("latency")
@dataclass(frozen=True, slots=True)
class Latency(_ToxicFault):
    """``ms`` (+- ``jitter``) more on each byte that passes; with ``stream="both"`` (see
    :meth:`symmetric`) both the request and the answer are delayed: a round trip takes
    ``2 * ms`` longer. The jitter is drawn by the proxy from its seed."""

    node: str
    ms: int = 200
    jitter: int = 0
    links: Around = "in"
    stream: Stream = "downstream"
    via: frozenset[Link] = field(default=frozenset(), repr=False)
    toxic_type = "latency"

    @classmethod
    def symmetric(cls, node: str, ms: int = 200, jitter: int = 0, links: Around = "in") -> Latency:
        return cls(node, ms, jitter, links, "both")

    def attributes(self) -> dict[str, Any]:
        return {"latency": self.ms, "jitter": self.jitter}


@register("bandwidth")
@dataclass(frozen=True, slots=True)
class Bandwidth(_ToxicFault):
    """At most ``rate`` KB/s through each chosen link."""

    node: str
    rate: int = 64
    links: Around = "in"
    stream: Stream = "downstream"
    via: frozenset[Link] = field(default=frozenset(), repr=False)
    toxic_type = "bandwidth"

    def attributes(self) -> dict[str, Any]:
        return {"rate": self.rate}


@register("blackhole")
@dataclass(frozen=True, slots=True)
class Blackhole(_ToxicFault):
    """Connections are accepted and nothing is delivered (Toxiproxy's ``timeout`` toxic with
    timeout 0): calls time out instead of being refused. Both directions of the node."""

    node: str
    links: Around = "both"
    stream: Stream = "upstream"
    via: frozenset[Link] = field(default=frozenset(), repr=False)
    toxic_type = "timeout"

    def attributes(self) -> dict[str, Any]:
        return {"timeout": 0}


@register("reset-peer")
@dataclass(frozen=True, slots=True)
class ResetPeer(_ToxicFault):
    """Connections are reset (TCP RST) after ``timeout`` ms."""

    node: str
    timeout: int = 0
    links: Around = "in"
    stream: Stream = "upstream"
    via: frozenset[Link] = field(default=frozenset(), repr=False)
    toxic_type = "reset_peer"

    def attributes(self) -> dict[str, Any]:
        return {"timeout": self.timeout}


@register("flap")
@dataclass(frozen=True, slots=True)
class Flap(FaultBase):
    """The node's links (as ``isolate``) are cut and restored every ``period`` seconds for as
    long as the fault is active; undo stops the flapping and leaves them restored."""

    node: str
    period: float = 1.0
    clients: bool = False
    cut: frozenset[Link] = field(default=frozenset(), repr=False)
    _state: dict = field(default_factory=dict, init=False, repr=False, compare=False,
                         hash=False)
    needs_mesh = True

    def __post_init__(self) -> None:
        if not self.period > 0:
            raise ValueError(f"period must be positive (seconds), got {self.period}")

    def bind(self, topology: Topology, rng: random.Random) -> Flap:
        _check_nodes(self.kind, (self.node,), topology)
        return dataclasses.replace(self, cut=grudges.isolate(self.node, topology.links,
                                                             clients=self.clients))

    def apply(self, runtime: Any) -> None:
        proxies = _proxies(runtime, self.kind)
        if not self.cut:
            raise FaultError("flap: bind it to the cluster's topology first")
        proxies.disable(self.cut)
        if isinstance(runtime, Ticking):  # a clock of its own (virtual time): its timer
            down = [True]

            def toggle() -> None:
                down[0] = not down[0]
                (proxies.disable if down[0] else proxies.enable)(self.cut)

            self._state.update(cancel=runtime.every(self.period, toggle))
            return
        stop = threading.Event()

        def flap() -> None:
            down = True
            while True:
                (proxies.disable if down else proxies.enable)(self.cut)
                if stop.wait(self.period):  # pacing: this IS the behaviour
                    return
                down = not down

        thread = threading.Thread(target=flap, name=f"flap-{self.node}", daemon=True)
        self._state.update(stop=stop, thread=thread)
        thread.start()

    def undo(self, runtime: Any) -> None:
        cancel = self._state.pop("cancel", None)
        if cancel is not None:
            cancel()
        stop, thread = self._state.pop("stop", None), self._state.pop("thread", None)
        if stop is not None:
            stop.set()
            thread.join(timeout=10)
        if self.cut:
            _proxies(runtime, self.kind).enable(self.cut)

    def resources(self) -> frozenset[str]:
        return frozenset(f"link:{link.name}" for link in self.cut)
