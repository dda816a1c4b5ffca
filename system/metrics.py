"""Prometheus metrics of a service, served at ``GET /metrics`` in the Prometheus text format.

Each app has its own :class:`Metrics` (its own ``CollectorRegistry``, never the global
default), so several apps in one test process do not collide.

Requests are counted and timed on the way out by :class:`~system.http.RequestIdMiddleware`,
labelled by route *template* (``/data/{key}``, never the raw path), into plain numbers that
:class:`HttpMetrics` turns into families at scrape time. Everything else is read at scrape
time too, from what the services count anyway (the coordinator's ``counts``, the node's
``counters`` and hint table, the registry's membership): the data path pays nothing for it.

=========================================  =======  =========================================
``chaoslab_http_requests_total``           counter  route, method, status
``chaoslab_http_request_duration_seconds`` histo    route, method
``chaoslab_quorum_operations_total``       counter  op (write|read), outcome (ok|quorum_error)
``chaoslab_quorum_restamps_total``         counter  writes stamped again past a newer version
``chaoslab_read_repairs_total``            counter  stale replicas rewritten by read repair
``chaoslab_hints_pending``                 gauge    target (node)
``chaoslab_hints_delivered_total``         counter  records handed off to their owner
``chaoslab_rebalanced_keys_total``         counter  key copies queued for a new owner
``chaoslab_members``                       gauge    status (alive|suspect|dead|left); registry
=========================================  =======  =========================================

A node run with ``--workers`` > 1 is several uvicorn processes, each with its own registry:
``/metrics`` then answers with the counts of whichever worker took the scrape, not of the
node. Prometheus's multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``) would merge them; it is
not set up here, so scrape single-worker nodes.
"""

from __future__ import annotations

import itertools
import logging
import re
import sqlite3
from bisect import bisect_left
from collections.abc import Callable, Iterable, Mapping

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.utils import floatToGoString
from starlette.requests import Request
from starlette.responses import Response

from system.http import ROUTE_KEY

__all__ = ["Metrics", "HttpMetrics", "quorum_families", "node_families", "member_families",
           "endpoint", "CONTENT_TYPE"]

log = logging.getLogger("chaoslab.metrics")

CONTENT_TYPE = CONTENT_TYPE_LATEST
UNMATCHED = "unmatched"  # no route: the raw path would make one label value per bad request
MEMBER_STATUSES = ("alive", "suspect", "dead", "left")
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"})
# a replica answers in well under a millisecond; a gateway with retries in up to seconds
_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
_BUCKET_LABELS = (*(floatToGoString(b) for b in _BUCKETS), "+Inf")
_CONVERTER = re.compile(r"\{(\w+):\w+\}")  # Starlette's "{key:path}" -> "{key}"


class HttpMetrics:
    """Requests by route template, method and status, and their latency: a collector.

    The hot path only bumps plain numbers (one dict look-up, three additions, one bisect:
    under a microsecond, about a third of what prometheus_client's locked children cost);
    the families are built at scrape time. Called on the event loop only: not thread-safe."""

    __slots__ = ("_series", "_templates")

    def __init__(self) -> None:
        # (route, method, status) -> [count, sum of seconds, one count per bucket, then +Inf]
        self._series: dict[tuple[str, str, int], list] = {}
        self._templates: dict[str, str] = {}

    def observe(self, scope: dict, status: int, seconds: float) -> None:
        """Count one served request (called by the request-id middleware)."""
        route = scope.get(ROUTE_KEY)
        if route is None:
            route = self._template(scope.get("route"))
        series = self._series.get((route, scope["method"], status))
        if series is None:
            series = self._new(route, scope["method"], status)
        series[0] += 1
        series[1] += seconds
        series[2 + bisect_left(_BUCKETS, seconds)] += 1  # le: the first bound >= seconds

    def _template(self, route: object) -> str:
        """The template of a Starlette route (it leaves the matched one in the scope)."""
        path = getattr(route, "path", None)
        if path is None:
            return UNMATCHED
        label = self._templates.get(path)
        if label is None:
            label = self._templates[path] = _CONVERTER.sub(r"{\1}", path)
        return label

    def _new(self, route: str, method: str, status: int) -> list:
        if method not in _METHODS:  # h11 accepts any token as a method: bound the labels
            method = "OTHER"
        return self._series.setdefault((route, method, status), [0, 0.0] + [0] * (len(_BUCKETS) + 1))

    def collect(self) -> Iterable[Metric]:
        requests = CounterMetricFamily("chaoslab_http_requests", "HTTP requests served",
                                       labels=["route", "method", "status"])
        latency: dict[tuple[str, str], list] = {}  # statuses merged: [sum, buckets...]
        for (route, method, status), series in list(self._series.items()):
            requests.add_metric([route, method, str(status)], series[0])
            merged = latency.setdefault((route, method), [0.0] * (len(_BUCKETS) + 2))
            for i, value in enumerate(series[1:]):
                merged[i] += value
        histogram = HistogramMetricFamily(
            "chaoslab_http_request_duration_seconds",
            "Time from a request's arrival to its last response byte", labels=["route", "method"])
        for (route, method), merged in latency.items():
            histogram.add_metric([route, method], sum_value=merged[0], buckets=list(
                zip(_BUCKET_LABELS, itertools.accumulate(merged[1:]), strict=True)))
        return [requests, histogram]


