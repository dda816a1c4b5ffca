"""What a running scenario publishes for the live dashboard: small JSON files in its run
directory, each replaced atomically (written aside, then renamed), so a reader in another
process never sees half a file.

- ``live.json`` (:class:`LiveStatus`, written by the scenario runner): where the cluster is
  (the registry, each node's direct URL), the scenario's name and seed, the writer's pid, and
  the faults active now (rewritten on every apply and heal of the nemesis).
- ``breakers-<pid>.json`` (:class:`BreakerBoard`, written by each Locust process that runs
  the smart client): the state of each node's circuit breaker as that client last saw it
  (rewritten on every transition).

Readers: :func:`read_live` and :func:`read_breakers` (:mod:`chaos.dashboard` uses them).
Times in these files are wall-clock seconds (``time.time()``), comparable across processes.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import orjson

__all__ = ["LiveStatus", "BreakerBoard", "read_live", "read_breakers", "pid_alive",
           "LIVE_FILE", "BREAKERS_GLOB"]

log = logging.getLogger("chaoslab.live")

LIVE_FILE = "live.json"
BREAKERS_GLOB = "breakers-*.json"


def _write_atomically(path: Path, data: Mapping[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_bytes(orjson.dumps(data))
    os.replace(tmp, path)


def pid_alive(pid: object) -> bool:
    """Whether a process with this pid exists on this host."""
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, owned by someone else
        return True
    return True


class LiveStatus:
    """The scenario runner's ``live.json``: the cluster's addresses and the faults active
    now. Create it once the runtime is up; :meth:`relay` wraps the nemesis's ``on_event`` so
    every apply and heal rewrites the file (after :meth:`watch` names the nemesis).

    Writing is best effort: a failure is logged and never disturbs the run."""

    def __init__(self, directory: str | Path, runtime: Any, *, scenario: str = "", seed: int = 0,
                 schedule: Any = None, wall: Callable[[], float] = time.time) -> None:
        self.path = Path(directory) / LIVE_FILE
        self.runtime = runtime
        self.scenario, self.seed = scenario, seed
        self._durations = {i: s.duration for i, s in enumerate(getattr(schedule, "steps", ()))}
        self._wall = wall
        self._nemesis: Any = None
        self._applied_at: dict[int, float] = {}  # id of an applied entry -> when first seen
        self._lock = threading.Lock()
        self.started = wall()
        for stale in Path(directory).glob(BREAKERS_GLOB):  # an earlier run's clients
            with contextlib.suppress(OSError):
                stale.unlink()
        self.publish()

    def watch(self, nemesis: Any) -> None:
        """Publish ``nemesis``'s active faults from now on."""
        self._nemesis = nemesis
        self.publish()

    def relay(self, then: Callable[[str], None]) -> Callable[[str], None]:
        """An ``on_event`` for the nemesis: ``then(message)``, then publish."""
        def on_event(message: str) -> None:
            then(message)
            self.publish()
        return on_event

    def faults(self) -> list[dict]:
        """The faults applied and not yet healed (a fault whose apply failed half-way
        counts: it is still undone)."""
        out = []
        now = self._wall()
        for entry in list(getattr(self._nemesis, "applied", ())):
            if entry.healed:
                continue
            since = self._applied_at.setdefault(id(entry), now)
            duration = self._durations.get(entry.step)
            out.append({"fault": entry.fault.describe(), "kind": entry.fault.kind,
                        "step": entry.step, "applied_at": since,
                        "heals_at": None if duration is None else since + duration})
        return out

    def as_json(self) -> dict:
        rt = self.runtime
        endpoints, nodes = {}, {}
        try:  # a runtime being stopped, or one that cannot say: publish what is known
            ep = rt.endpoints()
            endpoints = {"registry": ep.registry, "registry_direct": ep.registry_direct,
                         "proxy_api": ep.proxy_api}
            for node in rt.node_ids():
                nodes[node] = rt.node_url(node)
        except Exception as exc:  # noqa: BLE001 - never disturbs the run
            log.debug("live status without some addresses: %s", exc)
        return {"pid": os.getpid(), "scenario": self.scenario, "seed": self.seed,
                "runtime": getattr(rt, "name", None), "started": self.started,
                "updated": self._wall(), **endpoints, "nodes": nodes, "faults": self.faults()}

    def publish(self) -> None:
        with self._lock:
            try:
                _write_atomically(self.path, self.as_json())
            except OSError as exc:
                log.warning("cannot publish the live status to %s: %s", self.path, exc)


class BreakerBoard:
    """One client's circuit breakers, published to ``directory/breakers-<pid>.json`` on every
    transition (:meth:`moved` is the client's ``on_breaker``-style callback). Thread-safe:
    the smart client calls it from its loop thread."""

    def __init__(self, directory: str | Path, *, client: str, threshold: int | None = None,
                 cooldown: float | None = None, wall: Callable[[], float] = time.time) -> None:
        self.path = Path(directory) / f"breakers-{os.getpid()}.json"
        self.client, self.threshold, self.cooldown = client, threshold, cooldown
        self._wall = wall
        self._states: dict[str, dict] = {}
        self._lock = threading.Lock()
        self._publish()

    def moved(self, node: str, old: object, new: object) -> None:
        with self._lock:
            self._states[node] = {"state": str(new), "since": self._wall()}
        self._publish()

    def as_json(self) -> dict:
        with self._lock:
            return {"pid": os.getpid(), "client": self.client, "threshold": self.threshold,
                    "cooldown": self.cooldown, "updated": self._wall(),
                    "breakers": dict(self._states)}

    def _publish(self) -> None:
        try:
            _write_atomically(self.path, self.as_json())
        except OSError as exc:
            log.warning("cannot publish breaker states to %s: %s", self.path, exc)


def _read(path: Path) -> dict | None:
    try:
        data = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def read_live(directory: str | Path) -> dict | None:
    """A run directory's ``live.json``, with ``running`` (its writer still exists); None
    when there is none."""
    data = _read(Path(directory) / LIVE_FILE)
    if data is not None:
        data["running"] = pid_alive(data.get("pid"))
    return data


def read_breakers(directory: str | Path) -> list[dict]:
    """The breaker boards of the clients still running in a run directory."""
    boards = (_read(p) for p in sorted(Path(directory).glob(BREAKERS_GLOB)))
    return [b for b in boards if b is not None and pid_alive(b.get("pid"))]
