"""The example of docs/writing-scenarios.md, run as a test so the tutorial cannot rot."""

import pytest

import chaos

pytestmark = pytest.mark.chaos


def test_isolated_node_loses_no_acknowledged_write(chaos_run):
    result = chaos_run(chaos.Scenario(
        name="isolate-node-1",
        workload=chaos.Workload(duration=8, users=8),
        schedule=chaos.Schedule.single(chaos.Partition.isolating("node-1"), at=2, duration=4),
        checkers=(chaos.Availability(min_ratio=0.95), chaos.NoLostWrites()),
    ))
    assert result.valid, result.explain()
