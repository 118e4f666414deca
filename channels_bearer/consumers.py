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
import logging
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

from django.core.exceptions import ImproperlyConfigured

from channels_bearer import events, metrics
from channels_bearer.conf import conf
from channels_bearer.consumer_base import END, SocketState, nothing
from channels_bearer.exceptions import BearerError, ExpiredToken, InsufficientScope, InvalidRequest, Revoked
from channels_bearer.expiry import set_alarm
from channels_bearer.first_message import FirstMessageAuthentication
from channels_bearer.identity import BearerIdentity
from channels_bearer.layer import ResilientLayer
from channels_bearer.mailbox import Mailbox
from channels_bearer.refresh import REFRESH_MESSAGE_TYPE, REFRESHED_MESSAGE_TYPE, InBandRefresh, parse_refresh_message
from channels_bearer.refusal import log_refusal, refusal_messages
from channels_bearer.registry import MARK_SCOPE_KEY, registry
from channels_bearer.revoke import identity_user_key
from channels_bearer.socket_cap import SocketCap
from channels_bearer.types import Message

__all__ = ["BearerConsumerMixin", "REFRESH_MESSAGE_TYPE", "REFRESHED_MESSAGE_TYPE"]

logger = logging.getLogger("channels_bearer")

EXPIRED_EVENT = {"type": "bearer.expired"}


class BearerConsumerMixin(FirstMessageAuthentication, InBandRefresh, SocketCap):
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
        self._bearer = state = SocketState(Mailbox(asyncio.get_running_loop(), receive), send)
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
            await self._bearer_release_seat()

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

    # -- handshake ------------------------------------------------------------

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
            return nothing() if self._bearer_is_async else None
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

    def _bearer_end(self, error: BearerError) -> Any:
        if not self._bearer.closed and self._bearer.accepted:
            return self._bearer_close_for(error)
        if not self._bearer.closed:
            # Not answered yet: websocket_connect() or accept() acts on it.
            self._bearer.pending = self._bearer.pending or error
        return nothing() if self._bearer_is_async else None

    def _bearer_close_for(self, error: BearerError) -> Any:
        """Close an accepted socket for ``error`` (expired, revoked, evicted) and report it."""
        code, reason, why = END[type(error)]
        identity = self.bearer
        return self._bearer_then(
            lambda: self.bearer_close(code, reason), lambda: self._bearer_report_closed(identity, why)
        )

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
                return self._bearer_in_kind(self._bearer_refresh_failed(error.close_code, error.error))
            if token is not None:
                return self._bearer_in_kind(self._bearer_refresh(token))
        return super().websocket_receive(message)  # type: ignore[misc]
