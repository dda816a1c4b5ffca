"""The replay command `chaoslab run` prints: the recorded scenario on the same runtime and
cluster (an external cluster's gateway and control file included)."""

from __future__ import annotations

import shlex

import pytest

from chaos.cli import _replay_command

pytestmark = pytest.mark.unit


def test_the_replay_command_runs_the_recorded_scenario_on_the_same_runtime():
    assert _replay_command("reports/latest") == \
        "chaoslab run --scenario-file reports/latest/verdict.json"
    argv = shlex.split(_replay_command("out dir", runtime="external",
                                       gateway_url="http://127.0.0.1:9000",
                                       external_file="ctl.json"))
    assert argv == ["chaoslab", "run", "--scenario-file", "out dir/verdict.json", "--runtime",
                    "external", "--gateway-url", "http://127.0.0.1:9000", "--external-file",
                    "ctl.json"]
