"""Cached lookups for database-backed backends (``CHANNELS_BEARER["CACHE"]``).

With ``"CACHE": "default"`` (any alias in ``CACHES``), what a token lookup
found (``DRFTokenBackend``, ``OAuthToolkitBackend``) and the user a JWT names
(``SimpleJWTBackend``, ``JWKSBackend``) are kept for ``CACHE_TTL`` seconds
(default 60): a hit makes no database query, and in a per-process cache
(``LocMemCache``) no thread switch either. A token that matched nothing is
remembered for ``NEGATIVE_CACHE_TTL`` seconds (default 5), so a storm of
retries with a dead token costs one query.

The cache never outlives a revocation, and never hides a new row:

* the key is an HMAC (keyed with ``SECRET_KEY``) of the token's id, never the
  token: a cache dump gives nothing to replay, nor to match against a
  database dump;
* a token row changed or deleted leaves a tombstone in its entry's place, at
  once and again when the transaction commits (:mod:`channels_bearer.receivers`),
  so a lookup racing with the revocation cannot write the old answer back;
* "unknown token" entries live under keys of their own: a token row created
  leaves a *created* marker there, over which no lookup that missed the new
  row can write "unknown";
* a user saved or deleted (deactivated, password changed...) gets a new
  *version*; entries remember the version they were made with and count as
  misses once it changed. On a miss the row is read, then the version, then
  the row again, so a user change racing with the lookup is seen;
* a per-process cache is told by every other process: the revocation travels
  over the channel layer (:mod:`channels_bearer.broadcast`) and each process
  drops its own entries. Without a channel layer that reaches other
  processes, ``manage.py check`` warns (``channels_bearer.W003``).

Each process reaches the cache through one client (a shared Redis cache: one
connection pool per process, not one per handshake; Django's ``caches[alias]``
makes a new one in every async context).

Not covered (no signal is sent): ``QuerySet.update()`` on users or tokens, raw
SQL, and changes to a user's groups and permissions (those live ``CACHE_TTL``).
When the cache fails (Redis down...), lookups go to the database and a warning
is logged, without any token text.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import threading
import uuid
from collections.abc import Callable
from typing import Any

from django.core.cache import BaseCache, caches
from django.core.cache.backends.locmem import LocMemCache
from django.utils.crypto import salted_hmac

from channels_bearer.conf import conf

__all__ = ["cached_lookup", "entry_key", "forget", "is_per_process", "local_hit", "user_lookup_id", "user_version_key"]

logger = logging.getLogger("channels_bearer")

ENTRY_PREFIX = "channels_bearer:lookup:"
USER_VERSION_PREFIX = "channels_bearer:user-version:"
#: Stored in an entry's place when its token changes or goes away.
TOMBSTONE = "revoked"
#: Stored in a token's "unknown token" place when its row is created.
CREATED = "created"
FORMAT = 3

#: What a loader returns: the user (``None`` for a token of no user) and
#: picklable data about the token (never the token itself), or ``None`` for
#: an unknown token.
Lookup = tuple[Any, dict[str, Any]]

DRF = "drf"
OAUTH_TOOLKIT = "oauth"
KNOX = "knox"
#: The user a JWT names (SimpleJWTBackend, JWKSBackend).
USER = "user"

_clients: dict[str, BaseCache] = {}
_clients_lock = threading.Lock()


def entry_key(lookup_id: str) -> str:
    """The cache key for a lookup: a token's id, or a ``user_lookup_id()``."""
    # Keyed with SECRET_KEY: a token id is a SHA-256 prefix, and oauth-toolkit
    # stores the whole SHA-256; a cache dump cannot be matched against it.
    mac = salted_hmac("channels_bearer.cache.entry", lookup_id, algorithm="sha256").hexdigest()
    return f"{ENTRY_PREFIX}{mac}"


def negative_key(lookup_id: str) -> str:
    """Where "this token matched nothing" is kept: apart from the entry, so that a
    created marker there blocks only that, never the caching of the new row."""
    return entry_key("unknown:" + lookup_id)


