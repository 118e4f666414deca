"""Operators' limits: open sockets per user, refused handshakes per client address.

``MAX_SOCKETS_PER_USER``
    A user's authenticated ``BearerConsumerMixin`` sockets, on every process,
    are at most this many. Over it, ``MAX_SOCKETS_POLICY = "refuse"`` refuses
    the new socket (429 where the server sends HTTP refusals, else accept and
    close 4429); ``"close_oldest"`` closes the user's oldest socket (4429)
    instead, wherever it is.
``REFUSAL_RATE``
    ``"20/min"``: after 20 refused handshakes from one client address in a
    window of a minute, every handshake from it is refused (``rate_limited``)
    before any backend runs, until the window ends.

Where they count: ``LIMITS_CACHE``, a Django cache alias. A Redis cache
(``django.core.cache.backends.redis.RedisCache``, or django-redis) counts
across every process that uses it, in Redis itself: a sorted set of the
user's sockets, each with a lease that its process renews every
``SOCKET_LEASE / 3`` seconds, so the sockets of a process that died stop
counting within ``SOCKET_LEASE`` seconds; and one counter per address and
window. Any other cache counts in this process only (``manage.py check``
says so: ``channels_bearer.W004``).

The client address is what the server saw (``scope["client"]``), or, behind a
proxy, the last entry of ``CLIENT_ADDRESS_HEADER`` (the address your proxy
saw; never set it without a proxy that sets or appends that header, or
clients pick their own address).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import threading
import time
import uuid
import weakref
from typing import Any, Protocol

from channels_bearer.config import BearerConfig
from channels_bearer.types import Scope

__all__ = ["client_address", "open_sockets_now", "socket_member", "store"]

logger = logging.getLogger("channels_bearer")

#: The event a socket gets when ``close_oldest`` closes it.
EVICT_MESSAGE_TYPE = "bearer.evict"
PREFIX = "channels_bearer:"
#: At most this many addresses' refusal counts are kept in one process (LocalStore).
MAX_LOCAL_ADDRESSES = 100_000


def client_address(scope: Scope, config: BearerConfig) -> str | None:
    """The client's address: from ``CLIENT_ADDRESS_HEADER`` when set, else the peer's; ``None`` if unknown."""
    header = config.client_address_header
    if header is not None:
        for name, value in scope.get("headers") or ():
            if name.lower() == header:
                last = value.decode("latin-1").split(",")[-1].strip()
                return last or None
        # Behind the proxy without its header: unknown, not the proxy's address
        # (which would count every client as one).
        return None
    client = scope.get("client")
    return str(client[0]) if client else None


def address_key(address: str) -> str:
    # Addresses are personal data: keys hold a digest.
    return hashlib.sha256(address.encode("utf-8")).hexdigest()[:32]


def socket_member(channel_name: str | None) -> str:
    """A socket's entry in its user's set: its open time first (so that members sort oldest first), then where it is."""
    where = channel_name or f"local!{uuid.uuid4().hex}"
    return f"{time.time_ns() // 1000:017d}|{where}"


class Store(Protocol):
    async def refusals(self, address: str, window: int) -> int: ...
    async def add_refusal(self, address: str, window: int, ttl: int) -> None: ...
    async def acquire(self, user: str, member: str, cap: int, policy: str, lease: float) -> tuple[bool, list[str]]: ...
    async def release(self, user: str, member: str) -> None: ...


class LocalStore:
    """Counts in this process; thread-safe (sync consumers acquire from their threads)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        #: user → members, oldest first (dicts keep insertion order)
        self._sockets: dict[str, dict[str, None]] = {}
        #: address → (window, refusals in it)
        self._refusals: dict[str, tuple[int, int]] = {}

    async def refusals(self, address: str, window: int) -> int:
        with self._lock:
            found = self._refusals.get(address)
        return found[1] if found is not None and found[0] == window else 0

    async def add_refusal(self, address: str, window: int, ttl: int) -> None:
        with self._lock:
            found = self._refusals.get(address)
            count = found[1] + 1 if found is not None and found[0] == window else 1
            self._refusals[address] = (window, count)
            if len(self._refusals) > MAX_LOCAL_ADDRESSES:
                self._refusals = {k: v for k, v in self._refusals.items() if v[0] >= window}

    async def acquire(self, user: str, member: str, cap: int, policy: str, lease: float) -> tuple[bool, list[str]]:
        with self._lock:
            members = self._sockets.setdefault(user, {})
            evicted: list[str] = []
            if len(members) >= cap:
                if policy != "close_oldest":
                    return False, []
                evicted = list(members)[: len(members) - cap + 1]
                for old in evicted:
                    del members[old]
            members[member] = None
            return True, evicted

    async def release(self, user: str, member: str) -> None:
        with self._lock:
            members = self._sockets.get(user)
            if members is not None:
                members.pop(member, None)
                if not members:
                    del self._sockets[user]