class _Scrape:
    """A collector whose families are computed by a function at scrape time."""

    def __init__(self, families: Callable[[], Iterable[Metric]]) -> None:
        self._families = families

    def collect(self) -> Iterable[Metric]:
        return self._families()


class Metrics:
    """The metrics of one service: its own registry, the request metrics, and collectors
    added with :meth:`add` (functions returning metric families, called at each scrape)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.http = HttpMetrics()
        self.registry.register(self.http)

    def add(self, families: Callable[[], Iterable[Metric]]) -> None:
        self.registry.register(_Scrape(families))

    def render(self) -> bytes:
        return generate_latest(self.registry)


def quorum_families(counts: Mapping[str, int]) -> Callable[[], list[Metric]]:
    """Quorum outcomes from a :class:`~system.coordinator.Coordinator`'s ``counts``."""
    def families() -> list[Metric]:
        ops = CounterMetricFamily("chaoslab_quorum_operations",
                                  "Quorum operations coordinated here, by outcome",
                                  labels=["op", "outcome"])
        for op in ("write", "read"):
            for outcome in ("ok", "quorum_error"):
                ops.add_metric([op, outcome], counts.get(f"{op}_{outcome}", 0))
        return [ops,
                CounterMetricFamily("chaoslab_quorum_restamps",
                                    "Writes stamped again past a newer version a replica kept",
                                    value=counts.get("restamps", 0)),
                CounterMetricFamily("chaoslab_read_repairs",
                                    "Stale replicas rewritten with the newest record by a read",
                                    value=counts.get("read_repairs", 0))]
    return families


def node_families(counters: Mapping[str, int],
                  hint_counts: Callable[[], Mapping[str, int]]) -> Callable[[], list[Metric]]:
    """A node's hinted handoff and rebalancing, from its ``counters`` and hint table. A
    target once seen stays in the gauge (at 0) once its hints are delivered."""
    targets: set[str] = set()

    def families() -> list[Metric]:
        pending = GaugeMetricFamily("chaoslab_hints_pending",
                                    "Hinted keys waiting to be handed off, per target node",
                                    labels=["target"])
        try:
            counts = hint_counts()
        except sqlite3.Error as exc:  # the store is closing: the scrape still answers
            log.warning("hints unavailable for /metrics: %s", exc)
            counts = {}
        targets.update(counts)
        for target in sorted(targets):
            pending.add_metric([target], counts.get(target, 0))
        return [pending,
                CounterMetricFamily("chaoslab_hints_delivered",
                                    "Records handed off to the node they were hinted for",
                                    value=counters.get("handed_off", 0)),
                CounterMetricFamily("chaoslab_rebalanced_keys",
                                    "Key copies queued for a new owner after a ring change",
                                    value=counters.get("rebalance_hints", 0))]
    return families


def member_families(statuses: Callable[[], Iterable[str]]) -> Callable[[], list[Metric]]:
    """Members by status (``statuses`` gives one status per member)."""
    def families() -> list[Metric]:
        tally = dict.fromkeys(MEMBER_STATUSES, 0)
        for status in statuses():
            tally[status] = tally.get(status, 0) + 1
        members = GaugeMetricFamily("chaoslab_members", "Members known to the registry, by status",
                                    labels=["status"])
        for status, n in tally.items():
            members.add_metric([status], n)
        return [members]
    return families


def endpoint(metrics: Metrics):
    """The ``GET /metrics`` handler of a Starlette app."""
    async def serve_metrics(request: Request) -> Response:
        return Response(metrics.render(), headers={"content-type": CONTENT_TYPE})
    return serve_metrics
