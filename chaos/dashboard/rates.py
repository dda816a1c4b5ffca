"""Rates from Prometheus counters and histograms: pure functions of two scrapes.

A :class:`Scrape` is what one ``GET /metrics`` of a service said about its HTTP requests
(``chaoslab_http_requests_total`` by route, method and status, and the cumulative buckets of
``chaoslab_http_request_duration_seconds`` by route and method), with the time it was taken.
:func:`traffic` turns the difference between an older and a newer scrape into operations per
second, the share answered with a server error (5xx), and a latency quantile interpolated in
the buckets as Prometheus's ``histogram_quantile`` does. A counter that went down means the
service restarted: the newer scrape then counts from zero.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

__all__ = ["Scrape", "Traffic", "parse_scrape", "traffic", "histogram_quantile", "merge",
           "combine", "Route", "GATEWAY_ROUTES", "REPLICA_ROUTES"]

REQUESTS = "chaoslab_http_requests"
DURATION = "chaoslab_http_request_duration_seconds"

Route = tuple[str, str]  # (method, route template)
# client operations coordinated by a gateway: the registry's, and every node's own
GATEWAY_ROUTES: frozenset[Route] = frozenset({("POST", "/data"), ("GET", "/data/{key}"),
                                              ("POST", "/gateway/data"),
                                              ("GET", "/gateway/data/{key}")})
# what every client (the smart client too) costs a replica
REPLICA_ROUTES: frozenset[Route] = frozenset({("POST", "/internal/write"),
                                              ("POST", "/internal/read")})


@dataclass(frozen=True, slots=True)
class Scrape:
    """One service's HTTP request metrics at time ``at`` (seconds on any monotonic clock)."""

    at: float
    requests: Mapping[tuple[str, str, int], float] = field(default_factory=dict)
    # (method, route) -> ((upper bound, cumulative count), ...) ending with +Inf
    buckets: Mapping[Route, tuple[tuple[float, float], ...]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Traffic:
    """Requests between two scrapes: per second, the share that failed, and the p99."""

    seconds: float
    requests: float
    errors: float
    p99: float | None  # seconds; None without a request

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else 0.0

    @property
    def error_rate(self) -> float | None:
        return self.errors / self.requests if self.requests else None

    def as_json(self) -> dict:
        return {"rate": round(self.rate, 2), "requests": self.requests, "errors": self.errors,
                "error_rate": None if self.error_rate is None else round(self.error_rate, 4),
                "p99_ms": None if self.p99 is None else round(self.p99 * 1000, 3),
                "seconds": round(self.seconds, 3)}


_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')
_REQUESTS_LINE = REQUESTS + "_total{"
_BUCKET_LINE = DURATION + "_bucket{"


def _labels(text: str) -> tuple[dict[str, str], float]:
    """The labels and the value of a sample line's tail (after the opening brace)."""
    body, _, value = text.rpartition("} ")
    return dict(_LABEL.findall(body)), float(value.split(" ", 1)[0])


def parse_scrape(text: str, *, at: float) -> Scrape:
    """A :class:`Scrape` from the Prometheus text format; lines of other families are
    skipped unread (a dashboard parses several scrapes a second, and a full parser costs
    ten times more)."""
    requests: dict[tuple[str, str, int], float] = {}
    buckets: dict[Route, list[tuple[float, float]]] = {}
    for line in text.splitlines():
        if line.startswith(_REQUESTS_LINE):
            labels, value = _labels(line[len(_REQUESTS_LINE):])
            requests[(labels["method"], labels["route"], int(labels["status"]))] = value
        elif line.startswith(_BUCKET_LINE):
            labels, value = _labels(line[len(_BUCKET_LINE):])
            buckets.setdefault((labels["method"], labels["route"]), []).append(
                (float(labels["le"]), value))
    return Scrape(at, requests, {r: tuple(sorted(b)) for r, b in buckets.items()})


def _delta(new: float, old: float | None) -> float:
    """A counter's increase; a counter that went down was reset (the service restarted)."""
    if old is None or new < old:
        return new
    return new - old


def _bucket_delta(new: tuple[tuple[float, float], ...],
                  old: tuple[tuple[float, float], ...] | None) -> list[tuple[float, float]]:
    if not old or len(old) != len(new) or new[-1][1] < old[-1][1]:
        return list(new)  # no earlier scrape of these buckets, or a reset
    return [(le, c - o) for (le, c), (_, o) in zip(new, old, strict=True)]


def merge(series: Iterable[Iterable[tuple[float, float]]]) -> list[tuple[float, float]]:
    """Cumulative buckets of several histograms with the same bounds, added up."""
    total: dict[float, float] = {}
    for buckets in series:
        for le, count in buckets:
            total[le] = total.get(le, 0.0) + count
    return sorted(total.items())


def histogram_quantile(q: float, buckets: Iterable[tuple[float, float]]) -> float | None:
    """The ``q`` quantile of cumulative buckets ``(upper bound, count)`` ending with +Inf,
    interpolated linearly inside its bucket (the first bucket starts at 0); in the +Inf
    bucket, the highest finite bound. None without observations."""
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"a quantile is from 0 to 1, got {q}")
    ordered = sorted(buckets)
    if not ordered or ordered[-1][1] <= 0:
        return None
    rank = q * ordered[-1][1]
    lower, below = 0.0, 0.0
    for le, count in ordered:
        if count >= rank and count > below:
            if math.isinf(le):
                return lower
            return lower + (le - lower) * (rank - below) / (count - below)
        if not math.isinf(le):
            lower = le
        below = count
    return lower


def traffic(old: Scrape | None, new: Scrape, routes: Iterable[Route], *,
            quantile: float = 0.99) -> Traffic | None:
    """The requests on ``routes`` between ``old`` and ``new``; None without an older scrape
    (a rate needs two)."""
    return combine([(old, new)], routes, quantile=quantile)


def combine(pairs: Iterable[tuple[Scrape | None, Scrape]], routes: Iterable[Route],
            *, quantile: float = 0.99) -> Traffic | None:
    """The requests of several services on ``routes``, each between its own two scrapes,
    as one: counts added up, rates over the longest span, the quantile of the merged
    buckets. None when no service has two scrapes yet."""
    wanted = frozenset(routes)
    count = errors = 0.0
    seconds = 0.0
    latency: list[list[tuple[float, float]]] = []
    seen = False
    for old, new in pairs:
        if old is None or new.at <= old.at:
            continue
        seen = True
        seconds = max(seconds, new.at - old.at)
        for (method, route, status), value in new.requests.items():
            if (method, route) in wanted:
                d = _delta(value, old.requests.get((method, route, status)))
                count += d
                if status >= 500:
                    errors += d
        latency.extend(_bucket_delta(b, old.buckets.get(r)) for r, b in new.buckets.items()
                       if r in wanted)
    if not seen:
        return None
    return Traffic(seconds, count, errors, histogram_quantile(quantile, merge(latency)))
