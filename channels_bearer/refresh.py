"""The in-band refresh protocol: the frames a client and the mixin exchange.

The client sends ``{"type": "bearer.refresh", "token": "<new token>"}`` as a
text frame; the mixin answers ``{"type": "bearer.refreshed", "expires_at":
"<ISO 8601 or null>"}`` or closes (4401 invalid, 4403 another user, 4400 no
token). Only a JSON object whose ``type`` is exactly ``bearer.refresh`` is a
refresh frame: application frames never are.
"""

from __future__ import annotations

import json
from datetime import datetime

from channels_bearer.exceptions import InvalidRequest

__all__ = ["REFRESHED_MESSAGE_TYPE", "REFRESH_MESSAGE_TYPE", "parse_refresh_message", "refreshed_message"]

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
