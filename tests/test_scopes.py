"""Scopes per consumer (``bearer_scopes``) for JWKS, oauth-toolkit and SimpleJWT tokens.

In process through Channels' communicator, and on a real uvicorn, where a
token without the scope gets ``403`` with ``WWW-Authenticate: Bearer
error="insufficient_scope"``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth import get_user_model
from django.test import override_settings
from rest_framework_simplejwt.tokens import AccessToken

from tests.handshake_support import LogWatch, connect_outcome
from tests.jwks_support import JWKS_BACKEND, JWKSServer
from tests.oauth_support import REQUIRED_SCOPE, SCOPED_PATH, ScopedConsumer, make_access_token, make_application, start_scoped_server
from tests.servers import Server
from tests.unit_support import bearer_defaults, build_app, communicator, refused  # noqa: F401

OAUTH = "channels_bearer.backends.OAuthToolkitBackend"
SIMPLEJWT = "channels_bearer.backends.SimpleJWTBackend"
KINDS = ["jwks", "oauth-toolkit", "simplejwt"]
GUARD = 15.0


def simplejwt_token(user_id: int, scope: str) -> str:
    token = AccessToken()
    token["user_id"] = str(user_id)
    token["scope"] = scope
    return str(token)


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


# ---------------------------------------------------------------- on uvicorn

ALICE_ID = 4242


@pytest.fixture(scope="module")
def scoped_tokens() -> dict[str, str]:
    # Opaque toolkit tokens, chosen here and saved by the server at start-up.
    return {"with": "oauth-with-scope-0123456789abcdef", "without": "oauth-without-scope-0123456789abcd"}


@pytest.fixture(scope="module")
def scoped_uvicorn(
    jwks_server: JWKSServer, scoped_tokens: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    settings = jwks_server.settings()
    settings["BACKENDS"] = [SIMPLEJWT, JWKS_BACKEND, OAUTH]
    fixtures = {
        "users": [{"username": "alice", "id": ALICE_ID}],
        "oauth_tokens": [
            {"token": scoped_tokens["with"], "user": "alice", "scope": f"profile {REQUIRED_SCOPE}"},
            {"token": scoped_tokens["without"], "user": "alice", "scope": "profile"},
        ],
    }
    server = start_scoped_server(tmp_path_factory.mktemp("scoped"), settings=settings, fixtures=fixtures)
    yield server
    server.stop()


def uvicorn_token(kind: str, jwks_server: JWKSServer, scoped_tokens: dict[str, str], with_scope: bool) -> str:
    scope = f"profile {REQUIRED_SCOPE}" if with_scope else "profile"
    if kind == "jwks":
        return jwks_server.mint("alice", scope=scope)
    if kind == "oauth-toolkit":
        return scoped_tokens["with" if with_scope else "without"]
    return simplejwt_token(ALICE_ID, scope)  # signed with the demo's SECRET_KEY, as the server's


@pytest.mark.server
@pytest.mark.parametrize("kind", KINDS)
async def test_uvicorn_answers_403_insufficient_scope(
    scoped_uvicorn: Server, jwks_server: JWKSServer, scoped_tokens: dict[str, str], kind: str
) -> None:
    watch = LogWatch(scoped_uvicorn)
    good = uvicorn_token(kind, jwks_server, scoped_tokens, with_scope=True)
    opened = await connect_outcome(scoped_uvicorn, SCOPED_PATH, subprotocols=["access_token", good])
    assert opened.opened, (opened, scoped_uvicorn.log()[-3000:])
    assert opened.frame["user"] == "alice"
    assert REQUIRED_SCOPE in opened.frame["scopes"]

    bad = uvicorn_token(kind, jwks_server, scoped_tokens, with_scope=False)
    outcome = await connect_outcome(scoped_uvicorn, SCOPED_PATH, subprotocols=["access_token", bad])
    assert outcome.status == 403, outcome
    # RFC 6750 section 3: the challenge names the scope the consumer needs.
    assert outcome.headers["www-authenticate"] == f'Bearer error="insufficient_scope", scope="{REQUIRED_SCOPE}"'
    await watch.assert_clean(good, bad)
