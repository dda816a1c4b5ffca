"""Operation histories: every client operation as invoke, then ok / fail / info.

``fail`` means it definitely did not happen (the system said so, e.g. no replica was reached
in any attempt); ``info`` means unknown (a timeout, a reset after the request was sent, a
quorum error after some replica was reached: it may have happened). Faults are recorded in
the same history by the ``nemesis`` process.

Times are the host's monotonic clock (``time.monotonic``, system-wide on Linux, so records
written by several processes on one host share one time axis), stored relative to the
history's start ``t0``. Several processes (Locust's workers) each append to a JSONL file of
their own (:class:`HistoryWriter`); :meth:`History.load` merges the files into one history.
Each file starts with an anchor (its host, and one reading of its monotonic and wall clocks),
so files written on other machines (Locust workers elsewhere) are placed on this host's axis
through the wall clocks: as exact as the machines' clock sync (NTP), no more.
"""

from __future__ import annotations

import dataclasses
import heapq
import os
import socket
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import orjson

__all__ = ["OpType", "Op", "History", "HistoryWriter", "FaultWindow", "FinalState", "NEMESIS",
           "EVENT", "INTERRUPTED"]

NEMESIS = "nemesis"  # the process name of fault records
EVENT = "event:"  # the prefix of processes whose records are observations (a breaker moved)
INTERRUPTED = "interrupted"  # the error of an operation cut short by the end of the run


class OpType(StrEnum):
    INVOKE = "invoke"
    OK = "ok"  # it happened
    FAIL = "fail"  # it definitely did not happen
    INFO = "info"  # unknown: it may have happened, possibly later


@dataclass(frozen=True, slots=True)
class Op:
    """One record: an invocation or its completion (ok / fail / info), or a nemesis step."""

    index: int
    process: str  # a client process (e.g. "w0-3" or "gw-1-7"), or "nemesis"
    type: OpType
    f: str  # what was done: write | read | a fault name (Jepsen's :f)
    key: str | None
    value: Any
    time: float  # seconds since the history's t0 (host monotonic clock)
    error: str | None = None
    version: str | None = None  # the version the system answered with, where it has one
    attempts: int | None = None  # the client's tries of this operation, where it says
    requests: int | None = None  # the replica requests they sent (retry amplification)

    def as_json(self) -> dict:
        return {k: getattr(self, k) for k in self.__slots__ if getattr(self, k) is not None}

    @property
    def is_client(self) -> bool:
        """A client operation: not a fault record, not an observation."""
        return self.process != NEMESIS and not self.process.startswith(EVENT)

    @property
    def is_event(self) -> bool:
        """An observation a client made (``f`` says what: ``breaker``), not an operation."""
        return self.process.startswith(EVENT)

    @property
    def interrupted(self) -> bool:
        """The harness ended the run while it was in flight (``info``: it may have
        happened); not the system's doing, so availability does not count it."""
        return self.error == INTERRUPTED


@dataclass(frozen=True, slots=True)
class FaultWindow:
    """From the moment a fault's apply was invoked to the moment its undo completed."""

    step: int
    fault: str
    target: str | None
    start: float
    end: float


class FinalState(dict):
    """The final reads (key -> value, None: absent), and what the replicas hold after the
    quiet period: ``replicas`` (node -> key -> version) and ``copies`` (how many owners
    each key should have). A plain mapping of the reads to checkers that need only those."""

    def __init__(self, reads=(), *, replicas: dict | None = None, copies: int | None = None):
        super().__init__(reads)
        self.replicas = replicas
        self.copies = copies


