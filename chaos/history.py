"""Operation histories: every client operation as invoke, then ok / fail / info.

``fail`` means it definitely did not happen (e.g. a quorum error before any replica
acknowledged is still ``info``: some replica may hold it); ``info`` means unknown. Faults are
recorded in the same history as ``nemesis`` operations.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

import orjson

__all__ = ["Op", "History"]


@dataclass(frozen=True, slots=True)
class Op:
    index: int
    process: str  # worker id, or "nemesis"
    type: str  # invoke | ok | fail | info
    f: str  # write | read | a fault name
    key: str | None
    value: Any
    time: float  # seconds since the history started
    error: str | None = None

    def as_json(self) -> dict:
        return {k: getattr(self, k) for k in self.__slots__ if getattr(self, k) is not None}


class History:
    def __init__(self, *, clock=time.monotonic) -> None:
        self._clock = clock
        self._t0 = clock()
        self._ops: list[Op] = []
        self._lock = threading.Lock()

    def now(self) -> float:
        return self._clock() - self._t0

    def add(self, process: str, type_: str, f: str, key: str | None = None, value: Any = None,
            error: str | None = None) -> Op:
        with self._lock:
            op = Op(len(self._ops), process, type_, f, key, value, self.now(), error)
            self._ops.append(op)
            return op

    @property
    def ops(self) -> list[Op]:
        with self._lock:
            return list(self._ops)

    def completions(self) -> list[tuple[Op, Op]]:
        """(invoke, completion) pairs per process, in order."""
        open_: dict[str, Op] = {}
        pairs = []
        for op in self.ops:
            if op.type == "invoke":
                open_[op.process] = op
            elif op.process in open_:
                pairs.append((open_.pop(op.process), op))
        return pairs

    def dump(self, path: str) -> None:
        with open(path, "wb") as fh:
            for op in self.ops:
                fh.write(orjson.dumps(op.as_json()) + b"\n")
