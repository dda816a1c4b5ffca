"""The Docker backend: the fault proxy, the registry and the nodes as containers.

Each run gets a private bridge network and names with a unique run id, so two runs on one
machine do not clash. The proxy container starts first; every directed link (client->node,
registry->node, node->registry, node->node) is a proxy inside it. Containers reach each other
by name on the private network; the host reaches them only through ports published on
127.0.0.1: the client links, the Toxiproxy API, and each service's own port (for inspection).
kill/stop/pause/unpause/restart map to the Docker API. The registry has no Docker socket: its
``/scale-up`` is delegated to this harness (see :mod:`chaos.runtime.common`).
Teardown removes every container, network and volume labelled with the run id.
"""

from __future__ import annotations

import atexit
import logging
import secrets
import threading
import time

from chaos.runtime.base import ClusterSpec, Endpoints
from chaos.runtime.common import RegistryAdmin
from chaos.topology import CLIENT, REGISTRY, Link, all_links, link_table, links_of_new_node
from chaos.wait import all_of, http_ok, wait_for

__all__ = ["DockerRuntime"]

log = logging.getLogger("chaoslab.runtime.docker")

LABEL = "org.chaoslab.run"
API_PORT = 8474
REGISTRY_PORT = 5000
NODE_PORT = 5001
CLIENT_PORT_BASE = 21000  # proxies for client links; published on 127.0.0.1
CLIENT_PORTS = 24  # room for the registry link and 23 nodes
INTERNAL_PORT_BASE = 22000  # proxies for links between containers; not published


