"""Revocation in one process (issue 11): the registry, the listener, the races.

The same holes with real daphne processes, Redis and PostgreSQL are in
``test_revocation_holes.py``; here each is pinned down with Channels'
communicator and the in-memory layer, where the interleaving can be chosen
exactly. A revocation "from another process" is a message sent to the
listeners' group, as ``broadcast.send`` in another process would send it.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer, WebsocketConsumer
from channels.layers import InMemoryChannelLayer, get_channel_layer
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.core.cache import caches
from django.db import transaction
from django.test import override_settings
from django.urls import path

from channels_bearer import revoke
from channels_bearer.backends import DRFTokenBackend
from channels_bearer.backends.base import Scope
from channels_bearer.broadcast import GROUP
from channels_bearer.cache import TOMBSTONE, entry_key, user_version_key
from channels_bearer.consumers import BearerConsumerMixin
from channels_bearer.identity import BearerIdentity, token_hash_id
from channels_bearer.layer import ResilientLayer
from channels_bearer.middleware import BearerAuthMiddlewareStack
from channels_bearer.registry import Revocation, SocketRegistry, registry
from tests.support.apps import closed_with

pytestmark = pytest.mark.django_db(transaction=True)

#: Set by a test: run after the token was looked up, before the backend answers.
between_lookup_and_answer: list[Any] = []


class RevokedDuringLookupBackend(DRFTokenBackend):
    """The DRF backend, with a revocation landing right after its lookup read the row."""

    async def authenticate(self, token: str, scope: Scope) -> BearerIdentity | None:
        identity = await super().authenticate(token, scope)
        for action in between_lookup_and_answer:
            await action()
        return identity


class Echo(BearerConsumerMixin, AsyncWebsocketConsumer):
    async def connect(self) -> None:
        await self.accept()

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        await self.send(text_data=text_data)


class SyncEcho(BearerConsumerMixin, WebsocketConsumer):
    def connect(self) -> None:
        self.accept()


class RevokeBeforeTheConsumer:
    """A middleware inside the bearer one: a revocation lands after the middleware's
    own check and before the consumer registers the socket (``where="call"``), or
    after it registered and before it saw the connect message (``where="receive"``)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.where: str | None = None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        where = self.where
        if where == "call":
            await revoke.adisconnect_user(scope["user"])
            return await self.inner(scope, receive, send)
        if where != "receive":
            return await self.inner(scope, receive, send)
        first = True

        async def receive_after_revoking() -> Any:
            nonlocal first
            message = await receive()
            if first:
                first = False
                await revoke.adisconnect_user(scope["user"])
            return message

        return await self.inner(scope, receive_after_revoking, send)


inner_revoker = RevokeBeforeTheConsumer(URLRouter([path("ws/", Echo.as_asgi()), path("sync/", SyncEcho.as_asgi())]))
application = BearerAuthMiddlewareStack(inner_revoker)
RACING = {"BACKENDS": ["tests.unit.test_revocation.RevokedDuringLookupBackend"]}


@pytest.fixture(autouse=True)
def _reset() -> Any:
    between_lookup_and_answer.clear()
    inner_revoker.where = None
    yield
    between_lookup_and_answer.clear()
    inner_revoker.where = None


def offer(token: str) -> list[str]:
    return ["access_token", token]


async def open_socket(token: str, url: str = "/ws/") -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(application, url, subprotocols=offer(token))
    connected, subprotocol = await communicator.connect()
    assert connected and subprotocol == "access_token"
    return communicator



# -- hole 2: a revocation that lands during the handshake ---------------------------


@pytest.mark.parametrize("revoked", ["token", "user"])
async def test_a_revocation_between_lookup_and_answer_refuses_the_handshake(token: str, revoked: str) -> None:
    async def revoke_it() -> None:
        if revoked == "token":
            await revoke.adisconnect_token(token_hash_id(token))
        else:
            user = await sync_to_async(lambda: DRFTokenBackend().lookup(DRFTokenBackend().get_model(), token))()
            await revoke.adisconnect_user(user[0])

    between_lookup_and_answer.append(revoke_it)
    with override_settings(CHANNELS_BEARER=RACING):
        connected, code = await WebsocketCommunicator(application, "/ws/", subprotocols=offer(token)).connect()
    assert (connected, code) == (False, 4403)


