"""A socket's own events, merged into the receive stream its consumer reads.

Expiry, revocation and refresh reach a ``BearerConsumerMixin`` consumer as
messages on its receive stream, so they are dispatched like any other
message: in order, and on the consumer's thread for sync consumers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from channels_bearer.types import Message

__all__ = ["merge_receive"]


def merge_receive(receive: Any, events: asyncio.Queue[Message]) -> Callable[[], Awaitable[Message]]:
    """A receive callable yielding the server's messages and our own events."""
    pending: asyncio.Future[Message] | None = None

    async def merged() -> Message:
        nonlocal pending
        if not events.empty():
            return events.get_nowait()
        if pending is None:
            pending = asyncio.ensure_future(receive())
        getter = asyncio.ensure_future(events.get())
        try:
            await asyncio.wait({pending, getter}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            getter.cancel()
            pending.cancel()
            raise
        if getter.done():
            # Leave the server's receive pending for the next call.
            return getter.result()
        getter.cancel()
        message = pending.result()
        pending = None
        return message

    return merged
