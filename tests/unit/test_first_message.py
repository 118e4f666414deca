"""First-message authentication (the ``"message"`` source) on Channels' four websocket consumers.

The handshake carries no token; the socket is accepted and its first frame
must be ``{"type": "bearer.authenticate", "token": "..."}`` within
``AUTH_TIMEOUT``. Only then does the consumer's ``connect()`` run, once, with
the user in the scope; the frame never reaches the application.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.generic.websocket import (
    AsyncJsonWebsocketConsumer,
    AsyncWebsocketConsumer,
    JsonWebsocketConsumer,
    WebsocketConsumer,
)
from channels.testing import WebsocketCommunicator
from django.test import override_settings
from rest_framework_simplejwt.tokens import AccessToken

from channels_bearer.consumers import BearerConsumerMixin
from channels_bearer.revoke import adisconnect_user
from channels_bearer.testing import BearerCommunicator
from tests.support.apps import SEEN, Recorder, assert_secret_absent, build_app, closed_with, communicator, record
from tests.support.tokens import BOTH_BACKENDS, jwt_token, short_jwt

pytestmark = pytest.mark.django_db(transaction=True)

# 1.5 s: time enough for a loaded machine to deliver a frame sent at once, short enough for the timeout cases.
MESSAGE_AUTH = {**BOTH_BACKENDS, "SOURCES": ["subprotocol", "header", "message"], "AUTH_TIMEOUT": 1.5}


def frame(token: str) -> str:
    return json.dumps({"type": "bearer.authenticate", "token": token})


def greeting_text(consumer: Any) -> str:
    user = consumer.scope["user"]
    return json.dumps({"user": user.get_username() or "anonymous", "source": consumer.bearer.source if consumer.bearer else None})


class SyncMessage(BearerConsumerMixin, WebsocketConsumer):
    def connect(self) -> None:
        record(self, "connect")
        self.accept()
        self.send(text_data=greeting_text(self))

    def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        record(self, "receive")
        self.send(text_data=f"echo:{text_data}")

    def disconnect(self, code: int) -> None:
        record(self, "disconnect")


class AsyncMessage(BearerConsumerMixin, AsyncWebsocketConsumer):
    async def connect(self) -> None:
        record(self, "connect")
        await self.accept()
        await self.send(text_data=greeting_text(self))

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        record(self, "receive")
        await self.send(text_data=f"echo:{text_data}")

    async def disconnect(self, code: int) -> None:
        record(self, "disconnect")


class SyncJsonMessage(BearerConsumerMixin, JsonWebsocketConsumer):
    def connect(self) -> None:
        record(self, "connect")
        self.accept()
        self.send(text_data=greeting_text(self))

    def receive_json(self, content: Any, **kwargs: Any) -> None:
        record(self, "receive")
        self.send(text_data=f"echo:{json.dumps(content)}")

    def disconnect(self, code: int) -> None:
        record(self, "disconnect")


class AsyncJsonMessage(BearerConsumerMixin, AsyncJsonWebsocketConsumer):
    async def connect(self) -> None:
        record(self, "connect")
        await self.accept()
        await self.send(text_data=greeting_text(self))

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        record(self, "receive")
        await self.send(text_data=f"echo:{json.dumps(content)}")

    async def disconnect(self, code: int) -> None:
        record(self, "disconnect")


CONSUMERS = [SyncMessage, AsyncMessage, SyncJsonMessage, AsyncJsonMessage]

pytestmark = [pytestmark, pytest.mark.parametrize("consumer", CONSUMERS, ids=lambda c: c.__name__)]


@pytest.fixture(autouse=True)
def message_auth() -> Any:
    with override_settings(CHANNELS_BEARER=MESSAGE_AUTH):
        yield


def app_for(consumer: type) -> Recorder:
    return build_app(("ws/", consumer.as_asgi()))


def events(name: str) -> list[dict[str, Any]]:
    return [entry for entry in SEEN if entry["event"] == name]


async def accepted_without_token(app: Recorder, **kwargs: Any) -> WebsocketCommunicator:
    comm = communicator(app, **kwargs)
    connected, _ = await comm.connect()
    assert connected, "a handshake with no token is accepted, to wait for the first frame"
    return comm



async def test_the_first_frame_authenticates_and_connect_runs_once_after_it(
    consumer: type, token: str, debug_logs: Any
) -> None:
    app = app_for(consumer)
    comm = await accepted_without_token(app)
    assert events("connect") == [], "connect() waits for the token"
    await comm.send_to(text_data=frame(token))
    assert json.loads(await comm.receive_from()) == {"user": "alice", "source": "message"}
    # The authenticate frame never reached the application; the next frames do.
    await comm.send_to(text_data='{"hello": 1}')
    assert (await comm.receive_from()).startswith("echo:")
    assert len(events("connect")) == 1
    assert len(events("receive")) == 1
    assert len(app.of_type("websocket.accept")) == 1, "the consumer's accept() is not sent a second time"
    bearer = events("connect")[0]["bearer"]
    assert bearer.source == "message" and bearer.backend.endswith("DRFTokenBackend")
    await comm.disconnect()
    assert_secret_absent(token, debug_logs, app)


async def test_no_frame_in_time_closes_4408(consumer: type) -> None:
    app = app_for(consumer)
    comm = await accepted_without_token(app)
    assert await closed_with(comm, timeout=6) == (4408, "authentication_timeout")
    assert events("connect") == []
    await comm.wait()


@pytest.mark.parametrize(
    "first",
    [
        {"text_data": "hello"},
        {"text_data": '{"type": "chat.message", "token": "x"}'},
        {"text_data": '{"type": "bearer.authenticate"}'},
        {"text_data": '{"type": "bearer.authenticate", "token": 3}'},
        {"text_data": "[1, 2]"},
        {"bytes_data": b'{"type": "bearer.authenticate", "token": "x"}'},
    ],
    ids=["text", "other-type", "no-token", "token-not-str", "json-array", "binary"],
)
async def test_anything_else_first_closes_4408(consumer: type, first: dict[str, Any]) -> None:
    app = app_for(consumer)
    comm = await accepted_without_token(app)
    await comm.send_to(**first)
    assert await closed_with(comm) == (4408, "authentication_expected")
    assert events("connect") == [] and events("receive") == []
    await comm.wait()


async def test_an_invalid_token_closes_4401_without_echoing_it(consumer: type, debug_logs: Any) -> None:
    bad = "f" * 40
    app = app_for(consumer)
    comm = await accepted_without_token(app)
    await comm.send_to(text_data=frame(bad))
    assert await closed_with(comm) == (4401, "invalid_token")
    assert events("connect") == []
    await comm.wait()
    assert_secret_absent(bad, debug_logs, app)


async def test_an_expired_jwt_closes_4401(consumer: type, alice: Any) -> None:
    expired = AccessToken.for_user(alice)
    expired.set_exp(lifetime=timedelta(seconds=-60))
    comm = await accepted_without_token(app_for(consumer))
    await comm.send_to(text_data=frame(str(expired)))
    assert (await closed_with(comm))[0] == 4401
    await comm.wait()


async def test_a_late_frame_is_refused(consumer: type, token: str) -> None:
    comm = await accepted_without_token(app_for(consumer))
    assert (await closed_with(comm, timeout=6))[0] == 4408
    # The client, too late, sends its token: the socket is closed already.
    await comm.send_to(text_data=frame(token))
    assert events("connect") == []
    await comm.wait()


async def test_a_handshake_credential_is_used_as_usual(consumer: type, token: str) -> None:
    comm = communicator(app_for(consumer), subprotocols=["access_token", token])
    assert await comm.connect() == (True, "access_token")
    assert json.loads(await comm.receive_from()) == {"user": "alice", "source": "subprotocol"}
    await comm.disconnect()


async def test_a_client_gone_before_authenticating_never_reaches_connect_or_disconnect(consumer: type) -> None:
    comm = await accepted_without_token(app_for(consumer))
    await comm.disconnect()
    assert events("connect") == [] and events("disconnect") == []


async def test_after_it_the_socket_closes_4403_on_revocation(consumer: type, alice: Any, token: str) -> None:
    comm = await accepted_without_token(app_for(consumer))
    await comm.send_to(text_data=frame(token))
    await comm.receive_from()
    await adisconnect_user(alice)
    assert (await closed_with(comm))[0] == 4403
    await comm.wait()


async def test_after_it_the_socket_closes_4401_when_the_token_expires(consumer: type, alice: Any) -> None:
    short = await database_sync_to_async(short_jwt)(alice, 1)
    comm = await accepted_without_token(app_for(consumer))
    await comm.send_to(text_data=frame(short))
    assert json.loads(await comm.receive_from())["user"] == "alice"
    assert await closed_with(comm, timeout=5) == (4401, "token_expired")
    await comm.wait()


async def test_missing_scopes_close_4403(consumer: type, alice: Any) -> None:
    scoped = type(f"{consumer.__name__}Scoped", (consumer,), {"bearer_scopes": ["chat:write"]})
    comm = await accepted_without_token(app_for(scoped))
    await comm.send_to(text_data=frame(jwt_token(alice, scope="chat:read")))
    assert await closed_with(comm) == (4403, "insufficient_scope")
    assert events("connect") == []
    await comm.wait()


async def test_an_inactive_user_is_refused(consumer: type, alice: Any, token: str) -> None:
    alice.is_active = False
    await database_sync_to_async(alice.save)()
    comm = await accepted_without_token(app_for(consumer))
    await comm.send_to(text_data=frame(token))
    # invalid_token, and 4403 after accept as for every inactive user: a new token will not help.
    assert await closed_with(comm) == (4403, "invalid_token")
    await comm.wait()


async def test_off_by_default_a_tokenless_handshake_is_refused(consumer: type) -> None:
    with override_settings(CHANNELS_BEARER=BOTH_BACKENDS):
        connected, code = await communicator(app_for(consumer)).connect()
    assert (connected, code) == (False, 4401)


async def test_the_consumer_attribute_turns_it_on_without_the_source(consumer: type, token: str) -> None:
    opted_in = type(f"{consumer.__name__}OptedIn", (consumer,), {"bearer_message_auth": True})
    with override_settings(CHANNELS_BEARER=BOTH_BACKENDS):
        comm = await accepted_without_token(app_for(opted_in))
        await comm.send_to(text_data=frame(token))
        assert json.loads(await comm.receive_from())["source"] == "message"
        await comm.disconnect()


async def test_the_testing_communicator_speaks_it(consumer: type, token: str) -> None:
    async with BearerCommunicator(app_for(consumer), "/ws/", token=token, via="message") as comm:
        assert await comm.connect() == (True, None)
        assert json.loads(await comm.receive_from()) == {"user": "alice", "source": "message"}
