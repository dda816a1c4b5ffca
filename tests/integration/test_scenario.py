"""The main job's scenario end to end: a verdict that passes the default cluster and fails a
configuration that cannot survive the fault (W=3 with one owner killed)."""

from __future__ import annotations

import pytest

from chaos.report import write_report
from chaos.runtime.base import ClusterSpec
from chaos.scenario import Scenario, Workload, run_scenario
from system.config import ClientConfig, ClusterSettings

from ..conftest import new_runtime

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("w,expected", [(2, "valid"), (3, "invalid")])
def test_kill_scenario_verdict(request, tmp_path, seed, w, expected):
    settings = ClusterSettings(w=w, r=2, heartbeat_interval=0.5)
    spec = ClusterSpec(settings=settings, seed=seed)
    sc = Scenario(cluster=spec, workload=Workload(concurrency=4, duration=5.0),
                  fault_at=1.0, heal_at=3.0,
                  client=ClientConfig(cluster=settings, request_timeout=0.5, retries=2))
    rt = new_runtime(request.config.getoption("--runtime"), spec, str(tmp_path / "c"))
    result = run_scenario(sc, rt, seed=seed)
    assert result.verdict.valid == expected, result.verdict.summary
    paths = write_report(result, str(tmp_path / "report"))
    assert f'"verdict":"{expected}"' in open(paths["verdict.json"]).read().replace(" ", "")
    assert "<testsuite" in open(paths["junit.xml"]).read()
    kinds = {op.f for op in result.history.ops if op.process == "nemesis"}
    assert kinds == {"kill", "heal"}
