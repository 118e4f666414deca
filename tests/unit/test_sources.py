"""Where a token may come from, and the handshakes refused as ``invalid_request``.

Every test drives ``BearerAuthMiddlewareStack`` with Channels'
``WebsocketCommunicator`` and a recording consumer without the mixin, so what
is asserted is the middleware's own doing.
"""

from __future__ import annotations

import base64
from typing import Any

import pytest
from channels.db import database_sync_to_async
from django.test import override_settings
from hypothesis import given, strategies as st
from hypothesis import settings as hypothesis_settings

from channels_bearer.conf import conf
from channels_bearer.exceptions import InvalidRequest
from channels_bearer.sources import extract, from_authorization_header, pop_query_params
from channels_bearer.tickets import issue_ticket
from tests.support.backends import PASSPHRASE_PREFIX
from tests.support.apps import SEEN, assert_secret_absent, build_app, communicator, consumer_ran, refused
from tests.support.encoding import b64url, encoded_entry

pytestmark = pytest.mark.django_db(transaction=True)

PASSPHRASE = {"BACKENDS": ["tests.support.backends.PassphraseBackend", "channels_bearer.backends.DRFTokenBackend"]}
ALL_SOURCES = {"SOURCES": ["subprotocol", "header", "query", "ticket"]}


async def connect_ok(subprotocols: list[str] | None = None, **kwargs: Any) -> dict[str, Any]:
    """Connect through the middleware; return what the consumer saw."""
    comm = communicator(build_app(), subprotocols=subprotocols, **kwargs)
    connected, _ = await comm.connect()
    assert connected
    await comm.disconnect()
    connects = [entry for entry in SEEN if entry["event"] == "connect"]
    assert len(connects) == 1
    return connects[0]


# --- subprotocol ------------------------------------------------------------------


async def test_subprotocol_raw_token(alice: Any, token: str) -> None:
    seen = await connect_ok(["access_token", token])
    assert seen["user"] == alice
    assert seen["bearer"].source == "subprotocol"


async def test_subprotocol_base64url_entry(alice: Any, token: str) -> None:
    seen = await connect_ok(["access_token", encoded_entry(token)])
    assert seen["user"] == alice
    assert seen["subprotocols"] == []


@pytest.mark.parametrize(
    "encode",
    [
        pytest.param(lambda raw: base64.urlsafe_b64encode(raw).decode(), id="padded"),
        pytest.param(lambda raw: base64.b64encode(raw).decode(), id="standard-alphabet"),
        pytest.param(lambda raw: base64.b64encode(raw).decode().rstrip("="), id="standard-unpadded"),
    ],
)
async def test_subprotocol_base64_decoded_leniently(user_factory: Any, encode: Any) -> None:
    # This token's base64 needs "_" (base64url) or "/" (standard) and padding,
    # so each variant really differs from the canonical unpadded base64url.
    zoe = await database_sync_to_async(user_factory)("zoë")
    raw = (PASSPHRASE_PREFIX + "zoë").encode("utf-8")
    entry = encode(raw)
    assert entry != b64url(PASSPHRASE_PREFIX + "zoë")
    with override_settings(CHANNELS_BEARER=PASSPHRASE):
        seen = await connect_ok(["access_token", "base64url.bearer." + entry])
    assert seen["user"] == zoe


@pytest.mark.parametrize("username", ["alice", "bob?>", "zoë"])
async def test_token_with_non_tchars_travels_base64url(user_factory: Any, username: str) -> None:
    # The passphrase holds "/", "=", a space and non-ASCII: no browser sends it raw.
    user = await database_sync_to_async(user_factory)(username)
    secret = PASSPHRASE_PREFIX + username
    with override_settings(CHANNELS_BEARER=PASSPHRASE):
        seen = await connect_ok(["chat", "access_token", encoded_entry(secret)])
    assert seen["user"] == user
    assert seen["subprotocols"] == ["chat"]


async def test_daphne_percent_decoded_values(alice: Any) -> None:
    # daphne percent-decodes subprotocol values: "%3D" padding arrives as "=",
    # and a raw token sent percent-encoded arrives with its "/", "=" and space.
    secret = PASSPHRASE_PREFIX + "alice"
    padded = base64.urlsafe_b64encode(secret.encode()).decode()
    assert padded.endswith("=")
    with override_settings(CHANNELS_BEARER=PASSPHRASE):
        assert (await connect_ok(["access_token", "base64url.bearer." + padded]))["user"] == alice
        SEEN.clear()
        assert (await connect_ok(["access_token", secret]))["user"] == alice


# --- header -----------------------------------------------------------------------


