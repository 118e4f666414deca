"""Single-flight lookups: concurrent handshakes with one token share one lookup.

After a deploy or a network blip every socket reconnects at once, and each
user's sockets present the same token. Handshakes on one event loop that look
the same thing up (a token, a user) while a lookup of it is running wait for
that lookup instead of starting their own.

A handshake joins a running lookup only if no revocation was heard since
that lookup started (:mod:`channels_bearer.registry`): otherwise the lookup may
have read a row the revocation has since deleted, and the handshake starts
its own. Each waiter gets its own copy of the user.
"""

from __future__ import annotations

import asyncio
import copy
import functools
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Any, TypeVar

from channels_bearer.registry import registry

__all__ = ["shared"]

T = TypeVar("T")


@dataclass
class _Flight:
    mark: int
    task: asyncio.Task[Any]


#: ``(id(loop), key)`` → the lookup running for it.
_flights: dict[tuple[int, Hashable], _Flight] = {}


async def shared(key: Hashable, lookup: Callable[[], Awaitable[T]]) -> T:
    """``await lookup()``, or the result of the same lookup already running on this loop."""
    loop = asyncio.get_running_loop()
    slot = (id(loop), key)
    mark = registry.mark()
    flight = _flights.get(slot)
    if flight is None or flight.mark != mark or flight.task.done() or flight.task.get_loop() is not loop:
        # Its own task: a handshake that gives up (the client left) must not
        # cancel the lookup the others wait for.
        flight = _Flight(mark, loop.create_task(_run(lookup)))
        _flights[slot] = flight
        flight.task.add_done_callback(functools.partial(_done, slot, flight))
        leader: T = await asyncio.shield(flight.task)
        return leader
    result = await asyncio.shield(flight.task)
    return _copy(result)  # type: ignore[no-any-return]


async def _run(lookup: Callable[[], Awaitable[T]]) -> T:
    return await lookup()


def _done(slot: tuple[int, Hashable], flight: _Flight, task: asyncio.Task[Any]) -> None:
    if _flights.get(slot) is flight:
        del _flights[slot]
    if not flight.task.cancelled():
        # Retrieved here too: every waiter may have left before it ended.
        flight.task.exception()


def _copy(result: Any) -> Any:
    """A waiter's own copy: the user object is the one thing a consumer may change."""
    if isinstance(result, tuple) and result and hasattr(result[0], "_state"):
        return (copy.copy(result[0]), *result[1:])
    if hasattr(result, "_state"):
        return copy.copy(result)
    return result
