"""journal.json: Chaos Toolkit's field names where they fit (status, deviated, steady
states before / during / after, run, rollbacks) and chaoslab's own figures."""

from __future__ import annotations

from datetime import datetime

import pytest

from chaos.checkers.base import Validity, Verdict
from chaos.report.journal import journal

from .test_report import fault, history, op, result

pytestmark = pytest.mark.unit

GATE = Verdict("steady-state", Validity.VALID, "200/200 ok", {"ok": 200, "total": 200})
T0 = 1_800_000_000.0


def _journal(run) -> dict:
    return journal(run, replay="chaoslab run again", t0_wall=T0, ended_wall=T0 + 20)


def _ops():
    return [*op(1.0, "w0-1", "write", "k", "1"), *op(3.5, "w0-1", "read", "k", "1"),
            *op(3.6, "w0-2", "write", "k", "2", "fail", error="no replica reached"),
            *op(6.0, "w0-2", "read", "k", "1", took=0.02)]


def test_a_clean_run_is_completed_with_the_gate_before_and_the_checkers_after():
    run = result(history(*fault(0, "kill", "node-2", 3.0, 5.0), *_ops()), GATE,
                 Verdict("availability", Validity.VALID, "fine"))
    j = _journal(run)
    assert (j["status"], j["deviated"], j["verdict"]) == ("completed", False, "valid")
    before, after = j["steady_states"]["before"], j["steady_states"]["after"]
    assert before["steady_state_met"] is True
    assert [p["activity"]["name"] for p in before["probes"]] == ["steady-state"]
    assert after["steady_state_met"] is True
    assert [(p["activity"]["name"], p["tolerance_met"]) for p in after["probes"]] == [
        ("availability", True)]
    [during] = j["steady_states"]["during"]
    assert (during["activity"], during["ok"], during["fail"], during["info"]) == (
        "kill node-2", 1, 1, 0)
    [action] = j["run"]
    assert action["activity"] == {"type": "action", "name": "kill node-2", "fault": "kill",
                                  "target": "node-2", "step": 0}
    assert (action["status"], action["t_start"], action["t_end"]) == ("succeeded", 3.0, 3.01)
    assert datetime.fromisoformat(action["start"]).timestamp() == pytest.approx(T0 + 3.0)
    [undo] = j["rollbacks"]
    assert (undo["activity"]["name"], undo["status"], undo["t_end"]) == (
        "undo kill node-2", "succeeded", 5.0)
    assert j["duration"] == 12.0
    end, start = (datetime.fromisoformat(j[k]).timestamp() for k in ("end", "start"))
    assert (end, end - start) == (pytest.approx(T0 + 20), pytest.approx(12.0))
    assert (j["seed"], j["replay"], j["scenario"]["name"]) == (7, "chaoslab run again",
                                                                "hand-made")
    assert j["checks"] == {"steady-state": "valid", "availability": "valid"}
    assert (j["throughput"]["operations"], j["throughput"]["ok"], j["throughput"]["fail"]) == (
        4, 3, 1)
    assert j["latency_ms"]["max"] == pytest.approx(20)


def test_an_invalid_checker_is_a_deviation_and_an_unknown_one_is_not():
    invalid = _journal(result(history(*fault(0, "kill", "node-2", 3.0, 5.0), *_ops()), GATE,
                              Verdict("durability", Validity.INVALID, "lost 1")))
    assert (invalid["status"], invalid["deviated"]) == ("completed", True)
    assert invalid["steady_states"]["after"]["steady_state_met"] is False
    unknown = _journal(result(history(*fault(0, "kill", "node-2", 3.0, 5.0), *_ops()), GATE,
                              Verdict("durability", Validity.UNKNOWN, "no writes")))
    assert unknown["deviated"] is False
    assert unknown["steady_states"]["after"]["steady_state_met"] is None


def test_an_unhealthy_baseline_fails_the_run_before_anything_is_tested():
    gate = Verdict("steady-state", Validity.UNKNOWN, "unhealthy baseline: 3/10")
    j = _journal(result(history(*_ops()), gate))
    assert (j["status"], j["deviated"]) == ("failed", False)
    assert j["steady_states"]["before"]["steady_state_met"] is None
    assert j["steady_states"]["after"] is None and j["run"] == []


def test_a_fault_that_could_not_be_applied_fails_the_run_and_says_why():
    h = history(*fault(0, "kill", "node-2", 3.0, 5.0, apply="fail"), *_ops())
    j = _journal(result(h, GATE, errors=("apply kill node-2: boom",)))
    assert j["status"] == "failed"
    assert (j["run"][0]["status"], j["run"][0]["exception"]) == ("failed", "boom")
    assert j["errors"] == ["apply kill node-2: boom"]


def test_a_run_stopped_before_every_step_was_applied_is_aborted():
    h = history(*fault(0, "kill", "node-2", 3.0, 5.0), *_ops())
    j = _journal(result(h, GATE, schedule=("kill:node-2@3+2", "pause:node-1@7+1")))
    assert j["status"] == "aborted"


def test_a_heal_that_never_completed_is_a_pending_rollback():
    h = history(*fault(0, "kill", "node-2", 3.0, 5.0, heal=None),
                (9.0, "nemesis", "invoke", "kill", "node-2", {"step": 0, "phase": "heal"}),
                *_ops())
    [undo] = _journal(result(h, GATE))["rollbacks"]
    assert undo["status"] == "pending" and "end" not in undo


def test_failover_times_come_from_the_failover_checkers_evidence():
    rows = [{"target": "node-2", "fault": "kill", "failover_s": 0.42, "outage_of": "write"},
            {"target": "node-3", "fault": "pause", "keys": 0, "problem": "no operation"}]
    failover = Verdict("failover", Validity.VALID, "0.42s", {"faults": rows})
    j = _journal(result(history(*fault(0, "kill", "node-2", 3.0, 5.0), *_ops()), GATE,
                        failover))
    assert [(f["fault"], f["target"], f["failover_s"]) for f in j["failover"]] == [
        ("kill", "node-2", 0.42), ("pause", "node-3", None)]
