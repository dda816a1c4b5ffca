"""Checkers are pure functions of a history: valid, invalid or unknown, never an exception."""

from __future__ import annotations

import pytest

from chaos.checkers import (
    CHECKERS,
    Availability,
    Breakers,
    Convergence,
    Failover,
    HerdPeak,
    NoLostWrites,
    ReadYourWrites,
    RetryAmplification,
    StaleReads,
    Validity,
    Verdict,
    compose,
    make_checker,
)
from chaos.history import History

pytestmark = pytest.mark.unit


class Ticks:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        self.t += 1.0
        return self.t


def availability(h: History, **kw) -> Verdict:
    return Availability(**kw).check(h, {})


def no_lost_writes(h: History, final: dict) -> Verdict:
    return NoLostWrites().check(h, final)


class Fixed:
    """A checker that answers what it is told (for compose)."""

    def __init__(self, verdict: Verdict) -> None:
        self.name, self.verdict = verdict.name, verdict

    def check(self, history, final):
        return self.verdict


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
    ok = Fixed(availability(h))

    def composed(*verdicts):
        return compose(*(Fixed(v) for v in verdicts)).check(h, {})

    assert composed(ok.verdict, unknown).valid is Validity.UNKNOWN
    assert composed(ok.verdict, no_lost_writes(h, {"k": "x"}), unknown).valid == "invalid"
    both = compose(Availability(), NoLostWrites()).check(h, {"k": "v"})
    assert both.valid is Validity.VALID and [p.name for p in both.parts] == [
        "availability", "durability"]


def test_a_crashing_checker_is_unknown_not_a_crash():
    class Broken:
        name = "broken"

        def check(self, history, final):
            raise ZeroDivisionError

    verdict = compose(Broken(), Availability()).check(history(), {})
    assert verdict.valid is Validity.UNKNOWN and "checker crashed" in verdict.parts[0].summary


def test_availability_during_fault_windows_only():
    h = history()
    op(h, "w0", "write", "k", "1")  # healthy, ok
    h.add("nemesis", "invoke", "kill", "node-1", {"step": 0, "phase": "apply"})
    h.add("nemesis", "ok", "kill", "node-1", {"step": 0, "phase": "apply"})
    op(h, "w0", "write", "k", "2", "fail")  # inside the window
    h.add("nemesis", "invoke", "kill", "node-1", {"step": 0, "phase": "heal"})
    h.add("nemesis", "ok", "kill", "node-1", {"step": 0, "phase": "heal"})
    op(h, "w0", "write", "k", "3")  # healthy again
    assert availability(h, during="faults").evidence["total"] == 1
    assert availability(h, during="faults", min_ratio=0.5).valid == "invalid"
    assert availability(h, during="healthy").valid == "valid"
    assert availability(h, during="healthy").evidence["total"] == 2


def test_checkers_are_chosen_by_name():
    assert set(CHECKERS) >= {"availability", "durability"}
    assert make_checker("availability", min_ratio=0.9) == Availability(min_ratio=0.9)
    with pytest.raises(ValueError, match="unknown checker 'lineariz': choose one of"):
        make_checker("lineariz")


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


def _timed(h: History, start: float, took: float, f: str = "write") -> None:
    h.add("w0", "invoke", f, "k", "v", at=h.t0 + start)
    h.add("w0", "ok", f, "k", "v", at=h.t0 + start + took)


def test_latency_during_faults_against_the_healthy_window():
    from chaos.checkers import LatencyPerWindow

    def run(slow_ms: float) -> Verdict:
        h = History(t0=0.0)
        for i in range(100):
            _timed(h, i * 0.01, 0.010)  # healthy: 10 ms
        h.add("nemesis", "invoke", "latency", "node-1", {"step": 0, "phase": "apply"}, at=2.0)
        for i in range(100):
            _timed(h, 2.01 + i * 0.01, slow_ms / 1000)
        h.add("nemesis", "ok", "latency", "node-1", {"step": 0, "phase": "heal"}, at=4.0)
        return LatencyPerWindow(max_ratio=1.2, slack_ms=1).check(h, {})

    assert run(11).valid is Validity.VALID
    slow = run(40)
    assert slow.valid is Validity.INVALID and slow.evidence["during_ms"] == pytest.approx(40)
    assert LatencyPerWindow().check(history(), {}).valid is Validity.UNKNOWN


