"""What every test shares: the settings reset, users and tokens, log capture.

Tests start from channels-bearer's defaults (``tests/settings.py`` sets no
``CHANNELS_BEARER``, and ``bearer_defaults`` resets it around every test) and
state what they need with ``override_settings``. Fixtures for tests that start
servers, browsers, Redis and PostgreSQL: ``tests/integration/conftest.py``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.test import override_settings

from tests.support.tokens import drf_token


@pytest.fixture(autouse=True)
def bearer_defaults() -> Iterator[None]:
    """Every test starts from the package defaults."""
    with override_settings(CHANNELS_BEARER={}):
        yield


@pytest.fixture
def debug_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """Every logger at DEBUG, captured."""
    caplog.set_level(logging.DEBUG)
    return caplog


@pytest.fixture
def user_factory(transactional_db: None) -> Callable[..., Any]:
    """``user_factory(username="alice", **fields)``: a user, committed (the middleware reads from another thread)."""
    from django.contrib.auth import get_user_model

    def make(username: str = "alice", **fields: Any) -> Any:
        return get_user_model()._default_manager.create_user(username=username, **fields)

    return make


@pytest.fixture
def alice(user_factory: Callable[..., Any]) -> Any:
    return user_factory("alice")


@pytest.fixture
def token(alice: Any) -> str:
    """A DRF token of ``alice``."""
    return drf_token(alice)