def user_lookup_id(*parts: Any) -> str:
    """The lookup id of "the user that ``parts`` name" (a backend, a field, a value)."""
    return "user:" + hashlib.sha256(repr(parts).encode("utf-8")).hexdigest()[:32]


def user_version_key(user_pk: Any) -> str:
    return f"{USER_VERSION_PREFIX}{user_pk}"


def lookup_cache() -> BaseCache | None:
    """This process' client of the configured cache, or ``None`` when lookups are not cached."""
    alias = conf.CACHE
    if alias is None:
        return None
    client = _clients.get(alias)
    if client is None:
        with _clients_lock:
            client = _clients.get(alias)
            if client is None:
                client = _clients[alias] = caches.create_connection(alias)
    return client


def is_per_process() -> bool:
    """Whether the lookup cache is each process' own (``LocMemCache``)."""
    try:
        return isinstance(lookup_cache(), LocMemCache)
    except Exception:
        return False  # a broken CHANNELS_BEARER: the system checks say so


def _cache_failed(exc: BaseException, doing: str) -> None:
    # The exception's text is not logged: a driver may quote a key or value.
    logger.warning(
        "Cache %r failed while %s (%s.%s); using the database instead.",
        conf.CACHE,
        doing,
        type(exc).__module__,
        type(exc).__qualname__,
    )


# --- reading ----------------------------------------------------------------------


def _is_entry(entry: Any, kind: str) -> bool:
    return isinstance(entry, dict) and entry.get("format") == FORMAT and entry.get("kind") == kind


def _read(cache: BaseCache, lookup_id: str, kind: str, negative: bool) -> tuple[bool, Any, Lookup | None]:
    """``(hit, entry as stored, found)``: a valid entry, or a valid "unknown token" entry, is a hit."""
    entry = cache.get(entry_key(lookup_id))
    if _is_entry(entry, kind):
        if cache.get(user_version_key(entry["user_pk"])) == entry["user_version"]:
            return True, entry, (entry["user"], entry["data"])
    elif negative and entry is None and _is_entry(cache.get(negative_key(lookup_id)), kind):
        return True, entry, None
    return False, entry, None


def local_hit(kind: str, lookup_id: str) -> tuple[bool, Lookup | None]:
    """A hit in a per-process cache (``LocMemCache``), read on the event loop: ``(hit, found)``.

    Safe on the loop: such a cache is a dict behind a lock, with no I/O.
    ``(False, None)`` for any other cache (it may block on the network), a
    miss or a stale entry: then :func:`cached_lookup` runs on the database
    thread. ``(True, None)`` is a token known to match nothing.
    """
    try:
        cache = lookup_cache()
        if isinstance(cache, LocMemCache):
            hit, _, found = _read(cache, lookup_id, kind, negative=True)
            return hit, found
    except Exception:
        pass  # cached_lookup() will say so, and fall back to the database
    return False, None


def cached_lookup(kind: str, lookup_id: str, load: Callable[[], Lookup | None], *, negative: bool = True) -> Lookup | None:
    """``load()``, or what an earlier ``load()`` found for this lookup while still valid.

    Runs on the database thread. ``load`` reads the row and its user; it is
    called twice on a miss (see the module docstring) and not at all on a hit.
    ``negative``: remember for ``NEGATIVE_CACHE_TTL`` that ``load()`` found nothing.
    """
    cache = lookup_cache()
    if cache is None:
        return load()
    try:
        hit, entry, found = _read(cache, lookup_id, kind, negative)
        if hit:
            return found
        if _is_entry(entry, kind):
            # Made before the user changed: drop it, or add() could not replace it.
            cache.delete(entry_key(lookup_id))
    except Exception as exc:
        _cache_failed(exc, "reading a lookup")
        return load()
    found = load()
    if entry == TOMBSTONE:
        return found  # a revocation is settling: cache nothing yet
    if found is None:
        if negative:
            _store(cache, negative_key(lookup_id), {"format": FORMAT, "kind": kind}, conf.NEGATIVE_CACHE_TTL)
        return None
    return _store_found(cache, entry_key(lookup_id), kind, found, load)


