"""SyncClient under gevent's monkey-patching (what Locust does): greenlets sharing one client
run their operations concurrently instead of freezing the process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

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
    assert out["ticks"] == 10  # other greenlets kept running
    assert out["timeout"] == "raised" and out["after_timeout"] == "value-3"
