"""JWKSBackend against a real JWKS served over loopback, signed with the fixed test keys.

Every wait that could hang is wrapped in ``asyncio.wait_for(..., GUARD)``: a
"does not hang" guard, never a timing assertion.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from typing import Any

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth import get_user_model
from django.core.checks import run_checks
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from channels_bearer.backends import JWKSBackend
from channels_bearer.backends.jwks import check_jwks_settings, parse_jwks
from channels_bearer.exceptions import BackendUnavailable, ExpiredToken, InactiveUser, InvalidToken
from channels_bearer.identity import token_hash_id
from tests.support.encoding import b64url
from tests.support.jwks import AUDIENCE, JWKS_BACKEND, JWKSServer, SilentServer, mint
from tests.support.keys import EC_KEY, EC_KID, RSA_KEY_1, RSA_KEY_2, RSA_KID_1, RSA_KID_2, public_jwk, public_pem
from tests.support.apps import assert_secret_absent, build_app, communicator, refused

pytestmark = pytest.mark.django_db(transaction=True)

GUARD = 15.0


@pytest.fixture
def jwks_server() -> Iterator[JWKSServer]:
    server = JWKSServer([public_jwk(RSA_KEY_1, RSA_KID_1), public_jwk(EC_KEY, EC_KID)])
    yield server
    server.stop()


@pytest.fixture
def configure(jwks_server: JWKSServer) -> Iterator[Callable[..., JWKSBackend]]:
    """Apply ``CHANNELS_BEARER`` for ``jwks_server`` (keys override JWKS settings); return a fresh backend."""
    applied: list[Any] = []

    def apply(**jwks: Any) -> JWKSBackend:
        jwks.setdefault("ALGORITHMS", ["RS256", "ES256"])
        override = override_settings(CHANNELS_BEARER=jwks_server.settings(**jwks))
        override.enable()
        applied.append(override)
        return JWKSBackend()

    yield apply
    for override in reversed(applied):
        override.disable()


async def authenticate(backend: JWKSBackend, token: str) -> Any:
    return await asyncio.wait_for(backend.authenticate(token, {}), GUARD)


def hand_signed(header: dict[str, Any], claims: dict[str, Any], secret: bytes | None) -> str:
    """A JWT built by hand: PyJWT itself refuses to HMAC-sign with a PEM key."""
    signing_input = b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(claims).encode())
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest() if secret else b""
    return signing_input + "." + b64url(signature)


def claims_for(server: JWKSServer, **extra: Any) -> dict[str, Any]:
    now = int(time.time())
    return {"iss": server.issuer, "aud": AUDIENCE, "sub": "mallory", "iat": now, "exp": now + 300, **extra}


# ---------------------------------------------------------------- accepted tokens


async def test_rsa_token_creates_the_user_on_first_sight(jwks_server: JWKSServer, configure: Any) -> None:
    backend = configure()
    exp = int(time.time()) + 120
    token = jwks_server.mint("auth0|alice", exp=exp, jti="jti-1", scope="chat:read chat:write")

    identity = await authenticate(backend, token)

    assert identity.user.username == "auth0|alice"
    assert not identity.user.has_usable_password()
    assert identity.token_id == "jti-1"
    assert identity.expires_at == datetime.fromtimestamp(exp, tz=timezone.utc)
    assert identity.scopes == frozenset({"chat:read", "chat:write"})
    assert identity.claims["sub"] == "auth0|alice"
    # Second sight: the same user, not a new one.
    again = await authenticate(backend, jwks_server.mint("auth0|alice"))
    assert again.user.pk == identity.user.pk
    assert await database_sync_to_async(get_user_model().objects.filter(username="auth0|alice").count)() == 1


async def test_ec_token_and_token_id_without_jti(jwks_server: JWKSServer, configure: Any) -> None:
    backend = configure()
    token = jwks_server.mint("bob", kid=EC_KID, jti=None, scp=["read", "write"])
    identity = await authenticate(backend, token)
    assert identity.user.username == "bob"
    assert identity.token_id == token_hash_id(token)
    assert identity.scopes == frozenset({"read", "write"})


async def test_scope_claim_setting_reads_another_claim(jwks_server: JWKSServer, configure: Any) -> None:
    backend = configure(SCOPE_CLAIM="permissions")
    identity = await authenticate(backend, jwks_server.mint(permissions=["chat:read"], scope="openid"))
    assert identity.scopes == frozenset({"chat:read"})


async def test_discovery_document_leads_to_the_keys(jwks_server: JWKSServer, configure: Any) -> None:
    backend = configure(JWKS_URL=None, DISCOVERY_URL=jwks_server.discovery_url)
    identity = await authenticate(backend, jwks_server.mint("carol"))
    assert identity.user.username == "carol"
    assert jwks_server.requests["/.well-known/openid-configuration"] == 1
    assert jwks_server.jwks_downloads == 1


async def test_discovery_document_of_another_issuer_is_not_trusted(jwks_server: JWKSServer, configure: Any) -> None:
    backend = configure(JWKS_URL=None, DISCOVERY_URL=jwks_server.discovery_url, ISSUER=jwks_server.issuer + "/other")
    with pytest.raises(BackendUnavailable):
        await authenticate(backend, mint(jwks_server.issuer + "/other"))
    assert jwks_server.jwks_downloads == 0


async def test_user_from_claims_hook(jwks_server: JWKSServer, configure: Any) -> None:
    backend = configure(USER_FROM_CLAIMS="tests.unit.test_jwks.user_from_claims", CREATE_USERS=False)
    identity = await authenticate(backend, jwks_server.mint("dave", email="dave@example.com"))
    assert identity.user.username == "hook-dave"
    assert identity.user.email == "dave@example.com"
    with pytest.raises(InactiveUser):
        await authenticate(backend, jwks_server.mint("nobody"))


def user_from_claims(claims: dict[str, Any]) -> Any:
    """The hook the test above configures: create or update users from claims."""
    if claims["sub"] == "nobody":
        return None
    user, _ = get_user_model().objects.update_or_create(
        username="hook-" + claims["sub"], defaults={"email": claims.get("email", "")}
    )
    return user


async def test_unknown_user_refused_without_create_users(jwks_server: JWKSServer, configure: Any) -> None:
    backend = configure(CREATE_USERS=False)
    with pytest.raises(InactiveUser):
        await authenticate(backend, jwks_server.mint("stranger"))
    assert not await database_sync_to_async(get_user_model().objects.filter(username="stranger").exists)()


async def test_inactive_user_refused(jwks_server: JWKSServer, configure: Any) -> None:
    backend = configure()
    await database_sync_to_async(get_user_model().objects.create_user)("erin", is_active=False)
    with pytest.raises(InactiveUser):
        await authenticate(backend, jwks_server.mint("erin"))


# ---------------------------------------------------------------- not ours


async def test_tokens_of_other_issuers_are_left_to_other_backends(jwks_server: JWKSServer, configure: Any) -> None:
    backend = configure()
    assert await authenticate(backend, mint("https://someone-else.example/", kid=RSA_KID_1)) is None
    assert await authenticate(backend, "0123456789abcdef0123456789abcdef01234567") is None
    assert await authenticate(backend, "not.a.jwt") is None
    # Nothing was fetched for them.
    assert jwks_server.jwks_downloads == 0


# ---------------------------------------------------------------- refused tokens


def refusals(server: JWKSServer) -> dict[str, tuple[str, type[Exception]]]:
    now = int(time.time())
    return {
        "wrong audience": (server.mint(aud="https://other-api.example"), InvalidToken),
        "expired": (server.mint(exp=now - 60, iat=now - 360), ExpiredToken),
        "not yet valid": (server.mint(nbf=now + 600), InvalidToken),
        "issued in the future": (server.mint(iat=now + 600), InvalidToken),
        "no exp": (server.mint(exp=None), InvalidToken),
        "no aud": (server.mint(aud=None), InvalidToken),
        "no sub": (server.mint(sub=None), InvalidToken),
        "signed by another key under a known kid": (mint(server.issuer, kid=RSA_KID_1, key=RSA_KEY_2), InvalidToken),
        "payload tampered": (tamper(server.mint("alice")), InvalidToken),
        "alg confusion: HS256 with the public key": (
            hand_signed({"alg": "HS256", "typ": "JWT", "kid": RSA_KID_1}, claims_for(server), public_pem(RSA_KEY_1)),
            InvalidToken,
        ),
        "alg none": (hand_signed({"alg": "none", "typ": "JWT", "kid": RSA_KID_1}, claims_for(server), None), InvalidToken),
        "RS256 header on the EC key": (mint(server.issuer, kid=EC_KID, algorithm="RS256", key=RSA_KEY_1), InvalidToken),
        "PS256, not in the allowlist": (server.mint(algorithm="PS256"), InvalidToken),
        "unknown kid": (mint(server.issuer, kid="no-such-kid", key=RSA_KEY_1), InvalidToken),
    }


def tamper(token: str) -> str:
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["sub"] = "admin"
    return ".".join([header, b64url(json.dumps(claims).encode()), signature])


REFUSAL_CASES = [
    "wrong audience",
    "expired",
    "not yet valid",
    "issued in the future",
    "no exp",
    "no aud",
    "no sub",
    "signed by another key under a known kid",
    "payload tampered",
    "alg confusion: HS256 with the public key",
    "alg none",
    "RS256 header on the EC key",
    "PS256, not in the allowlist",
    "unknown kid",
]


@pytest.mark.parametrize("case", REFUSAL_CASES)
async def test_refused(jwks_server: JWKSServer, configure: Any, case: str, caplog: pytest.LogCaptureFixture) -> None:
    backend = configure()
    token, expected = refusals(jwks_server)[case]
    with pytest.raises(expected) as raised:
        await authenticate(backend, token)
    assert type(raised.value) is expected
    # Fixed messages: no part of the token in what gets logged or sent.
    for piece in token.split("."):
        if len(piece) >= 8:
            assert piece not in str(raised.value)
    assert not await database_sync_to_async(get_user_model().objects.filter(username__in=["mallory", "admin"]).exists)()


def test_refusal_cases_are_all_tested(jwks_server: JWKSServer) -> None:
    assert sorted(refusals(jwks_server)) == sorted(REFUSAL_CASES)


async def test_refused_behind_the_middleware_without_leaking(
    jwks_server: JWKSServer, configure: Any, caplog: pytest.LogCaptureFixture
) -> None:
    configure()
    caplog.set_level("DEBUG")
    app = build_app()
    token = jwks_server.mint(exp=int(time.time()) - 60)
    code = await refused(communicator(app, subprotocols=["access_token", token]))
    assert code == 4401
    assert_secret_absent(token, caplog, app)

    good = jwks_server.mint("frank")
    comm = communicator(app, subprotocols=["access_token", good])
    connected, subprotocol = await comm.connect()
    assert connected and subprotocol == "access_token"
    await comm.disconnect()
    assert_secret_absent(good, caplog, app)


# ---------------------------------------------------------------- keys: rotation, outage, threads


async def test_rotated_key_is_fetched_at_once_and_retired_key_refused(jwks_server: JWKSServer, configure: Any) -> None:
    backend = configure(REFRESH_COOLDOWN=0)
    assert (await authenticate(backend, jwks_server.mint("alice"))).user.username == "alice"
    assert jwks_server.jwks_downloads == 1

    # The server publishes a new key: its tokens work right away.
    jwks_server.keys = [public_jwk(RSA_KEY_1, RSA_KID_1), public_jwk(RSA_KEY_2, RSA_KID_2)]
    assert (await authenticate(backend, jwks_server.mint("alice", kid=RSA_KID_2))).user.username == "alice"
    assert jwks_server.jwks_downloads == 2

    # The old key is retired: once the set is fetched again, its tokens are refused.
    jwks_server.keys = [public_jwk(RSA_KEY_2, RSA_KID_2)]
    with pytest.raises(InvalidToken):
        await authenticate(backend, mint(jwks_server.issuer, kid="yet-another", key=RSA_KEY_2))
    with pytest.raises(InvalidToken):
        await authenticate(backend, jwks_server.mint("alice", kid=RSA_KID_1))
    assert (await authenticate(backend, jwks_server.mint("alice", kid=RSA_KID_2))).user.username == "alice"


async def test_first_download_does_not_start_the_cooldown(jwks_server: JWKSServer, configure: Any) -> None:
    # PyJWKClient refuses a key rotated in within 30 s of its first download.
    backend = configure()  # default REFRESH_COOLDOWN
    await authenticate(backend, jwks_server.mint("alice"))
    jwks_server.keys = [*jwks_server.keys, public_jwk(RSA_KEY_2, RSA_KID_2)]
    assert (await authenticate(backend, jwks_server.mint("alice", kid=RSA_KID_2))).user.username == "alice"
    assert jwks_server.jwks_downloads == 2


async def test_forged_kids_cannot_hammer_the_server(jwks_server: JWKSServer, configure: Any) -> None:
    backend = configure(REFRESH_COOLDOWN=3600)
    await authenticate(backend, jwks_server.mint("alice"))
    for n in range(5):
        with pytest.raises(InvalidToken):
            await authenticate(backend, mint(jwks_server.issuer, kid=f"forged-{n}", key=RSA_KEY_2))
    # One download forced by the first unknown kid, none for the others.
    assert jwks_server.jwks_downloads == 2
    # Known keys keep working meanwhile.
    assert (await authenticate(backend, jwks_server.mint("alice"))).user.username == "alice"


async def test_server_down_cached_keys_work_and_unknown_kid_refused(
    jwks_server: JWKSServer, configure: Any, caplog: pytest.LogCaptureFixture
) -> None:
    # CACHE_LIFESPAN=0: every handshake finds the cache stale and tries the server.
    backend = configure(CACHE_LIFESPAN=0, REFRESH_COOLDOWN=0)
    await authenticate(backend, jwks_server.mint("alice"))
    jwks_server.stop()

    caplog.set_level("WARNING")
    token = jwks_server.mint("alice")
    assert (await authenticate(backend, token)).user.username == "alice"
    assert "Could not fetch the JWKS" in caplog.text
    unknown = mint(jwks_server.issuer, kid="rotated-while-down", key=RSA_KEY_2)
    with pytest.raises(InvalidToken):
        await authenticate(backend, unknown)
    assert (await authenticate(backend, jwks_server.mint("alice", kid=EC_KID))).user.username == "alice"
    assert_secret_absent(token, caplog)
    assert_secret_absent(unknown, caplog)


async def test_hung_server_is_given_up_on(configure: Any, jwks_server: JWKSServer) -> None:
    silent = SilentServer()
    try:
        backend = configure(JWKS_URL=silent.url, FETCH_TIMEOUT=0.5, REFRESH_COOLDOWN=3600)
        token = jwks_server.mint("alice")
        # Never fetched: the server is unavailable, not the token invalid.
        with pytest.raises(BackendUnavailable):
            await authenticate(backend, token)
        # Within the cooldown no new attempt: refused at once.
        with pytest.raises(BackendUnavailable):
            await authenticate(backend, token)
    finally:
        silent.close()


async def test_download_runs_off_the_loop_and_off_the_database_thread(jwks_server: JWKSServer, configure: Any) -> None:
    backend = configure(FETCH_TIMEOUT=GUARD)
    jwks_server.gate.clear()
    handshakes = [asyncio.create_task(backend.authenticate(jwks_server.mint("alice"), {})) for _ in range(5)]
    assert await asyncio.to_thread(jwks_server.waiting.wait, GUARD), "the JWKS was never requested"

    # The download is stuck in the server; the database thread is free...
    name = await asyncio.wait_for(database_sync_to_async(lambda: threading.current_thread().name)(), GUARD)
    assert not any(task.done() for task in handshakes)
    assert "jwks" not in name
    # ...and so is the event loop (this line runs).
    jwks_server.gate.set()
    identities = await asyncio.wait_for(asyncio.gather(*handshakes), GUARD)
    assert {identity.user.username for identity in identities} == {"alice"}
    # The five handshakes shared one download.
    assert jwks_server.jwks_downloads == 1


async def test_known_key_does_not_wait_for_a_stuck_download(jwks_server: JWKSServer, configure: Any) -> None:
    backend = configure(FETCH_TIMEOUT=GUARD, REFRESH_COOLDOWN=0)
    await authenticate(backend, jwks_server.mint("alice"))
    jwks_server.gate.clear()
    # An unknown kid starts a download, which the server holds...
    stuck = asyncio.create_task(backend.authenticate(mint(jwks_server.issuer, kid="new", key=RSA_KEY_2), {}))
    assert await asyncio.to_thread(jwks_server.waiting.wait, GUARD)
    # ...while tokens signed by known keys go through.
    assert (await authenticate(backend, jwks_server.mint("alice", kid=EC_KID))).user.username == "alice"
    assert not stuck.done()
    jwks_server.gate.set()
    with pytest.raises(InvalidToken):
        await asyncio.wait_for(stuck, GUARD)


def test_jwks_parsing_drops_secret_and_encryption_keys() -> None:
    rsa = public_jwk(RSA_KEY_1, RSA_KID_1)
    named, unnamed = parse_jwks(
        {
            "keys": [
                rsa,
                {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"},
                {**public_jwk(RSA_KEY_2, "enc"), "use": "enc"},
                {**public_jwk(EC_KEY, "wrap"), "key_ops": ["wrapKey"]},
                {k: v for k, v in public_jwk(EC_KEY, "x").items() if k != "kid"},
                "garbage",
            ]
        }
    )
    assert list(named) == [RSA_KID_1]
    assert len(unnamed) == 1
    with pytest.raises(ValueError):
        parse_jwks({"keys": "nope"})


# ---------------------------------------------------------------- settings and checks


def ids(messages: list[Any]) -> list[str]:
    return sorted(m.id for m in messages)


GOOD = {"ISSUER": "https://issuer.example/", "AUDIENCE": "api", "JWKS_URL": "https://issuer.example/jwks.json"}


@pytest.mark.parametrize(
    ("jwks", "expected"),
    [
        (GOOD, []),
        ({**GOOD, "AUDIENCE": ["api", "api2"], "ALGORITHMS": ["RS256", "ES256", "EdDSA"]}, []),
        ({**GOOD, "JWKS_URL": None, "DISCOVERY_URL": "https://issuer.example/.well-known/openid-configuration"}, []),
        ({"AUDIENCE": "api", "JWKS_URL": GOOD["JWKS_URL"]}, ["channels_bearer.E022"]),
        ({"ISSUER": GOOD["ISSUER"], "JWKS_URL": GOOD["JWKS_URL"]}, ["channels_bearer.E023"]),
        ({**GOOD, "AUDIENCE": []}, ["channels_bearer.E023"]),
        ({"ISSUER": GOOD["ISSUER"], "AUDIENCE": "api"}, ["channels_bearer.E041"]),
        ({**GOOD, "JWKS_URL": "ftp://issuer.example/jwks"}, ["channels_bearer.E024"]),
        ({**GOOD, "ALGORITHMS": ["RS256", "none"]}, ["channels_bearer.E025"]),
        ({**GOOD, "ALGORITHMS": ["HS256"]}, ["channels_bearer.E025"]),
        ({**GOOD, "ALGORITHMS": "RS256"}, ["channels_bearer.E025"]),
        ({**GOOD, "ALGORITHMS": []}, ["channels_bearer.E025"]),
        ({**GOOD, "AUDIENCES": "api"}, ["channels_bearer.E040"]),
        ({**GOOD, "LEEWAY": -1}, ["channels_bearer.E027"]),
        ({**GOOD, "FETCH_TIMEOUT": 0}, ["channels_bearer.E027"]),
        ({**GOOD, "USER_FROM_CLAIMS": "tests.unit.test_jwks.no_such_hook"}, ["channels_bearer.E028"]),
        ({**GOOD, "USER_FIELD": "nickname"}, ["channels_bearer.E043"]),
        ({**GOOD, "SCOPE_CLAIM": ""}, ["channels_bearer.E042"]),
        ({**GOOD, "USER_CLAIM": ""}, ["channels_bearer.E029"]),
        ({**GOOD, "JWKS_URL": "http://issuer.example/jwks.json"}, ["channels_bearer.W020"]),
        ({**GOOD, "JWKS_URL": "http://127.0.0.1:8080/jwks.json"}, []),
        ({**GOOD, "DISCOVERY_URL": "https://issuer.example/.well-known/openid-configuration"}, ["channels_bearer.W021"]),
        ({**GOOD, "FETCH_TIMEOUT": 10}, ["channels_bearer.W022"]),
    ],
)
def test_check_ids(jwks: dict[str, Any], expected: list[str]) -> None:
    with override_settings(CHANNELS_BEARER={"BACKENDS": [JWKS_BACKEND], "JWKS": jwks}):
        found = JWKSBackend.check()
        assert ids(found) == expected
        # Django's own check run includes them (checks.py asks each backend).
        assert set(expected) <= {m.id for m in run_checks()}
    for message in found:
        assert message.hint


def test_check_ids_are_in_the_jwks_range() -> None:
    _, messages = check_jwks_settings({"ALGORITHMS": ["none"], "LEEWAY": "x", "BOGUS": 1, "USER_FIELD": 3})
    assert messages
    for message in messages:
        number = int(message.id.rsplit(".", 1)[1][1:])
        assert 20 <= number <= 29 or 40 <= number <= 49


def test_bad_settings_fail_loudly_at_use() -> None:
    with override_settings(CHANNELS_BEARER={"BACKENDS": [JWKS_BACKEND], "JWKS": {**GOOD, "ALGORITHMS": ["HS256"]}}):
        with pytest.raises(ImproperlyConfigured, match="ALGORITHMS"):
            JWKSBackend().get_config()


def test_check_reports_a_jwks_setting_that_is_not_a_dict() -> None:
    from channels_bearer.checks import check_settings

    with override_settings(CHANNELS_BEARER={"BACKENDS": [JWKS_BACKEND], "JWKS": ["not", "a", "dict"]}):
        # Once: by the core validator, not again by the backend.
        assert ids(check_settings()) == ["channels_bearer.E026"]
