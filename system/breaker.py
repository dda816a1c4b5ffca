"""A per-node circuit breaker: closed -> open after consecutive failures -> half-open after a
cooldown (one probe at a time) -> closed on a success, open again on a failure.

Pure: time comes from an injected monotonic ``clock``. ``on_change(old, new)`` is told of
every transition as it is seen: closed -> open, open -> half_open (when the probe is let
through), half_open -> closed or open.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from enum import StrEnum

__all__ = ["BreakerState", "CircuitBreaker"]


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    __slots__ = ("failure_threshold", "cooldown", "_clock", "_failures", "_opened_at", "_probing",
                 "on_change")

    def __init__(
        self,
        *,
        failure_threshold: int = 3,
        cooldown: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[BreakerState, BreakerState], None] | None = None,
    ) -> None:
        if failure_threshold < 1:
            raise ValueError(f"failure_threshold must be at least 1, got {failure_threshold}")
        if cooldown < 0:
            raise ValueError(f"cooldown must not be negative, got {cooldown}")
        self.failure_threshold = failure_threshold
        self.cooldown = cooldown
        self._clock = clock
        self._failures = 0
        self._opened_at: float | None = None
        self._probing = False
        self.on_change = on_change

    def _moved(self, old: BreakerState, new: BreakerState) -> None:
        if self.on_change is not None and old is not new:
            self.on_change(old, new)

    @property
    def state(self) -> BreakerState:
        if self._opened_at is None:
            return BreakerState.CLOSED
        if self._clock() - self._opened_at >= self.cooldown:
            return BreakerState.HALF_OPEN
        return BreakerState.OPEN

    def allow(self) -> bool:
        """May a request be sent now? In half-open state only one probe is let through."""
        state = self.state
        if state is BreakerState.CLOSED:
            return True
        if state is BreakerState.HALF_OPEN and not self._probing:
            self._probing = True
            self._moved(BreakerState.OPEN, BreakerState.HALF_OPEN)
            return True
        return False

    def record_success(self) -> None:
        was = BreakerState.CLOSED if self._opened_at is None else (
            BreakerState.HALF_OPEN if self._probing else BreakerState.OPEN)
        self._failures = 0
        self._opened_at = None
        self._probing = False
        self._moved(was, BreakerState.CLOSED)

    def record_failure(self) -> None:
        probing, self._probing = self._probing, False
        if self._opened_at is not None:
            # a failed probe (or a late failure while open) restarts the cooldown
            self._opened_at = self._clock()
            if probing:
                self._moved(BreakerState.HALF_OPEN, BreakerState.OPEN)
            return
        self._failures += 1
        if self._failures >= self.failure_threshold:
            self._opened_at = self._clock()
            self._moved(BreakerState.CLOSED, BreakerState.OPEN)
