"""Exponential backoff with jitter (AWS architecture blog, "Exponential Backoff And Jitter").

- ``full``: sleep = uniform(0, min(cap, base * 2**attempt))
- ``decorrelated``: sleep = min(cap, uniform(base, previous * 3))
- ``none`` (weakened): sleep = min(cap, base * 2**attempt), the same for every client, so
  clients that failed together retry together (a thundering herd).

Pure: randomness comes from an injected ``random.Random``.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass

__all__ = ["Backoff", "JITTER_KINDS"]

JITTER_KINDS = ("full", "decorrelated", "none")


@dataclass(frozen=True, slots=True)
class Backoff:
    base: float = 0.01
    cap: float = 0.5
    jitter: str = "full"

    def __post_init__(self) -> None:
        if self.jitter not in JITTER_KINDS:
            raise ValueError(f"unknown jitter {self.jitter!r}: use one of {', '.join(JITTER_KINDS)}")
        if not 0 < self.base <= self.cap:
            raise ValueError(f"need 0 < base <= cap, got base={self.base} cap={self.cap}")

    def delays(self, rng: random.Random) -> Iterator[float]:
        """An endless series of sleeps, one per retry."""
        attempt = 0
        previous = self.base
        while True:
            ceiling = min(self.cap, self.base * (2**attempt))
            if self.jitter == "full":
                yield rng.uniform(0, ceiling)
            elif self.jitter == "decorrelated":
                previous = min(self.cap, rng.uniform(self.base, previous * 3))
                yield previous
            else:
                yield ceiling
            attempt = min(attempt + 1, 62)
