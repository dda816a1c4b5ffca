"""The dashboard's data collection: rates and p99 from two Prometheus scrapes, the ring's
arcs, breaker summaries, where the cluster is, the live files a run publishes, one poll of a
cluster through httpx's MockTransport, and the terminal view's frame."""

from __future__ import annotations

import asyncio
import math
import os

import httpx
import orjson
import pytest
from rich.console import Console

from chaos.dashboard import Collector, NoCluster, Target, TargetError, find_target
from chaos.dashboard.collect import FetchError, breaker_summary, ring_arcs
from chaos.dashboard.rates import (
    GATEWAY_ROUTES,
    REPLICA_ROUTES,
    Scrape,
    combine,
    histogram_quantile,
    parse_scrape,
    traffic,
)
from chaos.dashboard.terminal import render
from chaos.faults import Kill
from chaos.history import History
from chaos.live import BreakerBoard, LiveStatus, read_breakers, read_live
from chaos.nemesis import Nemesis, Schedule
from chaos.testing import FakeCluster
from system.metrics import HttpMetrics, Metrics
from system.ring import HashRing

pytestmark = pytest.mark.unit

INF = math.inf


def served(metrics: HttpMetrics, route: str, method: str, status: int, seconds: float,
           times: int = 1) -> None:
    for _ in range(times):
        metrics.observe({"chaoslab.route": route, "method": method}, status, seconds)


def scrape_of(metrics: Metrics, at: float) -> Scrape:
    return parse_scrape(metrics.render().decode(), at=at)


# ---- quantiles ---------------------------------------------------------------------------
def test_the_quantile_is_interpolated_inside_its_bucket():
    buckets = [(0.001, 0), (0.005, 100), (0.01, 100), (INF, 100)]
    assert histogram_quantile(0.99, buckets) == pytest.approx(0.001 + 0.004 * 0.99)
    assert histogram_quantile(0.5, buckets) == pytest.approx(0.003)


def test_the_quantile_in_the_inf_bucket_is_the_highest_finite_bound():
    assert histogram_quantile(0.99, [(0.1, 0), (5.0, 1), (INF, 100)]) == 5.0


def test_no_observation_no_quantile():
    assert histogram_quantile(0.99, [(0.1, 0), (INF, 0)]) is None
    assert histogram_quantile(0.99, []) is None
    with pytest.raises(ValueError, match="from 0 to 1"):
        histogram_quantile(99, [(INF, 1)])


# ---- rates from two scrapes -------------------------------------------------------------
def test_rate_error_share_and_p99_come_from_the_difference_of_two_scrapes():
    m = Metrics()
    served(m.http, "/internal/write", "POST", 200, 0.0003, times=50)  # before: not counted
    before = scrape_of(m, at=10.0)
    served(m.http, "/internal/write", "POST", 200, 0.003, times=97)
    served(m.http, "/internal/read", "POST", 500, 0.2, times=3)
    served(m.http, "/heartbeat", "POST", 200, 0.001, times=1000)  # not a replica route
    after = scrape_of(m, at=10.5)
    t = traffic(before, after, REPLICA_ROUTES)
    assert t.requests == 100 and t.errors == 3
    assert t.rate == pytest.approx(200.0)  # 100 requests in 0.5 s
    assert t.error_rate == pytest.approx(0.03)
    # rank 99 of 100: the 2nd of the 3 slow ones, inside the (0.1, 0.25] bucket
    assert 0.1 < t.p99 <= 0.25
    assert t.as_json()["p99_ms"] == pytest.approx(t.p99 * 1000, abs=1e-3)


