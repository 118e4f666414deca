"""The demo project behind a real daphne and a real uvicorn, through every source.

Each test runs once per server (the ``server`` fixture). Clients connect with
the ``websockets`` library, or byte for byte (``raw_handshake``) where a
well-behaved client would refuse to send the input. Every test ends by
reading the server log written during it: no token text, no traceback.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pytest

from tests.support.backends import PASSPHRASE_PREFIX
from tests.support.handshake import (
    MARKER,
    Accounts,
    assert_refused,
    connect_outcome,
    fresh_claims,
    http_request,
    jwt_parts,
    LogWatch,
    make_accounts,
    raw_handshake,
    sign_jwt,
    unsigned_jwt,
)
from tests.support.encoding import b64url, encoded_entry
from tests.support.tokens import drf_token_id
from tests.support.servers import Server

DRF_BACKEND = "channels_bearer.backends.DRFTokenBackend"
JWT_BACKEND = "channels_bearer.backends.SimpleJWTBackend"
PASSPHRASE_BACKEND = "tests.support.backends.PassphraseBackend"
TICKET_BACKEND = "channels_bearer.tickets"


@pytest.fixture(scope="module")
def accounts(make_user: Any, server_env_base: dict[str, str]) -> Accounts:
    return make_accounts(make_user, server_env_base, "srv")


@pytest.fixture(scope="module")
def refresh_token(accounts: Accounts, running_servers: dict[str, Server]) -> str:
    """A real SimpleJWT refresh token, from the demo's /api/jwt/."""
    answer = http_request(
        running_servers["daphne"],
        "/api/jwt/",
        method="POST",
        data={"username": accounts.username, "password": accounts.password},
    )
    assert answer.status == 200, answer
    token: str = answer.json()["refresh"]
    return token


def passphrase(accounts: Accounts) -> str:
    """A token no browser may send raw: ``/``, ``=``, a space and non-ASCII."""
    return PASSPHRASE_PREFIX + accounts.username


# ---------------------------------------------------------------- every source works


@dataclass
class Success:
    subprotocols: list[str] | None
    headers: list[tuple[str, str]]
    query: str
    #: What the handshake answers, and what the whoami frame reports.
    answered: str | None
    source: str
    backend: str
    seen_subprotocols: list[str]
    seen_query: str


def success_cases(accounts: Accounts) -> dict[str, tuple[Success, str]]:
    """Each case, with the token it sends (for the token_id and log checks)."""
    drf, jwt, phrase = accounts.drf, accounts.jwt, passphrase(accounts)
    return {
        "subprotocol-drf-raw": (
            Success([MARKER, drf], [], "", MARKER, "subprotocol", DRF_BACKEND, [], ""),
            drf,
        ),
        # The consumer declares whoami.v1: offered beside the token, it is the answer.
        "subprotocol-jwt-raw-with-app-protocol": (
            Success(["whoami.v1", MARKER, jwt], [], "", "whoami.v1", "subprotocol", JWT_BACKEND, ["whoami.v1"], ""),
            jwt,
        ),
        # An application subprotocol the consumer does not declare: the marker is answered.
        "subprotocol-base64url-passphrase": (
            Success(
                [MARKER, encoded_entry(phrase), "chat.v9"], [], "", MARKER, "subprotocol", PASSPHRASE_BACKEND,
                ["chat.v9"], "",
            ),  # fmt: skip
            phrase,
        ),
        "header-bearer-drf": (
            Success(None, [("Authorization", f"Bearer {drf}")], "", None, "header", DRF_BACKEND, [], ""),
            drf,
        ),
        # RFC 7235: the scheme is case-insensitive.
        "header-lowercase-scheme-jwt": (
            Success(None, [("Authorization", f"bearer {jwt}")], "", None, "header", JWT_BACKEND, [], ""),
            jwt,
        ),
        "query-access-token": (
            Success(None, [], f"?room=7&access_token={drf}&x=%2F", None, "query", DRF_BACKEND, [], "room=7&x=%2F"),
            drf,
        ),
    }


SUCCESS_IDS = [
    "subprotocol-drf-raw",
    "subprotocol-jwt-raw-with-app-protocol",
    "subprotocol-base64url-passphrase",
    "header-bearer-drf",
    "header-lowercase-scheme-jwt",
    "query-access-token",
]


def expected_token_id(token: str) -> str:
    """A jti for a JWT, a SHA-256 prefix for anything else: never the token."""
    if token.count(".") == 2:
        return str(jwt_parts(token)[1]["jti"])
    return drf_token_id(token)


