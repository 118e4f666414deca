"""The shipped backends, alone and behind the middleware (``invalid_token`` refusals)."""

from __future__ import annotations

import asyncio
import base64
import json
from datetime import datetime, timedelta, timezone
from typing import Any

import jwt
import pytest
from channels.db import database_sync_to_async
from django.conf import settings
from django.test import override_settings
from rest_framework_simplejwt.tokens import AccessToken, RefreshToken

from channels_bearer.backends import BaseBackend, DRFTokenBackend, SimpleJWTBackend
from channels_bearer.backends.base import Scope
from channels_bearer.exceptions import ExpiredToken, InactiveUser, InvalidToken
from channels_bearer.identity import BearerIdentity, token_hash_id
from tests.support.tokens import BOTH_BACKENDS, drf_token, jwt_token, seconds_left, short_jwt
from tests.support.apps import assert_secret_absent, build_app, communicator, consumer_ran, refused

pytestmark = pytest.mark.django_db(transaction=True)


class ExplodingBackend(BaseBackend):
    """Fails the way a broken database driver might: quoting the token."""

    async def authenticate(self, token: str, scope: Scope) -> BearerIdentity | None:
        raise RuntimeError(f"lookup failed for key={token!r}")


class DeclineBackend(BaseBackend):
    """Never its kind of token."""

    async def authenticate(self, token: str, scope: Scope) -> BearerIdentity | None:
        return None


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def tampered(token: str) -> str:
    """Same signature, payload naming another user."""
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["user_id"] = str(int(claims["user_id"]) + 1)
    return ".".join([header, _b64(claims), signature])


def alg_none(user: Any) -> str:
    claims = dict(AccessToken.for_user(user).payload)
    return jwt.encode(claims, None, algorithm="none")


def expired(user: Any) -> str:
    token = AccessToken.for_user(user)
    token.set_exp(from_time=datetime.now(timezone.utc) - timedelta(hours=1))
    return str(token)


def foreign_key_signed(user: Any) -> str:
    claims = dict(AccessToken.for_user(user).payload)
    return jwt.encode(claims, "not-the-secret-key-" + "y" * 32, algorithm="HS256")


def _make_bad_token(case: str, alice: Any, user_factory: Any) -> tuple[str, int]:
    """A token that must be refused, and the close code the refusal carries."""
    if case == "unknown DRF token":
        return "0" * 40, 4401
    if case == "unknown opaque token":
        return "no-such-token", 4401
    if case == "expired JWT":
        return expired(alice), 4401
    if case == "tampered JWT":
        return tampered(jwt_token(alice)), 4401
    if case == "JWT signed with another key":
        return foreign_key_signed(alice), 4401
    if case == "alg none JWT":
        return alg_none(alice), 4401
    if case == "refresh token as access token":
        return str(RefreshToken.for_user(alice)), 4401
    if case == "inactive user (DRF)":
        bob = user_factory("bob", is_active=False)
        return drf_token(bob), 4403
    if case == "inactive user (JWT)":
        bob = user_factory("bob", is_active=False)
        return jwt_token(bob), 4403
    if case == "deleted user (DRF)":
        # The token row goes with the user: what is left is an unknown token.
        bob = user_factory("bob")
        token = drf_token(bob)
        bob.delete()
        return token, 4401
    if case == "deleted user (JWT)":
        bob = user_factory("bob")
        token = jwt_token(bob)
        bob.delete()
        return token, 4403
    raise AssertionError(case)


BAD_TOKENS = [
    "unknown DRF token",
    "unknown opaque token",
    "expired JWT",
    "tampered JWT",
    "JWT signed with another key",
    "alg none JWT",
    "refresh token as access token",
    "inactive user (DRF)",
    "inactive user (JWT)",
    "deleted user (DRF)",
    "deleted user (JWT)",
]


@pytest.mark.parametrize("via", ["subprotocol", "header"])
@pytest.mark.parametrize("case", BAD_TOKENS)
async def test_invalid_token_refused_before_consumer(
    case: str, via: str, alice: Any, user_factory: Any, debug_logs: pytest.LogCaptureFixture
) -> None:
    token, expected_code = await database_sync_to_async(_make_bad_token)(case, alice, user_factory)
    kwargs: dict[str, Any] = (
        {"subprotocols": ["access_token", token]}
        if via == "subprotocol"
        else {"headers": [(b"authorization", f"Bearer {token}".encode())]}
    )
    app = build_app()
    with override_settings(CHANNELS_BEARER=BOTH_BACKENDS):
        code = await refused(communicator(app, **kwargs))
    assert code == expected_code
    assert not consumer_ran()
    assert [m.get("reason") for m in app.of_type("websocket.close")] == ["invalid_token"]
    assert_secret_absent(token, debug_logs, app)


async def test_failing_backend_is_a_server_error_without_the_token(
    alice: Any, debug_logs: pytest.LogCaptureFixture
) -> None:
    token = await database_sync_to_async(drf_token)(alice)
    app = build_app()
    with override_settings(CHANNELS_BEARER={"BACKENDS": ["tests.unit.test_backends.ExplodingBackend"]}):
        code = await refused(communicator(app, subprotocols=["access_token", token]))
    assert code == 1011
    assert not consumer_ran()
    assert any("ExplodingBackend" in r.getMessage() and r.levelname == "ERROR" for r in debug_logs.records)
    assert_secret_absent(token, debug_logs, app)


