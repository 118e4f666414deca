"""Where the limits count: in this process (:class:`LocalStore`), or in Redis (:class:`RedisStore`).

:mod:`channels_bearer.limits` picks one by ``LIMITS_CACHE`` and applies the
policy; a store only counts. In Redis, a user's sockets are a sorted set
scored by lease expiry, changed by one Lua script per new socket (``ACQUIRE``)
so that two processes admitting the user's last seat at once cannot both win;
each event loop renews the leases of its sockets every ``SOCKET_LEASE / 3``
seconds. Refusals are a sliding window per address: the times of its latest
refusals (at most the rate's count of them), so "20/min" means 20 in any 60
seconds, not 20 per minute of the clock.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import threading
import time
import uuid
from typing import Any, Protocol

__all__ = ["PREFIX", "LocalStore", "RedisStore", "Store"]

logger = logging.getLogger("channels_bearer")

PREFIX = "channels_bearer:"
#: At most this many addresses' refusal counts are kept in one process (LocalStore).
MAX_LOCAL_ADDRESSES = 100_000


class Store(Protocol):
    async def refusals(self, address: str, seconds: int) -> int: ...
    async def add_refusal(self, address: str, seconds: int, keep: int) -> None: ...
    async def acquire(self, user: str, member: str, cap: int, policy: str, lease: float) -> tuple[bool, list[str]]: ...
    async def release(self, user: str, member: str) -> None: ...


class LocalStore:
    """Counts in this process; thread-safe (sync consumers acquire from their threads)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        #: user → members, oldest first (dicts keep insertion order)
        self._sockets: dict[str, dict[str, None]] = {}
        #: address → monotonic times of its latest refusals, oldest first
        self._refusals: dict[str, collections.deque[float]] = {}

    async def refusals(self, address: str, seconds: int) -> int:
        since = time.monotonic() - seconds
        with self._lock:
            times = list(self._refusals.get(address, ()))
        return sum(1 for at in times if at > since)

    async def add_refusal(self, address: str, seconds: int, keep: int) -> None:
        now = time.monotonic()
        with self._lock:
            times = self._refusals.get(address)
            if times is None or times.maxlen != keep:
                times = self._refusals[address] = collections.deque(times or (), maxlen=keep)
            times.append(now)
            if len(self._refusals) > MAX_LOCAL_ADDRESSES:
                self._refusals = {k: v for k, v in self._refusals.items() if v[-1] > now - seconds}

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

            self._forget_closed_loops()
            found = self._clients[id(loop)] = (
                loop,
                redis.asyncio.Redis.from_url(self.url),
            )
        return found[1]

    def _forget_closed_loops(self) -> None:
        # A server process has one loop for its life; code that runs
        # async_to_sync from plain threads, or a script's asyncio.run() calls,
        # make a loop each time. Their entries go once the loop is closed, so
        # the store holds what live loops use (and a new loop that reuses a
        # dead one's id() never finds its client).
        for loop_id, (loop, _) in list(self._clients.items()):
            if loop.is_closed():
                del self._clients[loop_id]
                self._held.pop(loop_id, None)
                self._renewers.pop(loop_id, None)

    @staticmethod
    def sockets_key(user: str) -> str:
        return f"{PREFIX}sockets:{user}"

    @staticmethod
    def refusals_key(address: str) -> str:
        return f"{PREFIX}refusals:{address}"

    async def refusals(self, address: str, seconds: int) -> int:
        # One read per handshake: the refusals of the last `seconds`.
        return int(await self._client().zcount(self.refusals_key(address), f"({time.time() - seconds}", "+inf"))

    async def add_refusal(self, address: str, seconds: int, keep: int) -> None:
        # A sorted set of refusal times: add this one, drop those out of the
        # window and all but the newest `keep` (enough to say "the rate is
        # reached"), and let the key lapse with the window.
        key = self.refusals_key(address)
        now = time.time()
        async with self._client().pipeline(transaction=True) as pipe:
            pipe.zadd(key, {uuid.uuid4().hex: now})
            pipe.zremrangebyscore(key, "-inf", now - seconds)
            pipe.zremrangebyrank(key, 0, -(keep + 1))
            pipe.expire(key, seconds + 1)
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
