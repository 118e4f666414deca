"""Cached lookups (``CHANNELS_BEARER["CACHE"]``) for DRFTokenBackend and OAuthToolkitBackend.

Backends are driven from sync tests through ``async_to_sync``; their database
work runs on channels-bearer's lookup thread, where ``counted()`` counts it
too, on committed data (``transaction=True``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import django
import pytest
from asgiref.sync import async_to_sync
from django.core.cache import caches
from django.test import override_settings
from oauth2_provider.models import get_access_token_model
from rest_framework.authtoken.models import Token, TokenProxy

from channels_bearer.backends import DRFTokenBackend, JWKSBackend, OAuthToolkitBackend, SimpleJWTBackend
from channels_bearer.backends.base import BaseBackend
from channels_bearer.cache import DRF, cached_lookup, entry_key
from channels_bearer.identity import token_digest, token_hash_id
from channels_bearer.exceptions import InactiveUser
from tests.support.oauth import make_access_token, make_application
from tests.support.queries import counted
from tests.support.servers import free_port
from tests.support.apps import assert_secret_absent
from tests.support.tokens import drf_token

pytestmark = pytest.mark.django_db(transaction=True)

DOWN = "channels-bearer-down"


@pytest.fixture(autouse=True)
def cached() -> Iterator[None]:
    caches_setting = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "lookup-tests"},
        # A real Redis client pointed at a port nobody listens on: a cache that is down.
        DOWN: {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": f"redis://127.0.0.1:{free_port()}/0"},
    }
    with override_settings(CACHES=caches_setting, CHANNELS_BEARER={"CACHE": "default", "CACHE_TTL": 60}):
        caches["default"].clear()
        yield
        caches["default"].clear()


def authenticate(backend: BaseBackend, token: str) -> tuple[Any, int]:
    """``(identity or None, number of database queries)``."""
    with counted() as statements:
        identity = async_to_sync(backend.authenticate)(token, {})
    return identity, statements.count


def oauth_token(user: Any, scope: str = "chat:read") -> str:
    return make_access_token(user, make_application(user=user), scope=scope)


# ---------------------------------------------------------------- hits


@pytest.mark.parametrize("kind", ["drf", "oauth"])
def test_hit_makes_no_query(alice: Any, kind: str) -> None:
    backend: BaseBackend = DRFTokenBackend() if kind == "drf" else OAuthToolkitBackend()
    token = drf_token(alice) if kind == "drf" else oauth_token(alice)

    first, misses = authenticate(backend, token)
    second, hits = authenticate(backend, token)

    assert misses > 0
    assert hits == 0
    assert first.user == second.user == alice
    assert second.token_id == first.token_id
    assert second.scopes == first.scopes
    assert second.expires_at == first.expires_at



@pytest.mark.parametrize("kind", ["drf", "oauth", "knox", "simplejwt"])
def test_a_hit_never_leaves_the_event_loop(alice: Any, kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # "0 queries and no thread switch on a hit" (issue 15): every lookup that
    # leaves the loop goes through database.run (the lookup thread); a hit
    # never calls it. The real function runs; the wrapper only counts.
    from knox.models import AuthToken

    from channels_bearer import database
    from channels_bearer.backends import KnoxTokenBackend

    backend, token = {
        "drf": lambda: (DRFTokenBackend(), drf_token(alice)),
        "oauth": lambda: (OAuthToolkitBackend(), oauth_token(alice)),
        "knox": lambda: (KnoxTokenBackend(), AuthToken.objects.create(alice)[1]),
        "simplejwt": lambda: (SimpleJWTBackend(), simplejwt(alice)),
    }[kind]()
    real, calls = database.run, []

    async def counting(function: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(function)
        return await real(function, *args, **kwargs)

    monkeypatch.setattr(database, "run", counting)
    assert authenticate(backend, token)[0].user == alice and len(calls) == 1  # the miss: one trip
    identity, queries = authenticate(backend, token)
    assert (identity.user, queries, calls[1:]) == (alice, 0, [])

def test_without_cache_every_lookup_queries(alice: Any) -> None:
    token = drf_token(alice)
    with override_settings(CHANNELS_BEARER={"CACHE": None}):
        assert authenticate(DRFTokenBackend(), token)[1] == 1
        assert authenticate(DRFTokenBackend(), token)[1] == 1


def test_cache_holds_no_token_text(alice: Any) -> None:
    tokens = [drf_token(alice), oauth_token(alice)]
    authenticate(DRFTokenBackend(), tokens[0])
    authenticate(OAuthToolkitBackend(), tokens[1])
    store = caches["default"]._cache  # type: ignore[attr-defined]  # LocMemCache's dict: key -> pickled value
    assert len(store) >= 2
    for token in tokens:
        for key, value in store.items():
            assert token not in key
            assert token_digest(token) not in key  # not even the bare SHA-256 (oauth's stored checksum)
            assert token_hash_id(token) not in key  # nor the token id
            assert token.encode() not in value


def test_an_unknown_token_is_remembered_briefly(alice: Any) -> None:
    assert authenticate(DRFTokenBackend(), "f" * 40) == (None, 1)
    # A storm of retries with a dead token costs no more queries...
    assert authenticate(DRFTokenBackend(), "f" * 40) == (None, 0)
    with override_settings(CHANNELS_BEARER={"CACHE": "default", "NEGATIVE_CACHE_TTL": 0}):
        assert authenticate(DRFTokenBackend(), "e" * 40) == (None, 1)
        assert authenticate(DRFTokenBackend(), "e" * 40) == (None, 1)


def test_a_new_token_row_is_never_hidden_by_an_unknown_entry(alice: Any) -> None:
    key = "0123456789abcdef0123456789abcdef01234567"
    assert authenticate(DRFTokenBackend(), key) == (None, 1)
    Token.objects.create(key=key, user=alice)
    identity, _ = authenticate(DRFTokenBackend(), key)
    assert identity is not None and identity.user == alice
    # ...and the new row is cached at once.
    assert authenticate(DRFTokenBackend(), key)[1] == 0


def test_a_lookup_that_missed_a_new_row_cannot_write_unknown_over_it(alice: Any) -> None:
    key = "89abcdef0123456789abcdef0123456789abcdef"

    def load() -> Any:
        # A lookup in flight read "no such row"; the row is created before it
        # writes its answer.
        Token.objects.create(key=key, user=alice)
        return None

    assert cached_lookup(DRF, token_hash_id(key), load) is None
    identity, _ = authenticate(DRFTokenBackend(), key)
    assert identity is not None and identity.user == alice


# ---------------------------------------------------------------- invalidation


@pytest.mark.parametrize("how", ["delete", "admin proxy delete", "user deleted"])
def test_deleted_drf_token_dropped_at_once(alice: Any, how: str) -> None:
    token = drf_token(alice)
    backend = DRFTokenBackend()
    authenticate(backend, token)
    assert authenticate(backend, token)[1] == 0
    if how == "delete":
        Token.objects.get(key=token).delete()
    elif how == "admin proxy delete":
        TokenProxy.objects.filter(key=token).delete()
    else:
        alice.delete()
    # On Django 4.2, DRF's admin proxy (whose pk is the user id) deletes no
    # row at all; the cache must then agree with the database, not with us.
    gone = not Token.objects.filter(key=token).exists()
    assert gone or (how == "admin proxy delete" and django.VERSION < (5,))
    identity, queries = authenticate(backend, token)
    assert (identity is None) == gone
    assert queries > 0 or not gone


@pytest.mark.parametrize("how", ["revoke", "application deleted"])
def test_revoked_oauth_token_dropped_at_once(alice: Any, how: str) -> None:
    token = oauth_token(alice)
    backend = OAuthToolkitBackend()
    authenticate(backend, token)
    assert authenticate(backend, token)[1] == 0
    row = get_access_token_model().objects.get()
    if how == "revoke":
        row.revoke()
    else:
        row.application.delete()
    assert authenticate(backend, token)[0] is None


def test_changed_oauth_token_is_read_again(alice: Any) -> None:
    token = oauth_token(alice, scope="chat:read")
    backend = OAuthToolkitBackend()
    authenticate(backend, token)
    row = get_access_token_model().objects.get()
    row.scope = "chat:read chat:write"
    row.save()
    identity, queries = authenticate(backend, token)
    assert identity.scopes == frozenset({"chat:read", "chat:write"})
    assert queries > 0


@pytest.mark.parametrize("kind", ["drf", "oauth"])
def test_deactivated_user_dropped_at_once(alice: Any, kind: str) -> None:
    backend: BaseBackend = DRFTokenBackend() if kind == "drf" else OAuthToolkitBackend()
    token = drf_token(alice) if kind == "drf" else oauth_token(alice)
    authenticate(backend, token)
    assert authenticate(backend, token)[1] == 0
    alice.is_active = False
    alice.save()
    with pytest.raises(InactiveUser):
        authenticate(backend, token)
    # And it stays refused: an inactive user is never cached.
    with pytest.raises(InactiveUser):
        authenticate(backend, token)
    alice.is_active = True
    alice.save()
    assert authenticate(backend, token)[0].user == alice


def test_user_change_makes_a_fresh_entry(alice: Any) -> None:
    token = drf_token(alice)
    backend = DRFTokenBackend()
    authenticate(backend, token)
    alice.first_name = "Alice"
    alice.save()
    identity, queries = authenticate(backend, token)
    assert queries > 0 and identity.user.first_name == "Alice"
    identity, queries = authenticate(backend, token)
    assert queries == 0 and identity.user.first_name == "Alice"


def test_lookup_racing_a_revocation_cannot_write_it_back(alice: Any) -> None:
    token = drf_token(alice)
    reads: list[int] = []

    def load() -> Any:
        # A lookup in flight: its first read saw the row; the token is deleted
        # right after, and its later read (before the delete committed) still
        # sees the row.
        reads.append(1)
        Token.objects.filter(key=token).delete()
        return alice, {}

    assert cached_lookup(DRF, token_hash_id(token), load) is not None
    assert caches["default"].get(entry_key(token_hash_id(token))) == "revoked"
    # The stale answer was not written over the tombstone: the next lookup reads again.
    reads.clear()
    assert cached_lookup(DRF, token_hash_id(token), load) is not None
    assert reads


# ---------------------------------------------------------------- the user a JWT names


def simplejwt(user: Any) -> str:
    from rest_framework_simplejwt.tokens import AccessToken

    return str(AccessToken.for_user(user))


@pytest.fixture
def jwks() -> Iterator[Any]:
    from tests.support.jwks import JWKSServer

    server = JWKSServer()
    settings = server.settings()
    with override_settings(CHANNELS_BEARER={"CACHE": "default", "BACKENDS": settings["BACKENDS"], "JWKS": settings["JWKS"]}):
        yield server
    server.stop()


def test_a_cached_simplejwt_user_costs_no_query(alice: Any) -> None:
    backend = SimpleJWTBackend()
    first, misses = authenticate(backend, simplejwt(alice))
    again, hits = authenticate(backend, simplejwt(alice))
    assert misses > 0 and hits == 0
    assert again.user == alice and again.user is not first.user
    alice.is_active = False
    alice.save()
    with pytest.raises(InactiveUser):
        authenticate(backend, simplejwt(alice))


def test_a_cached_simplejwt_user_follows_a_password_change(alice: Any) -> None:
    # What CHECK_REVOKE_TOKEN compares the token's claim with must be the new hash.
    backend = SimpleJWTBackend()
    token = simplejwt(alice)
    authenticate(backend, token)
    alice.set_password("a new one")
    alice.save()
    identity, queries = authenticate(backend, token)
    assert queries > 0 and identity.user.password == alice.password


def test_a_cached_jwks_user_costs_no_query(alice: Any, jwks: Any) -> None:
    backend = JWKSBackend()
    authenticate(backend, jwks.mint("alice"))
    identity, hits = authenticate(backend, jwks.mint("alice"))
    assert hits == 0 and identity.user == alice
    alice.first_name = "Alice"
    alice.save()
    identity, queries = authenticate(backend, jwks.mint("alice"))
    assert queries > 0 and identity.user.first_name == "Alice"


def test_a_jwks_user_created_on_first_sight_is_cached_after(jwks: Any) -> None:
    backend = JWKSBackend()
    identity, _ = authenticate(backend, jwks.mint("newcomer"))
    assert identity.user.username == "newcomer"
    assert authenticate(backend, jwks.mint("newcomer"))[1] == 0


# ---------------------------------------------------------------- cache down


def test_cache_down_falls_back_to_the_database(alice: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="channels_bearer")
    drf = drf_token(alice)
    oauth = oauth_token(alice)
    with override_settings(CHANNELS_BEARER={"CACHE": DOWN}):
        for backend, token in ((DRFTokenBackend(), drf), (OAuthToolkitBackend(), oauth)):
            identity, queries = authenticate(backend, token)
            assert identity.user == alice
            assert queries == 1
        assert "using the database instead" in caplog.text
        # Revoking while the cache is down does not fail the delete.
        Token.objects.get(key=drf).delete()
        assert authenticate(DRFTokenBackend(), drf)[0] is None
    assert_secret_absent(drf, caplog)
    assert_secret_absent(oauth, caplog)
