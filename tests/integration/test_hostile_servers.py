"""Hostile handshakes against a real daphne and a real uvicorn (issue 7, part 2).

Each case is written byte for byte on a plain socket and must be refused
with the status the contract documents (401/400 with a challenge on uvicorn,
403 on daphne), or by the server itself before the app runs (its own 400,
431, or no answer at all: uvicorn never answers a header line over 8 KiB).
After every case the same server still authenticates a valid handshake, and
its log holds no token text and no traceback of ours.

Every wait is bounded (``raw_handshake(wait=...)``), so a server that hangs
is an outcome the test asserts on, not a stuck suite.
"""

from __future__ import annotations

import secrets
import uuid
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.support.handshake import (
    MARKER,
    Accounts,
    assert_refused,
    connect_outcome,
    fresh_claims,
    LogWatch,
    make_accounts,
    Outcome,
    raw_handshake,
    sign_jwt,
    unsigned_jwt,
)
from tests.support.encoding import b64url, encoded_entry
from tests.support.servers import Server

SP = "Sec-WebSocket-Protocol"
# Long enough for a server that will not answer; short enough for the suite.
HANG_WAIT = 2.0


@pytest.fixture(scope="module")
def accounts(make_user: Any, server_env_base: dict[str, str]) -> Accounts:
    return make_accounts(make_user, server_env_base, "hostile")


class ServerOwn:
    """Refused by the server itself before the app runs: its 400/431, or no answer."""

    def __repr__(self) -> str:
        return "ServerOwn()"


class Opens:
    """Not a refusal: a large but well-formed handshake with a valid token opens."""


SERVER_OWN = ServerOwn()
OPENS = Opens()
#: An RFC 6750 error ("invalid_token", "invalid_request", None for no token),
#: the server's own refusal, or "this one opens".
Expect = str | None | ServerOwn | Opens


@dataclass
class Case:
    path: str = "/ws/whoami/"
    headers: list[tuple[str, str]] = field(default_factory=list)
    #: Expected outcome per server kind.
    expect: dict[str, Expect] = field(default_factory=dict)
    #: Token text that must not reach the log.
    secrets: tuple[str, ...] = ()
    #: On an opened socket: what the consumer must have seen.
    seen: dict[str, Any] = field(default_factory=dict)
    #: How long to wait for an answer where the server is expected to hang or
    #: drop (SERVER_OWN); an answer channels-bearer must give gets the full 5 s.
    wait: float = 5.0


def both(expect: Expect) -> dict[str, Expect]:
    return {"daphne": expect, "uvicorn": expect}


def junk_token(size: int) -> str:
    """Token-looking text (RFC 6455 token characters) of ``size`` characters."""
    return b64url(secrets.token_bytes(size))[:size]


def hs512_with_server_secret(claims: dict[str, Any]) -> str:
    """The right key, the wrong algorithm: simplejwt pins HS256."""
    with warnings.catch_warnings():
        # PyJWT warns that the demo's 61-byte key is short for HS512; that is the point.
        warnings.simplefilter("ignore")
        return sign_jwt(claims, algorithm="HS512")


