"""Tokens made straight in the database, for in-process tests."""

from __future__ import annotations

import hashlib
import math
import time
from typing import Any

#: Both shipped database backends, for tests that present either kind of token.
BOTH_BACKENDS = {
    "BACKENDS": ["channels_bearer.backends.DRFTokenBackend", "channels_bearer.backends.SimpleJWTBackend"],
}


def drf_token(user: Any) -> str:
    from rest_framework.authtoken.models import Token

    return str(Token.objects.create(user=user).key)


def jwt_token(user: Any, **claims: Any) -> str:
    from rest_framework_simplejwt.tokens import AccessToken

    token = AccessToken.for_user(user)
    for name, value in claims.items():
        token[name] = value
    return str(token)


def short_jwt(user: Any, seconds: float) -> str:
    """A SimpleJWT access token that expires ``seconds`` from now, or up to a second later.

    ``exp`` is whole seconds, and ``set_exp(lifetime=...)`` rounds it down:
    a "1 second" token would have anywhere between 0 and 1 s left, and a
    slow machine would see it expire during the handshake. Rounded up here.
    """
    from rest_framework_simplejwt.tokens import AccessToken

    token = AccessToken.for_user(user)
    token["exp"] = math.ceil(time.time() + seconds)
    return str(token)


def seconds_left(token: str) -> float:
    """Seconds until a JWT's ``exp`` (read without verifying: the tests made it)."""
    import jwt

    return float(jwt.decode(token, options={"verify_signature": False})["exp"]) - time.time()


def drf_token_id(token: str) -> str:
    """The id the contract promises for an opaque token: a SHA-256 prefix, not the token.

    Written out here rather than imported, so that a change of the formula
    in channels_bearer.identity shows up as a failing test.
    """
    return hashlib.sha256(token.encode("utf-8")).hexdigest()[:32]
