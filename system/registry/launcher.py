"""How the registry's ``/scale-up`` and ``/kill`` reach real processes.

- :class:`LocalProcessLauncher` starts nodes as child processes on this host.
- :class:`DelegatedLauncher` queues requests that a harness (which owns the containers or
  processes, and the proxies in front of them) polls and fulfils through the admin API, so
  the registry never needs the Docker socket.
- :class:`NoLauncher` refuses.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from typing import Protocol

from system.config import ClusterSettings
from system.launch import free_port, node_argv
from system.validation import BadRequest

__all__ = ["Launcher", "LocalProcessLauncher", "DelegatedLauncher", "NoLauncher", "LaunchRequest"]


@dataclass
class LaunchRequest:
    id: int
    action: str  # launch | kill
    node_id: str
    state: str = "pending"  # pending | done | failed
    detail: str = ""
    created: float = field(default_factory=time.time)

    def as_json(self) -> dict:
        return {"id": self.id, "action": self.action, "node_id": self.node_id,
                "state": self.state, "detail": self.detail}


class Launcher(Protocol):
    name: str

    async def launch(self, node_id: str) -> dict: ...

    def owns(self, node_id: str) -> bool: ...

    async def kill(self, node_id: str) -> dict: ...

    async def close(self) -> None: ...


class NoLauncher:
    name = "none"

    async def launch(self, node_id: str) -> dict:
        raise BadRequest("scale-up needs a launcher: start the registry with --launcher local "
                         "or delegated", status=409)

    def owns(self, node_id: str) -> bool:
        return False

    async def kill(self, node_id: str) -> dict:
        raise BadRequest(f"{node_id} was not started by this registry", status=409)

    async def close(self) -> None:
        return None


class LocalProcessLauncher:
    """Starts ``python -m system.node`` children on 127.0.0.1."""

    name = "local"

    def __init__(self, *, registry_url: str, data_root: str, storage: str,
                 settings: ClusterSettings) -> None:
        """``settings`` are the cluster's: the nodes get all of them."""
        self.registry_url = registry_url
        self.data_root = data_root
        self.storage = storage
        self.settings = settings
        self.procs: dict[str, subprocess.Popen] = {}

    async def launch(self, node_id: str) -> dict:
        port = free_port()
        cmd = node_argv(self.settings, node_id=node_id, port=port, registry=self.registry_url,
                        data_dir=os.path.join(self.data_root, node_id), storage=self.storage)
        self.procs[node_id] = subprocess.Popen(cmd, start_new_session=True)
        return {"id": node_id, "address": f"127.0.0.1:{port}", "pid": self.procs[node_id].pid,
                "state": "started"}

    def owns(self, node_id: str) -> bool:
        proc = self.procs.get(node_id)
        return proc is not None and proc.poll() is None

    async def kill(self, node_id: str) -> dict:
        proc = self.procs[node_id]
        proc.send_signal(signal.SIGKILL)
        await asyncio.to_thread(proc.wait, 5)
        return {"id": node_id, "state": "killed", "pid": proc.pid}

    async def close(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                await asyncio.to_thread(proc.wait, 5)
            if proc.poll() is None:
                proc.kill()


class DelegatedLauncher:
    """Queues launch and kill requests for a harness that polls ``GET /admin/launches``."""

    name = "delegated"

    def __init__(self) -> None:
        self._ids = itertools.count(1)
        self.requests: dict[int, LaunchRequest] = {}
        self.launched: set[str] = set()

    async def launch(self, node_id: str) -> dict:
        req = LaunchRequest(next(self._ids), "launch", node_id)
        self.requests[req.id] = req
        return {"id": node_id, "request": req.id, "state": "pending"}

    def owns(self, node_id: str) -> bool:
        return node_id in self.launched

    async def kill(self, node_id: str) -> dict:
        req = LaunchRequest(next(self._ids), "kill", node_id)
        self.requests[req.id] = req
        return {"id": node_id, "request": req.id, "state": "pending"}

    def pending(self) -> list[dict]:
        return [r.as_json() for r in self.requests.values() if r.state == "pending"]

    def complete(self, request_id: int, *, ok: bool, detail: str) -> LaunchRequest:
        req = self.requests.get(request_id)
        if req is None:
            raise BadRequest(f"unknown launch request {request_id}", status=404)
        req.state = "done" if ok else "failed"
        req.detail = detail
        if ok and req.action == "launch":
            self.launched.add(req.node_id)
        return req

    def adopt(self, node_ids: list[str]) -> None:
        """Nodes the harness started itself and lets the registry kill through it."""
        self.launched.update(node_ids)

    async def close(self) -> None:
        return None
