"""The simulated link mesh: every request between participants crosses a directed link with
the proxy's semantics, and is served by the destination's real ASGI app, in this process.

- A :class:`Process` is one incarnation of a service (the registry or a node): its app, the
  tasks it started (a task factory files every task under the process whose context made it),
  and whether it runs, is paused or is dead. Kill cancels its tasks; pause holds everything
  it sends or is sent until it resumes.
- :class:`SimTransport` is the services' and the clients' :class:`~system.transport.Transport`:
  a request is a message on link ``src -> dst`` (one-way latency with seeded jitter, then the
  link's toxics), served by a task of the destination process, and its answer comes back the
  same way. Outcomes are those of the link proxies of the local runtime: a cut link refuses
  (definite); a cut while in flight, a dead destination behind the proxy, a reset or a
  timeout toxic break the connection (indefinite); a blackhole holds until the caller's
  timeout.
- :class:`SimLinks` is the Toxiproxy-like face the network faults use (``disable``,
  ``enable``, ``add_toxic``, ``remove_toxic``), as :class:`chaos.runtime.mesh.LinkProxies`.

Every random draw comes from a per-link ``random.Random`` seeded from the run's seed, so a
link's draws depend only on its own traffic.
"""

from __future__ import annotations

import asyncio
import contextvars
import itertools
import logging
import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

from chaos.runtime.mesh import known_links
from chaos.seeds import derive
from chaos.topology import Link
from system.transport import Raw, Reply, TransportError

__all__ = ["Process", "Network", "SimTransport", "SimLinks", "CURRENT", "PORT"]

log = logging.getLogger("chaoslab.sim.network")

PORT = 80
CURRENT: contextvars.ContextVar[Process | None] = contextvars.ContextVar(
    "chaoslab_sim_process", default=None)  # the process a task runs for (None: a client)


class Process:
    """One incarnation of a service: ``app`` (ASGI) serves what ``name``'s address receives."""

    def __init__(self, name: str, incarnation: int, loop: asyncio.AbstractEventLoop) -> None:
        self.name, self.incarnation, self.loop = name, incarnation, loop
        self.app: Any = None
        self.service: Any = None  # the NodeService or Registry behind the app
        self.alive = True
        self.paused = False
        # what it started (done ones pruned lazily); a dict, not a set: iterated in the order
        # the tasks were made, never in an order of memory addresses (determinism)
        self.tasks: dict[asyncio.Task, None] = {}
        self.prune_at = 256
        self._resumed: asyncio.Event | None = None

    def __repr__(self) -> str:
        state = "dead" if not self.alive else "paused" if self.paused else "running"
        return f"<Process {self.name}#{self.incarnation} {state}>"

    def context(self) -> contextvars.Context:
        """A fresh context in which new tasks belong to this process."""
        ctx = contextvars.Context()
        ctx.run(CURRENT.set, self)
        return ctx

    def spawn(self, coro) -> asyncio.Task:
        return self.loop.create_task(coro, context=self.context())

    async def running(self) -> None:
        """Return once the process is not paused (at once if it is not)."""
        while self.paused:
            if self._resumed is None:
                self._resumed = asyncio.Event()
            await self._resumed.wait()

    def pause(self) -> None:
        self.paused = True

    def resume(self) -> None:
        self.paused = False
        if self._resumed is not None:
            self._resumed.set()
            self._resumed = None

    def kill(self) -> None:
        """SIGKILL: nothing more runs for it; its tasks are cancelled at the next step."""
        self.alive = False
        self.resume()
        for task in list(self.tasks):
            if not task.done():
                task.cancel()

    # ---- the server side ----
    def deliver(self, request: tuple, reply: Any, gone) -> None:
        """Serve ``request``; ``reply(status, body)`` sends the answer back; ``gone()`` says
        whether the caller closed the connection meanwhile."""
        self.spawn(self._serve(request, reply, gone))

    async def _serve(self, request: tuple, reply: Any, gone) -> None:
        try:
            if self.paused:
                await self.running()
            status, raw = await call_asgi(self.app, *request, gone)
            if self.paused:  # frozen mid-request: the answer leaves when it resumes
                await self.running()
        except asyncio.CancelledError:
            reply(None, ConnectionResetError(f"{self.name} died mid-request"))
            raise
        except Exception:  # the app crashed past its handlers: uvicorn would answer 500
            if gone():  # the caller left (Starlette's ClientDisconnect): nobody to answer
                log.debug("%s: %s %s: the caller left", self.name, request[0], request[1])
            else:
                log.exception("%s: unhandled error serving %s %s", self.name, request[0],
                              request[1])
            status, raw = 500, b'{"error": "internal server error", "status": 500}'
        reply(status, raw)