def _store_found(cache: BaseCache, key: str, kind: str, found: Lookup, load: Callable[[], Lookup | None]) -> Lookup | None:
    user = found[0]
    if user is None:
        return found
    ttl = conf.CACHE_TTL
    try:
        version = _user_version(cache, user.pk, ttl)
    except Exception as exc:
        _cache_failed(exc, "reading a user version")
        return found
    # Read again after the version: a user change that committed after the
    # first read has bumped the version already, and shows in this read.
    found_again = load()
    if found_again is None or found_again[0] is None or found_again[0].pk != user.pk or version is None:
        return found_again
    entry = {
        "format": FORMAT,
        "kind": kind,
        "user": detached(found_again[0]),
        "user_pk": user.pk,
        "user_version": version,
        "data": found_again[1],
    }
    _store(cache, key, entry, ttl)
    return found_again


def _store(cache: BaseCache, key: str, entry: dict[str, Any], ttl: float) -> None:
    if ttl <= 0:
        return
    try:
        # add(), not set(): a tombstone or created marker written meanwhile must win.
        cache.add(key, entry, ttl)
    except Exception as exc:
        _cache_failed(exc, "storing a lookup")


def detached(user: Any) -> Any:
    """A copy of ``user`` without cached relations, safe to pickle into a cache (and to hand out).

    A user loaded through ``Token.objects.select_related("user")`` caches its
    reverse one-to-one ``auth_token``: pickled as it is, the token would be
    stored in the cache with it.
    """
    clone = copy.copy(user)
    clone._state = copy.copy(user._state)
    clone._state.fields_cache = {}
    clone.__dict__.pop("_prefetched_objects_cache", None)
    return clone


def _user_version(cache: BaseCache, user_pk: Any, ttl: int) -> str | None:
    key = user_version_key(user_pk)
    version = cache.get(key)
    if version is None:
        # Lives longer than any entry made with it; if it is evicted anyway,
        # entries just miss (a new version never equals an old one).
        cache.add(key, uuid.uuid4().hex, 2 * ttl)
        version = cache.get(key)
    return None if version is None else str(version)


# --- invalidation -----------------------------------------------------------------


def forget(user_pk: Any | None, token_id: str | None, *, created: bool = False) -> None:
    """Drop what is cached about a user (all their lookups) and/or a token.

    :mod:`channels_bearer.revoke` calls this once per announcement: at once,
    again on commit, and in every process whose cache is its own. ``created``:
    the token's row was just created (only "unknown token" entries can be wrong).
    """
    cache = _configured_cache()
    if cache is None:
        return
    try:
        if token_id is not None and created:
            # Over the "unknown token" place only: the new row may be cached at once.
            cache.set(negative_key(token_id), CREATED, max(conf.NEGATIVE_CACHE_TTL, 1))
        elif token_id is not None:
            # A tombstone, not a delete: add() of a racing lookup must fail.
            cache.set(entry_key(token_id), TOMBSTONE, conf.CACHE_TTL)
        if user_pk is not None:
            cache.set(user_version_key(user_pk), uuid.uuid4().hex, 2 * conf.CACHE_TTL)
    except Exception as exc:
        logger.error(
            "Cache %r failed while dropping a revoked lookup (%s.%s): it may be served "
            "from the cache for up to CACHE_TTL seconds.",
            conf.CACHE,
            type(exc).__module__,
            type(exc).__qualname__,
        )


def _configured_cache() -> BaseCache | None:
    try:
        return lookup_cache()
    except Exception:
        # A broken CHANNELS_BEARER must not break every save in the project;
        # the system checks report it.
        return None


def forget_clients(*, setting: str, **kwargs: Any) -> None:
    """``setting_changed`` receiver (connected in ``AppConfig.ready()``): new caches, new clients."""
    if setting in ("CACHES", "CHANNELS_BEARER"):
        _clients.clear()


