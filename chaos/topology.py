"""The link mesh: every directed link of the cluster goes through its own fault proxy.

A :class:`Link` is ``src -> dst`` where ``src`` is ``client``, ``registry`` or a node id and
``dst`` is ``registry`` or a node id. Its proxy is named ``src__dst`` on the Toxiproxy
server, so a partition is just a set of link names to cut, the same on every runtime.
The registry's link table (``PUT /admin/links``) tells each participant which proxy address
to use for each destination.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["Link", "Topology", "CLIENT", "REGISTRY", "all_links", "links_of_new_node", "link_table"]

CLIENT = "client"
REGISTRY = "registry"


@dataclass(frozen=True, slots=True, order=True)
class Link:
    src: str
    dst: str

    @property
    def name(self) -> str:
        return f"{self.src}__{self.dst}"

    @classmethod
    def parse(cls, name: str) -> Link:
        src, sep, dst = name.partition("__")
        if not sep or not src or not dst:
            raise ValueError(f"not a link proxy name: {name!r} (expected 'src__dst')")
        return cls(src, dst)

    def __str__(self) -> str:
        return f"{self.src}->{self.dst}"


def all_links(node_ids: Iterable[str]) -> list[Link]:
    """Every directed link of a cluster of ``node_ids`` plus the registry and the client."""
    nodes = list(node_ids)
    links = [Link(CLIENT, REGISTRY)]
    for node in nodes:
        links += [Link(CLIENT, node), Link(REGISTRY, node), Link(node, REGISTRY)]
        links += [Link(other, node) for other in nodes if other != node]
    return links


def links_of_new_node(existing: Iterable[str], new: str) -> list[Link]:
    """The links a node joining ``existing`` adds."""
    old = list(existing)
    links = [Link(CLIENT, new), Link(REGISTRY, new), Link(new, REGISTRY)]
    for node in old:
        links += [Link(node, new), Link(new, node)]
    return links


def link_table(addresses: dict[Link, str]) -> dict[str, dict[str, str]]:
    """``{src: {dst: address}}`` for the registry, from each link's proxy address."""
    table: dict[str, dict[str, str]] = {}
    for link, address in addresses.items():
        table.setdefault(link.src, {})[link.dst] = address
    return table



@dataclass(frozen=True, slots=True)
class Topology:
    """The participants of a cluster and its links, known before it starts: what fault plans
    are computed over."""

    nodes: tuple[str, ...]

    @property
    def links(self) -> frozenset[Link]:
        return frozenset(all_links(self.nodes))

    @property
    def services(self) -> tuple[str, ...]:
        """What can be killed or paused: the nodes and the registry."""
        return (*self.nodes, REGISTRY)
