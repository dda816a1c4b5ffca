from __future__ import annotations

import pytest

from system.breaker import BreakerState, CircuitBreaker

pytestmark = pytest.mark.unit


class Clock:
    now = 0.0


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def breaker(clock):
    return CircuitBreaker(failure_threshold=3, cooldown=2.0, clock=lambda: clock.now)


def test_opens_after_threshold_consecutive_failures(breaker):
    breaker.record_failure()
    breaker.record_failure()
    breaker.record_success()  # resets the count
    breaker.record_failure()
    breaker.record_failure()
    assert breaker.state is BreakerState.CLOSED and breaker.allow()
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN and not breaker.allow()


def test_half_open_lets_one_probe_through_and_success_closes(breaker, clock):
    for _ in range(3):
        breaker.record_failure()
    clock.now = 1.9
    assert not breaker.allow()
    clock.now = 2.0
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.allow() and not breaker.allow()  # exactly one probe
    breaker.record_success()
    assert breaker.state is BreakerState.CLOSED and breaker.allow() and breaker.allow()


def test_failed_probe_reopens_and_restarts_the_cooldown(breaker, clock):
    for _ in range(3):
        breaker.record_failure()
    clock.now = 5.0
    assert breaker.allow()
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN
    clock.now = 6.9
    assert not breaker.allow()
    clock.now = 7.0
    assert breaker.allow()


@pytest.mark.parametrize("kw,msg", [({"failure_threshold": 0}, "failure_threshold"),
                                    ({"cooldown": -1}, "cooldown")])
def test_invalid_parameters(kw, msg):
    with pytest.raises(ValueError, match=msg):
        CircuitBreaker(**kw)
