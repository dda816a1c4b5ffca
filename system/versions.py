"""Versions that are comparable across coordinators.

A :class:`Version` is ``(wall_ms, counter, node)`` ordered as a tuple: a hybrid logical
clock (:class:`HLC`) issues them so that a coordinator never issues a version lower than one
it has seen, and ties between coordinators are broken by node id. The weakened
:class:`WallClockVersions` uses the bare wall clock (last-write-wins on possibly skewed
clocks): it exists so the chaos suites can show that it loses updates.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import NamedTuple, Protocol

__all__ = ["Version", "HLC", "WallClockVersions", "VersionSource", "SkewedClock",
           "make_version_source", "MAX_SKEW_MS"]

MAX_SKEW_MS = 86_400_000  # a day either way: more is a typo, not a skewed clock


class Version(NamedTuple):
    wall_ms: int
    counter: int
    node: str

    def encode(self) -> list:
        return [self.wall_ms, self.counter, self.node]

    @classmethod
    def decode(cls, raw: object) -> Version:
        """Parse ``[wall_ms, counter, node]``; raises ValueError naming the problem."""
        if (
            not isinstance(raw, list | tuple)
            or len(raw) != 3
            or not isinstance(raw[0], int)
            or not isinstance(raw[1], int)
            or not isinstance(raw[2], str)
            or isinstance(raw[0], bool)
            or isinstance(raw[1], bool)
        ):
            raise ValueError("version must be [wall_ms:int, counter:int, node:str]")
        return cls(raw[0], raw[1], raw[2])


ZERO = Version(0, 0, "")


class VersionSource(Protocol):
    def now(self) -> Version: ...

    def observe(self, seen: Version) -> None: ...


class SkewedClock:
    """A wall clock ``skew_ms`` off the real one (``--clock-skew-ms``); the clock-skew fault
    moves it while the process runs, as Jepsen's clock nemesis moves a host's clock."""

    __slots__ = ("skew_ms", "_base")

    def __init__(self, skew_ms: int = 0, *, base: Callable[[], float] = time.time) -> None:
        self.skew_ms = check_skew(skew_ms)
        self._base = base

    def set(self, skew_ms: object) -> None:
        self.skew_ms = check_skew(skew_ms)

    def __call__(self) -> float:
        return self._base() + self.skew_ms / 1000


def check_skew(skew_ms: object) -> int:
    """``skew_ms`` as an int within a day either way; ValueError naming the problem."""
    if not isinstance(skew_ms, int) or isinstance(skew_ms, bool):
        raise ValueError(f"clock skew must be an integer of milliseconds, got {skew_ms!r}")
    if abs(skew_ms) > MAX_SKEW_MS:
        raise ValueError(f"clock skew {skew_ms} ms is more than a day ({MAX_SKEW_MS} ms) either way")
    return skew_ms


class HLC:
    """Hybrid logical clock: monotonic, and ahead of every version it has observed."""

    __slots__ = ("_node", "_clock", "_wall", "_counter")

    def __init__(self, node: str, *, clock: Callable[[], float] = time.time) -> None:
        self._node = node
        self._clock = clock
        self._wall = 0
        self._counter = 0

    def now(self) -> Version:
        physical = int(self._clock() * 1000)
        if physical > self._wall:
            self._wall, self._counter = physical, 0
        else:
            self._counter += 1
        return Version(self._wall, self._counter, self._node)

    def observe(self, seen: Version) -> None:
        if (seen.wall_ms, seen.counter) > (self._wall, self._counter):
            self._wall, self._counter = seen.wall_ms, seen.counter


class WallClockVersions:
    """Weakened: the local wall clock only. Skewed or equal clocks lose updates."""

    __slots__ = ("_node", "_clock")

    def __init__(self, node: str, *, clock: Callable[[], float] = time.time) -> None:
        self._node = node
        self._clock = clock

    def now(self) -> Version:
        return Version(int(self._clock() * 1000), 0, self._node)

    def observe(self, seen: Version) -> None:
        return None


def make_version_source(kind: str, node: str, *, clock: Callable[[], float] = time.time):
    if kind == "hlc":
        return HLC(node, clock=clock)
    if kind == "wallclock":
        return WallClockVersions(node, clock=clock)
    raise ValueError(f"unknown versions kind {kind!r}: use 'hlc' or 'wallclock'")
