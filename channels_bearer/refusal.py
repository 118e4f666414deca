"""How a refused handshake goes on the wire; shared by the middleware and the mixin.

* ``REFUSAL = "handshake"`` (default): where the server advertises the ASGI
  ``websocket.http.response`` extension (uvicorn), an HTTP response with RFC
  6750's ``WWW-Authenticate: Bearer`` challenge; elsewhere (daphne) a close
  before accept, which the server answers with 403.
* ``REFUSAL = "close"``: accept, then close with 4401/4403/4400 and the RFC 6750
  error code as reason. A page sees every refused handshake as close code
  1006; only a close after accept tells it whether to fetch a new token.
"""

from __future__ import annotations

import logging
from typing import Any

from channels_bearer.exceptions import BearerError
from channels_bearer.types import Message

logger = logging.getLogger("channels_bearer")



def marker_offered(scope: dict[str, Any], marker: str) -> bool:
    return any(str(entry).strip() == marker for entry in scope.get("subprotocols") or ())


def challenge(error: BearerError | None) -> bytes:
    """The ``WWW-Authenticate`` value: bare when no token was presented (RFC 6750 §3)."""
    if error is None or error.error == "":
        return b"Bearer"
    value = f'Bearer error="{error.error}"'
    required = [scope for scope in getattr(error, "required", ()) if _is_scope_token(scope)]
    if required:
        value += f', scope="{" ".join(required)}"'
    return value.encode("ascii")


def _is_scope_token(scope: str) -> bool:
    # RFC 6749 scope tokens are NQCHARs: nothing that could break the quoting.
    return bool(scope) and all(0x21 <= ord(ch) <= 0x7E and ch not in '"\\' for ch in scope)


def refusal_messages(
    error: BearerError | None,
    scope: dict[str, Any],
    *,
    mode: str,
    accept_subprotocol: str | None,
) -> list[Message]:
    """The ASGI messages that refuse this handshake.

    ``error`` is ``None`` when no token was presented to a consumer that needs one.
    ``accept_subprotocol`` is what an accept-then-close answers (the marker when
    the client offered it), or the browser would fail the handshake instead.
    """
    status = error.status if error is not None else 401
    code = error.close_code if error is not None else 4401
    reason = error.error if error is not None else "token_required"
    if mode == "close" or (error is not None and error.close_after_accept and not _has_http_response(scope)):
        return [
            {"type": "websocket.accept", "subprotocol": accept_subprotocol, "headers": []},
            {"type": "websocket.close", "code": code, "reason": reason},
        ]
    if _has_http_response(scope):
        headers = [(b"content-type", b"text/plain; charset=utf-8")]
        if error is None or error.challenge:
            headers.append((b"www-authenticate", challenge(error)))
        return [
            {"type": "websocket.http.response.start", "status": status, "headers": headers},
            {"type": "websocket.http.response.body", "body": reason.encode("ascii") + b"\n"},
        ]
    # No denial-response extension: a close before accept. Servers answer 403;
    # Channels' test communicator reports the code.
    return [{"type": "websocket.close", "code": code, "reason": reason}]


def _has_http_response(scope: dict[str, Any]) -> bool:
    return "websocket.http.response" in (scope.get("extensions") or {})


def log_refusal(scope: dict[str, Any], error: BearerError | None, source: str | None) -> None:
    # The path only: query strings can hold tokens (uvicorn already logs them).
    logger.info(
        "WebSocket handshake refused for %s: %s%s%s",
        scope.get("path", "?"),
        error.error if error is not None else "token_required",
        f" ({error.description})" if error is not None and error.description else "",
        f" [source={source}]" if source else "",
    )
