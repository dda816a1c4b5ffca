"""system/config.py: flags win over CHAOSLAB_* variables, which win over defaults; bad input
ends in a clean usage error, never a traceback."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from system.backoff import Backoff
from system.config import (
    ClientConfig,
    ClusterSettings,
    NodeConfig,
    RegistryConfig,
    parse_node_args,
    parse_registry_args,
)
from system.launch import cluster_argv
from system.quorum import QuorumConfig

pytestmark = pytest.mark.unit


def node(*argv: str, **env: str) -> NodeConfig:
    return parse_node_args(["--id", "n1", *argv], env)


def usage_error(capsys, parse, argv, env) -> str:
    """Run a parser expecting argparse's clean exit (status 2); return its stderr."""
    with pytest.raises(SystemExit) as err:
        parse(argv, env)
    assert err.value.code == 2
    return capsys.readouterr().err


# ---- defaults ---------------------------------------------------------------------------


def test_node_defaults():
    c = node()
    assert (c.id, c.host, c.port, c.advertise) == ("n1", "127.0.0.1", 5001, "127.0.0.1:5001")
    assert (c.registry, c.data_dir, c.storage) == ("http://127.0.0.1:5000", "./data", "durable")
    assert (c.load_factor, c.workers, c.request_timeout, c.handoff_interval, c.log_level) == \
        (0, 1, 1.0, 0.5, "info")
    assert c.cluster == ClusterSettings()


def test_cluster_defaults():
    s = ClusterSettings()
    assert (s.n, s.w, s.r, s.vnodes, s.versions) == (3, 2, 2, 64, "hlc")
    assert (s.heartbeat_interval, s.suspect_after, s.dead_after) == (2.0, 2, 3)
    assert s.quorum == QuorumConfig(3, 2, 2)


@pytest.mark.parametrize("rate", [-1.0, float("inf"), float("nan")])
def test_a_handoff_rate_must_be_zero_or_positive(rate):
    with pytest.raises(ValueError, match="handoff rate"):
        ClusterSettings(handoff_rate=rate)


def test_the_handoff_rate_is_a_cluster_flag():
    assert ClusterSettings().handoff_rate == 250.0
    c = parse_node_args(["--id", "n1", "--handoff-rate", "0"], {})
    assert c.cluster.handoff_rate == 0.0
    assert "--handoff-rate=0.0" in cluster_argv(c.cluster)


def test_registry_defaults():
    c = parse_registry_args([], {})
    assert (c.host, c.port, c.advertise, c.admin_token, c.links) == \
        ("127.0.0.1", 5000, "127.0.0.1:5000", "", "")
    assert (c.launcher, c.node_data_root, c.node_storage) == ("local", "./data", "durable")
    assert c.cluster == ClusterSettings()


def test_configs_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        node().port = 1  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        ClusterSettings().n = 5  # type: ignore[misc]


# ---- precedence -------------------------------------------------------------------------


def test_flags_override_env_which_overrides_defaults():
    env = {"CHAOSLAB_PORT": "6000", "CHAOSLAB_HOST": "0.0.0.0", "CHAOSLAB_W": "3"}
    c = node("--port", "7000", "--w", "1", **env)
    assert c.port == 7000 and c.cluster.w == 1  # flags win
    assert c.host == "0.0.0.0"  # env beats the default
    assert c.cluster.r == 2  # default


def test_a_falsy_flag_still_wins_over_env():
    c = node("--load-factor", "0", "--advertise", "", CHAOSLAB_LOAD_FACTOR="9")
    assert c.load_factor == 0
    assert c.advertise == "127.0.0.1:5001"  # an empty advertise still means host:port


@settings(deadline=None)
@given(st.none() | st.integers(1, 65535), st.none() | st.integers(1, 65535))
def test_port_precedence(flag, env):
    argv = [] if flag is None else ["--port", str(flag)]
    environ = {} if env is None else {"CHAOSLAB_PORT": str(env)}
    expected = flag if flag is not None else env if env is not None else 5001
    assert node(*argv, **environ).port == expected


