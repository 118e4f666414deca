"""Operators' limits: open sockets per user, refused handshakes per client address.

``MAX_SOCKETS_PER_USER``
    A user's authenticated ``BearerConsumerMixin`` sockets, on every process,
    are at most this many. Over it, ``MAX_SOCKETS_POLICY = "refuse"`` refuses
    the new socket (429 where the server sends HTTP refusals, else accept and
    close 4429); ``"close_oldest"`` closes the user's oldest socket (4429)
    instead, wherever it is.
``REFUSAL_RATE``
    ``"20/min"``: after 20 refused handshakes from one client address within
    60 seconds, every handshake from it is refused (``rate_limited``) before
    any backend runs, until the oldest of those refusals is 60 seconds old.

Where they count: ``LIMITS_CACHE``, a Django cache alias. A Redis cache
(``django.core.cache.backends.redis.RedisCache``, or django-redis) counts
across every process that uses it, in Redis itself: a sorted set of the
user's sockets, each with a lease that its process renews every
``SOCKET_LEASE / 3`` seconds, so the sockets of a process that died stop
counting within ``SOCKET_LEASE`` seconds; and the times of each address'
latest refusals. Any other cache counts in this process only (``manage.py check``
says so: ``channels_bearer.W004``).

The client address is what the server saw (``scope["client"]``), or, behind a
proxy, the last entry of ``CLIENT_ADDRESS_HEADER`` (the address your proxy
saw; never set it without a proxy that sets or appends that header, or
clients pick their own address).
"""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
import weakref
from typing import Any

from channels_bearer.config import BearerConfig
from channels_bearer.limit_stores import LocalStore, RedisStore, Store
from channels_bearer.types import Scope

__all__ = ["client_address", "open_sockets_now", "socket_member", "store"]

logger = logging.getLogger("channels_bearer")

#: The event a socket gets when ``close_oldest`` closes it.
EVICT_MESSAGE_TYPE = "bearer.evict"


def client_address(scope: Scope, config: BearerConfig) -> str | None:
    """The client's address: from ``CLIENT_ADDRESS_HEADER`` when set, else the peer's; ``None`` if unknown."""
    header = config.client_address_header
    if header is not None:
        # The last entry of the last such line: what the proxy added. A proxy
        # may append a line of its own rather than a value to the client's.
        found = None
        for name, value in scope.get("headers") or ():
            if name.lower() == header:
                found = value
        if found is None:
            # Behind the proxy without its header: unknown, not the proxy's
            # address (which would count every client as one).
            return None
        return found.decode("latin-1").split(",")[-1].strip() or None
    client = scope.get("client")
    return str(client[0]) if client else None


def address_key(address: str) -> str:
    # Addresses are personal data: keys hold a digest.
    return hashlib.sha256(address.encode("utf-8")).hexdigest()[:32]


def socket_member(channel_name: str | None) -> str:
    """A socket's entry in its user's set: its open time first (so that members sort oldest first), then where it is."""
    where = channel_name or f"local!{uuid.uuid4().hex}"
    return f"{time.time_ns() // 1000:017d}|{where}"


_local = LocalStore()
_redis_stores: dict[str, RedisStore] = {}
#: member → socket, for the sockets of this process (close_oldest reaches them directly).
_sockets: weakref.WeakValueDictionary[str, Any] = weakref.WeakValueDictionary()


def redis_url(alias: str) -> str | None:
    """The Redis URL of cache ``alias``, when it is a Redis cache."""
    from django.conf import settings

    config = getattr(settings, "CACHES", {}).get(alias) or {}
    backend = str(config.get("BACKEND", ""))
    location = config.get("LOCATION")
    if isinstance(location, (list, tuple)):
        location = location[0] if location else None
    if "redis" not in backend.lower() or not isinstance(location, str):
        return None
    return location if location.startswith(("redis://", "rediss://", "unix://")) else None


def store(config: BearerConfig) -> Store:
    url = redis_url(config.limits_cache)
    if url is None:
        return _local
    found = _redis_stores.get(url)
    if found is None:
        found = _redis_stores[url] = RedisStore(url)
    return found


async def rate_exceeded(address: str | None, config: BearerConfig) -> bool:
    """Whether ``address`` has used up ``REFUSAL_RATE`` in its last window (a store that fails: no)."""
    if config.refusal_rate is None or address is None:
        return False
    count, seconds = config.refusal_rate
    try:
        return await store(config).refusals(address_key(address), seconds) >= count
    except Exception as exc:
        logger.warning(
            "Could not read the refusal count (%s); letting the handshake through.",
            type(exc).__name__,
        )
        return False


async def count_refusal(address: str | None, config: BearerConfig) -> None:
    if config.refusal_rate is None or address is None:
        return
    count, seconds = config.refusal_rate
    try:
        await store(config).add_refusal(address_key(address), seconds, count)
    except Exception as exc:
        logger.warning("Could not count a refusal (%s).", type(exc).__name__)


async def acquire(socket: Any, user: str, member: str, config: BearerConfig) -> tuple[bool, list[str]]:
    """Count ``socket`` against its user's cap: ``(admitted, members to close)``; a store that fails admits."""
    assert config.max_sockets_per_user is not None
    try:
        admitted, evicted = await store(config).acquire(
            user,
            member,
            config.max_sockets_per_user,
            config.max_sockets_policy,
            config.socket_lease,
        )
    except Exception as exc:
        logger.warning(
            "Could not count the user's sockets (%s); letting the socket in.",
            type(exc).__name__,
        )
        return True, []
    if admitted:
        _sockets[member] = socket
    return admitted, evicted


async def release(user: str, member: str, config: BearerConfig) -> None:
    _sockets.pop(member, None)
    try:
        await store(config).release(user, member)
    except Exception as exc:  # its lease lapses on its own
        logger.warning("Could not release a socket's count (%s).", type(exc).__name__)


async def evict(members: list[str]) -> None:
    """Close the sockets ``members`` name with 4429, on whatever process they are."""
    from channels.layers import get_channel_layer

    for member in members:
        socket = _sockets.pop(member, None)
        if socket is not None:
            socket.bearer_post_event({"type": EVICT_MESSAGE_TYPE})
            continue
        channel = member.partition("|")[2]
        layer = get_channel_layer()
        if layer is None or channel.startswith("local!"):
            continue  # another process' socket with no layer to reach it: its lease ends its count
        try:
            await layer.send(channel, {"type": EVICT_MESSAGE_TYPE})
        except Exception as exc:
            logger.warning("Could not reach a socket to close it (%s).", type(exc).__name__)


def open_sockets_now(user: str, config: BearerConfig) -> int | None:
    """How many sockets ``user`` has open on every process, from sync code, when that is known; else ``None``.

    Known where sockets are counted across processes: ``MAX_SOCKETS_PER_USER``
    set and ``LIMITS_CACHE`` a Redis cache.
    """
    url = redis_url(config.limits_cache)
    if url is None or config.max_sockets_per_user is None:
        return None
    import redis

    client = redis.Redis.from_url(url)
    try:
        return int(client.zcount(RedisStore.sockets_key(user), time.time(), "+inf"))
    except Exception as exc:
        logger.warning("Could not count the user's sockets (%s).", type(exc).__name__)
        return None
    finally:
        client.close()