@pytest.mark.parametrize("url", ["/ws/", "/sync/"])
@pytest.mark.parametrize("where", ["call", "receive"])
async def test_a_revocation_before_the_consumer_answers_refuses_the_handshake(token: str, where: str, url: str) -> None:
    inner_revoker.where = where
    connected, code = await WebsocketCommunicator(application, url, subprotocols=offer(token)).connect()
    assert (connected, code) == (False, 4403)


async def test_a_revocation_of_someone_else_during_the_handshake_changes_nothing(token: str, user_factory: Any) -> None:
    bob = await sync_to_async(user_factory)("bob")

    async def revoke_bob() -> None:
        await revoke.adisconnect_user(bob)

    between_lookup_and_answer.append(revoke_bob)
    with override_settings(CHANNELS_BEARER=RACING):
        communicator = await open_socket(token)
    assert await communicator.receive_nothing(0.2)
    await communicator.disconnect()


async def test_a_revocation_before_the_handshake_started_does_not_refuse_a_later_one(alice: Any, token: str) -> None:
    # A token that still exists after its user was disconnected (say, logged
    # out) opens new sockets: only revocations heard during a handshake count.
    await revoke.adisconnect_user(alice)
    communicator = await open_socket(token)
    assert await communicator.receive_nothing(0.1)
    await communicator.disconnect()


# -- hole 1: memberships that expire ---------------------------------------------------


@pytest.fixture
def short_group_expiry() -> Any:
    layers = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer", "CONFIG": {"group_expiry": 1}}}
    with override_settings(CHANNEL_LAYERS=layers):
        yield get_channel_layer()


async def test_a_process_hears_revocations_long_after_group_expiry(alice: Any, token: str, short_group_expiry: Any) -> None:
    communicator = await open_socket(token)
    await asyncio.sleep(2.5)  # 2.5 × group_expiry: the first membership is long forgotten
    # As another process revokes: one message to the listeners' group.
    await short_group_expiry.group_send(GROUP, Revocation(user=str(alice.pk)).to_message())
    assert (await closed_with(communicator))[0] == 4403


# -- hole 3: a per-process cache, told by other processes ---------------------------------


LOCAL_CACHE = {"CACHE": "default", "CACHE_TTL": 300}


async def test_a_per_process_cache_drops_what_another_process_revoked(alice: Any, token: str) -> None:
    with override_settings(CHANNELS_BEARER=LOCAL_CACHE):
        communicator = await open_socket(token)
        cache = caches["default"]
        key = entry_key(token_hash_id(token))
        assert isinstance(cache.get(key), dict)
        version = cache.get(user_version_key(alice.pk))
        revocation = Revocation(token_id=token_hash_id(token), user=str(alice.pk), invalidate=True)
        await get_channel_layer().group_send(GROUP, revocation.to_message())
        assert (await closed_with(communicator))[0] == 4403
        assert cache.get(key) == TOMBSTONE
        assert cache.get(user_version_key(alice.pk)) != version


async def test_a_cache_only_change_from_another_process_closes_nothing(alice: Any, token: str) -> None:
    with override_settings(CHANNELS_BEARER=LOCAL_CACHE):
        communicator = await open_socket(token)
        revocation = Revocation(user=str(alice.pk), close=False, invalidate=True, reason="user_changed")
        await get_channel_layer().group_send(GROUP, revocation.to_message())
        assert await communicator.receive_nothing(0.3)
        key = user_version_key(alice.pk)
        version = caches["default"].get(key)
        await communicator.disconnect()
    assert version is not None


async def test_messages_that_are_not_revocations_are_ignored(alice: Any, token: str) -> None:
    communicator = await open_socket(token)
    layer = get_channel_layer()
    for junk in (
        {"type": "channels_bearer.revocation", "id": "x", "user": 42, "reason": "revoked"},
        {"type": "channels_bearer.revocation", "id": "y", "reason": "revoked"},
        {"type": "something.else", "user": str(alice.pk)},
    ):
        await layer.group_send(GROUP, junk)
    assert await communicator.receive_nothing(0.3)
    await communicator.disconnect()


# -- hole 4: now, and again on commit ----------------------------------------------------------


class CountingSocket:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def bearer_post_event(self, message: dict[str, Any]) -> None:
        self.events.append(message)


