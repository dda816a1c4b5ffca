"""The package's face: what a scenario needs is importable from ``chaos``, and the surface is
pinned (as httpx tests its ``__all__``), so growing or shrinking it is a decision."""

from __future__ import annotations

import importlib.metadata

import pytest

import chaos

pytestmark = pytest.mark.unit

PUBLIC = {
    "Scenario", "ScenarioError", "ClusterSpec", "ClusterSettings", "Workload", "SCENARIOS",
    "run", "RunResult", "Fault", "FaultError", "FAULTS", "parse_fault", "Kill", "Stop", "Pause",
    "Restart", "RegistryDown", "Partition", "Latency", "Bandwidth", "Blackhole", "ResetPeer",
    "Flap", "ScaleUp", "Schedule", "Step", "Nemesis", "History", "Op", "Checker", "Verdict",
    "Validity", "compose", "Availability", "NoLostWrites", "StaleReads", "Convergence",
    "HerdPeak", "ClockSkew",
}


def test_the_public_surface_is_pinned():
    assert set(chaos.__all__) == PUBLIC
    assert len(chaos.__all__) == len(set(chaos.__all__))
    assert set(chaos._WHERE) == PUBLIC  # every public name is importable lazily
    for name in chaos.__all__:
        assert getattr(chaos, name) is not None


def test_public_classes_say_what_they_are():
    for name in chaos.__all__:
        obj = getattr(chaos, name)
        if isinstance(obj, type) or callable(obj):
            doc = (obj.__doc__ or "").strip()
            assert doc and not doc.startswith(f"{name}("), f"chaos.{name} has no docstring"


def test_the_pytest_plugin_is_an_entry_point():
    points = importlib.metadata.entry_points(group="pytest11")
    assert any(p.name == "chaoslab" and p.value == "chaos.pytest_plugin" for p in points)
