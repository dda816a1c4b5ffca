"""Request ids as Toxiproxy sends them in ``X-Toxiproxy-Request-Id``: xids (github.com/rs/xid).

An xid is 12 bytes: seconds since the Unix epoch (4, big-endian), a machine id (3), the process
id (2) and a counter (3, big-endian, from a random start), written as 20 characters of
lower-case base32hex without padding (``[0-9a-v]{20}``). Ids of one process sort by time.
"""

from __future__ import annotations

import base64
import hashlib
import os
import socket
import time
from collections.abc import Callable

HEADER = "X-Toxiproxy-Request-Id"


def machine_id() -> bytes:
    """Three bytes identifying this host: the start of the SHA-256 of its name, as xid does."""
    return hashlib.sha256(socket.gethostname().encode()).digest()[:3]


class RequestIds:
    """A source of xids; ``clock`` (seconds) and the parts are injected, so tests are exact."""

    def __init__(self, *, counter: int, clock: Callable[[], float] = time.time,
                 machine: bytes | None = None, pid: int | None = None) -> None:
        self.clock = clock
        self.machine = machine_id() if machine is None else machine
        if len(self.machine) != 3:
            raise ValueError(f"machine id must be 3 bytes, got {len(self.machine)}")
        self.pid = (os.getpid() if pid is None else pid) & 0xFFFF
        self.counter = counter & 0xFFFFFF

    def next(self) -> str:
        self.counter = (self.counter + 1) & 0xFFFFFF
        raw = ((int(self.clock()) & 0xFFFFFFFF).to_bytes(4, "big") + self.machine
               + self.pid.to_bytes(2, "big") + self.counter.to_bytes(3, "big"))
        return base64.b32hexencode(raw).decode("ascii").rstrip("=").lower()
