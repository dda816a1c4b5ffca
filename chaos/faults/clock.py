"""Clock faults: one node's wall clock runs off the others'.

The skew reaches only the versions that node stamps as a coordinator (writes sent to its
``/gateway/data``); replicas store whatever version they are given. With hybrid logical
clocks (the default) a node whose clock runs behind still stamps past every version its
replicas answer with, so nothing is lost; with ``--versions wallclock`` its writes lose to
older ones (the lost update the durability and linearizability checkers must catch).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

import httpx

from chaos.faults.base import Fault, FaultBase, FaultError, register
from chaos.runtime.base import ClockSettable
from chaos.topology import Topology
from system.versions import check_skew

__all__ = ["ClockSkew"]


@register("clock-skew")
@dataclass(frozen=True, slots=True)
class ClockSkew(FaultBase):
    """Set ``node``'s clock ``ms`` milliseconds off (negative: behind) through its
    ``/internal/clock``; undo sets it back to 0. Deterministic: no randomness."""

    node: str
    ms: int = -5000

    def bind(self, topology: Topology, rng: random.Random) -> Fault:
        if self.node not in topology.nodes:
            raise FaultError(f"{self.kind}: unknown node {self.node!r} (the registry has no "
                             f"clock to skew): choose one of {', '.join(topology.nodes)}")
        try:
            check_skew(self.ms)
        except ValueError as exc:
            raise FaultError(f"{self.kind}: {exc}") from None
        if self.ms == 0:
            raise FaultError(f"{self.kind}: ms=0 is no skew: give a non-zero offset")
        return self

    def apply(self, runtime: Any) -> None:
        if isinstance(runtime, ClockSettable):  # the simulation's clocks are its own
            runtime.set_clock_skew(self.node, self.ms)
            return
        reply = _set_skew(runtime, self.node, self.ms)
        if reply is None or reply.status_code != 200:
            why = "unreachable" if reply is None else f"HTTP {reply.status_code}: {reply.text[:200]}"
            raise FaultError(f"{self.kind}: could not skew {self.node}'s clock ({why})")

    def undo(self, runtime: Any) -> None:
        if isinstance(runtime, ClockSettable):
            runtime.set_clock_skew(self.node, 0)
            return
        # a node that is down comes back with its start-time clock: nothing to set then
        _set_skew(runtime, self.node, 0)

    def resources(self) -> frozenset[str]:
        return frozenset({f"clock:{self.node}"})


def _set_skew(runtime: Any, node: str, ms: int) -> httpx.Response | None:
    try:
        return httpx.post(f"{runtime.node_url(node)}/internal/clock", json={"skew_ms": ms},
                          timeout=2.0)
    except httpx.HTTPError:
        return None
