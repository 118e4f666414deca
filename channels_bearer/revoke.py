"""Closing open sockets when their token or user is revoked, on every process.

``disconnect_user()`` and ``disconnect_token()`` (and their async forms) close
the matching ``BearerConsumerMixin`` sockets with 4403: those of this process
at once, those of every other process through one message on the channel
layer (:mod:`channels_bearer.broadcast`). They also void one-time tickets
issued to that user or with that token and not used yet.

The signal receivers (:mod:`channels_bearer.receivers`) go through
:func:`announce`: a token row deleted or a user deactivated inside a
transaction is announced at once and again when the transaction commits,
because a handshake in between still reads the row as it was.

Without a channel layer (a warning, ``channels_bearer.W002``) the same calls
reach the sockets of this process only.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from asgiref.sync import async_to_sync, sync_to_async
from django.db import transaction

from channels_bearer import broadcast
from channels_bearer.registry import Revocation, registry, user_key

logger = logging.getLogger("channels_bearer")

__all__ = [
    "adisconnect_token",
    "adisconnect_user",
    "announce",
    "disconnect_token",
    "disconnect_user",
    "publish",
]

REVOKE_MESSAGE_TYPE = "bearer.revoke"

#: Sends started from sync code running on an event loop's thread, kept
#: until done (the loop only keeps weak references to its tasks).
_sending: set[asyncio.Task[bool]] = set()


# -- the public API ------------------------------------------------------------------


def disconnect_user(user: Any, reason: str = "revoked") -> None:
    """Close every socket of ``user`` (a user or a primary key) with 4403, on every process."""
    publish(Revocation(user=user_key(user), reason=reason))


def disconnect_token(token_id: str, reason: str = "revoked") -> None:
    """Close every socket opened with the token ``token_id`` (``scope["bearer"].token_id``) with 4403."""
    publish(Revocation(token_id=token_id, reason=reason))


async def adisconnect_user(user: Any, reason: str = "revoked") -> None:
    """:func:`disconnect_user` for async code."""
    await apublish(Revocation(user=user_key(user), reason=reason))


async def adisconnect_token(token_id: str, reason: str = "revoked") -> None:
    """:func:`disconnect_token` for async code."""
    await apublish(Revocation(token_id=token_id, reason=reason))


# -- applying a revocation -------------------------------------------------------------


def announce(revocation: Revocation, using: str | None = None) -> None:
    """Publish now and, inside a transaction on ``using``, again when it commits.

    The rule for revocations that come from a database change: a handshake
    that reads the row between the change and the commit still sees it as it
    was, and only the second announcement reaches that socket (and the cache
    entry that lookup may have written).
    """
    publish(revocation)
    if transaction.get_connection(using).in_atomic_block:
        transaction.on_commit(lambda: publish(revocation.again()), using=using)


def publish(revocation: Revocation) -> None:
    """Apply ``revocation`` in this process and send it to the others; from sync code."""
    _apply_at_origin(revocation)
    if not _needs_sending(revocation):
        return
    message = revocation.to_message()
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        async_to_sync(broadcast.send)(message)
        return
    # Sync code on an event loop's thread (a signal sent by async code without
    # sync_to_async): waiting here would block that loop.
    task = loop.create_task(broadcast.send(message))
    _sending.add(task)
    task.add_done_callback(_sending.discard)


async def apublish(revocation: Revocation) -> None:
    """:func:`publish` for async code: the cache and ticket work runs off the event loop."""
    registry.first_time(revocation)
    await sync_to_async(_forget_at_origin, thread_sensitive=False)(revocation)
    _close_here(revocation)
    if _needs_sending(revocation):
        await broadcast.send(revocation.to_message())


def heard(message: dict[str, Any]) -> None:
    """Apply a revocation another process sent (or this one: it then applies once)."""
    revocation = Revocation.from_message(message)
    if revocation is None or not registry.first_time(revocation):
        return
    if revocation.invalidate:
        from channels_bearer import cache

        # The process that revoked has dropped the entries of a shared cache;
        # only a cache of this process' own is left to this one.
        if cache.is_per_process():
            cache.forget(revocation.user, revocation.token_id, created=revocation.created)
    _close_here(revocation)
    if revocation.close:
        from channels_bearer import metrics

        if metrics.enabled():
            metrics.revocation_heard(time.time() - revocation.sent_at)


async def watch() -> int:
    """Hear revocations in this process from now on; the mark a handshake is checked against.

    Call before a token is looked up; after, :func:`revoked_since` says whether
    a revocation that names the identity arrived in between.
    """
    await broadcast.ensure_listener(heard)
    return registry.mark()


def revoked_since(mark: int, identity: Any) -> bool:
    """Whether ``identity``'s user or token was revoked in this process after ``mark``."""
    return registry.revoked_since(mark, identity_user_key(identity), identity.token_id)


def identity_user_key(identity: Any) -> str | None:
    pk = getattr(identity.user, "pk", None)
    return None if pk is None else str(pk)


def _apply_at_origin(revocation: Revocation) -> None:
    registry.first_time(revocation)
    _forget_at_origin(revocation)
    _close_here(revocation)


def _forget_at_origin(revocation: Revocation) -> None:
    """What only the process that revokes does: shared caches and tickets (may block on I/O)."""
    from channels_bearer import cache

    if revocation.invalidate:
        cache.forget(revocation.user, revocation.token_id, created=revocation.created)
    if revocation.close:
        _void_tickets(revocation)


def _close_here(revocation: Revocation) -> None:
    if not revocation.close:
        return
    event = {"type": REVOKE_MESSAGE_TYPE, "reason": revocation.reason}
    for socket in registry.record(revocation):
        socket.bearer_post_event(event)


def _needs_sending(revocation: Revocation) -> bool:
    if revocation.close:
        return True
    from channels_bearer import cache

    # Only a closing revocation, or one whose cache entries other processes
    # keep for themselves, is anybody else's business.
    return revocation.invalidate and cache.is_per_process()


def _void_tickets(revocation: Revocation) -> None:
    from channels_bearer.tickets import void_tickets_of_token, void_tickets_of_user

    try:
        if revocation.user is not None:
            void_tickets_of_user(revocation.user)
        if revocation.token_id is not None:
            void_tickets_of_token(revocation.token_id)
    except Exception as exc:  # the cache is down: tickets still expire on their own
        logger.error("Could not void one-time tickets: %s", type(exc).__name__)
