"""Locust past one machine, as docs/locust-distributed.md describes it, tried on this one: a
master and two workers, each worker started from a directory of its own as if it ran on
another machine; each writes its history there, and the copied files merge into one."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from chaos.history import History, OpType
from chaos.wait import wait_for

pytestmark = pytest.mark.integration

LOCUSTFILE = Path(__file__).parents[2] / "loadtests" / "locustfile.py"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_master_and_two_workers_elsewhere_give_one_merged_history(make_cluster, tmp_path, seed):
    rt = make_cluster()
    port = _free_port()
    master_dir, workers = tmp_path / "master", [tmp_path / "box-a", tmp_path / "box-b"]
    for d in (master_dir, *workers):
        d.mkdir()
    locust = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--loglevel", "WARNING"]
    # the master holds the options; the workers get them (the history dir is relative: each
    # worker writes into its own working directory, as on its own machine)
    master = [*locust, "--master", "--master-bind-host", "127.0.0.1", "--master-bind-port",
              str(port), "--expect-workers", "2", "--headless", "-u", "6", "-r", "6", "-t", "6s",
              "--host", rt.endpoints().registry, "--kv-seed", str(seed), "--only-summary",
              "--kv-history-dir", "history", "--kv-report", str(master_dir / "locust.json"),
              "SmartClientUser"]
    worker = [*locust, "--worker", "--master-host", "127.0.0.1", "--master-port", str(port),
              "SmartClientUser"]
    procs = []
    try:
        with open(master_dir / "master.log", "w") as log:
            procs.append(subprocess.Popen(master, cwd=master_dir, stdout=log,
                                          stderr=subprocess.STDOUT))
        for d in workers:
            with open(d / "worker.log", "w") as log:
                procs.append(subprocess.Popen(worker, cwd=d, stdout=log, stderr=subprocess.STDOUT))
        procs[0].wait(timeout=90)
        wait_for(lambda: all(p.poll() is not None for p in procs[1:]), timeout=30,
                 description="the workers to quit with the master")
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    logs = "".join((d / name).read_text() for d, name in ((master_dir, "master.log"),
                                                            *((d, "worker.log") for d in workers)))
    report = json.loads((master_dir / "locust.json").read_text())
    assert not (master_dir / "history").exists(), "the master runs no users"
    files = [sorted((d / "history").glob("history-*.jsonl")) for d in workers]
    assert all(len(f) == 1 for f in files), (files, logs[-3000:])
    merged_dir = tmp_path / "merged"  # what an engineer copies back from the machines
    merged_dir.mkdir()
    for (f,) in files:
        shutil.copy(f, merged_dir / f.name)
    history = History.load(sorted(str(p) for p in merged_dir.glob("*.jsonl")),
                           t0=min(op for op in _first_monos(merged_dir)))
    client = [op for op in history.ops if op.is_client]
    lanes = {op.process.split("-")[2] for op in client}  # smart-client-<worker>-<pid>-<n>
    assert lanes == {"0", "1"}, lanes  # both workers' users, told apart by worker index
    times = [op.time for op in history.ops]
    assert times == sorted(times)
    done = [c for _, c in history.completions() if c.is_client]
    assert done and all(c.type is not OpType.INVOKE for c in done)
    counted = sum(r["count"] for r in report["requests"])
    assert abs(len(done) - counted) <= 6, (len(done), counted)  # at most one in flight per user


def _first_monos(directory: Path):
    for path in directory.glob("*.jsonl"):
        for line in path.read_text().splitlines():
            record = json.loads(line)
            if "mono" in record:
                yield record["mono"]
                break
