"""The external backend: a cluster started by someone else, reached through its gateway.

The harness knows only the gateway's URL and, optionally, a small control file (TOML, or
JSON when the name ends in ``.json``) that says per service how to kill, stop, pause, resume
and start it again, and how to tell that it is ready::

    [gateway]                              # the service faults call "registry"
    url = "http://127.0.0.1:8000"          # or --gateway-url (which wins)
    ready = "http://127.0.0.1:8000/health" # answers 200 when ready

    [nodes.node-1]
    ready = "http://127.0.0.1:8101/health"
    pidfile = "run/node-1.pid"             # kill/stop/pause/resume by signal to this pid
    start = ["python", "toy.py", "replica", "--port", "8101"]   # how to start it again
    # kill, stop, pause, resume, running: commands instead of signals (a string runs in sh)
    # url: the node's own chaoslab node API (/stats, /keys), read after the run if given

A fault the file does not enable is refused before anything starts: :meth:`refusal` is
asked for every step when the scenario is planned (:meth:`chaos.scenario.Scenario.plan`).
Network faults go through the harness's own proxy (``chaos.proxy``, started as a process)
between its clients and the gateway: in this topology only the ``client->registry`` link
exists (:class:`GatewayTopology`). Links inside the cluster need its cooperation and are
refused. The cluster is left running on stop; so are services this runtime started again.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import os
import random
import shlex
import shutil
import signal
import subprocess
import tempfile
import threading
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import psutil

from chaos.faults.base import FaultError
from chaos.runtime.base import ClusterSpec, Endpoints
from chaos.runtime.local import ServiceProcess
from chaos.runtime.mesh import LinkProxies
from chaos.runtime.meshed import proxy_argv
from chaos.seeds import derive
from chaos.topology import CLIENT, REGISTRY, Link, Topology
from chaos.toxiproxy import Toxiproxy
from chaos.wait import Strategy, WaitTimeout, http_ok, wait_for
from system.launch import free_port

__all__ = ["ExternalRuntime", "ExternalControl", "ServiceControl", "ControlFileError",
           "GatewayTopology"]

log = logging.getLogger("chaoslab.runtime.external")

Command = tuple[str, ...]
VERBS = ("kill", "stop", "pause", "resume", "start", "running")
KEYS = frozenset({*VERBS, "url", "ready", "pidfile", "group", "ready_timeout"})
PROCESS_FAULTS = {  # fault kind -> what the file must enable for it (apply, and undo)
    "kill": ("kill", "start"), "registry-down": ("kill", "start"),
    "stop": ("stop", "start"), "pause": ("pause", "resume"), "restart": ("stop", "start"),
}
GATEWAY_LINK = Link(CLIENT, REGISTRY)


class ControlFileError(ValueError):
    """A control file that cannot be used; one line naming the problem and the fix."""


@dataclass(frozen=True, slots=True)
class GatewayTopology(Topology):
    """The nodes the control file names (targets of process faults), and one link: the
    clients' to the gateway, the only one the harness can put its proxy on."""

    @property
    def links(self) -> frozenset[Link]:
        return frozenset({GATEWAY_LINK})


@dataclass(frozen=True, slots=True)
class ServiceControl:
    """How to break one service of the external cluster, from its table in the file."""

    name: str
    url: str | None = None  # the node's own chaoslab API, for inspection after the run
    ready: str | None = None  # answers 200 when the service is ready
    pidfile: str | None = None
    group: bool = False  # signal the pid's whole process group
    ready_timeout: float = 30.0
    commands: Mapping[str, Command] = field(default_factory=dict)  # verb -> argv

    def can(self, verb: str) -> bool:
        """Whether the file enables ``verb`` (kill, stop, pause, resume, start) here."""
        if verb in self.commands:
            return True
        return self.pidfile is not None and verb in ("kill", "stop", "pause", "resume")

    def abilities(self) -> list[str]:
        return [v for v in ("kill", "stop", "pause", "resume", "start") if self.can(v)]

    @property
    def observable(self) -> bool:
        """Whether the harness can tell if it runs (a pidfile, a running command, ready)."""
        return bool(self.pidfile or "running" in self.commands or self.ready)


def _command(value: Any, where: str) -> Command:
    if isinstance(value, str) and value.strip():
        return ("/bin/sh", "-c", value)
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise ControlFileError(f"{where}: a command is a string (run by sh) or a list of strings, "
                           f"got {value!r}")


