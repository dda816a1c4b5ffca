"""The history generator of ``benchmarks/bench_checkers.py``: a correct register's history
must pass the checkers, and one with a stale read injected must not (or the benchmark's
figures would be about the wrong histories)."""

from __future__ import annotations

import importlib
import random
from pathlib import Path

import pytest

from chaos.checkers import (
    CHECKERS,
    Convergence,
    Linearizable,
    NoLostWrites,
    StaleReads,
    Validity,
)
from chaos.history import NEMESIS, FinalState

pytestmark = pytest.mark.unit

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture(scope="module")
def bench():
    """The benchmark script as a module (benchmarks/ is not a package)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(BENCHMARKS))
        yield importlib.import_module("bench_checkers")


@pytest.mark.parametrize("seed", [1, 2])
def test_a_correct_register_passes(bench, seed):
    run = bench.simulate_run(random.Random(seed), 3_000, processes=16, keys=20)
    for checker in (Linearizable(), StaleReads(), NoLostWrites(), Convergence()):
        verdict = checker.check(run.history, run.final)
        assert verdict.valid is Validity.VALID, verdict.explain()


def test_the_run_has_faults_recorded_as_the_nemesis_does(bench):
    run = bench.simulate_run(random.Random(3), 3_000)
    nemesis = run.history.nemesis_ops()
    assert [(op.type, op.value["phase"]) for op in nemesis[:4]] == [
        ("invoke", "apply"), ("ok", "apply"), ("invoke", "heal"), ("ok", "heal")]
    assert all(op.process == NEMESIS for op in nemesis)
    windows = run.history.fault_windows()
    assert [(w.fault, w.target) for w in windows] == [
        ("kill", "node-1"), ("partition", "node-2")]
    client = run.history.client_ops()
    assert {op.type for op in client} == {"invoke", "ok", "fail", "info"}
    times = [op.time for op in run.history.ops]
    assert times == sorted(times)
    assert {f"arrivals:{n}" for n in bench.NODES} <= run.history.series.keys()
    assert run.final.copies == 3 and len(run.final) == 200


def test_every_checker_it_feeds_answers(bench):
    """Every input a checker below needs is in the run; any other registered checker (whose
    input the generator does not make) still answers without raising."""
    fed = {"availability", "convergence", "durability", "latency", "linearizable", "herd",
           "stale-reads"}
    # 2 processes: the first fault comes late enough for a steady period before it (herd)
    run = bench.simulate_run(random.Random(4), 3_000, processes=2, keys=20)
    for name, cls in CHECKERS.items():
        verdict = cls().check(run.history, run.final)
        if name in fed:
            assert verdict.valid is not Validity.UNKNOWN, f"{name}: {verdict.explain()}"


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_an_injected_stale_read_is_caught(bench, seed):
    run = bench.simulate_run(random.Random(seed), 1_700, processes=50, keys=10,
                             faults=False, stale=True)
    for checker in (Linearizable(), StaleReads()):
        verdict = checker.check(run.history, run.final)
        assert verdict.valid is Validity.INVALID, verdict.explain()


def test_the_adversarial_history_runs_out_of_budget(bench):
    verdict = Linearizable(max_states=2_000).check(bench.adversarial(30), FinalState())
    assert verdict.valid is Validity.UNKNOWN
    assert verdict.evidence["exhausted"]["k"]["reason"] == "explored 2000 states"
