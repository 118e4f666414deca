"""Test helpers for projects that use channels-bearer.

::

    from channels_bearer.testing import BearerCommunicator, assert_refused, make_token

    token = make_token(alice)                      # in a sync test or setUpTestData
    communicator = BearerCommunicator(application, "/ws/chat/", token=token)
    connected, subprotocol = await communicator.connect()
    assert connected and subprotocol == "access_token"

``BearerCommunicator`` sends the token the way a real client does (``via``):

* ``"subprotocol"``: ``Sec-WebSocket-Protocol: access_token, <token>``, what a
  browser sends for ``new WebSocket(url, ["access_token", token])``; a token
  with characters a browser refuses in a subprotocol goes as
  ``base64url.bearer.<base64url>``, like ``bearer-websocket.js`` does;
  application subprotocols (``subprotocols=``) are offered after it;
* ``"header"``: ``Authorization: Bearer <token>`` (the first ``HEADER_KEYWORDS``);
* ``"query"``: ``?access_token=<token>`` appended to the path's query string;
* ``"ticket"``: exchanges ``token`` (a DRF token or a JWT) for a one-time
  ticket as a client would, then connects with ``?ticket=<ticket>``; a ticket
  you already hold (``make_ticket(user)``, ``TicketView``) goes in ``ticket=``.

Where the database may not be touched (async test code), build it with
``BearerCommunicator.for_user(application, path, user, kind=...)``: the token
(or ticket) is minted when ``connect()`` is awaited.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from channels_bearer.sources import subprotocol_entry
    from channels_bearer.testing.assertions import REFUSALS, Refusal, assert_refused
    from channels_bearer.testing.communicator import DEFAULT_ORIGIN, BearerCommunicator, DenialResponse
    from channels_bearer.testing.testcases import BearerTestMixin, default_application
    from channels_bearer.testing.tokens import TestKey, amake_ticket, amake_token, make_test_key, make_ticket, make_token

#: Where each name lives: one module per kind of helper, as in channels.testing.
#: They are imported on first use because Channels' test tools (behind the
#: communicator) import daphne, which a project on uvicorn may not have, and
#: ``manage.py bearer_token`` needs only the tokens.
_HOMES = {
    "DEFAULT_ORIGIN": "communicator",
    "BearerCommunicator": "communicator",
    "DenialResponse": "communicator",
    "REFUSALS": "assertions",
    "Refusal": "assertions",
    "assert_refused": "assertions",
    "BearerTestMixin": "testcases",
    "default_application": "testcases",
    "TestKey": "tokens",
    "amake_ticket": "tokens",
    "amake_token": "tokens",
    "make_test_key": "tokens",
    "make_ticket": "tokens",
    "make_token": "tokens",
}

__all__ = [
    "DEFAULT_ORIGIN",
    "REFUSALS",
    "BearerCommunicator",
    "BearerTestMixin",
    "DenialResponse",
    "Refusal",
    "TestKey",
    "amake_ticket",
    "amake_token",
    "assert_refused",
    "default_application",
    "make_test_key",
    "make_ticket",
    "make_token",
    "subprotocol_entry",
]


def __getattr__(name: str) -> Any:
    if name == "subprotocol_entry":
        from channels_bearer.sources import subprotocol_entry

        return subprotocol_entry
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{home}"), name)
    globals()[name] = value
    return value