class History:
    """An append-only list of operations, safe to add to from several threads."""

    def __init__(self, *, clock=time.monotonic, t0: float | None = None) -> None:
        self._clock = clock
        self.t0 = clock() if t0 is None else t0
        self._ops: list[Op] = []
        self._lock = threading.Lock()
        self._pairs: tuple[int, list[tuple[Op, Op]]] | None = None
        # what the system reported over the run, beside the operations: name -> [(t, value)]
        # on this history's axis, e.g. "arrivals:node-2" (replica requests per 100 ms)
        self.series: dict[str, list[tuple[float, float]]] = {}

    def now(self) -> float:
        return self._clock() - self.t0

    def add(self, process: str, type_: str, f: str, key: str | None = None, value: Any = None,
            error: str | None = None, *, version: str | None = None,
            attempts: int | None = None, requests: int | None = None,
            at: float | None = None) -> Op:
        """Record an operation now (or at the absolute monotonic time ``at``)."""
        t = self.now() if at is None else at - self.t0
        with self._lock:
            op = Op(len(self._ops), process, OpType(type_), f, key, value, t, error, version,
                    attempts, requests)
            self._ops.append(op)
            self._pairs = None
            return op

    @property
    def ops(self) -> list[Op]:
        with self._lock:
            return list(self._ops)

    def __len__(self) -> int:
        return len(self._ops)

    def client_ops(self) -> list[Op]:
        return [op for op in self.ops if op.is_client]

    def nemesis_ops(self) -> list[Op]:
        return [op for op in self.ops if op.process == NEMESIS]

    def events(self, f: str | None = None) -> list[Op]:
        """The clients' observations (``f``: only those of that kind, e.g. ``breaker``)."""
        return [op for op in self.ops if op.is_event and (f is None or op.f == f)]

    def completions(self) -> list[tuple[Op, Op]]:
        """(invoke, completion) pairs per process, in order of completion (computed once
        until the history changes: every checker asks for them)."""
        with self._lock:
            if self._pairs is None or self._pairs[0] != len(self._ops):
                open_: dict[str, Op] = {}
                pairs = []
                for op in self._ops:
                    if op.type is OpType.INVOKE:
                        open_[op.process] = op
                    elif op.process in open_:
                        pairs.append((open_.pop(op.process), op))
                self._pairs = (len(self._ops), pairs)
            return list(self._pairs[1])

    def absorb(self, ops: Iterable[Op]) -> None:
        """Add ``ops`` (times on this history's axis) and keep everything in time order:
        how the operations of a finished Locust run join the nemesis's records."""
        with self._lock:
            merged = sorted([*self._ops, *ops], key=lambda op: op.time)
            self._ops = [dataclasses.replace(op, index=i) for i, op in enumerate(merged)]
            self._pairs = None

    def fault_windows(self) -> list[FaultWindow]:
        """The windows of the faults the nemesis recorded (value ``{"step", "phase"}``); a
        fault never healed lasts to the end of the history."""
        starts: dict[int, Op] = {}
        ends: dict[int, float] = {}
        ops = self.ops
        for op in ops:
            if op.is_client or not isinstance(op.value, dict):
                continue
            step = op.value.get("step")
            if op.value.get("phase") == "apply" and op.type is OpType.INVOKE:
                starts.setdefault(step, op)
            elif op.value.get("phase") == "heal" and op.type is not OpType.INVOKE:
                ends[step] = op.time
        last = ops[-1].time if ops else 0.0
        return [FaultWindow(step, op.f, op.key, op.time, ends.get(step, last))
                for step, op in sorted(starts.items(), key=lambda kv: kv[1].time)]

    def dump(self, path: str) -> None:
        with open(path, "wb") as fh:
            for op in self.ops:
                fh.write(orjson.dumps(op.as_json()) + b"\n")

    # ---- merging the records of several processes ----------------------------------------
    @classmethod
    def load(cls, paths: Iterable[str], *, t0: float, extra: Iterable[Op] = (),
             clock=time.monotonic) -> History:
        """One history from the JSONL files of :class:`HistoryWriter` (absolute ``mono``
        times) and ``extra`` ops of an in-process history with the same ``t0`` (the
        nemesis's), ordered by time. A torn last line (a process killed mid-write) is
        skipped."""
        here = socket.gethostname()
        wall_minus_mono = time.time() - time.monotonic()  # this host's, now
        streams = [_read_records(p, t0, here, wall_minus_mono) for p in paths]
        streams.append(iter(sorted(((op.time, op.process, op.type, op.f, op.key, op.value,
                                     op.error, op.version, op.attempts, op.requests)
                                    for op in extra),
                                   key=lambda r: r[0])))
        history = cls(clock=clock, t0=t0)
        ops = history._ops
        for t, process, type_, f, key, value, error, version, attempts, requests in heapq.merge(
                *streams, key=lambda r: r[0]):
            ops.append(Op(len(ops), process, OpType(type_), f, key, value, t, error, version,
                          attempts, requests))
        return history


def _read_records(path: str, t0: float, here: str, wall_minus_mono: float) -> Iterator[tuple]:
    """A file's records on this host's monotonic axis, relative to ``t0``. A file written on
    another host (its anchor says which) is moved by the difference of the two hosts'
    wall-minus-monotonic offsets."""
    shift = 0.0
    with open(path, "rb") as fh:
        for line in fh:
            try:
                r = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            if "anchor" in r:
                a = r["anchor"]
                if a.get("host") != here:
                    shift = (a["wall"] - a["mono"]) - wall_minus_mono
                continue
            yield (r["mono"] + shift - t0, r["process"], r["type"], r["f"], r.get("key"),
                   r.get("value"), r.get("error"), r.get("version"), r.get("attempts"),
                   r.get("requests"))


class HistoryWriter:
    """Appends one process's records to a JSONL file, each with the absolute monotonic time
    (``mono``), for :meth:`History.load`. Lines are flushed at least every
    ``flush_every`` seconds, so a reader can follow a run while it goes on."""

    def __init__(self, path: str, *, flush_every: float = 0.25, clock=time.monotonic) -> None:
        self.path = path
        self._fh = open(path, "ab")  # noqa: SIM115 - closed by close()
        self._clock = clock
        self._flush_every = flush_every
        self._last_flush = clock()
        self._lock = threading.Lock()
        # where and when, for a reader on another machine (History.load)
        self._fh.write(orjson.dumps({"anchor": {"host": socket.gethostname(), "mono": clock(),
                                                "wall": time.time(), "pid": os.getpid()}}) + b"\n")

    def add(self, process: str, type_: str, f: str, key: str | None = None, value: Any = None,
            error: str | None = None, *, version: str | None = None,
            attempts: int | None = None, requests: int | None = None) -> float:
        now = self._clock()
        record = {"mono": now, "process": process, "type": str(type_), "f": f}
        if key is not None:
            record["key"] = key
        if value is not None:
            record["value"] = value
        if error is not None:
            record["error"] = error
        if version is not None:
            record["version"] = version
        if attempts is not None:
            record["attempts"] = attempts
        if requests is not None:
            record["requests"] = requests
        line = orjson.dumps(record) + b"\n"
        with self._lock:
            self._fh.write(line)
            if now - self._last_flush >= self._flush_every:
                self._fh.flush()
                self._last_flush = now
        return now

    def flush(self) -> None:
        with self._lock:
            self._fh.flush()

    def close(self) -> None:
        with self._lock:
            if not self._fh.closed:
                self._fh.close()