def cases(a: Accounts) -> dict[str, Callable[[], Case]]:
    protocols = [f"p{i}" for i in range(400)]
    junk_query = "&".join(f"k{i}=v{i}" for i in range(500))
    claims = fresh_claims(a.jwt)
    return {
        # ---- oversized headers
        # daphne drops a request with a 20 KiB header line without answering;
        # uvicorn never answers a header line over 8 KiB.
        "authorization-20KiB": lambda: (
            lambda big: Case(headers=[("Authorization", f"Bearer {big}")], expect=both(SERVER_OWN), secrets=(big,),
                             wait=HANG_WAIT)  # fmt: skip
        )(junk_token(20 * 1024)),
        # 10 KiB in one line: daphne passes it to us (invalid token), uvicorn hangs.
        "authorization-10KiB": lambda: (
            lambda big: Case(
                headers=[("Authorization", f"Bearer {big}")],
                expect={"daphne": "invalid_token", "uvicorn": SERVER_OWN},
                secrets=(big,),
                wait=HANG_WAIT,
            )
        )(junk_token(10 * 1024)),
        # 18 KiB in 1 KiB lines with a bad token: over daphne's 16 KiB total
        # (its own 400); under uvicorn's per-line limit, so ours (401).
        "headers-18KiB-total": lambda: (
            lambda bad: Case(
                headers=[(f"X-Pad-{i}", junk_token(1024)) for i in range(18)] + [(SP, f"{MARKER}, {bad}")],
                expect={"daphne": SERVER_OWN, "uvicorn": "invalid_token"},
                secrets=(bad,),
            )
        )(uuid.uuid4().hex),
        # ---- hundreds of subprotocol entries
        "subprotocols-400-no-token": lambda: Case(headers=[(SP, ", ".join(protocols))], expect=both(None)),
        "subprotocols-400-then-bad-token": lambda: (
            lambda bad: Case(headers=[(SP, ", ".join([*protocols, MARKER, bad]))], expect=both("invalid_token"),
                             secrets=(bad,))  # fmt: skip
        )(uuid.uuid4().hex),
        "subprotocols-400-with-valid-token": lambda: Case(
            headers=[(SP, ", ".join([*protocols[:200], MARKER, a.drf, *protocols[200:]]))],
            expect=both(OPENS),
            secrets=(a.drf,),
            seen={"subprotocols": protocols, "user": a.username},
        ),
        # daphne refuses repeated offered values itself (400); uvicorn passes
        # them to us: the marker twice is invalid_request.
        "marker-and-token-100-times": lambda: Case(
            headers=[(SP, ", ".join([MARKER, a.drf] * 100))],
            expect={"daphne": SERVER_OWN, "uvicorn": "invalid_request"},
            secrets=(a.drf,),
        ),
        "100-token-entries": lambda: Case(
            headers=[(SP, ", ".join([MARKER, *(encoded_entry(uuid.uuid4().hex) for _ in range(100))]))],
            expect=both("invalid_request"),
        ),
        # ---- repeated query parameters (even with equal, valid values)
        "access-token-param-twice": lambda: Case(
            path=f"/ws/whoami/?access_token={a.drf}&access_token={a.drf}",
            expect=both("invalid_request"),
            secrets=(a.drf,),
        ),
        "ticket-param-twice": lambda: Case(path="/ws/whoami/?ticket=abc&ticket=def", expect=both("invalid_request")),
        "500-params-and-a-token": lambda: Case(
            path=f"/ws/whoami/?{junk_query}&access_token={a.drf}&last=1",
            expect=both(OPENS),
            secrets=(a.drf,),
            seen={"query_string": f"{junk_query}&last=1", "user": a.username},
        ),
        # ---- tokens in two sources (both valid: still refused)
        "header-and-query": lambda: Case(
            path=f"/ws/whoami/?access_token={a.jwt}",
            headers=[("Authorization", f"Bearer {a.drf}")],
            expect=both("invalid_request"),
            secrets=(a.drf, a.jwt),
        ),
        "subprotocol-and-ticket": lambda: Case(
            path="/ws/whoami/?ticket=whatever",
            headers=[(SP, f"{MARKER}, {a.drf}")],
            expect=both("invalid_request"),
            secrets=(a.drf,),
        ),
        "two-authorization-headers": lambda: Case(
            headers=[("Authorization", f"Bearer {a.drf}"), ("Authorization", f"Bearer {a.jwt}")],
            expect=both("invalid_request"),
            secrets=(a.drf, a.jwt),
        ),
        # ---- malformed base64url
        "base64url-empty": lambda: Case(headers=[(SP, f"{MARKER}, base64url.bearer.")], expect=both("invalid_request")),
        "base64url-impossible-length": lambda: Case(
            headers=[(SP, f"{MARKER}, base64url.bearer.A")], expect=both("invalid_request")
        ),
        "base64url-foreign-characters": lambda: Case(
            headers=[(SP, f"{MARKER}, base64url.bearer.ab!c*d~e")], expect=both("invalid_request")
        ),
        "base64url-not-utf8": lambda: Case(
            headers=[(SP, f"{MARKER}, base64url.bearer.{b64url(bytes([0xFF, 0xC3, 0x28]))}")],
            expect=both("invalid_request"),
        ),
        "base64url-without-marker": lambda: Case(
            headers=[(SP, encoded_entry(a.drf))], expect=both("invalid_request"), secrets=(a.drf, b64url(a.drf))
        ),
        # ---- JWT algorithm confusion, alg none
        "jwt-hs256-other-secret": lambda: (
            lambda forged: Case(headers=[(SP, f"{MARKER}, {forged}")], expect=both("invalid_token"), secrets=(forged,))
        )(sign_jwt(claims, key="not-the-server-secret-" + "y" * 40)),
        "jwt-hs512-server-secret": lambda: (
            lambda forged: Case(headers=[(SP, f"{MARKER}, {forged}")], expect=both("invalid_token"), secrets=(forged,))
        )(hs512_with_server_secret(claims)),
        "jwt-alg-none": lambda: (
            lambda forged: Case(
                headers=[("Authorization", f"Bearer {forged}")], expect=both("invalid_token"), secrets=(forged,)
            )
        )(unsigned_jwt(claims)),
        # ---- a deleted user's tokens
        "deleted-user-jwt": lambda: Case(
            headers=[(SP, f"{MARKER}, {a.deleted_jwt}")], expect=both("invalid_token"), secrets=(a.deleted_jwt,)
        ),
        "deleted-user-drf": lambda: Case(
            headers=[("Authorization", f"Bearer {a.deleted_drf}")],
            expect=both("invalid_token"),
            secrets=(a.deleted_drf,),
        ),
    }


