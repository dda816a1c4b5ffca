"""An asyncio event loop on virtual time, driven step by step from plain code.

:class:`VirtualLoop` is asyncio's own selector loop with its iteration replaced: ``time()``
reads a virtual clock, and there is no I/O to poll (the :class:`VirtualSelector` only keeps
asyncio's self-pipe registered). When every task waits, the loop moves the clock straight to
the next timer, so a quiet cluster costs nothing. When every task waits and no timer is
due, nothing can ever happen again: :class:`SimDeadlock`. Timers due at the same instant
run in the order they were set.

The harness drives the loop from ordinary synchronous code: :meth:`VirtualLoop.run` runs a
coroutine to its end, :meth:`VirtualLoop.advance` lets ``seconds`` of virtual time pass.
Between those calls the loop does not run and time stands still. No thread, no wall clock:
the same inputs give the same run, event for event.

A frozen process (SIGSTOP) runs nothing: every callback whose context belongs to an
:data:`OWNER` that is ``paused`` (its tasks' steps, its timers and sleeps) is held by the loop
instead of run, and :meth:`VirtualLoop.release` queues them again, in the order they were
held, when it resumes: the process then sees time jump, as a stopped process does.

Why not ``looptime`` (which fast-forwards a loop's clock for tests): it patches a loop made
elsewhere, from a pytest plugin, and keeps polling real I/O; here there is no real I/O at all
and the harness steps the loop itself. The iteration is asyncio's ``_run_once`` (Python
3.11) less the poll, with a timer heap of tuples (asyncio compares its timer handles in
Python, a few per cent of a run) and handle-free wire messages.
"""

from __future__ import annotations

import asyncio
import contextvars
import heapq
import itertools
import selectors
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, TypeVar

__all__ = ["VirtualLoop", "VirtualSelector", "SimDeadlock", "EPOCH", "OWNER"]

T = TypeVar("T")

EPOCH = 1_767_225_600.0  # the virtual wall clock's origin: 2026-01-01T00:00:00Z
START = 1_000.0  # the virtual monotonic clock at the start (a host's uptime, not zero)
_MIN_SCHEDULED = 100  # as asyncio: purge cancelled timers once they are over half of these
# The simulated process a callback runs for (None: the harness or a client, never frozen).
# An owner has ``paused`` (bool) and ``held`` (a list the loop appends held callbacks to).
OWNER: contextvars.ContextVar[Any] = contextvars.ContextVar("chaoslab_sim_process",
                                                            default=None)


class _Handle(asyncio.Handle):
    """asyncio's Handle, made without asking the loop for its debug mode (call_soon's)."""

    __slots__ = ()

    def __init__(self, callback, args, loop, context) -> None:
        self._loop, self._callback, self._args, self._context = loop, callback, args, context
        self._cancelled, self._repr, self._source_traceback = False, None, None


class SimDeadlock(RuntimeError):
    """Every task waits and no timer is due: the simulation can never move again."""


class VirtualSelector(selectors.BaseSelector):
    """A selector with no I/O (asyncio registers its self-pipe; nothing is ever ready)."""

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
        return []  # never asked to wait: VirtualLoop._run_once moves the clock itself

    def get_map(self) -> Mapping[Any, selectors.SelectorKey]:
        return self._keys

    def close(self) -> None:
        self._keys.clear()


