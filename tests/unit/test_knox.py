"""``KnoxTokenBackend``: django-rest-knox tokens, with knox's own models, views and logout."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.test import override_settings
from django.utils import timezone
from knox.models import AuthToken
from rest_framework.test import APIClient

from channels_bearer.backends.knox import KnoxTokenBackend
from tests.support.apps import IdentityConsumer, assert_secret_absent, build_app, closed_with, subprotocol_refusal
from tests.support.queries import counted

pytestmark = pytest.mark.django_db(transaction=True)

KNOX = "channels_bearer.backends.KnoxTokenBackend"
DRF = "channels_bearer.backends.DRFTokenBackend"


APP = build_app(("ws/", IdentityConsumer.as_asgi()))


@pytest.fixture(autouse=True)
def knox_backend() -> Any:
    with override_settings(CHANNELS_BEARER={"BACKENDS": [DRF, KNOX]}):
        yield


def knox_token(user: Any, **kwargs: Any) -> tuple[Any, str]:
    row, token = AuthToken.objects.create(user, **kwargs)
    return row, token


async def open_socket(token: str) -> WebsocketCommunicator:
    comm = WebsocketCommunicator(APP, "/ws/", subprotocols=["access_token", token])
    assert await comm.connect() == (True, "access_token")
    return comm


async def refusal(token: str) -> int:
    return await subprotocol_refusal(APP, token)



async def test_a_knox_token_opens_a_socket_with_its_expiry_and_id(alice: Any, debug_logs: Any) -> None:
    row, token = await sync_to_async(knox_token)(alice)
    comm = await open_socket(token)
    name, token_id, expires = (await comm.receive_from()).split(" ", 2)
    assert name == "alice"
    assert token_id == KnoxTokenBackend.token_id_of(row) and token_id not in token
    assert expires == str(row.expiry)
    await comm.disconnect()
    assert_secret_absent(token, debug_logs, APP)


async def test_prefixed_tokens_work(alice: Any) -> None:
    _, token = await sync_to_async(knox_token)(alice, prefix="app_")
    assert token.startswith("app_")
    comm = await open_socket(token)
    assert (await comm.receive_from()).startswith("alice ")
    await comm.disconnect()


async def test_unknown_expired_and_inactive_are_refused(alice: Any, user_factory: Any) -> None:
    assert await refusal("0" * 64) == 4401  # no backend takes it
    _, expired = await sync_to_async(knox_token)(alice, expiry=timedelta(seconds=-1))
    assert await refusal(expired) == 4401
    bob = await sync_to_async(user_factory)("bob", is_active=False)
    _, inactive = await sync_to_async(knox_token)(bob)
    assert await refusal(inactive) == 4403  # InactiveUser: a new token will not help


async def test_the_socket_closes_4401_when_the_knox_token_expires(alice: Any) -> None:
    # Three seconds: the handshake and the greeting come first, however slow the machine.
    _, token = await sync_to_async(knox_token)(alice, expiry=timedelta(seconds=3))
    comm = await open_socket(token)
    await comm.receive_from()
    assert await closed_with(comm, timeout=8) == (4401, "token_expired")


def logout(token: str, path: str) -> int:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    return int(client.post(path).status_code)


async def test_knox_logout_closes_that_tokens_sockets_only(alice: Any) -> None:
    _, first = await sync_to_async(knox_token)(alice)
    _, second = await sync_to_async(knox_token)(alice)
    one, two = await open_socket(first), await open_socket(second)
    await one.receive_from()
    await two.receive_from()
    assert await sync_to_async(logout)(first, "/api/knox/logout/") == 204
    assert await closed_with(one) == (4403, "revoked")
    # knox's logout also sends user_logged_out (REVOKE_ON_LOGOUT is on): the
    # deleted row, not the whole user, says which sockets go.
    assert await two.receive_nothing(0.3)
    await two.disconnect()
    assert await refusal(first) == 4401


async def test_knox_logout_all_closes_every_knox_socket_of_the_user(alice: Any) -> None:
    _, first = await sync_to_async(knox_token)(alice)
    _, second = await sync_to_async(knox_token)(alice)
    one, two = await open_socket(first), await open_socket(second)
    await one.receive_from()
    await two.receive_from()
    assert await sync_to_async(logout)(first, "/api/knox/logoutall/") == 204
    assert (await closed_with(one))[0] == 4403
    assert (await closed_with(two))[0] == 4403


@override_settings(CACHES={"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "knox"}})
async def test_cached_lookups_make_no_query_and_never_outlive_a_logout(alice: Any) -> None:
    with override_settings(CHANNELS_BEARER={"BACKENDS": [KNOX], "CACHE": "default"}):
        row, token = await sync_to_async(knox_token)(alice)
        warm = await open_socket(token)  # fills the cache
        await warm.receive_from()
        await warm.disconnect()
        with counted() as queries:
            comm = await open_socket(token)
        assert queries.count == 0
        await comm.receive_from()
        await sync_to_async(row.delete)()
        assert (await closed_with(comm))[0] == 4403
        assert await refusal(token) == 4401


async def test_auto_refresh_renews_the_token_as_a_request_would(alice: Any) -> None:
    with override_settings(REST_KNOX={"AUTO_REFRESH": True, "MIN_REFRESH_INTERVAL": 0, "TOKEN_TTL": timedelta(hours=10)}):
        row, token = await sync_to_async(knox_token)(alice, expiry=timedelta(hours=1))
        comm = await open_socket(token)
        await comm.receive_from()
        await comm.disconnect()
        await sync_to_async(row.refresh_from_db)()
        assert row.expiry > timezone.now() + timedelta(hours=9)


def test_the_check_names_a_missing_knox_app() -> None:
    with override_settings(INSTALLED_APPS=["django.contrib.auth", "django.contrib.contenttypes", "channels_bearer"]):
        assert [m.id for m in KnoxTokenBackend.check()] == ["channels_bearer.E050"]
    assert KnoxTokenBackend.check() == []