def test_operations_cut_short_by_the_end_of_the_run_are_not_unavailability():
    h = history()
    op(h, "w0", "write", "k", "1")
    h.add("w1", "invoke", "write", "k", "2")
    h.add("w1", "info", "write", "k", "2", error="interrupted")
    assert availability(h).valid is Validity.VALID and availability(h).evidence["total"] == 1
    assert NoLostWrites().check(h, {"k": "2"}).valid is Validity.VALID  # it may have happened


# ---- convergence: every copy the newest, on as many replicas as a key has owners ----------
def _final(replicas, copies=3):
    from chaos.history import FinalState

    return FinalState({}, replicas=replicas, copies=copies)


def test_convergence_holds_when_every_owner_has_the_newest_copy():
    v = (5, 0, "c")
    verdict = Convergence().check(History(), _final({"n1": {"k": v}, "n2": {"k": v}, "n3": {"k": v}}))
    assert verdict.valid is Validity.VALID and verdict.evidence["keys"] == 1


@pytest.mark.parametrize("replicas,why", [
    ({"n1": {"k": (5, 0, "c")}, "n2": {"k": (5, 0, "c")}, "n3": {"k": (4, 0, "c")}}, "behind"),
    ({"n1": {"k": (5, 0, "c")}, "n2": {"k": (5, 0, "c")}, "n3": {}}, "missing"),
])
def test_convergence_names_the_divergent_keys(replicas, why):
    verdict = Convergence().check(History(), _final(replicas))
    assert verdict.valid is Validity.INVALID
    found = verdict.evidence["divergent"]["k"]
    assert (found["behind"] == {"n3": [4, 0, "c"]}) if why == "behind" else found["missing"] == 1


def test_convergence_without_replica_reads_is_unknown():
    assert Convergence().check(History(), {"k": "v"}).valid is Validity.UNKNOWN


# ---- herd: the busiest 100 ms at a recovering node over its steady mean --------------------
def _paused(after_heal: list[int]) -> History:
    h = History(clock=lambda: 0.0, t0=0.0)
    h.add("nemesis", "invoke", "pause", "n2", {"step": 0, "phase": "apply"}, at=3.0)
    h.add("nemesis", "ok", "pause", "n2", {"step": 0, "phase": "heal"}, at=5.0)
    steady = [(round(0.5 + i / 10, 1), 10) for i in range(25)]  # 10 per 100 ms until 3 s
    h.series["arrivals:n2"] = steady + [(round(5.0 + i / 10, 1), n) for i, n in enumerate(after_heal)]
    return h


def test_herd_peak_within_the_ratio_is_valid_and_a_burst_is_caught():
    assert HerdPeak(max_ratio=3.0).check(_paused([12, 25, 10]), {}).valid is Validity.VALID
    burst = HerdPeak(max_ratio=3.0).check(_paused([12, 80, 10]), {})
    assert burst.valid is Validity.INVALID and burst.evidence["windows"][0]["peak"] == 80
    assert "8.0x" in burst.summary


def test_herd_of_a_restarted_node_compares_with_the_fleet_mean():
    h = _paused([12, 25])
    h.series["arrivals:n1"] = h.series.pop("arrivals:n2")  # n2 lost its counters in a restart
    h.series["arrivals:n2"] = [(5.1, 90)]
    verdict = HerdPeak(max_ratio=3.0).check(h, {})
    assert verdict.valid is Validity.INVALID and verdict.evidence["windows"][0]["steady_mean"] == 10


def test_herd_without_counts_is_unknown():
    h = _paused([1])
    h.series.clear()
    assert HerdPeak().check(h, {}).valid is Validity.UNKNOWN


# ---- retry amplification: replica requests per operation, in faults against healthy -------
def _retried(requests_in_fault: int) -> History:
    h = History(clock=lambda: 0.0, t0=0.0)
    for i in range(20):  # healthy: 3 requests per write
        h.add("c1", "invoke", "write", f"k{i}", f"v{i}", at=0.1 * i)
        h.add("c1", "ok", "write", f"k{i}", f"v{i}", attempts=1, requests=3, at=0.1 * i + 0.05)
    h.add("nemesis", "invoke", "kill", "n2", {"step": 0, "phase": "apply"}, at=3.0)
    for i in range(10):
        h.add("c1", "invoke", "write", f"j{i}", f"w{i}", at=3.1 + 0.1 * i)
        h.add("c1", "fail", "write", f"j{i}", f"w{i}", attempts=4, requests=requests_in_fault,
              at=3.15 + 0.1 * i)
    h.add("c1", "invoke", "read", "x", at=3.5)
    h.add("c1", "info", "read", "x", error="interrupted", at=3.6)  # no counts: left out
    h.add("nemesis", "ok", "kill", "n2", {"step": 0, "phase": "heal"}, at=5.0)
    return h


