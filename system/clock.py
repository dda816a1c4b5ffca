"""Where a service reads the time: the seam a simulation replaces.

A :class:`Clock` is two functions: ``wall`` (seconds since the epoch: versions, uptime) and
``monotonic`` (intervals: heartbeats, breakers, membership, retry deadlines). Services take
one as ``clock=`` and default to :data:`SYSTEM_CLOCK`, the host's (``time.time`` and
``time.monotonic``); the simulated runtime passes virtual time instead (trio's ``Clock``
idea).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import NamedTuple

__all__ = ["Clock", "SYSTEM_CLOCK"]


class Clock(NamedTuple):
    wall: Callable[[], float] = time.time
    monotonic: Callable[[], float] = time.monotonic


SYSTEM_CLOCK = Clock()
