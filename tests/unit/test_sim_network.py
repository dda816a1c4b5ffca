"""The simulation's pieces without a cluster: the virtual-time loop, and the link mesh's
outcomes (the local proxies' semantics) with a tiny ASGI app behind a link."""

from __future__ import annotations

import asyncio
import time

import pytest

from chaos.sim.determinism import first_divergence
from chaos.sim.loop import SimDeadlock, VirtualLoop
from chaos.sim.network import Network, Process, SimLinks, SimTransport
from chaos.topology import Link
from system.transport import TransportError

pytestmark = pytest.mark.unit

LINK = Link("client", "node-1")


def test_sleeps_take_virtual_time_not_wall_time():
    loop = VirtualLoop()
    t0, wall = loop.time(), time.perf_counter()

    async def nap() -> float:
        await asyncio.sleep(3600)
        async with asyncio.timeout(5):
            await asyncio.sleep(1)
        return loop.time()

    assert loop.run(nap()) == t0 + 3601
    loop.advance(10)
    assert loop.time() == t0 + 3611
    assert time.perf_counter() - wall < 1.0
    loop.close()


def test_waiting_on_what_nobody_completes_is_a_deadlock_not_a_hang():
    loop = VirtualLoop()
    with pytest.raises(SimDeadlock):
        loop.run(loop.create_future())
    loop.close()


def test_advance_until_names_what_it_waited_for():
    loop = VirtualLoop()
    with pytest.raises(TimeoutError, match="the moon"):
        loop.advance_until(lambda: False, timeout=2, what="the moon")
    loop.close()


async def _echo(scope, receive, send):
    message = await receive()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": message["body"] or b'{"ok": true}'})


async def _slow(scope, receive, send):
    await asyncio.sleep(1.0)
    await _echo(scope, receive, send)


class Mesh:
    def __init__(self, app=_echo, *, mesh: bool = True) -> None:
        self.loop = VirtualLoop()
        self.net = Network(self.loop, seed=1, latency=0.01, jitter=0.0, mesh=mesh)
        self.node = Process("node-1", 1, self.loop)
        self.node.app = app
        self.net.processes["node-1"] = self.node
        self.links = SimLinks(self.net)
        self.links.create(LINK)
        self.client = SimTransport(self.net, "client")

    def call(self, timeout: float = 0.5):
        async def go():
            started = self.loop.time()
            try:
                reply = await self.client.request("POST", "node-1.sim:80", "/x",
                                                  json={"a": 1}, timeout=timeout)
                return reply, self.loop.time() - started
            except TransportError as exc:
                return exc, self.loop.time() - started

        return self.loop.run(go())


def test_a_healthy_link_answers_after_a_round_trip():
    m = Mesh()
    reply, took = m.call()
    assert reply.status == 200 and reply.body == {"a": 1}
    assert took == pytest.approx(0.02)


def test_a_cut_link_refuses_definitely_and_a_restored_one_works():
    m = Mesh()
    m.links.disable([LINK])
    exc, _ = m.call()
    assert isinstance(exc, TransportError) and exc.definite and "refused" in exc.reason
    m.links.enable([LINK])
    assert m.call()[0].status == 200
    assert [text for _, text in m.net.events] == ["cut client__node-1", "restore client__node-1"]


def test_a_cut_while_the_request_is_served_breaks_it_indefinitely():
    m = Mesh(_slow)

    async def cut_later():
        await asyncio.sleep(0.5)
        m.links.disable([LINK])

    m.loop.call_soon(lambda: m.loop.create_task(cut_later()))
    exc, took = m.call(timeout=5)
    assert isinstance(exc, TransportError) and not exc.definite
    assert took == pytest.approx(0.5)


def test_a_blackhole_holds_until_the_callers_timeout():
    m = Mesh()
    m.links.add_toxic([LINK], "timeout", name="bh", stream="upstream", timeout=0)
    exc, took = m.call(timeout=0.5)
    assert isinstance(exc, TransportError) and not exc.definite and "no answer" in exc.reason
    assert took == pytest.approx(0.5)
    m.links.remove_toxic([LINK], "bh")
    assert m.call()[0].status == 200


