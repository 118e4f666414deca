"""A backend for tests: accepts tokens that no browser may send raw.

``PASSPHRASE_PREFIX + username`` authenticates that user. The prefix holds
``/``, ``=``, a space and non-ASCII on purpose: such a token must travel as
``base64url.bearer.<...>``.
"""

from __future__ import annotations

from channels.db import database_sync_to_async
from django.contrib.auth import get_user_model

from channels_bearer.backends.base import BaseBackend, Scope
from channels_bearer.exceptions import InactiveUser
from channels_bearer.identity import BearerIdentity, token_hash_id

PASSPHRASE_PREFIX = "sésame/ouvre=toi "


class PassphraseBackend(BaseBackend):
    async def authenticate(self, token: str, scope: Scope) -> BearerIdentity | None:
        if not token.startswith(PASSPHRASE_PREFIX):
            return None
        username = token[len(PASSPHRASE_PREFIX) :]
        user_model = get_user_model()
        user = await database_sync_to_async(user_model._default_manager.filter(username=username).first)()
        if user is None:
            raise InactiveUser("the user is inactive or deleted")
        self.check_user(user)
        return BearerIdentity(user=user, token_id=token_hash_id(token))