CASE_IDS = [
    "authorization-20KiB",
    "authorization-10KiB",
    "headers-18KiB-total",
    "subprotocols-400-no-token",
    "subprotocols-400-then-bad-token",
    "subprotocols-400-with-valid-token",
    "marker-and-token-100-times",
    "100-token-entries",
    "access-token-param-twice",
    "ticket-param-twice",
    "500-params-and-a-token",
    "header-and-query",
    "subprotocol-and-ticket",
    "two-authorization-headers",
    "base64url-empty",
    "base64url-impossible-length",
    "base64url-foreign-characters",
    "base64url-not-utf8",
    "base64url-without-marker",
    "jwt-hs256-other-secret",
    "jwt-hs512-server-secret",
    "jwt-alg-none",
    "deleted-user-jwt",
    "deleted-user-drf",
]


def assert_expected(server: Server, outcome: Outcome, expect: Expect, case: Case) -> None:
    if isinstance(expect, Opens):
        assert outcome.opened, outcome
        assert outcome.subprotocol == (MARKER if any(n == SP for n, _ in case.headers) else None)
        for key, value in case.seen.items():
            assert outcome.frame[key] == value, key
    elif isinstance(expect, ServerOwn):
        assert not outcome.opened, outcome
        assert outcome.status in (400, 431) or outcome.hung or outcome.dropped, outcome
    else:
        assert_refused(server, outcome, expect)


@pytest.mark.parametrize("case_id", CASE_IDS)
async def test_hostile_handshake(server: Server, accounts: Accounts, case_id: str) -> None:
    case = cases(accounts)[case_id]()
    log = LogWatch(server)

    expect = case.expect[server.kind]
    wait = case.wait if expect is SERVER_OWN else max(case.wait, 5.0)
    outcome = await raw_handshake(server, case.path, headers=case.headers, wait=wait)

    assert_expected(server, outcome, case.expect[server.kind], case)
    for secret in case.secrets:
        assert secret.encode() not in outcome.body
    # The server still serves: a valid handshake right after authenticates.
    after = await connect_outcome(server, subprotocols=[MARKER, accounts.jwt], echo="still serving")
    assert after.opened, after
    assert (after.subprotocol, after.frame["user"]) == (MARKER, accounts.username)
    await log.assert_clean(*case.secrets, accounts.jwt)


def test_case_ids_cover_every_case(accounts: Accounts) -> None:
    assert sorted(CASE_IDS) == sorted(cases(accounts))