class DockerRuntime(RegistryAdmin):
    name = "docker"

    def __init__(self, spec: ClusterSpec | None = None, *, image: str | None = None,
                 ready_timeout: float = 60.0, build: bool = True,
                 labels: dict[str, str] | None = None) -> None:
        self.spec = spec or ClusterSpec()
        if not self.spec.mesh:
            log.info("the docker runtime always meshes its links; mesh=False is ignored")
        self.image = image
        self.build = build
        self.ready_timeout = ready_timeout
        self.run_id = secrets.token_hex(4)
        self.admin_token = secrets.token_hex(12)
        self.prefix = f"chaoslab-{self.run_id}"
        self.containers: dict[str, object] = {}
        self.links: dict[Link, str] = {}  # link -> address its source uses
        self.host_ports: dict[str, int] = {}  # service -> published port of its own listener
        self._client_ports: dict[int, int] = {}  # container port -> published host port
        self._next_client = CLIENT_PORT_BASE
        self._next_internal = INTERNAL_PORT_BASE
        self._lock = threading.RLock()
        self._docker = None
        self.toxiproxy = None
        self.timings: dict[str, float] = {}
        self._init_admin()
        self.registry_admin_url = ""
        self.extra_labels = dict(labels or {})  # e.g. a test session's, to find its leftovers

    # ---- docker plumbing ----
    @property
    def docker(self):
        if self._docker is None:
            import docker

            self._docker = docker.from_env(timeout=60)
        return self._docker

    def _labels(self) -> dict[str, str]:
        return {**self.extra_labels, LABEL: self.run_id}

    def _published(self, container, *ports: int) -> dict[int, int]:
        """The 127.0.0.1 host port of each container port (one inspect for all)."""
        container.reload()
        found = {}
        for port in ports:
            for b in container.attrs["NetworkSettings"]["Ports"].get(f"{port}/tcp") or []:
                if b.get("HostIp") == "127.0.0.1":
                    found[port] = int(b["HostPort"])
            if port not in found:
                raise RuntimeError(f"{container.name}: port {port} is not published on 127.0.0.1")
        return found

    def _run(self, name: str, command: list[str], *, ports: dict[int, None] | None = None,
             volume: str | None = None):
        kwargs = {}
        if volume:
            self.docker.volumes.create(volume, labels=self._labels())
            kwargs["volumes"] = {volume: {"bind": "/data", "mode": "rw"}}
        container = self.docker.containers.run(
            self.image, command, name=f"{self.prefix}-{name}", hostname=name, detach=True,
            network=self.network_name, labels=self._labels(),
            ports={f"{p}/tcp": ("127.0.0.1", None) for p in (ports or {})},
            environment={"PYTHONUNBUFFERED": "1"}, **kwargs)
        # the short name resolves on the private network
        self.containers[name] = container
        return container

    @property
    def network_name(self) -> str:
        return f"{self.prefix}-net"

    # ---- lifecycle ----
    def start(self) -> Endpoints:
        atexit.register(self.stop)
        try:
            return self._start()
        except BaseException:
            log.error("docker cluster failed to start; last log lines:\n%s", self.logs(tail=10))
            self.stop()
            raise

    def _start(self) -> Endpoints:
        t0 = time.perf_counter()
        if self.image is None:
            from chaos.images import ensure_image

            self.image = ensure_image() if self.build else "chaoslab:latest"
        self.timings["image"] = time.perf_counter() - t0
        self.docker.networks.create(self.network_name, driver="bridge", labels=self._labels())
        t = time.perf_counter()
        proxy = self._run("proxy", ["python", "-m", "chaos.proxy", "--host", "0.0.0.0",
                                    "--port", str(API_PORT), "--seed", str(self.spec.seed)],
                          ports={API_PORT: None, **{CLIENT_PORT_BASE + i: None
                                                    for i in range(CLIENT_PORTS)}})
        client_ports = [CLIENT_PORT_BASE + i for i in range(CLIENT_PORTS)]
        published = self._published(proxy, API_PORT, *client_ports)
        self.host_ports["proxy"] = published.pop(API_PORT)
        self._client_ports = published
        from chaos.toxiproxy import Toxiproxy

        self.toxiproxy = Toxiproxy(f"http://127.0.0.1:{self.host_ports['proxy']}")
        self.toxiproxy.wait_ready(self.ready_timeout)
        self.timings["proxy"] = time.perf_counter() - t

        ids = self.spec.node_ids()
        self._add_links(all_links(ids))
        t = time.perf_counter()
        self._run("registry", ["python", "-m", "system.registry", "--host", "0.0.0.0",
                                     "--port", str(REGISTRY_PORT), "--advertise",
                                     f"registry:{REGISTRY_PORT}", "--admin-token",
                                     self.admin_token, "--launcher", "delegated",
                                     "--log-level", self.spec.log_level,
                                     *self.spec.cluster_args()],
                        ports={REGISTRY_PORT: None})
        self._note_registry_port()
        self._wait_http(["registry"], "/health")
        self._admin("PUT", "/admin/links", link_table(self.links))
        self.timings["registry"] = time.perf_counter() - t
        t = time.perf_counter()
        for node in ids:
            self._start_node(node)
        self._wait_nodes(ids)
        self.timings["nodes"] = time.perf_counter() - t
        self._admin("POST", "/admin/adopt", {"nodes": ids})
        self._start_agent()
        self.timings["total"] = time.perf_counter() - t0
        log.info("docker cluster %s ready: %s", self.run_id,
                 {k: round(v, 2) for k, v in self.timings.items()})
        return self.endpoints()

    def _start_node(self, node_id: str) -> None:
        registry = self.links[Link(node_id, REGISTRY)]
        c = self._run(node_id, ["python", "-m", "system.node", "--id", node_id, "--host", "0.0.0.0",
                                "--port", str(NODE_PORT), "--advertise", f"{node_id}:{NODE_PORT}",
                                "--registry", f"http://{registry}", "--data-dir", "/data",
                                "--storage", self.spec.storage,
                                "--load-factor", str(self.spec.load_factor),
                                "--workers", str(self.spec.node_workers),
                                "--log-level", self.spec.log_level, *self.spec.cluster_args()],
                      ports={NODE_PORT: None}, volume=f"{self.prefix}-{node_id}-data")
        self.host_ports[node_id] = self._published(c, NODE_PORT)[NODE_PORT]

    def _note_registry_port(self) -> None:
        reg = self.containers["registry"]
        self.host_ports["registry"] = self._published(reg, REGISTRY_PORT)[REGISTRY_PORT]
        self.registry_admin_url = f"http://127.0.0.1:{self.host_ports['registry']}"

    def _add_links(self, links: list[Link]) -> None:
        for link in links:
            upstream = (f"registry:{REGISTRY_PORT}" if link.dst == REGISTRY
                        else f"{link.dst}:{NODE_PORT}")
            if link.src == CLIENT:
                if self._next_client >= CLIENT_PORT_BASE + CLIENT_PORTS:
                    raise RuntimeError(f"no published port left for {link}: raise CLIENT_PORTS")
                port, self._next_client = self._next_client, self._next_client + 1
                address = f"127.0.0.1:{self._client_ports[port]}"
            else:
                port, self._next_internal = self._next_internal, self._next_internal + 1
                address = f"proxy:{port}"
            self.toxiproxy.create(link.name, upstream, listen=f"0.0.0.0:{port}")
            self.links[link] = address

    def _exited(self, names: list[str]) -> str | None:
        for name in names:
            c = self.containers[name]
            c.reload()
            if c.status in ("exited", "dead"):
                return f"{name} exited:\n" + c.logs(tail=8).decode("utf-8", "replace")
        return None

    def _wait_http(self, names: list[str], path: str) -> None:
        wait_for(all_of(*(http_ok(f"http://127.0.0.1:{self.host_ports[n]}{path}") for n in names)),
                 timeout=self.ready_timeout, interval=0.1, abort=lambda: self._exited(names))

    def _wait_nodes(self, ids: list[str]) -> None:
        self._wait_http(ids, "/ready")
        self._wait_alive(ids)

    def stop(self) -> None:
        """Remove every container, network and volume of this run (idempotent)."""
        self._stop_agent()
        if self._docker is None:
            return
        flt = {"label": f"{LABEL}={self.run_id}"}
        for c in self.docker.containers.list(all=True, filters=flt):
            try:
                c.remove(force=True, v=True)
            except Exception as exc:  # keep going: remove what can be removed
                log.warning("could not remove %s: %s", c.name, exc)
        for n in self.docker.networks.list(filters=flt):
            try:
                n.remove()
            except Exception as exc:
                log.warning("could not remove network %s: %s", n.name, exc)
        for v in self.docker.volumes.list(filters=flt):
            try:
                v.remove(force=True)
            except Exception as exc:
                log.warning("could not remove volume %s: %s", v.name, exc)
        self.containers.clear()
        atexit.unregister(self.stop)

    def logs(self, tail: int = 50) -> str:
        out = []
        for name, c in list(self.containers.items()):
            try:
                out.append(f"--- {name}\n" + c.logs(tail=tail).decode("utf-8", "replace"))
            except Exception as exc:
                out.append(f"--- {name}: no logs ({exc})")
        return "\n".join(out)

    # ---- addresses ----
    def endpoints(self) -> Endpoints:
        nodes = {n: f"http://{self.links[Link(CLIENT, n)]}" for n in self.node_ids()}
        return Endpoints(registry=f"http://{self.links[Link(CLIENT, REGISTRY)]}",
                         registry_direct=self.registry_admin_url, nodes=nodes,
                         proxy_api=None if self.toxiproxy is None else self.toxiproxy.url,
                         admin_token=self.admin_token)

    def is_running(self, name: str) -> bool:
        c = self._container(name)
        c.reload()
        return c.status in ("running", "paused")

    def service_log(self, name: str) -> str:
        return self._container(name).logs().decode("utf-8", "replace")

    def link_names(self) -> list[str]:
        return [link.name for link in self.links]

    def node_ids(self) -> list[str]:
        return [n for n in self.containers if n not in ("registry", "proxy")]

    def node_url(self, node_id: str) -> str:
        return f"http://127.0.0.1:{self.host_ports[node_id]}"

    def _container(self, name: str):
        try:
            return self.containers[name]
        except KeyError:
            raise KeyError(f"unknown service {name!r}; known: {sorted(self.containers)}") from None

    # ---- faults on containers ----
    def kill(self, node_id: str) -> None:
        c = self._container(node_id)
        c.reload()
        if c.status == "paused":
            c.unpause()
        if c.status != "exited":
            c.kill(signal="SIGKILL")
        wait_for(lambda: (c.reload(), c.status)[1] == "exited", timeout=10,
                 description=f"{node_id} to exit")

    def stop_node(self, node_id: str) -> None:
        self._container(node_id).stop(timeout=5)

    def pause(self, node_id: str) -> None:
        self._container(node_id).pause()

    def resume(self, node_id: str) -> None:
        c = self._container(node_id)
        c.reload()
        if c.status == "paused":
            c.unpause()

    def restart(self, node_id: str) -> None:
        c = self._container(node_id)
        c.reload()
        if c.status == "paused":
            c.unpause()
        if c.status == "running":
            c.stop(timeout=5)
        c.start()  # a restarted container gets new random host ports: read them again
        if node_id == "registry":
            self._note_registry_port()
            self._wait_http(["registry"], "/health")
            self._admin("PUT", "/admin/links", link_table(self.links))
            self._admin("POST", "/admin/adopt", {"nodes": self.node_ids()})
        else:
            self.host_ports[node_id] = self._published(c, NODE_PORT)[NODE_PORT]
            self._wait_nodes([node_id])

    def add_node(self, node_id: str | None = None) -> str:
        with self._lock:
            existing = self.node_ids()
            node_id = node_id or next(f"node-{k}" for k in range(1, 10_000)
                                      if f"node-{k}" not in self.containers)
            self._add_links(links_of_new_node(existing, node_id))
            self._admin("PUT", "/admin/links", link_table(self.links))
            self._start_node(node_id)
        self._wait_nodes([node_id])
        self._admin("POST", "/admin/adopt", {"nodes": [node_id]})
        return node_id


def engine_answers() -> bool:
    """True when a Docker engine answers (the CLI's ``--runtime auto`` uses this)."""
    try:
        import docker

        client = docker.from_env(timeout=3)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:
        return False