async def call_asgi(app, method: str, target: str, body: bytes, headers: list, src: str,
                    gone=lambda: False) -> tuple[int, bytes]:
    """One HTTP request to an ASGI app, in process: (status, body). ``gone()``: the caller
    has closed the connection (it gave up, or the link was cut); as uvicorn does, the app
    then reads ``http.disconnect`` instead of the body (a held request whose caller timed
    out is not served when a paused node resumes)."""
    path, _, query = target.partition("?")
    scope = {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"},
             "http_version": "1.1", "method": method, "scheme": "http", "path": path,
             "raw_path": path.encode(), "query_string": query.encode(), "root_path": "",
             "headers": headers, "client": (src, 0), "server": ("sim", PORT)}
    sent = False
    status, chunks = 500, []

    async def receive() -> dict:
        nonlocal sent
        if not sent and not gone():
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(scope, receive, send)
    return status, b"".join(chunks)


@dataclass
class _Toxic:
    name: str
    type: str
    stream: str
    toxicity: float
    attributes: dict[str, Any]


@dataclass
class _LinkState:
    rng: random.Random
    cut: bool = False
    toxics: dict[str, _Toxic] = field(default_factory=dict)
    # requests on the link, in the order they were sent (a dict: a cut breaks them in that
    # order, whatever their addresses in memory)
    inflight: dict[asyncio.Future, None] = field(default_factory=dict)


