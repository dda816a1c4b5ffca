"""Checkers are pure functions of a history: valid, invalid or unknown, never an exception."""

from __future__ import annotations

import pytest

from chaos.checkers import ReadYourWrites, availability, compose, no_lost_writes
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


def test_read_your_writes_accepts_the_last_acknowledged_write_and_nothing_older():
    ryw = ReadYourWrites()
    assert ryw.problem("k", None) is None  # never written: absent is right
    assert ryw.problem("k", "v0") is not None  # ...and a value out of nowhere is not
    ryw.wrote("k", "v1", acknowledged=True)
    ryw.wrote("k", "v2", acknowledged=True)
    assert ryw.problem("k", "v2") is None
    stale = ryw.problem("k", "v1")
    assert stale is not None and "stale read of k" in stale and "'v2'" in stale
    assert ryw.problem("k", None) is not None  # an acknowledged write vanished


def test_read_your_writes_allows_what_a_failed_write_may_have_left():
    ryw = ReadYourWrites()
    ryw.wrote("k", "v1", acknowledged=False)  # may or may not have reached a replica
    assert ryw.problem("k", None) is None and ryw.problem("k", "v1") is None
    ryw.wrote("k", "v2", acknowledged=True)
    ryw.wrote("k", "v3", acknowledged=False)
    assert ryw.problem("k", "v2") is None and ryw.problem("k", "v3") is None
    assert ryw.problem("k", "v1") is not None  # older than an acknowledged write
    assert ryw.keys() == ["k"]
