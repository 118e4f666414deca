"""Revocations between processes, over the channel layer.

Every event loop that serves WebSocket handshakes (one per server process)
runs one listener: a channel of its own in the group
``channels_bearer.revocations``. A revocation is sent to that group once,
whatever the number of sockets it closes, and each listener applies it to its
own process (:func:`channels_bearer.revoke.heard`): it closes the sockets
registered there and drops what that process' own lookup cache holds.

channels-redis forgets a group membership ``group_expiry`` seconds after it
was made (a day by default), and a restarted Redis forgets them all: the
listener renews its membership at a third of ``group_expiry`` (at least once
a minute) and after every outage, so a process hears revocations for as long
as it runs, however long its sockets live.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from channels.layers import get_channel_layer

from channels_bearer.layer import ResilientLayer

logger = logging.getLogger("channels_bearer")

__all__ = ["GROUP", "ensure_listener", "send"]

#: The group every listener joins. Channel-layer group names: ASCII letters,
#: digits, "-_." and under 100 characters.
GROUP = "channels_bearer.revocations"
#: How long a handshake waits for a new listener's first ``group_add``.
READY_WAIT = 2.0
#: The longest time between two renewals of the listener's membership.
RENEW_AT_LEAST_EVERY = 60.0

Handler = Callable[[dict[str, Any]], None]

#: ``id(loop)`` → that loop's listener.
_listeners: dict[int, Listener] = {}


class Listener:
    """One channel in :data:`GROUP`, read by a task on one event loop."""

    def __init__(self, layer: Any, loop: asyncio.AbstractEventLoop, handler: Handler) -> None:
        self.layer = layer
        self.loop = loop
        self.handler = handler
        self.ready = asyncio.Event()
        self._resilient = ResilientLayer(layer, own_groups=True)
        self.channel: str | None = None
        self.task = loop.create_task(self._run(), name="channels-bearer-revocations")

    @property
    def alive(self) -> bool:
        return not self.task.done() and not self.loop.is_closed()

    def stop(self) -> None:
        if not self.task.done():
            self.task.cancel()

    async def _run(self) -> None:
        renewing: asyncio.Task[None] | None = None
        try:
            self.channel = await self._new_channel()
            await self._resilient.group_add(GROUP, self.channel)
            self.ready.set()
            interval = renewal_interval(self.layer)
            if interval is not None:
                renewing = asyncio.create_task(self._renew(self.channel, interval))
            while True:
                message = await self._resilient.receive(self.channel)
                try:
                    self.handler(message)
                except Exception:
                    logger.exception("Could not apply a revocation heard from another process.")
        finally:
            self.ready.set()
            if renewing is not None:
                renewing.cancel()

    async def _new_channel(self) -> str:
        # RedisPubSubChannelLayer subscribes here, so it needs Redis.
        delay = 0.1
        while True:
            try:
                channel: str = await self.layer.new_channel()
                return channel
            except Exception as exc:
                logger.error(
                    "Channel layer unavailable (new_channel: %s); revocations from other processes "
                    "cannot reach this one until it returns.",
                    type(exc).__name__,
                )
                # Handshakes go on meanwhile; they do not wait for us.
                self.ready.set()
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def _renew(self, channel: str, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            await self._resilient.group_add(GROUP, channel)


def renewal_interval(layer: Any) -> float | None:
    """Seconds between renewals of the listener's membership, ``None`` when it never lapses.

    ``RedisChannelLayer`` and ``InMemoryChannelLayer`` forget memberships after
    ``group_expiry``; ``RedisPubSubChannelLayer`` has none (its groups are
    subscriptions).
    """
    try:
        expiry = getattr(layer, "group_expiry", None)
    except Exception:
        return None
    if isinstance(expiry, bool) or not isinstance(expiry, (int, float)):
        return None
    return max(0.5, min(expiry / 3, RENEW_AT_LEAST_EVERY))


async def ensure_listener(handler: Handler) -> None:
    """Make sure this event loop hears revocations from other processes.

    Cheap after the first call on a loop; the first waits (at most
    ``READY_WAIT``) for the listener to join its group, so that a handshake
    that starts now cannot miss a revocation sent after it started.
    """
    layer = get_channel_layer()
    if layer is None:
        return
    loop = asyncio.get_running_loop()
    listener = _listeners.get(id(loop))
    if listener is None or listener.loop is not loop or listener.layer is not layer or not listener.alive:
        if listener is not None:
            listener.stop()
        for key in [key for key, other in _listeners.items() if other.loop.is_closed()]:
            del _listeners[key]
        listener = _listeners[id(loop)] = Listener(layer, loop, handler)
    if not listener.ready.is_set():
        try:
            await asyncio.wait_for(asyncio.shield(listener.ready.wait()), READY_WAIT)
        except asyncio.TimeoutError:
            pass


async def send(message: dict[str, Any]) -> bool:
    """Send ``message`` to every process' listener; ``False`` if it could not be sent."""
    layer = get_channel_layer()
    if layer is None:
        return False
    try:
        await layer.group_send(GROUP, message)
    except Exception as exc:
        # Redis down: say so loudly, but never break the save or delete that
        # triggered the revocation; this process has applied it already.
        logger.error(
            "Could not send bearer.revoke to the other processes (%s): only this process' sockets are closed.",
            type(exc).__name__,
        )
        return False
    return True
