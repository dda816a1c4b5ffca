"""SyncClient under gevent's monkey-patching (what Locust does): greenlets sharing one client
run their operations concurrently instead of freezing the process."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest

from chaos.wait import wait_for

pytestmark = pytest.mark.unit


def test_sync_client_serves_many_greenlets_at_once_under_gevent():
    probe = Path(__file__).with_name("gevent_probe.py")
    proc = subprocess.run([sys.executable, str(probe)], capture_output=True, text=True,
                          timeout=30)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["puts"] == 20
    assert out["peak_in_flight"] >= 60  # 20 writes x 3 owners in flight together
    assert out["read"] == "value-7"
    assert out["timeout"] == "raised" and out["cancelled"] == 2
    assert out["after_timeout"] == "value-3"
    assert out["error"] == "QuorumError"


def test_sync_client_cancels_an_operation_its_caller_stopped_waiting_for():
    """Without gevent too: a timed-out call does not run on in the background."""
    from system.client import SyncClient
    from system.config import ClientConfig
    from system.transport import MockTransport, Reply

    async def handle(method, address, path, body):
        return Reply(200, {"members": [{"id": "a", "address": "a:1", "status": "alive"}]})

    outcome = []

    async def long_call():
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            outcome.append("cancelled")
            raise

    with SyncClient(ClientConfig(registry="http://r:1", refresh_interval=0),
                    transport=MockTransport(handle)) as c:
        with pytest.raises(TimeoutError):
            c._run(long_call(), timeout=0.1)
        wait_for(lambda: outcome, timeout=5, description="the abandoned call to be cancelled")
    assert outcome == ["cancelled"]
