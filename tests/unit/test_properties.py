"""Property-based tests: hostile handshake scopes through the real middleware.

``BearerAuthMiddleware`` wraps a small recording ASGI app and is called
directly with our own ``receive``/``send``. Hypothesis builds the scopes:
headers (``Authorization`` with arbitrary bytes), subprotocol lists (any text:
non-ASCII, NUL, commas, lone surrogates, the marker, ``base64url.bearer.``
entries), query strings (raw bytes, %-escapes, repeated ``access_token`` /
``ticket``), values up to 64 KiB, mixed with real tokens: valid DRF and
SimpleJWT tokens and tickets for one user, and tokens that must never work
(inactive and deleted users, refresh tokens, ``alg: none``, a wrong key,
HS512 with the right key, mutants of the valid ones).

Properties:

* the ASGI call completes: no exception escapes, nothing hangs;
* ``scope["user"]`` is the user exactly when one valid credential was presented
  in an enabled source; no credential → anonymous; anything else → refused
  before the inner app runs;
* no token reaches the inner app's ``scope["subprotocols"]`` or
  ``scope["query_string"]``;
* no token text (nor its base64url form) appears in any log record (every
  logger captured at DEBUG), in a refusal's exception message, in a close
  reason or response body, in ``repr(scope["bearer"])`` or in the answered
  subprotocol.

Django's own ``django.db.backends`` logger would show DRF keys in SQL
parameters, but only with ``DEBUG = True`` (off under pytest-django); see
SECURITY.md.
"""

from __future__ import annotations

import asyncio
import json
import logging
import traceback
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, quote_plus, unquote_plus

import jwt
import jwt.warnings
import pytest
from asgiref.sync import async_to_sync
from django.conf import settings as django_settings
from django.contrib.auth import get_user_model
from django.test import override_settings
from hypothesis import HealthCheck, event, given, settings, strategies as st

from tests.support.encoding import b64url
from channels_bearer import middleware as middleware_module
from channels_bearer.exceptions import BearerError
from channels_bearer.identity import token_hash_id
from channels_bearer.middleware import BearerAuthMiddleware
from channels_bearer.sources import ENCODED_PREFIX
from channels_bearer.tickets import issue_ticket
from channels_bearer.tokens import make_token

pytestmark = pytest.mark.django_db(transaction=True)

MARKER = "access_token"
ALL_SOURCES = ("subprotocol", "header", "query", "ticket")
APP_SUBPROTOCOL = "chat.v1"
TICKET_TOKEN_ID = "ticket-issuer-id"
#: Stands for "a fresh ticket" in drawn data; replaced when the example runs
#: (tickets are single-use, so each example needs its own).
TICKET_SLOT = "@@TICKET@@"

PROPERTY_SETTINGS = settings(
    max_examples=300,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)


def bearer_settings(sources: Any = ALL_SOURCES, refusal: str = "handshake") -> dict[str, Any]:
    return {
        "BACKENDS": [
            "channels_bearer.backends.DRFTokenBackend",
            "channels_bearer.backends.SimpleJWTBackend",
        ],
        "SOURCES": list(sources),
        "REFUSAL": refusal,
    }


def unsigned_jwt(header: dict[str, Any], payload: dict[str, Any], signature: str = "") -> str:
    return f"{b64url(json.dumps(header))}.{b64url(json.dumps(payload))}.{signature}"


# --- the tokens -------------------------------------------------------------


@dataclass
class Tokens:
    """Real tokens for one user, and tokens that must never authenticate anyone."""

    user: Any
    valid: dict[str, str]
    never: dict[str, str]
    #: Ids a ``scope["bearer"]`` may carry: those of the valid tokens.
    valid_ids: set[str]
    #: Strings whose appearance anywhere we watch is a leak.
    secrets: list[str] = field(default_factory=list)

    def resolve(self, name: str, ticket: str) -> str:
        if name == "ticket":
            return ticket
        return self.valid.get(name) or self.never[name]


