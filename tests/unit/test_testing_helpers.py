"""channels_bearer.testing and the pytest plugin, against a project's real ASGI app.

The app is the test settings' ``ASGI_APPLICATION`` (``tests/support/asgi.py``:
``AllowedHostsOriginValidator`` around ``BearerAuthMiddlewareStack``, as the
README wires it), whose ``/ws/whoami/`` reports what the consumer saw: these
tests assert on what a client would see.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import jwt
import pytest
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.routing import URLRouter, get_default_application
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model
from django.test import TransactionTestCase, override_settings
from django.urls import path

from channels_bearer.authentication import authenticate_credential
from channels_bearer.exceptions import InvalidToken
from channels_bearer.identity import token_hash_id
from channels_bearer.middleware import BearerAuthMiddlewareStack
from channels_bearer.sources import Credential, decode_subprotocol_entry
from channels_bearer.testing import (
    BearerCommunicator,
    BearerTestMixin,
    amake_ticket,
    amake_token,
    assert_refused,
    make_test_key,
    make_token,
    subprotocol_entry,
)
from tests.support import keys
from tests.support.backends import PASSPHRASE_PREFIX

pytestmark = pytest.mark.django_db(transaction=True)

WHOAMI = "/ws/whoami/"
PASSPHRASE_BACKENDS = {
    "BACKENDS": ["tests.support.backends.PassphraseBackend", "channels_bearer.backends.DRFTokenBackend"],
    "SOURCES": ["subprotocol", "header", "query", "ticket"],
}


#: What the project under test configures (as the demo does): both database
#: backends and every source.
PROJECT_SETTINGS = {
    "BACKENDS": ["channels_bearer.backends.DRFTokenBackend", "channels_bearer.backends.SimpleJWTBackend"],
    "SOURCES": ["subprotocol", "header", "query", "ticket"],
}


@pytest.fixture(autouse=True)
def project_settings() -> Any:
    with override_settings(CHANNELS_BEARER=PROJECT_SETTINGS):
        yield


@pytest.fixture
def app() -> Any:
    return get_default_application()


async def identify(token: str) -> Any:
    return await authenticate_credential(Credential("header", token), {"type": "websocket"})


# -- the fixture: every way a client sends a token ---------------------------------


@pytest.mark.parametrize(
    ("via", "answer"),
    [("subprotocol", "access_token"), ("header", None), ("query", None), ("ticket", None)],
)
async def test_bearer_communicator_each_via(bearer_communicator: Any, bearer_user: Any, via: str, answer: str | None) -> None:
    communicator = bearer_communicator(WHOAMI, via=via)
    connected, subprotocol = await communicator.connect()
    assert (connected, subprotocol) == (True, answer)
    assert communicator.subprotocol == answer
    seen = await communicator.receive_json_from()
    assert seen["user"] == bearer_user.username
    assert seen["source"] == via
    # The marker, the token and the token parameters never reach the consumer.
    assert seen["subprotocols"] == []
    assert seen["query_string"] == ""


async def test_ticket_carries_the_issuing_tokens_id(bearer_communicator: Any, bearer_user: Any) -> None:
    communicator = bearer_communicator(WHOAMI, via="ticket")
    assert (await communicator.connect())[0]
    seen = await communicator.receive_json_from()
    drf_key = await amake_token(bearer_user)
    assert seen["token_id"] == token_hash_id(drf_key)


async def test_explicit_user_and_jwt(bearer_communicator: Any, alice: Any) -> None:
    communicator = bearer_communicator(WHOAMI, user=alice, kind="jwt", via="header")
    assert await communicator.connect() == (True, None)
    seen = await communicator.receive_json_from()
    assert seen["user"] == "alice"
    assert seen["backend"] == "channels_bearer.backends.SimpleJWTBackend"
    assert seen["expires_at"] is not None


@pytest.mark.bearer(kind="jwt", via="query")
async def test_marker_sets_fixture_defaults(bearer_communicator: Any, bearer_token: str) -> None:
    assert bearer_token.count(".") == 2  # a JWT, not a DRF key
    communicator = bearer_communicator(WHOAMI)
    assert (await communicator.connect())[0]
    seen = await communicator.receive_json_from()
    assert (seen["source"], seen["backend"]) == ("query", "channels_bearer.backends.SimpleJWTBackend")


async def test_app_subprotocol_offered_after_the_token(bearer_communicator: Any) -> None:
    communicator = bearer_communicator(WHOAMI, subprotocols=["whoami.v1"])
    assert await communicator.connect() == (True, "whoami.v1")
    # What the client offered, in a browser's order (the token is minted by connect()).
    offered = communicator.scope["subprotocols"]
    assert offered[0] == "access_token" and offered[2:] == ["whoami.v1"]
    assert (await communicator.receive_json_from())["subprotocols"] == ["whoami.v1"]


async def test_echo_after_connect(bearer_communicator: Any) -> None:
    communicator = bearer_communicator(WHOAMI)
    await communicator.connect()
    await communicator.receive_json_from()
    await communicator.send_to(text_data="hello")
    assert await communicator.receive_from() == "hello"


# -- BearerCommunicator with a token in hand ---------------------------------------


async def test_query_appended_to_an_existing_query_string(app: Any, alice: Any) -> None:
    token = await amake_token(alice)
    communicator = BearerCommunicator(app, WHOAMI + "?room=a%20b&x=1", token=token, via="query")
    assert communicator.scope["query_string"] == f"room=a%20b&x=1&access_token={token}".encode()
    assert (await communicator.connect())[0]
    seen = await communicator.receive_json_from()
    assert (seen["source"], seen["query_string"]) == ("query", "room=a%20b&x=1")
    await communicator.disconnect()


async def test_ticket_from_amake_ticket(app: Any, alice: Any) -> None:
    ticket = await amake_ticket(alice)
    async with BearerCommunicator(app, WHOAMI, ticket=ticket) as communicator:
        assert communicator.via == "ticket"
        assert (await communicator.connect())[0]
        assert (await communicator.receive_json_from())["source"] == "ticket"
    # Single use: the same ticket again is refused.
    async with BearerCommunicator(app, WHOAMI, ticket=ticket) as again:
        await again.connect()
        assert_refused(again)


@pytest.mark.parametrize("kind", ["drf", "jwt"])
async def test_via_ticket_exchanges_the_token_as_a_client_would(app: Any, alice: Any, kind: str) -> None:
    token = await amake_token(alice, kind)
    async with BearerCommunicator(app, WHOAMI, token=token, via="ticket") as communicator:
        assert (await communicator.connect())[0]
        seen = await communicator.receive_json_from()
        # The handshake carried a ticket, not the token; the ticket carries the token's id.
        assert seen["source"] == "ticket" and token not in seen["query_string"]
        assert communicator.presented_token != token
        assert seen["token_id"] == (await identify(token)).token_id


async def test_via_ticket_with_a_token_the_backends_refuse_raises(app: Any) -> None:
    communicator = BearerCommunicator(app, WHOAMI, token="f" * 40, via="ticket")
    with pytest.raises(InvalidToken):
        await communicator.connect()
    await communicator.aclose()


def test_token_and_ticket_together_are_a_mistake(app: Any) -> None:
    with pytest.raises(ValueError, match="not both"):
        BearerCommunicator(app, WHOAMI, token="a", ticket="b")


@override_settings(CHANNELS_BEARER=PASSPHRASE_BACKENDS)
async def test_token_with_non_tchars_goes_base64url(alice: Any) -> None:
    app = get_default_application()
    token = PASSPHRASE_PREFIX + "alice"
    communicator = BearerCommunicator(app, WHOAMI, token=token)
    entry = communicator.scope["subprotocols"][1]
    assert entry.startswith("base64url.bearer.") and "=" not in entry
    assert decode_subprotocol_entry(entry) == token
    assert await communicator.connect() == (True, "access_token")
    assert (await communicator.receive_json_from())["user"] == "alice"
    await communicator.disconnect()


def test_subprotocol_entry_raw_when_possible() -> None:
    assert subprotocol_entry("abc.DEF-123_x") == "abc.DEF-123_x"
    assert subprotocol_entry("a/b=") == "base64url.bearer." + base64.urlsafe_b64encode(b"a/b=").decode().rstrip("=")


async def test_header_uses_the_first_keyword(app: Any, alice: Any) -> None:
    token = await amake_token(alice)
    with override_settings(CHANNELS_BEARER={"HEADER_KEYWORDS": ["Token", "Bearer"]}):
        communicator = BearerCommunicator(app, WHOAMI, token=token, via="header")
    assert (b"authorization", f"Token {token}".encode()) in communicator.scope["headers"]


async def test_default_origin_passes_the_origin_validator(app: Any, alice: Any) -> None:
    token = await amake_token(alice)
    async with BearerCommunicator(app, WHOAMI, token=token) as with_origin:
        assert (await with_origin.connect())[0]
    # Headers of one's own replace the defaults: no Origin. The demo's
    # validator (channels_bearer.security) lets a bearer credential in without one...
    async with BearerCommunicator(app, WHOAMI, token=token, headers=[]) as without:
        assert (await without.connect())[0]
    # ...and refuses a handshake with neither, before the consumer runs (not 4401).
    async with BearerCommunicator(app, WHOAMI, token=None, headers=[]) as anonymous:
        assert await anonymous.connect() == (False, 1000)


def test_repr_holds_no_token(app: Any) -> None:
    communicator = BearerCommunicator(app, WHOAMI, token="s3cr3t-token-value")
    assert "s3cr3t" not in repr(communicator)


def test_unknown_via(app: Any) -> None:
    with pytest.raises(ValueError, match="via must be one of"):
        BearerCommunicator(app, WHOAMI, token="x", via="cookie")


# -- refusals ------------------------------------------------------------------------


async def test_invalid_token_close_before_accept(app: Any) -> None:
    communicator = BearerCommunicator(app, WHOAMI, token="0" * 40)
    result = await communicator.connect()
    assert result == (False, 4401)
    assert (communicator.close_code, communicator.close_reason) == (4401, "invalid_token")
    assert_refused(communicator)
    assert_refused(result)
    with pytest.raises(AssertionError, match="Expected close code 4400"):
        assert_refused(communicator, "invalid_request")
    with pytest.raises(AssertionError, match="Expected close code 4403"):
        assert_refused(result, "insufficient_scope")


async def test_invalid_token_denial_response(app: Any) -> None:
    communicator = BearerCommunicator(app, WHOAMI, token="0" * 40, http_response=True)
    assert await communicator.connect() == (False, 401)
    assert communicator.denial is not None
    assert communicator.denial.header("WWW-Authenticate") == 'Bearer error="invalid_token"'
    assert_refused(communicator)
    with pytest.raises(AssertionError, match="Expected HTTP 400"):
        assert_refused(communicator, "invalid_request")


async def test_two_credentials_are_invalid_request(app: Any, alice: Any) -> None:
    token = await amake_token(alice)
    headers = [(b"origin", b"http://testserver"), (b"authorization", f"Bearer {token}".encode())]
    communicator = BearerCommunicator(app, WHOAMI, token=token, headers=headers)
    await communicator.connect()
    assert_refused(communicator, "invalid_request")
    denial = BearerCommunicator(app, WHOAMI, token=token, headers=headers, http_response=True)
    assert await denial.connect() == (False, 400)
    assert_refused(denial, "invalid_request")


async def test_no_token_refused_by_the_mixin(app: Any) -> None:
    communicator = BearerCommunicator(app, WHOAMI, token=None)
    assert await communicator.connect() == (False, 4401)
    assert_refused(communicator, None)
    with pytest.raises(AssertionError, match="close reason"):
        assert_refused(communicator)  # token_required is not invalid_token
    denial = BearerCommunicator(app, WHOAMI, token=None, http_response=True)
    await denial.connect()
    assert denial.denial is not None and denial.denial.header("www-authenticate") == "Bearer"
    assert_refused(denial, None)


async def test_inactive_user_closes_4403(app: Any, alice: Any) -> None:
    token = await amake_token(alice)
    alice.is_active = False
    await alice.asave()
    communicator = BearerCommunicator(app, WHOAMI, token=token)
    await communicator.connect()
    with pytest.raises(AssertionError, match="pass code=4403"):
        assert_refused(communicator)
    assert_refused(communicator, code=4403)


async def test_accepted_is_not_refused(bearer_communicator: Any) -> None:
    communicator = bearer_communicator(WHOAMI)
    result = await communicator.connect()
    with pytest.raises(AssertionError, match="was accepted"):
        assert_refused(communicator)
    with pytest.raises(AssertionError, match="was accepted"):
        assert_refused(result)


@override_settings(CHANNELS_BEARER={**PASSPHRASE_BACKENDS, "REFUSAL": "close"})
async def test_close_mode_refusal_after_accept() -> None:
    app = get_default_application()
    communicator = BearerCommunicator(app, WHOAMI, token="0" * 40)
    assert await communicator.connect() == (True, "access_token")
    with pytest.raises(AssertionError, match="receive_close"):
        assert_refused(communicator)
    assert await communicator.receive_close() == 4401
    assert_refused(communicator)


# -- the communicator checks the answer like a browser --------------------------------


class AnswerConsumer(AsyncWebsocketConsumer):
    answer: str | None = None

    async def connect(self) -> None:
        await self.accept(self.answer)


async def test_accept_without_subprotocol_fails_like_a_browser() -> None:
    # No BearerAuthMiddleware: nothing answers the marker for the consumer.
    app = URLRouter([path("ws/", AnswerConsumer.as_asgi())])
    communicator = BearerCommunicator(app, "/ws/", token="abc")
    with pytest.raises(AssertionError, match="a browser fails"):
        await communicator.connect()
    lenient = BearerCommunicator(app, "/ws/", token="abc", check_subprotocol=False)
    assert await lenient.connect() == (True, None)
    await lenient.disconnect()


async def test_echoed_token_entry_is_reported_without_the_token() -> None:
    class EchoingConsumer(AnswerConsumer):
        answer = "abcdef0123"

    app = URLRouter([path("ws/", EchoingConsumer.as_asgi())])
    communicator = BearerCommunicator(app, "/ws/", token="abcdef0123")
    with pytest.raises(AssertionError, match="echoed the token entry") as raised:
        await communicator.connect()
    assert "abcdef0123" not in str(raised.value)


async def test_middleware_answer_passes_the_check(alice: Any) -> None:
    app = BearerAuthMiddlewareStack(URLRouter([path("ws/", AnswerConsumer.as_asgi())]))
    token = await amake_token(alice)
    async with BearerCommunicator(app, "/ws/", token=token, subprotocols=["chat"]) as communicator:
        assert await communicator.connect() == (True, "access_token")


async def test_plain_websocket_communicator_result(app: Any, alice: Any) -> None:
    # assert_refused also takes the result of Channels' own communicator.
    communicator = WebsocketCommunicator(app, WHOAMI, headers=[(b"origin", b"http://testserver")],
                                         subprotocols=["access_token", "nope"])
    assert_refused(await communicator.connect())
    with pytest.raises(TypeError):
        assert_refused(communicator)  # type: ignore[arg-type]


# -- tokens -------------------------------------------------------------------------------


JWKS_SETTINGS = {"JWKS": {"ISSUER": "https://issuer.test/", "AUDIENCE": "chat-api", "ALGORITHMS": ["RS256"]}}


def test_make_token_jwks_claims(alice: Any) -> None:
    jwk = keys.public_jwk(keys.RSA_KEY_1, keys.RSA_KID_1)
    with override_settings(CHANNELS_BEARER=JWKS_SETTINGS):
        token = make_token(alice, "jwks", key=keys.RSA_KEY_1_PEM, kid=keys.RSA_KID_1)
    header = jwt.get_unverified_header(token)
    assert (header["alg"], header["kid"]) == ("RS256", keys.RSA_KID_1)
    claims = jwt.decode(
        token, jwt.PyJWK(jwk).key, algorithms=["RS256"], audience="chat-api", issuer="https://issuer.test/"
    )
    assert claims["sub"] == "alice"
    assert claims["exp"] - claims["iat"] == 300
    assert claims["jti"]


def test_make_token_jwks_with_a_test_key_and_claims(alice: Any) -> None:
    key = make_test_key(kid="k1", algorithm="ES256")
    assert "PRIVATE" not in json.dumps(key.jwks) and "d" not in key.public_jwk
    with override_settings(CHANNELS_BEARER={"JWKS": {"USER_CLAIM": "email", "USER_FIELD": "username"}}):
        token = make_token(alice, "jwks", key=key, claims={"scope": "chat:read", "jti": None}, lifetime=60)
    claims = jwt.decode(token, jwt.PyJWK(key.public_jwk).key, algorithms=["ES256"])
    assert claims["email"] == "alice" and "sub" not in claims
    assert claims["scope"] == "chat:read" and "jti" not in claims
    assert "iss" not in claims and "aud" not in claims
    assert jwt.get_unverified_header(token)["kid"] == "k1"


def test_make_token_argument_errors(alice: Any) -> None:
    with pytest.raises(TypeError, match="needs key="):
        make_token(alice, "jwks")
    with pytest.raises(TypeError, match="kind='jwks' only"):
        make_token(alice, "drf", claims={"a": 1})
    with pytest.raises(ValueError, match="Unknown token kind"):
        make_token(alice, "saml")


def test_make_token_drf_is_stable(alice: Any) -> None:
    assert make_token(alice) == make_token(alice, "drf")


# -- Django's TransactionTestCase, through the mixin -------------------------------------


class MixinTests(BearerTestMixin, TransactionTestCase):
    async def test_connects_as_the_user(self) -> None:
        user = await get_user_model()._default_manager.acreate(username="bob")
        async with self.bearer_communicator(WHOAMI, user=user, via="header") as communicator:
            self.assertEqual(await communicator.connect(), (True, None))
            self.assertEqual((await communicator.receive_json_from())["user"], "bob")

    async def test_refusal(self) -> None:
        async with BearerCommunicator(get_default_application(), WHOAMI, token="nope") as communicator:
            await communicator.connect()
            self.assert_refused(communicator)


DISCONNECTS: list[int] = []


class RecordsDisconnect(AsyncWebsocketConsumer):
    async def connect(self) -> None:
        await self.accept()

    async def disconnect(self, code: int) -> None:
        DISCONNECTS.append(code)


async def test_aclose_disconnects_a_running_consumer(alice: Any) -> None:
    app = BearerAuthMiddlewareStack(URLRouter([path("ws/", RecordsDisconnect.as_asgi())]))
    DISCONNECTS.clear()
    communicator = BearerCommunicator.for_user(app, "/ws/", alice)
    await communicator.aclose()  # never connected: nothing to do
    assert await communicator.connect() == (True, "access_token")
    await communicator.aclose()
    await communicator.aclose()
    assert DISCONNECTS == [1000]


async def test_aclose_of_a_never_connected_lazy_communicator(alice: Any) -> None:
    communicator = BearerCommunicator.for_user(get_default_application(), WHOAMI, alice)
    communicator.future  # what an eager asgiref does on construction  # noqa: B018
    await communicator.aclose()
    assert communicator.future.cancelled()


# -- kind="jwks" end to end: JWKSBackend fetching the test key's JWKS over loopback ----


@pytest.fixture
def jwks_url() -> Any:
    import http.server
    import threading

    key_set = json.dumps({"keys": [keys.public_jwk(keys.RSA_KEY_1, keys.RSA_KID_1)]}).encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(key_set)))
            self.end_headers()
            self.wfile.write(key_set)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/jwks.json"
    server.shutdown()
    server.server_close()


async def test_jwks_token_accepted_by_jwks_backend(jwks_url: str, alice: Any) -> None:
    settings = {
        "BACKENDS": ["channels_bearer.backends.JWKSBackend"],
        "JWKS": {"ISSUER": "https://issuer.test/", "AUDIENCE": "chat-api", "JWKS_URL": jwks_url},
    }
    with override_settings(CHANNELS_BEARER=settings):
        token = make_token(alice, "jwks", key=keys.RSA_KEY_1_PEM, kid=keys.RSA_KID_1)
        async with BearerCommunicator(get_default_application(), WHOAMI, token=token) as communicator:
            assert await communicator.connect() == (True, "access_token")
            seen = await communicator.receive_json_from()
            assert (seen["user"], seen["backend"]) == ("alice", "channels_bearer.backends.JWKSBackend")
        wrong_audience = make_token(alice, "jwks", key=keys.RSA_KEY_1_PEM, kid=keys.RSA_KID_1, claims={"aud": "other"})
        async with BearerCommunicator(get_default_application(), WHOAMI, token=wrong_audience) as refused:
            await refused.connect()
            assert_refused(refused)


# -- the plugin's guard --------------------------------------------------------------------


def load_plugin_copy(name: str) -> Any:
    import importlib.util

    import channels_bearer.pytest_plugin as plugin

    spec = importlib.util.spec_from_file_location(name, plugin.__file__)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_plugin_defines_no_fixtures_without_pytest_django(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "pytest_django", None)  # what find_spec reports for a missing module
    module = load_plugin_copy("plugin_without_pytest_django")
    assert not module.HAS_PYTEST_DJANGO
    assert not hasattr(module, "bearer_user") and not hasattr(module, "bearer_communicator")
    monkeypatch.undo()
    assert load_plugin_copy("plugin_with_pytest_django").bearer_communicator is not None


@pytest.mark.parametrize("http_response", [False, True])
async def test_assert_refused_knows_the_limits_refusals(app: Any, alice: Any, http_response: bool) -> None:
    token = await amake_token(alice)
    with override_settings(CHANNELS_BEARER={**PROJECT_SETTINGS, "MAX_SOCKETS_PER_USER": 1}):
        async with BearerCommunicator(app, WHOAMI, token=token) as first:
            assert (await first.connect())[0]
            async with BearerCommunicator(app, WHOAMI, token=token, http_response=http_response) as second:
                await second.connect()
                if not http_response:
                    # No denial response: accepted, then closed with 4429.
                    assert await second.receive_close() == 4429
                assert_refused(second, "too_many_sockets")
                with pytest.raises(AssertionError):
                    assert_refused(second, "invalid_token")
