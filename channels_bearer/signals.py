"""Signal receivers that close sockets when their token or user is revoked.

Connected in ``AppConfig.ready()``:

* a DRF token deleted → its sockets (``disconnect_token``);
* a user deactivated, deleted, or whose password changed → all their sockets;
* a user logged out of a session (``user_logged_out``) → all their sockets,
  unless ``CHANNELS_BEARER["REVOKE_ON_LOGOUT"]`` is False;
* a django-oauth-toolkit access token deleted or revoked → its sockets;
* a simplejwt outstanding token blacklisted → all the sockets of its user
  (access tokens do not name the refresh token they came from, so the user is
  the finest grain available).
"""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.contrib.auth import get_user_model, user_logged_out
from django.db.models.signals import post_delete, post_save

from channels_bearer.conf import conf
from channels_bearer.identity import token_hash_id
from channels_bearer.revoke import disconnect_token, disconnect_user

DISPATCH_PREFIX = "channels_bearer.revoke."


def connect_receivers() -> None:
    user_model = get_user_model()
    post_save.connect(user_saved, sender=user_model, dispatch_uid=DISPATCH_PREFIX + "user_saved")
    post_delete.connect(user_deleted, sender=user_model, dispatch_uid=DISPATCH_PREFIX + "user_deleted")
    user_logged_out.connect(user_logged_out_receiver, dispatch_uid=DISPATCH_PREFIX + "logout")
    if apps.is_installed("rest_framework.authtoken"):
        try:
            token_model = apps.get_model(conf.DRF_TOKEN_MODEL)
        except (LookupError, ValueError):
            token_model = None  # checks.py reports the misconfiguration
        if token_model is not None:
            post_delete.connect(drf_token_deleted, sender=token_model, dispatch_uid=DISPATCH_PREFIX + "drf_token")
    if apps.is_installed("oauth2_provider"):
        from oauth2_provider.models import get_access_token_model

        post_delete.connect(
            oauth_token_deleted, sender=get_access_token_model(), dispatch_uid=DISPATCH_PREFIX + "oauth_token"
        )
    if apps.is_installed("rest_framework_simplejwt.token_blacklist"):
        blacklisted = apps.get_model("token_blacklist", "BlacklistedToken")
        post_save.connect(jwt_blacklisted, sender=blacklisted, dispatch_uid=DISPATCH_PREFIX + "jwt_blacklist")


def user_saved(sender: Any, instance: Any, created: bool = False, **kwargs: Any) -> None:
    if created:
        return
    # AbstractBaseUser.save() keeps the raw password in _password until after
    # post_save, when set_password() was called: the only hook Django offers.
    if not getattr(instance, "is_active", True):
        disconnect_user(instance.pk, reason="user_inactive")
    elif getattr(instance, "_password", None) is not None:
        disconnect_user(instance.pk, reason="password_changed")


def user_deleted(sender: Any, instance: Any, **kwargs: Any) -> None:
    disconnect_user(instance.pk, reason="user_deleted")


def user_logged_out_receiver(sender: Any, request: Any = None, user: Any = None, **kwargs: Any) -> None:
    if user is not None and conf.REVOKE_ON_LOGOUT:
        disconnect_user(user.pk, reason="logged_out")


def drf_token_deleted(sender: Any, instance: Any, **kwargs: Any) -> None:
    disconnect_token(token_hash_id(instance.key), reason="token_deleted")


def oauth_token_deleted(sender: Any, instance: Any, **kwargs: Any) -> None:
    # AccessToken.revoke() deletes the row. The backend's token_id is the
    # SHA-256 prefix of the token, which the toolkit stores as token_checksum.
    checksum = getattr(instance, "token_checksum", None) or token_hash_id(instance.token)
    disconnect_token(checksum[:32], reason="token_revoked")


def jwt_blacklisted(sender: Any, instance: Any, created: bool = False, **kwargs: Any) -> None:
    if created and instance.token.user_id is not None:
        disconnect_user(instance.token.user_id, reason="token_blacklisted")