def make_tokens() -> Tokens:
    from rest_framework_simplejwt.settings import api_settings
    from rest_framework_simplejwt.tokens import AccessToken, RefreshToken

    user_model = get_user_model()
    user = user_model.objects.create_user("alice", password="x")
    inactive = user_model.objects.create_user("mallory", password="x", is_active=False)
    deleted = user_model.objects.create_user("ghost", password="x")
    drf = make_token(user, "drf")
    access = AccessToken.for_user(user)
    jwt_token = str(access)
    deleted_jwt = make_token(deleted, "jwt")
    deleted_drf = make_token(deleted, "drf")
    deleted.delete()

    # Claims that name alice and are not expired: only the signature is wrong.
    claims = {k: v for k, v in access.payload.items()}
    hs256 = {"alg": "HS256", "typ": "JWT"}
    with warnings.catch_warnings():
        # PyJWT warns that the demo key is short for HS512: this token is an attack anyway.
        warnings.simplefilter("ignore", jwt.warnings.InsecureKeyLengthWarning)
        hs512 = jwt.encode(claims, api_settings.SIGNING_KEY, algorithm="HS512")
    never = {
        "inactive_drf": make_token(inactive, "drf"),
        "inactive_jwt": make_token(inactive, "jwt"),
        "deleted_drf": deleted_drf,
        "deleted_jwt": deleted_jwt,
        "refresh": str(RefreshToken.for_user(user)),
        "alg_none": unsigned_jwt({"alg": "none", "typ": "JWT"}, claims),
        "alg_none_sig": unsigned_jwt({"alg": "none", "typ": "JWT"}, claims, "AAAA"),
        "wrong_key": jwt.encode(claims, "not-the-signing-key-" + "k" * 32, algorithm="HS256"),
        "hs512_right_key": hs512,
        "unsigned_hs256": unsigned_jwt(hs256, claims),
        # 64 KiB JWT-shaped: simplejwt and PyJWT parse it; the signature fails.
        "big_jwt": unsigned_jwt(hs256, {**claims, "pad": "A" * 49_000}, "x" * 43),
        # Deeply nested JSON in the payload: a parser's recursion limit.
        "deep_jwt": f"{b64url(json.dumps(hs256))}.{b64url('[' * 30_000)}.{'y' * 43}",
        "drf_plus": drf + "0",
        "plus_drf": "0" + drf,
        "drf_short": drf[1:],
        "drf_upper": drf.upper() if drf.upper() != drf else drf.lower(),
        "jwt_plus": jwt_token + "A",
        "jwt_short": jwt_token[:-2],
        "jwt_swapped": jwt_token.swapcase(),
        "jwt_two_sigs": jwt_token + "." + jwt_token.rsplit(".", 1)[1],
    }
    tokens = Tokens(
        user=user,
        valid={"drf": drf, "jwt": jwt_token},
        never=never,
        valid_ids={token_hash_id(drf), str(access[api_settings.JTI_CLAIM]), TICKET_TOKEN_ID},
    )
    # The parts an attacker could replay: DRF keys whole, JWTs by signature.
    secret_values = [drf, never["inactive_drf"], deleted_drf]
    for value in (jwt_token, never["inactive_jwt"], deleted_jwt, never["refresh"], never["hs512_right_key"]):
        secret_values.append(value.rsplit(".", 1)[1])
    tokens.secrets = secret_values + [b64url(v) for v in (drf, jwt_token)]
    return tokens


def leaks(text: str, secrets: list[str]) -> list[str]:
    """The secrets of which a 16-character piece appears in ``text``."""
    found = []
    for secret in secrets:
        pieces = {secret[i : i + 16] for i in range(0, max(len(secret) - 15, 1), 8)}
        if any(piece in text for piece in pieces):
            found.append(secret[:6] + "…")
    return found


# --- capturing what could leak ---------------------------------------------


class Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.texts: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()
        except Exception as exc:  # a broken format string is a finding too
            text = f"<unformattable {record.msg!r}: {exc!r}>"
        parts = [record.name, text]
        if record.exc_info:
            parts.append("".join(traceback.format_exception(*record.exc_info)))
        if record.stack_info:
            parts.append(record.stack_info)
        self.texts.append("\n".join(parts))


@contextmanager
def capture_everything() -> Iterator[tuple[Capture, list[BearerError]]]:
    """Every logger at DEBUG into one handler; every refusal's exception object.

    The refusal spy calls through to the real ``log_refusal``: it only keeps
    the exception so its message can be checked.
    """
    handler = Capture()
    root = logging.getLogger()
    saved: list[tuple[logging.Logger, int, bool]] = []
    extra: list[logging.Logger] = []
    for logger in [root, *(v for v in logging.root.manager.loggerDict.values() if isinstance(v, logging.Logger))]:
        saved.append((logger, logger.level, logger.disabled))
        logger.setLevel(logging.DEBUG)
        logger.disabled = False
        if not logger.propagate:
            logger.addHandler(handler)
            extra.append(logger)
    root.addHandler(handler)
    errors: list[BearerError] = []
    real_log_refusal = middleware_module.log_refusal

    def spy(scope: dict[str, Any], error: BearerError | None, source: str | None) -> None:
        if error is not None:
            errors.append(error)
        real_log_refusal(scope, error, source)

    middleware_module.log_refusal = spy  # type: ignore[assignment]
    try:
        yield handler, errors
    finally:
        middleware_module.log_refusal = real_log_refusal
        root.removeHandler(handler)
        for logger in extra:
            logger.removeHandler(handler)
        for logger, level, disabled in saved:
            logger.setLevel(level)
            logger.disabled = disabled


def error_texts(error: BaseException) -> str:
    return "\n".join(
        [str(error), repr(error), *map(repr, error.args), "".join(traceback.format_exception(error))]
    )


# --- driving the middleware ---------------------------------------------------


@dataclass
class Outcome:
    sent: list[dict[str, Any]]
    inner_scope: dict[str, Any] | None
    inner_pick: str | None


def pick_subprotocol(choice: str, scope: dict[str, Any]) -> str | None:
    if choice == "app":
        return APP_SUBPROTOCOL
    if choice == "first":
        return scope["subprotocols"][0] if scope.get("subprotocols") else None
    if choice == "bogus":
        return "never.offered.v9"
    return None


