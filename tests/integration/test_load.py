"""chaos.load.Load: Locust headless as a subprocess against a real local cluster, every
operation recorded raw into one merged history, and the outcome of each failure honest."""

from __future__ import annotations

import json
import time
from collections import defaultdict
from pathlib import Path

import pytest

from chaos.history import History, OpType
from chaos.load import Load, LoadError
from chaos.traffic import Workload, version_key
from chaos.wait import WaitTimeout, wait_for

pytestmark = pytest.mark.integration


def check_history(history: History) -> dict[str, list]:
    """Every invoke is followed by exactly one completion of the same process (Locust
    interrupts at most the last one, recorded as info); times never go back."""
    by_process: dict[str, list] = defaultdict(list)
    times = [op.time for op in history.ops]
    assert times == sorted(times)
    for op in history.client_ops():
        by_process[op.process].append(op)
    for process, ops in by_process.items():
        assert [op.type is OpType.INVOKE for op in ops] == [i % 2 == 0 for i in range(len(ops))], \
            f"{process}: invoke and completion must alternate"
        for invoke, done in zip(ops[::2], ops[1::2], strict=True):
            assert (invoke.f, invoke.key) == (done.f, done.key) and done.time >= invoke.time
            if done.type is OpType.OK and done.f == "write":
                assert done.version is not None and version_key(done.version)[0] > 0
    return by_process


def pids(history: History) -> dict[str, str]:
    """process name -> the pid of the Locust process whose file recorded it."""
    return {op.process: op.process.split("-")[-2] for op in history.client_ops()}


@pytest.mark.parametrize("client", ["smart", "gateway"])
def test_load_records_every_operation_of_two_processes(make_cluster, tmp_path, seed, client):
    rt = make_cluster()
    workload = Workload(client=client, users=4, processes=2, duration=3, keys=20)
    t0 = time.monotonic()
    with Load(workload, host=rt.endpoints().registry, seed=seed, directory=tmp_path / "load",
              t0=t0) as load:
        load.start()
        wait_for(lambda: sum(op.type is OpType.OK for op in load.snapshot().ops) >= 20,
                 timeout=20, description="operations recorded while Locust runs")
        code = load.wait()
        history = load.history()
    assert code == 0, load.log_tail()
    assert len(load.paths()) == 2  # one file per Locust worker process
    by_process = check_history(history)
    assert len(by_process) == 4 and len(set(pids(history).values())) == 2
    done = [op for op in history.client_ops() if op.type is not OpType.INVOKE]
    assert sum(op.type is OpType.OK for op in done) >= 40
    assert all(op.type is OpType.OK or op.error == "interrupted" for op in done), \
        [op for op in done if op.type is not OpType.OK][:5]
    assert {op.f for op in done} == {"write", "read"}
    for name in ("locust_stats.csv", "locust_failures.csv", "locust.html", "locust.log"):
        assert (tmp_path / "load" / name).exists(), name
    report = json.loads(load.report_path.read_text())
    assert report["seed"] == seed and report["exit_code"] == 0
    assert 0 < load.cpu_seconds and 0 < load.cpu_share < 1


def test_shared_pattern_has_several_processes_write_the_same_keys(make_cluster, tmp_path, seed):
    rt = make_cluster()
    workload = Workload(client="gateway", pattern="shared", users=4, processes=2, duration=3,
                        keys=5, write_ratio=0.8)
    with Load(workload, host=rt.endpoints().registry, seed=seed, directory=tmp_path,
              t0=time.monotonic()) as load:
        load.start()
        assert load.wait() == 0, load.log_tail()
    history = load.history()
    check_history(history)
    writers: dict[str, set[str]] = defaultdict(set)
    values = []
    owner = pids(history)
    for op in history.client_ops():
        if op.type is OpType.OK and op.f == "write":
            writers[op.key].add(owner[op.process])
            values.append(op.value)
    assert len(writers) == 5 and all(len(p) == 2 for p in writers.values()), writers
    assert len(values) == len(set(values))  # every write's value is unique in the run