@pytest.mark.parametrize("case_id", SUCCESS_IDS)
async def test_each_source_authenticates(server: Server, accounts: Accounts, case_id: str) -> None:
    case, token = success_cases(accounts)[case_id]
    log = LogWatch(server)
    echo = f"echo-{uuid.uuid4().hex}"

    outcome = await connect_outcome(
        server, "/ws/whoami/" + case.query, subprotocols=case.subprotocols, headers=case.headers, echo=echo
    )

    assert outcome.opened, outcome
    assert outcome.subprotocol == case.answered
    frame = outcome.frame
    assert frame == {
        "user": accounts.username,
        "source": case.source,
        "backend": case.backend,
        "token_id": expected_token_id(token),
        "expires_at": frame["expires_at"],
        "subprotocols": case.seen_subprotocols,
        "query_string": case.seen_query,
    }
    assert token not in frame["token_id"] and token[:16] not in frame["token_id"]
    if case.backend == JWT_BACKEND:
        assert datetime.fromisoformat(frame["expires_at"]).timestamp() == jwt_parts(token)[1]["exp"]
    else:
        assert frame["expires_at"] is None
    await log.assert_clean(token, b64url(token))


async def test_ticket_from_the_api_opens_one_socket(server: Server, accounts: Accounts) -> None:
    """POST /api/ws-ticket/ with the DRF token; the ticket opens one socket, once."""
    log = LogWatch(server)
    answer = http_request(
        server, "/api/ws-ticket/", method="POST", data={}, headers={"Authorization": f"Token {accounts.drf}"}
    )
    assert answer.status == 200, answer
    assert answer.headers.get("cache-control") == "no-store"
    ticket = answer.json()["ticket"]
    assert answer.json()["expires_in"] == 30

    first = await connect_outcome(server, f"/ws/whoami/?ticket={ticket}&room=7", echo="hello")
    assert first.opened, first
    assert first.subprotocol is None
    assert first.frame == {
        "user": accounts.username,
        "source": "ticket",
        "backend": TICKET_BACKEND,
        # The id of the token that issued the ticket.
        "token_id": drf_token_id(accounts.drf),
        "expires_at": None,
        "subprotocols": [],
        "query_string": "room=7",
    }

    again = await connect_outcome(server, f"/ws/whoami/?ticket={ticket}")
    assert_refused(server, again, "invalid_token")
    await log.assert_clean(accounts.drf, ticket)


# ---------------------------------------------------------------- refusals


async def test_invalid_token_refused_with_challenge(server: Server) -> None:
    log = LogWatch(server)
    bogus = uuid.uuid4().hex
    outcome = await connect_outcome(server, subprotocols=[MARKER, bogus])
    assert_refused(server, outcome, "invalid_token")
    if server.kind == "uvicorn":
        assert bogus.encode() not in outcome.body
    await log.assert_clean(bogus)


async def test_refusals_log_no_spurious_server_error(server: Server) -> None:
    """The middleware yields once after a denial, so uvicorn does not log
    "ASGI callable returned without completing handshake" for each refusal
    (see test_server_quirks for uvicorn's behaviour with an app that does not)."""
    log = LogWatch(server)
    for _ in range(3):
        outcome = await connect_outcome(server, subprotocols=[MARKER, uuid.uuid4().hex])
        assert_refused(server, outcome, "invalid_token")
    assert "without completing handshake" not in await log.settle()


async def test_two_credentials_refused_as_invalid_request(server: Server, accounts: Accounts) -> None:
    log = LogWatch(server)
    outcome = await connect_outcome(
        server, subprotocols=[MARKER, accounts.drf], headers=[("Authorization", f"Bearer {accounts.drf}")]
    )
    assert_refused(server, outcome, "invalid_request")
    await log.assert_clean(accounts.drf)


async def test_no_token_refused_with_bare_challenge(server: Server) -> None:
    log = LogWatch(server)
    outcome = await connect_outcome(server)
    assert_refused(server, outcome, None)
    await log.assert_clean()


async def test_foreign_origin_refused(server: Server, accounts: Accounts) -> None:
    """AllowedHostsOriginValidator closes before accept: 403 on both servers."""
    log = LogWatch(server)
    outcome = await connect_outcome(server, subprotocols=[MARKER, accounts.drf], origin="https://evil.example")
    assert outcome.status == 403, outcome
    await log.assert_clean(accounts.drf)


