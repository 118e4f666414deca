"""django-oauth-toolkit access tokens, for projects that are their own authorization server."""

from __future__ import annotations

import importlib.util
from datetime import datetime
from typing import Any

from django.core.checks import CheckMessage
from django.db import models
from django.utils import timezone

from channels_bearer.backends.base import BaseBackend, Scope
from channels_bearer.check_ids import error, warning
from channels_bearer import database, flights
from channels_bearer.cache import OAUTH_TOOLKIT, Lookup, cached_lookup, local_hit
from channels_bearer.exceptions import ExpiredToken, InactiveUser
from channels_bearer.identity import BearerIdentity, token_digest, token_hash_id, token_id_from_digest


class OAuthToolkitBackend(BaseBackend):
    """Looks access tokens up as the toolkit's ``OAuth2Validator`` does.

    By SHA-256 ``token_checksum`` (django-oauth-toolkit 3.x; older versions by
    the ``token`` column), with the application and user. An unknown token is
    not ours (the next backend is asked); an expired one raises
    ``ExpiredToken``; an inactive user ``InactiveUser``.

    ``scope["bearer"]`` carries ``scopes`` (the token's ``scope`` field) and
    ``claims = {"client_id", "application_id", "application", "scope", "user_id"}``;
    ``token_id`` is :func:`~channels_bearer.identity.token_hash_id` of the
    token; :meth:`token_id_of` gives the same id from a stored row, whose
    ``token`` column may be blank (RFC 9700 storage): it reads the checksum.

    Tokens from the client-credentials grant have no user: they are refused
    unless ``allow_client_credentials`` is set on a subclass, in which case
    ``scope["user"]`` is ``AnonymousUser`` and ``claims["client_id"]`` says
    which client it is.
    """

    allow_client_credentials: bool = False

    @classmethod
    def check(cls) -> list[CheckMessage]:
        from django.apps import apps

        if importlib.util.find_spec("oauth2_provider") is None:
            return [
                error(
                    "E030",
                    "OAuthToolkitBackend is configured, but django-oauth-toolkit is not installed.",
                    "pip install channels-bearer[oauth-toolkit], or remove the backend.",
                )
            ]
        if not apps.is_installed("oauth2_provider"):
            return [
                error(
                    "E031",
                    "OAuthToolkitBackend is configured, but 'oauth2_provider' is not in INSTALLED_APPS.",
                    "Add 'oauth2_provider' to INSTALLED_APPS and run migrate.",
                )
            ]
        model = cls().get_model()
        field_names = {f.name for f in model._meta.get_fields()}
        if "token_checksum" not in field_names:
            return [
                warning(
                    "W030",
                    f"{model._meta.label} has no token_checksum field: tokens are looked up by their "
                    "plain value (django-oauth-toolkit < 3).",
                    "Upgrade django-oauth-toolkit to 3.x, which stores and looks up a SHA-256 checksum.",
                )
            ]
        return []

    @staticmethod
    def token_id_of(row: Any) -> str | None:
        """The ``token_id`` of the access token stored in ``row``."""
        checksum = getattr(row, "token_checksum", None)
        if isinstance(checksum, str) and checksum:
            return token_id_from_digest(checksum)
        raw = getattr(row, "token", None)
        return token_hash_id(raw) if isinstance(raw, str) and raw else None

    def get_model(self) -> type[models.Model]:
        from oauth2_provider.models import get_access_token_model  # type: ignore[import-untyped, unused-ignore]

        model: type[models.Model] = get_access_token_model()
        return model

    async def authenticate(self, token: str, scope: Scope) -> BearerIdentity | None:
        model = self.get_model()
        token_id = token_hash_id(token)
        hit, found = local_hit(OAUTH_TOOLKIT, token_id)
        if not hit:
            found = await flights.shared((OAUTH_TOOLKIT, token_id), lambda: database.run(self.lookup, model, token))
        if found is None:
            return None
        user, data = found
        expires: datetime | None = data["expires"]
        # The toolkit's AccessToken.is_expired(): no expiry counts as expired.
        if expires is None or timezone.now() >= expires:
            raise ExpiredToken("the token has expired")
        if user is None:
            if not self.allow_client_credentials:
                raise InactiveUser("the token belongs to no user (client credentials)")
            from django.contrib.auth.models import AnonymousUser

            user = AnonymousUser()
        else:
            self.check_user(user)
        claims = {key: data[key] for key in ("client_id", "application_id", "application", "scope", "user_id")}
        return BearerIdentity(
            user=user,
            token_id=token_id,
            expires_at=expires,
            claims=claims,
            scopes=frozenset(str(data["scope"] or "").split()),
        )

    def lookup(self, model: type[models.Model], token: str) -> Lookup | None:
        """``(user or None, data)`` for a known token, from the cache when one is configured."""

        def load() -> Lookup | None:
            access_token = self.get_token_object(model, token)
            if access_token is None:
                return None
            return access_token.user, self.describe(access_token)

        return cached_lookup(OAUTH_TOOLKIT, token_hash_id(token), load)

    def get_token_object(self, model: type[models.Model], token: str) -> Any:
        queryset = model._default_manager.select_related("application", "user")
        if any(f.name == "token_checksum" for f in model._meta.get_fields()):
            return queryset.filter(token_checksum=token_digest(token)).first()
        return queryset.filter(token=token).first()

    def describe(self, access_token: Any) -> dict[str, Any]:
        """What is kept about a token (in the cache too): never the token itself."""
        application = access_token.application
        return {
            "expires": access_token.expires,
            "scope": access_token.scope or "",
            "client_id": getattr(application, "client_id", None),
            "application_id": getattr(application, "pk", None),
            "application": getattr(application, "name", None),
            "user_id": access_token.user_id,
        }
