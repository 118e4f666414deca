"""Receivers that do nothing, for measuring what connecting receivers costs a handshake."""

from __future__ import annotations

from typing import Any

from channels_bearer.signals import bearer_authenticated, bearer_closed, bearer_refused

SIGNALS = (bearer_authenticated, bearer_refused, bearer_closed)


def sync_receiver(sender: Any, **kwargs: Any) -> None:
    return None


async def async_receiver(sender: Any, **kwargs: Any) -> None:
    return None


def connect(kind: str) -> None:
    """Connect a do-nothing receiver of ``kind`` ("sync" or "async") to every signal."""
    receiver = sync_receiver if kind == "sync" else async_receiver
    for signal in SIGNALS:
        signal.connect(receiver, dispatch_uid=f"bench-{kind}")


def disconnect() -> None:
    for signal in SIGNALS:
        for kind in ("sync", "async"):
            signal.disconnect(dispatch_uid=f"bench-{kind}")
