"""Consistent-hash ring with virtual nodes.

The ring is an immutable value: adding or removing a node returns a new ring, so a
coordinator can swap its ring atomically when membership changes. No I/O, no clock.
"""

from __future__ import annotations

import bisect
import hashlib
from collections.abc import Iterable

__all__ = ["HashRing", "key_hash"]

DEFAULT_VNODES = 64
_REMEMBERED = 1 << 16  # preference lists a ring keeps (the ring is immutable: they hold)


def key_hash(data: str) -> int:
    """A stable 64-bit position on the ring (the same in every process and Python version)."""
    return int.from_bytes(hashlib.blake2b(data.encode(), digest_size=8).digest(), "big")


class HashRing:
    """Maps keys to an ordered preference list of distinct nodes.

    Each node owns ``vnodes`` tokens; the preference list of a key is the first ``n``
    distinct nodes met walking clockwise from the key's hash.
    """

    __slots__ = ("_nodes", "_vnodes", "_tokens", "_owners", "_lists")

    def __init__(self, nodes: Iterable[str] = (), *, vnodes: int = DEFAULT_VNODES) -> None:
        if vnodes < 1:
            raise ValueError(f"vnodes must be at least 1, got {vnodes}")
        self._vnodes = vnodes
        self._nodes = frozenset(nodes)
        points = sorted(
            (key_hash(f"{node}#{i}"), node) for node in self._nodes for i in range(vnodes)
        )
        self._tokens = [p for p, _ in points]
        self._owners = [n for _, n in points]
        self._lists: dict[tuple[str, int], tuple[str, ...]] = {}  # answers already worked out

    @property
    def nodes(self) -> frozenset[str]:
        return self._nodes

    @property
    def vnodes(self) -> int:
        return self._vnodes

    def __len__(self) -> int:
        return len(self._nodes)

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, HashRing)
            and self._nodes == other._nodes
            and self._vnodes == other._vnodes
        )

    def __hash__(self) -> int:
        return hash((self._nodes, self._vnodes))

    def __repr__(self) -> str:
        return f"HashRing({sorted(self._nodes)!r}, vnodes={self._vnodes})"

    def with_node(self, node: str) -> HashRing:
        return HashRing(self._nodes | {node}, vnodes=self._vnodes)

    def without_node(self, node: str) -> HashRing:
        return HashRing(self._nodes - {node}, vnodes=self._vnodes)

    def preference_list(self, key: str, n: int) -> tuple[str, ...]:
        """The first ``n`` distinct nodes clockwise from ``key`` (fewer if the ring is smaller)."""
        known = self._lists.get((key, n))
        if known is not None:
            return known
        found = self._walk(key, n)
        if len(self._lists) >= _REMEMBERED:
            self._lists.clear()
        self._lists[(key, n)] = found
        return found

    def _walk(self, key: str, n: int) -> tuple[str, ...]:
        want = min(n, len(self._nodes))
        if want <= 0:
            return ()
        start = bisect.bisect(self._tokens, key_hash(key))
        found: list[str] = []
        size = len(self._owners)
        for i in range(size):
            node = self._owners[(start + i) % size]
            if node not in found:
                found.append(node)
                if len(found) == want:
                    break
        return tuple(found)

    def owner(self, key: str) -> str | None:
        pref = self.preference_list(key, 1)
        return pref[0] if pref else None

    def ownership(self) -> dict[str, float]:
        """The share of the hash space each node owns as primary (sums to 1)."""
        if not self._tokens:
            return {}
        space = float(1 << 64)
        share = dict.fromkeys(self._nodes, 0.0)
        prev = self._tokens[-1] - (1 << 64)
        for token, node in zip(self._tokens, self._owners, strict=True):
            share[node] += (token - prev) / space
            prev = token
        return {n: round(s, 4) for n, s in sorted(share.items())}
