"""Origin checks (issue 12): clients that send no ``Origin`` get in with a token.

``channels_bearer.security``'s validators in one process, through Channels'
communicator. A foreign ``Origin`` is still refused, as is a handshake with
neither an ``Origin`` nor a credential, and every refusal is logged with its
reason. The same under real daphne and uvicorn:
``tests/integration/test_origin_servers.py``.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
from channels.routing import URLRouter
from channels.security.websocket import AllowedHostsOriginValidator as ChannelsAllowedHostsOriginValidator
from channels.testing import WebsocketCommunicator
from django.test import override_settings
from django.urls import path

from channels_bearer.middleware import BearerAuthMiddlewareStack
from channels_bearer.security import AllowedHostsOriginValidator, OriginValidator
from channels_bearer.tickets import issue_ticket
from tests.support.handshake import MARKER
from tests.support.apps import assert_secret_absent, RecordingConsumer

ALL_SOURCES = {"SOURCES": ["subprotocol", "header", "query", "ticket"]}


def stack(validator: Any = AllowedHostsOriginValidator) -> Any:
    return validator(BearerAuthMiddlewareStack(URLRouter([path("ws/", RecordingConsumer.as_asgi())])))


def handshake(app: Any, *, origin: bytes | None = None, token: str | None = None, via: str = "subprotocol",
              extra_headers: list[tuple[bytes, bytes]] | None = None) -> WebsocketCommunicator:  # fmt: skip
    headers = [(b"host", b"testserver"), *(extra_headers or [])]
    if origin is not None:
        headers.append((b"origin", origin))
    subprotocols = None
    url = "/ws/"
    if token is not None and via == "subprotocol":
        subprotocols = [MARKER, token]
    elif token is not None and via == "header":
        headers.append((b"authorization", b"Bearer " + token.encode()))
    elif token is not None:
        url = f"/ws/?{'access_token' if via == 'query' else 'ticket'}={token}"
    return WebsocketCommunicator(app, url, headers=headers, subprotocols=subprotocols)


def origin_refusals(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "channels_bearer" and r.levelno == logging.WARNING and "refused" in r.getMessage()
    ]


# -- in one process -------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("via", ["subprotocol", "header", "query", "ticket"])
async def test_no_origin_with_a_credential_gets_in(via: str, alice: Any, token: str, debug_logs: Any) -> None:
    credential = token
    if via == "ticket":
        from asgiref.sync import sync_to_async

        credential = (await sync_to_async(issue_ticket)(alice))[0]
    with override_settings(CHANNELS_BEARER=ALL_SOURCES, SILENCED_SYSTEM_CHECKS=["channels_bearer.W001"]):
        communicator = handshake(stack(), token=credential, via=via)
        connected, _ = await communicator.connect()
        await communicator.disconnect()
    assert connected
    assert origin_refusals(debug_logs) == []
    assert_secret_absent(credential, debug_logs)


@pytest.mark.django_db(transaction=True)
async def test_no_origin_and_no_credential_is_refused_and_logged(debug_logs: Any) -> None:
    connected, _ = await handshake(stack()).connect()
    assert not connected
    assert origin_refusals(debug_logs) == ["WebSocket handshake refused for /ws/: no Origin header and no bearer credential"]


@pytest.mark.django_db(transaction=True)
async def test_a_foreign_origin_is_refused_even_with_a_valid_token(token: str, debug_logs: Any) -> None:
    connected, _ = await handshake(stack(), origin=b"https://evil.example", token=token).connect()
    assert not connected
    assert origin_refusals(debug_logs) == ["WebSocket handshake refused for /ws/: Origin 'https://evil.example' is not allowed"]
    assert_secret_absent(token, debug_logs)


@pytest.mark.django_db(transaction=True)
async def test_an_allowed_origin_gets_in(token: str) -> None:
    communicator = handshake(stack(), origin=b"http://testserver", token=token)
    connected, subprotocol = await communicator.connect()
    await communicator.disconnect()
    assert (connected, subprotocol) == (True, "access_token")


@pytest.mark.django_db(transaction=True)
async def test_two_origin_headers_are_refused(token: str, debug_logs: Any) -> None:
    extra = [(b"origin", b"https://evil.example")]
    connected, _ = await handshake(stack(), origin=b"http://testserver", token=token, extra_headers=extra).connect()
    assert not connected
    assert origin_refusals(debug_logs) == ["WebSocket handshake refused for /ws/: more than one Origin header"]


@pytest.mark.django_db(transaction=True)
async def test_a_malformed_credential_without_origin_reaches_the_middleware_refusal(debug_logs: Any) -> None:
    # Not the validator's to judge: the middleware refuses it as invalid_request.
    app = stack()
    communicator = WebsocketCommunicator(app, "/ws/", headers=[(b"host", b"testserver")], subprotocols=[MARKER])
    assert await communicator.connect() == (False, 4400)
    assert origin_refusals(debug_logs) == []


@pytest.mark.django_db(transaction=True)
async def test_a_long_origin_is_logged_shortened(debug_logs: Any) -> None:
    origin = b"https://" + b"a" * 1000 + b".example"
    await handshake(stack(), origin=origin).connect()
    (line,) = origin_refusals(debug_logs)
    assert len(line) < 300 and line.endswith("…' is not allowed")


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("origin", "allowed"),
    [
        (b"https://chat.example.com", True),
        (b"https://example.com", True),
        (b"http://chat.example.com", False),
        (b"https://example.com.evil.test", False),
        (b"null", False),
    ],
)
async def test_origin_patterns_are_channels_own(origin: bytes, allowed: bool, token: str) -> None:
    app = stack(lambda inner: OriginValidator(inner, ["https://.example.com"]))
    communicator = handshake(app, origin=origin, token=token)
    connected, _ = await communicator.connect()
    if connected:
        await communicator.disconnect()
    assert connected is allowed


def test_http_scopes_are_refused_like_channels() -> None:
    import asyncio

    async def call() -> None:
        await stack()({"type": "http"}, None, None)

    with pytest.raises(ValueError, match="non-WebSocket"):
        asyncio.run(call())


@pytest.mark.django_db(transaction=True)
async def test_channels_own_validator_still_works_in_front_of_the_middleware(token: str) -> None:
    app = stack(ChannelsAllowedHostsOriginValidator)
    communicator = handshake(app, origin=b"http://testserver", token=token)
    connected, subprotocol = await communicator.connect()
    await communicator.disconnect()
    assert (connected, subprotocol) == (True, "access_token")
    # ...and, as before, refuses every client that sends no Origin.
    connected, _ = await handshake(app, token=token).connect()
    assert not connected
