"""One seed per run; every random source derives its own from it, by purpose.

``derive(seed, "proxy")``, ``derive(seed, "gateway")``, ``derive(seed, "workload")``, ... are
independent of each other and stable across Python versions and processes (no ``hash()``), so
a run replays from its one seed and adding a new consumer does not shift the others.
"""

from __future__ import annotations

import hashlib

__all__ = ["derive"]


def derive(seed: int, purpose: str) -> int:
    """A 31-bit seed for ``purpose``, drawn from the run's ``seed``."""
    digest = hashlib.sha256(f"{seed}:{purpose}".encode()).digest()
    return int.from_bytes(digest[:4], "big") >> 1
