"""The simulated link mesh: every request between participants crosses a directed link with
the proxy's semantics, and is served by the destination's real ASGI app, in this process.

- A :class:`Process` is one incarnation of a service (the registry or a node): its app, the
  tasks it started (a task factory files every task under the process whose context made it),
  and whether it runs, is paused or is dead. Kill cancels its tasks. Pause freezes it, as
  SIGSTOP does: the loop holds every callback of its context (task steps, timers, sleeps)
  until it resumes, so it sends nothing, serves nothing and its heartbeats stop; what is
  sent to it waits (a proxy in front of a stopped process accepts and holds).
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
from collections.abc import Coroutine, Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

from chaos.runtime.mesh import known_links
from chaos.seeds import derive
from chaos.sim.loop import OWNER
from chaos.topology import Link
from system.transport import Raw, Reply, TransportError

__all__ = ["Process", "Network", "SimTransport", "SimLinks", "CURRENT", "PORT"]

log = logging.getLogger("chaoslab.sim.network")

PORT = 80
CURRENT: contextvars.ContextVar[Process | None] = OWNER  # the process a task runs for


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
        self.held: list[asyncio.Handle] = []  # its callbacks the loop held while paused
        self.inline: frozenset[tuple[str, str]] = frozenset()  # see deliver
        self._context: contextvars.Context | None = None  # copied for each task (context())

    def __repr__(self) -> str:
        state = "dead" if not self.alive else "paused" if self.paused else "running"
        return f"<Process {self.name}#{self.incarnation} {state}>"

    def context(self) -> contextvars.Context:
        """A fresh context in which new tasks belong to this process."""
        if self._context is None:
            self._context = contextvars.Context()
            self._context.run(CURRENT.set, self)
        return self._context.copy()

    def spawn(self, coro) -> asyncio.Task:
        return self.loop.create_task(coro, context=self.context())

    def pause(self) -> None:
        """SIGSTOP: none of its callbacks run (the loop holds them) until :meth:`resume`."""
        self.paused = True

    def resume(self) -> None:
        """SIGCONT: what was held runs, in order; timers due meanwhile fire at once."""
        self.paused = False
        held, self.held = self.held, []
        if held:
            self.loop.release(held)

    def kill(self) -> None:
        """SIGKILL: nothing more runs for it; its tasks are cancelled at the next step."""
        self.alive = False
        self.resume()
        for task in list(self.tasks):
            if not task.done():
                task.cancel()

    # ---- the server side ----
    def deliver(self, request: tuple, reply: Any, gone) -> bool:
        """Serve ``request``; ``reply(status, body)`` sends the answer back; ``gone()`` says
        whether the caller closed the connection meanwhile. True when it was served at once
        (the answer is on its way).

        A route in ``inline`` (the services' hot routes, which need no task of their own to
        start) is served in this callback, in the process's context, up to its first wait;
        only if it waits does a task of the process carry it on. Anything else, or anything
        sent to a paused process, is served by a new task of the process (held while it is
        paused)."""
        ctx = self.context()
        coro = self._serve(request, reply, gone)
        if self.paused or (request[0], request[1]) not in self.inline:
            self.loop.create_task(coro, context=ctx)
            return False
        try:
            waits_on = ctx.run(coro.send, None)
        except StopIteration:
            return True
        self.loop.create_task(_CarryOn(coro, waits_on), context=ctx)
        return False

    async def _serve(self, request: tuple, reply: Any, gone) -> None:
        try:  # paused meanwhile: this task is frozen, its answer leaves when it resumes
            status, raw = await call_asgi(self.app, *request, gone)
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


class _CarryOn(Coroutine):
    """``coro``, whose first step already ran and yielded ``waits_on``, as a coroutine a task
    can run from here: its first step waits on ``waits_on``; what the task throws in (a
    cancellation, even before that first step) goes to ``coro``."""

    __slots__ = ("coro", "first")

    def __init__(self, coro, waits_on) -> None:
        self.coro, self.first = coro, [waits_on]

    def send(self, value):
        if self.first:
            return self.first.pop()
        return self.coro.send(value)

    def throw(self, typ, val=None, tb=None):
        self.first.clear()
        if val is None and tb is None:
            return self.coro.throw(typ)
        return self.coro.throw(typ, val, tb)

    def close(self) -> None:
        self.coro.close()

    def __await__(self):
        raise TypeError("_CarryOn is run by a task, not awaited")


_ASGI = {"version": "3.0", "spec_version": "2.3"}


async def call_asgi(app, method: str, target: str, body: bytes, headers: list, src: str,
                    gone=lambda: False) -> tuple[int, bytes]:
    """One HTTP request to an ASGI app, in process: (status, body). ``gone()``: the caller
    has closed the connection (it gave up, or the link was cut); as uvicorn does, the app
    then reads ``http.disconnect`` instead of the body (a held request whose caller timed
    out is not served when a paused node resumes)."""
    path, _, query = target.partition("?")
    scope = {"type": "http", "asgi": _ASGI,
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
        self._routes: dict[tuple[str, str], tuple[str, _LinkState, tuple]] = {}

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
        route = self._routes.get((src, address))
        if route is None:
            dst = self.name_of(address)
            route = self._routes[(src, address)] = (dst, self.link(Link(src, dst)),
                                                    (b"host", address.encode()))
        dst, state, host = route
        if caller is not None and not caller.alive:
            raise TransportError(address, f"{src} is dead", definite=True)
        call = _Call(loop, loop.time() + timeout)
        fut = call.fut
        if state.cut:  # the proxy is disabled: it refuses connections
            self._at(call, self._one_way(state), _settle, fut, None,
                     ConnectionRefusedError("connection refused (link cut)"))
        else:
            hdrs = [host, (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode())]
            rid = None
            if headers:
                for k, v in headers.items():
                    hdrs.append((k.lower().encode("latin-1"), v.encode("latin-1")))
                    rid = v if k.lower() == "x-request-id" else rid
            if rid is None:  # deterministic request ids (the services would draw a uuid)
                hdrs.append((b"x-request-id", f"sim-{next(self._ids)}".encode()))
            state.inflight[fut] = None
            self._send(state, "upstream", len(body), call, self._arrive, state, dst, call,
                       (method, path, body, hdrs, src))
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
            if call.timer is not None:
                call.timer.cancel()
        return status, raw

    def _at(self, call: _Call, delay: float, callback, *args) -> None:
        """``callback(*args)`` after ``delay``, on the wire (no process's: a paused sender's
        bytes already sent still arrive); the caller's timeout is armed if it may come
        first."""
        loop = self.loop
        if loop.time() + delay >= call.deadline:
            call.arm()
        loop.call_wire(delay, callback, *args)

    def _arrive(self, state: _LinkState, dst: str, call: _Call, request: tuple) -> None:
        """The request reached the far end of the link."""
        fut = call.fut
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
                self._send(state, "downstream", len(raw), call, _answer, state, fut, status, raw)

        if not target.deliver(request, reply, fut.done):
            call.arm()  # it is served by a task (or held): it may take any time

    def _one_way(self, state: _LinkState) -> float:
        j = self.jitter
        if not j:
            return self.latency
        # random.uniform(-j, j), without its call
        return max(1e-6, self.latency + (-j + (j + j) * state.rng.random()))

    def _send(self, state: _LinkState, stream: str, size: int, call: _Call, then, *args) -> None:
        """One message's trip on a link: the latency, then what the toxics of ``stream`` do;
        ``then(*args)`` when it arrives."""
        delay = self._one_way(state)
        if not state.toxics:  # the usual case, without a call more
            loop = self.loop
            if loop.time() + delay >= call.deadline:
                call.arm()
            loop.call_wire(delay, then, *args)
            return
        for toxic in list(state.toxics.values()):
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
                call.arm()
                if a.get("timeout", 0):
                    self._at(call, delay + a["timeout"] / 1000, _settle, call.fut, None,
                             ConnectionResetError("connection closed (timeout toxic)"))
                return  # a blackhole: held, never delivered (the caller times out)
            elif toxic.type == "reset_peer":
                self._at(call, delay + a.get("timeout", 0) / 1000, _settle, call.fut, None,
                         ConnectionResetError("connection reset by peer"))
                return
        self._at(call, delay, then, *args)

    # ---- what the faults do ----
    def cut(self, links: Iterable[Link], down: bool) -> None:
        for link in links:
            state = self.link(link)
            state.cut = down
            if down:  # the proxy closes its open connections
                for fut in list(state.inflight):
                    if not fut.done():
                        fut.set_exception(ConnectionResetError("link cut"))


_WIRE = contextvars.Context()  # the context of messages on the links: no process's


class _Call:
    """One request in flight: the caller's future and its deadline. The timer that ends it
    at the deadline is armed only once its answer may not come before (most answers are
    on their way, on a timer, well before it)."""

    __slots__ = ("loop", "fut", "deadline", "timer")

    def __init__(self, loop: asyncio.AbstractEventLoop, deadline: float) -> None:
        self.loop, self.deadline = loop, deadline
        self.fut = loop.create_future()
        self.timer: asyncio.TimerHandle | None = None

    def arm(self) -> None:
        if self.timer is None:
            self.timer = self.loop.call_at(self.deadline, _settle, self.fut, None,
                                           TimeoutError(), context=_WIRE)


def _answer(state: _LinkState, fut: asyncio.Future, status: int, raw: bytes) -> None:
    """The answer reached the caller's end of the link."""
    if state.cut:
        _settle(fut, None, ConnectionResetError("connection closed (link cut)"))
    else:
        _settle(fut, (status, raw), None)


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
