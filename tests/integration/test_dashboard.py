"""The live dashboard against real local processes: ``chaoslab dashboard`` streams snapshots
as server-sent events and listens on 127.0.0.1 only; ``chaoslab status --watch`` renders the
node rows live and stops on Ctrl-C; a running scenario's faults and the smart client's
breakers reach the snapshots through the run's live files."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import orjson
import psutil
import pytest

from chaos.catalog import SCENARIOS
from chaos.dashboard import Collector, find_target
from chaos.dashboard.web import Dashboard
from chaos.live import read_live
from chaos.wait import http_ok, wait_for
from system.launch import free_port

pytestmark = pytest.mark.integration

CLI = [sys.executable, "-m", "chaos.cli"]


@contextlib.contextmanager
def process(*args: str, env: dict | None = None):
    """A chaoslab command in the background, its output collected; interrupted (then
    killed) on the way out, whatever happened."""
    proc = subprocess.Popen([*CLI, *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, env={**os.environ, **(env or {})})
    out: list[bytes] = []
    reader = threading.Thread(target=lambda: out.extend(iter(lambda: proc.stdout.read1(65536),
                                                             b"")), daemon=True)
    reader.start()
    proc.output = lambda: b"".join(out).decode("utf-8", "replace")
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        reader.join(timeout=5)


def events(url: str, count: int, timeout: float = 20.0) -> list[dict]:
    """The first ``count`` snapshot events of ``url``/events."""
    got: list[dict] = []
    with httpx.stream("GET", f"{url}/events", timeout=timeout, trust_env=False) as reply:
        assert reply.status_code == 200
        assert reply.headers["content-type"].startswith("text/event-stream")
        name = None
        for line in reply.iter_lines():
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: ") and name == "snapshot":
                got.append(orjson.loads(line[6:]))
                if len(got) == count:
                    return got
    return got


def other_addresses() -> list[str]:
    """This host's IPv4 addresses that are not loopback."""
    return [a.address for addrs in psutil.net_if_addrs().values() for a in addrs
            if a.family == socket.AF_INET and not a.address.startswith("127.")]


def test_the_dashboard_streams_snapshots_and_listens_on_loopback_only(cluster):
    registry = cluster.endpoints().registry_direct
    port = free_port()
    with process("dashboard", "--registry", registry, "--port", str(port)) as proc:
        url = f"http://127.0.0.1:{port}"
        wait_for(http_ok(url), timeout=20, abort=lambda: proc.poll() is not None and
                 f"it exited: {proc.output()}")
        page = httpx.get(url, trust_env=False).text
        assert "EventSource" in page and "<script src" not in page  # self-contained
        first, second, third = events(url, 3)
        assert [n["id"] for n in first["nodes"]] == cluster.node_ids()
        assert {n["status"] for n in first["nodes"]} == {"alive"}
        assert all(n["reachable"] and n["share"] > 0 for n in first["nodes"])
        assert len(first["ring"]["arcs"]) == len(cluster.node_ids()) * first["settings"]["vnodes"]
        assert second["time"] > first["time"]  # live: a new poll each time
        assert third["traffic"]["replica"] is not None  # rates from two scrapes

        listening = [c.laddr for c in psutil.Process(proc.pid).net_connections("inet")
                     if c.status == psutil.CONN_LISTEN]
        assert listening and {a.ip for a in listening} == {"127.0.0.1"}, listening
        for address in other_addresses():
            with pytest.raises(OSError), socket.create_connection((address, port), timeout=2):
                pass
    assert proc.returncode == 0, proc.output()


def test_the_poller_runs_only_while_a_page_listens(cluster):
    target = find_target(registry=cluster.endpoints().registry_direct)
    with Dashboard(target) as dash:
        hub = dash.server.config.app.state.hub
        assert not hub.polling  # nobody listens: the cluster is not polled
        assert len(events(dash.url, 2)) == 2  # then the page goes away
        wait_for(lambda: not hub.polling, timeout=10, description="the poller to stop")
        snapshot = httpx.get(f"{dash.url}/snapshot", timeout=10, trust_env=False).json()
        assert {n["id"] for n in snapshot["nodes"]} == set(cluster.node_ids())


def test_a_taken_port_is_a_usage_error():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run([*CLI, "dashboard", "--registry", "http://127.0.0.1:1",
                               "--port", str(port)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "choose another port with --port" in done.stderr


def test_status_watch_renders_the_node_rows_until_ctrl_c(cluster):
    registry = cluster.endpoints().registry_direct
    # a terminal as Rich sees it, so each refresh is written as it happens
    with process("status", "--watch", "--registry", registry,
                 env={"TTY_COMPATIBLE": "1", "COLUMNS": "160"}) as proc:
        def rows_rendered() -> bool:
            text = proc.output()
            return all(f"{n} " in text for n in cluster.node_ids()) and "alive" in text \
                and "replica requests" in text
        wait_for(rows_rendered, timeout=20, interval=0.1, description="the node rows",
                 abort=lambda: proc.poll() is not None and f"it exited: {proc.output()}")
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0, proc.output()
    assert "Traceback" not in proc.output()


def test_a_running_scenario_publishes_its_faults_and_breakers(chaos_run, chaos_artifacts):
    import asyncio

    scenario = SCENARIOS["kill-one"].with_duration(8)
    outcome: dict = {}
    runner = threading.Thread(target=lambda: outcome.update(result=chaos_run(scenario)),
                              daemon=True)
    runner.start()
    wait_for(lambda: (read_live(chaos_artifacts) or {}).get("registry_direct"), timeout=60,
             description="the run's live.json")
    target = find_target(run=chaos_artifacts)
    seen: dict[str, object] = {}

    async def watch() -> None:
        async with Collector(target) as collector:
            while runner.is_alive() and not ("fault" in seen and "breakers" in seen):
                snap = await collector.poll()
                if snap["faults"]:
                    seen["fault"] = snap["faults"][0]
                if snap["breakers"]["clients"]:
                    seen["breakers"] = [n["breaker"] for n in snap["nodes"]]
                await asyncio.sleep(0.2)  # pacing of the polls

    asyncio.run(watch())
    runner.join(timeout=120)
    assert "result" in outcome, "the scenario did not finish"
    assert seen["fault"]["fault"] == "kill node-1" and seen["fault"]["kind"] == "kill"
    assert all(b is not None and b["clients"] >= 1 for b in seen["breakers"])
    assert read_live(chaos_artifacts)["faults"] == []  # healed
    assert Path(chaos_artifacts, "live.json").is_file()
