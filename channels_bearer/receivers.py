"""The signal receivers: a token or user changed, so sockets close and cached lookups go.

Connected in ``AppConfig.ready()`` and nowhere else. Every database change
goes through :func:`channels_bearer.revoke.announce` (at once, and again when
the transaction commits), which closes the sockets and drops the cached
lookups, in this process and in every other:

=============================================  ===================================
a DRF token row deleted                         its sockets close; its cache entry goes
a django-oauth-toolkit access token deleted     the same (``revoke()`` deletes the row)
(or revoked)
a knox token row deleted (knox's logout or      the same
logout-all)
a token row saved (key, expiry or scope          its cache entry goes
changed), or created                             (created: no "unknown token" entry stays)
a user deactivated, deleted, or whose            all their sockets close, whatever
password changed                                 token opened them; their entries go
any other save of a user (but ``last_login``)    their entries go
a simplejwt outstanding token blacklisted       all the sockets of its user (access
                                                 tokens do not name the refresh token
                                                 they came from)
``user_logged_out`` (``REVOKE_ON_LOGOUT``)      all the user's sockets (not from knox's
                                                 logout views: the rows they delete say
                                                 which sockets go)
=============================================  ===================================
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import user_logged_out
from django.core.signals import setting_changed
from django.db.models.signals import post_delete, post_save

from channels_bearer.registry import Revocation, user_key
from channels_bearer.revoke import announce, publish

DISPATCH_PREFIX = "channels_bearer.receivers."

USER = "user"
DRF_TOKEN = "drf token"
OAUTH_TOKEN = "oauth token"
KNOX_TOKEN = "knox token"
BLACKLISTED_TOKEN = "blacklisted token"

#: sender → what it is to us (``None``: nothing). Every save in the project
#: comes through here: one dict lookup for the models that are not ours.
_kinds: dict[Any, str | None] = {}


def connect() -> None:
    # Connected for every sender and matched on the concrete model: a delete
    # through a proxy (DRF's admin TokenProxy, a proxy of the user model) is
    # sent with the proxy as sender.
    post_save.connect(saved, dispatch_uid=DISPATCH_PREFIX + "saved")
    post_delete.connect(deleted, dispatch_uid=DISPATCH_PREFIX + "deleted")
    user_logged_out.connect(logged_out, dispatch_uid=DISPATCH_PREFIX + "logged_out")
    setting_changed.connect(_forget_kinds, dispatch_uid=DISPATCH_PREFIX + "setting_changed")


def kind_of(sender: Any) -> str | None:
    """What the model ``sender`` is to channels-bearer, if anything."""
    try:
        return _kinds[sender]
    except KeyError:
        pass
    try:
        kind = _classify(sender)
    except Exception:
        # A broken CHANNELS_BEARER must not break every save in the project;
        # the system checks report it.
        return None
    _kinds[sender] = kind
    return kind


def _classify(sender: Any) -> str | None:
    from django.apps import apps
    from django.conf import settings

    from channels_bearer.conf import conf

    meta = getattr(sender, "_meta", None)
    if meta is None:
        return None
    label = meta.concrete_model._meta.label_lower
    if label == settings.AUTH_USER_MODEL.lower():
        return USER
    if apps.is_installed("rest_framework.authtoken") and label == conf.DRF_TOKEN_MODEL.lower():
        return DRF_TOKEN
    if apps.is_installed("oauth2_provider"):
        from oauth2_provider.settings import oauth2_settings  # type: ignore[import-untyped, unused-ignore]

        if label == str(oauth2_settings.ACCESS_TOKEN_MODEL).lower():
            return OAUTH_TOKEN
    if apps.is_installed("knox"):
        from knox.settings import knox_settings

        if label == str(knox_settings.TOKEN_MODEL).lower():
            return KNOX_TOKEN
    if label == "token_blacklist.blacklistedtoken":
        return BLACKLISTED_TOKEN
    return None


def token_id_of(kind: str, row: Any) -> str | None:
    """The ``token_id`` the backends gave the token stored in ``row``."""
    if kind == DRF_TOKEN:
        from channels_bearer.backends.drf import DRFTokenBackend

        return DRFTokenBackend.token_id_of(row)
    if kind == OAUTH_TOKEN:
        from channels_bearer.backends.oauth_toolkit import OAuthToolkitBackend

        return OAuthToolkitBackend.token_id_of(row)
    if kind == KNOX_TOKEN:
        from channels_bearer.backends.knox import KnoxTokenBackend

        return KnoxTokenBackend.token_id_of(row)
    return None


def saved(sender: Any, instance: Any, created: bool = False, using: str | None = None, **kwargs: Any) -> None:
    kind = kind_of(sender)
    if kind is None:
        return
    if kind == USER:
        _user_saved(instance, created, using, kwargs.get("update_fields"))
    elif kind == BLACKLISTED_TOKEN:
        if created and instance.token.user_id is not None:
            announce(Revocation(user=user_key(instance.token.user_id), reason="token_blacklisted"), using)
    else:
        # A token row changed (its key, expiry or scope): read it anew. A new
        # row: no "unknown token" entry may hide it.
        token_id = token_id_of(kind, instance)
        if token_id is not None:
            reason = "token_created" if created else "token_changed"
            announce(Revocation(token_id=token_id, reason=reason, close=False, invalidate=True, created=created), using)


def _user_saved(user: Any, created: bool, using: str | None, update_fields: Any) -> None:
    if created:
        return  # a new user has nothing cached and no socket
    if not getattr(user, "is_active", True):
        reason, close = "user_inactive", True
    # AbstractBaseUser.save() keeps the raw password in _password until after
    # post_save, when set_password() was called: the only hook Django offers.
    elif getattr(user, "_password", None) is not None:
        reason, close = "password_changed", True
    elif update_fields is not None and set(update_fields) <= {"last_login"}:
        return  # every login saves last_login: nothing a lookup depends on
    else:
        reason, close = "user_changed", False
    announce(Revocation(user=user_key(user), reason=reason, close=close, invalidate=True), using)


def deleted(sender: Any, instance: Any, using: str | None = None, **kwargs: Any) -> None:
    kind = kind_of(sender)
    if kind == USER:
        announce(Revocation(user=user_key(instance), reason="user_deleted", invalidate=True), using)
    elif kind in (DRF_TOKEN, OAUTH_TOKEN, KNOX_TOKEN):
        token_id = token_id_of(kind, instance)
        if token_id is not None:
            reason = "token_revoked" if kind == OAUTH_TOKEN else "token_deleted"
            announce(Revocation(token_id=token_id, reason=reason, invalidate=True), using)


def logged_out(sender: Any, request: Any = None, user: Any = None, **kwargs: Any) -> None:
    from channels_bearer.conf import conf

    if user is None or not conf.REVOKE_ON_LOGOUT:
        return
    # knox's LogoutView and LogoutAllView send user_logged_out with the DRF
    # request its token authenticated, after deleting the token rows: those
    # deletes close exactly the sockets the logout ends (one token, or all).
    auth = getattr(request, "auth", None) if hasattr(request, "successful_authenticator") else None
    if auth is not None and kind_of(type(auth)) == KNOX_TOKEN:
        return
    publish(Revocation(user=user_key(user), reason="logged_out"))


def _forget_kinds(**kwargs: Any) -> None:
    # AUTH_USER_MODEL, CHANNELS_BEARER["DRF_TOKEN_MODEL"] and OAUTH2_PROVIDER
    # may change in tests.
    _kinds.clear()
