"""Django REST framework's ``rest_framework.authtoken`` tokens."""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.core.checks import CheckMessage
from django.core.exceptions import ObjectDoesNotExist
from django.db import models

from channels_bearer.backends.base import BaseBackend, Scope
from channels_bearer import database, flights
from channels_bearer.cache import DRF, Lookup, cached_lookup, local_hit
from channels_bearer.check_ids import error
from channels_bearer.conf import conf
from channels_bearer.identity import BearerIdentity, token_hash_id


class DRFTokenBackend(BaseBackend):
    """Looks the token up in DRF's token table, as ``TokenAuthentication`` does.

    The model is ``CHANNELS_BEARER["DRF_TOKEN_MODEL"]`` (``"authtoken.Token"``),
    or ``model`` on a subclass. Tokens never expire; the ``token_id`` is a hash
    prefix of the key, since the key itself is the secret.

    With ``CHANNELS_BEARER["CACHE"]`` set, lookups of ``DRF_TOKEN_MODEL`` tokens
    are cached (see :mod:`channels_bearer.cache`); a subclass with another
    ``model`` always reads the database, since only ``DRF_TOKEN_MODEL`` rows
    drop their cache entries when deleted.
    """

    #: ``"app_label.ModelName"``; ``None`` reads the setting.
    model: str | None = None

    @classmethod
    def check(cls) -> list[CheckMessage]:
        if apps.is_installed("rest_framework.authtoken"):
            return []
        return [
            error(
                "E005",
                f"{cls.__name__} is configured, but 'rest_framework.authtoken' is not in INSTALLED_APPS.",
                "Add 'rest_framework' and 'rest_framework.authtoken' to INSTALLED_APPS "
                "(pip install channels-bearer[drf]).",
            )
        ]

    @staticmethod
    def token_id_of(row: Any) -> str | None:
        """The ``token_id`` of the token stored in ``row`` (what revoking it closes)."""
        key = getattr(row, "key", None)
        return token_hash_id(key) if isinstance(key, str) and key else None

    def get_model(self) -> type[models.Model]:
        return apps.get_model(self.model or conf.DRF_TOKEN_MODEL)

    def is_candidate(self, token: str, model: type[models.Model]) -> bool:
        # A JWT is far longer than any DRF key column: skip the query for it.
        max_length = getattr(model._meta.get_field("key"), "max_length", None)
        return max_length is None or len(token) <= max_length

    async def authenticate(self, token: str, scope: Scope) -> BearerIdentity | None:
        model = self.get_model()
        if not self.is_candidate(token, model):
            return None
        token_id = token_hash_id(token)
        hit, found = local_hit(DRF, token_id) if self.is_cached(model) else (False, None)
        if not hit:
            found = await flights.shared(
                (DRF, model._meta.label_lower, token_id), lambda: database.run(self.lookup, model, token)
            )
        if found is None:
            return None
        user = found[0]
        self.check_user(user)
        return BearerIdentity(user=user, token_id=token_id)

    def lookup(self, model: type[models.Model], token: str) -> Lookup | None:
        """``(user, {})`` for a known token, from the cache when one is configured."""

        def load() -> Lookup | None:
            token_object = self.get_token_object(model, token)
            return None if token_object is None else (token_object.user, {})

        if not self.is_cached(model):
            return load()
        return cached_lookup(DRF, token_hash_id(token), load)

    def is_cached(self, model: type[models.Model]) -> bool:
        # Only DRF_TOKEN_MODEL rows drop their cache entries when they change.
        return model._meta.label_lower == conf.DRF_TOKEN_MODEL.lower()

    def get_token_object(self, model: type[models.Model], key: str) -> Any:
        try:
            return model._default_manager.select_related("user").get(key=key)
        except ObjectDoesNotExist:
            return None
