"""A scenario end to end through the pytest plugin: its artifacts (the whole value in
verdict.json, the merged history, JUnit, Locust's files) and its replay from them."""

from __future__ import annotations

import json
from xml.etree import ElementTree

import pytest

from chaos.catalog import SCENARIOS
from chaos.history import NEMESIS
from chaos.scenario import Scenario

pytestmark = pytest.mark.integration


def test_a_run_writes_its_artifacts_and_replays_from_them(chaos_run, chaos_artifacts, seed):
    result = chaos_run(SCENARIOS["kill-one"].with_duration(6))
    assert result.valid, result.explain()
    assert result.seed == seed  # the test's one seed
    for name in ("verdict.json", "history.jsonl", "junit.xml", "report.html",
                 "locust_stats.csv", "locust.html"):
        assert (chaos_artifacts / name).stat().st_size > 0, name
    recorded = json.loads((chaos_artifacts / "verdict.json").read_text())
    assert Scenario.from_json(recorded["scenario"]) == result.scenario
    assert recorded["verdict"] == "valid" and f"--chaos-seed {seed}" in recorded["replay"]
    cases = ElementTree.parse(chaos_artifacts / "junit.xml").getroot().findall("testcase")
    assert [c.get("name") for c in cases] == ["steady-state", "availability", "durability",
                                              "stale-reads", "convergence", "scenario"]
    ops = result.history.ops
    processes = {op.process for op in ops}
    assert NEMESIS in processes and len(processes) > 2  # every user its own process name
    assert [w.fault for w in result.history.fault_windows()] == ["kill"]
    assert ops == sorted(ops, key=lambda op: op.time)  # one time axis
    assert result.load["operations"] > 100 and result.load["exit_code"] in (0, 1)