NODE_ENV = [
    ("host", "CHAOSLAB_HOST", "10.0.0.1", "10.0.0.1"),
    ("port", "CHAOSLAB_PORT", "6001", 6001),
    ("advertise", "CHAOSLAB_ADVERTISE", "proxy:9000", "proxy:9000"),
    ("registry", "CHAOSLAB_REGISTRY", "http://reg:1", "http://reg:1"),
    ("data_dir", "CHAOSLAB_DATA_DIR", "/tmp/x", "/tmp/x"),
    ("storage", "CHAOSLAB_STORAGE", "memory", "memory"),
    ("load_factor", "CHAOSLAB_LOAD_FACTOR", "50", 50),
    ("workers", "CHAOSLAB_WORKERS", "4", 4),
    ("request_timeout", "CHAOSLAB_REQUEST_TIMEOUT", "2.5", 2.5),
    ("handoff_interval", "CHAOSLAB_HANDOFF_INTERVAL", "0.25", 0.25),
    ("log_level", "CHAOSLAB_LOG_LEVEL", "debug", "debug"),
    ("log_format", "CHAOSLAB_LOG_FORMAT", "json", "json"),
    ("clock_skew_ms", "CHAOSLAB_CLOCK_SKEW_MS", "-2500", -2500),
    ("seed", "CHAOSLAB_SEED", "7", 7),
]


@pytest.mark.parametrize("field,var,raw,value", NODE_ENV)
def test_every_node_field_has_an_environment_variable(field, var, raw, value):
    got = getattr(node(**{var: raw}), field)
    assert got == value and type(got) is type(value)


def test_the_env_table_covers_every_node_field():
    covered = {f for f, *_ in NODE_ENV} | {"id", "cluster"}
    assert covered == {f.name for f in dataclasses.fields(NodeConfig)}


CLUSTER_ENV = [
    ("n", "CHAOSLAB_N", "5", 5),
    ("w", "CHAOSLAB_W", "3", 3),
    ("r", "CHAOSLAB_R", "1", 1),
    ("vnodes", "CHAOSLAB_VNODES", "16", 16),
    ("versions", "CHAOSLAB_VERSIONS", "wallclock", "wallclock"),
    ("heartbeat_interval", "CHAOSLAB_HEARTBEAT_INTERVAL", "0.5", 0.5),
    ("suspect_after", "CHAOSLAB_SUSPECT_AFTER", "3", 3),
    ("dead_after", "CHAOSLAB_DEAD_AFTER", "7", 7),
]


@pytest.mark.parametrize("parse", [lambda e: parse_node_args(["--id", "x"], e),
                                   lambda e: parse_registry_args([], e)], ids=["node", "registry"])
@pytest.mark.parametrize("field,var,raw,value", CLUSTER_ENV)
def test_every_cluster_setting_has_an_environment_variable(parse, field, var, raw, value):
    env = {var: raw, "CHAOSLAB_N": "5"} if field in ("w", "r") else {var: raw}
    assert getattr(parse(env).cluster, field) == value


def test_every_cluster_setting_has_a_flag():
    c = node("--n", "5", "--w", "3", "--r", "3", "--vnodes", "8", "--versions", "wallclock",
             "--heartbeat-interval", "0.5", "--suspect-after", "4", "--dead-after", "6")
    assert c.cluster == ClusterSettings(5, 3, 3, 8, "wallclock", 0.5, 4, 6)


def test_registry_flags_and_env():
    c = parse_registry_args(
        ["--port", "7000", "--admin-token", "s3cret", "--launcher", "delegated",
         "--node-storage", "memory"],
        {"CHAOSLAB_PORT": "1", "CHAOSLAB_LINKS": "/links.json", "CHAOSLAB_NODE_DATA_ROOT": "/d",
         "CHAOSLAB_REQUEST_TIMEOUT": "3", "CHAOSLAB_LOG_LEVEL": "info", "CHAOSLAB_HOST": "h"})
    assert (c.port, c.admin_token, c.launcher, c.node_storage) == (7000, "s3cret", "delegated", "memory")
    assert (c.links, c.node_data_root, c.request_timeout, c.log_level) == ("/links.json", "/d", 3.0, "info")
    assert c.advertise == "h:7000"