async def test_backends_tried_in_order(alice: Any) -> None:
    token = await database_sync_to_async(drf_token)(alice)
    backends = ["tests.unit.test_backends.DeclineBackend", "channels_bearer.backends.DRFTokenBackend"]
    app = build_app()
    with override_settings(CHANNELS_BEARER={"BACKENDS": backends}):
        comm = communicator(app, subprotocols=["access_token", token])
        assert (await comm.connect())[0]
        await comm.disconnect()
    with override_settings(CHANNELS_BEARER={"BACKENDS": backends[:1]}):
        assert await refused(communicator(build_app(), subprotocols=["access_token", token])) == 4401


async def test_mine_but_invalid_stops_the_chain(alice: Any) -> None:
    # An expired SimpleJWT token is refused by SimpleJWTBackend; a later
    # backend is not asked (it would blow up if it were).
    token = await database_sync_to_async(expired)(alice)
    config = {"BACKENDS": ["channels_bearer.backends.SimpleJWTBackend", "tests.unit.test_backends.ExplodingBackend"]}
    with override_settings(CHANNELS_BEARER=config):
        assert await refused(communicator(build_app(), subprotocols=["access_token", token])) == 4401


# --- BaseBackend ------------------------------------------------------------------


async def test_base_backend_must_be_implemented() -> None:
    with pytest.raises(NotImplementedError, match="BaseBackend must implement"):
        await BaseBackend().authenticate("x", {})


def test_check_user_refuses_inactive_and_missing() -> None:
    class User:
        is_active = False

    with pytest.raises(InactiveUser):
        BaseBackend().check_user(User())
    with pytest.raises(InactiveUser):
        BaseBackend().check_user(None)


# --- DRFTokenBackend ----------------------------------------------------------------


async def test_drf_identity(alice: Any) -> None:
    token = await database_sync_to_async(drf_token)(alice)
    identity = await DRFTokenBackend().authenticate(token, {})
    assert identity is not None
    assert identity.user == alice
    assert identity.token_id == token_hash_id(token)
    assert token not in identity.token_id
    assert identity.expires_at is None
    assert token not in repr(identity)


async def test_drf_not_my_token(alice: Any) -> None:
    backend = DRFTokenBackend()
    assert await backend.authenticate("f" * 40, {}) is None
    # A JWT is longer than any DRF key: skipped without a query.
    long_token = await database_sync_to_async(jwt_token)(alice)
    assert not backend.is_candidate(long_token, backend.get_model())
    assert await backend.authenticate(long_token, {}) is None


def test_drf_selects_user_in_one_query(alice: Any, django_assert_num_queries: Any) -> None:
    token = drf_token(alice)
    backend = DRFTokenBackend()
    with django_assert_num_queries(1):
        found = backend.get_token_object(backend.get_model(), token)
        assert found.user.username == "alice"


def test_drf_token_model_setting(alice: Any) -> None:
    from rest_framework.authtoken.models import Token, TokenProxy

    assert DRFTokenBackend().get_model() is Token
    with override_settings(CHANNELS_BEARER={"DRF_TOKEN_MODEL": "authtoken.TokenProxy"}):
        assert DRFTokenBackend().get_model() is TokenProxy

    class Custom(DRFTokenBackend):
        model = "authtoken.TokenProxy"

    assert Custom().get_model() is TokenProxy


# --- SimpleJWTBackend ---------------------------------------------------------------


async def test_simplejwt_identity(alice: Any) -> None:
    access = await database_sync_to_async(AccessToken.for_user)(alice)
    access["scope"] = "read write"
    token = str(access)
    identity = await SimpleJWTBackend().authenticate(token, {})
    assert identity is not None
    assert identity.user == alice
    assert identity.token_id == access["jti"]
    assert identity.expires_at == datetime.fromtimestamp(access["exp"], tz=timezone.utc)
    assert identity.expires_at.tzinfo is not None
    assert identity.claims["user_id"] == str(alice.pk) or identity.claims["user_id"] == alice.pk
    assert identity.scopes == {"read", "write"}
    assert token not in repr(identity)


async def test_simplejwt_without_jti_uses_hash_prefix(alice: Any) -> None:
    with override_settings(SIMPLE_JWT={**getattr(settings, "SIMPLE_JWT", {}), "JTI_CLAIM": None}):
        token = await database_sync_to_async(jwt_token)(alice)
        identity = await SimpleJWTBackend().authenticate(token, {})
    assert identity is not None
    assert identity.token_id == token_hash_id(token)


