"""Partition plans: pure functions from a cluster's links to the set of links to cut.

As in Jepsen's "grudges", a partition is computed before the run, written down with the
schedule, then applied; nothing here touches a runtime. Links are directed
(:class:`~chaos.topology.Link` ``src -> dst``): cutting a link cuts the connections its source
opens to its destination, requests and answers alike. ``one_way`` cuts only one direction.
The registry and the clients belong to no group unless named: group partitions cut links
between the nodes of different groups and leave the registry with the largest group.
"""

from __future__ import annotations

import random
from collections.abc import Collection, Iterable, Sequence

from chaos.topology import CLIENT, REGISTRY, Link

__all__ = ["isolate", "between", "split", "halves", "majorities_ring", "bridge", "one_way"]


def isolate(node: str, links: Iterable[Link], *, clients: bool = False) -> frozenset[Link]:
    """Every link into and out of ``node`` (peers and registry); with ``clients``, also the
    clients' links to it."""
    return frozenset(link for link in links if node in (link.src, link.dst)
                     and (clients or CLIENT not in (link.src, link.dst)))


def between(groups: Sequence[Collection[str]], links: Iterable[Link]) -> frozenset[Link]:
    """Every link from one group to another (both directions). Participants in no group keep
    all their links."""
    group_of = {member: i for i, group in enumerate(groups) for member in group}
    return frozenset(link for link in links
                     if link.src in group_of and link.dst in group_of
                     and group_of[link.src] != group_of[link.dst])


def split(minority: Collection[str], nodes: Sequence[str], links: Iterable[Link], *,
          clients: bool = False) -> frozenset[Link]:
    """``minority`` against the other nodes, the registry with the majority side; with
    ``clients``, the clients too (they cannot reach the minority)."""
    minority = set(minority)
    majority = [n for n in nodes if n not in minority] + [REGISTRY] + ([CLIENT] if clients else [])
    return between([sorted(minority), majority], links)


def halves(nodes: Sequence[str], links: Iterable[Link], rng: random.Random, *,
           clients: bool = False) -> frozenset[Link]:
    """Random halves (the smaller one is the minority), drawn from ``rng``."""
    shuffled = list(nodes)
    rng.shuffle(shuffled)
    return split(shuffled[: len(shuffled) // 2], nodes, links, clients=clients)


def majorities_ring(nodes: Sequence[str], links: Iterable[Link]) -> frozenset[Link]:
    """Every node still hears from a majority (itself and the next ones around a ring of
    ``nodes``), but no two nodes hear the same majority. Directed: node ``i`` stops hearing
    from the nodes that are not among its ``n // 2`` successors."""
    n = len(nodes)
    hears = {nodes[i]: {nodes[(i + k) % n] for k in range(n // 2 + 1)} for i in range(n)}
    node_set = set(nodes)
    return frozenset(link for link in links if link.src in node_set and link.dst in node_set
                     and link.src not in hears[link.dst])


def bridge(nodes: Sequence[str], links: Iterable[Link]) -> frozenset[Link]:
    """Two halves that cannot talk, and one node in the middle that talks to both."""
    mid = len(nodes) // 2
    return between([list(nodes[:mid]), list(nodes[mid + 1:])], links)


def one_way(sources: Collection[str], targets: Collection[str],
            links: Iterable[Link]) -> frozenset[Link]:
    """Only the links from ``sources`` to ``targets``: the other direction keeps working."""
    return frozenset(link for link in links if link.src in sources and link.dst in targets)
