"""django-rest-knox tokens: hashed, prefixed, each with its own expiry."""

from __future__ import annotations

import importlib.util
from datetime import datetime
from hmac import compare_digest
from typing import Any

from django.core.checks import CheckMessage
from django.db import models
from django.utils import timezone

from channels_bearer import database, flights
from channels_bearer.backends.base import BaseBackend, Scope
from channels_bearer.cache import KNOX, Lookup, cached_lookup, local_hit
from channels_bearer.check_ids import error
from channels_bearer.exceptions import ExpiredToken
from channels_bearer.identity import BearerIdentity, token_id_from_digest


class KnoxTokenBackend(BaseBackend):
    """Looks tokens up as knox's ``TokenAuthentication`` does.

    Rows of ``REST_KNOX["TOKEN_MODEL"]`` whose ``token_key`` is the token's
    first 15 characters, matched by the digest (``SECURE_HASH_ALGORITHM``,
    SHA-512 by default) in constant time. An unknown token is not ours; an
    expired one raises ``ExpiredToken``; an inactive user ``InactiveUser``.
    ``expires_at`` is the row's ``expiry``, so the socket closes with 4401
    then. With ``REST_KNOX["AUTO_REFRESH"]``, a handshake that reads the row
    renews it as an HTTP request would (knox's own ``renew_token``).

    ``token_id`` is a prefix of the row's digest (:meth:`token_id_of`): what
    deleting the row (knox's logout and logout-all) revokes.
    """

    @classmethod
    def check(cls) -> list[CheckMessage]:
        from django.apps import apps

        if importlib.util.find_spec("knox") is None or not apps.is_installed("knox"):
            return [
                error(
                    "E050",
                    f"{cls.__name__} is configured, but django-rest-knox is not installed or 'knox' is not "
                    "in INSTALLED_APPS.",
                    "pip install channels-bearer[knox], add 'knox' to INSTALLED_APPS and run migrate.",
                )
            ]
        return []

    @staticmethod
    def token_id_of(row: Any) -> str | None:
        """The ``token_id`` of the knox token stored in ``row``."""
        digest = getattr(row, "digest", None)
        return token_id_from_digest(digest) if isinstance(digest, str) and digest else None

    def get_model(self) -> type[models.Model]:
        from knox.models import get_token_model

        model: type[models.Model] = get_token_model()
        return model

    def is_candidate(self, token: str) -> bool:
        from knox.settings import CONSTANTS, knox_settings

        longest = CONSTANTS.MAXIMUM_TOKEN_PREFIX_LENGTH + knox_settings.AUTH_TOKEN_CHARACTER_LENGTH
        return CONSTANTS.TOKEN_KEY_LENGTH <= len(token) <= longest and token.isascii()

    async def authenticate(self, token: str, scope: Scope) -> BearerIdentity | None:
        if not self.is_candidate(token):
            return None
        from knox.crypto import hash_token

        digest = hash_token(token)
        token_id = token_id_from_digest(digest)
        hit, found = local_hit(KNOX, token_id)
        if not hit:
            found = await flights.shared((KNOX, token_id), lambda: database.run(self.lookup, token, digest, token_id))
        if found is None:
            return None
        user, data = found
        expires: datetime | None = data["expiry"]
        if expires is not None and timezone.now() >= expires:
            raise ExpiredToken("the token has expired")
        self.check_user(user)
        return BearerIdentity(user=user, token_id=token_id, expires_at=expires)

    def lookup(self, token: str, digest: str, token_id: str) -> Lookup | None:
        """``(user, {"expiry": ...})`` for a known token, from the cache when one is configured."""

        def load() -> Lookup | None:
            row = self.get_token_object(token, digest)
            return None if row is None else (row.user, {"expiry": row.expiry})

        return cached_lookup(KNOX, token_id, load)

    def get_token_object(self, token: str, digest: str) -> Any:
        from knox.settings import CONSTANTS, knox_settings

        queryset = self.get_model()._default_manager.select_related("user")
        row: Any
        for row in queryset.filter(token_key=token[: CONSTANTS.TOKEN_KEY_LENGTH]):
            if compare_digest(digest, row.digest):
                if knox_settings.AUTO_REFRESH and row.expiry and timezone.now() < row.expiry:
                    from knox.auth import TokenAuthentication

                    TokenAuthentication().renew_token(row)
                return row
        return None
