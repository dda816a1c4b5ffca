"""The local backend: registry, nodes and the fault proxy as processes on 127.0.0.1.

Each service runs in its own session (process group), so signals reach uvicorn's workers too:
kill is SIGKILL, pause/resume are SIGSTOP/SIGCONT, stop is SIGTERM. Everything started is
stopped by :meth:`LocalRuntime.stop`, which also runs at interpreter exit.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import orjson

from chaos.runtime.base import ClusterSpec, Endpoints
from chaos.runtime.common import RegistryAdmin
from chaos.topology import REGISTRY, Link, all_links, link_table, links_of_new_node
from chaos.wait import all_of, http_ok, wait_for

__all__ = ["LocalRuntime", "ServiceProcess"]

log = logging.getLogger("chaoslab.runtime.local")
PROJECT_ROOT = str(Path(__file__).resolve().parents[2])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class ServiceProcess:
    name: str
    cmd: list[str]
    port: int
    log_path: str
    popen: subprocess.Popen | None = None

    def start(self) -> None:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            p for p in (PROJECT_ROOT, os.environ.get("PYTHONPATH", "")) if p)}
        with open(self.log_path, "ab") as out:
            self.popen = subprocess.Popen(self.cmd, stdout=out, stderr=subprocess.STDOUT,
                                          stdin=subprocess.DEVNULL, start_new_session=True, env=env)

    @property
    def running(self) -> bool:
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

    def kill(self) -> None:
        self.signal(signal.SIGCONT)  # a paused process must be able to die
        self.signal(signal.SIGKILL)
        self.wait_exit(10)

    def terminate(self, grace: float = 5.0) -> None:
        self.signal(signal.SIGCONT)
        self.signal(signal.SIGTERM)
        if not self.wait_exit(grace):
            self.kill()

    def tail(self, lines: int = 20) -> str:
        with contextlib.suppress(OSError), open(self.log_path, "rb") as fh:
            return b"".join(fh.readlines()[-lines:]).decode("utf-8", "replace")
        return ""


class LocalRuntime(RegistryAdmin):
    name = "local"

    def __init__(self, spec: ClusterSpec | None = None, *, workdir: str | None = None,
                 registry_port: int | None = None, toxiproxy_url: str | None = None,
                 ready_timeout: float = 30.0) -> None:
        self.spec = spec or ClusterSpec()
        self._own_workdir = workdir is None
        self.workdir = workdir or tempfile.mkdtemp(prefix="chaoslab-")
        os.makedirs(self.workdir, exist_ok=True)
        self.admin_token = secrets.token_hex(12)
        self.registry_port = registry_port or free_port()
        self.external_toxiproxy = toxiproxy_url
        self.ready_timeout = ready_timeout
        self.procs: dict[str, ServiceProcess] = {}
        self.links: dict[Link, str] = {}
        self.toxiproxy = None
        self._lock = threading.RLock()
        self._init_admin()
        self.registry_admin_url = f"http://127.0.0.1:{self.registry_port}"

    # ---- paths and commands ----
    @property
    def links_file(self) -> str:
        return os.path.join(self.workdir, "links.json")

    def _log(self, name: str) -> str:
        return os.path.join(self.workdir, f"{name}.log")

    def _registry_cmd(self) -> list[str]:
        return [sys.executable, "-m", "system.registry", "--port", str(self.registry_port),
                "--admin-token", self.admin_token, "--launcher", "delegated",
                "--links", self.links_file, "--log-level", self.spec.log_level,
                *self.spec.cluster_args()]

    def _node_cmd(self, node_id: str, port: int) -> list[str]:
        registry = self.links.get(Link(node_id, REGISTRY), f"127.0.0.1:{self.registry_port}")
        return [sys.executable, "-m", "system.node", "--id", node_id, "--port", str(port),
                "--registry", f"http://{registry}",
                "--data-dir", os.path.join(self.workdir, "data", node_id),
                "--storage", self.spec.storage, "--load-factor", str(self.spec.load_factor),
                "--workers", str(self.spec.node_workers), "--log-level", self.spec.log_level,
                *self.spec.cluster_args()]

    # ---- lifecycle ----
    def start(self) -> Endpoints:
        atexit.register(self.stop)
        try:
            return self._start()
        except BaseException:
            logs = "\n".join(f"--- {p.name}\n{p.tail()}" for p in self.procs.values())
            log.error("cluster failed to start; last log lines:\n%s", logs)
            self.stop()
            raise

    def _start(self) -> Endpoints:
        started = time.monotonic()
        ids = self.spec.node_ids()
        ports = {node: free_port() for node in ids}
        if self.spec.mesh:
            self._start_proxy()
            self._add_links(all_links(ids), ports)
        self._write_links()
        reg = ServiceProcess("registry", self._registry_cmd(), self.registry_port, self._log("registry"))
        self.procs["registry"] = reg
        reg.start()
        self._wait_registry()
        for node in ids:
            self._spawn_node(node, ports[node])
        self._wait_nodes_ready(ids)
        self._admin("POST", "/admin/adopt", {"nodes": ids})
        self._start_agent()
        log.info("local cluster ready in %.2fs", time.monotonic() - started)
        return self.endpoints()

    def _start_proxy(self) -> None:
        from chaos.toxiproxy import Toxiproxy

        if self.external_toxiproxy:
            self.toxiproxy = Toxiproxy(self.external_toxiproxy)
        else:
            port = free_port()
            proc = ServiceProcess("proxy", [sys.executable, "-m", "chaos.proxy", "--host", "127.0.0.1",
                                            "--port", str(port), "--seed", str(self.spec.seed)],
                                  port, self._log("proxy"))
            self.procs["proxy"] = proc
            proc.start()
            self.toxiproxy = Toxiproxy(f"http://127.0.0.1:{port}")
        self.toxiproxy.wait_ready(self.ready_timeout)

    def _add_links(self, links: list[Link], ports: dict[str, int]) -> None:
        for link in links:
            dst_port = self.registry_port if link.dst == REGISTRY else ports[link.dst]
            info = self.toxiproxy.create(link.name, f"127.0.0.1:{dst_port}", listen="127.0.0.1:0")
            self.links[link] = f"127.0.0.1:{info.listen_port}"

    def _write_links(self) -> None:
        with open(self.links_file, "wb") as fh:
            fh.write(orjson.dumps(link_table(self.links)))

    def _spawn_node(self, node_id: str, port: int) -> None:
        proc = ServiceProcess(node_id, self._node_cmd(node_id, port), port, self._log(node_id))
        self.procs[node_id] = proc
        proc.start()

    def _exited(self, names: list[str]) -> str | None:
        dead = [n for n in names if not self.procs[n].running]
        if dead:
            return "; ".join(f"{n} exited:\n{self.procs[n].tail(8)}" for n in dead)
        return None

    def _wait_registry(self) -> None:
        wait_for(http_ok(f"http://127.0.0.1:{self.registry_port}/health"),
                 timeout=self.ready_timeout, abort=lambda: self._exited(["registry"]))

    def _wait_nodes_ready(self, ids: list[str]) -> None:
        wait_for(all_of(*(http_ok(f"http://127.0.0.1:{self.procs[n].port}/ready") for n in ids)),
                 timeout=self.ready_timeout, abort=lambda: self._exited(ids))
        self._wait_alive(ids)

    def stop(self) -> None:
        self._stop_agent()
        with self._lock:
            for name in sorted(self.procs, key=lambda n: n == "proxy"):  # proxy last
                self.procs[name].terminate(grace=3.0)
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)
        atexit.unregister(self.stop)

    # ---- addresses ----
    def endpoints(self) -> Endpoints:
        direct = f"http://127.0.0.1:{self.registry_port}"
        client_reg = self.links.get(Link("client", REGISTRY))
        nodes = {}
        for name, proc in self.procs.items():
            if name not in ("registry", "proxy"):
                via = self.links.get(Link("client", name), f"127.0.0.1:{proc.port}")
                nodes[name] = f"http://{via}"
        proxy_api = None if self.toxiproxy is None else self.toxiproxy.url
        return Endpoints(registry=f"http://{client_reg}" if client_reg else direct,
                         registry_direct=direct, nodes=nodes, proxy_api=proxy_api,
                         admin_token=self.admin_token)

    def is_running(self, name: str) -> bool:
        return self._proc(name).running

    def service_log(self, name: str) -> str:
        with open(self._proc(name).log_path, "rb") as fh:
            return fh.read().decode("utf-8", "replace")

    def link_names(self) -> list[str]:
        return [link.name for link in self.links]

    def node_ids(self) -> list[str]:
        return [n for n in self.procs if n not in ("registry", "proxy")]

    def node_url(self, node_id: str) -> str:
        """The node's own address (not through the mesh), for direct inspection."""
        return f"http://127.0.0.1:{self._proc(node_id).port}"

    def _proc(self, name: str) -> ServiceProcess:
        try:
            return self.procs[name]
        except KeyError:
            raise KeyError(f"unknown service {name!r}; known: {sorted(self.procs)}") from None

    # ---- faults on processes ----
    def kill(self, node_id: str) -> None:
        with self._lock:
            self._proc(node_id).kill()

    def stop_node(self, node_id: str) -> None:
        with self._lock:
            self._proc(node_id).terminate()

    def pause(self, node_id: str) -> None:
        self._proc(node_id).signal(signal.SIGSTOP)

    def resume(self, node_id: str) -> None:
        self._proc(node_id).signal(signal.SIGCONT)

    def restart(self, node_id: str) -> None:
        with self._lock:
            proc = self._proc(node_id)
            if proc.running:
                proc.terminate()
            proc.start()
        if node_id == "registry":
            self._wait_registry()
            self._admin("POST", "/admin/adopt", {"nodes": self.node_ids()})
        else:
            self._wait_nodes_ready([node_id])

    def add_node(self, node_id: str | None = None) -> str:
        with self._lock:
            existing = self.node_ids()
            node_id = node_id or next(f"node-{k}" for k in range(1, 10_000)
                                      if f"node-{k}" not in self.procs)
            port = free_port()
            if self.spec.mesh:
                ports = {n: self.procs[n].port for n in existing} | {node_id: port}
                self._add_links(links_of_new_node(existing, node_id), ports)
                self._write_links()
                self._admin("PUT", "/admin/links", link_table(self.links))
            self._spawn_node(node_id, port)
        self._wait_nodes_ready([node_id])
        self._admin("POST", "/admin/adopt", {"nodes": [node_id]})
        return node_id
