"""Histories: records of several processes merged onto one time axis, fault windows read
back from the nemesis's records, torn lines skipped."""

from __future__ import annotations

import pytest

from chaos.history import NEMESIS, History, HistoryWriter, OpType

pytestmark = pytest.mark.unit


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def test_files_of_several_processes_merge_in_time_order_with_the_nemesis(tmp_path):
    clock = Clock(100.0)
    a = HistoryWriter(str(tmp_path / "a.jsonl"), clock=clock)
    b = HistoryWriter(str(tmp_path / "b.jsonl"), clock=clock)
    for t, writer, proc, type_ in [(101, a, "p1", "invoke"), (102, b, "p2", "invoke"),
                                   (103, a, "p1", "ok"), (105, b, "p2", "info")]:
        clock.t = t
        writer.add(proc, type_, "write", "k", f"v-{proc}", version="1.0.x" if type_ == "ok" else None)
    a.close()
    b.close()
    with open(tmp_path / "b.jsonl", "ab") as fh:
        fh.write(b'{"mono": 106, "proc')  # a process killed mid-line
    nemesis = History(clock=Clock(100.0), t0=100.0)
    nemesis.add(NEMESIS, "invoke", "kill", "node-1", {"step": 0, "phase": "apply"}, at=104)
    merged = History.load([str(tmp_path / "a.jsonl"), str(tmp_path / "b.jsonl")], t0=100.0,
                          extra=nemesis.ops)
    assert [(op.time, op.process, op.type) for op in merged.ops] == [
        (1, "p1", OpType.INVOKE), (2, "p2", OpType.INVOKE), (3, "p1", OpType.OK),
        (4, NEMESIS, OpType.INVOKE), (5, "p2", OpType.INFO)]
    assert [op.index for op in merged.ops] == [0, 1, 2, 3, 4]
    assert merged.ops[2].version == "1.0.x"
    assert [(i.process, c.type) for i, c in merged.completions()] == [
        ("p1", OpType.OK), ("p2", OpType.INFO)]


def test_absorb_keeps_one_time_order():
    h = History(clock=Clock(0.0), t0=0.0)
    h.add(NEMESIS, "invoke", "kill", "node-1", at=2.0)
    other = History(clock=Clock(0.0), t0=0.0)
    other.add("p1", "invoke", "read", "k", at=1.0)
    other.add("p1", "ok", "read", "k", "v", at=3.0)
    h.absorb(other.ops)
    assert [op.time for op in h.ops] == [1.0, 2.0, 3.0] and h.ops[2].index == 2


def test_fault_windows_pair_apply_and_heal_and_an_unhealed_fault_lasts_to_the_end():
    h = History(clock=Clock(0.0), t0=0.0)
    for at, type_, f, phase, step in [(1, "invoke", "kill", "apply", 0), (1.5, "ok", "kill", "apply", 0),
                                      (2, "invoke", "pause", "apply", 1), (4, "invoke", "kill", "heal", 0),
                                      (4.5, "ok", "kill", "heal", 0)]:
        h.add(NEMESIS, type_, f, "node-1", {"step": step, "phase": phase}, at=at)
    h.add("p1", "invoke", "read", "k", at=6.0)
    windows = h.fault_windows()
    assert [(w.fault, w.start, w.end) for w in windows] == [("kill", 1, 4.5), ("pause", 2, 6.0)]


def test_what_an_operation_cost_survives_the_files(tmp_path):
    w = HistoryWriter(str(tmp_path / "a.jsonl"), clock=lambda: 11.0)
    w.add("c1", "invoke", "write", "k", "v")
    w.add("c1", "ok", "write", "k", "v", version="1.0@n1", attempts=2, requests=4)
    w.close()
    h = History.load([str(tmp_path / "a.jsonl")], t0=10.0)
    done = h.ops[1]
    assert (done.attempts, done.requests, done.time) == (2, 4, 1.0)
    assert h.ops[0].attempts is None and "attempts" not in h.ops[0].as_json()


def test_a_file_from_another_machine_is_placed_by_the_wall_clocks(tmp_path, monkeypatch):
    """A worker elsewhere has its own monotonic clock; its file's anchor (host, monotonic and
    wall readings) moves it onto this host's axis. A file from this host is left as is."""
    import socket
    import time

    import orjson

    here_offset = time.time() - time.monotonic()
    there = tmp_path / "history-elsewhere-7.jsonl"
    # elsewhere, monotonic 500 s ran at the same wall instant as this host's monotonic 50 s
    there.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in (
        {"anchor": {"host": "elsewhere", "mono": 500.0, "wall": 50.0 + here_offset, "pid": 7}},
        {"mono": 501.0, "process": "w1", "type": "invoke", "f": "read", "key": "k"},
        {"mono": 501.5, "process": "w1", "type": "ok", "f": "read", "key": "k"})))
    local = HistoryWriter(str(tmp_path / "history-here-1.jsonl"), clock=lambda: 51.2)
    local.add("w0", "invoke", "write", "k", "v")
    local.close()
    merged = History.load([str(there), str(tmp_path / "history-here-1.jsonl")], t0=50.0)
    assert [(op.process, op.type, round(op.time, 2)) for op in merged.ops] == [
        ("w1", "invoke", 1.0), ("w0", "invoke", 1.2), ("w1", "ok", 1.5)]
    assert socket.gethostname() != "elsewhere"