def test_announce_inside_a_transaction_acts_again_when_it_commits() -> None:
    socket = CountingSocket()
    assert registry.register(socket, "announce-user", None, registry.mark())
    try:
        with transaction.atomic():
            revoke.announce(Revocation(user="announce-user"))
            assert len(socket.events) == 1
        assert len(socket.events) == 2
        # Outside a transaction the change is committed already: once.
        revoke.announce(Revocation(user="announce-user"))
        assert len(socket.events) == 3
    finally:
        registry.unregister(socket, "announce-user", None)


def test_a_rolled_back_transaction_announces_once() -> None:
    socket = CountingSocket()
    assert registry.register(socket, None, "announce-token", registry.mark())
    try:
        with pytest.raises(RuntimeError), transaction.atomic():
            revoke.announce(Revocation(token_id="announce-token"))
            raise RuntimeError("rolled back")
        assert len(socket.events) == 1
    finally:
        registry.unregister(socket, None, "announce-token")


async def test_each_process_applies_a_revocation_once(alice: Any, token: str) -> None:
    # The revoking process applies it at once and hears it back through the layer.
    socket = CountingSocket()
    assert registry.register(socket, str(alice.pk), None, registry.mark())
    try:
        await open_socket(token)  # starts this loop's listener
        await revoke.adisconnect_user(alice)
        await asyncio.sleep(0.2)
        assert len(socket.events) == 1
    finally:
        registry.unregister(socket, str(alice.pk), None)


# -- the registry ------------------------------------------------------------------------


def test_registry_refuses_a_socket_revoked_after_its_mark() -> None:
    sockets = SocketRegistry()
    mark = sockets.mark()
    sockets.record(Revocation(token_id="t1"))
    assert not sockets.register(CountingSocket(), "u1", "t1", mark)
    assert sockets.register(CountingSocket(), "u1", "t2", mark)
    assert sockets.register(CountingSocket(), "u1", "t1", sockets.mark())
    sockets.record(Revocation(user="u2"))
    assert not sockets.register(CountingSocket(), "u2", "t9", mark)


def test_registry_refuses_marks_older_than_what_it_remembers(monkeypatch: pytest.MonkeyPatch) -> None:
    sockets = SocketRegistry()
    monkeypatch.setattr(SocketRegistry, "MAX_HEARD", 2)
    mark = sockets.mark()
    for n in range(3):
        sockets.record(Revocation(user=f"other-{n}"))
    # Something was forgotten since that mark: it may have named this socket.
    assert not sockets.register(CountingSocket(), "u1", "t1", mark)
    assert sockets.register(CountingSocket(), "u1", "t1", sockets.mark())


def test_registry_lets_sockets_go() -> None:
    sockets = SocketRegistry()
    socket = CountingSocket()
    assert sockets.register(socket, "u1", "t1", sockets.mark())
    assert sockets.count() == 1
    assert sockets.record(Revocation(user="u1")) == [socket]
    sockets.unregister(socket, "u1", "t1")
    assert sockets.count() == 0
    assert sockets.record(Revocation(token_id="t1")) == []


@pytest.mark.parametrize(
    "message",
    [
        None,
        "text",
        {"type": "channels_bearer.revocation", "id": "i", "reason": "r"},
        {"type": "channels_bearer.revocation", "id": "i", "reason": "r", "user": 1},
        {"type": "channels_bearer.revocation", "id": 1, "reason": "r", "user": "1"},
        {"type": "channels_bearer.revocation", "id": "i", "reason": None, "token_id": "t"},
    ],
)
def test_revocation_messages_are_checked(message: Any) -> None:
    assert Revocation.from_message(message) is None


def test_revocation_messages_round_trip() -> None:
    revocation = Revocation(user="7", token_id="abc", reason="token_deleted", invalidate=True)
    assert Revocation.from_message(revocation.to_message()) == revocation
    assert revocation.again().id != revocation.id


# -- the layer wrapper ---------------------------------------------------------------------------


class BrokenGroupsLayer(InMemoryChannelLayer):
    async def group_add(self, group: str, channel: str) -> None:
        raise ConnectionError("the layer is down")


async def test_the_applications_group_failures_reach_the_application() -> None:
    with pytest.raises(ConnectionError):
        await ResilientLayer(BrokenGroupsLayer(), own_groups=False).group_add("app.group", "x.inmemory!y")
    # channels-bearer's own group is retried after the outage instead.
    await ResilientLayer(BrokenGroupsLayer(), own_groups=True).group_add(GROUP, "x.inmemory!y")
