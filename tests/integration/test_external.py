"""``--runtime external``: a cluster started by someone else, broken through a control file.

The same scenario (gateway clients writing shared keys, one replica killed and started
again through the file's pid file and start command) runs against a deliberately broken toy
cluster (:mod:`tests.integration.toy_cluster`), which the unchanged checkers must find
invalid with named findings, and against chaoslab's own cluster (started by the local
runtime, handed over as a gateway URL and a generated control file), which must pass.
Faults the file does not enable are refused before anything starts, in one line.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from chaos.checkers import Availability, Linearizable, NoLostWrites, StaleReads
from chaos.faults import Kill, Latency
from chaos.history import NEMESIS, OpType
from chaos.nemesis import Schedule
from chaos.report import write_report
from chaos.runtime import ClusterSpec, open_runtime
from chaos.runtime.local import LocalRuntime
from chaos.scenario import Scenario, ScenarioError, run
from chaos.traffic import Workload
from chaos.wait import all_of, http_ok, wait_for
from system.launch import free_port

pytestmark = pytest.mark.integration

TOY = Path(__file__).with_name("toy_cluster.py")
NODES = ("node-1", "node-2", "node-3")

# 10 s of traffic: several users write the same 30 keys through the gateway; node-1 is
# killed at 2.5 s and started again at 4.5 s (on the toy: empty, its counter back at 0, so
# the last write of about a third of the keys goes through it and loses to older ones)
SCENARIO = Scenario(
    name="external-kill-one",
    workload=Workload(client="gateway", pattern="shared", users=6, keys=30, duration=10,
                      write_ratio=0.5),
    schedule=Schedule.single(Kill("node-1"), at=2.5, duration=2.0),
    checkers=(Availability(min_ratio=0.9), NoLostWrites(), StaleReads(), Linearizable()),
    steady_state=2.0, quiet=5.0)


def _toml(value) -> str:
    return json.dumps(value)  # a JSON string or list of strings is TOML too


def control_file(path: Path, gateway: str, services: dict[str, dict]) -> Path:
    """A TOML control file: ``services`` maps node ids to their settings."""
    lines = ["[gateway]", f"url = {_toml(gateway)}", f"ready = {_toml(gateway + '/health')}"]
    for node, settings in services.items():
        lines += ["", f"[nodes.{node}]", *(f"{k} = {_toml(v)}" for k, v in settings.items())]
    path.write_text("\n".join(lines) + "\n")
    return path


def kill_pidfiles(directory: Path) -> None:
    """SIGKILL whatever the pid files in ``directory`` name (services the external runtime
    started again are not the test's children)."""
    for pidfile in directory.glob("*.pid"):
        with contextlib.suppress(ValueError, OSError):
            os.kill(int(pidfile.read_text()), signal.SIGKILL)


@dataclasses.dataclass
class Toy:
    gateway: str
    control: Path


@pytest.fixture
def toy(tmp_path: Path):
    """The toy cluster as plain processes, and a control file that kills them by pid and
    starts them again with the same command; everything is killed at the end."""
    run_dir = tmp_path / "toy"
    run_dir.mkdir()
    ports = {n: free_port() for n in NODES}
    gateway_port = free_port()
    procs: list[subprocess.Popen] = []
    services = {}

    def spawn(argv: list[str], name: str) -> None:
        with open(run_dir / f"{name}.log", "ab") as out:
            procs.append(subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT,
                                          stdin=subprocess.DEVNULL, start_new_session=True))

    try:
        for node, port in ports.items():
            argv = [sys.executable, str(TOY), "replica", "--node-id", node, "--port", str(port),
                    "--pidfile", str(run_dir / f"{node}.pid")]
            spawn(argv, node)
            services[node] = {"ready": f"http://127.0.0.1:{port}/health",
                              "pidfile": f"toy/{node}.pid", "start": argv}
        replicas = ",".join(f"http://127.0.0.1:{p}" for p in ports.values())
        spawn([sys.executable, str(TOY), "gateway", "--port", str(gateway_port), "--replicas",
               replicas, "--pidfile", str(run_dir / "gateway.pid")], "gateway")
        gateway = f"http://127.0.0.1:{gateway_port}"
        wait_for(all_of(*(http_ok(f"http://127.0.0.1:{p}/health")
                          for p in (*ports.values(), gateway_port))), timeout=30,
                 abort=lambda: next((f"a toy process exited: {p.args}" for p in procs
                                     if p.poll() is not None), None))
        yield Toy(gateway, control_file(tmp_path / "toy.toml", gateway, services))
    finally:
        kill_pidfiles(run_dir)
        for proc in procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


