"""Unit tests: one process, Channels' communicator, the in-memory layer, SQLite in memory."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.apps import SEEN


@pytest.fixture(autouse=True)
def reset_seen() -> Iterator[None]:
    """What the test consumers saw (tests.support.apps.SEEN), from empty."""
    SEEN.clear()
    yield
    SEEN.clear()