def test_retry_amplification_within_the_ratio_and_a_multiplied_load_is_caught():
    ok = RetryAmplification(max_ratio=2.0).check(_retried(6), {})
    assert ok.valid is Validity.VALID and ok.evidence["windows"][0]["ratio"] == 2.0
    bad = RetryAmplification(max_ratio=2.0).check(_retried(12), {})
    assert bad.valid is Validity.INVALID and "4.0x" in bad.summary
    assert bad.evidence["windows"][0]["attempts_per_op"] == 4
    assert make_checker("amplification") == RetryAmplification()


def test_retry_amplification_without_counts_or_faults_is_unknown():
    h = _retried(6)
    bare = History(clock=lambda: 0.0, t0=0.0)
    for op in h.ops:
        bare.add(op.process, op.type, op.f, op.key, op.value, op.error, at=op.time)
    assert RetryAmplification().check(bare, {}).valid is Validity.UNKNOWN
    assert RetryAmplification().check(History(), {}).valid is Validity.UNKNOWN


# ---- stale reads: judged on values, in real time ------------------------------------------
def _ops(*ops) -> History:
    """(process, f, value, invoke_at, complete_at, type[, read_value]) on key k."""
    h = History(clock=lambda: 0.0, t0=0.0)
    events = []
    for op in ops:
        process, f, value, start, end, kind, *got = op
        events.append((start, process, "invoke", f, value if f == "write" else None))
        events.append((end, process, kind, f, got[0] if f == "read" else value))
    for at, process, kind, f, value in sorted(events, key=lambda e: e[0]):
        h.add(process, kind, f, "k", value, at=at)
    return h


def stale(h: History) -> Verdict:
    return StaleReads().check(h, {})


def test_a_read_after_an_acknowledged_write_sees_it_or_newer():
    h = _ops(("a", "write", "v1", 0, 1, "ok"), ("b", "read", None, 2, 3, "ok", "v1"),
             ("a", "write", "v2", 4, 5, "ok"), ("b", "read", None, 4.5, 6, "ok", "v1"))
    assert stale(h).valid is Validity.VALID  # the second read overlaps v2: v1 is fine


def test_a_read_of_an_older_value_is_stale():
    h = _ops(("a", "write", "v1", 0, 1, "ok"), ("a", "write", "v2", 2, 3, "ok"),
             ("b", "read", None, 4, 5, "ok", "v1"))
    verdict = stale(h)
    assert verdict.valid is Validity.INVALID
    assert verdict.evidence["stale"][0]["read"] == "v1" and verdict.evidence["stale"][0]["at_least"] == "v2"


def test_a_read_that_finds_nothing_after_an_acknowledged_write_is_stale():
    h = _ops(("a", "write", "v1", 0, 1, "ok"), ("b", "read", None, 2, 3, "ok", None))
    assert stale(h).evidence["stale"][0]["why"] == "found nothing"


def test_an_indeterminate_write_may_land_late_and_a_failed_one_never():
    late = _ops(("a", "write", "v1", 0, 1, "info"), ("a", "write", "v2", 2, 3, "ok"),
                ("b", "read", None, 4, 5, "ok", "v1"))
    assert stale(late).valid is Validity.VALID
    failed = _ops(("a", "write", "v1", 0, 1, "fail"), ("b", "read", None, 2, 3, "ok", "v1"))
    verdict = stale(failed)
    assert verdict.valid is Validity.INVALID and verdict.evidence["phantom"][0]["why"] == "its write failed"


def test_stale_reads_without_reads_is_unknown():
    assert stale(_ops(("a", "write", "v1", 0, 1, "ok"))).valid is Validity.UNKNOWN


