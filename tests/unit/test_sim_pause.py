"""Pause is SIGSTOP on the simulation: a paused process's timers, sleeps and task steps do not
run until it resumes; then what fell due meanwhile runs at once, as a stopped process sees
time jump. Its messages already on the wire still arrive."""

from __future__ import annotations

import asyncio

import pytest

from chaos.runtime.base import ClusterSpec
from chaos.runtime.sim import SimRuntime, _task_factory
from chaos.sim.loop import VirtualLoop
from chaos.sim.network import Network, Process, SimLinks, SimTransport
from chaos.topology import Link

pytestmark = pytest.mark.unit


def _ticking(loop: VirtualLoop) -> tuple[Process, list[float]]:
    """A process whose only duty is a loop that notes the time every 0.1 s."""
    proc = Process("node-1", 1, loop)
    ticks: list[float] = []

    async def tick() -> None:
        while True:
            await asyncio.sleep(0.1)
            ticks.append(loop.time())

    proc.spawn(tick())
    return proc, ticks


def test_a_paused_process_runs_no_timer_until_it_resumes():
    loop = VirtualLoop()
    proc, ticks = _ticking(loop)
    loop.advance(1.0)
    assert len(ticks) == 10
    proc.pause()
    paused_at = loop.time()
    loop.advance(5.0)
    assert len(ticks) == 10  # its loop is frozen: not a tick in 5 s
    proc.resume()
    loop.advance(0)
    assert len(ticks) == 11 and ticks[-1] == paused_at + 5.0  # the overdue sleep, at once
    loop.advance(1.0)
    assert len(ticks) == 21 and ticks[-1] == pytest.approx(paused_at + 6.0)
    proc.kill()
    loop.advance(0)
    loop.close()


def test_a_process_killed_while_paused_ends_its_tasks():
    loop = VirtualLoop()
    loop.set_task_factory(_task_factory)  # files each task under its process
    proc, ticks = _ticking(loop)
    loop.advance(0.5)
    proc.pause()
    loop.advance(1.0)
    proc.kill()
    loop.advance(0)
    assert all(task.done() for task in asyncio.all_tasks(loop))
    assert len(ticks) == 5
    loop.close()


def test_what_a_paused_sender_already_sent_still_arrives():
    loop = VirtualLoop()
    net = Network(loop, seed=1, latency=0.5, jitter=0.0)
    node = Process("node-1", 1, loop)
    got: list[float] = []

    async def app(scope, receive, send):
        await receive()
        got.append(loop.time())
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    node.app = app
    net.processes["node-1"] = node
    SimLinks(net).create(Link("node-2", "node-1"))
    sender = Process("node-2", 1, loop)
    transport = SimTransport(net, "node-2", sender)
    sender.spawn(transport.request("POST", "node-1.sim:80", "/x", json={}, timeout=5.0))
    loop.advance(0.1)
    sender.pause()  # its request is on the wire
    loop.advance(1.0)
    assert got == [pytest.approx(loop.time() - 0.6)]
    sender.kill()
    loop.advance(0)
    loop.close()


def test_a_paused_node_sends_no_heartbeat_and_resumes_them_after():
    """On the cluster: the node's heartbeat loop does not even try while it is paused."""
    rt = SimRuntime(ClusterSpec(seed=3))
    try:
        rt.start()
        svc = rt.processes["node-2"].service
        sent: list[float] = []
        request = svc.transport.request

        async def counting(method, address, path, **kw):
            if path == "/heartbeat":
                sent.append(rt.clock())
            return await request(method, address, path, **kw)

        svc.transport.request = counting
        rt.loop.advance(10.0)
        assert len(sent) >= 4  # every 2 s
        rt.pause("node-2")
        before = len(sent)
        rt.loop.advance(10.0)
        assert len(sent) == before
        rt.resume("node-2")
        rt.loop.advance(5.0)
        assert len(sent) >= before + 2
    finally:
        rt.stop()