@pytest.fixture
def chaoslab_cluster(tmp_path: Path, seed: int):
    """chaoslab's own cluster started by the local runtime (no mesh: the harness reaches it
    only through the gateway), with pid files and a control file written for it."""
    local = LocalRuntime(ClusterSpec(mesh=False, seed=seed), workdir=str(tmp_path / "local"))
    run_dir = tmp_path / "pids"
    run_dir.mkdir()
    try:
        local.start()
        services = {}
        for node in local.node_ids():
            pidfile = run_dir / f"{node}.pid"
            pidfile.write_text(f"{local.procs[node].popen.pid}\n")
            # the idiom for a service that writes no pid file: the shell writes its own pid,
            # then becomes the service
            start = ["/bin/sh", "-c", 'echo $$ > "$0"; exec "$@"', str(pidfile),
                     *local.procs[node].cmd]
            services[node] = {"url": local.node_url(node), "ready": local.node_url(node) + "/ready",
                              "pidfile": str(pidfile), "start": start}
        gateway = local.endpoints().registry_direct
        yield Toy(gateway, control_file(tmp_path / "chaoslab.toml", gateway, services))
    finally:
        kill_pidfiles(run_dir)
        local.stop()


def _run_external(cluster: Toy, tmp_path: Path, seed: int, artifacts: Path):
    spec = dataclasses.replace(SCENARIO.cluster, seed=seed)
    rt = open_runtime("external", spec, gateway_url=cluster.gateway,
                      external_file=str(cluster.control), workdir=str(tmp_path / "external"))
    result = run(SCENARIO.but(seed=seed), rt, directory=artifacts)
    write_report(result, str(artifacts))
    return result


def _part(result, name: str):
    return next(p for p in result.verdict.parts if p.name == name)


def _fault_was_applied_and_healed(result) -> None:
    nemesis = [op for op in result.history.ops if op.process == NEMESIS and op.type is OpType.OK]
    assert [(op.f, op.value["phase"]) for op in nemesis] == [("kill", "apply"), ("kill", "heal")]
    assert not result.errors, result.errors


def test_the_broken_toy_cluster_is_found_invalid_with_named_findings(toy, tmp_path, seed,
                                                                    chaos_artifacts):
    result = _run_external(toy, tmp_path, seed, chaos_artifacts)
    _fault_was_applied_and_healed(result)
    assert result.load["operations"] > 100, result.load
    assert result.verdict.valid == "invalid", result.explain()
    durability, stale, linear = (_part(result, n) for n in
                                 ("durability", "stale-reads", "linearizable"))
    # node-local counters: later acknowledged writes lose to earlier ones
    assert durability.valid == "invalid" and durability.evidence["lost"], durability.explain()
    # the first answer wins: reads miss writes acknowledged before them
    assert stale.valid == "invalid" and stale.evidence["stale"], stale.explain()
    assert linear.valid == "invalid", linear.explain()


def test_chaoslab_own_cluster_passes_the_same_scenario_through_the_external_runtime(
        chaoslab_cluster, tmp_path, seed, chaos_artifacts):
    result = _run_external(chaoslab_cluster, tmp_path, seed, chaos_artifacts)
    _fault_was_applied_and_healed(result)
    assert result.load["operations"] > 200, result.load
    assert result.valid, result.explain()


