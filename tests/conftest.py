"""Shared test helpers: where ../shared/fixtures is, and skips when it is absent."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("KECK_SHARED", REPO.parent / "shared"))
FIXTURES = SHARED / "fixtures"


def shared_fixture(*parts: str) -> Path:
    """Path of a file or folder under ../shared/fixtures; skips the test when absent."""
    path = FIXTURES.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared fixture {path} not present (../shared is absent)")
    return path


@pytest.fixture
def fixtures_dir() -> Path:
    if not FIXTURES.is_dir():
        pytest.skip(f"{FIXTURES} not present (../shared is absent)")
    return FIXTURES


@pytest.fixture(scope="session", autouse=True)
def _private_cache_dir(tmp_path_factory) -> None:
    """Whatever keck-top keeps between runs (the calibrated model) goes to a temporary
    directory during tests, never to the real ~/.cache (subprocesses inherit it)."""
    old = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("xdg-cache"))
    yield
    if old is None:
        os.environ.pop("XDG_CACHE_HOME", None)
    else:
        os.environ["XDG_CACHE_HOME"] = old