def test_registry_seed_from_flag_or_env_flag_winning():
    assert parse_registry_args([], {}).seed is None  # unseeded unless asked
    assert parse_registry_args(["--seed", "42"], {}).seed == 42
    assert parse_registry_args([], {"CHAOSLAB_SEED": "7"}).seed == 7
    assert parse_registry_args(["--seed", "0"], {"CHAOSLAB_SEED": "7"}).seed == 0


def test_a_bad_registry_seed_is_a_clean_error(capsys):
    assert "argument --seed: invalid int value: 'x'" in \
        usage_error(capsys, parse_registry_args, ["--seed", "x"], {})
    with pytest.raises(SystemExit) as err:
        parse_registry_args([], {"CHAOSLAB_SEED": "x"})
    assert err.value.code == "CHAOSLAB_SEED='x' is not a valid int"


def test_unrelated_and_unprefixed_variables_are_ignored():
    c = node(PORT="1", chaoslab_port="2", CHAOSLAB_PORTS="3", CHAOSLAB_CLUSTER="x")
    assert c.port == 5001 and c.cluster == ClusterSettings()


def test_without_an_env_argument_the_process_environment_is_read(monkeypatch):
    monkeypatch.setenv("CHAOSLAB_ID", "from-env")
    monkeypatch.setenv("CHAOSLAB_PORT", "6123")
    c = parse_node_args([])
    assert (c.id, c.port) == ("from-env", 6123)
    assert parse_node_args([], {"CHAOSLAB_ID": "given"}).port == 5001  # an explicit env wins


# ---- node id and advertise --------------------------------------------------------------


def test_node_id_from_flag_or_env_flag_winning():
    assert parse_node_args([], {"CHAOSLAB_ID": "e"}).id == "e"
    assert parse_node_args(["--id", "f"], {"CHAOSLAB_ID": "e"}).id == "f"


@pytest.mark.parametrize("argv,env", [([], {}), ([], {"CHAOSLAB_ID": ""}), (["--id", ""], {})])
def test_a_missing_node_id_is_a_usage_error(capsys, argv, env):
    err = usage_error(capsys, parse_node_args, argv, env)
    assert "--id is required (or set CHAOSLAB_ID)" in err and "usage:" in err


def test_advertise_defaults_to_host_port_and_follows_them():
    assert node("--host", "0.0.0.0", "--port", "7001").advertise == "0.0.0.0:7001"
    assert node(CHAOSLAB_HOST="10.1.1.1", CHAOSLAB_PORT="7002").advertise == "10.1.1.1:7002"
    assert node("--advertise", "proxy:1", "--port", "7001").advertise == "proxy:1"
    assert NodeConfig(id="a", host="h", port=1).advertise == "h:1"
    assert parse_registry_args(["--port", "7003"], {}).advertise == "127.0.0.1:7003"
    assert parse_registry_args(["--advertise", "reg:80"], {}).advertise == "reg:80"


# ---- bad input: clean errors, no tracebacks ---------------------------------------------


@pytest.mark.parametrize("argv,expected", [
    (["--port", "http"], "argument --port: invalid int value: 'http'"),
    (["--request-timeout", "soon"], "argument --request-timeout: invalid float value"),
    (["--storage", "tape"], "argument --storage: invalid choice: 'tape'"),
    (["--versions", "lamport"], "argument --versions: invalid choice"),
    (["--no-such-flag"], "unrecognized arguments: --no-such-flag"),
    (["--w", "4"], "W must be between 1 and N=3, got 4"),
    (["--n", "0"], "N must be at least 1, got 0"),
    (["--heartbeat-interval", "0"], "heartbeat interval must be positive"),
])
def test_bad_node_flags_are_usage_errors(capsys, argv, expected):
    assert expected in usage_error(capsys, parse_node_args, ["--id", "a", *argv], {})