def test_the_lean_parser_reads_what_prometheus_client_s_parser_reads():
    from prometheus_client.parser import text_string_to_metric_families

    m = Metrics()
    served(m.http, "/data/{key}", "GET", 404, 0.0002, times=3)
    served(m.http, "/internal/read", "POST", 503, 7.0)  # in the +Inf bucket
    text = m.render().decode()
    scrape = parse_scrape(text, at=0.0)
    requests, buckets = {}, {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == "chaoslab_http_requests_total":
                requests[(s.labels["method"], s.labels["route"], int(s.labels["status"]))] = s.value
            elif s.name == "chaoslab_http_request_duration_seconds_bucket":
                buckets.setdefault((s.labels["method"], s.labels["route"]), []).append(
                    (float(s.labels["le"]), s.value))
    assert scrape.requests == requests == {("GET", "/data/{key}", 404): 3,
                                           ("POST", "/internal/read", 503): 1}
    assert scrape.buckets == {r: tuple(sorted(b)) for r, b in buckets.items()}
    assert scrape.buckets[("POST", "/internal/read")][-1] == (INF, 1)


def test_a_rate_needs_two_scrapes():
    m = Metrics()
    served(m.http, "/data", "POST", 200, 0.01)
    assert traffic(None, scrape_of(m, at=1.0), GATEWAY_ROUTES) is None


def test_a_counter_that_went_down_is_a_restart_counted_from_zero():
    old, new = Metrics(), Metrics()
    served(old.http, "/internal/read", "POST", 200, 0.001, times=500)
    served(new.http, "/internal/read", "POST", 200, 0.001, times=20)  # the restarted process
    t = traffic(scrape_of(old, at=0.0), scrape_of(new, at=1.0), REPLICA_ROUTES)
    assert t.requests == 20 and t.rate == 20.0
    assert t.p99 is not None and t.p99 <= 0.001


def test_several_services_add_up_and_their_buckets_merge():
    a, b = Metrics(), Metrics()
    pairs = []
    for m, status in ((a, 200), (b, 503)):
        before = scrape_of(m, at=0.0)
        served(m.http, "/data", "POST", status, 0.02, times=10)
        pairs.append((before, scrape_of(m, at=2.0)))
    t = combine(pairs, GATEWAY_ROUTES)
    assert (t.requests, t.errors, t.rate, t.error_rate) == (20, 10, 10.0, 0.5)
    assert 0.01 < t.p99 <= 0.025
    assert combine([(None, pairs[0][1])], GATEWAY_ROUTES) is None


# ---- the ring and the breakers ----------------------------------------------------------
def test_ring_arcs_give_the_ring_s_own_shares():
    nodes = ["node-1", "node-2", "node-3", "node-4"]
    arcs = ring_arcs(nodes, 16)
    assert len(arcs) == 64 and arcs == sorted(arcs)
    share = dict.fromkeys(nodes, 0.0)
    prev = arcs[-1][0] - 1
    for pos, owner in arcs:
        share[owner] += pos - prev
        prev = pos
    expected = HashRing(nodes, vnodes=16).ownership()
    assert {n: round(s, 4) for n, s in share.items()} == pytest.approx(expected, abs=1e-4)


def test_breakers_per_node_count_each_client_and_say_the_worst():
    boards = [{"breakers": {"node-1": {"state": "open"}}},
              {"breakers": {"node-1": {"state": "half_open"}, "node-2": {"state": "closed"}}}]
    summary = breaker_summary(boards, ["node-1", "node-2", "node-3"])
    assert summary["node-1"] == {"state": "open", "clients": 2,
                                 "counts": {"closed": 0, "half_open": 1, "open": 1}}
    assert summary["node-3"]["state"] == "closed" and summary["node-3"]["counts"]["closed"] == 2
    assert breaker_summary([], ["node-1"])["node-1"]["state"] is None


# ---- where the cluster is ---------------------------------------------------------------
def test_the_target_comes_from_the_registry_option_up_s_state_or_a_running_scenario(tmp_path):
    with pytest.raises(NoCluster, match="chaoslab up"):
        find_target(cwd=tmp_path)
    with pytest.raises(TargetError, match="not an http:// URL"):
        find_target(registry="127.0.0.1:5000", cwd=tmp_path)
    with pytest.raises(TargetError, match="no live.json"):
        find_target(run=tmp_path, cwd=tmp_path)
    assert find_target(registry="http://127.0.0.1:5000/", cwd=tmp_path).registry == \
        "http://127.0.0.1:5000"

    run_dir = tmp_path / "reports" / "latest"
    run_dir.mkdir(parents=True)
    (run_dir / "live.json").write_bytes(orjson.dumps({
        "pid": os.getpid(), "scenario": "kill-one", "started": 1.0,
        "registry_direct": "http://127.0.0.1:7001", "nodes": {"node-1": "http://127.0.0.1:7002"}}))
    found = find_target(cwd=tmp_path)  # found among the usual artifact folders
    assert (found.registry, found.run_dir, found.direct) == ("http://127.0.0.1:7001", run_dir, True)

    state = tmp_path / ".chaoslab" / "state.json"
    state.parent.mkdir()
    state.write_bytes(orjson.dumps({"registry_direct": "http://127.0.0.1:6000",
                                    "nodes": {"node-1": "http://127.0.0.1:6001"}}))
    up = find_target(cwd=tmp_path)  # `up` wins over a scenario found by looking around
    assert (up.registry, up.run_dir, up.direct) == ("http://127.0.0.1:6000", None, False)
    assert find_target(run=run_dir, cwd=tmp_path).registry == "http://127.0.0.1:7001"


# ---- what a run publishes ---------------------------------------------------------------
def test_the_live_status_follows_the_nemesis_faults(tmp_path):
    (tmp_path / "breakers-1.json").write_text("{}")  # an earlier run's client: removed
    now = [100.0]
    rt = FakeCluster()
    schedule = Schedule.of((Kill("node-2"), 2, 5))
    live = LiveStatus(tmp_path, rt, scenario="kill-one", seed=7, schedule=schedule,
                      wall=lambda: now[0])
    assert not list(tmp_path.glob("breakers-*.json"))
    said = []
    nem = Nemesis(rt, History(), on_event=live.relay(said.append))
    live.watch(nem)
    data = read_live(tmp_path)
    assert data["running"] and data["faults"] == [] and data["scenario"] == "kill-one"
    assert data["nodes"]["node-1"] == "http://node-1"
    nem.apply(schedule.steps[0].fault, step=0)
    data = read_live(tmp_path)
    assert said == ["applied kill node-2"]
    assert data["faults"] == [{"fault": "kill node-2", "kind": "kill", "step": 0,
                               "applied_at": 100.0, "heals_at": 105.0}]
    nem.heal()
    assert read_live(tmp_path)["faults"] == []


def test_a_breaker_board_is_read_back_while_its_process_lives(tmp_path):
    board = BreakerBoard(tmp_path, client="event:smart-client-1", threshold=3, cooldown=1.0,
                         wall=lambda: 5.0)
    board.moved("node-2", "closed", "open")
    [read] = read_breakers(tmp_path)
    assert read["breakers"] == {"node-2": {"state": "open", "since": 5.0}}
    assert read["threshold"] == 3
    (tmp_path / "breakers-999999999.json").write_bytes(orjson.dumps({"pid": 999999999}))
    assert len(read_breakers(tmp_path)) == 1  # a client that is gone is not shown


# ---- one poll, through a fake HTTP seam ------------------------------------------------
class FakeServices:
    """A registry and two nodes answering /cluster-status, /stats and /metrics in memory;
    ``fetch`` is the collector's HTTP seam."""

    def __init__(self) -> None:
        self.metrics = {"registry": Metrics(), "node-1": Metrics(), "node-2": Metrics()}
        self.status = {
            "health": "degraded",
            "nodes": [{"id": "node-1", "address": "127.0.0.1:7001", "status": "alive",
                       "seconds_since_heartbeat": 0.2, "incarnation": 1},
                      {"id": "node-2", "address": "127.0.0.1:7002", "status": "dead",
                       "seconds_since_heartbeat": 4.0, "incarnation": 1}],
            "settings": {"n": 2, "w": 1, "r": 1, "vnodes": 8, "heartbeat_interval": 0.5,
                         "suspect_after": 2, "dead_after": 3},
            "ring": {"nodes": ["node-1", "node-2"],
                     "ownership": HashRing(["node-1", "node-2"], vnodes=8).ownership()},
        }
        self.down = {"node-2"}
        self.asked: list[str] = []

    async def fetch(self, url: str, timeout: float) -> str:
        self.asked.append(url)
        parts = httpx.URL(url)
        name = {7000: "registry", 7001: "node-1", 7002: "node-2"}[parts.port]
        if name in self.down:
            raise FetchError("ConnectionRefusedError: connection refused")
        if parts.path == "/metrics":
            return self.metrics[name].render().decode()
        if parts.path == "/cluster-status":
            return orjson.dumps(self.status).decode()
        if parts.path == "/stats":
            return orjson.dumps({"keys": 42, "hints": {"node-2": 5}}).decode()
        raise FetchError("HTTP 404")


def test_a_poll_gives_tiles_ring_and_rates_between_polls():
    services = FakeServices()
    now = [0.0]
    target = Target("http://127.0.0.1:7000", source="test")

    async def two_polls():
        collector = Collector(target, fetch=services.fetch, clock=lambda: now[0],
                              wall=lambda: 1e9)
        first = await collector.poll()
        served(services.metrics["registry"].http, "/data", "POST", 200, 0.004, times=30)
        served(services.metrics["registry"].http, "/data", "POST", 503, 0.3, times=10)
        served(services.metrics["node-1"].http, "/internal/write", "POST", 200, 0.0004, times=40)
        now[0] = 0.5
        second = await collector.poll()
        return first, second

    first, snap = asyncio.run(two_polls())
    assert first["traffic"]["gateway"] is None  # one scrape: no rate yet
    n1, n2 = snap["nodes"]
    assert (n1["id"], n1["status"], n1["reachable"], n1["keys"], n1["hints_pending"]) == (
        "node-1", "alive", True, 42, 5)
    assert (n2["status"], n2["reachable"], n2["traffic"]) == ("dead", False, None)
    assert n1["url"] == "http://127.0.0.1:7001" and n1["vnodes"] == 8
    assert n1["share"] + n2["share"] == pytest.approx(1.0, abs=1e-3)
    assert len(snap["ring"]["arcs"]) == 16
    gw = snap["traffic"]["gateway"]
    assert (gw["rate"], gw["error_rate"]) == (80.0, 0.25)
    assert 250 < gw["p99_ms"] <= 500
    assert n1["traffic"]["rate"] == 80.0 and snap["traffic"]["replica"]["requests"] == 40
    assert snap["faults"] == [] and snap["run"] is None and snap["breakers"]["clients"] == 0
    orjson.dumps(snap)  # plain data, ready for the page
    # /stats (a scan of the node's store) once in `stats_every`, /metrics on every poll
    assert [u.rpartition("/")[2] for u in services.asked if ":7001" in u].count("stats") == 1
    assert [u.rpartition("/")[2] for u in services.asked if ":7001" in u].count("metrics") == 2

    console = Console(record=True, width=160, color_system=None)
    console.print(render(snap))
    frame = console.export_text()
    assert "health degraded" in frame and "N=2 W=1 R=1" in frame
    assert "node-1" in frame and "alive" in frame and "node-2" in frame and "dead" in frame
    assert "gateway operations: 80/s, errors 25.0%" in frame


def test_the_terminal_frame_shows_faults_and_breakers():
    snap = {"health": "critical", "settings": {"n": 3, "w": 2, "r": 2}, "source": "scenario x",
            "registry_ok": False, "registry": "http://127.0.0.1:1", "registry_error": "refused",
            "nodes": [{"id": "node-3", "status": "suspect", "since_heartbeat": 1.2,
                       "keys": None, "reachable": False, "share": 0.3, "vnodes": 64,
                       "traffic": None, "breaker": {"state": "open", "clients": 2,
                                                    "counts": {"open": 2}}}],
            "traffic": {"gateway": None, "replica": None, "window_s": 1.0},
            "run": {"scenario": "kill-one", "seed": 3, "running": True},
            "faults": [{"fault": "kill node-3", "age_s": 2.0, "heals_in_s": 1.5}]}
    console = Console(record=True, width=160, color_system=None)
    console.print(render(snap))
    frame = console.export_text()
    for expected in ("registry http://127.0.0.1:1 does not answer: refused", "unreachable",
                     "open 2/2", "kill node-3 for 2.0 s, heals in 1.5 s", "scenario kill-one"):
        assert expected in frame, frame
