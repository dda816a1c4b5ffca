"""What both built-in backends share: the link mesh, the start and stop sequence, scale-up,
restart and the addresses.

A backend (:mod:`chaos.runtime.local`, :mod:`chaos.runtime.docker`) says only how to spawn
and signal its services and where they are; :class:`MeshedRuntime` does the rest, the same
way on both:

1. ``_prepare`` (the image and network, or nothing);
2. the registry is spawned (it boots while the proxies are made), and so are the nodes where
   their way to the registry is known before the proxy listens (Docker's fixed ports);
3. the proxy server, then one proxy per directed link (:func:`chaos.topology.all_links`);
4. the registry is waited on, then given its link table (``PUT /admin/links``);
5. the nodes, spawned now if not yet (``_spawn_each``: in turn, or at once where spawning
   waits on a daemon), waited on until ready and seen alive by the registry, adopted;
6. the :class:`~chaos.runtime.admin.LaunchAgent`, which serves the registry's delegated
   ``/scale-up`` and ``/kill``.

A start that fails logs the tail of every service's log and stops what it started.
``stop`` also runs at interpreter exit.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import secrets
import sys
import threading
import time
from collections.abc import Callable, Iterator

import httpx

from chaos.runtime.admin import LaunchAgent, RegistryAdmin
from chaos.runtime.base import ClusterSpec, Endpoints
from chaos.runtime.mesh import LinkProxies
from chaos.topology import CLIENT, REGISTRY, Link, all_links, link_table, links_of_new_node
from chaos.toxiproxy import Toxiproxy
from chaos.wait import Strategy, all_of, wait_for

__all__ = ["MeshedRuntime", "proxy_argv"]

log = logging.getLogger("chaoslab.runtime")

Progress = Callable[[str], None]


def proxy_argv(*, host: str, port: int, seed: int | None = None,
               python: str = sys.executable) -> list[str]:
    """``python -m chaos.proxy ...``: the Toxiproxy-compatible server of the link mesh."""
    argv = [python, "-m", "chaos.proxy", "--host", host, "--port", str(port)]
    return argv + (["--seed", str(seed)] if seed is not None else [])


class MeshedRuntime:
    """The shared part of the local and Docker runtimes (see the module docstring).

    Subclasses implement the hooks below (``_prepare`` ... ``_log_tail``) and the service
    verbs of :class:`~chaos.runtime.base.Killable` and :class:`~chaos.runtime.base.Pausable`.
    """

    name = "meshed"

    def __init__(self, spec: ClusterSpec | None, *, ready_timeout: float,
                 progress: Progress | None = None) -> None:
        self.spec = spec or ClusterSpec()
        self.ready_timeout = ready_timeout
        self.admin_token = secrets.token_hex(12)
        self.proxies: LinkProxies | None = None
        self.links: dict[Link, str] = {}  # link -> the address its source dials (its proxy)
        self.timings: dict[str, float] = {}  # seconds per start phase
        self._nodes: list[str] = []
        self._lock = threading.RLock()
        self._progress = progress
        self.admin = RegistryAdmin(self._registry_url, self.admin_token)
        self.agent = LaunchAgent(self.admin, launch=self.add_node, kill=self.kill)

    # ---- hooks a backend implements ----
    def _prepare(self) -> None:
        """Whatever must exist before the first service (an image, a network)."""

    def _owns_proxy_server(self) -> bool:
        """False when the proxy server outlives the run (its proxies are deleted on stop)."""
        return True

    def _start_proxy_server(self) -> Toxiproxy:
        """Start (or reach) the proxy server and return its client once it answers."""
        raise NotImplementedError

    def _link_listen(self, link: Link) -> str:
        """Where the proxy of ``link`` listens, as the proxy server binds it."""
        raise NotImplementedError

    def _link_address(self, link: Link, listen: str) -> str:
        """The address the source of ``link`` dials, given where its proxy listens."""
        raise NotImplementedError

    def _upstream(self, service: str) -> str:
        """``host:port`` of a service as the proxy server (and the other services) reach it."""
        raise NotImplementedError

    def _spawn_registry(self) -> None:
        raise NotImplementedError

    def _spawn_node(self, node_id: str, registry: str) -> None:
        """Start a new node that reaches the registry at ``registry`` (a URL)."""
        raise NotImplementedError

    def _start_again(self, name: str) -> None:
        """Start a stopped service again, on the same data."""
        raise NotImplementedError

    def _wait_http(self, names: list[str], path: str) -> None:
        """Until ``path`` answers 200 on each service; give up when one of them exits."""
        raise NotImplementedError

    def _registry_url(self) -> str:
        """The registry's own URL as this host reaches it (admin and status calls)."""
        raise NotImplementedError

    def _teardown(self) -> None:
        """Stop and remove every service and whatever ``_prepare`` made (idempotent)."""
        raise NotImplementedError

    def _log_tail(self) -> str:
        """The last lines of every service's log, for a failed start."""
        raise NotImplementedError

    def is_running(self, name: str) -> bool:
        raise NotImplementedError

    def stop_node(self, node_id: str) -> None:
        raise NotImplementedError

    def kill(self, node_id: str) -> None:
        raise NotImplementedError

    def node_url(self, node_id: str) -> str:
        raise NotImplementedError

    # ---- lifecycle ----
    def start(self) -> Endpoints:
        atexit.register(self.stop)
        try:
            return self._start()
        except BaseException:
            log.error("%s cluster failed to start; last log lines:\n%s", self.name,
                      self._log_tail())
            self.stop()
            raise

    def _start(self) -> Endpoints:
        started = time.perf_counter()
        ids = self.spec.node_ids()
        with self._phase("prepare"):
            self._prepare()
        with self._phase("registry", "starting the registry"):
            self._spawn_registry()  # it boots while the proxies are made
        links = all_links(ids) if self.spec.mesh else []
        listens = {link: self._link_listen(link) for link in links}
        # where a backend fixes the proxies' ports (Docker), the nodes know their way to the
        # registry before the proxy listens: they boot meanwhile, and retry until it does
        ahead = all(not listens.get(Link(n, REGISTRY), "").endswith(":0") for n in ids)
        if ahead:
            with self._phase("nodes_spawn", f"starting {len(ids)} nodes"):
                self.links.update({link: self._link_address(link, listens[link])
                                   for n in ids if (link := Link(n, REGISTRY)) in listens})
                self._spawn(*ids)
        if self.spec.mesh:
            with self._phase("proxy", "starting the link proxies"):
                self.proxies = LinkProxies(self._start_proxy_server())
                self._add_links(links, listens)
        with self._phase("registry_ready"):
            self._wait_http([REGISTRY], "/health")
            self._publish_links()
        with self._phase("nodes", None if ahead else f"starting {len(ids)} nodes"):
            if not ahead:
                self._spawn(*ids)
            self._wait_nodes(ids)
        self.admin.adopt(ids)
        self.agent.start()
        self.timings["total"] = time.perf_counter() - started
        log.info("%s cluster ready in %.2fs (%s)", self.name, self.timings["total"],
                 ", ".join(f"{k} {v:.2f}s" for k, v in self.timings.items() if k != "total"))
        return self.endpoints()

    @contextlib.contextmanager
    def _phase(self, name: str, message: str | None = None) -> Iterator[None]:
        if message and self._progress is not None:
            self._progress(message)
        t = time.perf_counter()
        yield
        self.timings[name] = time.perf_counter() - t

    def stop(self) -> None:
        """Stop everything this runtime started, and delete its proxies from a proxy server
        that outlives the run (idempotent)."""
        self.agent.stop()
        with self._lock:
            if self.proxies is not None:
                if not self._owns_proxy_server():
                    self.proxies.delete_all()
                self.proxies.toxiproxy.close()
            self._teardown()
        self.admin.close()
        atexit.unregister(self.stop)

    # ---- the mesh ----
    def _add_links(self, links: list[Link], listens: dict[Link, str] | None = None) -> None:
        assert self.proxies is not None
        for link in links:
            listen = self.proxies.create(link, self._upstream(link.dst), listen=(
                listens[link] if listens is not None else self._link_listen(link)))
            self.links[link] = self._link_address(link, listen)

    def _publish_links(self) -> None:
        if self.links:
            self.admin.put_links(link_table(self.links))

    # ---- nodes ----
    def _spawn(self, *ids: str) -> None:
        registry = {n: self.links.get(Link(n, REGISTRY), self._upstream(REGISTRY)) for n in ids}
        self._spawn_each([(lambda n=n: self._spawn_node(n, f"http://{registry[n]}"))
                          for n in ids])
        self._nodes.extend(ids)

    def _spawn_each(self, spawns: list[Callable[[], None]]) -> None:
        """Run each spawn; in turn here, a backend whose spawn waits on a daemon runs them
        at once."""
        for spawn in spawns:
            spawn()

    def _wait_nodes(self, ids: list[str]) -> None:
        """Ready (a member list from the registry), seen alive by the registry, and knowing
        every node the registry lists: a node's first heartbeat may come back before the
        others registered, and a node gateway that does not know its peers cannot reach a
        key's owners."""
        self._wait_http(ids, "/ready")
        self.admin.wait_alive(ids, timeout=self.ready_timeout)
        everyone = self.admin.members()

        def knows_everyone(node: str) -> Strategy:
            def check() -> bool:
                stats = httpx.get(f"{self.node_url(node)}/stats", timeout=2.0).json()
                return everyone <= set(stats["members"])
            return Strategy(check, f"{node} to know {', '.join(sorted(everyone))}")

        wait_for(all_of(*map(knows_everyone, ids)), timeout=self.ready_timeout, interval=0.05)

    def add_node(self, node_id: str | None = None) -> str:
        """Start one more node, with its links, and wait until the registry sees it alive."""
        with self._lock:
            node_id = node_id or next(f"node-{k}" for k in range(1, 10_000)
                                      if f"node-{k}" not in self._nodes)
            if node_id in self._nodes:
                raise ValueError(f"{node_id} already exists; nodes: {', '.join(self._nodes)}")
            if self.proxies is not None:
                self._add_links(links_of_new_node(self._nodes, node_id))
                self._publish_links()
            self._spawn(node_id)
        self._wait_nodes([node_id])
        self.admin.adopt([node_id])
        return node_id

    def restart(self, node_id: str) -> None:
        """Start a stopped or killed service (a node or ``"registry"``) again on the same data
        and wait until it is ready; a running one is stopped gracefully first."""
        with self._lock:
            self._check(node_id)
            if self.is_running(node_id):
                self.stop_node(node_id)
            self._start_again(node_id)
        if node_id == REGISTRY:
            self._wait_http([REGISTRY], "/health")
            self._publish_links()
            self.admin.adopt(list(self._nodes))
        else:
            self._wait_nodes([node_id])

    # ---- addresses ----
    def endpoints(self) -> Endpoints:
        direct = self._registry_url()
        via = self.links.get(Link(CLIENT, REGISTRY))
        nodes = {n: (f"http://{self.links[Link(CLIENT, n)]}" if Link(CLIENT, n) in self.links
                     else self.node_url(n)) for n in self._nodes}
        return Endpoints(registry=f"http://{via}" if via else direct, registry_direct=direct,
                         nodes=nodes, proxy_api=self.proxies.url if self.proxies else None,
                         admin_token=self.admin_token)

    def node_ids(self) -> list[str]:
        return list(self._nodes)

    def _check(self, name: str) -> None:
        if name != REGISTRY and name not in self._nodes:
            raise KeyError(f"unknown service {name!r}; known: registry, "
                           f"{', '.join(self._nodes)}")
