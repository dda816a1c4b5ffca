"""The registry gateway's randomness (retry jitter) comes from ``RegistryConfig.seed``."""

from __future__ import annotations

import pytest

from system.config import RegistryConfig
from system.coordinator import QuorumError
from system.registry.app import Registry
from system.transport import MockTransport, TransportError

pytestmark = pytest.mark.unit

NODES = {"node-1": "n1:1", "node-2": "n2:1", "node-3": "n3:1"}


def _down(method, address, path, body):
    raise TransportError(address, "cannot connect", definite=True)


async def retry_sleeps(seed: int | None, writes: int = 5) -> list[float]:
    """The sleeps a gateway draws between retries of writes that never reach their quorum."""
    reg = Registry(RegistryConfig(launcher="none", seed=seed), transport=MockTransport(_down))
    reg.gateway.update_members(NODES)
    sleeps: list[float] = []

    async def record(delay: float) -> None:
        sleeps.append(delay)

    reg.gateway.sleep = record
    for k in range(writes):
        with pytest.raises(QuorumError):
            await reg.gateway.write(f"k{k}", "v")
    return sleeps


async def test_two_registries_with_the_same_seed_draw_the_same_jitter():
    first, second = await retry_sleeps(1234), await retry_sleeps(1234)
    assert len(first) == 5 and all(d > 0 for d in first)
    assert first == second


async def test_another_seed_draws_other_jitter():
    assert await retry_sleeps(1234) != await retry_sleeps(4321)
