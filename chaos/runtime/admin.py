"""The harness's side of the registry's admin API: :class:`RegistryAdmin` makes the calls,
:class:`LaunchAgent` fulfils the registry's delegated ``/scale-up`` and ``/kill``.

The registry has no rights over processes or containers (no Docker socket): with
``--launcher delegated`` it queues launch and kill requests, and the runtime that owns the
services polls them here and answers each one.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable

import httpx

from chaos.wait import wait_for

__all__ = ["RegistryAdmin", "LaunchAgent"]

log = logging.getLogger("chaoslab.runtime")


class RegistryAdmin:
    """Admin calls to one registry over one HTTP client.

    ``url`` is called for every request, since a restarted container may come back on
    another host port."""

    def __init__(self, url: Callable[[], str], token: str, *, timeout: float = 5.0,
                 transport: httpx.BaseTransport | None = None) -> None:
        self._url = url
        self._http = httpx.Client(timeout=timeout, transport=transport,
                                  headers={"authorization": f"Bearer {token}"})

    def close(self) -> None:
        self._http.close()

    def call(self, method: str, path: str, body: object = None) -> dict:
        r = self._http.request(method, f"{self._url()}{path}", json=body)
        r.raise_for_status()
        return r.json()

    def adopt(self, node_ids: list[str]) -> None:
        """Nodes the harness started itself: the registry may kill them through the agent."""
        self.call("POST", "/admin/adopt", {"nodes": node_ids})

    def put_links(self, table: dict[str, dict[str, str]]) -> None:
        self.call("PUT", "/admin/links", table)

    def alive(self, node_ids: list[str]) -> list[str]:
        """Which of ``node_ids`` the registry sees alive."""
        status = self._http.get(f"{self._url()}/cluster-status", timeout=2).json()
        wanted = set(node_ids)
        return [n["id"] for n in status["nodes"] if n["id"] in wanted and n["status"] == "alive"]

    def members(self) -> set[str]:
        """The nodes the registry lists (alive or not; not those that left)."""
        status = self._http.get(f"{self._url()}/cluster-status", timeout=2).json()
        return {n["id"] for n in status["nodes"] if n["status"] != "left"}

    def wait_alive(self, node_ids: list[str], *, timeout: float) -> None:
        wait_for(lambda: len(self.alive(node_ids)) == len(node_ids), timeout=timeout,
                 description=f"the registry to see {', '.join(node_ids)} alive")


class LaunchAgent:
    """A thread that fulfils the registry's pending launch and kill requests by calling
    ``launch(node_id)`` and ``kill(node_id)`` (the runtime's ``add_node`` and ``kill``)."""

    def __init__(self, admin: RegistryAdmin, *, launch: Callable[[str], object],
                 kill: Callable[[str], None], interval: float = 0.2) -> None:
        self.admin = admin
        self._launch = launch
        self._kill = kill
        self.interval = interval
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._stopping.clear()
            self._thread = threading.Thread(target=self._run, name="launch-agent", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop polling (idempotent); a request being fulfilled is finished first."""
        self._stopping.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stopping.wait(self.interval):
            try:
                pending = self.admin.call("GET", "/admin/launches")["pending"]
            except (httpx.HTTPError, KeyError, ValueError):
                continue  # the registry may be down (a fault); try again on the next tick
            for request in pending:
                if self._stopping.is_set():
                    return
                self.fulfil(request)

    def fulfil(self, request: dict) -> None:
        """Do one request and report the outcome to the registry."""
        node = request["node_id"]
        ok, detail = True, ""
        try:
            if request["action"] == "launch":
                self._launch(node)
                detail = f"started {node}"
            else:
                self._kill(node)
                detail = f"killed {node}"
        except Exception as exc:  # reported to the registry, which reports it on
            ok, detail = False, f"{type(exc).__name__}: {exc}"
            log.warning("launch request %s failed: %s", request, detail)
        with contextlib.suppress(httpx.HTTPError):
            self.admin.call("POST", f"/admin/launches/{request['id']}",
                            {"ok": ok, "detail": detail})
