"""The in-band refresh protocol: the frames a client and the mixin exchange.

The client sends ``{"type": "bearer.refresh", "token": "<new token>"}`` as a
text frame; the mixin answers ``{"type": "bearer.refreshed", "expires_at":
"<ISO 8601 or null>"}`` or closes (4401 invalid, 4403 another user, 4400 no
token). Only a JSON object whose ``type`` is exactly ``bearer.refresh`` is a
refresh frame: application frames never are.

This module holds the frames' format and :class:`InBandRefresh`, the part of
``BearerConsumerMixin`` that checks the new token and moves the expiry.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from datetime import datetime

from channels_bearer import revoke
from channels_bearer.authentication import authenticate_credential
from channels_bearer.conf import conf
from channels_bearer.consumer_base import END, ConsumerBase
from channels_bearer.exceptions import BearerError, InvalidRequest, Revoked
from channels_bearer.identity import BearerIdentity
from channels_bearer.sources import Credential

__all__ = [
    "REFRESHED_MESSAGE_TYPE",
    "REFRESH_MESSAGE_TYPE",
    "InBandRefresh",
    "parse_refresh_message",
    "refreshed_message",
]

logger = logging.getLogger("channels_bearer")

#: ``{"type": "bearer.refresh", "token": "<new token>"}``: sent by the client.
REFRESH_MESSAGE_TYPE = "bearer.refresh"
#: ``{"type": "bearer.refreshed", "expires_at": "<ISO 8601 or null>"}``: the answer.
REFRESHED_MESSAGE_TYPE = "bearer.refreshed"


def parse_refresh_message(text: str) -> str | None:
    """The token of a refresh message, or ``None`` for an application message.

    A frame is ours only when it is a JSON object whose ``type`` is
    ``bearer.refresh``; a cheap substring test keeps JSON parsing off the path
    of every other frame.
    """
    if REFRESH_MESSAGE_TYPE not in text or not text.lstrip().startswith("{"):
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if not isinstance(data, dict) or data.get("type") != REFRESH_MESSAGE_TYPE:
        return None
    token = data.get("token")
    if not isinstance(token, str) or not token.strip():
        raise InvalidRequest("the refresh message has no token")
    return token.strip()


def refreshed_message(expires_at: datetime | None) -> str:
    """The text frame that answers an accepted refresh."""
    return json.dumps({"type": REFRESHED_MESSAGE_TYPE, "expires_at": expires_at.isoformat() if expires_at else None})


class InBandRefresh(ConsumerBase):
    """The part of ``BearerConsumerMixin`` that takes a new token on an open socket."""

    def _bearer_refresh_enabled(self) -> bool:
        return conf.REFRESH if self.bearer_refresh is None else self.bearer_refresh

    async def _bearer_refresh_failed(
        self, code: int, reason: str, why: str = "refresh_failed", current: BearerIdentity | None = None
    ) -> None:
        """Close the socket after a refused refresh, with the ``bearer_closed`` signal and metric.

        ``current``: the identity the socket had before the refresh (the signal
        names its token), when the scope already holds the new one.
        """
        current = current if current is not None else self.bearer
        logger.info("Refresh refused on %s: %s", self.scope.get("path", "?"), reason)
        self._bearer.closed = True
        await self._bearer.send({"type": "websocket.close", "code": code, "reason": reason})
        # A sync consumer's thread waits for this coroutine, but not for the receivers too.
        report = self._bearer_report_closed(current, why)
        if report is not None:
            await report

    async def _bearer_refresh(self, token: str) -> None:
        current = self.bearer
        send = self._bearer.send

        async def close(code: int, reason: str, why: str = "refresh_failed") -> None:
            await self._bearer_refresh_failed(code, reason, why, current)

        mark = await revoke.watch()
        try:
            identity = await authenticate_credential(Credential("refresh", token), self.scope)
            if current is None or identity.user.pk != current.user.pk:
                raise Revoked("the refreshed token belongs to another user")
        except BearerError as error:
            return await close(error.close_code, error.error)
        identity = dataclasses.replace(identity, source=current.source)
        self.scope["bearer"] = identity
        self.scope["user"] = identity.user
        refusal = self.bearer_refusal()
        if refusal is not None:
            return await close(refusal.close_code, refusal.error)
        self._bearer_unregister()
        if not self._bearer_register(identity, mark):
            # The new token (or the user) was revoked while it was being checked.
            self._bearer.pending = None
            return await close(*END[Revoked][:2], why="revoked")
        self._bearer.mailbox.loop.call_soon_threadsafe(self._bearer_schedule_expiry, identity.expires_at)
        await send({"type": "websocket.send", "text": refreshed_message(identity.expires_at)})