def test_killed_nodes_under_load_give_no_fail_for_writes_that_reached_a_replica(
        make_cluster, tmp_path, seed):
    """Two of three nodes die mid-run: every write still reaches node-3 (an owner of every
    key with N=3), so its quorum errors may have happened: info, never fail. A fail here
    would let the durability checker forbid a value that node-3 holds."""
    rt = make_cluster()
    workload = Workload(client="smart", users=4, duration=6, keys=20, write_ratio=1.0,
                        request_timeout=0.5, retries=2)
    with Load(workload, host=rt.endpoints().registry, seed=seed, directory=tmp_path,
              t0=time.monotonic()) as load:
        load.start()
        wait_for(lambda: sum(op.type is OpType.OK for op in load.snapshot().ops) >= 20,
                 timeout=20, description="acknowledged writes before the kills")
        killed_at = time.monotonic() - load.t0  # before: a write may fail between the kills
        rt.kill("node-1")
        rt.kill("node-2")
        wait_for(lambda: sum(op.type is OpType.INFO and op.time > killed_at
                             for op in load.snapshot().ops) >= 10,
                 timeout=30, description="writes failing after the kills")
        load.stop()
        history = load.history()
    check_history(history)
    ops = history.client_ops()
    assert not [op for op in ops if op.type is OpType.FAIL], \
        [op.error for op in ops if op.type is OpType.FAIL][:5]
    unsure = [op for op in ops if op.type is OpType.INFO and op.error != "interrupted"]
    assert all(op.time > killed_at for op in unsure)
    assert unsure and all(op.error.startswith("Unavailable") for op in unsure), \
        {op.error for op in unsure}


def test_locust_that_cannot_start_raises_with_its_log(tmp_path, seed):
    workload = Workload(duration=1)
    load = Load(workload, host="http://127.0.0.1:9", seed=seed, directory=tmp_path, t0=0.0)
    load.command = lambda: [*Load.command(load), "--kv-pattern", "cold"]  # a bad option
    with load, pytest.raises(LoadError, match="(?s)exited with code 2.*kv-pattern"):
        load.start()
    assert Path(load.log_path).exists() and load.exit_code == 2


def test_a_reused_directory_does_not_mix_in_an_earlier_runs_records(cluster, tmp_path, seed):
    stale = tmp_path / "history-1.jsonl"
    stale.write_text('{"mono": 1.0, "process": "old", "type": "invoke", "f": "write", "key": "k"}\n')
    with Load(Workload(duration=2, users=2), host=cluster.endpoints().registry, seed=seed,
              directory=tmp_path, t0=time.monotonic()) as load:
        load.start()
        load.wait()
        history = load.history()
    assert history.ops and "old" not in {op.process for op in history.ops}


def test_locust_launched_before_the_cluster_waits_for_its_host(cluster, tmp_path, seed):
    """The runner launches Locust while the cluster starts: it imports itself, then runs no
    user (records nothing, and its time limit does not count) until start() gives it the
    host; then it runs its whole duration."""
    load = Load(Workload(duration=2, users=2), host=None, seed=seed, directory=tmp_path,
                t0=time.monotonic()).launch()
    with load:
        wait_for(lambda: "Starting Locust" in load.log_tail(), timeout=20,
                 description="Locust to be running")
        waited = time.monotonic()
        with pytest.raises(WaitTimeout):  # it is alive and has started nobody
            wait_for(lambda: load.paths() or load.exit_code is not None, timeout=3.0,
                     description="Locust to start users or exit without a host")
        load.host = cluster.endpoints().registry
        load.start()
        assert load.wait() == 0, load.log_tail()
        history = load.history()
    ran = max(op.time for op in history.client_ops()) - min(op.time for op in history.client_ops())
    assert ran > 1.5, "the time limit counted from the launch, not from the host"
    assert time.monotonic() - waited > 3.0 + 1.5
    check_history(history)


def test_a_load_started_without_a_host_says_so(tmp_path, seed):
    load = Load(Workload(duration=1), host=None, seed=seed, directory=tmp_path, t0=0.0)
    with load, pytest.raises(LoadError, match="no host"):
        load.start()
    assert load.exit_code is not None  # the launched Locust was stopped
