"""Test helpers for projects that use channels-bearer.

::

    from channels_bearer.testing import BearerCommunicator, assert_refused, make_token

    token = make_token(alice)                      # in a sync test or setUpTestData
    communicator = BearerCommunicator(application, "/ws/chat/", token=token)
    connected, subprotocol = await communicator.connect()
    assert connected and subprotocol == "access_token"

``BearerCommunicator`` sends the token the way a real client does (``via``):

* ``"subprotocol"``: ``Sec-WebSocket-Protocol: access_token, <token>``, what a
  browser sends for ``new WebSocket(url, ["access_token", token])``; a token
  with characters a browser refuses in a subprotocol goes as
  ``base64url.bearer.<base64url>``, like ``bearer-websocket.js`` does;
  application subprotocols (``subprotocols=``) are offered after it;
* ``"header"``: ``Authorization: Bearer <token>`` (the first ``HEADER_KEYWORDS``);
* ``"query"``: ``?access_token=<token>`` appended to the path's query string;
* ``"ticket"``: ``?ticket=<token>``: here ``token`` **is a ticket**, from
  ``make_ticket(user)`` (or ``TicketView``).

Where the database may not be touched (async test code), build it with
``BearerCommunicator.for_user(application, path, user, kind=...)``: the token
(or ticket) is minted when ``connect()`` is awaited.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import TracebackType
from typing import Any, Literal
from urllib.parse import quote

from channels.db import database_sync_to_async
from channels.testing.websocket import WebsocketCommunicator

from channels_bearer.conf import conf
from channels_bearer.sources import ENCODED_PREFIX, is_token68ish
from channels_bearer.tokens import make_token as _make_token

__all__ = [
    "DEFAULT_ORIGIN",
    "REFUSALS",
    "BearerCommunicator",
    "BearerTestMixin",
    "DenialResponse",
    "Refusal",
    "TestKey",
    "amake_ticket",
    "amake_token",
    "assert_refused",
    "make_test_key",
    "make_ticket",
    "make_token",
    "subprotocol_entry",
]

Via = Literal["subprotocol", "header", "query", "ticket"]
Kind = Literal["drf", "jwt", "jwks"]
VIAS: tuple[str, ...] = ("subprotocol", "header", "query", "ticket")

#: What the communicators send as ``Origin`` unless given headers of their own:
#: ``testserver`` is in Django's test ``ALLOWED_HOSTS``, so the handshake passes
#: ``AllowedHostsOriginValidator`` as a browser's would on the real site.
DEFAULT_ORIGIN = "http://testserver"


# -- tokens and tickets --------------------------------------------------------


def make_token(
    user: Any,
    kind: str = "drf",
    *,
    key: Any = None,
    claims: Mapping[str, Any] | None = None,
    algorithm: str | None = None,
    lifetime: float = 300,
    kid: str | None = None,
) -> str:
    """Return a token string for ``user`` that the configured backends accept.

    * ``kind="drf"``: the user's ``rest_framework.authtoken`` key (created if missing);
    * ``kind="jwt"``: a fresh SimpleJWT access token;
    * ``kind="jwks"``: a JWT for ``JWKSBackend`` signed with ``key`` (a private
      key as PEM, a private JWK dict, a ``cryptography`` key or a ``TestKey``
      from ``make_test_key()``). It carries ``iss`` and ``aud`` from
      ``CHANNELS_BEARER["JWKS"]`` (``ISSUER``, ``AUDIENCE``), the user in the
      ``USER_CLAIM`` claim (default ``sub``; its value is the user's
      ``USER_FIELD``, default ``username``), ``iat``, ``exp`` (``lifetime``
      seconds from now) and a random ``jti``; ``claims`` are merged last, so
      they can override or remove (value ``None``) any of these. The
      algorithm is ``algorithm``, else the JWK's ``alg``, else the first of
      ``JWKS["ALGORITHMS"]``, else RS256. This touches no database.

    ``drf`` and ``jwt`` use the database: from async code, use ``amake_token``.
    """
    if kind == "jwks":
        return _make_jwks_token(user, key=key, claims=claims, algorithm=algorithm, lifetime=lifetime, kid=kid)
    if key is not None or claims is not None or algorithm is not None or kid is not None:
        raise TypeError(f"key, claims, algorithm and kid apply to kind='jwks' only, not {kind!r}.")
    if kind not in ("drf", "jwt"):
        raise ValueError(f"Unknown token kind {kind!r}; use 'drf', 'jwt' or 'jwks'.")
    return _make_token(user, kind=kind)


async def amake_token(user: Any, kind: str = "drf", **kwargs: Any) -> str:
    """``make_token`` for async code (the database work runs in Channels' DB thread)."""
    token: str = await database_sync_to_async(make_token)(user, kind, **kwargs)
    return token


def make_ticket(
    user: Any,
    *,
    token_id: str | None = None,
    expires_at: datetime | None = None,
    scopes: Iterable[str] = (),
) -> str:
    """Issue a one-time ticket for ``user``, as ``TicketView`` would, and return it.

    ``token_id`` / ``expires_at`` / ``scopes`` describe the token the ticket is
    issued "for" (``None``: a session); a socket opened with the ticket then
    closes when that token would expire, and revoking it voids the ticket.
    Send it with ``BearerCommunicator(..., token=ticket, via="ticket")``.
    """
    from channels_bearer.tickets import issue_ticket

    ticket, _ = issue_ticket(user, token_id=token_id, expires_at=expires_at, scopes=frozenset(scopes))
    return ticket


async def amake_ticket(
    user: Any,
    *,
    token_id: str | None = None,
    expires_at: datetime | None = None,
    scopes: Iterable[str] = (),
) -> str:
    """``make_ticket`` for async code (the ticket cache may be a database cache)."""
    ticket: str = await database_sync_to_async(make_ticket)(
        user, token_id=token_id, expires_at=expires_at, scopes=scopes
    )
    return ticket


@dataclass(frozen=True)
class TestKey:
    """A signing key pair for ``kind="jwks"`` tokens.

    ``jwks`` is the public key set to serve at your test ``JWKS_URL``;
    ``private_pem`` signs. Never use one outside tests.
    """

    __test__ = False  # not a pytest test class, despite the name

    kid: str
    algorithm: str
    private_pem: str = field(repr=False)
    public_jwk: dict[str, Any]

    @property
    def jwks(self) -> dict[str, Any]:
        return {"keys": [dict(self.public_jwk)]}


def make_test_key(kid: str = "test-key", algorithm: str = "RS256") -> TestKey:
    """Generate a fresh key pair (RSA 2048 for ``RS*``, P-256 for ``ES256``). Needs PyJWT[crypto]."""
    import json

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from jwt.algorithms import ECAlgorithm, RSAAlgorithm

    private: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
    if algorithm.startswith(("RS", "PS")):
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        public_jwk = json.loads(RSAAlgorithm.to_jwk(private.public_key()))
    elif algorithm == "ES256":
        private = ec.generate_private_key(ec.SECP256R1())
        public_jwk = json.loads(ECAlgorithm.to_jwk(private.public_key()))
    else:
        raise ValueError(f"make_test_key supports RS256/RS384/RS512/PS256/PS384/PS512 and ES256, not {algorithm!r}.")
    public_jwk.update({"kid": kid, "alg": algorithm, "use": "sig"})
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode("ascii")
    return TestKey(kid=kid, algorithm=algorithm, private_pem=pem, public_jwk=public_jwk)


def _make_jwks_token(
    user: Any,
    *,
    key: Any,
    claims: Mapping[str, Any] | None,
    algorithm: str | None,
    lifetime: float,
    kid: str | None,
) -> str:
    import jwt

    if key is None:
        raise TypeError("make_token(user, kind='jwks') needs key=: a private key (PEM, JWK dict or TestKey).")
    settings = conf.JWKS
    signing_key: Any = key
    if isinstance(key, TestKey):
        signing_key = key.private_pem
        algorithm = algorithm or key.algorithm
        kid = kid or key.kid
    elif isinstance(key, Mapping):
        jwk = jwt.PyJWK(dict(key))
        signing_key = jwk.key
        algorithm = algorithm or key.get("alg") or jwk.algorithm_name
        kid = kid or key.get("kid")
    if algorithm is None:
        configured = settings.get("ALGORITHMS") or ["RS256"]
        algorithm = str(configured[0])

    now = int(time.time())
    # The same defaults as JWKSBackend's, so the backend finds the user.
    user_field = str(settings.get("USER_FIELD") or "username")
    payload: dict[str, Any] = {
        "iat": now,
        "exp": now + int(lifetime),
        "jti": uuid.uuid4().hex,
        str(settings.get("USER_CLAIM") or "sub"): str(getattr(user, user_field)),
    }
    if settings.get("ISSUER"):
        payload["iss"] = settings["ISSUER"]
    audience = settings.get("AUDIENCE")
    if audience:
        # One audience is a plain string, as most providers send it.
        payload["aud"] = audience if isinstance(audience, str) else list(audience)
    for name, value in (claims or {}).items():
        if value is None:
            payload.pop(name, None)
        else:
            payload[name] = value
    headers = {"kid": kid} if kid else None
    return jwt.encode(payload, signing_key, algorithm=algorithm, headers=headers)


def subprotocol_entry(token: str) -> str:
    """The ``Sec-WebSocket-Protocol`` entry a client sends for ``token``.

    The token itself when every character is allowed in a subprotocol (DRF
    keys, JWTs), else ``base64url.bearer.<base64url of the UTF-8, no padding>``.
    """
    if is_token68ish(token):
        return token
    encoded = base64.urlsafe_b64encode(token.encode("utf-8")).rstrip(b"=").decode("ascii")
    return ENCODED_PREFIX + encoded


# -- the communicator ------------------------------------------------------------


@dataclass(frozen=True)
class DenialResponse:
    """The HTTP response that refused a handshake (``websocket.http.response`` extension)."""

    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes

    def header(self, name: str) -> str | None:
        """The value of header ``name`` (case-insensitive), or ``None``."""
        wanted = name.lower().encode("latin-1")
        for key, value in self.headers:
            if key.lower() == wanted:
                return value.decode("latin-1")
        return None


TokenMinter = Callable[[], Awaitable["str | None"]]


class BearerCommunicator(WebsocketCommunicator):
    """A ``WebsocketCommunicator`` whose handshake carries a bearer token.

    ``token``: the token (for ``via="ticket"``, a ticket), or ``None`` for a
    handshake without credentials. ``headers``, ``subprotocols`` and
    ``spec_version`` are Channels' own; when ``headers`` is not given the
    handshake sends ``Host: testserver`` and ``Origin: http://testserver``.
    ``subprotocols`` are application subprotocols, offered after the token.

    ``http_response=True`` advertises the ASGI ``websocket.http.response``
    extension, like uvicorn: a refusal then comes as an HTTP response, which
    ``connect()`` reports as ``(False, <HTTP status>)`` with the response in
    ``denial`` (Channels' own communicator raises ``AssertionError`` there).

    ``await connect()`` returns what Channels' does: ``(True, subprotocol)``
    or ``(False, close code)``. Like a browser, it fails (``AssertionError``)
    when the server answers a subprotocol that was not offered, or none
    although some were (``check_subprotocol=False`` turns that off).

    After ``connect()``: ``accepted``, ``subprotocol`` (the answered one),
    ``close_code`` / ``close_reason`` (a close, before accept or read with
    ``receive_close()``), ``denial``. Usable as ``async with``, which
    disconnects on exit.
    """

    accepted: bool | None
    subprotocol: str | None
    close_code: int | None
    close_reason: str | None
    denial: DenialResponse | None

    def __init__(
        self,
        application: Any,
        path: str,
        *,
        token: str | None,
        via: str = "subprotocol",
        headers: Iterable[tuple[bytes, bytes]] | None = None,
        subprotocols: Iterable[str] | None = None,
        spec_version: int | None = None,
        http_response: bool = False,
        check_subprotocol: bool = True,
    ) -> None:
        self.via = via
        self.check_subprotocol = check_subprotocol
        self.accepted = None
        self.subprotocol = None
        self.close_code = None
        self.close_reason = None
        self.denial = None
        self._token: str | None = None
        self._minter: TokenMinter | None = None
        self._ready: asyncio.Event | None = None
        self._app_subprotocols = [str(s) for s in subprotocols or ()]
        if headers is None:
            headers = [(b"host", b"testserver"), (b"origin", DEFAULT_ORIGIN.encode("ascii"))]
        super().__init__(application, path, headers=list(headers), subprotocols=list(self._app_subprotocols),
                         spec_version=spec_version)
        if via not in VIAS:
            # After super().__init__(): asgiref's __del__ needs what it sets.
            raise ValueError(f"via must be one of {', '.join(map(repr, VIAS))}, not {via!r}.")
        if http_response:
            self.scope["extensions"] = {"websocket.http.response": {}}
        if token is not None:
            self._present(token)

    @classmethod
    def for_user(
        cls,
        application: Any,
        path: str,
        user: Any,
        *,
        via: str = "subprotocol",
        kind: str = "drf",
        **kwargs: Any,
    ) -> BearerCommunicator:
        """A communicator for ``user`` whose token is minted by ``connect()``.

        For async code, where the database may not be touched: the token of
        ``kind`` (see ``make_token``) is made when ``connect()`` is awaited,
        and for ``via="ticket"`` a ticket is issued for it as ``TicketView``
        would (carrying the token's id and expiry).
        """

        async def mint() -> str | None:
            token = await amake_token(user, kind)
            if via != "ticket":
                return token
            identity = await _identify(token, kind)
            return await amake_ticket(
                user, token_id=identity.token_id, expires_at=identity.expires_at, scopes=identity.scopes
            )

        communicator = cls(application, path, token=None, via=via, **kwargs)
        communicator._defer(mint)
        return communicator

    def __repr__(self) -> str:
        # Never the token: test reports print reprs.
        return f"<{type(self).__name__} path={self.scope.get('path')!r} via={self.via!r}>"

    # -- the handshake ----------------------------------------------------------

    def _present(self, token: str) -> None:
        """Put ``token`` into the scope where a client of kind ``via`` puts it."""
        self._token = token
        if self.via == "subprotocol":
            self.scope["subprotocols"] = [conf.SUBPROTOCOL, subprotocol_entry(token), *self._app_subprotocols]
        elif self.via == "header":
            try:
                value = f"{conf.HEADER_KEYWORDS[0]} {token}".encode("latin-1")
            except UnicodeEncodeError:
                raise ValueError("a token sent in a header must be latin-1 text; send it with via='subprotocol'") from None
            self.scope["headers"] = [*(self.scope.get("headers") or ()), (b"authorization", value)]
        else:
            param = conf.QUERY_PARAM if self.via == "query" else conf.TICKET_PARAM
            pair = f"{quote(param, safe='')}={quote(token, safe='')}".encode("ascii")
            query = self.scope.get("query_string") or b""
            self.scope["query_string"] = query + b"&" + pair if query else pair

    def _defer(self, minter: TokenMinter) -> None:
        # The application must not see the scope before the token is in it;
        # depending on the asgiref version it is started on construction or
        # on first use, so gate it rather than rely on either.
        self._minter = minter
        self._ready = ready = asyncio.Event()
        inner = self.application  # ApplicationCommunicator made it a single callable

        async def gated(scope: Any, receive: Any, send: Any) -> Any:
            await ready.wait()
            return await inner(scope, receive, send)

        self.application = gated

    async def connect(self, timeout: float = 1) -> tuple[bool, int | str | None]:
        """Open the handshake; ``(True, subprotocol)`` or ``(False, code)``.

        The code is the close code, or the HTTP status of a denial response
        (``http_response=True``).
        """
        if self._minter is not None:
            minter, self._minter = self._minter, None
            token = await minter()
            if token is not None:
                self._present(token)
            assert self._ready is not None
            self._ready.set()
        await self.send_input({"type": "websocket.connect"})
        response = await self.receive_output(timeout)
        kind = response["type"]
        if kind == "websocket.close":
            self._record_close(response)
            self.accepted = False
            assert self.close_code is not None
            return False, self.close_code
        if kind == "websocket.http.response.start":
            self.accepted = False
            self.denial = await self._read_denial(response, timeout)
            return False, self.denial.status
        assert kind == "websocket.accept", f"Expected websocket.accept or a refusal, got {kind!r}"
        self.accepted = True
        self.response_headers = list(response.get("headers") or [])
        self.subprotocol = response.get("subprotocol")
        if self.check_subprotocol:
            self._check_answer()
        return True, self.subprotocol

    def _check_answer(self) -> None:
        offered = list(self.scope.get("subprotocols") or ())
        answer = self.subprotocol
        if self._token is not None and self.via == "subprotocol" and answer == subprotocol_entry(self._token):
            raise AssertionError("The server echoed the token entry as its subprotocol: the token leaks into the 101 response.")
        if answer is None and offered:
            raise AssertionError(
                "The server accepted without naming a subprotocol although the client offered some: "
                "a browser fails this handshake."
            )
        if answer is not None and answer not in offered:
            raise AssertionError(
                f"The server answered subprotocol {answer!r}, which the client did not offer: "
                "a browser fails this handshake."
            )

    async def _read_denial(self, start: dict[str, Any], timeout: float) -> DenialResponse:
        body = b""
        while True:
            message = await self.receive_output(timeout)
            assert message["type"] == "websocket.http.response.body", f"Unexpected {message['type']!r}"
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        return DenialResponse(int(start["status"]), list(start.get("headers") or []), body)

    def _record_close(self, message: dict[str, Any]) -> None:
        self.close_code = int(message.get("code", 1000))
        self.close_reason = str(message.get("reason") or "")

    async def receive_close(self, timeout: float = 1) -> int:
        """Wait for the application to close the socket; return (and record) the code.

        For closes after accept: an expired token (4401), a revoked one (4403),
        or a refusal under ``REFUSAL = "close"``.
        """
        message = await self.receive_output(timeout)
        assert message["type"] == "websocket.close", f"Expected websocket.close, got {message['type']!r}"
        self._record_close(message)
        assert self.close_code is not None
        return self.close_code

    async def aclose(self) -> None:
        """Disconnect if the application still runs; safe to call more than once."""
        # asgiref starts the application lazily (``_future``) since 3.8, eagerly before.
        future = vars(self).get("future", getattr(self, "_future", None))
        if future is None or future.done():
            return
        if self._ready is not None and not self._ready.is_set():
            # Never connected: the application waits at the gate; just end it.
            future.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await future
            return
        await self.disconnect()

    async def __aenter__(self) -> BearerCommunicator:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()


async def _identify(token: str, kind: str) -> Any:
    """The identity the backends give ``token``, so a ticket carries its id and expiry."""
    from channels_bearer.middleware import authenticate_credential
    from channels_bearer.sources import Credential

    return await authenticate_credential(Credential("header", token), {"type": "websocket"})


# -- assertions ------------------------------------------------------------------


@dataclass(frozen=True)
class Refusal:
    """How a refusal with one RFC 6750 ``error`` looks on the wire."""

    status: int
    close_code: int
    #: The ``WWW-Authenticate`` value of a denial response, ``None`` for none.
    challenge: str | None


#: ``error`` → expected refusal. ``None`` is "no token presented" (to a
#: consumer with ``bearer_required``), refused with a bare challenge.
REFUSALS: dict[str | None, Refusal] = {
    "invalid_request": Refusal(400, 4400, 'Bearer error="invalid_request"'),
    "invalid_token": Refusal(401, 4401, 'Bearer error="invalid_token"'),
    "insufficient_scope": Refusal(403, 4403, 'Bearer error="insufficient_scope"'),
    "temporarily_unavailable": Refusal(503, 1011, None),
    None: Refusal(401, 4401, "Bearer"),
}
_REASONS: dict[str | None, str | None] = {None: "token_required"}


def assert_refused(
    communicator_or_result: BearerCommunicator | WebsocketCommunicator | tuple[bool, Any],
    error: str | None = "invalid_token",
    *,
    code: int | None = None,
) -> None:
    """Assert that a handshake was refused with RFC 6750 ``error``.

    Give it the result of ``connect()`` or, better, the communicator, after
    ``connect()``:

    * a close before accept (Channels' communicator, daphne): the close code
      is ``REFUSALS[error].close_code`` (4400 ``invalid_request``, 4401
      ``invalid_token``, 4403 ``insufficient_scope``) and, with a
      ``BearerCommunicator``, the close reason is ``error``;
    * a denial response (``http_response=True``, like uvicorn): the HTTP
      status (400/401/403) and the ``WWW-Authenticate: Bearer error="..."``
      challenge;
    * ``REFUSAL = "close"``: the handshake is accepted and then closed: call
      ``await communicator.receive_close()`` first.

    ``error=None``: refused because no token was presented (bare
    ``WWW-Authenticate: Bearer`` challenge, close code 4401). ``code`` pins
    another close code: a token of an inactive or deleted user is
    ``invalid_token`` with 4403 ("do not retry").

    With a ``BearerCommunicator`` it also asserts that the token appears in
    no close reason, header or body of the refusal.
    """
    if error not in REFUSALS:
        raise ValueError(f"Unknown error {error!r}; use one of {', '.join(map(repr, REFUSALS))}.")
    expected = REFUSALS[error]
    want_code = expected.close_code if code is None else code
    label = error or "no token (token_required)"

    if isinstance(communicator_or_result, tuple):
        connected, value = communicator_or_result
        assert not connected, f"Expected a refusal ({label}), but the handshake was accepted with subprotocol {value!r}."
        if isinstance(value, int) and value < 1000:
            assert value == expected.status, f"Expected HTTP {expected.status} ({label}), got HTTP {value}."
        else:
            assert value == want_code, _code_message(label, want_code, value, error)
        return

    communicator = communicator_or_result
    if not isinstance(communicator, BearerCommunicator):
        raise TypeError(
            "assert_refused() takes a BearerCommunicator or the (connected, code) tuple of connect(); "
            "Channels' own communicator records nothing: pass what its connect() returned."
        )
    token = communicator._token
    if communicator.accepted is None:
        raise AssertionError("assert_refused(): await communicator.connect() first.")
    if communicator.denial is not None:
        denial = communicator.denial
        assert denial.status == expected.status, f"Expected HTTP {expected.status} ({label}), got HTTP {denial.status}."
        challenge = denial.header("www-authenticate")
        # insufficient_scope may name the required scopes after the error (RFC 6750 section 3).
        assert challenge == expected.challenge or (
            challenge is not None
            and expected.challenge is not None
            and challenge.startswith(expected.challenge + ", scope=")
        ), f"Expected WWW-Authenticate {expected.challenge!r}, got {challenge!r}."
        if token:
            wire = denial.body + b"".join(name + b":" + value for name, value in denial.headers)
            assert token.encode("utf-8") not in wire, "The token appears in the denial response."
        return
    if communicator.accepted and communicator.close_code is None:
        raise AssertionError(
            f"Expected a refusal ({label}), but the handshake was accepted (subprotocol "
            f"{communicator.subprotocol!r}). With REFUSAL = 'close' the refusal follows the accept: "
            "await communicator.receive_close() before assert_refused()."
        )
    assert communicator.close_code == want_code, _code_message(label, want_code, communicator.close_code, error)
    reason = communicator.close_reason or ""
    if token:
        assert token not in reason, "The token appears in the close reason."
    want_reason = _REASONS.get(error, error)
    assert reason in ("", want_reason), f"Expected close reason {want_reason!r}, got {reason!r}."


def _code_message(label: str, want: int, got: Any, error: str | None) -> str:
    message = f"Expected close code {want} ({label}), got {got!r}."
    if error == "invalid_token" and got == 4403 and want == 4401:
        message += " A token of an inactive or deleted user closes with 4403: pass code=4403."
    if got == 1011:
        message += (
            " 1011 is temporarily_unavailable: a backend failed (see the channels_bearer log)."
            " Under pytest-django, does the test have database access (django_db(transaction=True))?"
        )
    return message


# -- Django TestCase -------------------------------------------------------------


class BearerTestMixin:
    """For Django's ``TestCase`` / ``TransactionTestCase`` (async test methods)::

        class ChatTests(BearerTestMixin, TestCase):
            @classmethod
            def setUpTestData(cls):
                cls.alice = User.objects.create_user("alice")

            async def test_connects(self):
                async with self.bearer_communicator("/ws/chat/", user=self.alice) as communicator:
                    connected, subprotocol = await communicator.connect()
                    self.assertTrue(connected)

    The token is minted inside ``connect()``, in the test's transaction.
    ``async with`` disconnects the communicator before the test's event loop
    ends; without it, ``await communicator.disconnect()`` yourself.
    """

    def bearer_communicator(
        self,
        path: str,
        *,
        user: Any,
        via: str = "subprotocol",
        kind: str = "drf",
        application: Any = None,
        **kwargs: Any,
    ) -> BearerCommunicator:
        """A ``BearerCommunicator`` for ``user`` (default app: ``ASGI_APPLICATION``)."""
        return BearerCommunicator.for_user(
            application if application is not None else default_application(), path, user, via=via, kind=kind, **kwargs
        )

    def assert_refused(
        self,
        communicator_or_result: BearerCommunicator | tuple[bool, Any],
        error: str | None = "invalid_token",
        *,
        code: int | None = None,
    ) -> None:
        """``channels_bearer.testing.assert_refused`` as a method."""
        assert_refused(communicator_or_result, error, code=code)


def default_application() -> Any:
    """The project's ``ASGI_APPLICATION``."""
    from channels.routing import get_default_application

    return get_default_application()
