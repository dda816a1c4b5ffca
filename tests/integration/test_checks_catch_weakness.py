"""The lost-write check under a whole-cluster crash: it passes durable storage and catches the
weakened in-memory storage (the same fault, the same checker)."""

from __future__ import annotations

import pytest

from chaos.checkers import NoLostWrites
from chaos.history import History
from chaos.runtime.base import ClusterSpec

from .helpers import client_for

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("storage,expected", [("durable", "valid"), ("memory", "invalid")])
def test_no_lost_writes_after_every_node_crashes(make_cluster, storage, expected):
    rt = make_cluster(ClusterSpec(storage=storage))
    history = History()
    with client_for(rt) as c:
        for i in range(40):
            key, value = f"c{i}", f"v{i}"
            history.add("w0", "invoke", "write", key, value)
            c.put(key, value)
            history.add("w0", "ok", "write", key, value)
        for node in rt.node_ids():
            rt.kill(node)
        for node in rt.node_ids():
            rt.restart(node)
        final = {f"c{i}": c.get(f"c{i}").value for i in range(40)}
    verdict = NoLostWrites().check(history, final)
    assert verdict.valid == expected, verdict.summary
