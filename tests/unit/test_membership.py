from __future__ import annotations

import pytest

from system.membership import Membership

pytestmark = pytest.mark.unit


class Clock:
    now = 0.0


def test_alive_suspect_dead_and_back():
    c = Clock()
    m = Membership(interval=2.0, suspect_after=2, dead_after=3, clock=lambda: c.now)
    assert m.heartbeat("a", "h:1") is True
    c.now = 3.9
    assert m.status("a") == "alive"
    c.now = 4.0
    assert m.status("a") == "suspect"
    c.now = 6.0
    assert m.status("a") == "dead"
    assert m.heartbeat("a", "h:2") is True  # a rejoin
    assert m.members()[0].incarnation == 2 and m.members()[0].address == "h:2"
    assert m.heartbeat("a", "h:2") is False  # just beating


def test_deregister_mark_dead_and_health():
    c = Clock()
    m = Membership(interval=1.0, clock=lambda: c.now)
    for n in "abc":
        m.heartbeat(n, f"{n}:1")
    assert m.health(3) == "healthy"
    m.mark_dead("a")
    assert m.status("a") == "dead" and m.health(3) == "degraded"
    m.mark_dead("b")
    assert m.health(3) == "critical"
    m.deregister("c")
    assert m.status("c") == "left" and "c" not in [x.id for x in m.ring_members()]
    assert not m.deregister("zz") and not m.mark_dead("zz")
    with pytest.raises(KeyError):
        m.status("zz")
    with pytest.raises(ValueError):
        Membership(suspect_after=3, dead_after=2)