@dataclass
class Bad:
    #: Header lines written as they are (raw handshake).
    headers: list[tuple[str, str]]
    query: str
    #: RFC 6750 error the refusal carries; None: treated as "no token".
    error: str | None
    #: Token text that must not reach the log.
    secrets: tuple[str, ...]


def bad_cases(accounts: Accounts, refresh: str) -> dict[str, Bad]:
    drf, jwt = accounts.drf, accounts.jwt
    sp = "Sec-WebSocket-Protocol"
    claims = fresh_claims(jwt)
    expired = sign_jwt(fresh_claims(jwt, exp=int(claims["iat"]) - 60))
    header, payload, signature = jwt.split(".")
    tampered_claims = dict(jwt_parts(jwt)[1], user_id="999999")
    tampered = f"{header}.{b64url(json.dumps(tampered_claims))}.{signature}"
    alg_none = unsigned_jwt(claims)
    not_utf8 = "base64url.bearer." + b64url(b"\xff\xfe\xfd")
    return {
        "empty-token-subprotocol": Bad([(sp, f"{MARKER}, ")], "", "invalid_request", ()),
        "empty-token-header": Bad([("Authorization", "Bearer ")], "", "invalid_request", ()),
        "empty-token-query": Bad([], "?access_token=", "invalid_request", ()),
        "whitespace-token-base64url": Bad([(sp, f"{MARKER}, {encoded_entry('   ')}")], "", "invalid_request", ()),
        "whitespace-token-query": Bad([], "?access_token=%20%09%20", "invalid_request", ()),
        "marker-without-token": Bad([(sp, MARKER)], "", "invalid_request", ()),
        "two-token-entries": Bad([(sp, f"{MARKER}, {drf}, {encoded_entry(jwt)}")], "", "invalid_request", (drf, jwt)),
        "two-tokens-in-header": Bad([("Authorization", f"Bearer {drf} {jwt}")], "", "invalid_request", (drf, jwt)),
        "token-in-two-sources": Bad([("Authorization", f"Bearer {drf}")], f"?access_token={jwt}", "invalid_request",
                                    (drf, jwt)),  # fmt: skip
        # Not our scheme: someone else's credential, so no token at all.
        "unknown-scheme-basic": Bad([("Authorization", "Basic " + b64url(f"{accounts.username}:pw"))], "", None, ()),
        "unknown-scheme-token": Bad([("Authorization", f"Token {drf}")], "", None, (drf,)),
        "invalid-base64url": Bad([(sp, f"{MARKER}, base64url.bearer.!!!!")], "", "invalid_request", ()),
        "base64url-not-utf8": Bad([(sp, f"{MARKER}, {not_utf8}")], "", "invalid_request", ()),
        "expired-jwt": Bad([(sp, f"{MARKER}, {expired}")], "", "invalid_token", (expired,)),
        "tampered-jwt": Bad([(sp, f"{MARKER}, {tampered}")], "", "invalid_token", (tampered,)),
        "alg-none-jwt": Bad([(sp, f"{MARKER}, {alg_none}")], "", "invalid_token", (alg_none,)),
        "refresh-as-access": Bad([("Authorization", f"Bearer {refresh}")], "", "invalid_token", (refresh,)),
        "inactive-user-drf": Bad([(sp, f"{MARKER}, {accounts.inactive_drf}")], "", "invalid_token",
                                 (accounts.inactive_drf,)),  # fmt: skip
        "inactive-user-jwt": Bad([("Authorization", f"Bearer {accounts.inactive_jwt}")], "", "invalid_token",
                                 (accounts.inactive_jwt,)),  # fmt: skip
        "deleted-user-drf": Bad([(sp, f"{MARKER}, {accounts.deleted_drf}")], "", "invalid_token",
                                (accounts.deleted_drf,)),  # fmt: skip
        "deleted-user-jwt": Bad([(sp, f"{MARKER}, {accounts.deleted_jwt}")], "", "invalid_token",
                                (accounts.deleted_jwt,)),  # fmt: skip
    }


BAD_IDS = [
    "empty-token-subprotocol",
    "empty-token-header",
    "empty-token-query",
    "whitespace-token-base64url",
    "whitespace-token-query",
    "marker-without-token",
    "two-token-entries",
    "two-tokens-in-header",
    "token-in-two-sources",
    "unknown-scheme-basic",
    "unknown-scheme-token",
    "invalid-base64url",
    "base64url-not-utf8",
    "expired-jwt",
    "tampered-jwt",
    "alg-none-jwt",
    "refresh-as-access",
    "inactive-user-drf",
    "inactive-user-jwt",
    "deleted-user-drf",
    "deleted-user-jwt",
]