def _url(value: Any, where: str) -> str:
    if not isinstance(value, str) or urlsplit(value).scheme not in ("http", "https") \
            or not urlsplit(value).hostname:
        raise ControlFileError(f"{where}: expected an http://host:port URL, got {value!r}")
    return value.rstrip("/")


def _service(name: str, table: Any, base: Path, where: str) -> ServiceControl:
    if not isinstance(table, dict):
        raise ControlFileError(f"{where}: expected a table of settings, got {table!r}")
    unknown = sorted(set(table) - KEYS)
    if unknown:
        raise ControlFileError(f"{where}: unknown setting {unknown[0]!r}: choose from "
                               f"{', '.join(sorted(KEYS))}")
    commands = {verb: _command(table[verb], f"{where}.{verb}") for verb in VERBS if verb in table}
    pidfile = table.get("pidfile")
    if pidfile is not None and (not isinstance(pidfile, str) or not pidfile):
        raise ControlFileError(f"{where}.pidfile: expected a path, got {pidfile!r}")
    timeout = table.get("ready_timeout", 30.0)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
        raise ControlFileError(f"{where}.ready_timeout: expected seconds > 0, got {timeout!r}")
    group = table.get("group", False)
    if not isinstance(group, bool):
        raise ControlFileError(f"{where}.group: expected true or false, got {group!r}")
    return ServiceControl(
        name, url=_url(table["url"], f"{where}.url") if "url" in table else None,
        ready=_url(table["ready"], f"{where}.ready") if "ready" in table else None,
        pidfile=str(base / pidfile) if pidfile else None, group=group,
        ready_timeout=float(timeout), commands=commands)


