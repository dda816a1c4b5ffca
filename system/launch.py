"""How the services are started: the only place that knows their command lines.

Everything that starts a registry or a node (the harness's local and Docker runtimes, the
registry's own local launcher) builds its command here, so a flag added to
:mod:`system.config` is passed everywhere or nowhere. ``python`` is the interpreter to run:
this one by default, ``"python"`` inside the image.
"""

from __future__ import annotations

import random
import socket
import sys

from system.config import ClusterSettings

__all__ = ["free_port", "cluster_argv", "node_argv", "registry_argv"]


def _ephemeral_range() -> tuple[int, int]:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as fh:
            low, high = (int(v) for v in fh.read().split())
            return low, high
    except (OSError, ValueError):
        return 32768, 60999  # Linux's default


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago, for a service whose address must be known
    before it starts (its proxies point at it).

    It is drawn below the kernel's ephemeral range: a port from that range can be taken by
    any outgoing connection on the machine (a load generator's, say) between this check and
    the service's bind; below it, only another program binding on purpose could."""
    low, _ = _ephemeral_range()
    rng = random.SystemRandom()
    if low > 11000:
        for _ in range(50):
            port = rng.randrange(10000, low)
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                try:
                    sock.bind((host, port))
                except OSError:
                    continue
                return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def cluster_argv(settings: ClusterSettings) -> list[str]:
    """The flags every participant must agree on (see ``ClusterSettings``)."""
    s = settings
    return [f"--n={s.n}", f"--w={s.w}", f"--r={s.r}", f"--vnodes={s.vnodes}",
            f"--versions={s.versions}", f"--heartbeat-interval={s.heartbeat_interval}",
            f"--suspect-after={s.suspect_after}", f"--dead-after={s.dead_after}",
            f"--repair={s.repair}", f"--handoff-rate={s.handoff_rate}"]


def node_argv(settings: ClusterSettings, *, node_id: str, port: int, registry: str,
              data_dir: str, storage: str = "durable", host: str | None = None,
              advertise: str | None = None, load_factor: int = 0, workers: int = 1,
              log_level: str = "info", seed: int | None = None, clock_skew_ms: int = 0,
              python: str = sys.executable) -> list[str]:
    """``python -m system.node ...``; ``registry`` is a URL, ``advertise`` the ``host:port``
    the others use (default ``host:port``); ``seed`` seeds the node gateway's retry jitter."""
    argv = [python, "-m", "system.node", "--id", node_id, "--port", str(port),
            "--registry", registry, "--data-dir", data_dir, "--storage", storage,
            "--load-factor", str(load_factor), "--workers", str(workers),
            "--log-level", log_level]
    if seed is not None:
        argv += ["--seed", str(seed)]
    if clock_skew_ms:
        argv += ["--clock-skew-ms", str(clock_skew_ms)]
    if host is not None:
        argv += ["--host", host]
    if advertise is not None:
        argv += ["--advertise", advertise]
    return argv + cluster_argv(settings)


def registry_argv(settings: ClusterSettings, *, port: int, admin_token: str,
                  launcher: str = "delegated", host: str | None = None,
                  advertise: str | None = None, links: str | None = None,
                  seed: int | None = None, log_level: str = "info",
                  python: str = sys.executable) -> list[str]:
    """``python -m system.registry ...``; ``seed`` seeds the gateway's retry jitter."""
    argv = [python, "-m", "system.registry", "--port", str(port), "--admin-token", admin_token,
            "--launcher", launcher, "--log-level", log_level]
    if host is not None:
        argv += ["--host", host]
    if advertise is not None:
        argv += ["--advertise", advertise]
    if links is not None:
        argv += ["--links", links]
    if seed is not None:
        argv += ["--seed", str(seed)]
    return argv + cluster_argv(settings)
