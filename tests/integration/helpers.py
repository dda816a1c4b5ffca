"""Helpers for integration tests: clients bound to a runtime, polling reads."""

from __future__ import annotations

import httpx

from chaos.wait import wait_for
from system.client import SyncClient
from system.config import ClientConfig, ClusterSettings


def client_for(rt, *, settings: ClusterSettings | None = None, **kw) -> SyncClient:
    settings = settings or rt.spec.settings
    cfg = ClientConfig(registry=rt.endpoints().registry, cluster=settings,
                       **{"request_timeout": 0.5, "refresh_interval": 0.2, "seed": 1, **kw})
    return SyncClient(cfg)


def node_stats(rt, node_id: str) -> dict:
    return httpx.get(f"{rt.node_url(node_id)}/stats", timeout=2).json()


def node_value(rt, node_id: str, key: str) -> str | None:
    r = httpx.get(f"{rt.node_url(node_id)}/data/{key}", timeout=2)
    return r.json()["value"] if r.status_code == 200 else None


def wait_node_has(rt, node_id: str, expected: dict[str, str], timeout: float = 15.0) -> None:
    def caught_up() -> bool:
        return all(node_value(rt, node_id, k) == v for k, v in expected.items())
    wait_for(caught_up, timeout=timeout, interval=0.2,
             description=f"{node_id} to hold {len(expected)} expected values")


def admin(rt, method: str, path: str, **kw) -> httpx.Response:
    ep = rt.endpoints()
    return httpx.request(method, f"{ep.registry_direct}{path}", timeout=10,
                         headers={"authorization": f"Bearer {ep.admin_token}"}, **kw)
