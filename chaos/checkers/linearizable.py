"""Linearizability of single-key read/write registers.

The search is Wing & Gong's with Lowe's just-in-time linearization, as Porcupine does it: the
calls and returns of one key's operations form a doubly linked list in time order; the search
linearizes the first call it can, lifts it out of the list, and backtracks when it meets the
return of an operation it has not linearized yet. A memo of (set of linearized operations,
register value) prunes every state seen before; two register-specific rules (see
:func:`_search`) keep a correct history's search close to linear.

A history is linearizable iff every key's sub-history is (P-compositionality), so the keys are
searched one slice of work at a time, round-robin, each within its own budget of time and of
memoised states: a key that runs out answers unknown with the reason instead of hanging. An
illegal key is shrunk to a short window of time that cannot be linearized either (see
:func:`_window`), which is the evidence.

What an operation means: ``ok`` happened between its invocation and its completion; ``fail``
did not happen (dropped); ``info`` (a timeout, the end of the run) is a write that may take
effect at any time after its invocation, or never, and a read that tells nothing (dropped).
Written values are unique per write; every key starts absent (None).
"""

from __future__ import annotations

import bisect
import math
import time
from collections import Counter
from collections.abc import Callable, Collection, Generator, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from chaos.checkers.base import Validity, Verdict, register
from chaos.history import History, Op, OpType

__all__ = ["Linearizable"]

INF = math.inf
LEGAL, ILLEGAL, OUT_OF_STATES = "legal", "illegal", "states"
_ABSENT = frozenset({None})  # the initial value of every key


@dataclass(slots=True)  # not frozen: built once per operation, 4x faster; never mutated
class _Call:
    """One operation on one key as the search sees it: it took effect at some instant of
    [start, end] (``end`` infinite: any time after ``start``), or, if ``optional``, maybe
    never (a write that timed out)."""

    start: float
    end: float
    write: bool
    value: Any  # written, or read (None: absent)
    inv: Op
    comp: Op | None  # None: never completed
    optional: bool = False


@register("linearizable")
@dataclass(frozen=True, slots=True)
class Linearizable:
    """Every key must behave as one register read and written atomically, in an order that
    respects real time. ``budget_s`` and ``max_states`` bound the search of each key (a key
    past either is unknown, never valid); ``slice_steps`` is the work done on a key before
    the next gets its turn; ``clock`` measures the budget (inject a fake one in tests)."""

    name: str = "linearizable"
    budget_s: float = 5.0
    max_states: int = 1_000_000
    slice_steps: int = 2_000
    clock: Callable[[], float] = field(default=time.perf_counter, repr=False)

    def check(self, history: History, final: Mapping[str, str | None]) -> Verdict:
        by_key, unsupported = _by_key(history)
        if not by_key and not unsupported:
            return Verdict(self.name, Validity.UNKNOWN, "no operations")
        budget = {"budget_s": self.budget_s, "max_states": self.max_states}
        searches = {key: _search(calls, _ABSENT, self.max_states, self.slice_steps)
                    for key, calls in by_key.items() if key not in unsupported}
        spent = dict.fromkeys(searches, 0.0)
        states = dict.fromkeys(searches, 0)
        exhausted = {key: {"reason": f"operation {f!r} is not a register read or write"}
                     for key, f in unsupported.items()}
        while searches:
            for key in list(searches):
                started, outcome = self.clock(), None
                try:
                    states[key] = next(searches[key])
                except StopIteration as stop:
                    outcome, states[key], frontier = stop.value
                spent[key] += self.clock() - started
                if outcome is None and spent[key] < self.budget_s:
                    continue
                searches.pop(key).close()
                if outcome == ILLEGAL:
                    return self._invalid(key, by_key[key], frontier,
                                         {**budget, "states": states[key]})
                if outcome != LEGAL:
                    reason = (f"explored {states[key]} states" if outcome == OUT_OF_STATES
                              else f"ran out of time after {spent[key]:.2f} s")
                    exhausted[key] = {"reason": reason, "ops": len(by_key[key]),
                                      "states": states[key], "seconds": round(spent[key], 3)}
        keys = len(by_key.keys() | unsupported.keys())
        ops, explored = sum(map(len, by_key.values())), sum(states.values())
        evidence = {**budget, "keys": keys, "ops": ops, "states": explored}
        if exhausted:
            return Verdict(self.name, Validity.UNKNOWN,
                           f"{len(exhausted)} of {keys} keys could not be decided",
                           {**evidence, "exhausted": dict(list(exhausted.items())[:20])})
        return Verdict(self.name, Validity.VALID,
                       f"all {keys} keys are linearizable ({ops} operations)", evidence)

    def _invalid(self, key: str, calls: list[_Call], frontier: float, evidence: dict
                 ) -> Verdict:
        deadline = self.clock() + self.budget_s
        start, end, window = _smallest_window(
            calls, frontier,
            lambda cs, choices: _decide(cs, choices, self.max_states, self.slice_steps,
                                        self.clock, deadline) == ILLEGAL)
        culprit = min((c for c in window if c.end == end), key=lambda c: c.write,
                      default=calls[-1])
        what = f"{culprit.inv.f} {_short(culprit.value)}"
        summary = (f"key {key}: no order of {len(window)} operations between t={start:.2f}s "
                   f"and t={end:.2f}s explains {what}")
        return Verdict(self.name, Validity.INVALID, summary,
                       {**evidence, "key": key, "ops_on_key": len(calls),
                        "window": [_describe(c) for c in window],
                        "window_start": start, "window_end": end})