#: Atomically: drop lapsed leases, then admit the member (evicting the oldest
#: under close_oldest) or refuse it. Members sort oldest first (socket_member).
ACQUIRE = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
local count = redis.call('ZCARD', KEYS[1])
local cap = tonumber(ARGV[4])
local result = {1}
if count >= cap then
  if ARGV[5] ~= 'close_oldest' then return {0} end
  local members = redis.call('ZRANGE', KEYS[1], 0, -1)
  table.sort(members)
  for i = 1, count - cap + 1 do
    redis.call('ZREM', KEYS[1], members[i])
    result[#result + 1] = members[i]
  end
end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[6])
return result
"""


class RedisStore:
    """Counts in Redis, across processes: one client per event loop; leases renewed by one task per loop."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._clients: dict[int, tuple[asyncio.AbstractEventLoop, Any]] = {}
        #: (user key, member) → lease, for the sockets of this process, by loop
        self._held: dict[int, dict[tuple[str, str], float]] = {}
        self._renewers: dict[int, asyncio.Task[None]] = {}

    def _client(self) -> Any:
        loop = asyncio.get_running_loop()
        found = self._clients.get(id(loop))
        if found is None or found[0] is not loop:
            import redis.asyncio

            found = self._clients[id(loop)] = (
                loop,
                redis.asyncio.Redis.from_url(self.url),
            )
        return found[1]

    @staticmethod
    def sockets_key(user: str) -> str:
        return f"{PREFIX}sockets:{user}"

    async def refusals(self, address: str, window: int) -> int:
        value = await self._client().get(f"{PREFIX}refusals:{address}:{window}")
        return int(value or 0)

    async def add_refusal(self, address: str, window: int, ttl: int) -> None:
        key = f"{PREFIX}refusals:{address}:{window}"
        async with self._client().pipeline(transaction=False) as pipe:
            pipe.incr(key)
            pipe.expire(key, ttl)
            await pipe.execute()

    async def acquire(self, user: str, member: str, cap: int, policy: str, lease: float) -> tuple[bool, list[str]]:
        now = time.time()
        result = await self._client().eval(
            ACQUIRE,
            1,
            self.sockets_key(user),
            now,
            now + lease,
            member,
            cap,
            policy,
            int(lease * 2000),
        )
        admitted = int(result[0]) == 1
        if admitted:
            self._hold(user, member, lease)
        return admitted, [m.decode() if isinstance(m, bytes) else str(m) for m in result[1:]]

    async def release(self, user: str, member: str) -> None:
        for held in self._held.values():
            held.pop((user, member), None)
        await self._client().zrem(self.sockets_key(user), member)

    def _hold(self, user: str, member: str, lease: float) -> None:
        loop = asyncio.get_running_loop()
        self._held.setdefault(id(loop), {})[(user, member)] = lease
        renewer = self._renewers.get(id(loop))
        if renewer is None or renewer.done():
            self._renewers[id(loop)] = loop.create_task(self._renew(id(loop), lease))

    async def _renew(self, loop_id: int, lease: float) -> None:
        """Renew the leases of this loop's sockets every third of a lease, for as long as it has some."""
        while True:
            await asyncio.sleep(max(lease / 3, 0.1))
            held = self._held.get(loop_id) or {}
            if not held:
                return
            now = time.time()
            try:
                async with self._client().pipeline(transaction=False) as pipe:
                    for (user, member), seconds in list(held.items()):
                        key = self.sockets_key(user)
                        pipe.zadd(key, {member: now + seconds})
                        pipe.pexpire(key, int(seconds * 2000))
                    await pipe.execute()
            except Exception as exc:  # Redis down: try again next time; leases may lapse meanwhile
                logger.warning(
                    "Could not renew the socket leases in Redis (%s).",
                    type(exc).__name__,
                )


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


def window_of(config: BearerConfig) -> tuple[int, int]:
    """``(window index, seconds)`` of ``REFUSAL_RATE`` now."""
    assert config.refusal_rate is not None
    seconds = config.refusal_rate[1]
    return int(time.time() // seconds), seconds


async def rate_exceeded(address: str | None, config: BearerConfig) -> bool:
    """Whether ``address`` has used up ``REFUSAL_RATE`` in this window (a store that fails: no)."""
    if config.refusal_rate is None or address is None:
        return False
    window, _ = window_of(config)
    try:
        return await store(config).refusals(address_key(address), window) >= config.refusal_rate[0]
    except Exception as exc:
        logger.warning(
            "Could not read the refusal count (%s); letting the handshake through.",
            type(exc).__name__,
        )
        return False


async def count_refusal(address: str | None, config: BearerConfig) -> None:
    if config.refusal_rate is None or address is None:
        return
    window, seconds = window_of(config)
    try:
        await store(config).add_refusal(address_key(address), window, seconds)
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