class Network:
    """Participants by name, their processes, and the state of every directed link.

    ``latency`` +- ``jitter`` seconds is the one-way delay of a message on a healthy link
    (uniform, drawn per message). ``mesh``: a dead destination is reached through its proxy,
    which accepts and then closes the connection (indefinite), as in the local runtime;
    without a mesh the connection is refused (definite)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, *, seed: int, latency: float,
                 jitter: float, mesh: bool = True) -> None:
        self.loop = loop
        self.seed, self.latency, self.jitter, self.mesh = seed, latency, jitter, mesh
        self.processes: dict[str, Process] = {}
        self.links: dict[Link, _LinkState] = {}
        self.events: list[tuple[float, str]] = []  # what was injected, on virtual time
        self._ids = itertools.count(1)
        self._routes: dict[tuple[str, str], tuple[str, _LinkState]] = {}

    @staticmethod
    def address(name: str) -> str:
        return f"{name}.sim:{PORT}"

    @staticmethod
    def name_of(address: str) -> str:
        host = address.rpartition(":")[0]
        return host.removesuffix(".sim")

    def link(self, link: Link) -> _LinkState:
        state = self.links.get(link)
        if state is None:
            state = self.links[link] = _LinkState(random.Random(derive(self.seed,
                                                                       f"link:{link.name}")))
        return state

    def note(self, text: str) -> None:
        self.events.append((round(self.loop.time(), 9), text))

    # ---- one request ----
    async def exchange(self, src: str, caller: Process | None, address: str, method: str,
                       path: str, body: bytes, headers: dict[str, str] | None,
                       timeout: float) -> tuple[int, bytes]:
        """Send a request on link ``src -> dst`` and wait at most ``timeout`` for its answer.
        The message travels on timers (no task of its own): it arrives after the link's delay
        even if the caller stopped waiting, as bytes on a wire do."""
        loop = self.loop
        deadline = loop.time() + timeout
        route = self._routes.get((src, address))
        if route is None:
            dst = self.name_of(address)
            route = self._routes[(src, address)] = (dst, self.link(Link(src, dst)))
        dst, state = route
        if caller is not None:
            if not caller.alive:
                raise TransportError(address, f"{src} is dead", definite=True)
            if caller.paused:
                await _within(caller.running(), deadline, address, timeout)
        fut = loop.create_future()
        timer = loop.call_at(deadline, _settle, fut, None, TimeoutError())
        if state.cut:  # the proxy is disabled: it refuses connections
            loop.call_later(self._one_way(state), _settle, fut, None,
                            ConnectionRefusedError("connection refused (link cut)"))
        else:
            hdrs = [(b"host", address.encode()), (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode())]
            rid = None
            for k, v in (headers or {}).items():
                hdrs.append((k.lower().encode("latin-1"), v.encode("latin-1")))
                rid = v if k.lower() == "x-request-id" else rid
            if rid is None:  # deterministic request ids (the services would draw a uuid)
                hdrs.append((b"x-request-id", f"sim-{next(self._ids)}".encode()))
            state.inflight[fut] = None
            self._send(loop, state, "upstream", len(body), fut,
                       lambda: self._arrive(state, dst, fut, (method, path, body, hdrs, src)))
        try:
            status, raw = await fut
        except ConnectionRefusedError as exc:
            raise TransportError(address, f"cannot connect: {exc}", definite=True) from None
        except ConnectionResetError as exc:
            raise TransportError(address, f"ConnectionResetError: {exc}", definite=False) from None
        except TimeoutError:
            raise TransportError(address, f"no answer within {timeout}s", definite=False) from None
        finally:
            state.inflight.pop(fut, None)
            timer.cancel()
        if caller is not None and caller.paused:
            await _within(caller.running(), deadline, address, timeout)
        return status, raw

    def _arrive(self, state: _LinkState, dst: str, fut: asyncio.Future, request: tuple) -> None:
        """The request reached the far end of the link."""
        if state.cut:
            _settle(fut, None, ConnectionResetError("connection closed (link cut)"))
            return
        target = self.processes.get(dst)
        if target is None or not target.alive:
            _settle(fut, None, ConnectionResetError(
                "connection closed before the response was complete (the proxy could not "
                "reach it)") if self.mesh else ConnectionRefusedError("connection refused"))
            return

        def reply(status: int | None, raw: Any) -> None:
            if status is None:  # the server died mid-request
                _settle(fut, None, raw)
            else:
                self._send(asyncio.get_running_loop(), state, "downstream", len(raw), fut,
                           lambda: _settle(fut, (status, raw), None) if not state.cut else
                           _settle(fut, None, ConnectionResetError("connection closed (link cut)")))

        target.deliver(request, reply, fut.done)

    def _one_way(self, state: _LinkState) -> float:
        if not self.jitter:
            return self.latency
        return max(1e-6, self.latency + state.rng.uniform(-self.jitter, self.jitter))

    def _send(self, loop: asyncio.AbstractEventLoop, state: _LinkState, stream: str, size: int,
              fut: asyncio.Future, then) -> None:
        """One message's trip on a link: the latency, then what the toxics of ``stream`` do;
        ``then()`` when it arrives."""
        delay = self._one_way(state)
        for toxic in list(state.toxics.values()) if state.toxics else ():
            if toxic.stream != stream:
                continue
            if toxic.toxicity < 1.0 and state.rng.random() >= toxic.toxicity:
                continue
            a = toxic.attributes
            if toxic.type == "latency":
                jitter = int(a.get("jitter", 0))
                ms = int(a.get("latency", 0)) + (state.rng.randint(-jitter, jitter) if jitter else 0)
                delay += max(0, ms) / 1000
            elif toxic.type == "bandwidth" and a.get("rate", 0) > 0:
                delay += size / (a["rate"] * 1000)
            elif toxic.type == "timeout":
                if a.get("timeout", 0):
                    loop.call_later(delay + a["timeout"] / 1000, _settle, fut, None,
                                    ConnectionResetError("connection closed (timeout toxic)"))
                return  # a blackhole: held, never delivered (the caller times out)
            elif toxic.type == "reset_peer":
                loop.call_later(delay + a.get("timeout", 0) / 1000, _settle, fut, None,
                                ConnectionResetError("connection reset by peer"))
                return
        loop.call_later(delay, then)

    # ---- what the faults do ----
    def cut(self, links: Iterable[Link], down: bool) -> None:
        for link in links:
            state = self.link(link)
            state.cut = down
            if down:  # the proxy closes its open connections
                for fut in list(state.inflight):
                    if not fut.done():
                        fut.set_exception(ConnectionResetError("link cut"))


async def _within(awaitable, deadline: float, address: str, timeout: float) -> None:
    """A paused caller waits for its resume, within what is left of its timeout."""
    try:
        async with asyncio.timeout_at(deadline):
            await awaitable
    except TimeoutError:
        raise TransportError(address, f"no answer within {timeout}s", definite=False) from None


def _settle(fut: asyncio.Future, result: Any, exc: BaseException | None) -> None:
    if not fut.done():  # else the caller gave up (timeout) or the link was cut
        if exc is not None:
            fut.set_exception(exc)
        else:
            fut.set_result(result)


class SimTransport:
    """The :class:`~system.transport.Transport` of participant ``src`` (a node, the registry,
    or ``client``), sending as ``process`` (None for clients, which never die)."""

    def __init__(self, network: Network, src: str, process: Process | None = None) -> None:
        self.network, self.src, self.process = network, src, process

    async def request(self, method: str, address: str, path: str, *, json: Any = None,
                      timeout: float, headers: dict[str, str] | None = None) -> Reply:
        data = b"" if json is None else bytes(json) if isinstance(json, Raw) else orjson.dumps(json)
        status, raw = await self.network.exchange(self.src, self.process, address, method, path,
                                                  data, headers, timeout)
        return Reply.parse(status, raw)

    async def close(self) -> None:
        return None


class SimLinks:
    """The simulated links as the faults see them: the API of
    :class:`chaos.runtime.mesh.LinkProxies`, acting on :class:`Network` state."""

    url = "sim://links"

    def __init__(self, network: Network) -> None:
        self.network = network
        self._links: set[Link] = set()

    def links(self) -> frozenset[Link]:
        return frozenset(self._links)

    def create(self, link: Link, upstream: str = "", *, listen: str = "") -> str:
        self._links.add(link)
        self.network.link(link)
        return self.network.address(link.dst)

    def _known(self, links: Iterable[Link]) -> list[Link]:
        return known_links(links, self._links, "simulated link")

    def disable(self, links: Iterable[Link]) -> None:
        """Cut: connections in flight break, new ones are refused."""
        links = self._known(links)
        self.network.cut(links, True)
        self.network.note(f"cut {' '.join(link.name for link in links)}")

    def enable(self, links: Iterable[Link]) -> None:
        links = self._known(links)
        self.network.cut(links, False)
        self.network.note(f"restore {' '.join(link.name for link in links)}")

    def add_toxic(self, links: Iterable[Link], type: str, *, name: str,
                  stream: str = "downstream", toxicity: float = 1.0, **attributes: Any) -> None:
        links = self._known(links)
        for link in links:
            self.network.link(link).toxics[name] = _Toxic(name, type, stream, toxicity,
                                                          dict(attributes))
        self.network.note(f"toxic {name} {type} {stream} {sorted(attributes.items())} on "
                          f"{' '.join(link.name for link in links)}")

    def remove_toxic(self, links: Iterable[Link], name: str) -> None:
        links = self._known(links)
        for link in links:
            self.network.link(link).toxics.pop(name, None)
        self.network.note(f"remove toxic {name} on {' '.join(link.name for link in links)}")

    def delete_all(self) -> None:
        for link in self._links:
            state = self.network.link(link)
            state.cut = False
            state.toxics.clear()
        self._links.clear()