# ---- the history, one key at a time --------------------------------------------------------
def _by_key(history: History) -> tuple[dict[Any, list[_Call]], dict[Any, str]]:
    """The client operations of each key as calls, and the keys with operations that are not
    register reads or writes (those cannot be judged)."""
    calls: dict[Any, list[_Call]] = {}
    unsupported: dict[Any, str] = {}

    def done(inv: Op, comp: Op | None) -> None:
        if inv.f not in ("read", "write"):
            unsupported.setdefault(inv.key, inv.f)
            return
        if comp is not None and comp.type is OpType.FAIL:
            return  # it did not happen
        definite = comp is not None and comp.type is OpType.OK
        if inv.f == "read":
            if definite:  # an indeterminate read tells nothing
                calls.setdefault(inv.key, []).append(
                    _Call(inv.time, max(inv.time, comp.time), False, comp.value, inv, comp))
            return
        end = max(inv.time, comp.time) if definite else INF
        calls.setdefault(inv.key, []).append(
            _Call(inv.time, end, True, inv.value, inv, comp, optional=not definite))

    open_: dict[str, Op] = {}
    for op in history.ops:
        if not op.is_client:
            continue
        if op.type is OpType.INVOKE:
            if op.process in open_:  # its previous operation never completed
                done(open_.pop(op.process), None)
            open_[op.process] = op
        elif op.process in open_:
            done(open_.pop(op.process), op)
    for inv in open_.values():
        done(inv, None)
    return calls, unsupported


def _prepare(calls: Iterable[_Call], choices: Collection[Any]) -> list[_Call]:
    """Drop what cannot matter and bound what can, in invocation order. A write that may
    never happen and whose value nobody read changes nothing if it never happens; if someone
    read it (values are unique), it did happen, before the first such read ended, unless the
    value could also be the register's initial one."""
    calls = list(calls)
    first_read: dict[Any, float] = {}
    for c in calls:
        if not c.write:
            first_read[c.value] = min(first_read.get(c.value, INF), c.end)
    writes = Counter(c.value for c in calls if c.write)
    out = []
    for c in calls:
        if c.optional:
            if c.value not in first_read:
                continue
            if writes[c.value] == 1 and c.value not in choices:
                c = replace(c, end=max(c.start, min(c.end, first_read[c.value])),
                            optional=False)
        out.append(c)
    out.sort(key=lambda c: c.start)
    return out


