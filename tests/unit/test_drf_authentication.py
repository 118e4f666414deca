"""``DRFAuthenticationBackend``: the DRF authentication classes a project already runs, on WebSockets.

Tested with DRF's ``TokenAuthentication``, SimpleJWT's ``JWTAuthentication``
and django-rest-knox's ``TokenAuthentication``, as they come.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.test import override_settings
from knox.models import AuthToken
from rest_framework import exceptions
from rest_framework.authentication import TokenAuthentication
from rest_framework.authtoken.models import Token

from channels_bearer.backends import DRFAuthenticationBackend
from channels_bearer.backends.knox import KnoxTokenBackend
from channels_bearer.config import validate
from channels_bearer.identity import token_hash_id
from tests.support.apps import IdentityConsumer, assert_secret_absent, build_app, closed_with, subprotocol_refusal
from tests.support.tokens import jwt_token

pytestmark = pytest.mark.django_db(transaction=True)

BACKEND = "channels_bearer.backends.DRFAuthenticationBackend"
DRF_TOKEN = "rest_framework.authentication.TokenAuthentication"
SIMPLEJWT = "rest_framework_simplejwt.authentication.JWTAuthentication"
KNOX = "knox.auth.TokenAuthentication"
ALL = [DRF_TOKEN, SIMPLEJWT, KNOX]

#: The threads the test class below ran on.
THREADS: list[str] = []


APP = build_app(("ws/", IdentityConsumer.as_asgi()))


class RecordingTokenAuthentication(TokenAuthentication):
    """DRF's, noting where it runs."""

    def authenticate(self, request: Any) -> Any:
        THREADS.append(threading.current_thread().name)
        return super().authenticate(request)


class LeakyAuthentication(TokenAuthentication):
    """Fails with the token in its message, as a careless class might."""

    def authenticate_credentials(self, key: str) -> Any:
        raise exceptions.AuthenticationFailed(f"bad token {key}")



class CarelessAuthentication(TokenAuthentication):
    """Returns the token's user without looking at ``is_active``, as some custom classes do."""

    def authenticate_credentials(self, key: str) -> Any:
        row = Token.objects.select_related("user").get(key=key)
        return row.user, row

def settings_with(classes: list[str] | None) -> Any:
    return override_settings(CHANNELS_BEARER={"BACKENDS": [BACKEND], "DRF_AUTHENTICATION_CLASSES": classes})


async def open_socket(token: str) -> tuple[WebsocketCommunicator, list[str]]:
    comm = WebsocketCommunicator(APP, "/ws/", headers=[(b"authorization", f"Bearer {token}".encode())])
    assert await comm.connect() == (True, None)
    return comm, (await comm.receive_from()).split(" ", 2)


async def refusal(token: str) -> int:
    return await subprotocol_refusal(APP, token)



async def test_drf_tokens_through_token_authentication(alice: Any, token: str) -> None:
    with settings_with(ALL):
        comm, (name, token_id, _) = await open_socket(token)
        assert name == "alice" and token_id == token_hash_id(token)
        # Its id is the DRF backend's: deleting the token closes the socket.
        await sync_to_async(Token.objects.filter(key=token).delete)()
        assert await closed_with(comm) == (4403, "revoked")


async def test_simplejwt_tokens_through_jwt_authentication(alice: Any) -> None:
    jwt = await sync_to_async(jwt_token)(alice)
    with settings_with(ALL):
        comm, (name, token_id, expires) = await open_socket(jwt)
        assert name == "alice" and token_id != token_hash_id(jwt) and len(token_id) == 32  # the jti
        assert expires != "None"
        await comm.disconnect()


async def test_knox_tokens_through_knox_authentication(alice: Any) -> None:
    row, knox_token = await sync_to_async(AuthToken.objects.create)(alice)
    with settings_with(ALL):
        comm, (name, token_id, expires) = await open_socket(knox_token)
        assert name == "alice" and token_id == KnoxTokenBackend.token_id_of(row)
        assert expires == str(row.expiry)
        await sync_to_async(row.delete)()
        assert (await closed_with(comm))[0] == 4403


