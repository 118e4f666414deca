"""What the parts of ``BearerConsumerMixin`` share.

The mixin is assembled from one part per concern, each in the module of that
concern, all on this base:

* :class:`channels_bearer.consumers.BearerConsumerMixin`: the handshake, the
  subprotocol, ``accept()``, expiry and revocation;
* :class:`channels_bearer.first_message.FirstMessageAuthentication`;
* :class:`channels_bearer.refresh.InBandRefresh`;
* :class:`channels_bearer.socket_cap.SocketCap` (``MAX_SOCKETS_PER_USER``).

The base holds the socket's state (:class:`SocketState`, one attribute on
the consumer), how each end closes a socket (:data:`END`), and how a step runs
in the consumer's kind: Channels' websocket consumers are async or sync, and
each part's steps are coroutines that a sync consumer must run to the end on
its own thread.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from asgiref.sync import async_to_sync
from channels.consumer import SyncConsumer

from channels_bearer import events
from channels_bearer.exceptions import BearerError, ExpiredToken, Revoked, TooManySockets
from channels_bearer.expiry import Alarm
from channels_bearer.identity import BearerIdentity
from channels_bearer.mailbox import Mailbox
from channels_bearer.types import Message

__all__ = ["END", "ConsumerBase", "SocketState", "nothing"]


class SocketState:
    """What the mixin keeps about its socket: one attribute on the consumer, no dict of its own."""

    __slots__ = (
        "mailbox", "send", "alarm", "registered", "accepted", "closed", "pending",
        "connect_message", "awaiting_first_frame", "authenticated_late", "seat",
    )  # fmt: skip

    def __init__(self, mailbox: Mailbox, send: Any) -> None:
        self.mailbox = mailbox
        #: The server's own send: sync consumers hold base_send as async_to_sync(send).
        self.send = send
        self.alarm: Alarm | None = None
        self.registered: tuple[str | None, str] | None = None
        self.accepted = False
        self.closed = False
        #: An end (revocation, expiry) that came before the accept.
        self.pending: BearerError | None = None
        #: First-message authentication: the handshake's connect message, kept
        #: for the consumer's connect(); whether the first frame is awaited;
        #: whether it authenticated the socket.
        self.connect_message: Message | None = None
        self.awaiting_first_frame = False
        self.authenticated_late = False
        #: ``(user, member)`` this socket holds under ``MAX_SOCKETS_PER_USER``.
        self.seat: tuple[str, str] | None = None


#: How each end closes an accepted socket: ``(code, reason, bearer_closed's reason)``.
END: dict[type[BearerError], tuple[int, str, str]] = {
    ExpiredToken: (4401, "token_expired", "expired"),
    Revoked: (4403, "revoked", "revoked"),
    TooManySockets: (4429, "too_many_sockets", "too_many_sockets"),
}


class ConsumerBase:
    """The state and the helpers every part of the mixin uses."""

    scope: dict[str, Any]
    _bearer: SocketState
    bearer_refresh: bool | None
    bearer_message_auth: bool | None

    if TYPE_CHECKING:
        # Defined by BearerConsumerMixin and the other parts; declared here so
        # that each part type-checks on its own.
        def bearer_close(self, code: int, reason: str) -> Any: ...
        def bearer_refusal(self) -> BearerError | None: ...
        def select_subprotocol(self) -> str | None: ...
        def _bearer_register(self, identity: BearerIdentity, since: int) -> bool: ...
        def _bearer_unregister(self) -> None: ...
        def _bearer_schedule_expiry(self, expires_at: datetime | None) -> None: ...
        def _bearer_end(self, error: BearerError) -> Any: ...
        async def _bearer_take_seat(self, identity: BearerIdentity, *, accepted: bool) -> bool: ...

    @property
    def bearer(self) -> BearerIdentity | None:
        """The identity the middleware put in ``scope["bearer"]``."""
        identity: BearerIdentity | None = self.scope.get("bearer")
        return identity

    @property
    def _bearer_is_async(self) -> bool:
        # SyncConsumer subclasses AsyncConsumer: test for the sync one.
        return not isinstance(self, SyncConsumer)

    async def _bearer_send_all(self, messages: list[Message]) -> None:
        for message in messages:
            await self._bearer.send(message)

    def _bearer_report_closed(self, identity: BearerIdentity | None, why: str) -> Awaitable[None] | None:
        """``bearer_closed`` for this socket, once its close frame is sent.

        Async consumers get the coroutine to await. For sync ones it is started
        on the socket's loop and not waited for (``events.closed_soon`` says
        why): ``None``.
        """
        if self._bearer_is_async:
            return events.closed(type(self), identity, why)
        events.closed_soon(self._bearer.mailbox.loop, type(self), identity, why)
        return None

    def _bearer_then(self, first: Any, then: Callable[[], Any]) -> Any:
        """Run ``first``, then ``then()`` unless ``first`` gave ``False``; in the consumer's kind.

        Each is an awaitable or a callable that returns one in the consumer's
        kind (a coroutine for async consumers, a done call for sync ones). For
        sync consumers ``then()`` runs on the consumer's own thread, where the
        consumer's sync code belongs.
        """
        if self._bearer_is_async:

            async def run() -> Any:
                step = first() if callable(first) else first
                if (await step if step is not None else None) is False:
                    return None
                result = then()
                return await result if result is not None else None

            return run()
        step = first() if callable(first) else first
        if step is not None and async_to_sync(_awaited)(step) is False:
            return None
        result = then()
        return async_to_sync(_awaited)(result) if asyncio.iscoroutine(result) else result

    def _bearer_in_kind(self, coroutine: Awaitable[None]) -> Any:
        """Hand a coroutine back to async consumers; run it to the end for sync ones."""
        if self._bearer_is_async:
            return coroutine

        async def run() -> None:
            await coroutine

        async_to_sync(run)()
        return None


async def nothing() -> None:
    return None


async def _awaited(step: Awaitable[Any]) -> Any:
    return await step
