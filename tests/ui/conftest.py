"""Fixtures for the TUI tests (helpers live in ui_helpers.py)."""
from __future__ import annotations

import pytest

from keck_tui.clock import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(now=1000.0)
