"""Receivers of channels-bearer's signals for the server tests: one log line per event.

``tests.server_settings`` imports this module when ``BEARER_TEST_AUDIT`` is
set; the tests read the lines back from the server's log.
"""

from __future__ import annotations

import logging
from typing import Any

from channels_bearer.signals import bearer_authenticated, bearer_closed, bearer_refused

logger = logging.getLogger("tests.audit")


def authenticated(
    sender: Any,
    user: Any,
    source: str,
    backend: str,
    path: str,
    client: str | None,
    **kwargs: Any,
) -> None:
    logger.info(
        "AUDIT authenticated user=%s source=%s path=%s client=%s",
        user.get_username(),
        source,
        path,
        client,
    )


def refused(
    sender: Any,
    error: str,
    source: str | None,
    backend: str | None,
    path: str,
    client: str | None,
    **kwargs: Any,
) -> None:
    logger.info(
        "AUDIT refused error=%s source=%s path=%s client=%s",
        error,
        source,
        path,
        client,
    )


def closed(sender: Any, user: Any, token_id: str | None, reason: str, **kwargs: Any) -> None:
    logger.info(
        "AUDIT closed reason=%s user=%s",
        reason,
        user.get_username() if user is not None else None,
    )


bearer_authenticated.connect(authenticated, weak=False)
bearer_refused.connect(refused, weak=False)
bearer_closed.connect(closed, weak=False)
