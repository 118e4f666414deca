"""Tokens and tickets for tests, demos and ``manage.py bearer_token``.

``make_token(user, kind)`` returns a token the configured backends accept:
a DRF key, a SimpleJWT access token, or a JWT for ``JWKSBackend`` signed with
a test key (``make_test_key()``). Imports nothing from Channels' test tools,
so the management command can use it where daphne is not installed.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from channels.db import database_sync_to_async

from channels_bearer.conf import conf

__all__ = ["TestKey", "amake_ticket", "amake_token", "make_test_key", "make_ticket", "make_token"]


def make_token(
    user: Any,
    kind: str = "drf",
    *,
    key: Any = None,
    claims: Mapping[str, Any] | None = None,
    algorithm: str | None = None,
    lifetime: float = 300,
    kid: str | None = None,
) -> str:
    """Return a token string for ``user`` that the configured backends accept.

    * ``kind="drf"``: the user's ``rest_framework.authtoken`` key (created if missing);
    * ``kind="jwt"``: a fresh SimpleJWT access token;
    * ``kind="jwks"``: a JWT for ``JWKSBackend`` signed with ``key`` (a private
      key as PEM, a private JWK dict, a ``cryptography`` key or a ``TestKey``
      from ``make_test_key()``). It carries ``iss`` and ``aud`` from
      ``CHANNELS_BEARER["JWKS"]`` (``ISSUER``, ``AUDIENCE``), the user in the
      ``USER_CLAIM`` claim (default ``sub``; its value is the user's
      ``USER_FIELD``, default ``username``), ``iat``, ``exp`` (``lifetime``
      seconds from now) and a random ``jti``; ``claims`` are merged last, so
      they can override or remove (value ``None``) any of these. The
      algorithm is ``algorithm``, else the JWK's ``alg``, else the first of
      ``JWKS["ALGORITHMS"]``, else RS256. This touches no database.

    ``drf`` and ``jwt`` use the database: from async code, use ``amake_token``.
    """
    if kind == "jwks":
        return _make_jwks_token(user, key=key, claims=claims, algorithm=algorithm, lifetime=lifetime, kid=kid)
    if key is not None or claims is not None or algorithm is not None or kid is not None:
        raise TypeError(f"key, claims, algorithm and kid apply to kind='jwks' only, not {kind!r}.")
    if kind == "drf":
        from django.apps import apps

        model = apps.get_model(conf.DRF_TOKEN_MODEL)
        token, _ = model._default_manager.get_or_create(user=user)
        return str(token.key)
    if kind == "jwt":
        from rest_framework_simplejwt.tokens import AccessToken

        return str(AccessToken.for_user(user))
    raise ValueError(f"Unknown token kind {kind!r}; use 'drf', 'jwt' or 'jwks'.")


async def amake_token(user: Any, kind: str = "drf", **kwargs: Any) -> str:
    """``make_token`` for async code (the database work runs in Channels' DB thread)."""
    token: str = await database_sync_to_async(make_token)(user, kind, **kwargs)
    return token


def make_ticket(
    user: Any,
    *,
    token_id: str | None = None,
    expires_at: datetime | None = None,
    scopes: Iterable[str] = (),
) -> str:
    """Issue a one-time ticket for ``user``, as ``TicketView`` would, and return it.

    ``token_id`` / ``expires_at`` / ``scopes`` describe the token the ticket is
    issued "for" (``None``: a session); a socket opened with the ticket then
    closes when that token would expire, and revoking it voids the ticket.
    Send it with ``BearerCommunicator(..., ticket=ticket)``.
    """
    from channels_bearer.tickets import issue_ticket

    ticket, _ = issue_ticket(user, token_id=token_id, expires_at=expires_at, scopes=frozenset(scopes))
    return ticket


async def amake_ticket(
    user: Any,
    *,
    token_id: str | None = None,
    expires_at: datetime | None = None,
    scopes: Iterable[str] = (),
) -> str:
    """``make_ticket`` for async code (the ticket cache may be a database cache)."""
    ticket: str = await database_sync_to_async(make_ticket)(
        user, token_id=token_id, expires_at=expires_at, scopes=scopes
    )
    return ticket


@dataclass(frozen=True)
class TestKey:
    """A signing key pair for ``kind="jwks"`` tokens.

    ``jwks`` is the public key set to serve at your test ``JWKS_URL``;
    ``private_pem`` signs. Never use one outside tests.
    """

    __test__ = False  # not a pytest test class, despite the name

    kid: str
    algorithm: str
    private_pem: str = field(repr=False)
    public_jwk: dict[str, Any]

    @property
    def jwks(self) -> dict[str, Any]:
        return {"keys": [dict(self.public_jwk)]}


def make_test_key(kid: str = "test-key", algorithm: str = "RS256") -> TestKey:
    """Generate a fresh key pair (RSA 2048 for ``RS*``, P-256 for ``ES256``). Needs PyJWT[crypto]."""
    import json

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from jwt.algorithms import ECAlgorithm, RSAAlgorithm

    private: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
    if algorithm.startswith(("RS", "PS")):
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        public_jwk = json.loads(RSAAlgorithm.to_jwk(private.public_key()))
    elif algorithm == "ES256":
        private = ec.generate_private_key(ec.SECP256R1())
        public_jwk = json.loads(ECAlgorithm.to_jwk(private.public_key()))
    else:
        raise ValueError(f"make_test_key supports RS256/RS384/RS512/PS256/PS384/PS512 and ES256, not {algorithm!r}.")
    public_jwk.update({"kid": kid, "alg": algorithm, "use": "sig"})
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode("ascii")
    return TestKey(kid=kid, algorithm=algorithm, private_pem=pem, public_jwk=public_jwk)


def _make_jwks_token(
    user: Any,
    *,
    key: Any,
    claims: Mapping[str, Any] | None,
    algorithm: str | None,
    lifetime: float,
    kid: str | None,
) -> str:
    import jwt

    if key is None:
        raise TypeError("make_token(user, kind='jwks') needs key=: a private key (PEM, JWK dict or TestKey).")
    settings = conf.JWKS
    signing_key: Any = key
    if isinstance(key, TestKey):
        signing_key = key.private_pem
        algorithm = algorithm or key.algorithm
        kid = kid or key.kid
    elif isinstance(key, Mapping):
        jwk = jwt.PyJWK(dict(key))
        signing_key = jwk.key
        algorithm = algorithm or key.get("alg") or jwk.algorithm_name
        kid = kid or key.get("kid")
    if algorithm is None:
        configured = settings.get("ALGORITHMS") or ["RS256"]
        algorithm = str(configured[0])

    now = int(time.time())
    # The same defaults as JWKSBackend's, so the backend finds the user.
    user_field = str(settings.get("USER_FIELD") or "username")
    payload: dict[str, Any] = {
        "iat": now,
        "exp": now + int(lifetime),
        "jti": uuid.uuid4().hex,
        str(settings.get("USER_CLAIM") or "sub"): str(getattr(user, user_field)),
    }
    if settings.get("ISSUER"):
        payload["iss"] = settings["ISSUER"]
    audience = settings.get("AUDIENCE")
    if audience:
        # One audience is a plain string, as most providers send it.
        payload["aud"] = audience if isinstance(audience, str) else list(audience)
    for name, value in (claims or {}).items():
        if value is None:
            payload.pop(name, None)
        else:
            payload[name] = value
    headers = {"kid": kid} if kid else None
    return jwt.encode(payload, signing_key, algorithm=algorithm, headers=headers)
