"""Wait strategies: poll a condition until a deadline, never sleep and hope.

A strategy is a callable returning True when satisfied; :func:`wait_for` polls it with a
short interval and raises :class:`WaitTimeout` saying what it was waiting for and the last
thing it saw. :func:`all_of` and :func:`any_of` compose strategies.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx

__all__ = ["WaitTimeout", "Strategy", "wait_for", "http_ok", "all_of", "any_of"]


class WaitTimeout(TimeoutError):
    pass


class Strategy:
    """A condition with a description; exceptions while checking count as "not yet" and are
    remembered in ``last`` for the timeout message."""

    def __init__(self, check: Callable[[], bool], description: str, *,
                 explain: Callable[[], str] | None = None) -> None:
        self.check = check
        self.description = description
        self.explain = explain  # what "not yet" means, for composites
        self.last = "never checked"

    def __call__(self) -> bool:
        try:
            ok = bool(self.check())
            self.last = "satisfied" if ok else (self.explain() if self.explain else "not yet")
            return ok
        except Exception as exc:  # the condition may throw while the service starts
            self.last = f"{type(exc).__name__}: {exc}"
            return False


def wait_for(condition: Callable[[], bool], *, timeout: float, interval: float = 0.05,
             description: str | None = None, abort: Callable[[], str | None] | None = None) -> float:
    """Poll ``condition`` until it holds; return the seconds it took.

    ``abort`` is checked on every poll; a non-empty answer (why waiting is pointless, e.g.
    the process exited) raises :class:`WaitTimeout` at once."""
    strategy = condition if isinstance(condition, Strategy) else Strategy(
        condition, description or getattr(condition, "__name__", "condition"))
    started = time.monotonic()
    deadline = started + timeout
    while True:
        if strategy():
            return time.monotonic() - started
        reason = abort() if abort is not None else None
        if reason:
            raise WaitTimeout(f"stopped waiting for {strategy.description}: {reason}")
        if time.monotonic() >= deadline:
            raise WaitTimeout(f"gave up after {timeout:.1f}s waiting for {strategy.description} "
                              f"(last: {strategy.last})")
        time.sleep(interval)


def http_ok(url: str, *, timeout: float = 1.0) -> Strategy:
    def check() -> bool:
        return httpx.get(url, timeout=timeout).status_code == 200
    return Strategy(check, f"{url} to answer 200")


def _strategy(condition: Callable[[], bool]) -> Strategy:
    return condition if isinstance(condition, Strategy) else Strategy(
        condition, getattr(condition, "__name__", "condition"))


def all_of(*strategies: Callable[[], bool]) -> Strategy:
    """Every strategy holds; each is checked until it holds once, in order."""
    members = [_strategy(s) for s in strategies]
    pending = list(members)

    def check() -> bool:
        while pending:
            if not pending[0]():
                combined.description = pending[0].description
                return False
            pending.pop(0)
        return True

    combined = Strategy(check, " and ".join(m.description for m in members),
                        explain=lambda: pending[0].last)
    return combined


def any_of(*strategies: Callable[[], bool]) -> Strategy:
    """At least one strategy holds (all are checked on every poll until one does)."""
    members = [_strategy(s) for s in strategies]

    def check() -> bool:
        return any([member() for member in members])  # a list: every member is checked

    return Strategy(check, " or ".join(m.description for m in members),
                    explain=lambda: "; ".join(f"{m.description}: {m.last}" for m in members))
