"""Minting tokens for a user: for the management command, tests and demos."""

from __future__ import annotations

from typing import Any


def make_token(user: Any, kind: str = "drf") -> str:
    """Return a token string for ``user``.

    ``kind="drf"``: the user's ``rest_framework.authtoken`` key (created if missing).
    ``kind="jwt"``: a fresh SimpleJWT access token.
    """
    if kind == "drf":
        from django.apps import apps

        from channels_bearer.conf import conf

        model = apps.get_model(conf.DRF_TOKEN_MODEL)
        token, _ = model._default_manager.get_or_create(user=user)
        return str(token.key)
    if kind == "jwt":
        from rest_framework_simplejwt.tokens import AccessToken

        return str(AccessToken.for_user(user))
    raise ValueError(f"Unknown token kind {kind!r}; use 'drf' or 'jwt'.")