async def test_the_projects_default_classes_without_the_setting(alice: Any, token: str) -> None:
    # tests/settings.py: DEFAULT_AUTHENTICATION_CLASSES = [Token, JWT]
    with settings_with(None):
        comm, (name, _, _) = await open_socket(token)
        assert name == "alice"
        await comm.disconnect()


async def test_a_subclass_can_name_its_classes(alice: Any, token: str) -> None:
    assert DRFAuthenticationBackend().class_paths()[:1] == [DRF_TOKEN]
    subclass = type("Mine", (DRFAuthenticationBackend,), {"authentication_classes": [SIMPLEJWT]})
    assert subclass().class_paths() == [SIMPLEJWT]


async def test_refusals_say_invalid_token_and_never_the_classes_text(alice: Any, debug_logs: Any) -> None:
    with settings_with([f"{__name__}.LeakyAuthentication", SIMPLEJWT]):
        bad = "f" * 40
        comm = WebsocketCommunicator(APP, "/ws/", subprotocols=["access_token", bad])
        assert await comm.connect() == (False, 4401)
    assert_secret_absent(bad, debug_logs, APP)
    assert [m.get("reason") for m in APP.of_type("websocket.close")][-1] == "invalid_token"


async def test_an_inactive_user_is_refused(user_factory: Any) -> None:
    bob = await sync_to_async(user_factory)("bob")
    jwt = await sync_to_async(jwt_token)(bob)
    bob.is_active = False
    await sync_to_async(bob.save)()
    with settings_with(ALL):
        assert await refusal(jwt) == 4401



async def test_a_class_that_lets_an_inactive_user_through_is_overruled(user_factory: Any) -> None:
    # The backend's own check_user() refuses what the class did not: 4403, as
    # for every backend (a new token would not help).
    bob = await sync_to_async(user_factory)("bob", is_active=False)
    token = await sync_to_async(lambda: Token.objects.create(user=bob).key)()
    with settings_with([f"{__name__}.CarelessAuthentication"]):
        assert await refusal(token) == 4403

async def test_session_and_basic_authentication_are_skipped(alice: Any, token: str) -> None:
    classes = ["rest_framework.authentication.SessionAuthentication", "rest_framework.authentication.BasicAuthentication", DRF_TOKEN]
    with settings_with(classes):
        comm, (name, _, _) = await open_socket(token)
        assert name == "alice"
        await comm.disconnect()
    with settings_with(classes[:2]):
        assert await refusal(token) == 4401  # nothing could take it


async def test_the_classes_run_on_a_thread_of_their_own(alice: Any, token: str) -> None:
    THREADS.clear()
    with settings_with([f"{__name__}.RecordingTokenAuthentication"]):
        comm, _ = await open_socket(token)
        await comm.disconnect()
    assert THREADS and all(name.startswith("channels-bearer-auth") for name in THREADS), THREADS


@pytest.mark.parametrize(
    ("classes", "ids"),
    [
        (["no.such.Class"], ["channels_bearer.E053"]),
        (["channels_bearer.backends.DRFTokenBackend"], ["channels_bearer.E053"]),
        ([], ["channels_bearer.E052"]),
        ([DRF_TOKEN], []),
    ],
)
def test_the_checks_name_bad_classes(classes: list[str], ids: list[str]) -> None:
    with settings_with(classes):
        assert [m.id for m in DRFAuthenticationBackend.check()] == ids


@pytest.mark.parametrize("value", ["rest_framework.authentication.TokenAuthentication", [3], [""], {"a": 1}])
def test_the_setting_must_be_none_or_a_list_of_paths(value: Any) -> None:
    _, messages = validate({"DRF_AUTHENTICATION_CLASSES": value})
    assert [m.id for m in messages] == ["channels_bearer.E017"]