async def test_simplejwt_not_my_token(alice: Any) -> None:
    backend = SimpleJWTBackend()
    drf = await database_sync_to_async(drf_token)(alice)
    assert await backend.authenticate(drf, {}) is None
    claims = dict((await database_sync_to_async(AccessToken.for_user)(alice)).payload)
    # Another issuer's JWT belongs to another backend (JWKS, say).
    foreign = jwt.encode({**claims, "iss": "https://idp.example"}, "k" * 32, algorithm="HS256")
    assert await backend.authenticate(foreign, {}) is None
    untyped = jwt.encode({k: v for k, v in claims.items() if k != "token_type"}, "k" * 32, algorithm="HS256")
    assert await backend.authenticate(untyped, {}) is None


@pytest.mark.parametrize(
    ("make", "error"),
    [
        (expired, ExpiredToken),
        (lambda user: tampered(jwt_token(user)), InvalidToken),
        (alg_none, InvalidToken),
        (foreign_key_signed, InvalidToken),
        (lambda user: str(RefreshToken.for_user(user)), InvalidToken),
    ],
)
async def test_simplejwt_refusals(alice: Any, make: Any, error: type[Exception]) -> None:
    token = await database_sync_to_async(make)(alice)
    with pytest.raises(error) as caught:
        await SimpleJWTBackend().authenticate(token, {})
    assert token not in str(caught.value)


async def test_simplejwt_remembers_verified_tokens_but_not_past_their_expiry(alice: Any) -> None:
    backend = SimpleJWTBackend()
    token = await database_sync_to_async(short_jwt)(alice, 1)
    first = await backend.authenticate(token, {})
    again = await backend.authenticate(token, {})
    assert first is not None and again is not None and again.token_id == first.token_id
    assert len(backend._verified) == 1  # the second handshake skipped the signature check
    await asyncio.sleep(seconds_left(token) + 0.2)
    with pytest.raises(ExpiredToken):
        await backend.authenticate(token, {})
    # A token with the same claims but another signature is never taken for the remembered one.
    with pytest.raises(InvalidToken):
        await backend.authenticate(tampered(str(await database_sync_to_async(AccessToken.for_user)(alice))), {})


async def test_simplejwt_inactive_and_deleted(user_factory: Any) -> None:
    def setup() -> tuple[str, str]:
        inactive = user_factory("inactive", is_active=False)
        gone = user_factory("gone")
        gone_token = jwt_token(gone)
        gone.delete()
        return jwt_token(inactive), gone_token

    inactive_token, gone_token = await database_sync_to_async(setup)()
    for token in (inactive_token, gone_token):
        with pytest.raises(InactiveUser):
            await SimpleJWTBackend().authenticate(token, {})


async def test_simplejwt_honours_check_revoke_token(alice: Any) -> None:
    config = {**getattr(settings, "SIMPLE_JWT", {}), "CHECK_REVOKE_TOKEN": True}
    from rest_framework_simplejwt.utils import get_md5_hash_password

    with override_settings(SIMPLE_JWT=config):
        # simplejwt's tokens module keeps the api_settings it imported, so
        # AccessToken.for_user does not see the override: set the claim here.
        token = await database_sync_to_async(jwt_token)(alice, hash_password=get_md5_hash_password(alice.password))
        assert await SimpleJWTBackend().authenticate(token, {}) is not None

        def change_password() -> None:
            alice.set_password("new password")
            alice.save()

        await database_sync_to_async(change_password)()
        with pytest.raises(InactiveUser):
            await SimpleJWTBackend().authenticate(token, {})


BLACKLIST_SCRIPT = """
import asyncio, sys, django
from django.conf import settings
settings.configure(
    INSTALLED_APPS=["django.contrib.auth", "django.contrib.contenttypes", "rest_framework",
                    "rest_framework_simplejwt.token_blacklist", "channels_bearer"],
    DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": sys.argv[1]}},
    SECRET_KEY="s" * 50, USE_TZ=True,
    SIMPLE_JWT={"AUTH_TOKEN_CLASSES": ("rest_framework_simplejwt.tokens.SlidingToken",)},
)
django.setup()
from django.core.management import call_command
call_command("migrate", verbosity=0)
from django.contrib.auth.models import User
from rest_framework_simplejwt.tokens import SlidingToken
from channels_bearer.backends import SimpleJWTBackend
from channels_bearer.exceptions import InvalidToken
token = SlidingToken.for_user(User.objects.create_user("alice"))
print("valid:", asyncio.run(SimpleJWTBackend().authenticate(str(token), {})).user.username)
token.blacklist()
try:
    asyncio.run(SimpleJWTBackend().authenticate(str(token), {}))
except InvalidToken as exc:
    print("blacklisted:", exc.error)
"""


def test_simplejwt_blacklist_app_with_sliding_tokens(tmp_path: Any) -> None:
    # simplejwt decides at import time whether its token classes check the
    # blacklist, so this needs a process whose INSTALLED_APPS has the app.
    # Its check queries the database: it must not run on the event loop.
    import os
    import subprocess
    import sys

    from tests.support.servers import ROOT

    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE" and not k.startswith("PYTEST_")}
    env["PYTHONPATH"] = str(ROOT)
    result = subprocess.run(
        [sys.executable, "-c", BLACKLIST_SCRIPT, str(tmp_path / "db.sqlite3")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[:2] == ["valid: alice", "blacklisted: invalid_token"]