class VirtualLoop(asyncio.SelectorEventLoop):
    """asyncio's loop on a virtual clock that starts at ``start`` seconds."""

    def __init__(self, *, start: float = START) -> None:
        self._now = start
        self._seq = itertools.count()
        super().__init__(selector=VirtualSelector(self))

    def time(self) -> float:
        return self._now

    def wall(self) -> float:
        """The virtual wall clock: seconds since the epoch."""
        return EPOCH + (self._now - START)

    # ---- asyncio's scheduling, leaner ----
    # The timer heap holds (when, seq, item): C compares the tuples (asyncio's TimerHandle
    # compares in Python), and timers due at the same instant run in the order they were
    # set. ``item`` is a TimerHandle, or (callback, args) for a message on the simulated wire
    # (:meth:`call_wire`), which needs no handle: it is never cancelled nor held.
    def call_at(self, when, callback, *args, context=None) -> asyncio.TimerHandle:
        if self._closed:
            raise RuntimeError("Event loop is closed")
        timer = asyncio.TimerHandle(when, callback, args, self, context)
        heapq.heappush(self._scheduled, (when, next(self._seq), timer))
        timer._scheduled = True
        return timer

    def call_soon(self, callback, *args, context=None) -> asyncio.Handle:
        if self._closed:
            raise RuntimeError("Event loop is closed")
        handle = _Handle(callback, args, self,
                         context if context is not None else contextvars.copy_context())
        self._ready.append(handle)
        return handle

    # asyncio asks this of every future, task and handle it makes; a builtin answers without
    # a Python call. The simulation never runs in asyncio's debug mode (set_debug ignores it).
    get_debug = staticmethod(bool)

    def set_debug(self, enabled: bool) -> None:
        super().set_debug(False)

    def call_wire(self, delay: float, callback: Callable[..., Any], *args: Any) -> None:
        """``callback(*args)`` after ``delay``, outside of any process (a message on a link):
        cheaper than ``call_later``, and nothing can cancel it."""
        heapq.heappush(self._scheduled, (self._now + delay, next(self._seq), (callback, args)))

    def _run_once(self) -> None:
        """asyncio's iterations, without the I/O poll, until the loop is stopped (asyncio's
        ``run_forever`` calls this once per iteration and stops when ``_stopping`` is set;
        here one call runs them all). When nothing is ready, the clock moves to the next
        timer; the callbacks due then run in order, except those of a paused owner, which
        are held (see :meth:`release`)."""
        ready = self._ready
        popleft, pop = ready.popleft, heapq.heappop
        while True:
            scheduled = self._scheduled
            n = len(scheduled)
            if n > _MIN_SCHEDULED and self._timer_cancelled_count * 2 > n:
                self._purge()
                scheduled = self._scheduled
            if not ready and not self._stopping:
                if not scheduled:
                    raise SimDeadlock("every task waits and no timer is due: nothing can "
                                      "happen any more (a future nobody completes?)")
                if scheduled[0][0] > self._now:
                    self._now = scheduled[0][0]
            end = self._now + 1e-9  # asyncio's clock resolution: what is due by then runs now
            while scheduled and scheduled[0][0] < end:
                item = pop(scheduled)[2]
                if type(item) is not tuple:
                    if item._cancelled:
                        self._timer_cancelled_count -= 1
                        item._scheduled = False
                        continue
                    item._scheduled = False
                ready.append(item)
            for _ in range(len(ready)):
                handle = popleft()
                try:
                    if type(handle) is tuple:  # a message on the wire
                        handle[0](*handle[1])
                        continue
                    if handle._cancelled:
                        continue
                    context = handle._context
                    owner = context.get(OWNER)
                    if owner is not None and owner.paused:
                        owner.held.append(handle)
                        continue
                    context.run(handle._callback, *handle._args)  # what Handle._run does
                except (SystemExit, KeyboardInterrupt):
                    raise
                except BaseException as exc:  # as Handle._run: the loop's exception handler
                    callback = handle[0] if type(handle) is tuple else handle._callback
                    self.call_exception_handler({"message": f"Exception in callback "
                                                 f"{callback!r}", "exception": exc,
                                                 "handle": handle})
            handle = None  # as asyncio: no cycle through the last handle
            if self._stopping:
                return

    def _purge(self) -> None:
        """Drop cancelled timers from the heap (as asyncio does once they are over half)."""
        kept = []
        for entry in self._scheduled:
            item = entry[2]
            if type(item) is not tuple and item._cancelled:
                item._scheduled = False
            else:
                kept.append(entry)
        heapq.heapify(kept)
        self._scheduled = kept
        self._timer_cancelled_count = 0

    def release(self, handles: Iterable[asyncio.Handle]) -> None:
        """Queue ``handles`` (held while their owner was paused) to run, in their order."""
        for handle in handles:
            if not handle._cancelled:
                self._ready.append(handle)

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
