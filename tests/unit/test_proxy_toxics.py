"""Toxic values and states, with no sockets and no sleeps: time is passed in."""

from __future__ import annotations

import random

import pytest

from chaos.proxy import errors
from chaos.proxy.rng import affected, draw_rng
from chaos.proxy.toxics import CLOSE, REGISTRY, RESET, ActiveToxic, ToxicSpec

pytestmark = pytest.mark.unit


class Recorder:
    """``Effects`` that records scheduled actions."""

    def __init__(self) -> None:
        self.scheduled: list[tuple[float, str]] = []

    def schedule(self, at: float, action: str):
        self.scheduled.append((at, action))
        return self

    def cancel(self) -> None:
        pass


def active(body: dict, *, seed: int = 1, now: float = 0.0, fx=None) -> ActiveToxic:
    return ActiveToxic(ToxicSpec.parse(body), random.Random(seed), now, fx or Recorder())


def test_registry_has_every_toxiproxy_type():
    assert set(REGISTRY) == {"latency", "bandwidth", "slow_close", "timeout", "reset_peer",
                             "slicer", "limit_data", "noop"}


def test_parse_defaults_like_toxiproxy():
    spec = ToxicSpec.parse({"type": "latency"})
    assert (spec.name, spec.stream, spec.toxicity) == ("latency_downstream", "downstream", 1.0)
    assert spec.to_json()["attributes"] == {"latency": 0, "jitter": 0}


@pytest.mark.parametrize("body, message", [
    ({"type": "x"}, "invalid toxic type"),
    ({"type": "latency", "stream": "up"}, "stream was invalid"),
    ({"type": "latency", "attributes": {"latency": -1}}, "must not be negative"),
    ({"type": "latency", "attributes": {"latency": "1"}}, "must be a number"),
    ({"type": "latency", "toxicity": 1.5}, "between 0 and 1"),
    ({"type": "slicer", "attributes": {"average_size": 5, "size_variation": 5}}, "less than"),
])
def test_parse_rejects_bad_input_with_400(body, message):
    with pytest.raises(errors.ApiError) as err:
        ToxicSpec.parse(body)
    assert err.value.status == 400 and message in err.value.message


def test_update_merges_attributes_and_keeps_identity():
    spec = ToxicSpec.parse({"type": "latency", "name": "l", "attributes": {"latency": 5}})
    updated = spec.updated({"attributes": {"jitter": 2}, "toxicity": 0.25, "type": "bandwidth"})
    assert updated.toxic.attributes() == {"latency": 5, "jitter": 2}
    assert (updated.name, updated.type, updated.toxicity) == ("l", "latency", 0.25)


def test_latency_counts_from_arrival_and_jitter_stays_in_bounds():
    toxic = active({"type": "latency", "attributes": {"latency": 50, "jitter": 10}})
    delays = [toxic.process([(t, b"x", t)], Recorder())[0][0] - t for t in range(200)]
    assert all(0.040 - 1e-9 <= d < 0.060 for d in delays) and len({round(d, 3) for d in delays}) > 5


def chain(toxics: list[ActiveToxic], data: bytes, now: float) -> list[tuple]:
    """Run ``data`` through ``toxics`` in order, as a link does."""
    chunks = [(now, data, now)]
    for toxic in toxics:
        chunks = toxic.process(chunks, Recorder())
    return chunks


def test_latency_toxics_in_a_row_add_up():
    first = active({"type": "latency", "name": "a", "attributes": {"latency": 150}})
    second = active({"type": "latency", "name": "b", "attributes": {"latency": 150}})
    [(ready, data, _)] = chain([first, second], b"x", 10.0)
    assert data == b"x" and ready == pytest.approx(10.3)


def test_latency_after_bandwidth_counts_from_arrival_like_toxiproxy():
    # Toxiproxy's bandwidth toxic keeps the chunk's timestamp: a later latency absorbs its wait.
    bandwidth = active({"type": "bandwidth", "attributes": {"rate": 1}})  # 1 byte per ms
    latency = active({"type": "latency", "attributes": {"latency": 100}})
    [(ready, _, _)] = chain([bandwidth, latency], b"x" * 40, 0.0)
    assert ready == pytest.approx(0.100)
    [(ready, _, _)] = chain([bandwidth, latency], b"x" * 50, 1.0)
    assert ready == pytest.approx(1.100)


def test_bandwidth_schedules_bytes_at_the_rate():
    toxic = active({"type": "bandwidth", "attributes": {"rate": 100}})  # 100 KB/s
    out = toxic.process([(0.0, b"x" * 50_000, 0.0)], Recorder())
    assert sum(len(d) for _, d, _ in out) == 50_000
    assert max(len(d) for _, d, _ in out) == 10_000  # 100 ms worth per piece
    assert out[-1][0] == pytest.approx(0.5)


def test_slicer_covers_every_byte_in_order():
    toxic = active({"type": "slicer", "attributes": {"average_size": 10, "size_variation": 4,
                                                     "delay": 100}})
    data = bytes(range(256)) * 4
    out = toxic.process([(1.0, data, 1.0)], Recorder())
    assert b"".join(d for _, d, _ in out) == data
    assert all(len(d) <= 14 for _, d, _ in out)
    assert out[1][0] - out[0][0] == pytest.approx(100e-6)


def test_limit_data_truncates_then_closes_and_drops_the_rest():
    toxic = active({"type": "limit_data", "attributes": {"bytes": 5}})
    assert toxic.process([(0.0, b"abc", 0.0)], Recorder()) == [(0.0, b"abc", 0.0)]
    assert toxic.process([(1.0, b"defg", 1.0)], Recorder()) == [(1.0, b"de", 1.0),
                                                                (1.0, CLOSE, 1.0)]
    assert toxic.process([(2.0, b"h", 2.0)], Recorder()) == []


def test_timeout_drops_data_schedules_close_and_removal_closes():
    fx = Recorder()
    toxic = active({"type": "timeout", "attributes": {"timeout": 300}}, now=10.0, fx=fx)
    assert fx.scheduled == [(10.3, CLOSE)]
    assert toxic.process([(10.1, b"x", 10.1)], fx) == [] and toxic.on_eof(10.2, fx)
    toxic.stop(11.0, fx)
    assert fx.scheduled[-1] == (11.0, CLOSE)


def test_reset_peer_starts_its_clock_on_data():
    fx = Recorder()
    toxic = active({"type": "reset_peer", "attributes": {"timeout": 100}}, fx=fx)
    assert fx.scheduled == []
    assert toxic.process([(5.0, b"x", 4.0)], fx) == []
    assert fx.scheduled == [(5.1, RESET)]  # from when data reached it, as in Toxiproxy


def test_toxicity_zero_is_a_noop_and_slow_close_delays_eof():
    assert not active({"type": "latency", "toxicity": 0.0,
                       "attributes": {"latency": 99}}).affected
    assert active({"type": "slow_close", "attributes": {"delay": 250}}).eof_delay() == 0.25


def test_draws_are_a_pure_function_of_seed_proxy_toxic_and_ordinal():
    a = [draw_rng(3, "p", "t", i).random() for i in range(5)]
    assert a == [draw_rng(3, "p", "t", i).random() for i in range(5)]
    assert a != [draw_rng(4, "p", "t", i).random() for i in range(5)]
    assert a != [draw_rng(3, "q", "t", i).random() for i in range(5)]
    hits = sum(affected(9, "p", "t", i, 0.5) for i in range(1000))
    assert 430 <= hits <= 570
