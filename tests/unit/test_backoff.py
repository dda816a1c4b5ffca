from __future__ import annotations

import itertools
import random
import statistics

import pytest
from hypothesis import given
from hypothesis import strategies as st

from system.backoff import Backoff

pytestmark = pytest.mark.unit


def take(b: Backoff, seed: int, n: int = 12) -> list[float]:
    return list(itertools.islice(b.delays(random.Random(seed)), n))


@given(st.integers(0, 2**32))
def test_full_jitter_within_exponential_ceiling(seed):
    b = Backoff(0.01, 0.5, "full")
    for k, d in enumerate(take(b, seed)):
        assert 0 <= d <= min(0.5, 0.01 * 2**k)


@given(st.integers(0, 2**32))
def test_decorrelated_within_base_and_cap(seed):
    for d in take(Backoff(0.01, 0.5, "decorrelated"), seed, 30):
        assert 0.01 <= d <= 0.5


def test_no_jitter_is_the_same_for_everyone():
    b = Backoff(0.01, 0.5, "none")
    assert take(b, 1) == take(b, 2) == [min(0.5, 0.01 * 2**k) for k in range(12)]


def test_seeded_series_repeat_and_different_seeds_differ():
    b = Backoff(0.01, 0.5, "full")
    assert take(b, 7) == take(b, 7)
    assert take(b, 7) != take(b, 8)


def test_full_jitter_spreads_clients_uniformly():
    """Mean of attempt 4 over many clients is about half its ceiling: the herd is spread."""
    b = Backoff(0.01, 10.0, "full")
    draws = [take(b, seed, 5)[4] for seed in range(2000)]
    assert abs(statistics.mean(draws) - 0.08) < 0.008
    assert statistics.pstdev(draws) > 0.03


@pytest.mark.parametrize("kw,msg", [({"jitter": "equal"}, "unknown jitter"),
                                    ({"base": 0}, "base"), ({"base": 2, "cap": 1}, "base")])
def test_invalid_parameters(kw, msg):
    with pytest.raises(ValueError, match=msg):
        Backoff(**kw)
