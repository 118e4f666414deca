"""Cached lookups for database-backed backends (``CHANNELS_BEARER["CACHE"]``).

With ``"CACHE": "default"`` (any alias in ``CACHES``), ``DRFTokenBackend`` and
``OAuthToolkitBackend`` keep what a token lookup found for ``CACHE_TTL``
seconds (default 60): a cache hit makes no database query at all.

The cache never outlives a revocation:

* the key is an HMAC (keyed with ``SECRET_KEY``) of the token's SHA-256, never
  the token: a cache dump gives nothing to replay, nor to match against a
  database dump;
* a token row saved or deleted (``post_save``/``post_delete``, admin and
  oauth-toolkit's ``revoke()`` included) leaves a tombstone in its entry's
  place, at once and again when the transaction commits, so a lookup racing
  with the revocation cannot write the old answer back;
* a user saved or deleted (deactivated, password changed...) gets a new
  *version* in the cache; entries remember the version they were made with and
  count as misses once it changed. On a miss the token row is read, then the
  version, then the row again, so a user change racing with the lookup is seen.

Not covered (no signal is sent): ``QuerySet.update()`` on users or tokens, raw
SQL, and changes to a user's groups and permissions (those live ``CACHE_TTL``).

When the cache fails (Redis down...), lookups go to the database and a warning
is logged, without any token text.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import uuid
from collections.abc import Callable
from typing import Any

from django.core.cache import BaseCache, caches
from django.db import transaction
from django.db.models.signals import post_delete, post_save
from django.utils.crypto import salted_hmac

from channels_bearer.conf import conf

__all__ = ["cached_lookup", "entry_key", "token_digest", "user_version_key"]

logger = logging.getLogger("channels_bearer")

ENTRY_PREFIX = "channels_bearer:lookup:"
USER_VERSION_PREFIX = "channels_bearer:user-version:"
#: Stored in an entry's place when its token changes or goes away.
TOMBSTONE = "revoked"
FORMAT = 1

#: What a backend's loader returns: the user, and picklable data about the
#: token (never the token itself), or ``None`` for an unknown token.
Lookup = tuple[Any, dict[str, Any]]

DRF = "drf"
OAUTH_TOOLKIT = "oauth"


def token_digest(token: str) -> str:
    """SHA-256 of the token, hex: what django-oauth-toolkit stores as ``token_checksum``."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def entry_key(kind: str, digest: str) -> str:
    """The cache key for a token with this ``token_digest``."""
    # Keyed with SECRET_KEY: even the stored SHA-256 (oauth-toolkit's checksum
    # column) cannot be matched against a cache dump.
    mac = salted_hmac("channels_bearer.cache.entry", digest, algorithm="sha256").hexdigest()
    return f"{ENTRY_PREFIX}{kind}:{mac}"


def user_version_key(user_pk: Any) -> str:
    return f"{USER_VERSION_PREFIX}{user_pk}"


def lookup_cache() -> BaseCache | None:
    """The configured cache, or ``None`` when lookups are not cached."""
    alias = conf.CACHE
    return None if alias is None else caches[alias]


def _cache_failed(exc: BaseException, doing: str) -> None:
    # The exception's text is not logged: a driver may quote a key or value.
    logger.warning(
        "Cache %r failed while %s (%s.%s); using the database instead.",
        conf.CACHE,
        doing,
        type(exc).__module__,
        type(exc).__qualname__,
    )


def cached_lookup(kind: str, token: str, load: Callable[[], Lookup | None]) -> Lookup | None:
    """``load()``, or what an earlier ``load()`` found for this token while still valid.

    Runs on the database thread (``database_sync_to_async``). ``load`` reads
    the token row and its user; it is called twice on a miss (see the module
    docstring) and not at all on a hit.
    """
    cache = lookup_cache()
    if cache is None:
        return load()
    ttl = conf.CACHE_TTL
    key = entry_key(kind, token_digest(token))
    try:
        entry = cache.get(key)
        if isinstance(entry, dict) and entry.get("format") == FORMAT:
            if cache.get(user_version_key(entry["user_pk"])) == entry["user_version"]:
                return entry["user"], entry["data"]
            # The user changed since: drop the entry so a fresh one can be added.
            cache.delete(key)
    except Exception as exc:
        _cache_failed(exc, "reading a token lookup")
        return load()

    found = load()
    if found is None or entry == TOMBSTONE:
        return found
    user = found[0]
    if user is None or not getattr(user, "is_active", True):
        return found
    try:
        version = _user_version(cache, user.pk, ttl)
    except Exception as exc:
        _cache_failed(exc, "reading a user version")
        return found
    # Read again after the version: a user change that committed after the
    # first read has bumped the version already, and shows in this read.
    found = load()
    if found is None or found[0] is None or found[0].pk != user.pk or version is None:
        return found
    if not getattr(found[0], "is_active", True):
        return found
    try:
        # add(), not set(): a tombstone written meanwhile must win.
        cache.add(
            key,
            {"format": FORMAT, "user": detached(found[0]), "user_pk": user.pk, "user_version": version, "data": found[1]},
            ttl,
        )
    except Exception as exc:
        _cache_failed(exc, "storing a token lookup")
    return found


def detached(user: Any) -> Any:
    """A copy of ``user`` without cached relations, safe to pickle into a cache.

    A user loaded through ``Token.objects.select_related("user")`` caches its
    reverse one-to-one ``auth_token``: pickled as it is, the token would be
    stored in the cache with it.
    """
    clone = copy.copy(user)
    clone._state = copy.copy(user._state)
    clone._state.fields_cache = {}
    clone.__dict__.pop("_prefetched_objects_cache", None)
    return clone


