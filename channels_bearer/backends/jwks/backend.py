"""``JWKSBackend``: JWTs from an external OAuth 2.0 / OpenID Connect authorization server.

Auth0, Keycloak, Okta, Azure AD (Entra ID), Cognito, Google... sign their
access tokens with a private key and publish the public keys as a JSON Web
Key Set (JWKS). ``JWKSBackend`` checks a token's signature against those keys
(:mod:`.keys`), its issuer, audience, expiry and algorithm, and maps a claim
to a Django user. Settings: ``CHANNELS_BEARER["JWKS"]`` (:mod:`.settings`).
"""

from __future__ import annotations

import importlib.util
import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error
from django.core.exceptions import ImproperlyConfigured
from django.db import IntegrityError, transaction
from django.utils.module_loading import import_string

from channels_bearer import database, flights
from channels_bearer.backends.base import BaseBackend, Scope, scopes_from_claims, timestamp_to_datetime, unverified_jwt_claims
from channels_bearer.backends.jwks.keys import JWKSKeyStore
from channels_bearer.backends.jwks.settings import ASYMMETRIC_ALGORITHMS, JWKSSettings, check_jwks_providers
from channels_bearer.cache import USER, Lookup, cached_lookup, local_hit, user_lookup_id
from channels_bearer.check_ids import error
from channels_bearer.conf import SETTING_NAME, conf
from channels_bearer.exceptions import BearerError, ExpiredToken, InactiveUser, InvalidToken
from channels_bearer.identity import BearerIdentity, token_hash_id

__all__ = ["JWKSBackend"]

logger = logging.getLogger("channels_bearer")

#: PyJWT's decoding errors, most specific first, and what the refusal says.
#: Fixed messages: PyJWT's own may quote parts of the token.
DECODE_ERRORS: tuple[tuple[str, type[BearerError], str], ...] = (
    ("ExpiredSignatureError", ExpiredToken, "the token has expired"),
    ("ImmatureSignatureError", InvalidToken, "the token is not valid yet"),
    ("InvalidAudienceError", InvalidToken, "the token is meant for another audience"),
    ("InvalidIssuerError", InvalidToken, "the token is from another issuer"),
    ("MissingRequiredClaimError", InvalidToken, "the token lacks a required claim"),
    ("InvalidSignatureError", InvalidToken, "the token's signature is invalid"),
    ("PyJWTError", InvalidToken, "the token is not valid"),
)


