"""Configuration of the services, read once from the command line and the environment.

Every flag has an environment variable ``CHAOSLAB_<FLAG>`` (upper case, dashes as
underscores); a flag given on the command line wins. The result is one frozen object passed
to keyword-only constructors. This is the only module of ``system`` that reads ``os.environ``.
"""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields

from system.backoff import JITTER_KINDS, Backoff
from system.quorum import QuorumConfig
from system.versions import check_skew

LOG_FORMATS = ("text", "json")  # text: for people; json: one object per line, with request ids

__all__ = ["ClusterSettings", "NodeConfig", "RegistryConfig", "ClientConfig", "parse_node_args",
           "parse_registry_args"]


@dataclass(frozen=True, slots=True)
class ClusterSettings:
    """Settings every participant must agree on."""

    n: int = 3
    w: int = 2
    r: int = 2
    vnodes: int = 64
    versions: str = "hlc"  # hlc | wallclock (weakened)
    heartbeat_interval: float = 2.0
    suspect_after: int = 2
    dead_after: int = 3
    repair: str = "on"  # on | off (weakened: no hinted handoff, no read repair)
    # records per second a node hands off to one peer (hints it kept while the peer was away,
    # keys it moves to a new owner), in small batches with jittered gaps, so that a node coming
    # back is not flooded by every peer at once; 0: all at once (weakened: a herd)
    handoff_rate: float = 250.0

    def __post_init__(self) -> None:
        QuorumConfig(self.n, self.w, self.r)  # validates
        if not (math.isfinite(self.handoff_rate) and self.handoff_rate >= 0):
            raise ValueError(f"handoff rate must be 0 (unpaced) or a positive number of records "
                             f"per second, got {self.handoff_rate}")
        if self.repair not in ("on", "off"):
            raise ValueError(f"repair must be 'on' or 'off', got {self.repair!r}")
        if self.versions not in ("hlc", "wallclock"):
            raise ValueError(f"versions must be 'hlc' or 'wallclock', got {self.versions!r}")
        if not (math.isfinite(self.heartbeat_interval) and self.heartbeat_interval > 0):
            raise ValueError(f"heartbeat interval must be positive, in seconds; "
                             f"got {self.heartbeat_interval}")
        if self.vnodes < 1:
            raise ValueError(f"vnodes must be at least 1, got {self.vnodes}")
        if not 0 < self.suspect_after <= self.dead_after:
            raise ValueError(f"need 0 < suspect-after <= dead-after, got {self.suspect_after} "
                             f"and {self.dead_after}")

    @property
    def quorum(self) -> QuorumConfig:
        return QuorumConfig(self.n, self.w, self.r)


@dataclass(frozen=True, slots=True)
class NodeConfig:
    id: str
    host: str = "127.0.0.1"
    port: int = 5001
    advertise: str = ""  # host:port others use to reach this node; default host:port
    registry: str = "http://127.0.0.1:5000"
    data_dir: str = "./data"
    storage: str = "durable"  # durable | memory (weakened)
    load_factor: int = 0  # simulated CPU work per request (iterations of a hash loop)
    workers: int = 1
    request_timeout: float = 1.0
    handoff_interval: float = 0.5
    log_level: str = "info"
    log_format: str = "text"
    clock_skew_ms: int = 0  # this node's wall clock runs this far off (the clock-skew fault)
    seed: int | None = None  # the node gateway's randomness (retry jitter); None: unseeded
    cluster: ClusterSettings = field(default_factory=ClusterSettings)

    def __post_init__(self) -> None:
        if self.storage not in ("durable", "memory"):
            raise ValueError(f"storage must be 'durable' or 'memory', got {self.storage!r}")
        check_skew(self.clock_skew_ms)
        _check_log_format(self.log_format)
        if not self.advertise:
            object.__setattr__(self, "advertise", f"{self.host}:{self.port}")


@dataclass(frozen=True, slots=True)
class RegistryConfig:
    host: str = "127.0.0.1"
    port: int = 5000
    advertise: str = ""
    admin_token: str = ""  # empty: admin endpoints disabled
    links: str = ""  # JSON file {from_id: {to_id: "host:port"}}: per-link addresses (proxies)
    launcher: str = "local"  # local (spawn processes) | delegated (a harness launches) | none
    node_data_root: str = "./data"  # for the local launcher
    node_storage: str = "durable"
    request_timeout: float = 1.0
    log_level: str = "info"
    log_format: str = "text"
    seed: int | None = None  # the gateway's randomness (retry jitter); None: unseeded
    cluster: ClusterSettings = field(default_factory=ClusterSettings)

    def __post_init__(self) -> None:
        if self.node_storage not in ("durable", "memory"):
            raise ValueError(f"node_storage must be 'durable' or 'memory', got {self.node_storage!r}")
        if self.launcher not in ("local", "delegated", "none"):
            raise ValueError(f"launcher must be local, delegated or none, got {self.launcher!r}")
        _check_log_format(self.log_format)
        if not self.advertise:
            object.__setattr__(self, "advertise", f"{self.host}:{self.port}")


@dataclass(frozen=True, slots=True)
class ClientConfig:
    registry: str = "http://127.0.0.1:5000"
    view: str = "client"  # whose link addresses to use (see the registry's link table)
    request_timeout: float = 1.0
    retries: int = 3
    backoff_base: float = 0.01
    backoff_cap: float = 0.5
    jitter: str = "full"
    breaker_threshold: int = 3
    breaker_cooldown: float = 1.0
    refresh_interval: float = 1.0
    hedge_after: float = 0.0  # seconds; 0 disables hedged reads
    seed: int | None = None
    cluster: ClusterSettings = field(default_factory=ClusterSettings)

    def __post_init__(self) -> None:
        if self.jitter not in JITTER_KINDS:
            raise ValueError(f"jitter must be one of {JITTER_KINDS}, got {self.jitter!r}")
        Backoff(self.backoff_base, self.backoff_cap, self.jitter)  # validates base and cap

    @property
    def backoff(self) -> Backoff:
        return Backoff(self.backoff_base, self.backoff_cap, self.jitter)


