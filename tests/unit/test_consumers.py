"""``BearerConsumerMixin`` on each of Channels' four websocket consumers."""

from __future__ import annotations

from typing import Any

import pytest
from asgiref.testing import ApplicationCommunicator
from channels.db import database_sync_to_async
from channels.generic.websocket import (
    AsyncJsonWebsocketConsumer,
    AsyncWebsocketConsumer,
    JsonWebsocketConsumer,
    WebsocketConsumer,
)
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings
from django.urls import path

from channels_bearer.consumers import BearerConsumerMixin
from tests.support.tokens import BOTH_BACKENDS, jwt_token
from tests.support.apps import (
    websocket_scope,
    SEEN,
    assert_secret_absent,
    build_app,
    communicator,
    consumer_ran,
    record,
    refused,
)

pytestmark = pytest.mark.django_db(transaction=True)


class SyncBearer(BearerConsumerMixin, WebsocketConsumer):
    def connect(self) -> None:
        record(self, "connect")
        self.accept()
        self.send(text_data=self.scope["user"].get_username() or "anonymous")


class AsyncBearer(BearerConsumerMixin, AsyncWebsocketConsumer):
    async def connect(self) -> None:
        record(self, "connect")
        await self.accept()
        await self.send(text_data=self.scope["user"].get_username() or "anonymous")


class SyncJsonBearer(BearerConsumerMixin, JsonWebsocketConsumer):
    def connect(self) -> None:
        record(self, "connect")
        self.accept()
        self.send_json(self.scope["user"].get_username() or "anonymous")


class AsyncJsonBearer(BearerConsumerMixin, AsyncJsonWebsocketConsumer):
    async def connect(self) -> None:
        record(self, "connect")
        await self.accept()
        await self.send_json(self.scope["user"].get_username() or "anonymous")


CONSUMERS = [SyncBearer, AsyncBearer, SyncJsonBearer, AsyncJsonBearer]
JSON = (SyncJsonBearer, AsyncJsonBearer)


def variant(base: type, **attrs: Any) -> type:
    """A subclass with class attributes set (``bearer_required``, ``app_subprotocols``...)."""
    return type(f"{base.__name__}Variant", (base,), attrs)


def app_for(consumer: type) -> Any:
    return build_app(("ws/", consumer.as_asgi()))


async def greeting(comm: WebsocketCommunicator, consumer: type) -> Any:
    if consumer in JSON:
        return await comm.receive_json_from()
    return await comm.receive_from()


pytestmark = [pytestmark, pytest.mark.parametrize("consumer", CONSUMERS, ids=lambda c: c.__name__)]


async def test_authenticated_accept_answers_marker(consumer: type, token: str, debug_logs: Any) -> None:
    app = app_for(consumer)
    comm = communicator(app, subprotocols=["access_token", token])
    assert await comm.connect() == (True, "access_token")
    assert await greeting(comm, consumer) == "alice"
    await comm.disconnect()
    assert SEEN[-1]["bearer"].source == "subprotocol"
    assert_secret_absent(token, debug_logs, app)


async def test_header_token_accept_without_subprotocol(consumer: type, token: str) -> None:
    comm = communicator(app_for(consumer), headers=[(b"authorization", f"Bearer {token}".encode())])
    assert await comm.connect() == (True, None)
    assert await greeting(comm, consumer) == "alice"
    await comm.disconnect()


@pytest.mark.parametrize(
    ("offered", "answer"),
    [
        (["chat.v1", "chat.v2"], "chat.v1"),  # the client's order of preference
        (["chat.v2"], "chat.v2"),
        (["other"], "access_token"),  # declared but not offered: the marker
        ([], "access_token"),
    ],
)
async def test_app_subprotocols(consumer: type, token: str, offered: list[str], answer: str) -> None:
    declared = variant(consumer, app_subprotocols=["chat.v2", "chat.v1"])
    comm = communicator(app_for(declared), subprotocols=[*offered, "access_token", token])
    assert await comm.connect() == (True, answer)
    await comm.disconnect()
    assert SEEN[-1]["subprotocols"] == offered