@pytest.mark.parametrize("scheme", [b"Bearer", b"bearer", b"BEARER", b"bEaReR"])
async def test_authorization_header_scheme_case_insensitive(alice: Any, token: str, scheme: bytes) -> None:
    seen = await connect_ok(headers=[(b"authorization", scheme + b" " + token.encode())])
    assert seen["user"] == alice
    assert seen["bearer"].source == "header"


async def test_header_keywords_configurable(alice: Any, token: str) -> None:
    headers = [(b"authorization", b"Token " + token.encode())]
    with override_settings(CHANNELS_BEARER={"HEADER_KEYWORDS": ["Token", "Bearer"]}):
        assert (await connect_ok(headers=headers))["user"] == alice
    SEEN.clear()
    # With the default keywords, "Token" is someone else's scheme: ignored, not refused.
    seen = await connect_ok(headers=headers)
    assert seen["user"].is_anonymous
    assert seen["bearer"] is None


@pytest.mark.parametrize("value", [b"Basic YWxpY2U6cGFzcw==", b"Digest username=alice", b"Negotiate abc"])
async def test_unknown_scheme_ignored(value: bytes) -> None:
    seen = await connect_ok(headers=[(b"authorization", value)])
    assert seen["user"].is_anonymous
    assert seen["bearer"] is None


# --- query ------------------------------------------------------------------------


async def test_query_source_off_by_default(token: str) -> None:
    seen = await connect_ok(url=f"/ws/?access_token={token}")
    assert seen["bearer"] is None
    assert seen["user"].is_anonymous


async def test_query_token_removed_others_kept_byte_for_byte(alice: Any, token: str) -> None:
    url = f"/ws/?a=1&b=%2Fx+y&flag&access_token={token}&c=%C3%A9&&d="
    with override_settings(CHANNELS_BEARER={"SOURCES": ["query"]}):
        seen = await connect_ok(url=url)
    assert seen["user"] == alice
    assert seen["bearer"].source == "query"
    assert seen["query_string"] == b"a=1&b=%2Fx+y&flag&c=%C3%A9&&d="


async def test_query_token_alone_leaves_empty_query_string(alice: Any, token: str) -> None:
    with override_settings(CHANNELS_BEARER={"SOURCES": ["query"]}):
        seen = await connect_ok(url=f"/ws/?access_token={token}")
    assert seen["query_string"] == b""


async def test_query_param_configurable(alice: Any, token: str) -> None:
    with override_settings(CHANNELS_BEARER={"SOURCES": ["query"], "QUERY_PARAM": "t"}):
        seen = await connect_ok(url=f"/ws/?t={token}&access_token=kept")
    assert seen["user"] == alice
    assert seen["query_string"] == b"access_token=kept"


def test_pop_query_params_unit() -> None:
    values, rest = pop_query_params(b"x=1&access_token=a%2Fb+c&y=%20", ["access_token"])
    assert values == {"access_token": "a/b c"}
    assert rest == b"x=1&y=%20"


# --- ticket -----------------------------------------------------------------------


async def test_ticket_redeemed_once(alice: Any, debug_logs: pytest.LogCaptureFixture) -> None:
    ticket, ttl = await database_sync_to_async(issue_ticket)(alice, token_id="issuer-id")
    assert ttl == 30
    with override_settings(CHANNELS_BEARER=ALL_SOURCES):
        seen = await connect_ok(url=f"/ws/?ticket={ticket}&room=1")
        assert seen["user"] == alice
        assert seen["bearer"].source == "ticket"
        assert seen["bearer"].token_id == "issuer-id"
        assert seen["query_string"] == b"room=1"

        SEEN.clear()
        app = build_app()
        assert await refused(communicator(app, f"/ws/?ticket={ticket}")) == 4401
    assert not consumer_ran()
    assert_secret_absent(ticket, debug_logs, app)


# --- invalid_request ----------------------------------------------------------------