async def drive(scope: dict[str, Any], choice: str) -> Outcome:
    """Run one handshake through the real middleware around a recording app."""
    seen: dict[str, Any] = {}
    sent: list[dict[str, Any]] = []
    pending = [{"type": "websocket.connect"}]

    async def inner(inner_scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen["scope"] = inner_scope
        message = await receive()
        if message["type"] != "websocket.connect":
            return
        seen["pick"] = pick_subprotocol(choice, inner_scope)
        await send({"type": "websocket.accept", "subprotocol": seen["pick"]})
        await send({"type": "websocket.close", "code": 1000})

    async def receive() -> dict[str, Any]:
        if pending:
            return pending.pop(0)
        # Nobody should wait for a second message in a handshake that ends.
        await asyncio.sleep(3600)
        return {"type": "websocket.disconnect", "code": 1006}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    # A hang fails as TimeoutError: "nothing hangs" is one of the properties.
    await asyncio.wait_for(BearerAuthMiddleware(inner)(scope, receive, send), timeout=20)
    return Outcome(sent, seen.get("scope"), seen.get("pick"))


def base_scope(subprotocols: list[str], headers: list[tuple[bytes, bytes]], query: bytes, extension: bool) -> dict[str, Any]:
    scope: dict[str, Any] = {
        "type": "websocket",
        "asgi": {"version": "3.0"},
        "path": "/ws/properties/",
        "raw_path": b"/ws/properties/",
        "scheme": "ws",
        "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 50000),
        "headers": headers,
        "query_string": query,
        "subprotocols": subprotocols,
    }
    if extension:
        scope["extensions"] = {"websocket.http.response": {}}
    return scope


def wire_texts(outcome: Outcome) -> str:
    """Everything the middleware sent towards the client, as text."""
    parts: list[str] = []
    for message in outcome.sent:
        for key in ("reason", "subprotocol", "status", "code"):
            if message.get(key) is not None:
                parts.append(str(message[key]))
        if "body" in message:
            parts.append(message["body"].decode("latin-1"))
        for name, value in message.get("headers") or ():
            parts.append(name.decode("latin-1") + ": " + value.decode("latin-1"))
    return "\n".join(parts)


def check_no_leak(
    tokens: Tokens, outcome: Outcome, handler: Capture, errors: list[BearerError], ticket: str
) -> None:
    secrets = [*tokens.secrets, ticket, b64url(ticket)]
    where = {
        "log records": "\n".join(handler.texts),
        "refusal exception messages": "\n".join(map(error_texts, errors)),
        "messages sent to the client (close reason, body, answered subprotocol)": wire_texts(outcome),
    }
    if outcome.inner_scope is not None:
        where['repr(scope["bearer"])'] = repr(outcome.inner_scope.get("bearer"))
    for place, text in where.items():
        assert not leaks(text, secrets), f"token text in {place}: {leaks(text, secrets)}"


def accepted_subprotocol(outcome: Outcome) -> str | None:
    for message in outcome.sent:
        if message["type"] == "websocket.accept":
            return message.get("subprotocol")
    return None


def assert_refused(outcome: Outcome, refusal: str, extension: bool) -> None:
    assert outcome.inner_scope is None, "the inner app ran for a handshake that must be refused"
    types = [m["type"] for m in outcome.sent]
    if refusal == "close":
        assert types == ["websocket.accept", "websocket.close"]
        assert outcome.sent[1]["code"] in {4400, 4401, 4403, 1011}
    elif extension:
        assert types == ["websocket.http.response.start", "websocket.http.response.body"]
        assert outcome.sent[0]["status"] in {400, 401, 503}
    else:
        assert types == ["websocket.close"]


# --- strategies -----------------------------------------------------------------

ODD_TEXT = st.sampled_from(
    ["\x00", ",", ", ", " ", "\t", "\ud800", "é", "\u202e", "\u0085", "=", "/", "%2F", "%00", ";", '"', MARKER, ENCODED_PREFIX]
)
ODD_BYTES = st.sampled_from([b"\x00", b"\xff", b"%", b"%2", b"%zz", b"%26", b"%3D", b"+", b"=", b"\r\n", b"\xc3\xa9", b";"])

#: Text up to 64 KiB: a short piece, sometimes repeated many times.
any_text = st.one_of(
    st.text(max_size=16),
    st.lists(st.one_of(st.text(max_size=3), ODD_TEXT), max_size=6).map("".join),
    st.tuples(st.text(min_size=1, max_size=4), st.sampled_from([256, 4096, 16_384])).map(lambda t: t[0] * t[1]),
)
any_bytes = st.one_of(
    st.binary(max_size=16),
    st.lists(st.one_of(st.binary(max_size=3), ODD_BYTES), max_size=6).map(b"".join),
    st.tuples(st.binary(min_size=1, max_size=4), st.sampled_from([256, 4096, 16_384])).map(lambda t: t[0] * t[1]),
)

#: Subprotocol entries that are not a credential: no marker, no encoded entry.
noise_subprotocol = any_text.filter(lambda s: s.strip() != MARKER and not s.strip().startswith(ENCODED_PREFIX))
#: Query pieces that are neither ``access_token`` nor ``ticket`` (however escaped).
noise_query = any_bytes.filter(
    lambda b: b"&" not in b
    and unquote_plus(b.partition(b"=")[0].decode("latin-1")) not in {"access_token", "ticket"}
)
noise_header = st.tuples(
    st.one_of(
        st.sampled_from([b"origin", b"host", b"cookie", b"sec-websocket-protocol", b"user-agent", b"authorisation"]),
        st.binary(max_size=20),
    ).filter(lambda name: name.lower() != b"authorization"),
    any_bytes,
)
#: An Authorization header with someone else's scheme: ignored, but it counts
#: towards "more than one Authorization header".
FOREIGN_SCHEMES = [b"Basic", b"Token", b"Digest", b"Bearerx", b"Negotiate", b"X-Bearer"]


@dataclass(frozen=True)
class Unit:
    """One contiguous piece of the handshake; placements are credentials."""

    kind: str  # "noise_sub", "noise_header", "noise_query", "foreign_auth", "place", "malformed"
    source: str = ""
    value: Any = None
    encoding: str = ""


def noise_units(tokens: Tokens) -> st.SearchStrategy[Unit]:
    return st.one_of(
        noise_subprotocol.map(lambda v: Unit("noise_sub", value=v)),
        noise_header.map(lambda v: Unit("noise_header", value=v)),
        noise_query.map(lambda v: Unit("noise_query", value=v)),
        st.tuples(st.sampled_from(FOREIGN_SCHEMES), st.one_of(any_bytes, st.just(tokens.valid["drf"].encode()))).map(
            lambda t: Unit("foreign_auth", "header", t[0] + b" " + t[1])
        ),
    )


def credential_units(tokens: Tokens, *, only_working: bool = False) -> st.SearchStrategy[Unit]:
    """A credential somewhere: often a valid token in a place it works, often not."""
    encodings = st.sampled_from(["plain", "alt", "spaced"])
    working = st.sampled_from(
        [(source, name) for source in ("subprotocol", "header", "query") for name in tokens.valid] + [("ticket", "ticket")]
    )
    invalid_text = any_text.filter(lambda s: s.strip() not in tokens.valid.values())
    anywhere = st.tuples(
        st.sampled_from(ALL_SOURCES),
        st.one_of(
            st.sampled_from([*tokens.valid, "ticket", *tokens.never]).map(lambda n: ("name", n)),
            invalid_text.map(lambda s: ("text", s)),
        ),
    )
    if only_working:
        return st.builds(lambda pair, enc: Unit("place", pair[0], ("name", pair[1]), enc), working, encodings)
    return st.one_of(
        st.builds(lambda pair, enc: Unit("place", pair[0], ("name", pair[1]), enc), working, encodings),
        st.builds(lambda pair, enc: Unit("place", pair[0], pair[1], enc), anywhere, encodings),
    )


malformed_units = st.builds(
    lambda source, variant: Unit("malformed", source, variant), st.sampled_from(ALL_SOURCES), st.integers(0, 5)
)


def handshake_units(tokens: Tokens) -> st.SearchStrategy[list[Unit]]:
    return st.tuples(
        st.lists(noise_units(tokens), max_size=6),
        # One working credential amid the noise often, or up to three of any kind.
        st.one_of(credential_units(tokens, only_working=True).map(lambda u: [u]), st.lists(credential_units(tokens), max_size=3)),
        st.one_of(st.just([]), st.lists(malformed_units, max_size=2)),
    ).map(lambda parts: [*parts[0], *parts[1], *parts[2]])


MALFORMED: dict[str, list[Any]] = {
    # "marker_alone" goes last in the list, so nothing can follow it.
    "subprotocol": [
        "marker_alone",
        (MARKER, ""),
        (MARKER, "   "),
        (MARKER, ENCODED_PREFIX + "!!not*base64!!"),
        (MARKER, ENCODED_PREFIX + b64url(b"\xff\xfe\xfd")),
        (MARKER, ENCODED_PREFIX),
    ],
    "header": [b"Bearer", b"Bearer   ", b"Bearer a b", b"bearer  x\x0by", b"BEARER ", b"Bearer \x00 \x00"],
    "query": [b"access_token=", b"access_token=%FF", b"access_token=%20%20", b"access%5Ftoken=", b"access_token=+", b"access_token=%C3"],
    "ticket": [b"ticket=", b"ticket=%FF", b"ticket=%20", b"tick%65t=", b"ticket=+", b"ticket=%E2%82"],
}


@dataclass
class Built:
    scope: dict[str, Any]
    #: The credentials presented in enabled sources, as (source, valid?).
    presented: list[tuple[str, bool]]
    authorization_headers: int


def encode_placement(source: str, token: str, encoding: str) -> Any:
    raw = token.encode("utf-8", "surrogatepass")
    if source == "subprotocol":
        if encoding == "alt":
            entry = ENCODED_PREFIX + b64url(token)
        elif encoding == "spaced":
            entry = ENCODED_PREFIX + b64url(token, pad=True)
        else:
            entry = token
        return (MARKER, entry)
    if source == "header":
        keyword = {"plain": b"Bearer ", "alt": b"bearer ", "spaced": b"BEARER   "}[encoding]
        return keyword + raw + (b"  " if encoding == "spaced" else b"")
    name = b"access_token" if source == "query" else b"ticket"
    if encoding == "alt":
        name = {b"access_token": b"access%5Ftoken", b"ticket": b"tick%65t"}[name]
        return name + b"=" + quote_plus(raw, safe="").encode("ascii")
    if encoding == "spaced" or b"&" in raw:
        return name + b"=" + quote(raw, safe="").encode("ascii")
    return name + b"=" + raw


def build(tokens: Tokens, drawn: list[Unit], sources: set[str], ticket: str, extension: bool) -> Built:
    subprotocol_units: list[tuple[str, ...]] = []
    tail: list[str] = []
    headers: list[tuple[bytes, bytes]] = []
    query: list[bytes] = []
    presented: list[tuple[str, bool]] = []
    malformed_subprotocol = False
    for unit in drawn:
        if unit.kind == "noise_sub":
            subprotocol_units.append((unit.value,))
        elif unit.kind == "noise_header":
            headers.append(unit.value)
        elif unit.kind == "noise_query":
            query.append(unit.value)
        elif unit.kind == "foreign_auth":
            headers.append((b"authorization", unit.value))
        elif unit.kind == "place":
            kind, ref = unit.value
            token = tokens.resolve(ref, ticket) if kind == "name" else ref
            valid = (unit.source == "ticket" and token == ticket) or (
                unit.source != "ticket" and token in tokens.valid.values()
            )
            wire = encode_placement(unit.source, token, unit.encoding)
            if unit.source == "subprotocol":
                subprotocol_units.append(wire)
            elif unit.source == "header":
                headers.append((b"Authorization" if unit.encoding == "alt" else b"authorization", wire))
            else:
                query.append(wire)
            if unit.source in sources:
                presented.append((unit.source, valid))
        else:  # malformed
            if unit.source == "subprotocol":
                # One malformed subprotocol piece per handshake: two could
                # combine into a well-formed credential.
                if malformed_subprotocol:
                    continue
                malformed_subprotocol = True
            variant = MALFORMED[unit.source][unit.value]
            if variant == "marker_alone":
                tail.append(MARKER)
            elif unit.source == "subprotocol":
                subprotocol_units.append(variant)
            elif unit.source == "header":
                headers.append((b"authorization", variant))
            else:
                query.append(variant)
            if unit.source in sources:
                presented.append((unit.source, False))
    subprotocols = [entry for piece in subprotocol_units for entry in piece] + tail
    authorization = sum(1 for name, _ in headers if name.lower() == b"authorization")
    scope = base_scope(subprotocols, headers, b"&".join(query), extension)
    return Built(scope, presented, authorization)


def expected(built: Built, sources: set[str]) -> str:
    if "header" in sources and built.authorization_headers > 1:
        return "refused"
    if not built.presented:
        return "anonymous"
    if len(built.presented) == 1 and built.presented[0][1]:
        return "user"
    return "refused"


def run_case(tokens: Tokens, scope_for: Callable[[str], dict[str, Any]], sources: Any, refusal: str, choice: str) -> tuple[Outcome, Capture, list[BearerError], str]:
    ticket, _ = issue_ticket(tokens.user, token_id=TICKET_TOKEN_ID)
    scope = scope_for(ticket)
    with override_settings(CHANNELS_BEARER=bearer_settings(sources, refusal)), capture_everything() as (handler, errors):
        outcome = async_to_sync(drive)(scope, choice)
    return outcome, handler, errors, ticket


# --- the properties -------------------------------------------------------------


def test_structured_handshakes_authenticate_exactly_one_valid_credential() -> None:
    """Noise plus credential placements whose outcome we can predict exactly."""
    assert not django_settings.DEBUG  # else Django logs SQL parameters (DRF keys)
    tokens = make_tokens()
    # Half the examples with every source on (the inner-scope checks need it).
    sources_strategy = st.one_of(
        st.just(frozenset(ALL_SOURCES)),
        st.sets(st.sampled_from(ALL_SOURCES)).map(frozenset),
    )

    @PROPERTY_SETTINGS
    @given(
        drawn=handshake_units(tokens),
        order=st.randoms(use_true_random=False),
        sources=sources_strategy,
        refusal=st.sampled_from(["handshake", "handshake", "close"]),
        extension=st.booleans(),
        choice=st.sampled_from(["none", "app", "first", "bogus"]),
    )
    def check(drawn: list[Unit], order: Any, sources: frozenset[str], refusal: str, extension: bool, choice: str) -> None:
        order.shuffle(drawn)
        built_box: dict[str, Built] = {}

        def scope_for(ticket: str) -> dict[str, Any]:
            built_box["built"] = build(tokens, drawn, set(sources), ticket, extension)
            return built_box["built"].scope

        outcome, handler, errors, ticket = run_case(tokens, scope_for, sorted(sources), refusal, choice)
        built = built_box["built"]
        want = expected(built, set(sources))
        event(f"expected {want}")

        if want == "refused":
            assert_refused(outcome, refusal, extension)
        else:
            assert outcome.inner_scope is not None, f"refused a handshake that should pass ({want}): {outcome.sent}"
            inner = outcome.inner_scope
            if want == "user":
                assert inner["user"] == tokens.user
                assert inner["bearer"] is not None
                assert inner["bearer"].token_id in tokens.valid_ids
                assert inner["bearer"].source == built.presented[0][0]
            else:
                assert not inner["user"].is_authenticated
                assert inner["bearer"] is None

            # The answer names something the client offered, never the token entry.
            answered = accepted_subprotocol(outcome)
            marker_offered = "subprotocol" in sources and MARKER in [s.strip() for s in built.scope["subprotocols"]]
            if marker_offered:
                assert answered == MARKER or answered in inner["subprotocols"]
            else:
                assert answered == outcome.inner_pick

            if set(sources) == set(ALL_SOURCES):
                secrets = [*tokens.secrets, ticket, b64url(ticket)]
                assert not leaks("\n".join(inner["subprotocols"]), secrets), "token in scope['subprotocols']"
                query = inner["query_string"].decode("latin-1")
                assert not leaks(query + "\n" + unquote_plus(query), secrets), "token in scope['query_string']"
                assert MARKER not in [s.strip() for s in inner["subprotocols"]]

        check_no_leak(tokens, outcome, handler, errors, ticket)

    check()


def test_arbitrary_handshakes_never_raise_never_leak() -> None:
    """Unstructured scopes with real tokens sprinkled anywhere.

    The outcome cannot be predicted here, so the properties are the safety
    ones: the call completes, an authenticated scope carries a valid token's
    id for the one real user, and no token text leaks.
    """
    tokens = make_tokens()
    drf, access = tokens.valid["drf"], tokens.valid["jwt"]
    token_texts = [drf, access, *tokens.never.values()]
    entries = st.one_of(
        any_text,
        st.sampled_from([MARKER, " " + MARKER, ENCODED_PREFIX, ENCODED_PREFIX + "x", APP_SUBPROTOCOL]),
        st.sampled_from(token_texts),
        st.sampled_from(token_texts).map(lambda t: ENCODED_PREFIX + b64url(t)),
    )
    header_values = st.one_of(
        any_bytes,
        st.tuples(
            st.sampled_from([b"Bearer ", b"bearer  ", b"Token ", b"Bearer", b"", b"Basic "]),
            st.one_of(st.sampled_from(token_texts).map(str.encode), any_bytes),
        ).map(b"".join),
    )
    header_names = st.one_of(
        st.sampled_from([b"authorization", b"Authorization", b"AUTHORIZATION", b"origin", b"sec-websocket-protocol"]),
        st.binary(max_size=12),
    )
    query_pieces = st.one_of(
        any_bytes,
        st.tuples(
            st.sampled_from([b"access_token=", b"access%5Ftoken=", b"ticket=", b"access_token", b"=", b"ticket%3D"]),
            st.one_of(
                st.sampled_from([*token_texts, TICKET_SLOT]).map(lambda t: quote(t, safe="").encode()),
                any_bytes,
            ),
        ).map(b"".join),
    )

    @PROPERTY_SETTINGS
    @given(
        subprotocols=st.lists(entries, max_size=8),
        headers=st.lists(st.tuples(header_names, header_values), max_size=5),
        query=st.lists(query_pieces, max_size=6).map(b"&".join),
        extension=st.booleans(),
        refusal=st.sampled_from(["handshake", "close"]),
        choice=st.sampled_from(["none", "app", "bogus"]),
    )
    def check(
        subprotocols: list[str], headers: list[tuple[bytes, bytes]], query: bytes, extension: bool, refusal: str, choice: str
    ) -> None:
        def scope_for(ticket: str) -> dict[str, Any]:
            return base_scope(subprotocols, headers, query.replace(TICKET_SLOT.encode(), ticket.encode()), extension)

        outcome, handler, errors, ticket = run_case(tokens, scope_for, ALL_SOURCES, refusal, choice)
        inner = outcome.inner_scope
        event("refused" if inner is None else "authenticated" if inner["bearer"] else "anonymous")
        if inner is not None and inner["bearer"] is not None:
            assert inner["user"] == tokens.user
            assert inner["bearer"].token_id in tokens.valid_ids
        elif inner is not None:
            assert not inner["user"].is_authenticated
        else:
            assert_refused(outcome, refusal, extension)
        check_no_leak(tokens, outcome, handler, errors, ticket)

    check()


def test_every_forged_or_dead_token_is_refused_from_every_source() -> None:
    """Exhaustive rather than sampled: each token that must never work, in each
    source and each encoding, alone in an otherwise clean handshake."""
    tokens = make_tokens()
    cases = [
        (name, source, encoding)
        for name in tokens.never
        for source in ALL_SOURCES
        for encoding in ("plain", "alt", "spaced")
    ]
    for name, source, encoding in cases:
        token = tokens.never[name]

        def scope_for(ticket: str, source: str = source, token: str = token, encoding: str = encoding) -> dict[str, Any]:
            built = build(tokens, [Unit("place", source, ("text", token), encoding)], set(ALL_SOURCES), ticket, False)
            return built.scope

        outcome, handler, errors, ticket = run_case(tokens, scope_for, ALL_SOURCES, "handshake", "none")
        assert outcome.inner_scope is None, f"{name} via {source} ({encoding}) was let through"
        assert_refused(outcome, "handshake", False)
        # The client's fault, so a client error: not "temporarily_unavailable"
        # with an ERROR line in the server log, which a client could flood.
        assert [e.error for e in errors] in (["invalid_token"], ["invalid_request"]), (name, source, errors)
        assert outcome.sent[0]["code"] in {4400, 4401, 4403}, (name, source, outcome.sent)
        check_no_leak(tokens, outcome, handler, errors, ticket)
