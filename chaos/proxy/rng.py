"""Seeded randomness: every draw of a toxic on one connection comes from its own generator.

The generator for (server seed, proxy, toxic, connection ordinal) is independent of every other
proxy, toxic and connection, so the same seed and the same order of connections on a proxy give
the same toxicity decisions and jitter, however connections of other proxies interleave.
"""

from __future__ import annotations

import random


def draw_rng(seed: int, proxy: str, toxic: str, ordinal: int) -> random.Random:
    """The generator for one toxic on the ``ordinal``-th connection (from 0) of ``proxy``."""
    # str seeds are hashed with SHA-512 by random.Random: stable across runs and processes.
    return random.Random(f"{seed}/{proxy}/{toxic}/{ordinal}")


def affected(seed: int, proxy: str, toxic: str, ordinal: int, toxicity: float) -> bool:
    """Whether a toxic with ``toxicity`` acts on that connection (its first draw)."""
    return draw_rng(seed, proxy, toxic, ordinal).random() < toxicity
