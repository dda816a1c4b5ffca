"""Run by test_sync_client_gevent.py in a fresh interpreter, because gevent's patching is for
the whole process: SyncClient used from many greenlets, as Locust does. Prints one JSON line."""

from gevent import monkey

monkey.patch_all()

import asyncio  # noqa: E402
import json  # noqa: E402

import gevent  # noqa: E402

from chaos.wait import wait_for  # noqa: E402
from system.client import QuorumError, SyncClient  # noqa: E402
from system.config import ClientConfig  # noqa: E402
from system.transport import MockTransport, Reply  # noqa: E402

USERS = 20
inflight = peak = 0
store: dict[str, dict] = {}
both_in_flight = asyncio.Event()


async def handle(method, address, path, body):
    global inflight, peak
    if path.startswith("/nodes"):
        return Reply(200, {"members": [{"id": n, "address": f"{n}:1", "status": "alive"}
                                       for n in "abc"]})
    if body["key"] == "refused":
        return Reply(500, {"error": "no"})
    inflight += 1
    peak = max(peak, inflight)
    try:
        # hold every request until all users' requests are in flight together: with a loop
        # that blocks the other greenlets, this never happens and the probe times out
        if peak >= USERS * 3:
            both_in_flight.set()
        await asyncio.wait_for(both_in_flight.wait(), 5)
        if path == "/internal/write":
            store.setdefault(address, {})[body["key"]] = body
            return Reply(200, {"applied": True})
        rec = store.get(address, {}).get(body["key"])
        return Reply(200, {"found": False} if rec is None else
                     {"found": True, "value": rec["value"], "version": rec["version"]})
    finally:
        inflight -= 1


def main() -> None:
    out: dict = {}
    with SyncClient(ClientConfig(registry="http://r:1", refresh_interval=0, retries=0,
                                 request_timeout=15), transport=MockTransport(handle)) as c:
        users = [gevent.spawn(c.put, f"key-{i}", f"value-{i}") for i in range(USERS)]
        gevent.joinall(users, timeout=20, raise_error=True)
        out["puts"] = sum(u.successful() for u in users)
        out["peak_in_flight"] = peak
        out["read"] = c.get("key-7").value
        # a caller that times out, and one whose greenlet is killed: both operations are
        # cancelled on the loop, and the client goes on working
        started, cancelled = [], []

        async def long_call():
            started.append(1)
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                cancelled.append(1)
                raise
        try:
            c._run(long_call(), timeout=0.2)
            out["timeout"] = "none"
        except TimeoutError:
            out["timeout"] = "raised"
        victim = gevent.spawn(c._run, long_call(), 60)
        # wait_for sleeps with the patched time.sleep, so it yields to the other greenlets
        wait_for(lambda: len(started) == 2, timeout=5, interval=0.005,
                 description="the victim's call to run on the loop")
        victim.kill(timeout=5)
        wait_for(lambda: len(cancelled) == 2, timeout=5, interval=0.005,
                 description="both abandoned calls to be cancelled")
        out["cancelled"] = len(cancelled)
        out["after_timeout"] = c.get("key-3").value
        try:  # errors cross the bridge as themselves
            c.put("refused", "x")
            out["error"] = "none"
        except QuorumError as exc:
            out["error"] = type(exc).__name__
    print(json.dumps(out))


main()
