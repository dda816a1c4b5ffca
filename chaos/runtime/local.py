"""The local backend: registry, nodes and the fault proxy as processes on 127.0.0.1.

Each service runs in its own session (process group), so signals reach uvicorn's workers too:
kill is SIGKILL, pause/resume are SIGSTOP/SIGCONT, stop is SIGTERM. The start sequence, the
mesh and scale-up are :class:`~chaos.runtime.meshed.MeshedRuntime`'s; this module only
spawns, signals and says where things are. With ``toxiproxy_url`` the links go through that
server (e.g. the real Toxiproxy) instead of a ``chaos.proxy`` child, and ``stop`` deletes the
proxies it created there.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from chaos.runtime.base import ClusterSpec
from chaos.runtime.meshed import MeshedRuntime, Progress, proxy_argv
from chaos.seeds import derive
from chaos.topology import REGISTRY, Link
from chaos.toxiproxy import Toxiproxy
from chaos.wait import all_of, http_ok, wait_for
from system.launch import free_port, node_argv, registry_argv

__all__ = ["LocalRuntime", "ServiceProcess"]

log = logging.getLogger("chaoslab.runtime.local")
PROJECT_ROOT = str(Path(__file__).resolve().parents[2])
PROXY = "proxy"


@dataclass
class ServiceProcess:
    """One service: its command, its port and its log file; started again with the same
    command on restart."""

    name: str
    cmd: list[str]
    port: int
    log_path: str
    popen: subprocess.Popen | None = None
    paused: bool = False

    def start(self) -> None:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            p for p in (PROJECT_ROOT, os.environ.get("PYTHONPATH", "")) if p)}
        with open(self.log_path, "ab") as out:
            self.popen = subprocess.Popen(self.cmd, stdout=out, stderr=subprocess.STDOUT,
                                          stdin=subprocess.DEVNULL, start_new_session=True,
                                          env=env)
        self.paused = False

    @property
    def running(self) -> bool:
        """The process exists and has not exited (a paused one is running)."""
        return self.popen is not None and self.popen.poll() is None

    def signal(self, sig: int) -> None:
        if self.running:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, sig)

    def wait_exit(self, timeout: float) -> bool:
        if self.popen is None:
            return True
        try:
            self.popen.wait(timeout)
            return True
        except subprocess.TimeoutExpired:
            return False

    def pause(self) -> None:
        if self.running and not self.paused:
            self.signal(signal.SIGSTOP)
            self.paused = True

    def resume(self) -> None:
        if self.paused:
            self.signal(signal.SIGCONT)
            self.paused = False

    def kill(self) -> None:
        if not self.running:
            return
        self.resume()  # a stopped process must be able to die
        self.signal(signal.SIGKILL)
        self.wait_exit(10)

    def terminate(self, grace: float = 5.0) -> None:
        if not self.running:
            return
        self.resume()
        self.signal(signal.SIGTERM)
        if not self.wait_exit(grace):
            self.kill()

    def tail(self, lines: int = 20) -> str:
        with contextlib.suppress(OSError), open(self.log_path, "rb") as fh:
            return b"".join(fh.readlines()[-lines:]).decode("utf-8", "replace")
        return ""


class LocalRuntime(MeshedRuntime):
    """Processes on this host; ``workdir`` holds the logs and the nodes' data (a temporary
    directory, removed on stop, when not given)."""

    name = "local"

    def __init__(self, spec: ClusterSpec | None = None, *, workdir: str | None = None,
                 registry_port: int | None = None, toxiproxy_url: str | None = None,
                 ready_timeout: float = 30.0, progress: Progress | None = None) -> None:
        super().__init__(spec, ready_timeout=ready_timeout, progress=progress)
        self._own_workdir = workdir is None
        self.workdir = workdir or ""  # made by start
        self.toxiproxy_url = toxiproxy_url
        self.procs: dict[str, ServiceProcess] = {}
        self._ports: dict[str, int] = {REGISTRY: registry_port or free_port()}

    @property
    def registry_port(self) -> int:
        return self._ports[REGISTRY]

    def _port(self, name: str) -> int:
        """The port of a service, chosen before it starts (its links need it)."""
        if name not in self._ports:
            self._ports[name] = free_port()
        return self._ports[name]

    def _spawn_process(self, name: str, cmd: list[str]) -> None:
        proc = ServiceProcess(name, cmd, self._port(name),
                              os.path.join(self.workdir, f"{name}.log"))
        self.procs[name] = proc
        proc.start()

    # ---- hooks ----
    def _prepare(self) -> None:
        if self._own_workdir:
            self.workdir = tempfile.mkdtemp(prefix="chaoslab-")
        os.makedirs(self.workdir, exist_ok=True)

    def _owns_proxy_server(self) -> bool:
        return self.toxiproxy_url is None

    def _start_proxy_server(self) -> Toxiproxy:
        if self.toxiproxy_url:
            toxiproxy = Toxiproxy(self.toxiproxy_url)
            toxiproxy.wait_ready(self.ready_timeout)
            return toxiproxy
        self._spawn_process(PROXY, proxy_argv(host="127.0.0.1", port=self._port(PROXY),
                                              seed=derive(self.spec.seed, "proxy")))
        self._wait_http([PROXY], "/version")
        return Toxiproxy(f"http://127.0.0.1:{self._port(PROXY)}")

    def _link_listen(self, link: Link) -> str:
        return "127.0.0.1:0"

    def _link_address(self, link: Link, listen: str) -> str:
        return f"127.0.0.1:{listen.rpartition(':')[2]}"

    def _upstream(self, service: str) -> str:
        return f"127.0.0.1:{self._port(service)}"

    def _spawn_registry(self) -> None:
        s = self.spec
        self._spawn_process(REGISTRY, registry_argv(
            s.settings, port=self.registry_port, admin_token=self.admin_token,
            seed=derive(s.seed, "gateway"), log_level=s.log_level))

    def _spawn_node(self, node_id: str, registry: str) -> None:
        s = self.spec
        self._spawn_process(node_id, node_argv(
            s.settings, node_id=node_id, port=self._port(node_id), registry=registry,
            data_dir=os.path.join(self.workdir, "data", node_id), storage=s.storage,
            load_factor=s.load_factor, workers=s.node_workers, log_level=s.log_level,
            seed=derive(s.seed, f"gateway:{node_id}")))

    def _start_again(self, name: str) -> None:
        self._proc(name).start()

    def _wait_http(self, names: list[str], path: str) -> None:
        wait_for(all_of(*(http_ok(f"http://127.0.0.1:{self._port(n)}{path}") for n in names)),
                 timeout=self.ready_timeout, abort=lambda: self._exited(names))

    def _exited(self, names: list[str]) -> str | None:
        dead = [n for n in names if not self.procs[n].running]
        if dead:
            return "; ".join(f"{n} exited:\n{self.procs[n].tail(8)}" for n in dead)
        return None

    def _registry_url(self) -> str:
        return f"http://127.0.0.1:{self.registry_port}"

    def _teardown(self) -> None:
        # the services together (each may take its grace), then the proxy
        services = [p for name, p in self.procs.items() if name != PROXY]
        with ThreadPoolExecutor(max_workers=len(services) or 1) as pool:
            list(pool.map(lambda p: p.terminate(grace=3.0), services))
        if PROXY in self.procs:
            self.procs[PROXY].terminate(grace=3.0)
        if self._own_workdir and self.workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def _log_tail(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.tail()}" for p in self.procs.values())

    # ---- services ----
    def _proc(self, name: str) -> ServiceProcess:
        try:
            return self.procs[name]
        except KeyError:
            raise KeyError(f"unknown service {name!r}; known: {sorted(self.procs)}") from None

    def node_url(self, node_id: str) -> str:
        """The node's own address (not through the mesh), for direct inspection."""
        return f"http://127.0.0.1:{self._proc(node_id).port}"

    def service_log(self, name: str) -> str:
        with open(self._proc(name).log_path, "rb") as fh:
            return fh.read().decode("utf-8", "replace")

    def is_running(self, name: str) -> bool:
        return self._proc(name).running

    def kill(self, node_id: str) -> None:
        with self._lock:
            self._proc(node_id).kill()

    def stop_node(self, node_id: str) -> None:
        with self._lock:
            self._proc(node_id).terminate()

    def pause(self, node_id: str) -> None:
        self._proc(node_id).pause()

    def resume(self, node_id: str) -> None:
        self._proc(node_id).resume()