@dataclass(frozen=True, slots=True)
class ExternalControl:
    """The control file read into one value: the gateway and each service's controls.
    Pure: loading it starts nothing, so a scenario can be checked against it first."""

    gateway: str
    services: Mapping[str, ServiceControl]  # node ids, and "registry" for the gateway
    source: str | None = None  # the file, for messages
    directory: str = "."  # commands run here; relative paths count from here

    @classmethod
    def load(cls, gateway_url: str | None = None, path: str | os.PathLike | None = None
             ) -> ExternalControl:
        """From ``path`` (TOML, or JSON by its suffix), with ``gateway_url`` overriding its
        ``[gateway] url``. Raises :class:`ControlFileError` (one line)."""
        data: dict = {}
        base = Path.cwd()
        if path is not None:
            path = Path(path)
            try:
                raw = path.read_bytes()
            except OSError as exc:
                raise ControlFileError(f"cannot read the control file {path}: "
                                       f"{exc.strerror or exc}") from None
            try:
                data = json.loads(raw) if path.suffix == ".json" else tomllib.loads(raw.decode())
            except (ValueError, UnicodeDecodeError) as exc:
                first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                raise ControlFileError(f"{path} is not valid "
                                       f"{'JSON' if path.suffix == '.json' else 'TOML'}: "
                                       f"{first}") from None
            if not isinstance(data, dict):
                raise ControlFileError(f"{path}: expected a table at the top")
            base = path.resolve().parent
        where = str(path) if path is not None else "the control file"
        unknown = sorted(set(data) - {"gateway", "nodes"})
        if unknown:
            raise ControlFileError(f"{where}: unknown section {unknown[0]!r}: choose from "
                                   "gateway, nodes")
        gateway = dict(data.get("gateway") or {})
        url = gateway.pop("url", None)
        services = {REGISTRY: _service(REGISTRY, gateway, base, f"{where}: gateway")}
        nodes = data.get("nodes") or {}
        if not isinstance(nodes, dict):
            raise ControlFileError(f"{where}: nodes must be a table of [nodes.ID] tables")
        for node, table in nodes.items():
            if node in (REGISTRY, CLIENT) or not node:
                raise ControlFileError(f"{where}: {node!r} cannot name a node (reserved)")
            services[node] = _service(node, table, base, f"{where}: nodes.{node}")
        if gateway_url is None and url is None:
            raise ControlFileError("the external runtime needs the gateway's URL: give "
                                   "--gateway-url http://HOST:PORT (or url in the control "
                                   "file's [gateway] table)")
        gateway_url = _url(gateway_url if gateway_url is not None else url,
                           "--gateway-url" if gateway_url is not None else f"{where}: gateway.url")
        return cls(gateway_url, services, str(path) if path is not None else None, str(base))

    @property
    def nodes(self) -> tuple[str, ...]:
        return tuple(s for s in self.services if s != REGISTRY)

    @property
    def topology(self) -> GatewayTopology:
        return GatewayTopology(self.nodes)

    def enabled(self, *, mesh: bool = True) -> str:
        """What the file enables, in one line (for refusals)."""
        parts = [f"{name}: {'/'.join(s.abilities())}" for name, s in self.services.items()
                 if s.abilities()]
        faults = "; ".join(parts) if parts else "no process faults"
        net = ("network faults on the clients' link to the gateway (e.g. latency:registry, "
               "partition:isolate:registry:clients=true)" if mesh else "no network faults "
               "(no proxy: mesh is off)")
        return f"{faults}; {net}"

    def refusal(self, fault: Any, *, mesh: bool = True) -> str | None:
        """Why this cluster cannot carry out ``fault`` (unbound), or None when it can."""
        kind = fault.kind
        if kind in PROCESS_FAULTS:
            target = REGISTRY if kind == "registry-down" else fault.node
            service = self.services.get(target)
            needed = PROCESS_FAULTS[kind]
            missing = [v for v in needed if service is None or not service.can(v)]
            if kind == "restart" and service is not None and service.can("kill"):
                missing = [v for v in missing if v != "stop"]  # a kill stops it as well
            if service is not None and not missing and not service.observable:
                missing = ["pidfile, running or ready (to tell whether it runs)"]
            if missing:
                if not self.source:
                    why = ("the external runtime has no control file (--external-file) "
                           f"saying how to {' and '.join(needed)} it")
                elif service is None:
                    why = f"the control file {self.source} names no {target}"
                else:
                    why = f"the control file {self.source} gives no {' or '.join(missing)} " \
                          f"for {target}"
                return f"{kind} {target} is not enabled: {why}; it enables " \
                       f"{self.enabled(mesh=mesh)}"
            return None
        if getattr(fault, "needs_mesh", False):
            if not mesh:
                return f"{kind} needs the harness's proxy, and mesh is off; it enables " \
                       f"{self.enabled(mesh=mesh)}"
            try:
                bound = fault.bind(self.topology, random.Random(0))
            except FaultError:
                bound = None
            links = (getattr(bound, "cut", None) or getattr(bound, "via", None)) if bound else None
            if not links or not set(links) <= {GATEWAY_LINK}:
                return (f"{kind} acts on links inside the cluster, which need its cooperation "
                        "(a proxy between its services): the harness proxies only the clients' "
                        f"link to the gateway; it enables {self.enabled(mesh=mesh)}")
            return None
        if kind == "clock-skew":
            service = self.services.get(fault.node)
            if service is None or service.url is None:
                return (f"clock-skew needs {fault.node}'s own chaoslab node API (url in its "
                        f"[nodes.{fault.node}] table); it enables {self.enabled(mesh=mesh)}")
            return None
        if kind == "scale-up":
            return ("scale-up needs the cluster's cooperation (the harness cannot start new "
                    f"nodes of a cluster it did not start); it enables {self.enabled(mesh=mesh)}")
        return f"the external runtime does not know how to carry out {kind}"