async def test_bearer_required_refuses_no_token(consumer: type, debug_logs: Any) -> None:
    app = app_for(consumer)
    assert await refused(communicator(app, subprotocols=["chat"])) == 4401
    assert not any(entry["event"] == "connect" for entry in SEEN)
    assert app.of_type("websocket.accept") == []
    assert [m["reason"] for m in app.of_type("websocket.close")] == ["token_required"]


async def test_bearer_not_required_lets_anonymous_in(consumer: type) -> None:
    comm = communicator(app_for(variant(consumer, bearer_required=False)))
    assert await comm.connect() == (True, None)
    assert await greeting(comm, consumer) == "anonymous"
    await comm.disconnect()
    assert SEEN[-1]["bearer"] is None


async def test_close_mode_invalid_token(consumer: type, debug_logs: Any) -> None:
    bad = "f" * 40
    app = app_for(consumer)
    with override_settings(CHANNELS_BEARER={"REFUSAL": "close"}):
        comm = communicator(app, subprotocols=["access_token", bad])
        assert await comm.connect() == (True, "access_token")
        assert await comm.receive_output() == {"type": "websocket.close", "code": 4401, "reason": "invalid_token"}
        await comm.wait()
    assert not consumer_ran()
    assert_secret_absent(bad, debug_logs, app)


async def test_close_mode_no_token(consumer: type) -> None:
    app = app_for(variant(consumer, app_subprotocols=["chat"]))
    with override_settings(CHANNELS_BEARER={"REFUSAL": "close"}):
        comm = communicator(app, subprotocols=["chat"])
        # The accept must name an offered subprotocol or the browser fails it.
        assert await comm.connect() == (True, "chat")
        closed = await comm.receive_output()
        await comm.disconnect()
    assert closed["code"] == 4401
    assert not any(entry["event"] == "connect" for entry in SEEN)


async def test_mixin_without_middleware(consumer: type) -> None:
    comm = WebsocketCommunicator(URLRouter([path("ws/", consumer.as_asgi())]), "/ws/")
    await comm.send_input({"type": "websocket.connect"})
    with pytest.raises(ImproperlyConfigured, match="BearerAuthMiddlewareStack"):
        await comm.wait()


@pytest.mark.parametrize("mode", ["handshake", "close"])
async def test_bearer_scopes(consumer: type, alice: Any, mode: str, debug_logs: Any) -> None:
    token = await database_sync_to_async(jwt_token)(alice, scope="chat:read")
    app = app_for(variant(consumer, bearer_scopes=["chat:read", "chat:write"]))
    config = {**BOTH_BACKENDS, "REFUSAL": mode}
    with override_settings(CHANNELS_BEARER=config):
        comm = communicator(app, subprotocols=["access_token", token])
        if mode == "handshake":
            assert await refused(comm) == 4403
        else:
            assert await comm.connect() == (True, "access_token")
            assert await comm.receive_output() == {
                "type": "websocket.close",
                "code": 4403,
                "reason": "insufficient_scope",
            }
            await comm.disconnect()
    assert not any(entry["event"] == "connect" for entry in SEEN)
    assert_secret_absent(token, debug_logs, app)

    SEEN.clear()
    enough = variant(consumer, bearer_scopes=["chat:read"])
    with override_settings(CHANNELS_BEARER=config):
        comm = communicator(app_for(enough), subprotocols=["access_token", token])
        assert await comm.connect() == (True, "access_token")
        await comm.disconnect()


async def test_no_token_denial_has_bare_challenge(consumer: type) -> None:
    app = app_for(consumer)
    comm = ApplicationCommunicator(app, websocket_scope(extensions={"websocket.http.response": {}}))
    await comm.send_input({"type": "websocket.connect"})
    start = await comm.receive_output()
    await comm.receive_output()
    await comm.send_input({"type": "websocket.disconnect", "code": 1006})
    await comm.wait()
    assert start is app.sent[0]
    assert start["type"] == "websocket.http.response.start"
    assert start["status"] == 401
    assert (b"www-authenticate", b"Bearer") in start["headers"]
