"""Scopes per consumer on a real uvicorn: a token without the scope gets ``403``
with ``WWW-Authenticate: Bearer error="insufficient_scope", scope="..."``.

The app is ``tests.support.oauth``'s (a scoped consumer behind the middleware,
with django-oauth-toolkit's models), for JWKS, oauth-toolkit and SimpleJWT tokens.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest

from tests.support.handshake import LogWatch, connect_outcome, sign_jwt
from tests.support.jwks import JWKS_BACKEND, JWKSServer
from tests.support.oauth import REQUIRED_SCOPE, SCOPED_PATH, start_scoped_server
from tests.support.servers import Server

pytestmark = pytest.mark.server

OAUTH = "channels_bearer.backends.OAuthToolkitBackend"
SIMPLEJWT = "channels_bearer.backends.SimpleJWTBackend"
KINDS = ["jwks", "oauth-toolkit", "simplejwt"]


@pytest.fixture(scope="module")
def jwks_server() -> Iterator[JWKSServer]:
    server = JWKSServer()
    yield server
    server.stop()


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
    # A SimpleJWT access token as the server mints them, signed with its key
    # (the demo's SECRET_KEY), not with this process' own.
    now = int(time.time())
    claims = {"token_type": "access", "exp": now + 300, "iat": now, "jti": uuid.uuid4().hex, "user_id": str(ALICE_ID)}
    return sign_jwt({**claims, "scope": scope})


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
