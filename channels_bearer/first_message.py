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
"""

from __future__ import annotations

import json

from channels_bearer.exceptions import InvalidRequest

__all__ = ["AUTHENTICATE_MESSAGE_TYPE", "AUTH_TIMEOUT_CLOSE", "parse_authenticate_message"]

#: ``{"type": "bearer.authenticate", "token": "<token>"}``: the client's first frame.
AUTHENTICATE_MESSAGE_TYPE = "bearer.authenticate"
#: ``(code, reason)`` of a socket that did not authenticate in its first frame, in time.
AUTH_TIMEOUT_CLOSE = (4408, "authentication_timeout")
#: The close reason when the first frame is not an authenticate frame.
NOT_AUTHENTICATE_REASON = "authentication_expected"
#: A token longer than this is no token (JWTs with many claims stay far below).
MAX_TOKEN_LENGTH = 16384


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
