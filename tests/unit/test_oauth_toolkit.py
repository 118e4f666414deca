"""OAuthToolkitBackend with django-oauth-toolkit's real models and migrations."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser
from django.test import override_settings
from oauth2_provider.models import get_access_token_model, revoke_access_token

from channels.generic.websocket import AsyncWebsocketConsumer

from channels_bearer.backends import OAuthToolkitBackend
from channels_bearer.consumers import BearerConsumerMixin
from channels_bearer.exceptions import ExpiredToken, InactiveUser
from channels_bearer.identity import token_hash_id
from tests.support.oauth import make_access_token, make_application
from tests.support.apps import assert_secret_absent, build_app, communicator, refused
from tests.support.queries import counted

pytestmark = pytest.mark.django_db(transaction=True)

OAUTH = "channels_bearer.backends.OAuthToolkitBackend"
BACKENDS = {"BACKENDS": ["channels_bearer.backends.DRFTokenBackend", OAUTH]}


@pytest.fixture
def app(alice: Any) -> Any:
    return make_application("chat-app", user=alice)


def authenticate(token: str, backend: OAuthToolkitBackend | None = None) -> Any:
    # From a sync test; the backend's database work runs on channels-bearer's
    # lookup thread, where counted() sees it (on committed data).
    return async_to_sync((backend or OAuthToolkitBackend()).authenticate)(token, {})


def test_valid_token(alice: Any, app: Any) -> None:
    token = make_access_token(alice, app, scope="chat:read profile")
    row = get_access_token_model().objects.get()

    with counted() as queries:
        identity = authenticate(token)

    assert identity.user == alice
    assert identity.scopes == frozenset({"chat:read", "profile"})
    assert identity.claims == {
        "client_id": app.client_id,
        "application_id": app.pk,
        "application": "chat-app",
        "scope": "chat:read profile",
        "user_id": alice.pk,
    }
    assert identity.expires_at == row.expires
    # The id TicketView gives the same token; also the stored checksum's prefix.
    assert identity.token_id == token_hash_id(token) == row.token_checksum[:32]
    # Looked up as the toolkit does: by the SHA-256 checksum, one query with its relations.
    assert queries.count == 1
    assert hashlib.sha256(token.encode()).hexdigest() in queries.sql[0]
    assert token not in queries.sql[0]


def test_redacted_token_storage_still_looks_up(alice: Any, app: Any) -> None:
    with override_settings(OAUTH2_PROVIDER={"COMPLIANT_BCP_RFC9700_TOKEN_STORAGE": True}):
        token = make_access_token(alice, app, scope="chat:read")
        assert get_access_token_model().objects.get().token == ""  # not stored in plain
        assert authenticate(token).user == alice


def test_unknown_token_is_not_ours(alice: Any, app: Any) -> None:
    make_access_token(alice, app)
    assert authenticate("no-such-token-0123456789") is None


def test_expired_token(alice: Any, app: Any) -> None:
    token = make_access_token(alice, app, expires_in=-60)
    with pytest.raises(ExpiredToken):
        authenticate(token)


def test_revoked_token(alice: Any, app: Any) -> None:
    token = make_access_token(alice, app)
    assert authenticate(token) is not None
    revoke_access_token(get_access_token_model().objects.get())
    assert authenticate(token) is None


def test_inactive_user(alice: Any, app: Any) -> None:
    token = make_access_token(alice, app)
    alice.is_active = False
    alice.save()
    with pytest.raises(InactiveUser):
        authenticate(token)


def test_client_credentials_tokens(app: Any) -> None:
    token = make_access_token(None, app, scope="service")
    with pytest.raises(InactiveUser):
        authenticate(token)

    class MachineBackend(OAuthToolkitBackend):
        allow_client_credentials = True

    identity = authenticate(token, MachineBackend())
    assert isinstance(identity.user, AnonymousUser)
    assert identity.claims["client_id"] == app.client_id
    assert identity.scopes == frozenset({"service"})


@pytest.mark.django_db(transaction=True)
async def test_behind_the_middleware(caplog: pytest.LogCaptureFixture) -> None:
    from channels.db import database_sync_to_async

    def setup() -> tuple[str, str]:
        user = get_user_model().objects.create_user("bob")
        application = make_application("chat-app", user=user)
        return make_access_token(user, application, scope="chat:read"), make_access_token(user, application, expires_in=-1)

    good, old = await database_sync_to_async(setup)()
    caplog.set_level("DEBUG")
    with override_settings(CHANNELS_BEARER=BACKENDS):
        app = build_app()
        comm = communicator(app, subprotocols=["access_token", good])
        connected, subprotocol = await comm.connect()
        assert connected and subprotocol == "access_token"
        await comm.disconnect()
        assert await refused(communicator(app, headers=[(b"authorization", f"Bearer {old}".encode())])) == 4401
        assert await refused(communicator(app, subprotocols=["access_token", "unknown-token-123"])) == 4401
    bearer = [m for m in caplog.records if "refused" in m.getMessage()]
    assert bearer  # the refusals were logged...
    assert_secret_absent(old, caplog, app)  # ...without the token
    assert_secret_absent(good, caplog, app)


def test_check() -> None:
    assert OAuthToolkitBackend.check() == []
    apps_without = [a for a in settings.INSTALLED_APPS if a != "oauth2_provider"]
    with override_settings(INSTALLED_APPS=apps_without):
        assert [m.id for m in OAuthToolkitBackend.check()] == ["channels_bearer.E031"]


class RevocableConsumer(BearerConsumerMixin, AsyncWebsocketConsumer):
    async def connect(self) -> None:
        await self.accept()


@pytest.mark.django_db(transaction=True)
async def test_revoking_a_token_closes_its_open_sockets() -> None:
    from channels.db import database_sync_to_async

    def setup() -> tuple[Any, str, str]:
        user = get_user_model().objects.create_user("carol")
        application = make_application("chat-app", user=user)
        return user, make_access_token(user, application), make_access_token(user, application)

    user, revoked, kept = await database_sync_to_async(setup)()
    with override_settings(CHANNELS_BEARER=BACKENDS):
        app = build_app(("ws/", RevocableConsumer.as_asgi()))
        sockets = []
        for token in (revoked, kept):
            comm = communicator(app, subprotocols=["access_token", token])
            assert (await comm.connect())[0]
            sockets.append(comm)

        def revoke() -> None:
            row = get_access_token_model().objects.get(token_checksum=hashlib.sha256(revoked.encode()).hexdigest())
            row.revoke()

        await database_sync_to_async(revoke)()
        closed = await sockets[0].receive_output(3)
        assert (closed["type"], closed["code"]) == ("websocket.close", 4403)
        assert await sockets[1].receive_nothing(0.3)
        await sockets[1].disconnect()
