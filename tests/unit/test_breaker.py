"""system/breaker.py: closed -> open -> half-open -> closed/open, on a fake clock."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from system.breaker import BreakerState, CircuitBreaker

from .clock import FakeClock

pytestmark = pytest.mark.unit


@pytest.fixture
def breaker(fake) -> CircuitBreaker:
    return CircuitBreaker(failure_threshold=3, cooldown=2.0, clock=lambda: fake.now)


def trip(b: CircuitBreaker) -> None:
    for _ in range(b.failure_threshold):
        b.record_failure()


def test_defaults():
    b = CircuitBreaker()
    assert b.failure_threshold == 3 and b.cooldown == 1.0
    assert b.state is BreakerState.CLOSED and b.allow()


def test_states_are_strings_for_status_output():
    assert [s.value for s in BreakerState] == ["closed", "open", "half_open"]
    assert BreakerState.HALF_OPEN == "half_open"


def test_closed_until_threshold_consecutive_failures(breaker):
    for _ in range(2):
        breaker.record_failure()
        assert breaker.state is BreakerState.CLOSED and breaker.allow()
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN and not breaker.allow()


def test_a_success_resets_the_failure_count(breaker):
    breaker.record_failure()
    breaker.record_failure()
    breaker.record_success()
    breaker.record_failure()
    breaker.record_failure()
    assert breaker.state is BreakerState.CLOSED and breaker.allow()
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN


def test_open_rejects_every_request_until_the_cooldown_ends(breaker, fake):
    fake.now = 10.0
    trip(breaker)
    for t in (10.0, 10.5, 11.999):
        fake.now = t
        assert breaker.state is BreakerState.OPEN
        assert not breaker.allow() and not breaker.allow()
    fake.now = 12.0  # exactly the cooldown later
    assert breaker.state is BreakerState.HALF_OPEN


def test_half_open_lets_exactly_one_probe_through(breaker, fake):
    trip(breaker)
    fake.now = 2.0
    assert breaker.allow()
    assert [breaker.allow() for _ in range(5)] == [False] * 5
    fake.now = 100.0  # still one probe, however long it takes
    assert not breaker.allow()
    assert breaker.state is BreakerState.HALF_OPEN


def test_reading_the_state_does_not_use_up_the_probe(breaker, fake):
    trip(breaker)
    fake.now = 2.0
    for _ in range(3):
        assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.allow()


def test_probe_success_closes(breaker, fake):
    trip(breaker)
    fake.now = 2.5
    assert breaker.allow()
    breaker.record_success()
    assert breaker.state is BreakerState.CLOSED
    assert all(breaker.allow() for _ in range(5))
    # and the failure count starts again from zero
    breaker.record_failure()
    breaker.record_failure()
    assert breaker.state is BreakerState.CLOSED


def test_probe_failure_reopens_and_restarts_the_cooldown(breaker, fake):
    trip(breaker)
    fake.now = 5.0
    assert breaker.allow()
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN and not breaker.allow()
    fake.now = 6.999
    assert not breaker.allow()  # the cooldown counts from the failed probe, not from 0
    fake.now = 7.0
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.allow() and not breaker.allow()  # a fresh single probe


def test_a_late_failure_while_open_restarts_the_cooldown(breaker, fake):
    trip(breaker)
    fake.now = 1.5
    breaker.record_failure()  # an answer to a request sent before the breaker opened
    fake.now = 3.0
    assert breaker.state is BreakerState.OPEN
    fake.now = 3.5
    assert breaker.state is BreakerState.HALF_OPEN


def test_a_late_success_while_open_closes(breaker, fake):
    trip(breaker)
    fake.now = 0.5
    breaker.record_success()
    assert breaker.state is BreakerState.CLOSED and breaker.allow()


def test_threshold_one_opens_on_the_first_failure(fake):
    b = CircuitBreaker(failure_threshold=1, cooldown=1.0, clock=lambda: fake.now)
    b.record_failure()
    assert b.state is BreakerState.OPEN


def test_zero_cooldown_goes_straight_to_half_open(fake):
    b = CircuitBreaker(failure_threshold=1, cooldown=0.0, clock=lambda: fake.now)
    b.record_failure()
    assert b.state is BreakerState.HALF_OPEN
    assert b.allow() and not b.allow()


def test_breakers_are_independent(fake):
    a = CircuitBreaker(failure_threshold=1, clock=lambda: fake.now)
    b = CircuitBreaker(failure_threshold=1, clock=lambda: fake.now)
    a.record_failure()
    assert a.state is BreakerState.OPEN and b.state is BreakerState.CLOSED


@pytest.mark.parametrize("kw,message", [
    ({"failure_threshold": 0}, "failure_threshold must be at least 1, got 0"),
    ({"failure_threshold": -3}, "failure_threshold must be at least 1, got -3"),
    ({"cooldown": -1}, "cooldown must not be negative, got -1"),
    ({"cooldown": -0.001}, "cooldown must not be negative"),
])
def test_invalid_parameters_are_rejected_with_the_value(kw, message):
    with pytest.raises(ValueError, match=message):
        CircuitBreaker(**kw)


class ModelBreaker:
    """The documented behaviour, written independently of the implementation."""

    def __init__(self, threshold: int, cooldown: float) -> None:
        self.threshold, self.cooldown = threshold, cooldown
        self.failures, self.opened_at, self.probe_out = 0, None, False

    def state(self, now: float) -> str:
        if self.opened_at is None:
            return "closed"
        return "half_open" if now - self.opened_at >= self.cooldown else "open"

    def allow(self, now: float) -> bool:
        s = self.state(now)
        if s == "half_open" and not self.probe_out:
            self.probe_out = True
            return True
        return s == "closed"

    def success(self) -> None:
        self.failures, self.opened_at, self.probe_out = 0, None, False

    def failure(self, now: float) -> None:
        self.probe_out = False
        if self.opened_at is not None:
            self.opened_at = now
        else:
            self.failures += 1
            if self.failures >= self.threshold:
                self.opened_at = now


actions = st.lists(st.one_of(
    st.tuples(st.just("wait"), st.sampled_from([0.1, 0.5, 1.0, 1.5, 2.0, 3.0])),
    st.tuples(st.sampled_from(["allow", "ok", "fail"]), st.just(0.0)),
), max_size=60)


@given(st.integers(1, 4), st.sampled_from([0.0, 1.0, 2.0]), actions)
@settings(max_examples=120, deadline=None)
def test_breaker_follows_the_documented_state_machine(threshold, cooldown, plan):
    fake = FakeClock()
    b = CircuitBreaker(failure_threshold=threshold, cooldown=cooldown, clock=lambda: fake.now)
    model = ModelBreaker(threshold, cooldown)
    for action, dt in plan:
        if action == "wait":
            fake.now += dt
        elif action == "allow":
            assert b.allow() == model.allow(fake.now)
        elif action == "ok":
            b.record_success()
            model.success()
        else:
            b.record_failure()
            model.failure(fake.now)
        assert b.state == model.state(fake.now)


def test_every_transition_is_told_as_it_is_seen():
    fake = FakeClock()
    seen = []
    b = CircuitBreaker(failure_threshold=2, cooldown=1.0, clock=lambda: fake.now,
                       on_change=lambda old, new: seen.append((str(old), str(new))))
    b.record_failure()
    b.record_failure()  # the threshold: open
    assert not b.allow()
    fake.now += 1.0
    assert b.allow()  # the probe: half-open
    b.record_failure()  # the probe failed: open again
    fake.now += 1.0
    assert b.allow()
    b.record_success()  # closed
    b.record_success()  # nothing moves
    assert seen == [("closed", "open"), ("open", "half_open"), ("half_open", "open"),
                    ("open", "half_open"), ("half_open", "closed")]


@given(st.integers(1, 4), st.sampled_from([0.0, 1.0, 2.0]), actions)
@settings(max_examples=120, deadline=None)
def test_the_told_transitions_follow_the_state_machine(threshold, cooldown, plan):
    """Consecutive transitions chain (each starts where the last ended), and none is a
    non-move; the state machine's edges only."""
    fake = FakeClock()
    seen = []
    b = CircuitBreaker(failure_threshold=threshold, cooldown=cooldown, clock=lambda: fake.now,
                       on_change=lambda old, new: seen.append((old, new)))
    for action, dt in plan:
        if action == "wait":
            fake.now += dt
        elif action == "allow":
            b.allow()
        elif action == "ok":
            b.record_success()
        else:
            b.record_failure()
    legal = {(BreakerState.CLOSED, BreakerState.OPEN), (BreakerState.OPEN, BreakerState.HALF_OPEN),
             (BreakerState.HALF_OPEN, BreakerState.OPEN), (BreakerState.HALF_OPEN, BreakerState.CLOSED),
             (BreakerState.OPEN, BreakerState.CLOSED)}  # a late success while open
    assert all(move in legal for move in seen)
    assert all(a[1] == b_[0] for a, b_ in zip(seen, seen[1:], strict=False))
