"""What every runtime backend shares: registry admin calls, the launch agent that fulfils the
registry's delegated ``/scale-up`` and ``/kill``, and waiting for the registry to see nodes."""

from __future__ import annotations

import contextlib
import logging
import threading

import httpx

from chaos.wait import wait_for

__all__ = ["RegistryAdmin"]

log = logging.getLogger("chaoslab.runtime")


class RegistryAdmin:
    """Mixin: needs ``registry_admin_url`` (str), ``admin_token``, ``ready_timeout`` and the
    runtime verbs ``add_node`` and ``kill``."""

    registry_admin_url: str
    admin_token: str
    ready_timeout: float

    def _init_admin(self) -> None:
        self._agent: threading.Thread | None = None
        self._stopping = threading.Event()

    def _admin(self, method: str, path: str, body: dict | None = None) -> dict:
        r = httpx.request(method, f"{self.registry_admin_url}{path}", json=body, timeout=5,
                          headers={"authorization": f"Bearer {self.admin_token}"})
        r.raise_for_status()
        return r.json()

    def _alive_count(self, ids: list[str]) -> int:
        status = httpx.get(f"{self.registry_admin_url}/cluster-status", timeout=2).json()
        return sum(1 for n in status["nodes"] if n["id"] in ids and n["status"] == "alive")

    def _wait_alive(self, ids: list[str]) -> None:
        wait_for(lambda: self._alive_count(ids) == len(ids), timeout=self.ready_timeout,
                 description=f"the registry to see {', '.join(ids)} alive")

    def _start_agent(self) -> None:
        self._agent = threading.Thread(target=self._launch_agent, name="launch-agent", daemon=True)
        self._agent.start()

    def _stop_agent(self) -> None:
        self._stopping.set()
        if self._agent is not None:
            self._agent.join(timeout=2)

    def _launch_agent(self) -> None:
        """Fulfil the registry's /scale-up and /kill requests: the registry has no rights over
        processes or containers (no Docker socket); the harness owns them."""
        while not self._stopping.wait(0.2):
            try:
                pending = self._admin("GET", "/admin/launches")["pending"]
            except (httpx.HTTPError, KeyError):
                continue
            for req in pending:
                ok, detail = True, ""
                try:
                    if req["action"] == "launch":
                        self.add_node(req["node_id"])
                        detail = f"started {req['node_id']}"
                    else:
                        self.kill(req["node_id"])
                        detail = f"killed {req['node_id']}"
                except Exception as exc:  # reported to the registry, which reports it on
                    ok, detail = False, f"{type(exc).__name__}: {exc}"
                    log.warning("launch request %s failed: %s", req, detail)
                with contextlib.suppress(httpx.HTTPError):
                    self._admin("POST", f"/admin/launches/{req['id']}", {"ok": ok, "detail": detail})

