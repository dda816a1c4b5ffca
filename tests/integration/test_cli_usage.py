"""Bad input on the command line, through the real CLI: one line naming the problem (and the
valid choices), exit code 2, nothing started, nothing written, nothing left behind."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.integration

BAD = [
    (["run", "nosuch"], "unknown scenario 'nosuch': choose one of noop, kill-one"),
    (["run", "--fault", "partiton:isolate:node-1"], "unknown fault 'partiton': choose one of"),
    (["run", "--fault", "nosuch"], "unknown fault 'nosuch'"),
    (["run", "--fault", "kill:node-9"], "unknown target 'node-9': choose one of node-1"),
    (["run", "--storage", "nosuch"], "unknown storage 'nosuch': choose one of durable, memory"),
    (["run", "--repair", "maybe"], "repair must be 'on' or 'off', got 'maybe'"),
    (["run", "--versions", "lamport"], "versions must be 'hlc' or 'wallclock'"),
    (["run", "--fault", "clock-skew:registry"], "the registry has no clock to skew"),
    (["run", "--runtime", "nosuch"], "unknown runtime 'nosuch': choose one of auto, local"),
    (["run", "--w", "9"], "W must be between 1 and N=3"),
    (["run", "--r", "4"], "R must be between 1 and N=3"),
    (["run", "--duration", "0"], "duration must be positive"),
    (["run", "--duration", "-5"], "duration must be positive"),
    (["run", "--users", "0"], "users must be at least 1"),
    (["run", "--concurrency", "0"], "users must be at least 1"),
    (["run", "--nodes", "0"], "nodes must be at least 1"),
    (["run", "--client", "psql"], "unknown client 'psql': choose one of smart, gateway"),
    (["run", "--fault", "kill:node-1@6+-2"], "heals before it applies"),
    (["run", "--fault", "kill:node-1@4+5", "--fault", "pause:node-1@5+1"],
     "overlap on process:node-1"),
    (["run", "--no-mesh", "--fault", "partition:isolate:node-2"], "needs the link mesh"),
    (["run", "--fault", "kill:node-1@30+1"], "after the traffic ends"),
    (["run", "--duration", "soon"], "Invalid value for '--duration'"),
    (["run", "--bogus"], "No such option: --bogus"),
    (["up", "--nodes", "0"], "nodes must be at least 1"),
    (["up", "--storage", "tape"], "unknown storage 'tape'"),
    (["up", "--runtime", "sim"], "the sim runtime lives inside one run"),
    (["search", "--budget", "0"], "--budget must be at least 1, got 0"),
    (["search", "--runtime", "auto"], "unknown --runtime 'auto': choose one of local, docker"),
    (["search", "--confirm", "maybe"], "unknown --confirm 'maybe': choose one of local"),
    (["search", "nosuch"], "unknown scenario 'nosuch'"),
    (["search", "--profile", "nightly"], "unknown --profile 'nightly': choose one of quick, deep"),
    (["search", "--time-limit", "0"], "--time-limit must be a positive number of seconds"),
    (["search", "--w", "9"], "W must be between 1 and N=3"),
    (["replay", "missing.json"], "cannot read a recorded scenario from missing.json"),
    (["replay", "7", "--runtime", "nosuch"], "unknown --runtime 'nosuch'"),
]


@pytest.mark.parametrize("args,message", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_input_is_one_line_and_exit_code_2(args, message, tmp_path):
    report = tmp_path / "report"
    if args[0] in ("run", "search"):
        args = [*args, "--report", str(report)]
    proc = subprocess.run([sys.executable, "-m", "chaos.cli", *args], capture_output=True,
                          text=True, timeout=60, cwd=tmp_path)
    assert proc.returncode == 2, (proc.returncode, proc.stdout[-2000:], proc.stderr[-2000:])
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    assert not report.exists()  # nothing written (a previous report is not overwritten)
    assert not (tmp_path / ".chaoslab").exists()  # nothing started


def test_scenarios_lists_one_line_each():
    from chaos.catalog import SCENARIOS

    proc = subprocess.run([sys.executable, "-m", "chaos.cli", "scenarios"], capture_output=True,
                          text=True, timeout=60, check=True)
    lines = proc.stdout.strip().splitlines()
    assert [line.split()[0] for line in lines] == list(SCENARIOS)
    assert any(line.split()[1] == "*" for line in lines)  # the default is marked


def test_without_docker_auto_says_why_in_one_line_and_an_explicit_docker_is_a_usage_error(
        tmp_path):
    import os

    env = {**os.environ, "DOCKER_HOST": f"unix://{tmp_path}/no-engine.sock"}
    docker = subprocess.run([sys.executable, "-m", "chaos.cli", "run", "--runtime", "docker",
                             "--report", str(tmp_path / "r1")], capture_output=True, text=True,
                            timeout=60, env=env, cwd=tmp_path)
    lines = docker.stderr.strip().splitlines()
    assert docker.returncode == 2 and len(lines) == 1, docker.stderr
    assert "the docker runtime cannot run here: no Docker engine answers" in lines[0]
    assert "--runtime local" in lines[0] and not (tmp_path / "r1").exists()
    auto = subprocess.run([sys.executable, "-m", "chaos.cli", "run", "noop", "--runtime", "auto",
                           "--duration", "3", "--report", str(tmp_path / "r2")],
                          capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path)
    assert auto.returncode == 0, auto.stdout[-3000:] + auto.stderr[-3000:]
    reason = [line for line in auto.stdout.splitlines() if "runtime auto" in line]
    assert len(reason) == 1 and "not docker (no Docker engine answers" in reason[0]
    assert "runtime=local" in auto.stdout and (tmp_path / "r2" / "verdict.json").exists()