def _refusal_cases(token: str) -> list[tuple[str, dict[str, Any]]]:
    auth = (b"authorization", b"Bearer " + token.encode())
    return [
        ("subprotocol+header", {"subprotocols": ["access_token", token], "headers": [auth]}),
        ("subprotocol+query", {"subprotocols": ["access_token", token], "url": f"/ws/?access_token={token}"}),
        ("header+query", {"headers": [auth], "url": f"/ws/?access_token={token}"}),
        ("header+ticket", {"headers": [auth], "url": "/ws/?ticket=abc"}),
        ("marker twice", {"subprotocols": ["access_token", token, "access_token", token]}),
        ("marker twice, one token", {"subprotocols": ["access_token", "access_token", token]}),
        ("two token entries", {"subprotocols": ["access_token", encoded_entry(token), encoded_entry(token)]}),
        ("encoded entry without marker", {"subprotocols": [encoded_entry(token)]}),
        ("token repeated after it", {"subprotocols": ["access_token", token, token]}),
        ("token repeated before the marker", {"subprotocols": [token, "access_token", token]}),
        ("token repeated after an app protocol", {"subprotocols": ["access_token", token, "chat", token]}),
        ("encoded token repeated raw", {"subprotocols": ["access_token", encoded_entry(token), token]}),
        ("two Authorization headers", {"headers": [auth, auth]}),
        ("repeated access_token", {"url": f"/ws/?access_token={token}&access_token={token}"}),
        ("repeated ticket", {"url": "/ws/?ticket=same&ticket=same"}),
        ("marker without token", {"subprotocols": ["chat", "access_token"]}),
        ("empty subprotocol token", {"subprotocols": ["access_token", ""]}),
        ("whitespace subprotocol token", {"subprotocols": ["access_token", "  "]}),
        ("empty encoded token", {"subprotocols": ["access_token", "base64url.bearer."]}),
        ("whitespace encoded token", {"subprotocols": ["access_token", encoded_entry(" \t ")]}),
        ("invalid base64url", {"subprotocols": ["access_token", "base64url.bearer.!!not*base64"]}),
        ("base64url of non-UTF-8", {"subprotocols": ["access_token", "base64url.bearer.__79"]}),
        ("impossible base64 length", {"subprotocols": ["access_token", "base64url.bearer.abcde"]}),
        ("empty Authorization token", {"headers": [(b"authorization", b"Bearer ")]}),
        ("whitespace Authorization token", {"headers": [(b"authorization", b"Bearer \t  ")]}),
        ("two tokens in Authorization", {"headers": [(b"authorization", b"Bearer " + token.encode() + b" x")]}),
        ("empty access_token", {"url": "/ws/?access_token="}),
        ("whitespace access_token", {"url": "/ws/?access_token=+%20"}),
    ]


@pytest.mark.parametrize("case", [name for name, _ in _refusal_cases("t")])
async def test_invalid_request_refused_before_consumer(
    case: str, token: str, debug_logs: pytest.LogCaptureFixture
) -> None:
    kwargs = dict(_refusal_cases(token))[case]
    app = build_app()
    with override_settings(CHANNELS_BEARER=ALL_SOURCES):
        code = await refused(communicator(app, **kwargs))
    assert code == 4400
    assert not consumer_ran()
    assert [m.get("reason") for m in app.of_type("websocket.close")] == ["invalid_request"]
    assert_secret_absent(token, debug_logs, app)
    assert any("invalid_request" in r.getMessage() for r in debug_logs.records)


async def test_subprotocol_source_disabled_ignores_marker(token: str) -> None:
    # With only "header" enabled, a subprotocol entry is no credential at all.
    with override_settings(CHANNELS_BEARER={"SOURCES": ["header"]}):
        seen = await connect_ok(["chat"], headers=[(b"authorization", b"Bearer " + token.encode())])
    assert seen["bearer"].source == "header"
    assert seen["subprotocols"] == ["chat"]


def test_b64url_helper_has_no_padding() -> None:
    assert b64url("a") == "YQ"


# --- no input makes extract() raise anything but InvalidRequest ---------------------

_entries = st.one_of(
    st.text(max_size=12),
    st.sampled_from(["access_token", "base64url.bearer.", "chat"]),
    st.text(max_size=12).map(lambda t: "base64url.bearer." + t),
)


@hypothesis_settings(max_examples=200, deadline=None)
@given(
    subprotocols=st.lists(_entries, max_size=5),
    authorization=st.lists(st.binary(max_size=20).map(lambda b: b"Bearer " + b), max_size=2),
    query=st.binary(max_size=30),
)
def test_extract_only_raises_invalid_request(subprotocols: list[str], authorization: list[bytes], query: bytes) -> None:
    scope = {
        "type": "websocket",
        "subprotocols": subprotocols,
        "headers": [(b"authorization", value) for value in authorization],
        "query_string": query,
    }
    with override_settings(CHANNELS_BEARER=ALL_SOURCES):
        try:
            result = extract(scope, conf.current())
        except InvalidRequest:
            return
    # Whatever was accepted, no marker, token entry or token parameter stays
    # in what the inner app sees.
    assert "access_token" not in result.subprotocols
    assert not any(entry.startswith("base64url.bearer.") for entry in result.subprotocols)
    assert pop_query_params(result.query_string, ["access_token", "ticket"])[0] == {}


@pytest.mark.parametrize("separator", [" ", "\t", "  "])
def test_header_scheme_and_token_separated_by_any_whitespace(separator: str) -> None:
    token = from_authorization_header([(b"authorization", f"Bearer{separator}abc.def".encode())], ["Bearer"])
    assert token == "abc.def"


def test_empty_authorization_header_is_not_ours() -> None:
    assert from_authorization_header([(b"authorization", b"")], ["Bearer"]) is None
