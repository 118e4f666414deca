"""Issue 4 in one process: expiry, in-band refresh, revocation, tickets.

Channels' communicator and the in-memory channel layer; the same flows over
Redis and two daphne processes are in test_lifecycle_redis.py.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer, WebsocketConsumer
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model, user_logged_out
from django.core.checks import run_checks
from django.test import override_settings
from django.urls import path
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import AccessToken, RefreshToken

from channels_bearer import revoke
from channels_bearer.consumers import BearerConsumerMixin
from channels_bearer.identity import token_hash_id
from channels_bearer.middleware import BearerAuthMiddlewareStack
from channels_bearer.tickets import issue_ticket
from channels_bearer.tokens import make_token
from tests.support.apps import closed_with
from tests.support.tokens import seconds_left, short_jwt

pytestmark = pytest.mark.django_db(transaction=True)

BOTH = {
    "BACKENDS": ["channels_bearer.backends.DRFTokenBackend", "channels_bearer.backends.SimpleJWTBackend"],
    "SOURCES": ["subprotocol", "header", "ticket"],
}
consumers_seen: list[Any] = []


class AsyncEcho(BearerConsumerMixin, AsyncJsonWebsocketConsumer):
    bearer_refresh = True

    async def connect(self) -> None:
        consumers_seen.append(self)
        await self.accept()

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        await self.send_json({"echo": content})


class SyncEcho(BearerConsumerMixin, WebsocketConsumer):
    bearer_refresh = True

    def connect(self) -> None:
        consumers_seen.append(self)
        self.accept()

    def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        self.send(text_data=json.dumps({"echo": json.loads(text_data or "null")}))


class NoRefresh(BearerConsumerMixin, AsyncJsonWebsocketConsumer):
    async def connect(self) -> None:
        await self.accept()

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        await self.send_json({"echo": content})


application = BearerAuthMiddlewareStack(
    URLRouter(
        [
            path("async/", AsyncEcho.as_asgi()),
            path("sync/", SyncEcho.as_asgi()),
            path("norefresh/", NoRefresh.as_asgi()),
        ]
    )
)
KINDS = ["async", "sync"]


async def create_user(username: str) -> Any:
    return await sync_to_async(get_user_model().objects.create_user)(username, password="pw")


async def open_socket(path: str, token: str) -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(application, path, subprotocols=["access_token", token])
    connected, subprotocol = await communicator.connect()
    assert connected and subprotocol == "access_token"
    return communicator



@pytest.fixture(autouse=True)
def _settings() -> Any:
    consumers_seen.clear()
    with override_settings(CHANNELS_BEARER=BOTH):
        yield


# -- expiry -------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
async def test_socket_closes_with_4401_when_its_token_expires(kind: str) -> None:
    user = await create_user("exp")
    communicator = await open_socket(f"/{kind}/", await sync_to_async(short_jwt)(user, 1))
    await communicator.send_json_to({"hello": 1})
    assert await communicator.receive_json_from() == {"echo": {"hello": 1}}
    assert await closed_with(communicator) == (4401, "token_expired")


async def test_expiry_grace_delays_the_close() -> None:
    user = await create_user("grace")
    with override_settings(CHANNELS_BEARER={**BOTH, "EXPIRY_GRACE": 2}):
        token = await sync_to_async(short_jwt)(user, 1)
        communicator = await open_socket("/async/", token)
        # Past the token's expiry, inside the grace period: still open.
        await asyncio.sleep(seconds_left(token) + 0.2)
        await communicator.send_json_to({"still": "open"})
        assert await communicator.receive_json_from() == {"echo": {"still": "open"}}
        assert await closed_with(communicator, timeout=4) == (4401, "token_expired")


async def test_drf_tokens_never_expire_and_leave_no_timer() -> None:
    user = await create_user("drf")
    communicator = await open_socket("/async/", await sync_to_async(make_token)(user))
    assert consumers_seen[-1]._bearer.alarm is None
    await communicator.disconnect()


@pytest.mark.parametrize("kind", KINDS)
async def test_no_timer_outlives_a_socket_closed_first(kind: str) -> None:
    user = await create_user("early")
    communicator = await open_socket(f"/{kind}/", await sync_to_async(short_jwt)(user, 60))
    consumer = consumers_seen[-1]
    alarm = consumer._bearer.alarm
    assert alarm is not None and not alarm.cancelled
    await communicator.disconnect()
    assert alarm.cancelled


# -- refresh ------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
async def test_refresh_with_a_token_of_the_same_user_moves_the_expiry(kind: str) -> None:
    user = await create_user("refresh")
    first = await sync_to_async(short_jwt)(user, 1)
    communicator = await open_socket(f"/{kind}/", first)
    fresh = await sync_to_async(short_jwt)(user, 30)
    await communicator.send_json_to({"type": "bearer.refresh", "token": fresh})
    answer = await communicator.receive_json_from()
    assert answer["type"] == "bearer.refreshed"
    assert answer["expires_at"] == consumers_seen[-1].scope["bearer"].expires_at.isoformat()
    await asyncio.sleep(seconds_left(first) + 0.3)  # past the first token's expiry
    await communicator.send_json_to({"after": "refresh"})
    # The refresh frame never reached the application; this one does.
    assert await communicator.receive_json_from() == {"echo": {"after": "refresh"}}
    assert consumers_seen[-1].scope["bearer"].token_id == AccessToken(fresh)["jti"]
    await communicator.disconnect()


@pytest.mark.parametrize("kind", KINDS)
async def test_refresh_with_another_users_token_closes_4403(kind: str) -> None:
    alice, mallory = await create_user("alice"), await create_user("mallory")
    communicator = await open_socket(f"/{kind}/", await sync_to_async(short_jwt)(alice, 30))
    await communicator.send_json_to({"type": "bearer.refresh", "token": await sync_to_async(short_jwt)(mallory, 30)})
    assert await closed_with(communicator) == (4403, "invalid_token")


async def test_refresh_with_an_invalid_token_closes_4401_without_echoing_it() -> None:
    user = await create_user("bad-refresh")
    communicator = await open_socket("/async/", await sync_to_async(short_jwt)(user, 30))
    await communicator.send_json_to({"type": "bearer.refresh", "token": "not-a-valid-token-42"})
    code, reason = await closed_with(communicator)
    assert (code, reason) == (4401, "invalid_token")
    assert "not-a-valid-token-42" not in reason


async def test_refresh_message_without_token_closes_4400() -> None:
    user = await create_user("no-token")
    communicator = await open_socket("/async/", await sync_to_async(short_jwt)(user, 30))
    await communicator.send_json_to({"type": "bearer.refresh"})
    assert await closed_with(communicator) == (4400, "invalid_request")


async def test_application_messages_that_mention_refresh_reach_the_application() -> None:
    user = await create_user("app")
    communicator = await open_socket("/async/", await sync_to_async(short_jwt)(user, 30))
    message = {"type": "chat", "text": "bearer.refresh is a word"}
    await communicator.send_json_to(message)
    assert await communicator.receive_json_from() == {"echo": message}
    await communicator.disconnect()


async def test_refresh_is_off_unless_enabled() -> None:
    user = await create_user("off")
    communicator = await open_socket("/norefresh/", await sync_to_async(short_jwt)(user, 30))
    message = {"type": "bearer.refresh", "token": await sync_to_async(short_jwt)(user, 60)}
    await communicator.send_json_to(message)
    assert await communicator.receive_json_from() == {"echo": message}
    await communicator.disconnect()
    with override_settings(CHANNELS_BEARER={**BOTH, "REFRESH": True}):
        communicator = await open_socket("/norefresh/", await sync_to_async(short_jwt)(user, 30))
        await communicator.send_json_to(message)
        assert (await communicator.receive_json_from())["type"] == "bearer.refreshed"
        await communicator.disconnect()


# -- revocation ---------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
async def test_deleting_a_drf_token_closes_its_sockets_only(kind: str) -> None:
    alice, bob = await create_user("alice"), await create_user("bob")
    alice_drf = await open_socket(f"/{kind}/", await sync_to_async(make_token)(alice))
    alice_jwt = await open_socket(f"/{kind}/", await sync_to_async(short_jwt)(alice, 60))
    bob_drf = await open_socket(f"/{kind}/", await sync_to_async(make_token)(bob))
    await sync_to_async(Token.objects.filter(user=alice).delete)()
    assert await closed_with(alice_drf) == (4403, "revoked")
    assert await alice_jwt.receive_nothing(0.3)
    assert await bob_drf.receive_nothing(0.1)
    for communicator in (alice_jwt, bob_drf):
        await communicator.disconnect()


@pytest.mark.parametrize(
    "change",
    ["deactivate", "delete", "password", "logout"],
)
async def test_user_changes_close_all_of_the_users_sockets(change: str) -> None:
    alice, bob = await create_user("alice"), await create_user("bob")
    sockets = [
        await open_socket("/async/", await sync_to_async(make_token)(alice)),
        await open_socket("/sync/", await sync_to_async(short_jwt)(alice, 60)),
    ]
    bystander = await open_socket("/async/", await sync_to_async(make_token)(bob))

    def apply() -> None:
        if change == "deactivate":
            alice.is_active = False
            alice.save()
        elif change == "delete":
            alice.delete()
        elif change == "password":
            alice.set_password("new password")
            alice.save()
        else:
            user_logged_out.send(sender=type(alice), request=None, user=alice)

    await sync_to_async(apply)()
    for communicator in sockets:
        assert await closed_with(communicator) == (4403, "revoked")
    assert await bystander.receive_nothing(0.2)
    await bystander.disconnect()


async def test_saving_an_active_user_closes_nothing() -> None:
    alice = await create_user("alice")
    communicator = await open_socket("/async/", await sync_to_async(make_token)(alice))
    alice.first_name = "Alice"
    await sync_to_async(alice.save)()
    assert await communicator.receive_nothing(0.3)
    await communicator.disconnect()


async def test_logout_can_leave_sockets_open() -> None:
    alice = await create_user("alice")
    with override_settings(CHANNELS_BEARER={**BOTH, "REVOKE_ON_LOGOUT": False}):
        communicator = await open_socket("/async/", await sync_to_async(make_token)(alice))
        await sync_to_async(user_logged_out.send)(sender=type(alice), request=None, user=alice)
        assert await communicator.receive_nothing(0.3)
        await communicator.disconnect()


async def test_blacklisting_a_refresh_token_closes_the_users_sockets() -> None:
    alice = await create_user("alice")
    refresh = await sync_to_async(RefreshToken.for_user)(alice)
    communicator = await open_socket("/async/", str(refresh.access_token))
    await sync_to_async(refresh.blacklist)()
    assert await closed_with(communicator) == (4403, "revoked")


async def test_disconnect_functions_sync_and_async() -> None:
    alice = await create_user("alice")
    jwt = await sync_to_async(short_jwt)(alice, 60)
    first = await open_socket("/async/", jwt)
    await revoke.adisconnect_token(AccessToken(jwt)["jti"])
    assert await closed_with(first) == (4403, "revoked")
    second = await open_socket("/sync/", jwt)
    await sync_to_async(revoke.disconnect_user)(alice)
    assert await closed_with(second) == (4403, "revoked")
    third = await open_socket("/async/", await sync_to_async(make_token)(alice))
    await revoke.adisconnect_user(alice.pk)
    assert await closed_with(third) == (4403, "revoked")


async def test_without_a_channel_layer_revocation_acts_on_this_process() -> None:
    alice = await create_user("alice")
    with override_settings(CHANNEL_LAYERS={}):
        communicator = await open_socket("/async/", await sync_to_async(make_token)(alice))
        await sync_to_async(revoke.disconnect_user)(alice)
        assert await closed_with(communicator) == (4403, "revoked")
        # Off the event loop: Django 6.1's checks query the database.
        warnings = [m.id for m in await sync_to_async(run_checks)() if m.id and m.id.startswith("channels_bearer.")]
        assert "channels_bearer.W002" in warnings
    assert "channels_bearer.W002" not in [m.id for m in await sync_to_async(run_checks)()]


def test_the_revocation_group_name_is_valid_for_every_layer() -> None:
    from channels.layers import BaseChannelLayer

    from channels_bearer.broadcast import GROUP

    assert BaseChannelLayer(expiry=60).require_valid_group_name(GROUP)


# -- tickets ------------------------------------------------------------------


async def test_ticket_opens_one_socket_once() -> None:
    alice = await create_user("alice")
    ticket, ttl = await sync_to_async(issue_ticket)(alice, token_id="tok-1")
    assert ttl == 30
    communicator = WebsocketCommunicator(application, f"/async/?ticket={ticket}")
    assert await communicator.connect() == (True, None)
    bearer = consumers_seen[-1].scope["bearer"]
    assert (bearer.source, bearer.token_id, bearer.user.pk) == ("ticket", "tok-1", alice.pk)
    assert consumers_seen[-1].scope["query_string"] == b""
    await communicator.disconnect()
    again = WebsocketCommunicator(application, f"/async/?ticket={ticket}")
    assert await again.connect() == (False, 4401)


async def test_ticket_racing_handshakes_get_one_success() -> None:
    alice = await create_user("alice")
    ticket, _ = await sync_to_async(issue_ticket)(alice)
    communicators = [WebsocketCommunicator(application, f"/async/?ticket={ticket}") for _ in range(8)]
    results = await asyncio.gather(*(c.connect() for c in communicators))
    assert sorted(ok for ok, _ in results) == [False] * 7 + [True]
    for communicator, (ok, _) in zip(communicators, results):
        if ok:
            await communicator.disconnect()


async def test_revoking_the_issuing_token_voids_unused_tickets() -> None:
    alice = await create_user("alice")
    key = await sync_to_async(make_token)(alice)
    ticket, _ = await sync_to_async(issue_ticket)(alice, token_id=token_hash_id(key))
    await sync_to_async(Token.objects.filter(user=alice).delete)()
    communicator = WebsocketCommunicator(application, f"/async/?ticket={ticket}")
    assert await communicator.connect() == (False, 4403)


async def test_ticket_of_a_deactivated_user_is_refused() -> None:
    alice = await create_user("alice")
    ticket, _ = await sync_to_async(issue_ticket)(alice)
    alice.is_active = False
    await sync_to_async(alice.save)()
    communicator = WebsocketCommunicator(application, f"/async/?ticket={ticket}")
    assert await communicator.connect() == (False, 4403)


async def test_ticket_socket_closes_on_revocation_of_its_issuing_token() -> None:
    alice = await create_user("alice")
    key = await sync_to_async(make_token)(alice)
    ticket, _ = await sync_to_async(issue_ticket)(alice, token_id=token_hash_id(key))
    communicator = WebsocketCommunicator(application, f"/async/?ticket={ticket}")
    assert (await communicator.connect())[0]
    await sync_to_async(Token.objects.filter(user=alice).delete)()
    assert await closed_with(communicator) == (4403, "revoked")


def test_ticket_view_issues_tickets_to_authenticated_clients_only() -> None:
    alice = get_user_model().objects.create_user("alice", password="pw")
    key = make_token(alice)
    client = APIClient()
    assert client.post("/api/ws-ticket/").status_code == 401
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    response = client.post("/api/ws-ticket/")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"ticket", "expires_in"} and body["expires_in"] == 30
    assert len(body["ticket"]) >= 40 and key not in body["ticket"]
    assert response["Cache-Control"] == "no-store"
    jwt = short_jwt(alice, 60)
    bearer_client = APIClient()
    bearer_client.credentials(HTTP_AUTHORIZATION=f"Bearer {jwt}")
    assert bearer_client.post("/api/ws-ticket/").status_code == 200
    assert client.get("/api/ws-ticket/").status_code == 405


def test_tickets_are_stored_as_hashes_only() -> None:
    from django.core.cache import cache

    alice = get_user_model().objects.create_user("alice")
    ticket, _ = issue_ticket(alice)
    keys = list(cache._cache.keys())  # type: ignore[attr-defined]
    assert keys and not any(ticket in key for key in keys)


# -- one clock per loop ----------------------------------------------------------


async def test_alarms_ring_in_order_and_cancelled_ones_never() -> None:
    from channels_bearer.expiry import set_alarm

    loop = asyncio.get_running_loop()
    rang: list[int] = []
    alarms = [set_alarm(loop, delay, lambda n=n: rang.append(n)) for n, delay in enumerate([0.3, 0.1, 0.2, 0.15])]
    alarms[2].cancel()
    await asyncio.sleep(0.5)
    assert rang == [1, 3, 0]


async def test_many_cancelled_alarms_do_not_pile_up() -> None:
    from channels_bearer.expiry import _clocks, set_alarm

    loop = asyncio.get_running_loop()
    keep = set_alarm(loop, 3600, lambda: None)
    for _ in range(1000):
        set_alarm(loop, 3600, lambda: None).cancel()
    # Sockets that closed before their token expired leave no entries behind.
    assert len(_clocks[id(loop)].heap) < 200
    keep.cancel()
