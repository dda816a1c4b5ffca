"""The Docker backend: the fault proxy, the registry and the nodes as containers.

Containers, their network and their readiness waits are testcontainers' (``DockerContainer``,
``Network``, a ``WaitStrategy``), the convention pytest users know; the start sequence, the
mesh and scale-up are :class:`~chaos.runtime.meshed.MeshedRuntime`'s.

Each run gets a private bridge network and names with a unique run id, so two runs on one
machine do not clash. Containers reach each other by name on that network; the host reaches
them only through ports published on 127.0.0.1: the client links, the Toxiproxy API and each
service's own port (for inspection). kill/stop/pause/unpause/start map to the Docker API.
The registry has no Docker socket: its ``/scale-up`` and ``/kill`` are delegated to this
harness (see :mod:`chaos.runtime.admin`).

Ryuk (testcontainers' reaper) is not used: it is an image to pull, and chaoslab removes what
it made itself, by label: every container, network and volume of a run carries
``org.chaoslab.run=<run id>``, and :meth:`DockerRuntime.stop` (also run at exit) removes them.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import time
from concurrent.futures import ThreadPoolExecutor

from testcontainers.core.config import testcontainers_config
from testcontainers.core.container import DockerContainer
from testcontainers.core.network import Network
from testcontainers.core.waiting_utils import WaitStrategy

from chaos.runtime.base import ClusterSpec
from chaos.runtime.meshed import MeshedRuntime, Progress, proxy_argv
from chaos.seeds import derive
from chaos.topology import CLIENT, REGISTRY, Link
from chaos.toxiproxy import Toxiproxy
from chaos.wait import WaitTimeout, http_ok, wait_for
from system.launch import node_argv, registry_argv

__all__ = ["DockerRuntime", "HttpReady", "engine_answers", "LABEL"]

log = logging.getLogger("chaoslab.runtime.docker")

LABEL = "org.chaoslab.run"
PROXY = "proxy"
API_PORT = 8474
REGISTRY_PORT = 5000
NODE_PORT = 5001
CLIENT_PORT_BASE = 21000  # proxies for client links; published on 127.0.0.1
SPARE_NODES = 4  # scale-ups the published client ports leave room for
INTERNAL_PORT_BASE = 22000  # proxies for links between containers; not published
PYTHON = "python"  # the image's interpreter


def published(container, *ports: int) -> dict[int, int]:
    """The 127.0.0.1 host port of each container port (one inspect for all); ``container``
    is a docker SDK container."""
    container.reload()
    bindings = container.attrs["NetworkSettings"]["Ports"] or {}
    found = {}
    for port in ports:
        for b in bindings.get(f"{port}/tcp") or []:
            if b.get("HostIp") == "127.0.0.1":
                found[port] = int(b["HostPort"])
        if port not in found:
            # an exited container publishes nothing: say it exited (at once), with its log
            reason = _exited(container)
            if reason:
                raise WaitTimeout(f"stopped waiting for {container.name}: {reason}")
            raise RuntimeError(f"{container.name}: port {port} is not published on 127.0.0.1")
    return found


def _exited(container) -> str | None:
    """Why waiting on a docker SDK container is pointless (it exited), or None."""
    container.reload()
    if container.status in ("exited", "dead"):
        tail = container.logs(tail=8).decode("utf-8", "replace")
        return f"{container.name} exited:\n{tail}"
    return None


class HttpReady(WaitStrategy):
    """testcontainers wait strategy: ``GET path`` on the container's ``port``, through its
    127.0.0.1 binding, answers 200. Gives up at once when the container exits.

    testcontainers' own ``HttpWaitStrategy`` does not fit: it dials
    ``get_container_host_ip()``, which inside a container (as on CI runners) is the network's
    gateway, where ports published on 127.0.0.1 cannot be reached; and it waits out its whole
    timeout after the container has exited."""

    def __init__(self, port: int, path: str = "/") -> None:
        super().__init__()
        self.port = port
        self.path = path
        self.with_poll_interval(0.1)

    def wait_until_ready(self, container: DockerContainer) -> None:
        wrapped = container.get_wrapped_container()
        url = f"http://127.0.0.1:{published(wrapped, self.port)[self.port]}{self.path}"
        wait_for(http_ok(url), timeout=self._startup_timeout, interval=self._poll_interval,
                 abort=lambda: _exited(wrapped))


class DockerRuntime(MeshedRuntime):
    """Containers of the chaoslab image (built on first use; ``progress`` hears each build
    step). ``labels`` are added to everything the run creates (e.g. a test session's, to
    find its leftovers)."""

    name = "docker"

    def __init__(self, spec: ClusterSpec | None = None, *, image: str | None = None,
                 ready_timeout: float = 60.0, build: bool = True,
                 labels: dict[str, str] | None = None, spare_nodes: int = SPARE_NODES,
                 progress: Progress | None = None) -> None:
        super().__init__(spec, ready_timeout=ready_timeout, progress=progress)
        # the proxy publishes one host port per client link, the registry's and each node's,
        # fixed when its container starts: the nodes and ``spare_nodes`` more. Only as many
        # as needed, since Docker runs one docker-proxy per published port: 25 of them took
        # 1.3 s to start and 1.7 s to kill, against 0.2 s for a container with one
        self.client_ports = self.spec.nodes + 1 + spare_nodes
        if not self.spec.mesh:
            log.info("the docker runtime always meshes its links; mesh=False is ignored")
            import dataclasses

            self.spec = dataclasses.replace(self.spec, mesh=True)
        self.image = image
        self.build = build
        self.run_id = secrets.token_hex(4)
        self.prefix = f"chaoslab-{self.run_id}"
        self.extra_labels = dict(labels or {})
        self.containers: dict[str, DockerContainer] = {}
        self.network: Network | None = None
        self.host_ports: dict[str, int] = {}  # service -> published port of its own listener
        self._client_ports: dict[int, int] = {}  # proxy's container port -> host port
        self._next_client = CLIENT_PORT_BASE
        self._next_internal = INTERNAL_PORT_BASE
        self._docker = None

    # ---- docker plumbing ----
    @property
    def docker(self):
        """The docker SDK client, for what testcontainers has no call for (volumes, the
        label sweep on stop)."""
        if self._docker is None:
            import docker

            self._docker = docker.from_env(timeout=60)
        return self._docker

    def _labels(self) -> dict[str, str]:
        return {**self.extra_labels, LABEL: self.run_id}

    def _run(self, name: str, command: list[str], *, ports: list[int],
             volume: str | None = None, wait: WaitStrategy | None = None) -> DockerContainer:
        container = DockerContainer(
            self.image, command=command, name=f"{self.prefix}-{name}", network=self.network,
            network_aliases=[name], env={"PYTHONUNBUFFERED": "1"},
            docker_client_kw={"timeout": 60}, labels=self._labels(), hostname=name)
        for port in ports:  # with_bind_ports cannot bind to 127.0.0.1 only: docker-py's form
            container.ports[f"{port}/tcp"] = ("127.0.0.1", None)
        if volume:
            self.docker.volumes.create(volume, labels=self._labels())
            container.with_volume_mapping(volume, "/data", "rw")
        if wait is not None:
            container.waiting_for(wait.with_startup_timeout(self.ready_timeout))
        self.containers[name] = container
        return container.start()

    def _wrapped(self, name: str):
        try:
            return self.containers[name].get_wrapped_container()
        except KeyError:
            raise KeyError(f"unknown service {name!r}; known: {sorted(self.containers)}") \
                from None

    def _note_port(self, name: str) -> None:
        """Read the service's published port again (a restarted container gets a new one)."""
        port = REGISTRY_PORT if name == REGISTRY else NODE_PORT
        self.host_ports[name] = published(self._wrapped(name), port)[port]

    # ---- hooks ----
    def _prepare(self) -> None:
        t = time.perf_counter()
        if self.image is None:
            from chaos.runtime.images import ensure_image

            self.image = ensure_image(progress=self._progress) if self.build \
                else "chaoslab:latest"
        self.timings["image"] = time.perf_counter() - t
        testcontainers_config.ryuk_disabled = True  # see the module docstring
        self.network = Network(docker_client_kw={"timeout": 60}, docker_network_kw={
            "driver": "bridge", "labels": self._labels()})
        self.network.name = f"{self.prefix}-net"
        self.network.create()

    def _start_proxy_server(self) -> Toxiproxy:
        client_ports = [CLIENT_PORT_BASE + i for i in range(self.client_ports)]
        proxy = self._run(PROXY, proxy_argv(host="0.0.0.0", port=API_PORT, python=PYTHON,
                                            seed=derive(self.spec.seed, "proxy")),
                          ports=[API_PORT, *client_ports], wait=HttpReady(API_PORT, "/version"))
        found = published(proxy.get_wrapped_container(), API_PORT, *client_ports)
        self.host_ports[PROXY] = found.pop(API_PORT)
        self._client_ports = found
        return Toxiproxy(f"http://127.0.0.1:{self.host_ports[PROXY]}")

    def _link_listen(self, link: Link) -> str:
        if link.src == CLIENT:
            if self._next_client >= CLIENT_PORT_BASE + self.client_ports:
                raise RuntimeError(
                    f"no published port left for {link}: the proxy published room for "
                    f"{self.client_ports - self.spec.nodes - 1} added nodes; start the runtime "
                    f"with a larger spare_nodes")
            port, self._next_client = self._next_client, self._next_client + 1
        else:
            port, self._next_internal = self._next_internal, self._next_internal + 1
        return f"0.0.0.0:{port}"

    def _link_address(self, link: Link, listen: str) -> str:
        port = int(listen.rpartition(":")[2])
        return f"127.0.0.1:{self._client_ports[port]}" if link.src == CLIENT else f"proxy:{port}"

    def _upstream(self, service: str) -> str:
        return f"registry:{REGISTRY_PORT}" if service == REGISTRY else f"{service}:{NODE_PORT}"

    def _spawn_registry(self) -> None:
        s = self.spec
        self._run(REGISTRY, registry_argv(
            s.settings, port=REGISTRY_PORT, admin_token=self.admin_token, host="0.0.0.0",
            advertise=self._upstream(REGISTRY), seed=derive(s.seed, "gateway"),
            log_level=s.log_level, python=PYTHON), ports=[REGISTRY_PORT])
        self._note_port(REGISTRY)

    def _spawn_node(self, node_id: str, registry: str) -> None:
        s = self.spec
        self._run(node_id, node_argv(
            s.settings, node_id=node_id, port=NODE_PORT, registry=registry, data_dir="/data",
            storage=s.storage, host="0.0.0.0", advertise=self._upstream(node_id),
            load_factor=s.load_factor, workers=s.node_workers, log_level=s.log_level,
            seed=derive(s.seed, f"gateway:{node_id}"), python=PYTHON), ports=[NODE_PORT], volume=f"{self.prefix}-{node_id}-data")
        self._note_port(node_id)

    def _spawn_each(self, spawns) -> None:
        # each waits on the daemon (create, start, inspect): at once, ~0.4 s each in turn
        with ThreadPoolExecutor(max_workers=len(spawns) or 1) as pool:
            for future in [pool.submit(spawn) for spawn in spawns]:
                future.result()

    def _start_again(self, name: str) -> None:
        self._wrapped(name).start()
        self._note_port(name)

    def _wait_http(self, names: list[str], path: str) -> None:
        deadline = time.monotonic() + self.ready_timeout
        for name in names:  # started together, so waiting in turn costs about the slowest
            port = REGISTRY_PORT if name == REGISTRY else NODE_PORT
            HttpReady(port, path).with_startup_timeout(max(0.5, deadline - time.monotonic())) \
                .wait_until_ready(self.containers[name])

    def _registry_url(self) -> str:
        return f"http://127.0.0.1:{self.host_ports.get(REGISTRY, 0)}"

    def _teardown(self) -> None:
        """Remove every container, network and volume labelled with this run's id."""
        for container in self.containers.values():
            with contextlib.suppress(Exception):
                container.get_docker_client().client.close()
        self.containers.clear()
        if self._docker is None and self.network is None:
            return  # nothing was created
        flt = {"label": f"{LABEL}={self.run_id}"}

        def remove(c) -> None:
            try:
                c.remove(force=True, v=True)
            except Exception as exc:  # keep going: remove what can be removed
                log.warning("could not remove %s: %s", c.name, exc)

        with ThreadPoolExecutor(max_workers=8) as pool:  # ~0.45 s each, in turn
            list(pool.map(remove, self.docker.containers.list(all=True, filters=flt)))
        removals = [(n, n.remove) for n in self.docker.networks.list(filters=flt)]
        removals += [(v, lambda v=v: v.remove(force=True))
                     for v in self.docker.volumes.list(filters=flt)]
        for thing, remove in removals:
            try:
                remove()
            except Exception as exc:
                log.warning("could not remove %s: %s", thing.name, exc)
        self.network = None

    def _log_tail(self) -> str:
        out = []
        for name in list(self.containers):
            try:
                tail = self._wrapped(name).logs(tail=10).decode("utf-8", "replace")
                out.append(f"--- {name}\n{tail}")
            except Exception as exc:
                out.append(f"--- {name}: no logs ({exc})")
        return "\n".join(out)

    # ---- services ----
    def node_url(self, node_id: str) -> str:
        self._wrapped(node_id)
        return f"http://127.0.0.1:{self.host_ports[node_id]}"

    def service_log(self, name: str) -> str:
        return self._wrapped(name).logs().decode("utf-8", "replace")

    def is_running(self, name: str) -> bool:
        c = self._wrapped(name)
        c.reload()
        return c.status in ("running", "paused")

    def kill(self, node_id: str) -> None:
        with self._lock:
            c = self._wrapped(node_id)
            c.reload()
            if c.status not in ("running", "paused"):
                return
            if c.status == "paused":
                c.unpause()
            c.kill(signal="SIGKILL")
            wait_for(lambda: (c.reload(), c.status)[1] in ("exited", "dead"), timeout=10,
                     description=f"{node_id} to exit")

    def stop_node(self, node_id: str) -> None:
        with self._lock:
            c = self._wrapped(node_id)
            c.reload()
            if c.status == "paused":
                c.unpause()
            if c.status in ("running", "paused"):
                c.stop(timeout=5)

    def pause(self, node_id: str) -> None:
        c = self._wrapped(node_id)
        c.reload()
        if c.status == "running":
            c.pause()

    def resume(self, node_id: str) -> None:
        c = self._wrapped(node_id)
        c.reload()
        if c.status == "paused":
            c.unpause()


def engine_answers() -> bool:
    """True when a Docker engine answers."""
    try:
        import docker

        client = docker.from_env(timeout=3)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:
        return False