def _check_log_format(value: str) -> None:
    if value not in LOG_FORMATS:
        raise ValueError(f"log format must be one of {', '.join(LOG_FORMATS)}, got {value!r} "
                         "(--log-format or CHAOSLAB_LOG_FORMAT)")


def _add_log_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--log-level", dest="log_level")
    p.add_argument("--log-format", dest="log_format", choices=LOG_FORMATS,
                   help="text (default) or json: one object per line with time, level, logger, "
                        "message, service and request_id")


def _add_cluster_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("cluster (must match on every participant)")
    g.add_argument("--n", type=int, help="replication factor N (default 3)")
    g.add_argument("--w", type=int, help="write quorum W (default 2)")
    g.add_argument("--r", type=int, help="read quorum R (default 2)")
    g.add_argument("--vnodes", type=int, help="virtual nodes per node (default 64)")
    g.add_argument("--versions", choices=["hlc", "wallclock"])
    g.add_argument("--heartbeat-interval", type=float)
    g.add_argument("--suspect-after", type=int, help="missed heartbeats before suspect")
    g.add_argument("--dead-after", type=int, help="missed heartbeats before dead")
    g.add_argument("--repair", choices=["on", "off"],
                   help="hinted handoff and read repair (off: a weakened mode, replicas diverge)")
    g.add_argument("--handoff-rate", type=float,
                   help="records/s handed off to one peer, paced with jitter (default 250; "
                        "0: all at once, a weakened mode that floods a node coming back)")


def _resolve(cls, args: argparse.Namespace, env: Mapping[str, str], **fixed):
    """Build ``cls`` from flags, falling back to CHAOSLAB_* variables, then to defaults."""
    values = dict(fixed)
    for f in fields(cls):
        if f.name in values or f.name == "cluster":
            continue
        given = getattr(args, f.name, None)
        if given is None:
            raw = env.get(f"CHAOSLAB_{f.name.upper()}")
            if raw is not None:
                given = _convert(f, raw)
        if given is not None:
            values[f.name] = given
    return cls(**values)


def _convert(f, raw: str):
    kind = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
    kind = kind.removesuffix(" | None")  # optional fields (seed) take the same values
    try:
        if kind.startswith("int"):
            return int(raw)
        if kind.startswith("float"):
            return float(raw)
    except ValueError as exc:
        raise SystemExit(f"CHAOSLAB_{f.name.upper()}={raw!r} is not a valid {kind}") from exc
    return raw


def _cluster(args, env) -> ClusterSettings:
    return _resolve(ClusterSettings, args, env)


def parse_node_args(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> NodeConfig:
    env = os.environ if env is None else env
    p = argparse.ArgumentParser(prog="python -m system.node", description="A storage node.")
    p.add_argument("--id", help="node id (required; or CHAOSLAB_ID)")
    p.add_argument("--host", help="bind address (default 127.0.0.1)")
    p.add_argument("--port", type=int)
    p.add_argument("--advertise", help="host:port other participants use (default host:port)")
    p.add_argument("--registry", help="registry URL (default http://127.0.0.1:5000)")
    p.add_argument("--data-dir", dest="data_dir")
    p.add_argument("--storage", choices=["durable", "memory"])
    p.add_argument("--load-factor", dest="load_factor", type=int)
    p.add_argument("--workers", type=int,
                   help="uvicorn worker processes (default 1); each serves its own /metrics")
    p.add_argument("--request-timeout", dest="request_timeout", type=float)
    p.add_argument("--handoff-interval", dest="handoff_interval", type=float)
    _add_log_args(p)
    p.add_argument("--clock-skew-ms", dest="clock_skew_ms", type=int,
                   help="run this node's wall clock this many ms off (versions it coordinates)")
    p.add_argument("--seed", type=int, help="seed of the node gateway's retry jitter")
    _add_cluster_args(p)
    args = p.parse_args(argv)
    node_id = args.id or env.get("CHAOSLAB_ID")
    if not node_id:
        p.error("--id is required (or set CHAOSLAB_ID)")
    try:
        return _resolve(NodeConfig, args, env, id=node_id, cluster=_cluster(args, env))
    except ValueError as exc:
        p.error(str(exc))


def parse_registry_args(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> RegistryConfig:
    env = os.environ if env is None else env
    p = argparse.ArgumentParser(prog="python -m system.registry",
                                description="Membership registry and quorum gateway.")
    p.add_argument("--host")
    p.add_argument("--port", type=int)
    p.add_argument("--advertise")
    p.add_argument("--admin-token", dest="admin_token",
                   help="bearer token for admin endpoints (none: admin disabled)")
    p.add_argument("--links", help="JSON file of per-link addresses {from: {to: host:port}}")
    p.add_argument("--launcher", choices=["local", "delegated", "none"])
    p.add_argument("--node-data-root", dest="node_data_root")
    p.add_argument("--node-storage", dest="node_storage", choices=["durable", "memory"])
    p.add_argument("--request-timeout", dest="request_timeout", type=float)
    _add_log_args(p)
    p.add_argument("--seed", type=int,
                   help="seed of the gateway's randomness (retry jitter); default: unseeded")
    _add_cluster_args(p)
    args = p.parse_args(argv)
    try:
        return _resolve(RegistryConfig, args, env, cluster=_cluster(args, env))
    except ValueError as exc:
        p.error(str(exc))
