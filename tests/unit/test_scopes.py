"""Scopes per consumer (``bearer_scopes``) for JWKS, oauth-toolkit and SimpleJWT tokens, in process.

The same on a real uvicorn: ``tests/integration/test_scopes_servers.py``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth import get_user_model
from django.test import override_settings

from tests.support.jwks import JWKS_BACKEND, JWKSServer
from tests.support.oauth import simplejwt_token
from tests.support.oauth import REQUIRED_SCOPE, SCOPED_PATH, ScopedConsumer, make_access_token, make_application
from tests.support.apps import build_app, communicator, refused

OAUTH = "channels_bearer.backends.OAuthToolkitBackend"
SIMPLEJWT = "channels_bearer.backends.SimpleJWTBackend"
KINDS = ["jwks", "oauth-toolkit", "simplejwt"]
GUARD = 15.0


@pytest.fixture(scope="module")
def jwks_server() -> Iterator[JWKSServer]:
    server = JWKSServer()
    yield server
    server.stop()


# ---------------------------------------------------------------- in process


@pytest.fixture
def minter(jwks_server: JWKSServer, transactional_db: None) -> Iterator[Callable[[str, str], str]]:
    """``mint(kind, scope)``: a token of that kind for alice, carrying ``scope``."""
    settings = jwks_server.settings()
    settings["BACKENDS"] = [SIMPLEJWT, JWKS_BACKEND, OAUTH]
    with override_settings(CHANNELS_BEARER=settings):
        alice = get_user_model().objects.create_user("alice")
        application = make_application(user=alice)

        def mint(kind: str, scope: str) -> str:
            if kind == "jwks":
                return jwks_server.mint("alice", scope=scope)
            if kind == "oauth-toolkit":
                return make_access_token(alice, application, scope=scope)
            return simplejwt_token(alice.pk, scope)

        yield mint


@pytest.mark.parametrize("kind", KINDS)
async def test_scope_present_accepted(minter: Any, kind: str) -> None:
    token = await database_sync_to_async(minter)(kind, f"profile {REQUIRED_SCOPE}")
    comm = communicator(build_app(("ws/scoped/", ScopedConsumer.as_asgi())), SCOPED_PATH, subprotocols=["access_token", token])
    connected, subprotocol = await asyncio.wait_for(comm.connect(), GUARD)
    assert connected and subprotocol == "access_token"
    report = await comm.receive_json_from()
    assert report["user"] == "alice"
    assert REQUIRED_SCOPE in report["scopes"]
    await comm.disconnect()


@pytest.mark.parametrize("kind", KINDS)
async def test_scope_missing_refused(minter: Any, kind: str) -> None:
    token = await database_sync_to_async(minter)(kind, "profile chat:write")
    app = build_app(("ws/scoped/", ScopedConsumer.as_asgi()))
    assert await refused(communicator(app, SCOPED_PATH, subprotocols=["access_token", token])) == 4403
    assert app.of_type("websocket.close")[0]["reason"] == "insufficient_scope"


@pytest.mark.parametrize("kind", KINDS)
async def test_scope_missing_in_close_mode(minter: Any, kind: str) -> None:
    token = await database_sync_to_async(minter)(kind, "profile")
    app = build_app(("ws/scoped/", ScopedConsumer.as_asgi()))
    from channels_bearer.conf import conf

    with override_settings(CHANNELS_BEARER={**conf.current().raw, "REFUSAL": "close"}):
        comm = communicator(app, SCOPED_PATH, subprotocols=["access_token", token])
        connected, subprotocol = await asyncio.wait_for(comm.connect(), GUARD)
        # Accepted with the marker (a browser fails a handshake otherwise), then closed: do not retry.
        assert connected and subprotocol == "access_token"
        closed = await comm.receive_output(GUARD)
        assert closed == {"type": "websocket.close", "code": 4403, "reason": "insufficient_scope"}
