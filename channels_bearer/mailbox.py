"""A socket's own events, merged into the receive stream its consumer reads.

Expiry, revocation and refresh reach a ``BearerConsumerMixin`` consumer as
messages on its receive stream, so they are dispatched like any other
message: in order, and on the consumer's thread for sync consumers.

Every idle socket waits here, so the mailbox is small: no queue until an
event is posted, and one future to wake the wait on either the server's next
message or an event of ours.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from channels_bearer.types import Message

__all__ = ["Mailbox"]


class Mailbox:
    """Callable as the consumer's ``receive``: the server's messages and ours, in order."""

    __slots__ = ("loop", "_receive", "_items", "_pending", "_waiter")

    def __init__(self, loop: asyncio.AbstractEventLoop, receive: Callable[[], Awaitable[Message]]) -> None:
        self.loop = loop
        self._receive = receive
        self._items: deque[Message] | None = None
        #: The server's receive(), started and not yet handed out.
        self._pending: asyncio.Task[Message] | None = None
        self._waiter: asyncio.Future[None] | None = None

    def post(self, message: Message) -> None:
        """Deliver ``message`` after what the consumer is handling now; from any thread."""
        self.loop.call_soon_threadsafe(self.put, message)

    def put(self, message: Message) -> None:
        """:meth:`post` on the event loop's thread."""
        if self._items is None:
            self._items = deque()
        self._items.append(message)
        self._wake()

    async def __call__(self) -> Message:
        while True:
            if self._items:
                return self._items.popleft()
            if self._pending is None:
                self._pending = self.loop.create_task(self._receive())  # type: ignore[arg-type]
                self._pending.add_done_callback(self._wake)
            if self._pending.done():
                pending, self._pending = self._pending, None
                return pending.result()
            self._waiter = self.loop.create_future()
            try:
                await self._waiter
            except asyncio.CancelledError:
                # The consumer is going away: so is the server's receive.
                self._pending.cancel()
                raise
            finally:
                self._waiter = None

    def _wake(self, *_: Any) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)
