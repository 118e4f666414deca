"""Closing open sockets when their token or user is revoked, on every process.

``BearerConsumerMixin`` joins two channel-layer groups per connection: one for
its user, one for its token. ``disconnect_user()`` and ``disconnect_token()``
send a ``bearer.revoke`` message to the group; each consumer that receives it
closes with 4403. With channels-redis that reaches every server process.

Without a channel layer (a warning, ``channels_bearer.W002``) the same calls
reach the sockets of this process only.

Both also void one-time tickets issued to that user or with that token and
not used yet.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import weakref
from collections.abc import Iterable
from typing import Any, Protocol

from asgiref.sync import async_to_sync, sync_to_async
from channels.layers import get_channel_layer

logger = logging.getLogger("channels_bearer")

__all__ = [
    "adisconnect_token",
    "adisconnect_user",
    "disconnect_token",
    "disconnect_user",
    "token_group",
    "user_group",
]

GROUP_PREFIX = "channels_bearer"
REVOKE_MESSAGE_TYPE = "bearer.revoke"
# Channel-layer group names: ASCII letters, digits, "-_." and under 100 characters.
_GROUP_SAFE = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")


class _Revocable(Protocol):
    def bearer_post_event(self, message: dict[str, Any]) -> None: ...


# Sockets of this process by group, for revocation without a channel layer.
_local_sockets: dict[str, weakref.WeakSet[Any]] = {}


def _group_part(value: Any) -> str:
    text = str(value)
    if _GROUP_SAFE.match(text):
        return text
    return "h" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:40]


def user_group(user: Any) -> str:
    """The group every socket of ``user`` (a user or a primary key) belongs to."""
    pk = getattr(user, "pk", user)
    return f"{GROUP_PREFIX}.user.{_group_part(pk)}"


def token_group(token_id: str) -> str:
    """The group every socket opened with the token ``token_id`` belongs to."""
    return f"{GROUP_PREFIX}.token.{_group_part(token_id)}"


def register_local(groups: Iterable[str], consumer: _Revocable) -> None:
    for group in groups:
        _local_sockets.setdefault(group, weakref.WeakSet()).add(consumer)


def unregister_local(groups: Iterable[str], consumer: _Revocable) -> None:
    for group in groups:
        members = _local_sockets.get(group)
        if members is not None:
            members.discard(consumer)
            if not members:
                _local_sockets.pop(group, None)


async def _revoke_group(group: str, reason: str) -> None:
    message = {"type": REVOKE_MESSAGE_TYPE, "reason": reason}
    layer = get_channel_layer()
    if layer is not None:
        try:
            await layer.group_send(group, message)
        except Exception as exc:
            # Redis down: say so loudly, but do not break the save/delete that
            # triggered us; the sockets of this process are still closed below.
            logger.error(
                "Could not send %s to group %s (%s): only this process' sockets are closed.",
                REVOKE_MESSAGE_TYPE,
                group,
                type(exc).__name__,
            )
        else:
            return
    for consumer in list(_local_sockets.get(group, ())):
        consumer.bearer_post_event(message)


async def _void(function: Any, value: Any) -> None:
    try:
        await sync_to_async(function, thread_sensitive=False)(value)
    except Exception as exc:  # the cache is down: tickets still expire on their own
        logger.error("Could not void one-time tickets: %s", type(exc).__name__)


async def adisconnect_user(user: Any, reason: str = "revoked") -> None:
    """Close every socket of ``user`` (a user or a primary key) with 4403, on every process."""
    from channels_bearer.tickets import void_tickets_of_user

    await _void(void_tickets_of_user, getattr(user, "pk", user))
    await _revoke_group(user_group(user), reason)


async def adisconnect_token(token_id: str, reason: str = "revoked") -> None:
    """Close every socket opened with the token ``token_id`` (``scope["bearer"].token_id``) with 4403."""
    from channels_bearer.tickets import void_tickets_of_token

    await _void(void_tickets_of_token, token_id)
    await _revoke_group(token_group(token_id), reason)


def disconnect_user(user: Any, reason: str = "revoked") -> None:
    """Sync form of :func:`adisconnect_user` (for views, signals, the admin)."""
    _run(adisconnect_user, user, reason)


def disconnect_token(token_id: str, reason: str = "revoked") -> None:
    """Sync form of :func:`adisconnect_token`."""
    _run(adisconnect_token, token_id, reason)


def _run(function: Any, *args: Any) -> None:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        async_to_sync(function)(*args)
        return
    # Sync code running on an event loop's thread (a signal fired by the async
    # ORM without sync_to_async): blocking here would deadlock the loop.
    asyncio.ensure_future(function(*args))
