"""Checkers are pure functions of a history: valid, invalid or unknown, never an exception."""

from __future__ import annotations

import pytest

from chaos.checkers import availability, compose, no_lost_writes
from chaos.history import History

pytestmark = pytest.mark.unit


class Ticks:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        self.t += 1.0
        return self.t


def history() -> History:
    return History(clock=Ticks())


def op(h: History, proc: str, f: str, key: str, value, outcome: str = "ok") -> None:
    h.add(proc, "invoke", f, key, value)
    h.add(proc, outcome, f, key, value)


def test_availability_counts_client_operations_only():
    h = history()
    op(h, "w0", "write", "k", "1")
    op(h, "w0", "read", "k", None, "fail")
    op(h, "nemesis", "kill", "node-1", None, "info")
    v = availability(h, min_ratio=0.5)
    assert v.valid == "valid" and v.evidence["total"] == 2
    assert availability(h, min_ratio=1.0).valid == "invalid"
    assert availability(history()).valid == "unknown"


def test_a_lost_acknowledged_write_is_invalid():
    h = history()
    op(h, "w0", "write", "k", "old")
    op(h, "w0", "write", "k", "new")
    v = no_lost_writes(h, {"k": "old"})
    assert v.valid == "invalid" and v.evidence["lost"]["k"]["last_acknowledged"] == "new"
    assert no_lost_writes(h, {"k": None}).valid == "invalid"  # the key vanished
    assert no_lost_writes(h, {"k": "new"}).valid == "valid"


def test_concurrent_writes_may_end_in_either_order():
    h = history()
    h.add("w0", "invoke", "write", "k", "a")
    h.add("w1", "invoke", "write", "k", "b")
    h.add("w1", "ok", "write", "k", "b")
    h.add("w0", "ok", "write", "k", "a")
    assert no_lost_writes(h, {"k": "a"}).valid == "valid"
    assert no_lost_writes(h, {"k": "b"}).valid == "valid"
    assert no_lost_writes(h, {"k": "c"}).valid == "invalid"


def test_an_indeterminate_write_may_or_may_not_have_happened():
    h = history()
    op(h, "w0", "write", "k", "acked")
    op(h, "w0", "write", "k", "maybe", "info")
    op(h, "w0", "write", "k", "never", "fail")
    assert no_lost_writes(h, {"k": "maybe"}).valid == "valid"
    assert no_lost_writes(h, {"k": "acked"}).valid == "valid"
    assert no_lost_writes(h, {"k": "never"}).valid == "invalid"  # a failed write did not happen


def test_unreadable_keys_make_the_verdict_unknown_and_compose_takes_the_worst():
    h = history()
    op(h, "w0", "write", "k", "v")
    unknown = no_lost_writes(h, {})
    assert unknown.valid == "unknown"
    assert compose([availability(h), unknown]).valid == "unknown"
    assert compose([availability(h), no_lost_writes(h, {"k": "x"}), unknown]).valid == "invalid"
    assert compose([availability(h), no_lost_writes(h, {"k": "v"})]).valid == "valid"
