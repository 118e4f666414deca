"""Cached lookups for database-backed backends (``CHANNELS_BEARER["CACHE"]``).

With ``"CACHE": "default"`` (any alias in ``CACHES``), ``DRFTokenBackend`` and
``OAuthToolkitBackend`` keep what a token lookup found for ``CACHE_TTL``
seconds (default 60): a cache hit makes no database query at all.

The cache never outlives a revocation:

* the key is an HMAC (keyed with ``SECRET_KEY``) of the token's id, never the
  token: a cache dump gives nothing to replay, nor to match against a
  database dump;
* a token row saved or deleted (``post_save``/``post_delete``, admin and
  oauth-toolkit's ``revoke()`` included) leaves a tombstone in its entry's
  place, at once and again when the transaction commits
  (:mod:`channels_bearer.receivers`), so a lookup racing with the revocation
  cannot write the old answer back;
* a user saved or deleted (deactivated, password changed...) gets a new
  *version* in the cache; entries remember the version they were made with and
  count as misses once it changed. On a miss the token row is read, then the
  version, then the row again, so a user change racing with the lookup is seen;
* a per-process cache (``LocMemCache``) is told by every other process: the
  revocation travels over the channel layer (:mod:`channels_bearer.broadcast`)
  and each process drops its own entries. Without a channel layer that reaches
  other processes, ``manage.py check`` warns (``channels_bearer.W003``).

Not covered (no signal is sent): ``QuerySet.update()`` on users or tokens, raw
SQL, and changes to a user's groups and permissions (those live ``CACHE_TTL``).

When the cache fails (Redis down...), lookups go to the database and a warning
is logged, without any token text.
"""

from __future__ import annotations

import copy
import logging
import uuid
from collections.abc import Callable
from typing import Any

from django.core.cache import BaseCache, caches
from django.core.cache.backends.locmem import LocMemCache
from django.utils.crypto import salted_hmac

from channels_bearer.conf import conf
from channels_bearer.identity import token_hash_id

__all__ = ["cached_lookup", "entry_key", "forget", "is_per_process", "user_version_key"]

logger = logging.getLogger("channels_bearer")

ENTRY_PREFIX = "channels_bearer:lookup:"
USER_VERSION_PREFIX = "channels_bearer:user-version:"
#: Stored in an entry's place when its token changes or goes away.
TOMBSTONE = "revoked"
FORMAT = 2

#: What a backend's loader returns: the user, and picklable data about the
#: token (never the token itself), or ``None`` for an unknown token.
Lookup = tuple[Any, dict[str, Any]]

DRF = "drf"
OAUTH_TOOLKIT = "oauth"


def entry_key(token_id: str) -> str:
    """The cache key for the token with this ``token_id`` (whatever its kind)."""
    # Keyed with SECRET_KEY: the id is a SHA-256 prefix, and oauth-toolkit
    # stores the whole SHA-256; a cache dump cannot be matched against it.
    mac = salted_hmac("channels_bearer.cache.entry", token_id, algorithm="sha256").hexdigest()
    return f"{ENTRY_PREFIX}{mac}"


def user_version_key(user_pk: Any) -> str:
    return f"{USER_VERSION_PREFIX}{user_pk}"


def is_per_process() -> bool:
    """Whether the lookup cache is each process' own (``LocMemCache``)."""
    try:
        return isinstance(lookup_cache(), LocMemCache)
    except Exception:
        return False  # a broken CHANNELS_BEARER: the system checks say so


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
    key = entry_key(token_hash_id(token))
    try:
        entry = cache.get(key)
        if _is_entry(entry, kind):
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
            {
                "format": FORMAT,
                "kind": kind,
                "user": detached(found[0]),
                "user_pk": user.pk,
                "user_version": version,
                "data": found[1],
            },
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
    try:
        cache = lookup_cache()
        if not isinstance(cache, LocMemCache):
            return None
        entry = cache.get(entry_key(token_hash_id(token)))
        if _is_entry(entry, kind):
            if cache.get(user_version_key(entry["user_pk"])) == entry["user_version"]:
                return entry["user"], entry["data"]
    except Exception:
        pass  # cached_lookup() will say so, and fall back to the database
    return None


def _is_entry(entry: Any, kind: str) -> bool:
    return isinstance(entry, dict) and entry.get("format") == FORMAT and entry.get("kind") == kind


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


def forget(user_pk: Any | None, token_id: str | None) -> None:
    """Drop what is cached about a user (all their tokens) and/or a token.

    :mod:`channels_bearer.revoke` calls this once per announcement: at once,
    again on commit, and in every process whose cache is its own.
    """
    configured = _configured_cache()
    if configured is None:
        return
    cache, ttl = configured
    try:
        if token_id is not None:
            # A tombstone, not a delete: add() of a racing lookup must fail.
            cache.set(entry_key(token_id), TOMBSTONE, ttl)
        if user_pk is not None:
            cache.set(user_version_key(user_pk), uuid.uuid4().hex, 2 * ttl)
    except Exception as exc:
        logger.error(
            "Cache %r failed while dropping a revoked lookup (%s.%s): it may be served "
            "from the cache for up to CACHE_TTL seconds.",
            conf.CACHE,
            type(exc).__module__,
            type(exc).__qualname__,
        )


def _configured_cache() -> tuple[BaseCache, int] | None:
    try:
        cache = lookup_cache()
        return None if cache is None else (cache, conf.CACHE_TTL)
    except Exception:
        # A broken CHANNELS_BEARER must not break every save in the project;
        # the system checks report it.
        return None
