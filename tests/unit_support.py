"""Shared helpers for the unit-level tests (Channels' WebsocketCommunicator).

The application under test is a small one built here:
``Recorder(BearerAuthMiddlewareStack(URLRouter([...])))``. ``Recorder`` sits
outside everything and keeps every ASGI message the app sends, so a test can
look at what a client would receive (close reasons, accept headers) and not
only at what ``connect()`` returns.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.urls import path

from channels_bearer.middleware import BearerAuthMiddlewareStack

Message = dict[str, Any]

#: What test consumers saw, in order; reset before every test by ``reset_seen``.
SEEN: list[dict[str, Any]] = []


def b64url(token: str) -> str:
    """The ``base64url.bearer.`` entry body for ``token``: base64url, no padding."""
    return base64.urlsafe_b64encode(token.encode("utf-8")).rstrip(b"=").decode("ascii")


def encoded_entry(token: str) -> str:
    return "base64url.bearer." + b64url(token)


def record(consumer: Any, event: str) -> None:
    SEEN.append(
        {
            "event": event,
            "consumer": type(consumer).__name__,
            "user": consumer.scope.get("user"),
            "bearer": consumer.scope.get("bearer"),
            "subprotocols": list(consumer.scope.get("subprotocols") or ()),
            "query_string": consumer.scope.get("query_string"),
        }
    )


class RecordingConsumer(AsyncWebsocketConsumer):
    """No mixin: records that consumer code ran and what the scope held, then accepts."""

    #: What to pass to ``accept()``: ``None`` for no subprotocol.
    answer: str | None = None
    answer_headers: Sequence[tuple[bytes, bytes]] = ()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Channels passes as_asgi()'s keyword arguments here but sets nothing.
        for name, value in kwargs.items():
            setattr(self, name, value)
        SEEN.append({"event": "init", "consumer": type(self).__name__})

    async def connect(self) -> None:
        record(self, "connect")
        await self.accept(self.answer, list(self.answer_headers) or None)


@dataclass
class Recorder:
    """Outermost ASGI wrapper keeping every message the app sends."""

    app: Any
    sent: list[Message] = field(default_factory=list)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        async def recording_send(message: Message) -> None:
            self.sent.append(message)
            await send(message)

        return await self.app(scope, receive, recording_send)

    def of_type(self, kind: str) -> list[Message]:
        return [m for m in self.sent if m["type"] == kind]


def build_app(*routes: tuple[str, Any]) -> Recorder:
    """``Recorder(BearerAuthMiddlewareStack(URLRouter(routes)))``; default route ``ws/`` → RecordingConsumer."""
    if not routes:
        routes = (("ws/", RecordingConsumer.as_asgi()),)
    return Recorder(BearerAuthMiddlewareStack(URLRouter([path(route, app) for route, app in routes])))


def communicator(
    app: Any,
    url: str = "/ws/",
    *,
    subprotocols: Iterable[str] | None = None,
    headers: Iterable[tuple[bytes, bytes]] | None = None,
) -> WebsocketCommunicator:
    return WebsocketCommunicator(
        app, url, headers=list(headers or ()), subprotocols=list(subprotocols) if subprotocols else None
    )


async def refused(comm: WebsocketCommunicator) -> int:
    """Connect, assert the handshake was refused before accept, return the close code.

    ``comm.wait()`` re-raises whatever the application raised: no exception
    may escape the middleware.
    """
    connected, code = await comm.connect()
    assert connected is False, f"accepted with subprotocol {code!r}"
    # As a server would after a close: a refusing consumer then ends at once.
    await comm.send_input({"type": "websocket.disconnect", "code": code})
    await comm.wait()
    assert isinstance(code, int)
    return code


def consumer_ran() -> bool:
    return bool(SEEN)


def assert_secret_absent(secret: str, caplog: pytest.LogCaptureFixture, recorder: Recorder | None = None) -> None:
    """The token text is in no log record (message, args, exception) and no message sent."""
    assert secret
    forms = {secret, b64url(secret)} if secret.strip() else {secret}
    for record_ in caplog.records:
        texts = [record_.getMessage(), str(record_.msg), repr(record_.args)]
        if record_.exc_info:
            texts.append(logging.Formatter().formatException(record_.exc_info))
        for text in texts:
            for form in forms:
                assert form not in text, f"token text in log record {record_.name}: {text!r}"
    if recorder is not None:
        for message in recorder.sent:
            for form in forms:
                assert form not in repr(message), f"token text in sent message {message!r}"


@pytest.fixture(autouse=True)
def reset_seen() -> Any:
    SEEN.clear()
    yield
    SEEN.clear()


@pytest.fixture
def debug_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """Every logger at DEBUG, captured."""
    caplog.set_level(logging.DEBUG)
    return caplog


@pytest.fixture
def user_factory(transactional_db: None) -> Any:
    from django.contrib.auth import get_user_model

    def make(username: str = "alice", **fields: Any) -> Any:
        return get_user_model()._default_manager.create_user(username=username, **fields)

    return make


@pytest.fixture
def alice(user_factory: Any) -> Any:
    return user_factory("alice")


@pytest.fixture
def token(alice: Any) -> str:
    """A DRF token of ``alice``."""
    return drf_token(alice)


def drf_token(user: Any) -> str:
    from rest_framework.authtoken.models import Token

    return str(Token.objects.create(user=user).key)


def jwt_token(user: Any, **claims: Any) -> str:
    from rest_framework_simplejwt.tokens import AccessToken

    token = AccessToken.for_user(user)
    for name, value in claims.items():
        token[name] = value
    return str(token)


#: Both shipped backends, for tests that present either kind of token.
BOTH_BACKENDS = {
    "BACKENDS": ["channels_bearer.backends.DRFTokenBackend", "channels_bearer.backends.SimpleJWTBackend"],
}


@pytest.fixture(autouse=True)
def bearer_defaults() -> Any:
    """Start every test from the package defaults, not the demo project's settings."""
    from django.test import override_settings

    with override_settings(CHANNELS_BEARER={}):
        yield
