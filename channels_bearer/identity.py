"""What ``scope["bearer"]`` holds after a token was accepted."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any


def token_digest(token: str) -> str:
    """SHA-256 of the token, hex: what django-oauth-toolkit stores as ``token_checksum``."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def token_id_from_digest(digest: str) -> str:
    """The ``token_id`` of the token whose :func:`token_digest` is ``digest``.

    The one formula for opaque tokens' ids: backends, the ticket view, the
    revocation receivers and the lookup cache all come through here, so that
    revoking a token reaches every socket, ticket and cache entry it made.
    """
    return digest[:32]


def token_hash_id(token: str) -> str:
    """A stable, non-secret id for an opaque token: a SHA-256 prefix.

    128 bits is enough to tell tokens apart and far too little to help guess one.
    """
    return token_id_from_digest(token_digest(token))


@dataclass(frozen=True)
class BearerIdentity:
    """The authenticated identity behind a connection.

    ``token_id`` is never the token: it is a ``jti`` claim or a hash prefix,
    safe for logs, channel-layer group names and ``disconnect_token()``.
    """

    user: Any
    token_id: str
    expires_at: datetime | None = None
    claims: dict[str, Any] = field(default_factory=dict)
    scopes: frozenset[str] = frozenset()
    #: Where the token came from: "subprotocol", "header", "query" or "ticket".
    source: str = ""
    #: The dotted path of the backend that accepted the token, as configured.
    backend: str = ""

    def placed(self, source: str, backend: str) -> BearerIdentity:
        """A copy that records where the token came from and which backend took it."""
        # dataclasses.replace costs 0.8 µs more than building by position
        # (measured: 1.4 against 0.6 µs), 0.1 % of a handshake: not worth a
        # constructor call that breaks silently when a field is added.
        return replace(self, source=source, backend=backend)

    def __repr__(self) -> str:
        # claims can hold personal data; the repr shows only what debugging needs.
        user = getattr(self.user, "pk", None)
        return (
            f"<BearerIdentity user={user!r} source={self.source!r} backend={self.backend!r} "
            f"token_id={self.token_id!r} expires_at={self.expires_at!r}>"
        )
