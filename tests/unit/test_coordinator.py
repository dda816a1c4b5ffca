"""The coordinator through the mock transport: no network, no sleeps."""

from __future__ import annotations

import asyncio
import random

import pytest

from system.backoff import Backoff
from system.breaker import CircuitBreaker
from system.coordinator import Coordinator, QuorumError
from system.quorum import QuorumConfig
from system.transport import MockTransport, Reply, TransportError
from system.versions import HLC, SkewedClock, WallClockVersions

pytestmark = pytest.mark.unit

NODES = {"a": "a:1", "b": "b:1", "c": "c:1"}


class FakeCluster:
    """In-memory replicas behind a MockTransport; nodes can be made down or slow."""

    def __init__(self) -> None:
        self.data = {n: {} for n in NODES}
        self.down: set[str] = set()
        self.slow: dict[str, asyncio.Event] = {}
        self.bodies: list[tuple[str, str, dict]] = []

    async def handle(self, method, address, path, body):
        node = address.split(":")[0]
        self.bodies.append((node, path, body))
        if node in self.down:
            raise TransportError(address, "cannot connect", definite=True)
        if node in self.slow:
            await self.slow[node].wait()
        store = self.data[node]
        if path == "/internal/write":
            old = store.get(body["key"])
            if old is None or tuple(old["version"]) < tuple(body["version"]):
                store[body["key"]] = {"value": body["value"], "version": body["version"]}
                return Reply(200, {"applied": True})
            return Reply(200, {"applied": False, "current": old["version"]})  # as a node does
        if path == "/internal/read":
            rec = store.get(body["key"])
            return Reply(200, {"found": False} if rec is None else {"found": True, **rec})
        return Reply(200, {"stored": len(body.get("keys", []))})


def make(cluster: FakeCluster, *, w=2, r=2, retries=0, sleeps=None, versions=None) -> Coordinator:
    async def fake_sleep(d):
        sleeps.append(d)

    co = Coordinator(quorum=QuorumConfig(3, w, r), transport=MockTransport(cluster.handle),
                     versions=versions or HLC("co"), timeout=5.0, retries=retries,
                     backoff=Backoff(0.01, 0.5, "full"), rng=random.Random(3),
                     breaker_factory=lambda: CircuitBreaker(failure_threshold=1, cooldown=60),
                     sleep=fake_sleep if sleeps is not None else asyncio.sleep)
    co.update_members(NODES)
    return co


async def test_write_returns_after_w_acks_without_waiting_for_the_slowest():
    cluster = FakeCluster()
    co = make(cluster)
    owners = co.ring.preference_list("k", 3)
    gate = cluster.slow[owners[2]] = asyncio.Event()
    res = await asyncio.wait_for(co.write("k", "v"), timeout=2)
    assert set(res.acks) == set(owners[:2]) and "k" not in cluster.data[owners[2]]
    gate.set()
    await co.drain()
    assert cluster.data[owners[2]]["k"]["value"] == "v"  # the slow owner got it in the background


async def test_owner_that_failed_gets_a_hint_and_open_breaker_owner_is_hinted_in_the_write():
    cluster = FakeCluster()
    co = make(cluster)
    owners = co.ring.preference_list("k", 3)
    cluster.down.add(owners[0])
    await co.write("k", "v1")
    await co.drain()
    hints = [(n, b) for n, p, b in cluster.bodies if p == "/internal/hints"]
    assert {n for n, _ in hints} == set(owners[1:]) and all(b["target"] == owners[0] for _, b in hints)
    cluster.bodies.clear()
    await co.write("k", "v2")  # breaker now open: not asked, hinted inside the write itself
    writes = [(n, b) for n, p, b in cluster.bodies if p == "/internal/write"]
    assert {n for n, _ in writes} == set(owners[1:])
    assert all(b["hint_for"] == [owners[0]] for _, b in writes)


async def test_two_owners_down_is_a_quorum_error_with_counts_after_jittered_retries():
    cluster = FakeCluster()
    sleeps: list[float] = []
    co = make(cluster, retries=2, sleeps=sleeps)
    owners = co.ring.preference_list("k", 3)
    cluster.down.update(owners[:2])
    with pytest.raises(QuorumError) as err:
        await co.write("k", "v")
    body = err.value.as_json()
    assert body["needed"] == 2 and body["acks"] <= 1 and body["attempts"] == 3
    assert set(body["failed"]) == set(owners[:2])
    assert len(sleeps) == 2 and 0 <= sleeps[0] <= 0.01 and 0 <= sleeps[1] <= 0.02