def test_latency_toxics_add_to_the_stream_they_sit_on():
    m = Mesh()
    m.links.add_toxic([LINK], "latency", name="slow", stream="downstream", latency=200)
    reply, took = m.call(timeout=1)
    assert reply.status == 200 and took == pytest.approx(0.22)


def test_reset_peer_breaks_the_connection_indefinitely():
    m = Mesh()
    m.links.add_toxic([LINK], "reset_peer", name="rst", stream="upstream", timeout=100)
    exc, took = m.call()
    assert isinstance(exc, TransportError) and not exc.definite
    assert took == pytest.approx(0.11)


def test_a_paused_node_answers_once_resumed_and_a_dead_one_never():
    m = Mesh()
    m.node.pause()
    m.loop.call_later(2.0, m.node.resume)
    reply, took = m.call(timeout=5)
    assert reply.status == 200 and took == pytest.approx(2.01)
    m.node.kill()
    exc, _ = m.call()
    assert isinstance(exc, TransportError) and not exc.definite  # the proxy accepted, then closed


def test_without_a_mesh_a_dead_node_refuses_definitely():
    m = Mesh(mesh=False)
    m.node.kill()
    exc, _ = m.call()
    assert isinstance(exc, TransportError) and exc.definite


def test_killing_a_process_cancels_what_it_was_serving():
    m = Mesh(_slow)
    m.loop.set_task_factory(__import__("chaos.runtime.sim", fromlist=["x"])._task_factory)
    m.loop.call_later(0.5, m.node.kill)
    exc, took = m.call(timeout=5)
    assert isinstance(exc, TransportError) and not exc.definite and "died" in exc.reason
    assert all(t.done() for t in m.node.tasks)


def test_unknown_links_are_refused_by_name():
    m = Mesh()
    with pytest.raises(KeyError, match="node-9"):
        m.links.disable([Link("node-9", "node-1")])


def test_first_divergence_names_the_first_differing_record():
    assert first_divergence([b"a", b"b"], [b"a", b"b"]) is None
    assert "record 1 differs" in first_divergence([b"a", b"b"], [b"a", b"c"])
    assert "1 more" in first_divergence([b"a", b"b"], [b"a"])


def test_a_request_whose_caller_gave_up_is_not_served_when_a_paused_node_resumes():
    served = []

    async def counting(scope, receive, send):
        message = await receive()
        if message["type"] == "http.request":  # uvicorn: a closed connection reads disconnect
            served.append(message["body"])
        await _echo_body(send)

    m = Mesh(counting)
    m.node.pause()
    exc, _ = m.call(timeout=0.5)
    assert isinstance(exc, TransportError) and "no answer" in exc.reason
    m.node.resume()
    m.loop.advance(1.0)
    assert served == []
    assert m.call()[0].status == 200 and len(served) == 1


async def _echo_body(send):
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"{}"})


def test_a_hot_route_is_served_inline_and_a_kill_still_ends_what_it_waits_for():
    """A route in ``inline`` runs in the arrival's callback up to its first wait; a task
    carries it on, and a kill before that task's first step still reaches the app."""
    from chaos.runtime.sim import _task_factory

    loop = VirtualLoop()
    loop.set_task_factory(_task_factory)
    node = Process("node-1", 1, loop)
    node.inline = frozenset({("POST", "/fast"), ("POST", "/slow")})
    node.app = lambda scope, receive, send: (_slow if scope["path"] == "/slow" else _echo)(
        scope, receive, send)
    replies = []

    def request(path):
        return ("POST", path, b'{"a": 1}', [], "client")

    async def arrive(path):  # what a message's arrival does, in the loop
        return node.deliver(request(path), lambda *a: replies.append(a), lambda: False)

    assert loop.run(arrive("/fast"))
    assert replies == [(200, b'{"a": 1}')]  # answered at once, no task
    assert not loop.run(arrive("/slow"))
    node.kill()  # before the task that carries it on took its first step
    loop.advance(0)
    assert replies[1][0] is None and "died" in str(replies[1][1])
    assert all(t.done() for t in node.tasks)
    loop.close()
