"""The ASGI middleware: find the token, validate it, refuse or pass on.

Wrap the websocket router::

    "websocket": AllowedHostsOriginValidator(BearerAuthMiddlewareStack(URLRouter(urls)))

Every WebSocket handshake is read once, before any consumer runs:

* no token → ``scope["bearer"] = None`` and ``scope["user"]`` is left as an outer
  middleware set it (``AnonymousUser`` otherwise); consumers decide;
* a valid token → ``scope["user"]`` and ``scope["bearer"]`` are set;
* anything else (invalid, expired, ambiguous) → refused here, the inner app
  never runs.

The marker and token entries are removed from ``scope["subprotocols"]`` and the
token parameters from ``scope["query_string"]``. When the client offered the
marker, the accept is answered with it unless the consumer picked one of the
application subprotocols the client offered: browsers fail a handshake whose
answer names nothing, and the token entry is never echoed.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from channels.middleware import BaseMiddleware

from channels_bearer import events, limits, revoke
from channels_bearer.authentication import authenticate_credential
from channels_bearer.conf import conf
from channels_bearer.exceptions import BearerError, RateLimited, Revoked
from channels_bearer.identity import BearerIdentity
from channels_bearer.refusal import log_refusal, marker_offered, refusal_messages
from channels_bearer.registry import MARK_SCOPE_KEY
from channels_bearer.sources import Credential, extract
from channels_bearer.types import Message, Receive, Scope, Send

# authenticate_credential lives in channels_bearer.authentication; it is
# importable from here too, as it was.
__all__ = ["BearerAuthMiddleware", "BearerAuthMiddlewareStack", "authenticate_credential"]


class BearerAuthMiddleware(BaseMiddleware):
    """Authenticates WebSocket handshakes from a bearer token; HTTP passes through."""

    # Any ASGI application: Channels' stubs type it as a union that cannot be
    # called uniformly.
    inner: Any

    async def __call__(self, scope: Any, receive: Any, send: Any) -> Any:
        if scope.get("type") != "websocket":
            return await self.inner(scope, receive, send)
        scope = dict(scope)
        settings = conf.current()
        marker = settings.marker
        credential: Credential | None = None
        started: float | None = None
        try:
            # Before anything else: an address over REFUSAL_RATE costs no
            # parsing, no backend and no database.
            if settings.refusal_rate is not None and await limits.rate_exceeded(
                limits.client_address(scope, settings), settings
            ):
                raise RateLimited("too many refused handshakes from this client address")
            extraction = extract(scope, settings)
            credential = extraction.credential
            identity: BearerIdentity | None = None
            if credential is not None:
                # Taken before the lookup: a revocation heard after it that
                # names this token or user refuses the socket, here or when
                # the consumer registers it (channels_bearer.registry).
                mark = await revoke.watch()
                started = time.perf_counter()
                identity = await authenticate_credential(credential, scope, settings)
                if revoke.revoked_since(mark, identity):
                    raise Revoked("the token or its user was revoked during the handshake")
                scope[MARK_SCOPE_KEY] = mark
        except BearerError as error:
            source = credential.source if credential else None
            log_refusal(scope, error, source)
            seconds = None if started is None else time.perf_counter() - started
            await events.refused(type(self), scope, error, source, settings, seconds)
            return await refuse(
                scope, receive, send, error, marker if marker_offered(scope, marker) else None, settings.refusal
            )
        if identity is not None:
            assert started is not None
            await events.authenticated(type(self), scope, identity, settings, time.perf_counter() - started)
        else:
            events.anonymous()

        scope["subprotocols"] = extraction.subprotocols
        scope["query_string"] = extraction.query_string
        scope["bearer"] = identity
        if identity is not None:
            scope["user"] = identity.user
        elif "user" not in scope:
            from django.contrib.auth.models import AnonymousUser

            scope["user"] = AnonymousUser()
        if extraction.marker_offered:
            send = negotiating_send(send, marker, extraction.subprotocols)
        return await self.inner(scope, receive, send)


def BearerAuthMiddlewareStack(inner: Any) -> BearerAuthMiddleware:
    """What users wrap their websocket router in.

    To accept Django session logins too, wrap it in Channels' own:
    ``AuthMiddlewareStack(BearerAuthMiddlewareStack(router))``; a token, when
    presented, wins.
    """
    return BearerAuthMiddleware(inner)


async def refuse(
    scope: Scope,
    receive: Receive,
    send: Send,
    error: BearerError | None,
    accept_subprotocol: str | None,
    mode: str,
) -> None:
    """Answer the handshake with a refusal; the inner app never runs."""
    message = await receive()
    if message.get("type") != "websocket.connect":
        return
    for reply in refusal_messages(error, scope, mode=mode, accept_subprotocol=accept_subprotocol):
        await send(reply)
    # uvicorn marks a denied handshake complete one loop turn after the body
    # is sent; returning at once makes it log a spurious "ASGI callable
    # returned without completing handshake" ERROR for every refusal.
    await asyncio.sleep(0)


def negotiating_send(send: Send, marker: str, offered: list[str]) -> Send:
    """Make every accept answer a subprotocol the client offered.

    The consumer may pick one of the application subprotocols it was shown;
    anything else (nothing, the marker, a value the client never offered) is
    answered with the marker. Servers hang or browsers fail otherwise.
    """

    async def send_with_subprotocol(message: Message) -> None:
        if message.get("type") == "websocket.accept":
            chosen = message.get("subprotocol")
            headers = [
                (name, value)
                for name, value in message.get("headers") or ()
                if name.lower() != b"sec-websocket-protocol"
            ]
            message = {**message, "subprotocol": chosen if chosen in offered else marker, "headers": headers}
        await send(message)

    return send_with_subprotocol
