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
    # Connected for every sender and matched on the concrete model: a delete
    # through a proxy (DRF's admin TokenProxy, a proxy of the user model) is
    # sent with the proxy as sender on Django 4.2.
    post_save.connect(_saved, dispatch_uid=DISPATCH_PREFIX + "saved")
    post_delete.connect(_deleted, dispatch_uid=DISPATCH_PREFIX + "deleted")
    user_logged_out.connect(user_logged_out_receiver, dispatch_uid=DISPATCH_PREFIX + "logout")


def _concrete(sender: Any) -> Any:
    meta = getattr(sender, "_meta", None)
    return meta.concrete_model if meta is not None else None


def _drf_token_model() -> Any:
    if not apps.is_installed("rest_framework.authtoken"):
        return None
    try:
        return apps.get_model(conf.DRF_TOKEN_MODEL)
    except (LookupError, ValueError):
        return None  # checks.py reports the misconfiguration


def _oauth_token_model() -> Any:
    if not apps.is_installed("oauth2_provider"):
        return None
    from oauth2_provider.models import get_access_token_model

    return get_access_token_model()


def _blacklisted_token_model() -> Any:
    if not apps.is_installed("rest_framework_simplejwt.token_blacklist"):
        return None
    return apps.get_model("token_blacklist", "BlacklistedToken")


def _saved(sender: Any, instance: Any, created: bool = False, **kwargs: Any) -> None:
    model = _concrete(sender)
    if model is None:
        return
    if model is get_user_model():
        user_saved(sender, instance, created=created)
    elif model is _blacklisted_token_model():
        jwt_blacklisted(sender, instance, created=created)


def _deleted(sender: Any, instance: Any, **kwargs: Any) -> None:
    model = _concrete(sender)
    if model is None:
        return
    if model is get_user_model():
        user_deleted(sender, instance)
    elif model is _drf_token_model():
        drf_token_deleted(sender, instance)
    elif model is _oauth_token_model():
        oauth_token_deleted(sender, instance)


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