@pytest.mark.parametrize("env,expected", [
    ({"CHAOSLAB_STORAGE": "tape"}, "storage must be 'durable' or 'memory', got 'tape'"),
    ({"CHAOSLAB_VERSIONS": "lamport"}, "versions must be 'hlc' or 'wallclock', got 'lamport'"),
    ({"CHAOSLAB_R": "9"}, "R must be between 1 and N=3, got 9"),
    ({"CHAOSLAB_N": "1"}, "W must be between 1 and N=1, got 2"),
    ({"CHAOSLAB_HEARTBEAT_INTERVAL": "-1"}, "heartbeat interval must be positive"),
])
def test_bad_node_env_values_are_usage_errors(capsys, env, expected):
    assert expected in usage_error(capsys, parse_node_args, ["--id", "a"], env)


@pytest.mark.parametrize("var,raw,kind", [
    ("CHAOSLAB_PORT", "http", "int"), ("CHAOSLAB_PORT", "", "int"),
    ("CHAOSLAB_N", "3.0", "int"), ("CHAOSLAB_REQUEST_TIMEOUT", "soon", "float"),
    ("CHAOSLAB_HEARTBEAT_INTERVAL", "2s", "float"),
])
def test_unparsable_env_values_exit_naming_the_variable(var, raw, kind):
    with pytest.raises(SystemExit) as err:
        node(**{var: raw})
    assert err.value.code == f"{var}={raw!r} is not a valid {kind}"


@pytest.mark.parametrize("argv,env,expected", [
    (["--launcher", "k8s"], {}, "argument --launcher: invalid choice"),
    ([], {"CHAOSLAB_LAUNCHER": "k8s"}, "launcher must be local, delegated or none, got 'k8s'"),
    (["--node-storage", "tape"], {}, "argument --node-storage: invalid choice"),
    (["--r", "0"], {}, "R must be between 1 and N=3, got 0"),
    ([], {"CHAOSLAB_VERSIONS": "x"}, "versions must be 'hlc' or 'wallclock'"),
])
def test_bad_registry_input_is_a_usage_error(capsys, argv, env, expected):
    assert expected in usage_error(capsys, parse_registry_args, argv, env)


@pytest.mark.parametrize("argv", [["--vnodes", "0"], ["--suspect-after", "4"],
                                  ["--suspect-after", "0", "--dead-after", "0"],
                                  ["--heartbeat-interval", "nan"]],
                         ids=["vnodes0", "suspect-after-dead", "zero-intervals", "nan-interval"])
def test_bad_cluster_timing_and_vnodes_are_usage_errors(capsys, argv):
    usage_error(capsys, parse_registry_args, argv, {})


def test_bad_node_storage_from_env_is_a_usage_error(capsys):
    usage_error(capsys, parse_registry_args, [], {"CHAOSLAB_NODE_STORAGE": "tape"})


# ---- the value objects themselves -------------------------------------------------------


def test_settings_objects_validate_when_built_directly():
    with pytest.raises(ValueError, match="W must be between"):
        ClusterSettings(w=5)
    with pytest.raises(ValueError, match="versions must be"):
        ClusterSettings(versions="vector")
    with pytest.raises(ValueError, match="heartbeat interval must be positive"):
        ClusterSettings(heartbeat_interval=0)
    with pytest.raises(ValueError, match="storage must be"):
        NodeConfig(id="a", storage="tape")
    with pytest.raises(ValueError, match="launcher must be"):
        RegistryConfig(launcher="k8s")
    with pytest.raises(ValueError, match="jitter must be one of"):
        ClientConfig(jitter="equal")


def test_client_config_builds_its_backoff():
    c = ClientConfig(backoff_base=0.02, backoff_cap=0.4, jitter="decorrelated")
    assert c.backoff == Backoff(0.02, 0.4, "decorrelated")
    assert ClientConfig().backoff == Backoff()
    assert ClientConfig().seed is None and ClientConfig().cluster.quorum.strong
