"""Fixtures of the unit tier."""

from __future__ import annotations

import pytest

from .clock import FakeClock


@pytest.fixture
def fake() -> FakeClock:
    return FakeClock()