def local_hit(kind: str, token: str) -> Lookup | None:
    """A hit in an in-process cache (``LocMemCache``), read without a thread switch.

    Safe on the event loop: such a cache is a dict behind a lock, with no I/O.
    ``None`` for any other cache (it may block on the network), a miss, or a
    stale entry: then :func:`cached_lookup` runs on the database thread.
    """
    from django.core.cache.backends.locmem import LocMemCache

    try:
        cache = lookup_cache()
        if not isinstance(cache, LocMemCache):
            return None
        entry = cache.get(entry_key(kind, token_digest(token)))
        if isinstance(entry, dict) and entry.get("format") == FORMAT:
            if cache.get(user_version_key(entry["user_pk"])) == entry["user_version"]:
                return entry["user"], entry["data"]
    except Exception:
        pass  # cached_lookup() will say so, and fall back to the database
    return None


def _user_version(cache: BaseCache, user_pk: Any, ttl: int) -> str | None:
    key = user_version_key(user_pk)
    version = cache.get(key)
    if version is None:
        # Lives longer than any entry made with it; if it is evicted anyway,
        # entries just miss (a new version never equals an old one).
        cache.add(key, uuid.uuid4().hex, 2 * ttl)
        version = cache.get(key)
    return None if version is None else str(version)


# --- invalidation -----------------------------------------------------------


def _configured_cache() -> tuple[BaseCache, int] | None:
    try:
        cache = lookup_cache()
        return None if cache is None else (cache, conf.CACHE_TTL)
    except Exception:
        # A broken CHANNELS_BEARER must not break every save in the project;
        # the system checks report it.
        return None


def _now_and_on_commit(using: str | None, action: Callable[[], None]) -> None:
    # At once, for lookups from now on; and after commit, for a lookup that
    # read the row before the transaction committed and writes its entry late.
    action()
    transaction.on_commit(action, using=using)


def _token_kind(sender: Any, instance: Any) -> tuple[str, str] | None:
    """``(kind, token digest)`` when ``instance`` is a token row we may have cached."""
    meta = getattr(sender, "_meta", None)
    if meta is None:
        return None
    label = meta.concrete_model._meta.label_lower
    if label == conf.DRF_TOKEN_MODEL.lower():
        key = getattr(instance, "key", None)
        return (DRF, token_digest(key)) if isinstance(key, str) and key else None
    if _is_oauth_access_token(label):
        checksum = getattr(instance, "token_checksum", None)
        if isinstance(checksum, str) and checksum:
            return OAUTH_TOOLKIT, checksum
        raw = getattr(instance, "token", None)
        return (OAUTH_TOOLKIT, token_digest(raw)) if isinstance(raw, str) and raw else None
    return None


def _is_oauth_access_token(label: str) -> bool:
    from django.apps import apps

    if not apps.is_installed("oauth2_provider"):
        return False
    from oauth2_provider.settings import oauth2_settings  # type: ignore[import-untyped, unused-ignore]

    return bool(str(oauth2_settings.ACCESS_TOKEN_MODEL).lower() == label)


def _is_user_model(sender: Any) -> bool:
    from django.conf import settings

    meta = getattr(sender, "_meta", None)
    return meta is not None and meta.concrete_model._meta.label_lower == settings.AUTH_USER_MODEL.lower()


def drop_token(kind: str, digest: str, using: str | None = None) -> None:
    """Replace the cached lookup of a token with a tombstone (now and on commit)."""
    configured = _configured_cache()
    if configured is None:
        return
    cache, ttl = configured
    key = entry_key(kind, digest)

    def tombstone() -> None:
        try:
            cache.set(key, TOMBSTONE, ttl)
        except Exception as exc:
            logger.error(
                "Cache %r failed while dropping a revoked token's lookup (%s.%s): it may be served "
                "from the cache for up to CACHE_TTL seconds.",
                conf.CACHE,
                type(exc).__module__,
                type(exc).__qualname__,
            )

    _now_and_on_commit(using, tombstone)


def drop_user(user_pk: Any, using: str | None = None) -> None:
    """Invalidate every cached lookup of this user's tokens (now and on commit)."""
    configured = _configured_cache()
    if configured is None:
        return
    cache, ttl = configured

    def bump() -> None:
        try:
            cache.set(user_version_key(user_pk), uuid.uuid4().hex, 2 * ttl)
        except Exception as exc:
            logger.error(
                "Cache %r failed while dropping a changed user's lookups (%s.%s): they may be served "
                "from the cache for up to CACHE_TTL seconds.",
                conf.CACHE,
                type(exc).__module__,
                type(exc).__qualname__,
            )

    _now_and_on_commit(using, bump)


def _on_save(sender: Any, instance: Any, created: bool = False, using: str | None = None, **kwargs: Any) -> None:
    if created or _configured_cache() is None:
        return  # a new row was never cached
    _on_change(sender, instance, using)


def _on_delete(sender: Any, instance: Any, using: str | None = None, **kwargs: Any) -> None:
    if _configured_cache() is None:
        return
    _on_change(sender, instance, using)


def _on_change(sender: Any, instance: Any, using: str | None) -> None:
    if _is_user_model(sender):
        drop_user(instance.pk, using)
        return
    found = _token_kind(sender, instance)
    if found is not None:
        drop_token(*found, using=using)


# Connected for every sender: the token and user models are only known once
# apps are ready and may be swapped; the receivers return at once when no
# cache is configured. (Receivers on a model also keep Django from bulk-
# deleting its rows without signals.)
post_save.connect(_on_save, dispatch_uid="channels_bearer.cache.save")
post_delete.connect(_on_delete, dispatch_uid="channels_bearer.cache.delete")
