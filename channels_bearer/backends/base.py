"""The backend interface, and helpers that shipped backends share."""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime, timezone
from typing import Any

from django.core.checks import CheckMessage

from channels_bearer.exceptions import InactiveUser
from channels_bearer.identity import BearerIdentity
from channels_bearer.types import Scope

__all__ = ["BaseBackend", "Scope", "scopes_from_claims", "timestamp_to_datetime", "unverified_jwt_claims"]


class BaseBackend:
    """Validates one kind of token.

    ``authenticate()`` follows DRF's convention:

    * return a :class:`~channels_bearer.identity.BearerIdentity` for a valid token;
    * return ``None`` for "not my kind of token": the next backend is asked;
    * raise a :class:`~channels_bearer.exceptions.BearerError` for "mine, but
      invalid" (expired, bad signature, inactive user): the handshake is refused
      and no other backend is asked.

    Backends are built once per configuration and shared by every connection:
    keep no per-connection state on ``self``.
    """

    @classmethod
    def check(cls) -> list[CheckMessage]:
        """System-check messages about this backend's configuration (``manage.py check``).

        Called for each configured backend; ids ``channels_bearer.E0NN``/``W0NN``.
        """
        return []

    async def authenticate(self, token: str, scope: Scope) -> BearerIdentity | None:
        raise NotImplementedError(f"{type(self).__name__} must implement authenticate(token, scope).")

    def check_user(self, user: Any) -> None:
        """Refuse users who may not log in; DRF and Django's ModelBackend do the same."""
        if user is None or not getattr(user, "is_active", True):
            raise InactiveUser("the user is inactive or deleted")


def unverified_jwt_claims(token: str) -> dict[str, Any] | None:
    """The payload of a compact JWS, *without* checking anything.

    Only for choosing which backend a token belongs to; never for trusting it.
    Returns ``None`` for anything that is not shaped like a JWT.
    """
    parts = token.split(".")
    if len(parts) != 3:
        return None
    payload = parts[1]
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (binascii.Error, ValueError, RecursionError):
        # RecursionError: a hostile payload of deeply nested JSON is the
        # client's fault, not a backend failure (503 and an ERROR log line).
        return None
    return claims if isinstance(claims, dict) else None


def timestamp_to_datetime(value: Any) -> datetime | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return datetime.fromtimestamp(value, tz=timezone.utc)


def scopes_from_claims(claims: dict[str, Any]) -> frozenset[str]:
    """OAuth 2.0 scopes from ``scope`` (RFC 8693, space-separated) or ``scp`` (list)."""
    raw = claims.get("scope", claims.get("scp"))
    if isinstance(raw, str):
        return frozenset(raw.split())
    if isinstance(raw, (list, tuple)):
        return frozenset(str(s) for s in raw)
    return frozenset()
