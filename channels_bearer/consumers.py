"""``BearerConsumerMixin``: for Channels' four websocket consumers.

::

    class ChatConsumer(BearerConsumerMixin, AsyncJsonWebsocketConsumer):
        app_subprotocols = ["chat.v2"]      # optional
        bearer_scopes = ["chat:read"]       # optional
        async def connect(self):
            await self.accept()             # answers "chat.v2" or the marker

The middleware validated the token before the consumer was built; the mixin
adds what only a consumer can do:

* refuse handshakes with no token (``bearer_required``) or missing scopes;
* or, with first-message authentication (``bearer_message_auth``), accept
  them and take the token from the first frame (:mod:`channels_bearer.first_message`)
  before the consumer's ``connect()`` runs;
* pick the subprotocol for ``accept()``;
* follow the token's life while the socket is open: close with **4401** when
  it expires, with **4403** when the token or its user is revoked
  (``channels_bearer.revoke``), and, when enabled, accept an in-band refresh
  message ``{"type": "bearer.refresh", "token": "..."}`` that moves the expiry.

Each authenticated socket is registered in this process' registry
(:mod:`channels_bearer.registry`) under its user and token, from before the
handshake is answered until the socket ends. A revocation heard after the
middleware looked the token up refuses the handshake; one that comes before
``accept()`` is kept and acted on when the consumer accepts.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timezone
from typing import Any

from asgiref.sync import async_to_sync
from channels.consumer import SyncConsumer
from channels.exceptions import StopConsumer
from django.core.exceptions import ImproperlyConfigured

from channels_bearer import events, limits, metrics, revoke
from channels_bearer.authentication import authenticate_credential
from channels_bearer.conf import conf
from channels_bearer.exceptions import (
    BearerError,
    ExpiredToken,
    InsufficientScope,
    InvalidRequest,
    Revoked,
    TooManySockets,
)
from channels_bearer.identity import BearerIdentity
from channels_bearer.layer import ResilientLayer
from channels_bearer.refusal import log_refusal, refusal_messages
from channels_bearer.registry import MARK_SCOPE_KEY, registry
from channels_bearer.revoke import identity_user_key
from channels_bearer.expiry import Alarm, set_alarm
from channels_bearer.first_message import AUTH_TIMEOUT_CLOSE, NOT_AUTHENTICATE_REASON, parse_authenticate_message
from channels_bearer.mailbox import Mailbox
from channels_bearer.refresh import REFRESH_MESSAGE_TYPE, REFRESHED_MESSAGE_TYPE, parse_refresh_message, refreshed_message
from channels_bearer.sources import Credential
from channels_bearer.types import Message

__all__ = ["BearerConsumerMixin", "REFRESH_MESSAGE_TYPE", "REFRESHED_MESSAGE_TYPE"]

logger = logging.getLogger("channels_bearer")

EXPIRED_EVENT = {"type": "bearer.expired"}
AUTH_TIMEOUT_EVENT = {"type": "bearer.auth_timeout"}


class BearerConsumerMixin:
    """Mix in before a Channels websocket consumer class.

    ``bearer_required``: refuse handshakes that present no token, with a bare
    ``WWW-Authenticate: Bearer`` challenge (401 on uvicorn, 403 on daphne, or
    accept-then-close 4401 with ``REFUSAL = "close"``).

    ``app_subprotocols``: the application subprotocols this consumer speaks, in
    order of preference; ``accept()`` answers the first one the client offered.

    ``bearer_scopes``: scopes the token must carry (``insufficient_scope``).

    ``bearer_refresh``: accept in-band refresh messages; ``None`` follows
    ``CHANNELS_BEARER["REFRESH"]``.

    ``bearer_message_auth``: accept a handshake with no token and take it from
    the first frame, ``{"type": "bearer.authenticate", "token": "..."}``;
    ``None`` follows ``"message" in CHANNELS_BEARER["SOURCES"]``.
    """

    bearer_required: bool = True
    app_subprotocols: Sequence[str] = ()
    #: OAuth 2.0 scopes the token must carry (``scope``/``scp`` claim, or the
    #: backend's own notion): refused with ``insufficient_scope`` otherwise.
    bearer_scopes: Sequence[str] = ()
    bearer_refresh: bool | None = None
    bearer_message_auth: bool | None = None

    scope: dict[str, Any]
    base_send: Any
    channel_name: str
    groups: list[str]

    @property
    def channel_layer(self) -> Any:
        return self.__dict__.get("_bearer_channel_layer")

    @channel_layer.setter
    def channel_layer(self, layer: Any) -> None:
        # Channels assigns the layer in __call__; wrapping it here keeps sockets
        # (and their authentication) alive while Redis is down. See layer.py.
        self.__dict__["_bearer_channel_layer"] = None if layer is None else ResilientLayer(layer, own_groups=False)

    # -- lifecycle plumbing -------------------------------------------------

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        # Expiry, refresh and local revocation reach the consumer as messages
        # on its own receive stream (mailbox.py), so they are dispatched like
        # any other message: on the consumer's thread for sync consumers, and
        # with the same ordering guarantees.
        self._bearer = state = _SocketState(Mailbox(asyncio.get_running_loop(), receive), send)
        identity = scope.get("bearer")
        if isinstance(identity, BearerIdentity):
            mark = scope.get(MARK_SCOPE_KEY)
            self._bearer_register(identity, mark if isinstance(mark, int) else registry.mark())
            self._bearer_schedule_expiry(identity.expires_at)
        try:
            return await super().__call__(scope, state.mailbox, send)  # type: ignore[misc]
        finally:
            # No alarm and no registration outlives its socket.
            if state.alarm is not None:
                state.alarm.cancel()
            self._bearer_unregister()
            if state.seat is not None:
                seat, state.seat = state.seat, None
                await limits.release(*seat, conf.current())

    def _bearer_register(self, identity: BearerIdentity, since: int) -> bool:
        """Register this socket under ``identity``; ``False`` if it was revoked since ``since``."""
        user = identity_user_key(identity)
        if not registry.register(self, user, identity.token_id, since):
            self._bearer.pending = Revoked("the token or its user was revoked during the handshake")
            return False
        self._bearer.registered = (user, identity.token_id)
        if metrics.enabled():
            metrics.socket_opened()
        return True

    def _bearer_unregister(self) -> None:
        if self._bearer.registered is not None:
            registry.unregister(self, *self._bearer.registered)
            self._bearer.registered = None
            if metrics.enabled():
                metrics.socket_ended()

    def bearer_post_event(self, message: Message) -> None:
        """Deliver ``message`` to this consumer from any thread."""
        self._bearer.mailbox.post(message)

    def _bearer_schedule_expiry(self, expires_at: datetime | None) -> None:
        # Runs on the event loop thread only (call_soon_threadsafe from sync code).
        state = self._bearer
        if state.alarm is not None:
            state.alarm.cancel()
            state.alarm = None
        if expires_at is None:
            return
        delay = (expires_at - datetime.now(timezone.utc)).total_seconds() + conf.EXPIRY_GRACE
        mailbox = state.mailbox
        state.alarm = set_alarm(mailbox.loop, delay, lambda: mailbox.put(dict(EXPIRED_EVENT)))

    @property
    def _bearer_is_async(self) -> bool:
        # SyncConsumer subclasses AsyncConsumer: test for the sync one.
        return not isinstance(self, SyncConsumer)

    # -- handshake ------------------------------------------------------------

    @property
    def bearer(self) -> BearerIdentity | None:
        """The identity the middleware put in ``scope["bearer"]``."""
        identity: BearerIdentity | None = self.scope.get("bearer")
        return identity

    def websocket_connect(self, message: Message) -> Any:
        # A plain method on purpose: for the async consumers it returns the
        # coroutine that AsyncConsumer.dispatch awaits; for the sync ones it runs.
        if "bearer" not in self.scope:
            raise ImproperlyConfigured(
                f"{type(self).__name__} uses BearerConsumerMixin, but the scope has no 'bearer' key: "
                "wrap the websocket router in channels_bearer.middleware.BearerAuthMiddlewareStack."
            )
        identity = self.bearer
        error = self._bearer.pending or self.bearer_refusal()
        if error is None and identity is None and self._bearer_message_auth_enabled():
            return self._bearer_in_kind(self._bearer_await_first_frame(message))
        if error is not None or (self.bearer_required and identity is None):
            source = identity.source if identity else None
            log_refusal(self.scope, error, source)
            self._bearer.closed = True
            report = events.refused(type(self), self.scope, error, source, conf.current())
            return self._bearer_then(report, lambda: self.bearer_refuse(error))
        connect = super().websocket_connect  # type: ignore[misc]
        if identity is not None and conf.current().max_sockets_per_user is not None:
            return self._bearer_then(self._bearer_take_seat(identity, accepted=False), lambda: connect(message))
        return connect(message)

    async def _bearer_take_seat(self, identity: BearerIdentity, *, accepted: bool) -> bool:
        """Count this socket against ``MAX_SOCKETS_PER_USER``; ``False`` when it was refused instead."""
        config = conf.current()
        user = identity_user_key(identity)
        if user is None or config.max_sockets_per_user is None:
            return True
        member = limits.socket_member(getattr(self, "channel_name", None))
        admitted, evicted = await limits.acquire(self, user, member, config)
        if not admitted:
            error = TooManySockets("the user has MAX_SOCKETS_PER_USER sockets open")
            log_refusal(self.scope, error, identity.source)
            self._bearer.closed = True
            await events.refused(type(self), self.scope, error, identity.source, config)
            if accepted:
                messages: list[Message] = [{"type": "websocket.close", "code": error.close_code, "reason": error.error}]
            else:
                messages = refusal_messages(
                    error, self.scope, mode=config.refusal, accept_subprotocol=self.select_subprotocol()
                )
            await self._bearer_send_all(messages)
            return False
        self._bearer.seat = (user, member)
        if evicted:
            await limits.evict(evicted)
        return True

    def bearer_refusal(self) -> BearerError | None:
        """A reason to refuse this authenticated connection, or ``None``.

        Checked at the handshake and after every refresh. Override to add
        checks of your own (call ``super()``); return the error, do not raise it.
        """
        bearer = self.bearer
        if bearer is not None and self.bearer_scopes:
            missing = set(self.bearer_scopes) - set(bearer.scopes)
            if missing:
                return InsufficientScope(
                    f"the token lacks the scope(s) {' '.join(sorted(missing))}", required=tuple(self.bearer_scopes)
                )
        return None

    def bearer_refuse(self, error: BearerError | None) -> Any:
        messages = refusal_messages(
            error,
            self.scope,
            mode=conf.REFUSAL,
            accept_subprotocol=self.select_subprotocol(),
        )
        return self._bearer_in_kind(self._bearer_send_all(messages))

    async def _bearer_send_all(self, messages: list[Message]) -> None:
        for message in messages:
            await self._bearer.send(message)

    def select_subprotocol(self) -> str | None:
        """The subprotocol ``accept()`` answers when it is given none.

        The first of the client's offers that this consumer declares in
        ``app_subprotocols``, else ``None``: the middleware, which saw the
        marker before removing it from the list, then answers with the marker.
        """
        for candidate in self.scope.get("subprotocols") or ():
            if candidate in self.app_subprotocols:
                return str(candidate)
        return None

    def accept(self, subprotocol: str | None = None, headers: Any = None) -> Any:
        if self._bearer.accepted and self._bearer.connect_message is not None:
            # First-message authentication accepted the socket already; the
            # consumer's connect() accepting it is the usual code path, not a
            # second handshake answer.
            return _nothing() if self._bearer_is_async else None
        if subprotocol is None:
            subprotocol = self.select_subprotocol()
        self._bearer.accepted = True
        accepted = super().accept(subprotocol, headers)  # type: ignore[misc]
        pending, self._bearer.pending = self._bearer.pending, None
        if pending is None:
            return accepted
        # Revoked or expired while connect() ran and before it accepted (a
        # consumer that accepts later): close right after the accept.
        if not self._bearer_is_async:
            self._bearer_close_for(pending)
            return None

        async def accept_then_close() -> None:
            await accepted
            await self._bearer_close_for(pending)

        return accept_then_close()

    # -- after accept -----------------------------------------------------------

    def bearer_expired(self, message: Message) -> Any:
        """The token expired (plus ``EXPIRY_GRACE``): close with 4401."""
        return self._bearer_end(ExpiredToken("the token has expired"))

    def bearer_revoke(self, message: Message) -> Any:
        """A revocation (``disconnect_user()``, a deleted token...) reached this socket: close with 4403."""
        return self._bearer_end(Revoked("the token or its user was revoked"))

    def bearer_evict(self, message: Message) -> Any:
        """``MAX_SOCKETS_POLICY = "close_oldest"``: a newer socket of the user took this one's seat: close with 4429."""
        # The newer socket's acquire already gave up this one's seat.
        self._bearer.seat = None
        return self._bearer_end(TooManySockets("a newer socket of the user took this one's place"))

    def _bearer_end(self, error: BearerError) -> Any:
        if not self._bearer.closed and self._bearer.accepted:
            return self._bearer_close_for(error)
        if not self._bearer.closed:
            # Not answered yet: websocket_connect() or accept() acts on it.
            self._bearer.pending = self._bearer.pending or error
        return _nothing() if self._bearer_is_async else None

    def _bearer_close_for(self, error: BearerError) -> Any:
        """Close an accepted socket for ``error`` (expired, revoked, evicted) and report it."""
        code, reason, why = _END[type(error)]
        identity = self.bearer
        return self._bearer_then(lambda: self.bearer_close(code, reason), lambda: events.closed(type(self), identity, why))

    def bearer_close(self, code: int, reason: str) -> Any:
        """Close the socket; override to tell the client first (call ``super()``)."""
        self._bearer.closed = True
        identity = self.bearer
        logger.info(
            "Closing WebSocket %s with %s (%s) [token_id=%s]",
            self.scope.get("path", "?"),
            code,
            reason,
            identity.token_id if identity else None,
        )
        return self.close(code=code, reason=reason)  # type: ignore[attr-defined]

    def websocket_receive(self, message: Message) -> Any:
        if self._bearer.awaiting_first_frame:
            return self._bearer_first_frame(message)
        text = message.get("text")
        if text is not None and self._bearer_refresh_enabled():
            try:
                token = parse_refresh_message(text)
            except InvalidRequest as error:
                return self.bearer_close(error.close_code, error.error)
            if token is not None:
                return self._bearer_in_kind(self._bearer_refresh(token))
        return super().websocket_receive(message)  # type: ignore[misc]

    def _bearer_refresh_enabled(self) -> bool:
        return conf.REFRESH if self.bearer_refresh is None else self.bearer_refresh

    # -- first-message authentication -------------------------------------------

    def _bearer_message_auth_enabled(self) -> bool:
        return "message" in conf.SOURCES if self.bearer_message_auth is None else self.bearer_message_auth

    async def _bearer_await_first_frame(self, message: Message) -> None:
        """Accept a handshake that carried no token, and give the first frame ``AUTH_TIMEOUT`` seconds."""
        state = self._bearer
        state.connect_message = message
        state.awaiting_first_frame = True
        state.accepted = True
        await state.send({"type": "websocket.accept", "subprotocol": self.select_subprotocol()})
        mailbox = state.mailbox
        state.alarm = set_alarm(mailbox.loop, conf.AUTH_TIMEOUT, lambda: mailbox.put(dict(AUTH_TIMEOUT_EVENT)))

    def bearer_auth_timeout(self, message: Message) -> Any:
        """No authenticate frame within ``AUTH_TIMEOUT``: close with 4408."""
        if self._bearer.awaiting_first_frame and not self._bearer.closed:
            self._bearer.awaiting_first_frame = False
            log_refusal(self.scope, None, "message")
            return self._bearer_then(
                events.refused(type(self), self.scope, None, "message", conf.current()),
                lambda: self.bearer_close(*AUTH_TIMEOUT_CLOSE),
            )
        return _nothing() if self._bearer_is_async else None

    def _bearer_first_frame(self, message: Message) -> Any:
        # The consumer's connect() runs in its own kind: awaited for async
        # consumers, called on the consumer's thread for sync ones (which may
        # not be inside the coroutine: sync code there could not reach the loop).
        connect = super().websocket_connect  # type: ignore[misc]
        connect_message = self._bearer.connect_message
        if self._bearer_is_async:

            async def run() -> None:
                if await self._bearer_authenticate_first_frame(message):
                    await connect(connect_message)

            return run()
        if async_to_sync(self._bearer_authenticate_first_frame)(message):
            connect(connect_message)
        return None

    async def _bearer_authenticate_first_frame(self, message: Message) -> bool:
        """Authenticate the token of the first frame; ``False`` when the socket was closed instead."""
        state = self._bearer
        state.awaiting_first_frame = False
        if state.alarm is not None:
            state.alarm.cancel()
            state.alarm = None
        send = state.send

        config = conf.current()

        async def close(code: int, reason: str, error: BearerError | None, seconds: float | None = None) -> bool:
            log_refusal(self.scope, error, "message")
            state.closed = True
            # Reported first, as every refusal is: counted against REFUSAL_RATE
            # before the client can try again.
            await events.refused(type(self), self.scope, error, "message", config, seconds)
            await send({"type": "websocket.close", "code": code, "reason": reason})
            return False

        try:
            token = parse_authenticate_message(message.get("text"))
        except InvalidRequest as error:
            return await close(AUTH_TIMEOUT_CLOSE[0], NOT_AUTHENTICATE_REASON, error)
        # watch(), not a bare mark: this process may never have seen a
        # handshake with a credential, and without its listener it would hear
        # no other process' revocations.
        mark = await revoke.watch()
        started = time.perf_counter()
        try:
            identity = await authenticate_credential(Credential("message", token), self.scope, config)
        except BearerError as error:
            return await close(error.close_code, error.error, error, time.perf_counter() - started)
        seconds = time.perf_counter() - started
        self.scope["bearer"] = identity
        self.scope["user"] = identity.user
        refusal = self.bearer_refusal()
        if refusal is not None:
            return await close(refusal.close_code, refusal.error, refusal)
        if not self._bearer_register(identity, mark):
            state.pending = None
            return await close(*_END[Revoked][:2], Revoked("revoked during authentication"))
        await events.authenticated(type(self), self.scope, identity, config, seconds)
        if not await self._bearer_take_seat(identity, accepted=True):
            return False
        state.mailbox.loop.call_soon_threadsafe(self._bearer_schedule_expiry, identity.expires_at)
        state.authenticated_late = True
        return True

    def websocket_disconnect(self, message: Message) -> Any:
        if self._bearer.connect_message is not None and not self._bearer.authenticated_late:
            # The client left before authenticating: the consumer's connect()
            # never ran, so neither does its disconnect().
            raise StopConsumer()
        return super().websocket_disconnect(message)  # type: ignore[misc]

    async def _bearer_refresh(self, token: str) -> None:
        current = self.bearer
        send = self._bearer.send

        async def close(code: int, reason: str, why: str = "refresh_failed") -> None:
            self._bearer.closed = True
            await send({"type": "websocket.close", "code": code, "reason": reason})
            await events.closed(type(self), current, why)

        mark = await revoke.watch()
        try:
            identity = await authenticate_credential(Credential("refresh", token), self.scope)
            if current is None or identity.user.pk != current.user.pk:
                raise Revoked("the refreshed token belongs to another user")
        except BearerError as error:
            logger.info("Refresh refused on %s: %s", self.scope.get("path", "?"), error.error)
            return await close(error.close_code, error.error)
        identity = dataclasses.replace(identity, source=current.source)
        self.scope["bearer"] = identity
        self.scope["user"] = identity.user
        refusal = self.bearer_refusal()
        if refusal is not None:
            return await close(refusal.close_code, refusal.error)
        self._bearer_unregister()
        if not self._bearer_register(identity, mark):
            # The new token (or the user) was revoked while it was being checked.
            self._bearer.pending = None
            return await close(*_END[Revoked][:2], why="revoked")
        self._bearer.mailbox.loop.call_soon_threadsafe(self._bearer_schedule_expiry, identity.expires_at)
        await send({"type": "websocket.send", "text": refreshed_message(identity.expires_at)})

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


class _SocketState:
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
_END: dict[type[BearerError], tuple[int, str, str]] = {
    ExpiredToken: (4401, "token_expired", "expired"),
    Revoked: (4403, "revoked", "revoked"),
    TooManySockets: (4429, "too_many_sockets", "too_many_sockets"),
}


async def _nothing() -> None:
    return None


async def _awaited(step: Awaitable[Any]) -> Any:
    return await step