class JWKSBackend(BaseBackend):
    """Validates JWTs signed by an OAuth 2.0 / OpenID Connect server's published keys.

    Settings: ``CHANNELS_BEARER["JWKS"]`` (see :data:`JWKS_DEFAULTS` and the
    docs/backends.md), for one provider or, under ``PROVIDERS``, several. A
    token goes to the provider whose ``ISSUER`` is its (unverified) ``iss``
    and is verified with that provider's keys only; a JWT of no configured
    issuer is not this backend's: the next backend is asked. One that is ours
    must have an ``alg`` its key is for (the key's ``alg``, else what its type
    and curve imply; within ``ALGORITHMS`` when that is set), a signature by a
    published key, the ``AUDIENCE``, and an unexpired ``exp``; ``nbf``/``iat``
    are honoured, with ``LEEWAY`` seconds of clock skew.

    The user is found by ``USER_FIELD`` = the ``USER_CLAIM`` claim (created when
    ``CREATE_USERS``), or by the ``USER_FROM_CLAIMS`` hook. Override
    :meth:`get_user` or :meth:`create_user` for anything else.
    """

    def __init__(self) -> None:
        self._providers: dict[str, JWKSSettings] | None = None
        self._stores: dict[tuple[Any, ...], JWKSKeyStore] = {}
        self._stores_lock = threading.Lock()

    @classmethod
    def check(cls) -> list[CheckMessage]:
        messages: list[CheckMessage] = []
        if importlib.util.find_spec("jwt") is None:
            messages.append(
                error("E020", "JWKSBackend is configured, but PyJWT is not installed.", "pip install channels-bearer[jwks] (PyJWT[crypto]).")
            )
        if importlib.util.find_spec("cryptography") is None:
            messages.append(
                error(
                    "E021",
                    "JWKSBackend is configured, but 'cryptography' is not installed: PyJWT cannot verify "
                    "RSA or EC signatures without it.",
                    "pip install channels-bearer[jwks] (PyJWT[crypto]).",
                )
            )
        # The raw value: conf raises on a broken setting, which checks must
        # report, not raise. A JWKS that is no dict is the core's E026.
        raw = getattr(settings, SETTING_NAME, {})
        jwks = raw.get("JWKS", {}) if isinstance(raw, Mapping) else {}
        if isinstance(jwks, Mapping):
            messages.extend(check_jwks_providers(jwks)[1])
        return messages

    def get_providers(self) -> dict[str, JWKSSettings]:
        """The validated providers by issuer; ``ImproperlyConfigured`` names the first problem."""
        # Built once per backend instance: instances are rebuilt on setting_changed.
        if self._providers is None:
            configs, messages = check_jwks_providers(conf.JWKS)
            if configs is None:
                first = next(m for m in messages if isinstance(m, Error))
                raise ImproperlyConfigured(f"{first.msg} {first.hint}")
            self._providers = {config.issuer: config for config in configs}
        return self._providers

    def get_config(self) -> JWKSSettings:
        """The settings of the one provider (the first, with ``PROVIDERS``)."""
        return next(iter(self.get_providers().values()))

    def provider_for(self, claims: dict[str, Any]) -> JWKSSettings | None:
        """The provider an (unverified) token names in ``iss``; ``None``: not this backend's."""
        issuer = claims.get("iss")
        return self.get_providers().get(issuer) if isinstance(issuer, str) else None

    def get_key_store(self, config: JWKSSettings) -> JWKSKeyStore:
        with self._stores_lock:
            store = self._stores.get(config.store_key)
            if store is None:
                store = self._stores[config.store_key] = JWKSKeyStore(config)
            return store

    async def authenticate(self, token: str, scope: Scope) -> BearerIdentity | None:
        unverified = unverified_jwt_claims(token)
        if unverified is None:
            return None
        config = self.provider_for(unverified)
        if config is None:
            return None
        claims = await self.validate(token, config)
        user = await self.fetch_user(claims, config)
        self.check_user(user)
        jti = claims.get("jti")
        return BearerIdentity(
            user=user,
            token_id=jti if isinstance(jti, str) and jti else token_hash_id(token),
            expires_at=timestamp_to_datetime(claims.get("exp")),
            claims=claims,
            scopes=self.get_scopes(claims, config),
        )

    async def validate(self, token: str, config: JWKSSettings) -> dict[str, Any]:
        """The verified claims; raises ``ExpiredToken`` or ``InvalidToken``.

        Messages are fixed: PyJWT's may quote parts of the token.
        """
        import jwt

        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise InvalidToken("the token's header is malformed") from exc
        algorithm = header.get("alg")
        # Pinned before any key is looked at: "none" and HS* never get this far.
        # Which of the others the key is for, the key store checks.
        if not isinstance(algorithm, str) or algorithm not in ASYMMETRIC_ALGORITHMS:
            raise InvalidToken("the token's algorithm is not allowed")
        if config.algorithms is not None and algorithm not in config.algorithms:
            raise InvalidToken("the token's algorithm is not allowed")
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise InvalidToken("the token's key id is malformed")
        key = await self.get_key_store(config).get_key(kid, algorithm)
        required = ["exp", "iss", "aud"]
        if config.user_from_claims is None:
            required.append(config.user_claim)
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[algorithm],
                audience=config.audience if isinstance(config.audience, str) else list(config.audience),
                issuer=config.issuer,
                leeway=config.leeway,
                options={"require": required},
            )
        except jwt.PyJWTError as exc:
            for name, refusal, message in DECODE_ERRORS:
                if isinstance(exc, getattr(jwt, name)):
                    raise refusal(message) from exc
            raise  # unreachable: the table ends with PyJWTError
        return claims

    async def fetch_user(self, claims: dict[str, Any], config: JWKSSettings) -> Any:
        """The user for verified ``claims``: from the lookup cache, or one database trip
        shared by concurrent handshakes. A ``USER_FROM_CLAIMS`` hook is asked every time."""
        if config.user_from_claims is not None:
            return await database.run(self.get_user, claims, config)
        value = claims.get(config.user_claim)
        if not isinstance(value, str) or not value:
            raise InvalidToken("the token names no user")
        lookup_id = user_lookup_id("jwks", config.issuer, config.user_field, value)
        hit, found = local_hit(USER, lookup_id)
        if not hit:
            found = await flights.shared((USER, lookup_id), lambda: database.run(self.lookup_user, claims, config, lookup_id))
        return found[0] if found else None

    def lookup_user(self, claims: dict[str, Any], config: JWKSSettings, lookup_id: str) -> Lookup | None:
        """``(user, {})`` from the lookup cache when one is configured; the database thread."""
        return cached_lookup(USER, lookup_id, lambda: (self.get_user(claims, config), {}), negative=False)

    def get_scopes(self, claims: dict[str, Any], config: JWKSSettings) -> frozenset[str]:
        """``SCOPE_CLAIM`` (a space-separated string or a list), else ``scope``/``scp``."""
        if config.scope_claim is None:
            return scopes_from_claims(claims)
        return scopes_from_claims({"scope": claims.get(config.scope_claim)})

    def get_user(self, claims: dict[str, Any], config: JWKSSettings) -> Any:
        """The user for verified ``claims`` (runs on the database thread)."""
        if config.user_from_claims is not None:
            hook: Callable[[dict[str, Any]], Any] = import_string(config.user_from_claims)
            user = hook(claims)
            if user is None:
                raise InactiveUser("no user for the token")
            return user
        value = claims.get(config.user_claim)
        if not isinstance(value, str) or not value:
            raise InvalidToken("the token names no user")
        from django.contrib.auth import get_user_model

        user_model = get_user_model()
        try:
            return user_model._default_manager.get(**{config.user_field: value})
        except user_model.DoesNotExist:
            if not config.create_users:
                raise InactiveUser("the token's user does not exist") from None
        return self.create_user(value, claims, config)

    def create_user(self, value: str, claims: dict[str, Any], config: JWKSSettings) -> Any:
        """Make the user a token names on first sight (``CREATE_USERS``).

        The user has no usable password: they sign in at the provider.
        """
        from django.contrib.auth import get_user_model

        user_model = get_user_model()
        user = user_model(**{config.user_field: value})
        user.set_unusable_password()
        try:
            with transaction.atomic():
                user.save()
        except IntegrityError:
            # Another handshake with the same new user won the race.
            return user_model._default_manager.get(**{config.user_field: value})
        logger.info("Created user pk=%s for a token from %s.", user.pk, config.issuer)
        return user