async def test_requests_count_what_every_attempt_sent_and_open_breakers_send_nothing():
    """Retry amplification is counted in replica requests: the first attempt asks all three
    owners; once the two down owners' breakers are open (threshold 1 here), each retry asks
    only the third."""
    cluster = FakeCluster()
    co = make(cluster, retries=2, sleeps=[])
    owners = co.ring.preference_list("k", 3)
    cluster.down.update(owners[:2])
    with pytest.raises(QuorumError) as err:
        await co.write("k", "v")
    assert (err.value.attempts, err.value.requests) == (3, 3 + 1 + 1)
    assert err.value.as_json()["requests"] == 5
    cluster.down.clear()
    fresh = make(cluster)
    res = await fresh.write("k2", "v")
    assert (res.attempts, res.requests) == (1, 3) and res.as_json()["requests"] == 3
    read = await fresh.read("k2")
    assert (read.attempts, read.requests) == (1, 3)


async def test_hints_and_read_repairs_carry_the_request_id_of_their_operation():
    cluster = FakeCluster()
    co = make(cluster)
    owners = co.ring.preference_list("k", 3)
    cluster.down.add(owners[0])
    await co.write("k", "v1", rid="w-1")
    await co.drain()
    cluster.down.clear()
    cluster.data[owners[1]]["k"] = {"value": "old", "version": [1, 0, "x"]}
    await co.read("k", rid="r-1")
    await co.drain()
    ids = {(path, (h or {}).get("x-request-id"))
           for (_, _, path, _), h in zip(co.transport.calls, co.transport.headers, strict=True)}
    assert ("/internal/hints", "w-1") in ids and ("/internal/write", "r-1") in ids
    assert not any(rid is None for _, rid in ids)


async def test_read_returns_the_newest_and_repairs_stale_owners():
    cluster = FakeCluster()
    co = make(cluster)
    owners = co.ring.preference_list("k", 3)
    cluster.data[owners[0]]["k"] = {"value": "old", "version": [1, 0, "x"]}
    cluster.data[owners[1]]["k"] = {"value": "new", "version": [2, 0, "x"]}
    res = await co.read("k")
    assert res.value == "new"
    await co.drain()
    assert all(cluster.data[o]["k"]["value"] == "new" for o in owners)


async def test_r1_can_read_stale_data_and_a_quorum_overlapping_the_write_cannot():
    """After a W=2 write, R=1 may answer from the one stale owner; R=2 (R+W>N) cannot,
    because any two owners include one that has the write."""
    for r, expected in ((1, "old"), (2, "new")):
        cluster = FakeCluster()
        co = make(cluster, w=2, r=r)
        owners = co.ring.preference_list("k", 3)
        for o in owners[:2]:
            cluster.data[o]["k"] = {"value": "new", "version": [2, 0, "x"]}
            cluster.slow[o] = asyncio.Event()  # the owners with the write are slow
        cluster.data[owners[2]]["k"] = {"value": "old", "version": [1, 0, "x"]}
        task = asyncio.create_task(co.read("k"))
        if r == 2:  # a second answer is needed: it can only come from an owner with the write
            for o in owners[:2]:
                cluster.slow[o].set()
        res = await asyncio.wait_for(task, 2)
        assert res.value == expected
        for o in owners[:2]:
            cluster.slow[o].set()
        await co.drain()


async def test_hedged_read_asks_the_other_owners_only_when_the_first_are_slow():
    cluster = FakeCluster()
    co = make(cluster)
    co.hedge_after = 0.05
    owners = co.ring.preference_list("k", 3)
    for o in owners:
        cluster.data[o]["k"] = {"value": "v", "version": [1, 0, "x"]}
    await co.read("k")
    assert sum(1 for _, p, _ in cluster.bodies if p == "/internal/read") == 2
    cluster.bodies.clear()
    gate = cluster.slow[owners[0]] = asyncio.Event()
    assert (await asyncio.wait_for(co.read("k"), 2)).value == "v"
    assert {n for n, p, _ in cluster.bodies if p == "/internal/read"} == set(owners)
    gate.set()
    await co.drain()


