"""system/backoff.py: exponential backoff with full, decorrelated or no jitter."""

from __future__ import annotations

import dataclasses
import itertools
import random
import statistics

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from system.backoff import JITTER_KINDS, Backoff

pytestmark = pytest.mark.unit

seeds = st.integers(0, 2**32)
bases = st.sampled_from([0.001, 0.01, 0.05, 0.1, 1.0])
cap_factors = st.sampled_from([1, 1.5, 8, 50, 10_000])


def take(b: Backoff, seed: int, n: int = 12) -> list[float]:
    return list(itertools.islice(b.delays(random.Random(seed)), n))


def ceiling(b: Backoff, attempt: int) -> float:
    return min(b.cap, b.base * 2**attempt)


def test_defaults():
    b = Backoff()
    assert (b.base, b.cap, b.jitter) == (0.01, 0.5, "full")
    assert JITTER_KINDS == ("full", "decorrelated", "none")


def test_backoff_is_a_frozen_value():
    with pytest.raises(dataclasses.FrozenInstanceError):
        Backoff().cap = 2  # type: ignore[misc]


@pytest.mark.parametrize("jitter", JITTER_KINDS)
@settings(deadline=None)
@given(seed=seeds)
def test_a_seeded_rng_gives_a_reproducible_series(jitter, seed):
    b = Backoff(0.01, 0.5, jitter)
    assert take(b, seed, 30) == take(b, seed, 30)


@pytest.mark.parametrize("jitter", ["full", "decorrelated"])
def test_different_seeds_give_different_series(jitter):
    b = Backoff(0.01, 10.0, jitter)
    series = {tuple(take(b, seed, 8)) for seed in range(50)}
    assert len(series) == 50


@settings(deadline=None)
@given(seeds, bases, cap_factors)
def test_full_jitter_stays_within_the_exponential_ceiling(seed, base, factor):
    b = Backoff(base, base * factor, "full")
    for k, d in enumerate(take(b, seed, 40)):
        assert 0 <= d <= ceiling(b, k)


@settings(deadline=None)
@given(seeds, bases, cap_factors)
def test_decorrelated_stays_within_base_and_cap_and_three_times_the_last(seed, base, factor):
    b = Backoff(base, base * factor, "decorrelated")
    previous = base
    for d in take(b, seed, 40):
        assert base <= d <= b.cap
        assert d <= 3 * previous
        previous = d


@settings(deadline=None)
@given(bases, cap_factors)
def test_no_jitter_is_the_deterministic_exponential_ceiling(base, factor):
    b = Backoff(base, base * factor, "none")
    assert take(b, 1, 40) == take(b, 2, 40) == [ceiling(b, k) for k in range(40)]


def test_no_jitter_draws_nothing_from_the_rng():
    rng = random.Random(5)
    state = rng.getstate()
    list(itertools.islice(Backoff(jitter="none").delays(rng), 20))
    assert rng.getstate() == state


def test_no_jitter_doubles_then_stays_at_the_cap():
    assert take(Backoff(0.01, 0.1, "none"), 0, 6) == pytest.approx([0.01, 0.02, 0.04, 0.08, 0.1, 0.1])


@pytest.mark.parametrize("jitter", JITTER_KINDS)
def test_the_series_is_endless_and_never_overflows(jitter):
    b = Backoff(1.0, 1e300, jitter)
    delays = take(b, 3, 500)
    assert len(delays) == 500 and all(0 <= d <= 1e300 for d in delays)


def test_full_jitter_spreads_clients_uniformly_over_the_ceiling():
    """For each attempt k the mean over many clients is about half the ceiling and the draws
    fill the whole range: clients that failed together do not retry together."""
    b = Backoff(0.01, 10.0, "full")
    runs = [take(b, seed, 6) for seed in range(3000)]
    for k in range(6):
        draws = [run[k] for run in runs]
        top = ceiling(b, k)
        assert statistics.mean(draws) == pytest.approx(top / 2, rel=0.05)
        assert statistics.pstdev(draws) == pytest.approx(top / 12**0.5, rel=0.08)  # uniform
        assert min(draws) < 0.02 * top and max(draws) > 0.98 * top
        below_half = sum(d < top / 2 for d in draws) / len(draws)
        assert below_half == pytest.approx(0.5, abs=0.04)


def test_full_jitter_at_the_cap_is_spread_over_the_cap():
    b = Backoff(0.01, 0.05, "full")
    draws = [take(b, seed, 10)[9] for seed in range(3000)]
    assert max(draws) <= 0.05
    assert statistics.mean(draws) == pytest.approx(0.025, rel=0.05)


def test_decorrelated_grows_from_base_towards_the_cap():
    b = Backoff(0.01, 1.0, "decorrelated")
    runs = [take(b, seed, 12) for seed in range(1000)]
    means = [statistics.mean(run[k] for run in runs) for k in range(12)]
    assert means[0] < means[3] < means[11]
    assert 0.3 < means[11] < 1.0  # far above base, held down by the cap


@pytest.mark.parametrize("kw,message", [
    ({"jitter": "equal"}, "unknown jitter 'equal': use one of full, decorrelated, none"),
    ({"jitter": ""}, "unknown jitter ''"),
    ({"base": 0}, "need 0 < base <= cap, got base=0 cap=0.5"),
    ({"base": -0.1}, "need 0 < base <= cap, got base=-0.1"),
    ({"base": 2, "cap": 1}, "need 0 < base <= cap, got base=2 cap=1"),
    ({"base": 0.01, "cap": 0}, "need 0 < base <= cap"),
    ({"base": float("nan")}, "need 0 < base <= cap"),
])
def test_invalid_parameters_are_rejected_with_the_fix(kw, message):
    with pytest.raises(ValueError) as err:
        Backoff(**kw)
    assert message in str(err.value)


def test_base_equal_to_cap_is_allowed_and_constant_without_jitter():
    assert take(Backoff(0.2, 0.2, "none"), 0, 5) == [0.2] * 5
    assert all(d == 0.2 for d in take(Backoff(0.2, 0.2, "decorrelated"), 0, 5))