def test_client_side_latency_goes_through_the_harness_proxy(toy, tmp_path, seed):
    """A latency toxic on the clients' link to the gateway, the one link the harness owns:
    operations during the fault are slower, and the toy's replicas are not touched."""
    scenario = SCENARIO.but(workload=dataclasses.replace(SCENARIO.workload, duration=6),
                            schedule=Schedule.single(Latency("registry", ms=150), at=2.5,
                                                     duration=2.5),
                            checkers=(Availability(min_ratio=0.9),))
    rt = open_runtime("external", dataclasses.replace(scenario.cluster, seed=seed),
                      gateway_url=toy.gateway, external_file=str(toy.control),
                      workdir=str(tmp_path / "external"))
    result = run(scenario.but(seed=seed), rt, directory=tmp_path / "report")
    assert result.valid and not result.errors, result.explain()
    assert result.scenario.schedule.steps[0].fault.via == frozenset(rt.topology.links)
    window = result.history.fault_windows()[0]
    slow, fast = [], []
    for inv, comp in result.history.completions():
        if inv.is_client and comp.type is OpType.OK:
            inside = window.start + 0.2 <= inv.time and comp.time <= window.end
            (slow if inside else fast).append(comp.time - inv.time)
    assert slow and fast
    assert sorted(slow)[len(slow) // 2] >= 0.15 > sorted(fast)[len(fast) // 2]


@pytest.mark.parametrize("fault,message", [
    ("pause:node-2", "pause node-2 is not enabled: the control file"),
    ("kill:node-9", "kill node-9 is not enabled: the control file"),
    ("partition:isolate:node-1", "acts on links inside the cluster, which need its cooperation"),
    ("latency:node-1", "acts on links inside the cluster"),
    ("scale-up", "scale-up needs the cluster's cooperation"),
])
def test_faults_the_file_does_not_enable_are_refused_before_anything_starts(
        tmp_path, fault, message):
    control = control_file(tmp_path / "c.toml", "http://127.0.0.1:9", {
        "node-1": {"pidfile": "n1.pid", "start": ["true"]},
        "node-2": {"kill": "true", "start": "true", "running": "true"}})
    rt = open_runtime("external", ClusterSpec(), gateway_url=None, external_file=str(control))
    scenario = SCENARIO.but(schedule=Schedule.parse([fault], at=3, duration=2))
    with pytest.raises(ScenarioError) as refused:
        run(scenario, rt, directory=tmp_path / "report")
    text = str(refused.value)
    assert message in text and "\n" not in text, text
    assert "it enables node-1: kill/stop/pause/resume/start; node-2: kill/start" in text, text
    assert rt.proxies is None and not (tmp_path / "report").exists()  # nothing started


def test_the_cli_refuses_a_fault_the_file_does_not_enable_in_one_line(tmp_path):
    control = control_file(tmp_path / "c.toml", "http://127.0.0.1:9", {
        "node-2": {"pidfile": "n2.pid", "start": ["true"]}})
    proc = subprocess.run([sys.executable, "-m", "chaos.cli", "run", "--runtime", "external",
                           "--external-file", str(control), "--fault", "kill:node-1",
                           "--report", str(tmp_path / "report")],
                          capture_output=True, text=True, timeout=60, cwd=tmp_path)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert "kill node-1 is not enabled: the control file" in lines[0]
    assert "names no node-1" in lines[0] and "it enables node-2: kill/stop/pause/resume/start" \
        in lines[0]
    assert not (tmp_path / "report").exists()


@pytest.mark.parametrize("args,message", [
    (["--runtime", "external"], "the external runtime needs the gateway's URL"),
    (["--gateway-url", "http://127.0.0.1:9"], "only work with --runtime external"),
    (["--runtime", "external", "--gateway-url", "ftp://x"], "expected an http://host:port URL"),
    (["--runtime", "external", "--gateway-url", "http://127.0.0.1:9", "--external-file",
      "missing.toml"], "cannot read the control file missing.toml"),
])
def test_bad_external_options_are_usage_errors(tmp_path, args, message):
    proc = subprocess.run([sys.executable, "-m", "chaos.cli", "run", "noop", *args,
                           "--report", str(tmp_path / "report")],
                          capture_output=True, text=True, timeout=60, cwd=tmp_path)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and message in lines[0], proc.stderr


def test_a_bad_control_file_is_one_line_naming_the_setting(tmp_path):
    from chaos.runtime.external import ControlFileError, ExternalControl

    bad = tmp_path / "c.toml"
    bad.write_text('[nodes.node-1]\nkil = "true"\n')
    with pytest.raises(ControlFileError, match=r"nodes.node-1: unknown setting 'kil'"):
        ExternalControl.load("http://127.0.0.1:9", bad)
    bad.write_text("[nodes.node-1\n")
    with pytest.raises(ControlFileError, match="is not valid TOML"):
        ExternalControl.load("http://127.0.0.1:9", bad)
    good = tmp_path / "c.json"
    good.write_text(json.dumps({"gateway": {"url": "http://127.0.0.1:9"},
                                "nodes": {"node-1": {"pidfile": "p", "start": "run-it"}}}))
    control = ExternalControl.load(None, good)
    assert control.gateway == "http://127.0.0.1:9" and control.nodes == ("node-1",)
    assert control.services["node-1"].commands["start"] == ("/bin/sh", "-c", "run-it")
    assert control.services["node-1"].pidfile == str(tmp_path / "p")
