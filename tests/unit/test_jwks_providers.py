"""``JWKSBackend`` with several providers at once, and algorithms that follow the keys.

Two real key endpoints over loopback (``JWKSServer``), each its own issuer
with its own keys: a token is routed by its ``iss`` and checked with that
provider's keys only.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from channels_bearer.backends import JWKSBackend
from channels_bearer.backends.jwks import check_jwks_providers, implied_algorithm
from channels_bearer.exceptions import InvalidToken
from tests.support.jwks import AUDIENCE, JWKS_BACKEND, JWKSServer, mint
from tests.support.keys import EC_KEY, EC_KID, RSA_KEY_1, RSA_KEY_2, RSA_KID_1, RSA_KID_2, public_jwk

pytestmark = pytest.mark.django_db(transaction=True)


def provider(server: JWKSServer, **extra: Any) -> dict[str, Any]:
    return {"ISSUER": server.issuer, "AUDIENCE": AUDIENCE, "JWKS_URL": server.jwks_url, "CREATE_USERS": True, **extra}


@pytest.fixture
def customers() -> Iterator[JWKSServer]:
    """An RS256 provider (say Auth0 for customers)."""
    server = JWKSServer([public_jwk(RSA_KEY_1, RSA_KID_1, alg="RS256")])
    yield server
    server.stop()


@pytest.fixture
def staff() -> Iterator[JWKSServer]:
    """An ES256 provider (say Azure AD for staff), its key declaring no alg."""
    server = JWKSServer([public_jwk(EC_KEY, EC_KID)])
    yield server
    server.stop()


@pytest.fixture
def both(customers: JWKSServer, staff: JWKSServer) -> Iterator[JWKSBackend]:
    with override_settings(
        CHANNELS_BEARER={"BACKENDS": [JWKS_BACKEND], "JWKS": {"PROVIDERS": [provider(customers), provider(staff)]}}
    ):
        yield JWKSBackend()


async def authenticate(backend: JWKSBackend, token: str) -> Any:
    return await asyncio.wait_for(backend.authenticate(token, {}), 15)


async def test_tokens_of_both_providers_are_accepted(both: JWKSBackend, customers: JWKSServer, staff: JWKSServer) -> None:
    customer = await authenticate(both, customers.mint("carol"))
    employee = await authenticate(both, staff.mint("eve", kid=EC_KID))
    assert (customer.user.username, employee.user.username) == ("carol", "eve")
    # Each provider's keys were fetched from its own server only.
    assert customers.jwks_downloads == 1 and staff.jwks_downloads == 1


async def test_a_token_signed_with_the_other_providers_key_is_refused(
    both: JWKSBackend, customers: JWKSServer, staff: JWKSServer
) -> None:
    # iss says "staff", but the signature is by the customers' key (kid and alg of theirs).
    forged = mint(staff.issuer, "mallory", kid=RSA_KID_1, algorithm="RS256", key=RSA_KEY_1)
    with pytest.raises(InvalidToken):
        await authenticate(both, forged)
    # And the other way round: the staff key's kid, claimed by the customers' issuer.
    forged = mint(customers.issuer, "mallory", kid=EC_KID, algorithm="ES256", key=EC_KEY)
    with pytest.raises(InvalidToken):
        await authenticate(both, forged)
    assert customers.requests["/jwks.json"] <= 2 and staff.requests["/jwks.json"] <= 2


async def test_an_unknown_issuer_is_not_this_backends(both: JWKSBackend) -> None:
    assert await authenticate(both, mint("https://elsewhere.example", "alice")) is None


async def test_an_es256_provider_works_without_algorithms(staff: JWKSServer) -> None:
    with override_settings(CHANNELS_BEARER={"BACKENDS": [JWKS_BACKEND], "JWKS": provider(staff)}):
        identity = await authenticate(JWKSBackend(), staff.mint("eve", kid=EC_KID))
    assert identity.user.username == "eve"


@pytest.mark.parametrize(
    ("jwk_extra", "algorithm", "allowlist", "accepted"),
    [
        ({"alg": "RS256"}, "RS256", None, True),  # the key's own
        ({"alg": "RS256"}, "RS512", None, False),  # another than the key declares
        ({"alg": "PS256"}, "PS256", None, True),  # a key that declares PS256 is for PS256
        ({}, "RS256", None, True),  # no alg: RSA implies RS256
        ({}, "RS384", None, False),
        ({}, "PS256", None, False),
        ({}, "RS384", ["RS384"], True),  # an allowlist says what a key without alg may do
        ({"alg": "RS256"}, "RS256", ["ES256"], False),  # the allowlist narrows
    ],
)
async def test_algorithms_follow_the_keys(
    jwk_extra: dict[str, Any], algorithm: str, allowlist: list[str] | None, accepted: bool
) -> None:
    server = JWKSServer([public_jwk(RSA_KEY_2, RSA_KID_2, **jwk_extra)])
    try:
        jwks = provider(server) if allowlist is None else provider(server, ALGORITHMS=allowlist)
        with override_settings(CHANNELS_BEARER={"BACKENDS": [JWKS_BACKEND], "JWKS": jwks}):
            token = server.mint("alice", kid=RSA_KID_2, algorithm=algorithm)
            if accepted:
                assert (await authenticate(JWKSBackend(), token)).user.username == "alice"
            else:
                with pytest.raises(InvalidToken):
                    await authenticate(JWKSBackend(), token)
    finally:
        server.stop()


def test_implied_algorithms() -> None:
    assert implied_algorithm(public_jwk(RSA_KEY_1, "r")) == "RS256"
    assert implied_algorithm(public_jwk(EC_KEY, "e")) == "ES256"
    assert implied_algorithm({"kty": "EC", "crv": "P-384"}) == "ES384"
    assert implied_algorithm({"kty": "OKP", "crv": "Ed25519"}) == "EdDSA"
    assert implied_algorithm({"kty": "oct"}) is None


GOOD = {"ISSUER": "https://a.example/", "AUDIENCE": "api", "JWKS_URL": "https://a.example/jwks.json"}


@pytest.mark.parametrize(
    ("jwks", "ids"),
    [
        ({"PROVIDERS": [GOOD, {**GOOD, "ISSUER": "https://b.example/"}]}, []),
        ({"PROVIDERS": [GOOD, GOOD]}, ["channels_bearer.E045"]),
        ({"PROVIDERS": []}, ["channels_bearer.E044"]),
        ({"PROVIDERS": "x"}, ["channels_bearer.E044"]),
        ({"PROVIDERS": [GOOD, 3]}, ["channels_bearer.E044"]),
        ({"PROVIDERS": [GOOD], "LEEWAY": 5}, ["channels_bearer.E044"]),
        ({"PROVIDERS": [GOOD, {**GOOD, "ISSUER": "https://b.example/", "AUDIENCE": None}]}, ["channels_bearer.E023"]),
    ],
)
def test_providers_are_checked(jwks: dict[str, Any], ids: list[str]) -> None:
    _, messages = check_jwks_providers(jwks)
    assert [m.id for m in messages] == ids


def test_a_message_names_the_provider_it_is_about() -> None:
    _, messages = check_jwks_providers({"PROVIDERS": [GOOD, {**GOOD, "ISSUER": "https://b.example/", "AUDIENCE": None}]})
    assert "['PROVIDERS'][1]['AUDIENCE']" in messages[0].msg


def test_a_broken_provider_list_stops_the_backend() -> None:
    with override_settings(CHANNELS_BEARER={"BACKENDS": [JWKS_BACKEND], "JWKS": {"PROVIDERS": [GOOD, GOOD]}}):
        with pytest.raises(ImproperlyConfigured, match="ISSUER"):
            JWKSBackend().get_providers()
