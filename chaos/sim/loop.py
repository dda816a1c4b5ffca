"""An asyncio event loop on virtual time, driven step by step from plain code.

:class:`VirtualLoop` is asyncio's own selector loop with two things replaced: ``time()``
reads a virtual clock, and the selector does no I/O. When every task waits, asyncio asks the
selector to wait until the next timer; the :class:`VirtualSelector` instead moves the clock
straight to that timer and returns at once, so a quiet cluster costs nothing. When every
task waits and no timer is due, nothing can ever happen again: :class:`SimDeadlock`.

The harness drives the loop from ordinary synchronous code: :meth:`VirtualLoop.run` runs a
coroutine to its end, :meth:`VirtualLoop.advance` lets ``seconds`` of virtual time pass.
Between those calls the loop does not run and time stands still. No thread, no wall clock:
the same inputs give the same run, event for event.

Why not ``looptime`` (which fast-forwards a loop's clock for tests): it patches a loop made
elsewhere, from a pytest plugin, and keeps polling real I/O; here there is no real I/O at all
and the harness steps the loop itself, which a selector of thirty lines does exactly.
"""

from __future__ import annotations

import asyncio
import heapq
import selectors
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

__all__ = ["VirtualLoop", "VirtualSelector", "SimDeadlock", "EPOCH"]

T = TypeVar("T")

EPOCH = 1_767_225_600.0  # the virtual wall clock's origin: 2026-01-01T00:00:00Z
START = 1_000.0  # the virtual monotonic clock at the start (a host's uptime, not zero)


class SimDeadlock(RuntimeError):
    """Every task waits and no timer is due: the simulation can never move again."""


class VirtualSelector(selectors.BaseSelector):
    """A selector with no I/O: waiting means moving the loop's clock to its next timer."""

    def __init__(self, loop: VirtualLoop) -> None:
        self._loop = loop
        self._keys: dict[Any, selectors.SelectorKey] = {}

    def register(self, fileobj, events, data=None) -> selectors.SelectorKey:
        fd = fileobj if isinstance(fileobj, int) else fileobj.fileno()
        key = selectors.SelectorKey(fileobj, fd, events, data)
        self._keys[fileobj] = key
        return key

    def unregister(self, fileobj) -> selectors.SelectorKey:
        return self._keys.pop(fileobj)

    def modify(self, fileobj, events, data=None) -> selectors.SelectorKey:
        self.unregister(fileobj)
        return self.register(fileobj, events, data)

    def select(self, timeout: float | None = None) -> list:
        if timeout is None:
            raise SimDeadlock("every task waits and no timer is due: nothing can happen "
                              "any more (a future nobody completes?)")
        if timeout > 0:
            self._loop._jump()
        return []

    def get_map(self) -> Mapping[Any, selectors.SelectorKey]:
        return self._keys

    def close(self) -> None:
        self._keys.clear()


class VirtualLoop(asyncio.SelectorEventLoop):
    """asyncio's loop on a virtual clock that starts at ``start`` seconds."""

    def __init__(self, *, start: float = START) -> None:
        self._now = start
        super().__init__(selector=VirtualSelector(self))

    def time(self) -> float:
        return self._now

    def wall(self) -> float:
        """The virtual wall clock: seconds since the epoch."""
        return EPOCH + (self._now - START)

    def _jump(self) -> None:
        """Nothing is ready: move to the next timer (asyncio runs it in this iteration)."""
        scheduled = self._scheduled  # asyncio's timer heap; the earliest first
        while scheduled and scheduled[0]._cancelled:
            scheduled[0]._scheduled = False
            heapq.heappop(scheduled)
            self._timer_cancelled_count -= 1
        if scheduled:
            self._now = max(self._now, scheduled[0]._when)

    # ---- driving it from plain code ----
    def run(self, awaitable: Awaitable[T]) -> T:
        """Run ``awaitable`` to its end on virtual time; its result."""
        return self.run_until_complete(_as_coro(awaitable))

    def advance(self, seconds: float) -> None:
        """Let ``seconds`` of virtual time pass, everything due meanwhile running."""
        if seconds > 0:
            self.run_until_complete(asyncio.sleep(seconds))
        else:
            self.run_until_complete(asyncio.sleep(0))

    def advance_until(self, condition: Callable[[], bool], *, timeout: float,
                      interval: float = 0.05, what: str = "condition") -> float:
        """Advance in steps of ``interval`` until ``condition()`` holds; the virtual seconds it
        took. Raises :class:`TimeoutError` after ``timeout`` virtual seconds."""
        started = self._now
        while not condition():
            if self._now - started >= timeout:
                raise TimeoutError(f"gave up after {timeout:g} virtual seconds waiting for "
                                   f"{what}")
            self.advance(interval)
        return self._now - started


async def _as_coro(awaitable: Awaitable[T]) -> T:
    return await awaitable