# ---- failover: the longest stretch without success on the affected keys ----------------------
def _outage(write_oks: list[float], read_oks: list[float]) -> History:
    h = History(clock=lambda: 0.0, t0=0.0)
    h.add("nemesis", "invoke", "pause", "n2", {"step": 0, "phase": "apply"}, at=2.0)
    events = [(t, "w", "write") for t in write_oks] + [(t, "r", "read") for t in read_oks]
    events.append((2.5, "w", "write-fail"))
    for t, process, f in sorted(events):
        kind = "fail" if f == "write-fail" else "ok"
        h.add(process, "invoke", f.removesuffix("-fail"), "k", "v", at=t - 0.01)
        h.add(process, kind, f.removesuffix("-fail"), "k", "v", at=t)
    h.add("nemesis", "ok", "pause", "n2", {"step": 0, "phase": "heal"}, at=6.0)
    return h


def test_failover_within_the_threshold_and_a_stalled_kind_is_caught():
    steady = [2.2, 2.9, 3.6, 4.3, 5.0, 5.7]
    assert Failover(max_s=1.0).check(_outage(steady, steady), {}).valid is Validity.VALID
    stalled = Failover(max_s=1.0).check(_outage([2.1, 5.9], steady), {})  # reads go on
    assert stalled.valid is Validity.INVALID
    row = stalled.evidence["faults"][0]
    assert row["outage_of"] == "write" and row["failover_s"] == pytest.approx(3.8) and row["failed"] == 1


def test_failover_uses_the_keys_the_node_holds():
    from chaos.history import FinalState

    final = FinalState({}, replicas={"n2": {"other": (1, 0, "c")}}, copies=3)
    verdict = Failover().check(_outage([2.1, 5.9], []), final)  # nothing on n2's keys
    assert verdict.valid is Validity.UNKNOWN and "no operation" in verdict.summary


# ---- breakers: the transitions the clients recorded ------------------------------------------
def _breaker_run(moves, *, heal=5.0) -> History:
    h = History(clock=lambda: 0.0, t0=0.0)
    h.add("nemesis", "invoke", "pause", "n2", {"step": 0, "phase": "apply"}, at=2.0)
    h.add("nemesis", "ok", "pause", "n2", {"step": 0, "phase": "heal"}, at=heal)
    for t, old, new in moves:
        h.add("event:c1", "info", "breaker", "n2", {"from": old, "to": new}, at=t)
    return h


def test_breakers_open_during_the_fault_and_close_after():
    h = _breaker_run([(2.6, "closed", "open"), (3.7, "open", "half_open"),
                      (3.8, "half_open", "open"), (5.2, "open", "half_open"),
                      (5.3, "half_open", "closed")])
    verdict = Breakers(cooldown=1.0).check(h, {})
    assert verdict.valid is Validity.VALID, verdict.summary
    assert verdict.evidence["faults"][0]["opened"] == 1


@pytest.mark.parametrize("moves,problem", [
    ([], "no breaker for n2 opened"),
    ([(2.6, "closed", "open"), (2.9, "open", "half_open"), (3.0, "half_open", "closed")],
     "before the 1s cooldown"),
    ([(2.6, "closed", "half_open")], "not a breaker transition"),
    ([(2.6, "closed", "open")], "not closed 3s after the heal"),
])
def test_breaker_problems_are_named(moves, problem):
    h = _breaker_run(moves or [(0.5, "closed", "open"), (1.6, "open", "half_open"),
                               (1.7, "half_open", "closed")])
    verdict = Breakers(cooldown=1.0).check(h, {})
    assert verdict.valid is Validity.INVALID and problem in str(verdict.evidence["problems"])


def test_breakers_without_events_is_unknown_and_events_are_not_operations():
    h = _breaker_run([(2.6, "closed", "open")])
    assert all(not op.is_client for op in h.events())
    assert Availability().check(h, {}).valid is Validity.UNKNOWN  # no client operation at all
    assert Breakers().check(History(), {}).valid is Validity.UNKNOWN


def test_a_client_that_records_breakers_and_never_opens_one_is_caught():
    h = _breaker_run([])
    h.add("event:c1", "info", "breakers", None, {"threshold": 10**6, "cooldown": 2.0}, at=0.1)
    verdict = Breakers().check(h, {})
    assert verdict.valid is Validity.INVALID and "no breaker for n2 opened" in verdict.summary
