"""Locust swarms (loadtests/locustfile.py, the users of chaos.locust) against the cluster: both
kinds of user, and the read-your-writes check they run, shown able to fail under a weakened
quorum."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from chaos.runtime.base import ClusterSpec
from chaos.wait import wait_for
from system.config import ClusterSettings

from .helpers import node_stats

pytestmark = pytest.mark.integration

LOCUSTFILE = Path(__file__).parents[2] / "loadtests" / "locustfile.py"
ROWS = {("write", "smart-client"), ("read", "smart-client"), ("write", "gateway"),
        ("read", "gateway")}


class Swarm:
    """A headless Locust run in its own process (gevent patches the whole process)."""

    def __init__(self, rt, tmp_path: Path, seed: int, *, seconds: int, users: int = 8,
                 extra: tuple[str, ...] = ()) -> None:
        self.report = tmp_path / "locust.json"
        self.log = tmp_path / "locust.log"
        self.cmd = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless",
                    "--host", rt.endpoints().registry, "-u", str(users), "-r", str(users),
                    "-t", f"{seconds}s", "--kv-seed", str(seed), "--kv-report", str(self.report),
                    "--only-summary", "--loglevel", "WARNING", *extra]
        self.limit = seconds + 60
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> Swarm:
        with open(self.log, "w") as out:  # a file, not a pipe nobody reads until the end
            self.proc = subprocess.Popen(self.cmd, stdout=out, stderr=subprocess.STDOUT)
        return self

    def __exit__(self, *exc) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def finish(self, *, stop_now: bool = False) -> int:
        """Wait for the run to end (or end it now, as Ctrl-C would); its exit code."""
        if stop_now:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=self.limit)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            pytest.fail(f"locust did not stop within {self.limit} s:\n{self.output[-3000:]}")
        return self.proc.returncode

    @property
    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def summary(self) -> dict:
        return json.loads(self.report.read_text())

    def stats(self) -> dict[tuple[str, str], dict]:
        return {(r["type"], r["name"]): r for r in self.summary()["requests"]}


def test_swarm_through_smart_client_and_gateway_has_no_failure(make_cluster, tmp_path, seed):
    """Two worker processes under a master, as engineers run bigger swarms."""
    rt = make_cluster()
    with Swarm(rt, tmp_path, seed, seconds=5, extra=("--processes", "2")) as swarm:
        code = swarm.finish()
    assert code == 0, swarm.output[-3000:]
    stats = swarm.stats()
    assert set(stats) == ROWS, stats.keys()
    for row, s in stats.items():
        assert s["count"] >= 20 and s["failures"] == 0, (row, s)
    assert f"--kv-seed {seed}" in swarm.output  # the seed is printed for a replay


def test_swarm_reports_failed_writes_when_quorum_is_lost(make_cluster, tmp_path, seed):
    rt = make_cluster()
    rt.kill("node-1")
    rt.kill("node-2")
    with Swarm(rt, tmp_path, seed, seconds=4, users=4) as swarm:
        code = swarm.finish()
    assert code == 1, swarm.output[-3000:]  # Locust's exit code says requests failed
    stats = swarm.stats()
    for row in (("write", "smart-client"), ("write", "gateway")):
        assert stats[row]["failures"] > 0, stats[row]
    assert swarm.summary()["exit_code"] == 1 and swarm.summary()["seed"] == seed


def _lagging_replica_under_load(rt, swarm: Swarm) -> None:
    """node-3 misses writes while dead, then comes back as the only live replica."""
    wait_for(lambda: node_stats(rt, "node-1")["counters"]["writes"] >= 100, timeout=30,
             description="traffic on node-1")
    rt.kill("node-3")
    missed_from = node_stats(rt, "node-1")["counters"]["writes"]
    wait_for(lambda: node_stats(rt, "node-1")["counters"]["writes"] >= missed_from + 200,
             timeout=30, description="writes that node-3 misses")
    rt.pause("node-1")
    rt.pause("node-2")
    try:
        rt.restart("node-3")
        wait_for(lambda: node_stats(rt, "node-3")["counters"]["reads"] >= 100, timeout=60,
                 description="reads served by node-3 alone")
        swarm.finish(stop_now=True)
    finally:
        rt.resume("node-1")
        rt.resume("node-2")


@pytest.mark.parametrize("w_r,stale_expected", [((1, 1), True), ((2, 2), False)],
                         ids=["weak-w1-r1", "quorum-w2-r2"])
def test_swarm_catches_stale_reads_only_with_a_weakened_quorum(make_cluster, tmp_path, seed,
                                                               w_r, stale_expected):
    w, r = w_r
    rt = make_cluster(ClusterSpec(settings=ClusterSettings(w=w, r=r, heartbeat_interval=0.5)))
    with Swarm(rt, tmp_path, seed, seconds=120) as swarm:
        _lagging_replica_under_load(rt, swarm)
    summary = swarm.summary()
    stale = [e for e in summary["errors"] if "stale read" in e["error"]]
    if stale_expected:
        assert stale and summary["stale_reads"] > 0, summary["errors"]
        assert "stale read of" in swarm.output  # the first ones are logged with their details
    else:
        assert not stale and summary["stale_reads"] == 0, stale
        assert summary["errors"], "the outage should have failed some operations"


@pytest.mark.parametrize("option,value", [("--kv-write-ratio", "1.5"), ("--kv-keys", "0"),
                                          ("--kv-value-size", "x"), ("--kv-pattern", "cold"),
                                          ("--kv-timeout", "0"), ("--kv-retries", "-1")])
def test_bad_swarm_options_are_refused_by_name(option, value):
    proc = subprocess.run([sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless",
                           "-t", "1s", option, value], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and f"argument {option}" in proc.stderr, proc.stderr[-2000:]