@pytest.mark.parametrize("case_id", BAD_IDS)
async def test_bad_input_refused(server: Server, accounts: Accounts, refresh_token: str, case_id: str) -> None:
    case = bad_cases(accounts, refresh_token)[case_id]
    log = LogWatch(server)
    outcome = await raw_handshake(server, "/ws/whoami/" + case.query, headers=list(case.headers))
    assert_refused(server, outcome, case.error)
    for secret in case.secrets:
        assert secret.encode() not in outcome.body
    await log.assert_clean(*case.secrets)


def test_bad_case_ids_cover_every_case(accounts: Accounts, refresh_token: str) -> None:
    assert sorted(BAD_IDS) == sorted(bad_cases(accounts, refresh_token))
    assert sorted(SUCCESS_IDS) == sorted(success_cases(accounts))


# ---------------------------------------------------------------- accept-then-close mode


CloseCase = Callable[[Accounts], tuple[list[str] | None, list[tuple[str, str]], str | None, int, str]]

CLOSE_CASES: dict[str, CloseCase] = {
    # (subprotocols, headers, answered, close code, reason)
    "bad-token": lambda a: ([MARKER, uuid.uuid4().hex], [], MARKER, 4401, "invalid_token"),
    "inactive-user": lambda a: ([MARKER, a.inactive_drf], [], MARKER, 4403, "invalid_token"),
    "two-credentials": lambda a: ([MARKER, a.drf], [("Authorization", f"Bearer {a.drf}")], MARKER, 4400,
                                  "invalid_request"),  # fmt: skip
    "no-token": lambda a: (None, [], None, 4401, "token_required"),
}


@pytest.mark.parametrize("case_id", list(CLOSE_CASES))
async def test_close_mode_accepts_then_closes(close_mode_server: Server, accounts: Accounts, case_id: str) -> None:
    """REFUSAL="close": a page gets a close code it can act on instead of 1006."""
    subprotocols, headers, answered, code, reason = CLOSE_CASES[case_id](accounts)
    log = LogWatch(close_mode_server)
    outcome = await connect_outcome(close_mode_server, subprotocols=subprotocols, headers=headers)
    assert outcome.opened, outcome
    assert outcome.subprotocol == answered
    assert outcome.frame is None
    # daphne drops the reason of every close (tests/integration/test_server_quirks.py pins it).
    assert (outcome.close_code, outcome.close_reason) == (code, "" if close_mode_server.kind == "daphne" else reason)
    await log.assert_clean(*(subprotocols or [])[1:], accounts.drf)


async def test_close_mode_still_authenticates(close_mode_server: Server, accounts: Accounts) -> None:
    outcome = await connect_outcome(close_mode_server, subprotocols=[MARKER, accounts.jwt], echo="still here")
    assert outcome.opened and outcome.subprotocol == MARKER
    assert outcome.frame["user"] == accounts.username


# ---------------------------------------------------------------- HTTP side of the demo


def test_http_endpoints(server: Server, accounts: Accounts) -> None:
    credentials = {"username": accounts.username, "password": accounts.password}

    token = http_request(server, "/api/token/", method="POST", data=credentials)
    assert token.status == 200, token
    assert token.json() == {"token": accounts.drf}

    pair = http_request(server, "/api/jwt/", method="POST", data=credentials)
    assert pair.status == 200, pair
    assert set(pair.json()) == {"access", "refresh"}
    assert jwt_parts(pair.json()["access"])[1]["token_type"] == "access"

    wrong = http_request(server, "/api/jwt/", method="POST", data={**credentials, "password": "nope"})
    assert wrong.status == 401

    ticket = http_request(
        server, "/api/ws-ticket/", method="POST", data={}, headers={"Authorization": f"Bearer {pair.json()['access']}"}
    )
    assert ticket.status == 200, ticket
    assert len(ticket.json()["ticket"]) >= 32
    anonymous = http_request(server, "/api/ws-ticket/", method="POST", data={})
    assert anonymous.status in (401, 403)

    helper = http_request(server, "/static/channels_bearer/bearer-websocket.js")
    assert helper.status == 200
    assert "javascript" in helper.headers["content-type"]
    assert b"channelsBearer" in helper.body