# ---- the search ----------------------------------------------------------------------------
def _search(calls: list[_Call], choices: Collection[Any], max_states: int,
            slice_steps: int) -> Generator[int, None, tuple[str, int, float]]:
    """Decide whether ``calls`` linearize from an initial value among ``choices``. Yields the
    number of states explored every ``slice_steps`` steps; returns (outcome, states, the
    latest completion the search had to stop at: no prefix of the calls ending before it is
    illegal).

    An optional write is tried twice where it may go: taking effect, then not (a no-op).
    Two prunings on top of the memo, both safe for a register: a read of the current value
    that may go now goes first (if any order of what is left works, one that starts with it
    does, so no alternative needs trying); and no write goes while a read of the current value
    is left and no write can bring that value back (it would never be read)."""
    calls = _prepare(calls, choices)
    possible = {c.value for c in calls if c.write} | set(choices)
    if any(not c.write and c.value not in possible for c in calls):
        return ILLEGAL, 0, -INF  # a value out of nowhere: no order explains it
    ids: dict[Any, int] = {}  # values as small numbers
    vid = [ids.setdefault(c.value, len(ids)) for c in calls]
    chosen = {ids.setdefault(v, len(ids)) for v in choices}
    write = [c.write for c in calls]
    optional = [c.optional for c in calls]
    reads_left, writes_left = [0] * len(ids), [0] * len(ids)  # not linearized yet, by value
    for w, v in zip(write, vid, strict=True):
        (writes_left if w else reads_left)[v] += 1
    # nodes 1..2n are the calls and returns in time order (a call before a return at the same
    # instant: they overlap); 0 is the head, 2n+1 the tail
    events = sorted([(c.start, 0, i) for i, c in enumerate(calls)]
                    + [(c.end, 1, i) for i, c in enumerate(calls)])
    tail = len(events) + 1
    nxt = list(range(1, tail + 1)) + [tail]
    prv = [0, *range(tail)]
    returns = {i: node for node, (_, kind, i) in enumerate(events, 1) if kind}
    match = [0] * (tail + 1)  # a call's return node; 0 for returns
    index = [0] * (tail + 1)
    for node, (_, kind, i) in enumerate(events, 1):
        if not kind:
            match[node], index[node] = returns[i], i

    unset = -1  # the initial value is not chosen yet
    state = next(iter(chosen)) if len(chosen) == 1 else unset
    low, rest = 0, 0  # linearized: every call below ``low``, and low + j for each bit j of rest
    cache: set[tuple[int, int, int]] = set()
    stack: list[tuple[int, int, int, int, bool, bool]] = []  # the choices made:
    # (entry, state before, low before, rest before, forced, skipped)
    entry, steps, fresh, skip, far = nxt[0], 0, True, False, 0
    while nxt[0] != tail:
        steps += 1
        if steps >= slice_steps:
            steps = 0
            yield len(cache)
        forced = False
        if fresh:
            fresh, entry = False, nxt[0]
            if state != unset:
                node = entry
                while match[node]:
                    i = index[node]
                    if not write[i] and vid[i] == state:
                        entry, forced = node, True
                        break
                    node = nxt[node]
        ret = match[entry]
        if ret:  # a call: linearize it now if the register allows and the state is new
            i = index[entry]
            v = vid[i]
            if skip:  # the second try of an optional write: it never took effect
                legal = False
            elif write[i]:
                legal = state == unset or not reads_left[state] or writes_left[state] > 0
            else:
                legal = v == state or (state == unset and v in chosen)
            if not (legal or optional[i]):
                entry = nxt[entry]
                continue
            if i == low:
                new_rest = rest | 1
                ones = (~new_rest & (new_rest + 1)).bit_length() - 1
                new_low, new_rest = low + ones, new_rest >> ones
            else:
                new_low, new_rest = low, rest | (1 << (i - low))
            after = v if legal else state
            seen = (new_low, new_rest, after)
            if seen in cache and legal and optional[i]:
                legal, after, seen = False, state, (new_low, new_rest, state)
            skip = False
            if seen not in cache:
                if len(cache) >= max_states:
                    return OUT_OF_STATES, len(cache), -INF
                cache.add(seen)
                stack.append((entry, state, low, rest, forced, not legal))
                state, low, rest, fresh = after, new_low, new_rest, True
                (writes_left if write[i] else reads_left)[v] -= 1
                nxt[prv[entry]] = nxt[entry]
                prv[nxt[entry]] = prv[entry]
                nxt[prv[ret]] = nxt[ret]
                prv[nxt[ret]] = prv[ret]
                continue
            if not forced:
                entry = nxt[entry]
                continue
        # the return of a call not linearized yet (or a forced read into a state known to
        # fail): undo choices up to the last one that had alternatives, and try the next
        far = max(far, entry)
        while True:
            if not stack:
                return ILLEGAL, len(cache), events[far - 1][0]
            entry, state, low, rest, forced, skipped = stack.pop()
            i = index[entry]
            (writes_left if write[i] else reads_left)[vid[i]] += 1
            ret = match[entry]
            nxt[prv[ret]] = ret
            prv[nxt[ret]] = ret
            nxt[prv[entry]] = entry
            prv[nxt[entry]] = entry
            if not forced:
                break
        skip = optional[index[entry]] and not skipped  # next: the same write, not taking effect
        if not skip:
            entry = nxt[entry]
    return LEGAL, len(cache), INF


