"""The demo project with a JWKS provider on a real daphne (JWKSBackend end to end).

The provider is a JWKS served over loopback by this process
(``tests.support.jwks.JWKSServer``); the demo enables JWKSBackend through
``BEARER_JWKS_URL``, ``BEARER_JWT_ISSUER`` and ``BEARER_JWT_AUDIENCE``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.handshake import LogWatch, connect_outcome
from tests.support.jwks import AUDIENCE, JWKS_BACKEND, JWKSServer
from tests.support.servers import Server, start_server

pytestmark = pytest.mark.server


@pytest.fixture(scope="module")
def demo_jwks_server() -> Iterator[JWKSServer]:
    server = JWKSServer()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def demo_daphne(demo_jwks_server: JWKSServer, server_env_base: dict[str, str], server_logs: Path) -> Iterator[Server]:
    env = {
        **server_env_base,
        "BEARER_JWKS_URL": demo_jwks_server.jwks_url,
        "BEARER_JWT_ISSUER": demo_jwks_server.issuer,
        "BEARER_JWT_AUDIENCE": AUDIENCE,
    }
    server = start_server("daphne", env, server_logs)
    yield server
    server.stop()


async def test_demo_accepts_provider_tokens_on_daphne(demo_jwks_server: JWKSServer, demo_daphne: Server) -> None:
    watch = LogWatch(demo_daphne)
    username = f"oidc-{uuid.uuid4().hex[:8]}"
    token = demo_jwks_server.mint(username, jti=f"jti-{username}")

    outcome = await connect_outcome(demo_daphne, subprotocols=["access_token", token], echo="hello")

    assert outcome.opened, outcome
    assert outcome.subprotocol == "access_token"
    assert outcome.frame["user"] == username  # created on first sight
    assert outcome.frame["backend"] == JWKS_BACKEND
    assert outcome.frame["token_id"] == f"jti-{username}"
    assert outcome.frame["expires_at"] is not None

    refused_outcome = await connect_outcome(
        demo_daphne, subprotocols=["access_token", demo_jwks_server.mint(username, aud="someone-else")]
    )
    assert refused_outcome.status == 403  # daphne: close before accept
    await watch.assert_clean(token)
