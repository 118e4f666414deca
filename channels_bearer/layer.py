"""A channel-layer wrapper that keeps receiving while the layer is down.

Channels' consumers die with the channel layer: when Redis stops, the
consumer's blocking ``receive`` on its channel raises and every open socket
closes with 1011, though nothing about the socket's authentication needs
Redis. ``ResilientLayer``

* retries ``receive`` with backoff instead of raising (one error logged per
  outage, one info line on recovery);
* after an outage, re-joins every group joined through it once the layer
  answers again (a restarted Redis has forgotten them).

``BearerConsumerMixin`` wraps its consumer's layer with ``own_groups=False``:
the application's ``group_add`` failures reach the application as they
would without the mixin. channels-bearer's own listener
(:mod:`channels_bearer.broadcast`) uses ``own_groups=True``: a failed
``group_add`` of its revocation group is logged and retried, since a process
must go on serving while Redis is away. ``send`` and ``group_send`` are
passed through unchanged: callers decide.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

logger = logging.getLogger("channels_bearer")

MAX_BACKOFF = 5.0


class ResilientLayer:
    # One per socket: no dict, and no set until a group is joined.
    __slots__ = ("_layer", "_own_groups", "_groups", "_rejoin_needed", "_failing")

    def __init__(self, layer: Any, *, own_groups: bool = False) -> None:
        self._layer = layer
        self._own_groups = own_groups
        self._groups: set[str] | None = None
        self._rejoin_needed = False
        self._failing = False

    @property
    def wrapped(self) -> Any:
        return self._layer

    def __getattr__(self, name: str) -> Any:
        return getattr(self._layer, name)

    async def receive(self, channel: str) -> dict[str, Any]:
        delay = 0.1
        while True:
            try:
                if self._rejoin_needed:
                    await self._rejoin(channel)
                message: dict[str, Any] = await self._layer.receive(channel)
            except Exception as exc:
                self._report(exc, "receive")
                self._rejoin_needed = bool(self._groups)
                await asyncio.sleep(delay)
                delay = min(delay * 2, MAX_BACKOFF)
                continue
            self._recovered()
            return message

    async def group_add(self, group: str, channel: str) -> None:
        if self._groups is None:
            self._groups = set()
        self._groups.add(group)
        try:
            await self._layer.group_add(group, channel)
        except Exception as exc:
            self._rejoin_needed = True
            if not self._own_groups:
                raise
            self._report(exc, f"group_add {group}")

    async def group_discard(self, group: str, channel: str) -> None:
        if self._groups is not None:
            self._groups.discard(group)
        await self._layer.group_discard(group, channel)

    async def _rejoin(self, channel: str) -> None:
        for group in sorted(self._groups or ()):
            await self._layer.group_add(group, channel)
        self._rejoin_needed = False

    def _report(self, exc: Exception, operation: str) -> None:
        if not self._failing:
            self._failing = True
            logger.error(
                "Channel layer unavailable (%s: %s); sockets stay open, revocation from other "
                "processes cannot reach them until it returns.",
                operation,
                type(exc).__name__,
            )

    def _recovered(self) -> None:
        if self._failing:
            self._failing = False
            logger.info("Channel layer available again; revocation groups re-joined.")
