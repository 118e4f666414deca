"""First-message authentication: the frame a client sends when its handshake carried no token.

For clients that can set neither headers nor subprotocols, or that will not
put a token where a proxy logs it (the graphql-ws ``connection_init`` /
Socket.IO ``auth`` convention). With the ``"message"`` source enabled, a
:class:`~channels_bearer.consumers.BearerConsumerMixin` consumer accepts a
handshake with no credential and expects, within ``AUTH_TIMEOUT`` seconds,
the first text frame::

    {"type": "bearer.authenticate", "token": "<token>"}

Anything else first (another frame, a binary frame, nothing in time) closes
with **4408**, graphql-ws' code for "initialisation not received in time".

This module holds the frame's format and :class:`FirstMessageAuthentication`,
the part of ``BearerConsumerMixin`` that accepts such a handshake, waits for
the frame and runs the consumer's ``connect()`` once it authenticated.
"""

from __future__ import annotations

import json
import time
from typing import Any

from asgiref.sync import async_to_sync
from channels.exceptions import StopConsumer

from channels_bearer import events, revoke
from channels_bearer.authentication import authenticate_credential
from channels_bearer.conf import conf
from channels_bearer.consumer_base import END, ConsumerBase, nothing
from channels_bearer.exceptions import BearerError, InvalidRequest, Revoked
from channels_bearer.expiry import set_alarm
from channels_bearer.refusal import log_refusal
from channels_bearer.sources import Credential
from channels_bearer.types import Message

__all__ = [
    "AUTHENTICATE_MESSAGE_TYPE",
    "AUTH_TIMEOUT_CLOSE",
    "FirstMessageAuthentication",
    "parse_authenticate_message",
]

#: ``{"type": "bearer.authenticate", "token": "<token>"}``: the client's first frame.
AUTHENTICATE_MESSAGE_TYPE = "bearer.authenticate"
#: ``(code, reason)`` of a socket that did not authenticate in its first frame, in time.
AUTH_TIMEOUT_CLOSE = (4408, "authentication_timeout")
#: The close reason when the first frame is not an authenticate frame.
NOT_AUTHENTICATE_REASON = "authentication_expected"
#: A token longer than this is no token (JWTs with many claims stay far below).
MAX_TOKEN_LENGTH = 16384
#: Posted to the consumer when ``AUTH_TIMEOUT`` passed without the frame.
AUTH_TIMEOUT_EVENT = {"type": "bearer.auth_timeout"}


def parse_authenticate_message(text: str | None) -> str:
    """The token of the first frame; raises ``InvalidRequest`` for anything but an authenticate frame."""
    if text is None:
        raise InvalidRequest("the first frame is not a text frame")
    try:
        data = json.loads(text)
    except ValueError:
        raise InvalidRequest("the first frame is not JSON") from None
    if not isinstance(data, dict) or data.get("type") != AUTHENTICATE_MESSAGE_TYPE:
        raise InvalidRequest("the first frame is not an authenticate frame")
    token = data.get("token")
    if not isinstance(token, str) or not token.strip() or len(token) > MAX_TOKEN_LENGTH:
        raise InvalidRequest("the authenticate frame has no token")
    return token.strip()


class FirstMessageAuthentication(ConsumerBase):
    """The part of ``BearerConsumerMixin`` that authenticates a socket by its first frame."""

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
        return nothing() if self._bearer_is_async else None

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
        # Reported as the middleware reports a handshake's token: accepted by a
        # backend; a refusal by the consumer (scopes, the cap) follows it.
        await events.authenticated(type(self), self.scope, identity, config, time.perf_counter() - started)
        self.scope["bearer"] = identity
        self.scope["user"] = identity.user
        refusal = self.bearer_refusal()
        if refusal is not None:
            return await close(refusal.close_code, refusal.error, refusal)
        if not self._bearer_register(identity, mark):
            state.pending = None
            return await close(*END[Revoked][:2], Revoked("revoked during authentication"))
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