class ExternalRuntime:
    """A cluster someone else started (see the module docstring). ``start`` puts the
    harness's proxy in front of the gateway and waits for the gateway and every service with
    a ``ready`` URL; ``stop`` stops that proxy and leaves the cluster running. ``workdir``
    holds the proxy's log and those of services started again (a temporary directory when
    not given, kept if a service was started in it)."""

    name = "external"

    def __init__(self, spec: ClusterSpec | None, control: ExternalControl, *,
                 workdir: str | None = None, ready_timeout: float = 30.0,
                 progress: Callable[[str], None] | None = None) -> None:
        self.spec = spec or ClusterSpec()
        self.control = control
        self.ready_timeout = ready_timeout
        self.proxies: LinkProxies | None = None
        self._workdir, self._own_workdir = workdir, workdir is None
        self._proxy: ServiceProcess | None = None
        self._client_url: str | None = None
        self._paused: set[str] = set()
        self._started: set[str] = set()  # services this runtime started again
        self._lock = threading.RLock()
        self._progress = progress or (lambda message: log.info("%s", message))

    # ---- what the planner asks -----------------------------------------------------------
    @property
    def topology(self) -> GatewayTopology:
        return self.control.topology

    def refusal(self, fault: Any) -> str | None:
        """Why this runtime cannot carry out ``fault``, or None (see :class:`ExternalControl`)."""
        return self.control.refusal(fault, mesh=self.spec.mesh)

    # ---- lifecycle -------------------------------------------------------------------------
    @property
    def workdir(self) -> str:
        if self._workdir is None:
            self._workdir = tempfile.mkdtemp(prefix="chaoslab-external-")
        os.makedirs(self._workdir, exist_ok=True)
        return self._workdir

    def start(self) -> Endpoints:
        atexit.register(self.stop)
        try:
            if self.spec.mesh:
                self._progress("starting the proxy between the clients and the gateway")
                self._start_proxy()
            self._progress(f"waiting for the external cluster at {self.control.gateway}")
            for name in self.control.services:
                self._wait_ready(name)
        except BaseException:
            self.stop()
            raise
        return self.endpoints()

    def _start_proxy(self) -> None:
        port = free_port()
        self._proxy = ServiceProcess("proxy", proxy_argv(
            host="127.0.0.1", port=port, seed=derive(self.spec.seed, "proxy")), port,
            os.path.join(self.workdir, "proxy.log"))
        self._proxy.start()
        wait_for(http_ok(f"http://127.0.0.1:{port}/version"), timeout=self.ready_timeout,
                 abort=lambda: None if self._proxy.running else
                 f"the proxy exited:\n{self._proxy.tail(8)}")
        self.proxies = LinkProxies(Toxiproxy(f"http://127.0.0.1:{port}"))
        gateway = urlsplit(self.control.gateway)
        upstream = f"{gateway.hostname}:{gateway.port or 80}"
        listen = self.proxies.create(GATEWAY_LINK, upstream, listen="127.0.0.1:0")
        self._client_url = f"http://127.0.0.1:{listen.rpartition(':')[2]}"

    def stop(self) -> None:
        """Stop the proxy; the external cluster keeps running (idempotent)."""
        with self._lock:
            if self.proxies is not None:
                self.proxies.toxiproxy.close()
                self.proxies = None
            if self._proxy is not None:
                self._proxy.terminate(grace=3.0)
                self._proxy = None
            self._client_url = None
            if self._own_workdir and self._workdir and not self._started:
                shutil.rmtree(self._workdir, ignore_errors=True)
                self._workdir = None
        atexit.unregister(self.stop)

    def endpoints(self) -> Endpoints:
        nodes = {n: s.url for n, s in self.control.services.items()
                 if n != REGISTRY and s.url is not None}
        return Endpoints(registry=self._client_url or self.control.gateway,
                         registry_direct=self.control.gateway, nodes=nodes,
                         proxy_api=self.proxies.url if self.proxies else None, admin_token="")

    def node_ids(self) -> list[str]:
        """The nodes whose own API the harness can read after a run (those with a ``url``);
        every node the file names is a fault target (see :attr:`topology`)."""
        return [n for n, s in self.control.services.items() if n != REGISTRY and s.url]

    def node_url(self, node_id: str) -> str:
        url = self._service(node_id).url
        if url is None:
            raise KeyError(f"the control file gives no url for {node_id}")
        return url

    def service_log(self, name: str) -> str:
        """What a service this runtime started again has logged (the rest is not ours)."""
        with contextlib.suppress(OSError), open(self._log_path(name), "rb") as fh:
            return fh.read().decode("utf-8", "replace")
        return ""

    # ---- the verbs -------------------------------------------------------------------------
    def _service(self, name: str) -> ServiceControl:
        try:
            return self.control.services[name]
        except KeyError:
            raise KeyError(f"unknown service {name!r}; the control file names "
                           f"{', '.join(self.control.services)}") from None

    def _log_path(self, name: str) -> str:
        return os.path.join(self.workdir, f"{name}.log")

    def _pid(self, service: ServiceControl) -> int | None:
        try:
            return int(Path(service.pidfile).read_text().strip())
        except (OSError, ValueError, TypeError):
            return None

    def _signal(self, service: ServiceControl, sig: int) -> None:
        pid = self._pid(service)
        if pid is None or not self._alive(pid):
            return
        with contextlib.suppress(ProcessLookupError):
            if service.group:
                os.killpg(os.getpgid(pid), sig)
            else:
                os.kill(pid, sig)

    @staticmethod
    def _alive(pid: int) -> bool:
        try:
            return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
        except psutil.Error:
            return False

    def _run(self, service: ServiceControl, verb: str) -> None:
        command = service.commands[verb]
        env = {**os.environ, "CHAOSLAB_SERVICE": service.name}
        try:
            done = subprocess.run(command, cwd=self.control.directory, env=env, timeout=60,
                                  capture_output=True, stdin=subprocess.DEVNULL)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise RuntimeError(f"{service.name}: the {verb} command failed: {exc}") from None
        if done.returncode != 0:
            tail = done.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or [""]
            raise RuntimeError(f"{service.name}: the {verb} command exited {done.returncode}: "
                               f"{tail[0][:200]}")

    def _verb(self, name: str, verb: str, sig: int) -> ServiceControl:
        service = self._service(name)
        if verb in service.commands:
            self._run(service, verb)
        elif service.pidfile and verb != "start":
            self._signal(service, sig)
        else:
            raise FaultError(f"the control file gives no {verb} for {name}")
        return service

    def is_running(self, name: str) -> bool:
        service = self._service(name)
        if name in self._paused:
            return True
        if service.pidfile:
            pid = self._pid(service)
            return pid is not None and self._alive(pid)
        if "running" in service.commands:
            try:
                self._run(service, "running")
                return True
            except RuntimeError:
                return False
        if service.ready:
            return http_ok(service.ready)()
        raise FaultError(f"the control file gives no way to tell whether {name} runs "
                         "(pidfile, running or ready)")

    def _wait_down(self, name: str, timeout: float) -> bool:
        try:
            wait_for(lambda: not self.is_running(name), timeout=timeout, interval=0.05,
                     description=f"{name} to exit")
            return True
        except WaitTimeout:
            return False

    def kill(self, node_id: str) -> None:
        with self._lock:
            self._verb(node_id, "kill", signal.SIGKILL)
            self._paused.discard(node_id)
            if not self._wait_down(node_id, 10.0):
                raise RuntimeError(f"{node_id} still runs 10 s after it was killed")

    def stop_node(self, node_id: str) -> None:
        with self._lock:
            service = self._service(node_id)
            if node_id in self._paused:
                self.resume(node_id)
            self._verb(node_id, "stop", signal.SIGTERM)
            if self._wait_down(node_id, 10.0):
                return
            if service.can("kill"):
                self.kill(node_id)
            else:
                raise RuntimeError(f"{node_id} still runs 10 s after it was stopped")

    def pause(self, node_id: str) -> None:
        with self._lock:
            self._verb(node_id, "pause", signal.SIGSTOP)
            self._paused.add(node_id)

    def resume(self, node_id: str) -> None:
        """Unfreeze a service this runtime paused; any other is left alone."""
        with self._lock:
            if node_id in self._paused:
                self._verb(node_id, "resume", signal.SIGCONT)
                self._paused.discard(node_id)

    def restart(self, node_id: str) -> None:
        """Start it again with its ``start`` command (stopped first if it runs), detached
        from the harness (it outlives the run, like the rest of the cluster), and wait until
        it is ready."""
        with self._lock:
            service = self._service(node_id)
            if "start" not in service.commands:
                raise FaultError(f"the control file gives no start for {node_id}")
            if self.is_running(node_id):
                if service.can("stop"):
                    self.stop_node(node_id)
                else:
                    self.kill(node_id)
            self._spawn(service)
        self._wait_ready(node_id)

    def _spawn(self, service: ServiceControl) -> None:
        """Run the start command in the background of a shell that exits at once, so the
        service is not the harness's child (nothing to reap, nothing killed with us)."""
        argv = " ".join(shlex.quote(a) for a in service.commands["start"])
        line = f"exec {argv} >>{shlex.quote(self._log_path(service.name))} 2>&1 </dev/null &"
        env = {**os.environ, "CHAOSLAB_SERVICE": service.name}
        subprocess.run(["/bin/sh", "-c", line], cwd=self.control.directory, env=env,
                       start_new_session=True, check=True, timeout=30)
        self._started.add(service.name)

    def _wait_ready(self, name: str) -> None:
        service = self._service(name)
        url = service.ready or (self.control.gateway if name == REGISTRY else None)
        if url is None:
            return
        check = http_ok(url) if service.ready else _answers(url)
        try:
            wait_for(check, timeout=service.ready_timeout)
        except WaitTimeout as exc:
            tail = "\n".join(self.service_log(name).splitlines()[-8:])
            raise WaitTimeout(f"{name} is not ready: {exc}" + (f"\n{tail}" if tail else "")) \
                from None


def _answers(url: str) -> Strategy:
    """The gateway answers HTTP at all (any status): without a ready URL, that is ready."""
    def check() -> bool:
        httpx.get(url, timeout=1.0)
        return True
    return Strategy(check, f"{url} to answer")
