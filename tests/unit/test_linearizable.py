"""The linearizability checker: examples with known answers, and agreement with a brute-force
search over every order of small random histories."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chaos.checkers import CHECKERS, Linearizable, Validity, Verdict, make_checker
from chaos.history import INTERRUPTED, History

pytestmark = pytest.mark.unit


@dataclass(frozen=True)
class Spec:
    """One operation as a test writes it: ``value`` is what was written or read; ``outcome``
    is ok / fail / info, or none (never completed)."""

    process: str
    f: str
    key: str
    value: str | None
    start: float
    end: float
    outcome: str = "ok"
    error: str | None = None


def build(*ops: Spec, nemesis: tuple[float, ...] = ()) -> History:
    """A history of ``ops`` (records in time order) and nemesis steps at the times given."""
    events = []
    for seq, o in enumerate(ops):
        events.append((o.start, 2 * seq, o.process, "invoke", o,
                       o.value if o.f == "write" else None))
        if o.outcome != "none":
            events.append((o.end, 2 * seq + 1, o.process, o.outcome, o, o.value))
    target = ops[0].key if ops else "k"  # a fault record under a key the clients use
    for t in nemesis:
        events.append((t, -1, "nemesis", "info", Spec("nemesis", "kill", target, None, t, t),
                       {"step": 0, "phase": "apply"}))
    h = History(clock=lambda: 0.0, t0=0)
    for t, _, process, type_, o, value in sorted(events, key=lambda e: (e[0], e[1])):
        error = o.error if type_ in ("fail", "info") else None
        h.add(process, type_, o.f, o.key, value, error, at=t)
    return h


def w(process: str, value: str, start: float, end: float, outcome: str = "ok",
      key: str = "k", **kw) -> Spec:
    return Spec(process, "write", key, value, start, end, outcome, **kw)


def r(process: str, value: str | None, start: float, end: float, outcome: str = "ok",
      key: str = "k") -> Spec:
    return Spec(process, "read", key, value, start, end, outcome)


def check(*ops: Spec, **kw) -> Verdict:
    return Linearizable(**kw).check(build(*ops), {})


# ---- examples ------------------------------------------------------------------------------
def test_a_concurrent_history_with_a_valid_order_is_linearizable():
    v = check(w("p0", "a", 0, 10), w("p1", "b", 2, 5), r("p2", "b", 3, 4), r("p2", None, -1, 1),
              r("p1", "a", 11, 12), r("p3", "a", 4, 13))
    assert v.valid is Validity.VALID, v.summary
    assert v.evidence["keys"] == 1 and v.evidence["ops"] == 6 and v.evidence["states"] >= 6


def test_a_stale_read_after_an_acknowledged_write_is_invalid_with_the_smallest_window():
    v = check(w("p0", "a", 0, 1), w("p0", "b", 2, 3), r("p1", "a", 4, 5))
    assert v.valid is Validity.INVALID
    assert v.summary == ("key k: no order of 2 operations between t=2.00s and t=5.00s "
                         "explains read 'a'")
    assert v.evidence["key"] == "k" and v.evidence["window"] == [
        {"process": "p0", "f": "write", "value": "b", "invoke": 2.0, "completion": 3.0,
         "type": "ok"},
        {"process": "p1", "f": "read", "value": "a", "invoke": 4.0, "completion": 5.0,
         "type": "ok"}]


def test_the_window_leaves_out_what_came_before_and_after():
    ops = [w("p0", f"v{i}", 10 * i, 10 * i + 4) for i in range(10)]
    ops += [r("p1", f"v{i}", 10 * i + 5, 10 * i + 6) for i in range(10) if i != 7]
    ops.append(r("p2", "v6", 71, 73))  # v7 was acknowledged at 74: still fine
    ops.append(r("p2", "v6", 75, 76))  # ...but not here
    ops += [w("p3", f"z{i}", 200 + i, 200.5 + i) for i in range(5)]
    v = check(*ops)
    assert v.valid is Validity.INVALID
    window = v.evidence["window"]
    assert [(o["f"], o["value"], o["invoke"]) for o in window] == [
        ("write", "v7", 70), ("read", "v6", 71), ("read", "v6", 75)]
    assert (v.evidence["window_start"], v.evidence["window_end"]) == (70, 76)
    assert v.evidence["ops_on_key"] == len(ops)
    assert v.summary == ("key k: no order of 3 operations between t=70.00s and t=76.00s "
                         "explains read 'v6'")


def test_overlapping_writes_are_still_ordered_by_the_reads_after_them():
    # "a" and "b" overlap, but both were acknowledged before "b" was read: "a" cannot come back
    v = check(w("p0", "a", 0, 1), w("p1", "b", 0.5, 1.5), r("p2", "b", 2, 3), r("p2", "a", 4, 5))
    assert v.valid is Validity.INVALID
    assert [(o["f"], o["value"]) for o in v.evidence["window"]] == [("read", "b"), ("read", "a")]
    late = check(w("p0", "a", 0, 1), w("p1", "b", 0.5, 6), r("p2", "b", 2, 3),
                 r("p2", "a", 4, 5))
    assert late.valid is Validity.INVALID  # "b" was read: "a" is older than it, either way
    fine = check(w("p0", "a", 0, 4.5), w("p1", "b", 0.5, 1.5), r("p2", "b", 2, 3),
                 r("p2", "a", 4, 5))
    assert fine.valid is Validity.VALID


def test_a_lost_update_is_invalid():
    # both writes acknowledged, "b" read after both: a later read cannot go back to "a"
    v = check(w("p0", "a", 0, 2), w("p1", "b", 1, 3), r("p2", "b", 4, 5), r("p2", "a", 6, 7))
    assert v.valid is Validity.INVALID and "explains read 'a'" in v.summary
    # two reads in a row with no write between them are enough to show it
    assert [o["value"] for o in v.evidence["window"]] == ["b", "a"]
    # an acknowledged write that vanishes
    gone = check(w("p0", "a", 0, 1), r("p1", None, 2, 3))
    assert gone.valid is Validity.INVALID and "explains read None" in gone.summary


def test_an_indeterminate_write_may_take_effect_late_or_never():
    late = (w("p0", "a", 0, 1), w("p1", "b", 2, 3, "info"), r("p2", "a", 4, 5),
            r("p2", "b", 6, 7))
    assert check(*late).valid is Validity.VALID
    never = (w("p0", "a", 0, 1), w("p1", "b", 2, 3, "info", error=INTERRUPTED),
             r("p2", "a", 4, 5), r("p2", "a", 9, 10))
    assert check(*never).valid is Validity.VALID
    pending = (w("p0", "a", 0, 1), w("p1", "b", 2, 3, "none"), r("p2", "b", 8, 9))
    assert check(*pending).valid is Validity.VALID  # never completed: it may have happened
    # ...but once it is seen it stays: going back to "a" is not explained
    flip = (*late, r("p2", "a", 8, 9))
    assert check(*flip).valid is Validity.INVALID
    before = (r("p2", "b", 0, 1), w("p1", "b", 2, 3, "info"))  # read before it was invoked
    assert check(*before).valid is Validity.INVALID


def test_failed_writes_and_indeterminate_reads_are_ignored():
    base = (w("p0", "a", 0, 1), w("p1", "b", 2, 3, "fail"))
    assert check(*base, r("p2", "a", 4, 5)).valid is Validity.VALID
    v = check(*base, r("p2", "b", 4, 5))
    assert v.valid is Validity.INVALID  # a failed write did not happen
    assert check(*base, r("p2", "b", 4, 5, "info")).valid is Validity.VALID


def test_nemesis_records_are_ignored():
    h = build(w("p0", "a", 0, 1), r("p1", "a", 2, 3), nemesis=(0.5, 1.5, 2.5))
    assert len(h.nemesis_ops()) == 3
    v = Linearizable().check(h, {})
    assert v.valid is Validity.VALID and v.evidence["keys"] == 1 and v.evidence["ops"] == 2
    assert Linearizable().check(build(nemesis=(1.0,)), {}).valid is Validity.UNKNOWN


def test_no_operations_is_unknown():
    v = Linearizable().check(History(clock=lambda: 0.0, t0=0), {})
    assert v.valid is Validity.UNKNOWN and v.summary == "no operations"
    only_failed = check(w("p0", "a", 0, 1, "fail"), r("p1", None, 0, 1, "info"))
    assert only_failed.valid is Validity.UNKNOWN


def test_keys_are_judged_apart_and_the_illegal_one_is_named():
    ok_k1 = (w("p0", "a", 0, 1, key="k1"), r("p1", "a", 2, 3, key="k1"))
    # on its own each key is fine; read as one register, "a" and "b" would clash
    both = (*ok_k1, w("p2", "b", 0, 1, key="k2"), r("p3", "b", 2, 3, key="k2"))
    assert check(*both).valid is Validity.VALID
    bad = check(*both, r("p1", None, 4, 5, key="k2"))
    assert bad.valid is Validity.INVALID and bad.evidence["key"] == "k2"
    assert bad.summary.startswith("key k2: ")


def _nasty(n: int = 12) -> tuple[Spec, ...]:
    """n concurrent writes, then two reads in a row that no order explains: the search must
    try every subset of the writes before it gives up."""
    writes = tuple(w(f"p{i}", f"v{i}", 0, 1) for i in range(n))
    return (*writes, r("q", "v0", 2, 3), r("q", "v1", 4, 5))


def test_a_key_past_its_budget_of_states_is_unknown_not_valid():
    v = check(*_nasty(), max_states=500)
    assert v.valid is Validity.UNKNOWN
    assert v.evidence["max_states"] == 500 and v.evidence["budget_s"] == 5.0
    assert v.evidence["exhausted"]["k"]["reason"] == "explored 500 states"
    assert check(*_nasty()).valid is Validity.INVALID  # with room enough, the true answer


def test_a_key_past_its_budget_of_time_is_unknown_and_the_others_still_answer():
    ticks = iter(range(10**6))
    fake = Linearizable(budget_s=3, slice_steps=100, clock=lambda: float(next(ticks)))
    h = build(*_nasty(), w("p0", "a", 0, 1, key="easy"), r("p1", "a", 2, 3, key="easy"))
    v = fake.check(h, {})
    assert v.valid is Validity.UNKNOWN
    assert list(v.evidence["exhausted"]) == ["k"]
    assert v.evidence["exhausted"]["k"]["reason"].startswith("ran out of time after 3")
    assert v.summary == "1 of 2 keys could not be decided"
    # an illegal key elsewhere still makes it invalid
    bad = build(*_nasty(), w("p0", "a", 0, 1, key="easy"), r("p1", None, 2, 3, key="easy"))
    assert fake.check(bad, {}).valid is Validity.INVALID


def test_operations_other_than_reads_and_writes_make_their_key_unknown():
    v = check(Spec("p0", "cas", "k", "a", 0, 1), w("p1", "a", 0, 1, key="j"))
    assert v.valid is Validity.UNKNOWN and "'cas'" in v.evidence["exhausted"]["k"]["reason"]


def test_it_is_registered_by_name():
    assert CHECKERS["linearizable"] is Linearizable
    assert make_checker("linearizable", budget_s=1.0) == Linearizable(budget_s=1.0)


# ---- agreement with brute force ------------------------------------------------------------
def brute(ops: list[Spec], start: float = -math.inf, end: float = math.inf) -> bool:
    """Some order of the operations of [start, end] respects real time and register
    semantics, by trying them all. Ops completed before ``start`` leave only an initial value
    (absent or one they wrote); a write that is indeterminate, or in flight at either edge, may
    take effect (by its end if it completed inside) or not."""
    must, may, initial, ends = [], [], {None}, {}
    for o in ops:
        done = o.outcome == "ok"
        if o.outcome == "fail" or o.start > end or (o.f == "read" and not done):
            continue
        if done and o.end < start:
            if o.f == "write":
                initial.add(o.value)
            continue
        inside = done and start <= o.start and o.end <= end
        if o.f == "read":
            if inside:
                must.append(o)
                ends[id(o)] = o.end
            continue
        if o.start < start:
            initial.add(o.value)
        (must if inside else may).append(o)
        ends[id(o)] = o.end if done and o.end <= end else math.inf

    required = {id(o) for o in must}

    def search(left: list[Spec], state: dict) -> bool:
        if not any(id(o) in required for o in left):
            return True  # the optional writes left never happened
        for o in left:
            if any(ends[id(p)] < o.start for p in left if p is not o):
                continue  # something still to place finished before this began
            rest = [p for p in left if p is not o]
            if id(o) not in required and search(rest, state):  # it never took effect
                return True
            if (o.f == "write" or state.get(o.key) == o.value) and search(
                    rest, {**state, o.key: o.value}):
                return True
        return False

    keys = {o.key for o in must + may}
    firsts = [dict.fromkeys(keys, v) for v in initial]
    return any(search(must + may, first) for first in firsts)


@st.composite
def histories(draw, unique: bool = True) -> list[Spec]:
    nproc = draw(st.integers(1, 3))
    keys = ["x", "y"][:draw(st.integers(1, 2))]
    free = [0] * nproc
    ops = []
    for i in range(draw(st.integers(1, 7))):
        p = draw(st.integers(0, nproc - 1))
        start = free[p] + draw(st.integers(0, 3))
        end = start + draw(st.integers(0, 4))
        free[p] = end
        f = draw(st.sampled_from(["write", "read"]))
        if f == "write":
            value = f"v{i}" if unique else f"v{draw(st.integers(0, 3))}"
        else:
            value = draw(st.sampled_from([None, *(f"v{j}" for j in range(7))]))
        outcome = draw(st.sampled_from(["ok", "ok", "ok", "fail", "info", "none"]))
        ops.append(Spec(f"p{p}", f, draw(st.sampled_from(keys)), value, start, end, outcome))
    return ops


def decidable(ops: list[Spec]) -> bool:
    return any(o.outcome == "ok" or (o.f == "write" and o.outcome != "fail") for o in ops)


def agrees_with_brute_force(ops: list[Spec], nemesis: bool) -> None:
    h = build(*ops, nemesis=(1.0, 2.5) if nemesis else ())
    v = Linearizable().check(h, {})
    if not decidable(ops):
        assert v.valid is Validity.UNKNOWN
        return
    expected = brute(ops)
    assert v.valid is (Validity.VALID if expected else Validity.INVALID), (v.summary, ops)
    if not expected:  # the window reported cannot be linearized either
        key = v.evidence["key"]
        mine = [o for o in ops if o.key == key]
        assert not brute(mine, v.evidence["window_start"], v.evidence["window_end"])
        assert len(v.evidence["window"]) <= len(mine)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(histories(), st.booleans())
def test_it_agrees_with_brute_force_on_small_histories(ops, nemesis):
    agrees_with_brute_force(ops, nemesis)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(histories(unique=False), st.booleans())
def test_it_agrees_with_brute_force_even_when_values_repeat(ops, nemesis):
    agrees_with_brute_force(ops, nemesis)