def _decide(calls: list[_Call], choices: Collection[Any], max_states: int, slice_steps: int,
            clock: Callable[[], float], deadline: float) -> str:
    """The outcome of one search run to its end, or until ``deadline`` ("time")."""
    search = _search(calls, choices, max_states, slice_steps)
    try:
        while True:
            next(search)
            if clock() >= deadline:
                search.close()
                return "time"
    except StopIteration as stop:
        return stop.value[0]


# ---- the smallest window that cannot be linearized -----------------------------------------
def _window(calls: list[_Call], start: float, end: float) -> tuple[list[_Call], frozenset]:
    """The operations of [start, end] and the register's possible values at ``start``; a
    history linearizable as a whole is linearizable in every window.

    Cut at ``end`` (a prefix of a linearizable history is linearizable): what completed after
    it was still pending, so a write may take effect later or never and a read says nothing.
    Cut at ``start``: what completed before it is linearized before everything invoked after
    it, so it only leaves an initial value (absent, or any value written before ``start``);
    a write in flight at ``start`` took effect before the window (its value may be the initial
    one) or within it, by its end: optional. The later the start, the weaker the window, so
    the start can be found by binary search."""
    kept, choices = [], {None}
    for c in calls:
        if c.start > end:
            continue
        if c.end < start:  # done before the window
            if c.write:
                choices.add(c.value)
            continue
        pending, straddles = c.end > end, c.start < start
        if not c.write:
            if not (pending or straddles):
                kept.append(c)
            continue
        if straddles:
            choices.add(c.value)
        if pending:
            c = replace(c, end=INF, optional=True)
        elif straddles:
            c = replace(c, optional=True)
        kept.append(c)
    return kept, frozenset(choices)


def _smallest_window(calls: list[_Call], frontier: float,
                     illegal: Callable[[list[_Call], frozenset], bool]
                     ) -> tuple[float, float, list[_Call]]:
    """Shrink a key's non-linearizable history to a short window that still is: first the
    earliest end (a later end only adds constraints), from ``frontier`` up (the search of the
    whole history never got past the first illegal end, so it is no earlier than where that
    search stopped); then the latest start (an earlier start only adds constraints), from the
    end down. A search out of budget counts as "not shown illegal", so the window returned is
    always proven illegal."""
    ends = sorted({c.end for c in calls if c.end != INF})  # cut at the last: illegal
    lo = min(bisect.bisect_left(ends, frontier), len(ends) - 1)
    end = ends[_first(lo, len(ends) - 1, lambda i: illegal(*_window(calls, -INF, ends[i])))]
    starts = sorted({c.start for c in calls if c.start <= end}, reverse=True)
    start = starts[_first(0, len(starts) - 1,  # from the first invocation: the cut, illegal
                          lambda i: illegal(*_window(calls, starts[i], end)))]
    window = _prepare(*_window(calls, start, end))
    return min((c.start for c in window), default=start), end, window


def _first(lo: int, hi: int, holds: Callable[[int], bool]) -> int:
    """The least i in [lo, hi] where ``holds``, for ``holds`` false and then true, and taken
    as true at ``hi``: probe lo, lo+1, ..., lo+32, then lo+65, lo+131... (the answer is
    usually near lo, and showing a window legal is much cheaper than showing it illegal), then
    bisect between the last false and the first true."""
    below, n = lo - 1, 0
    while True:
        i = min(hi, lo + n)
        if i == hi or holds(i):
            break
        below, n = i, n + 1 if n < 32 else 2 * n + 1
    lo, hi = below + 1, i
    while lo < hi:
        mid = (lo + hi) // 2
        if holds(mid):
            hi = mid
        else:
            lo = mid + 1
    return hi


def _describe(c: _Call) -> dict:
    return {"process": c.inv.process, "f": c.inv.f, "value": c.value, "invoke": c.inv.time,
            "completion": None if c.comp is None else c.comp.time,
            "type": "pending" if c.comp is None else str(c.comp.type)}


def _short(value: Any) -> str:
    return repr(value if not isinstance(value, str) or len(value) <= 24 else value[:24] + "…")
