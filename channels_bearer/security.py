"""Origin checks that let bearer-token clients without a browser in.

Drop-in replacements for ``channels.security.websocket.OriginValidator`` and
``AllowedHostsOriginValidator``::

    from channels_bearer.security import AllowedHostsOriginValidator

    "websocket": AllowedHostsOriginValidator(BearerAuthMiddlewareStack(URLRouter(urls)))

The Origin check exists against cross-site WebSocket hijacking: a page on
another site opens a socket to yours and the browser attaches your cookies.
Browsers always send ``Origin`` on a WebSocket handshake, and a bearer token
is not ambient (the page must put it into the handshake itself), so:

* a handshake whose ``Origin`` is not allowed is refused, as Channels does
  (a close before accept: 403);
* a handshake with **no** ``Origin`` (a script, a mobile app, another
  server: never a browser) is let through when it presents a bearer
  credential in an enabled source (subprotocol, header, query or ticket),
  and refused when it presents none, so session and cookie logins behind
  the same router stay protected.

Every refusal is logged by the ``channels_bearer`` logger at WARNING, with
the path and the reason (the Origin it saw, never a token).
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import ParseResult, urlparse

from channels.security import websocket as channels_websocket
from django.conf import settings

from channels_bearer.conf import conf
from channels_bearer.exceptions import InvalidRequest
from channels_bearer.sources import extract

__all__ = ["AllowedHostsOriginValidator", "OriginValidator"]

logger = logging.getLogger("channels_bearer")

#: How much of a refused Origin goes into the log line (it is the client's text).
LOGGED_ORIGIN_CHARS = 200


class OriginValidator(channels_websocket.OriginValidator):
    """Channels' ``OriginValidator``, plus: no ``Origin`` is fine when a bearer credential is presented."""

    application: Any

    async def __call__(self, scope: Any, receive: Any, send: Any) -> Any:
        if scope["type"] != "websocket":
            raise ValueError("You cannot use OriginValidator on a non-WebSocket connection")
        origins = [value for name, value in scope.get("headers") or () if name == b"origin"]
        if not origins:
            if presents_credential(scope) or "*" in self.allowed_origins:
                return await self.application(scope, receive, send)
            return await deny(scope, receive, send, "no Origin header and no bearer credential")
        if len(origins) > 1:
            return await deny(scope, receive, send, "more than one Origin header")
        origin = origins[0].decode("latin-1")
        parsed: ParseResult | None
        try:
            parsed = urlparse(origin)
        except ValueError:
            parsed = None
        if parsed is not None and self.valid_origin(parsed):
            return await self.application(scope, receive, send)
        shown = origin if len(origin) <= LOGGED_ORIGIN_CHARS else origin[:LOGGED_ORIGIN_CHARS] + "…"
        return await deny(scope, receive, send, f"Origin {shown!r} is not allowed")


def AllowedHostsOriginValidator(application: Any) -> OriginValidator:
    """An :class:`OriginValidator` for ``settings.ALLOWED_HOSTS``, as Channels' factory of that name."""
    allowed_hosts = settings.ALLOWED_HOSTS
    if settings.DEBUG and not allowed_hosts:
        allowed_hosts = ["localhost", "127.0.0.1", "[::1]"]
    return OriginValidator(application, allowed_hosts)


def presents_credential(scope: Any) -> bool:
    """Whether the handshake carries a bearer credential in an enabled source.

    One that is malformed or ambiguous counts too: the middleware behind
    refuses it as ``invalid_request``, and it is no browser's doing either.
    """
    try:
        return extract(scope, conf.current()).credential is not None
    except InvalidRequest:
        return True


async def deny(scope: Any, receive: Any, send: Any, reason: str) -> Any:
    # The path only: a query string may hold a token.
    logger.warning("WebSocket handshake refused for %s: %s", scope.get("path", "?"), reason)
    return await channels_websocket.WebsocketDenier()(scope, receive, send)