async def test_requests_of_an_abandoned_write_are_tracked_until_they_end():
    """A caller that gives up (timeout, Ctrl-C) cancels the write; the requests already sent
    run on in the background, and drain() waits for them."""
    cluster = FakeCluster()
    co = make(cluster)
    gate = asyncio.Event()
    for node in NODES:
        cluster.slow[node] = gate
    write = asyncio.create_task(co.write("k", "v"))
    for _ in range(100):
        if len(cluster.bodies) == 3:
            break
        await asyncio.sleep(0)
    assert len(cluster.bodies) == 3
    write.cancel()
    with pytest.raises(asyncio.CancelledError):
        await write
    gate.set()
    await co.drain()
    assert all(cluster.data[n]["k"]["value"] == "v" for n in NODES)


# ---- definiteness of a quorum error, across attempts ------------------------------------
async def test_quorum_error_is_definite_when_no_replica_was_reached_in_any_attempt():
    cluster = FakeCluster()
    cluster.down.update(NODES)  # connection refused: nothing was sent
    co = make(cluster, retries=2, sleeps=[])
    with pytest.raises(QuorumError) as err:
        await co.write("k", "v")
    assert err.value.definite is True
    assert err.value.as_json()["definite"] is True


async def test_quorum_error_is_not_definite_when_an_earlier_attempt_reached_a_replica():
    """Attempt 1: one owner times out (it may have applied the write), the others refuse;
    every breaker opens (threshold 1). Attempt 2 meets only open breakers: its own tally is
    all definite, but the write may have happened in attempt 1."""
    cluster = FakeCluster()
    co = make(cluster, retries=1, sleeps=[])
    co.timeout = 0.05
    owners = co.ring.preference_list("k", 3)
    cluster.slow[owners[0]] = asyncio.Event()  # never set: a timeout
    cluster.down.update(owners[1:])
    with pytest.raises(QuorumError) as err:
        await co.write("k", "v")
    assert err.value.attempts == 2
    assert set(err.value.failed.values()) == {"circuit open"}  # the last attempt alone
    assert err.value.definite is False
    assert err.value.as_json()["definite"] is False
    cluster.slow[owners[0]].set()
    await co.drain()


async def test_quorum_error_after_an_ack_is_not_definite():
    cluster = FakeCluster()
    co = make(cluster, w=3, sleeps=[])
    cluster.down.add(co.ring.preference_list("k", 3)[0])
    with pytest.raises(QuorumError) as err:
        await co.write("k", "v")
    assert err.value.acks and err.value.definite is False


async def test_read_quorum_error_is_definite_only_without_any_reached_replica():
    cluster = FakeCluster()
    cluster.down.update(NODES)
    co = make(cluster, retries=1, sleeps=[])
    with pytest.raises(QuorumError) as err:
        await co.read("k")
    assert err.value.definite is True


@pytest.mark.parametrize("kind", ["hlc", "wallclock"])
async def test_a_coordinator_whose_clock_runs_behind(kind):
    """A write that ended before another began must win. A coordinator a minute behind
    stamps an older version; replicas answer with the newer one they keep. A hybrid logical
    clock stamps again past it; a bare wall clock cannot, and the later write is lost."""
    cluster = FakeCluster()
    source = {"hlc": HLC, "wallclock": WallClockVersions}[kind]
    on_time = make(cluster, versions=source("on-time"))
    behind = make(cluster, versions=source("behind", clock=SkewedClock(-60_000)))
    first = await on_time.write("k", "first")
    second = await behind.write("k", "second")
    final = await on_time.read("k")
    if kind == "hlc":
        assert final.value == "second" and second.restamps == 1
        assert second.version > first.version and second.superseded_by is None
    else:
        assert final.value == "first" and second.restamps == 0  # the lost update
        assert second.superseded_by == first.version.encode()


async def test_restamping_is_bounded():
    """Replicas that always hold something newer (writers overlapping this one) do not make
    the coordinator stamp forever."""
    cluster = FakeCluster()
    co = make(cluster)

    async def always_newer(method, address, path, body):
        if path == "/internal/write":
            wall = body["version"][0] + 1000
            return Reply(200, {"applied": False, "current": [wall, 0, "zz"]})
        return Reply(200, {})

    co.transport = MockTransport(always_newer)
    res = await co.write("k", "v")
    assert res.restamps == 2 and res.superseded_by is not None


def test_skewed_clock_moves_and_refuses_nonsense():
    clock = SkewedClock(-1500, base=lambda: 100.0)
    assert clock() == 98.5
    clock.set(2000)
    assert clock() == 102.0
    for bad in (True, 1.5, "5", 86_400_001):
        with pytest.raises(ValueError, match="skew"):
            clock.set(bad)
    assert clock.skew_ms == 2000
