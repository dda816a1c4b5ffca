"""What the harness reads from the nodes themselves after a run, through their own HTTP API
(the direct URLs, not through the mesh): each replica's copies and versions for the
convergence checker, and the arrival counts per 100 ms for the herd checker."""

from __future__ import annotations

import logging
from typing import Any

import httpx

from chaos.wait import WaitTimeout, wait_for

__all__ = ["node_arrivals", "replica_versions", "wait_until_quiet", "wait_until_registered"]

log = logging.getLogger("chaoslab.observe")

PAGE = 10_000


def node_arrivals(runtime: Any, *, t0: float) -> dict[str, list[tuple[float, float]]]:
    """Each node's replica requests per 100 ms (``GET /stats/arrivals``) on a history's axis
    (``t0``). The node's monotonic clock is the host's (local processes and containers share
    the kernel's); a node that cannot answer is left out."""
    series = {}
    for node in runtime.node_ids():
        try:
            reply = httpx.get(f"{runtime.node_url(node)}/stats/arrivals", timeout=2.0)
            buckets = reply.json()["buckets"] if reply.status_code == 200 else None
        except (httpx.HTTPError, ValueError, KeyError) as exc:
            log.info("no arrival counts from %s: %s", node, exc)
            continue
        if buckets:
            series[f"arrivals:{node}"] = [(round(t - t0, 3), n) for t, n in buckets]
    return series


def wait_until_quiet(runtime: Any, *, timeout: float = 15.0) -> float:
    """Poll every node until none holds an undelivered hint (hinted handoff has caught up);
    return the seconds it took, or ``timeout`` if it never did."""
    def quiet() -> bool:
        for node in runtime.node_ids():
            try:
                stats = httpx.get(f"{runtime.node_url(node)}/stats", timeout=2.0).json()
            except (httpx.HTTPError, ValueError):
                return False
            if any(stats.get("hints", {}).values()):
                return False
        return True

    try:
        return wait_for(quiet, timeout=timeout, interval=0.2, description="hints delivered")
    except WaitTimeout:
        return timeout


def wait_until_registered(runtime: Any, *, timeout: float = 10.0) -> float:
    """Poll the registry until it lists every node again: one that restarted (the
    registry-down fault's heal) learns them from their next heartbeats, and a client that
    starts before that gets a partial ring. Returns the seconds it took; at once when the
    registry keeps no member list (an external gateway), ``timeout`` if it never did."""
    url, wanted = runtime.endpoints().registry_direct, set(runtime.node_ids())

    def listed() -> bool:
        try:
            reply = httpx.get(f"{url}/nodes?view=client", timeout=2.0)
            members = reply.json()["members"] if reply.status_code == 200 else None
        except (httpx.HTTPError, ValueError, KeyError, TypeError):
            return False
        if members is None:  # answers, but keeps no list: nothing to wait for
            return True
        return wanted <= {m.get("id") for m in members if m.get("status") != "left"}

    try:
        took = wait_for(listed, timeout=timeout, interval=0.1, description="every node registered")
    except WaitTimeout:
        log.info("the registry did not list every node within %ss", timeout)
        return timeout
    return took


def replica_versions(runtime: Any) -> dict[str, dict[str, tuple]]:
    """node -> key -> version of every copy each node holds (``GET /keys?versions=true``);
    a node that cannot answer is left out."""
    out: dict[str, dict[str, tuple]] = {}
    for node in runtime.node_ids():
        copies: dict[str, tuple] = {}
        after = ""
        try:
            while True:
                reply = httpx.get(f"{runtime.node_url(node)}/keys", timeout=10.0,
                                  params={"after": after, "limit": PAGE, "versions": "true"})
                reply.raise_for_status()
                page = reply.json()
                copies.update(zip(page["keys"], map(tuple, page["versions"]), strict=True))
                if not page["next"]:
                    break
                after = page["next"]
        except (httpx.HTTPError, ValueError, KeyError) as exc:
            log.info("no copies from %s: %s", node, exc)
            continue
        out[node] = copies
    return out
