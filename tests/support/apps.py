"""Shared helpers for the unit-level tests (Channels' WebsocketCommunicator).

The application under test is a small one built here:
``Recorder(BearerAuthMiddlewareStack(URLRouter([...])))``. ``Recorder`` sits
outside everything and keeps every ASGI message the app sends, so a test can
look at what a client would receive (close reasons, accept headers) and not
only at what ``connect()`` returns.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.urls import path

from channels_bearer.consumers import BearerConsumerMixin
from channels_bearer.middleware import BearerAuthMiddlewareStack
from tests.support.encoding import b64url

Message = dict[str, Any]

#: What test consumers saw, in order; reset before every test (tests/unit/conftest.py).
SEEN: list[dict[str, Any]] = []


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


class IdentityConsumer(BearerConsumerMixin, AsyncWebsocketConsumer):
    """Accepts, then sends ``"<username> <token_id> <expires_at>"``: what the backend made of the token."""

    async def connect(self) -> None:
        await self.accept()
        assert self.bearer is not None
        await self.send(text_data=f"{self.scope['user'].get_username()} {self.bearer.token_id} {self.bearer.expires_at}")


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



async def subprotocol_refusal(app: Any, token: str) -> int:
    """The close code of a handshake that offers ``["access_token", token]`` and must be refused."""
    return await refused(communicator(app, subprotocols=["access_token", token]))

async def closed_with(comm: WebsocketCommunicator, timeout: float = 3) -> tuple[int, str]:
    """The next message the application sent, which must be a close: its ``(code, reason)``."""
    message = await comm.receive_output(timeout)
    assert message["type"] == "websocket.close", message
    return message["code"], message.get("reason", "")


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


def websocket_scope(**extra: Any) -> dict[str, Any]:
    """A bare ASGI websocket scope for ``/ws/``, as a server hands it over (with ``extra``)."""
    return {"type": "websocket", "path": "/ws/", "query_string": b"", "headers": [], "subprotocols": [], **extra}
