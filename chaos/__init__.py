"""chaoslab: chaos testing for a Dynamo-style key-value cluster.

Everything a scenario needs is importable from here::

    import chaos

    def test_isolated_node_loses_no_acknowledged_write(chaos_run):
        result = chaos_run(chaos.Scenario(
            name="isolate-node-3",
            schedule=chaos.Schedule.single(chaos.Partition.isolating("node-3"), at=3, duration=4),
            checkers=(chaos.Availability(min_ratio=0.95), chaos.NoLostWrites())))
        assert result.valid, result.explain()

The pytest plugin (``chaos.pytest_plugin``) provides the fixtures; ``docs/writing-scenarios.md``
is the tutorial.
"""

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the names below, imported on first use (the CLI starts fast)
    from chaos.catalog import SCENARIOS
    from chaos.checkers import (
        Availability,
        Checker,
        Convergence,
        HerdPeak,
        NoLostWrites,
        StaleReads,
        Validity,
        Verdict,
        compose,
    )
    from chaos.faults import (
        FAULTS,
        Bandwidth,
        Blackhole,
        ClockSkew,
        Fault,
        FaultError,
        Flap,
        Kill,
        Latency,
        Partition,
        Pause,
        RegistryDown,
        ResetPeer,
        Restart,
        ScaleUp,
        Stop,
        parse_fault,
    )
    from chaos.history import History, Op
    from chaos.nemesis import Nemesis, Schedule, Step
    from chaos.runtime.base import ClusterSpec
    from chaos.scenario import RunResult, Scenario, ScenarioError, run
    from chaos.traffic import Workload
    from system.config import ClusterSettings

_WHERE = {
    "SCENARIOS": "chaos.catalog",
    **dict.fromkeys(["Availability", "Checker", "NoLostWrites", "StaleReads", "Convergence",
                     "HerdPeak", "Validity", "Verdict", "compose"], "chaos.checkers"),
    **dict.fromkeys(["FAULTS", "Bandwidth", "Blackhole", "ClockSkew", "Fault", "FaultError", "Flap", "Kill",
                     "Latency", "Partition", "Pause", "RegistryDown", "ResetPeer", "Restart",
                     "ScaleUp", "Stop", "parse_fault"], "chaos.faults"),
    **dict.fromkeys(["History", "Op"], "chaos.history"),
    **dict.fromkeys(["Nemesis", "Schedule", "Step"], "chaos.nemesis"),
    "ClusterSpec": "chaos.runtime.base",
    **dict.fromkeys(["RunResult", "Scenario", "ScenarioError", "run"], "chaos.scenario"),
    "Workload": "chaos.traffic",
    "ClusterSettings": "system.config",
}


def __getattr__(name: str):
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'chaos' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


__all__ = [
    # a run written down
    "Scenario", "ScenarioError", "ClusterSpec", "ClusterSettings", "Workload", "SCENARIOS",
    "run", "RunResult",
    # faults and schedules
    "Fault", "FaultError", "FAULTS", "parse_fault", "Kill", "Stop", "Pause", "Restart",
    "RegistryDown", "Partition", "Latency", "Bandwidth", "Blackhole", "ResetPeer", "Flap",
    "ScaleUp", "ClockSkew", "Schedule", "Step", "Nemesis",
    # what happened and what it means
    "History", "Op", "Checker", "Verdict", "Validity", "compose", "Availability",
    "NoLostWrites", "StaleReads", "Convergence", "HerdPeak",
]
