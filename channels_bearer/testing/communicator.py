"""``BearerCommunicator``: Channels' ``WebsocketCommunicator``, sending a token as a real client does."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from types import TracebackType
from typing import Any
from urllib.parse import quote

from channels.testing.websocket import WebsocketCommunicator

from channels_bearer.conf import conf
from channels_bearer.sources import subprotocol_entry
from channels_bearer.testing.tokens import amake_ticket, amake_token

__all__ = ["DEFAULT_ORIGIN", "VIAS", "BearerCommunicator", "DenialResponse"]

VIAS: tuple[str, ...] = ("subprotocol", "header", "query", "ticket", "message")

#: What the communicators send as ``Origin`` unless given headers of their own:
#: ``testserver`` is in Django's test ``ALLOWED_HOSTS``, so the handshake passes
#: ``AllowedHostsOriginValidator`` as a browser's would on the real site.
DEFAULT_ORIGIN = "http://testserver"


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

    ``token``: the token, or ``None`` for a handshake without credentials.
    ``via`` is where a client puts it: ``"subprotocol"``, ``"header"``,
    ``"query"``, ``"ticket"`` (the token, a DRF token or JWT, is exchanged for
    a one-time ticket through the configured backends, as a client would ask
    ``TicketView``, and the handshake carries the ticket) or ``"message"``
    (first-message authentication: ``connect()`` sends the authenticate frame
    right after the accept). ``ticket``: a ticket you already hold, sent
    as it is (instead of ``token``). ``headers``, ``subprotocols`` and
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
        token: str | None = None,
        via: str = "subprotocol",
        ticket: str | None = None,
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
        # Whether the application was started (asgiref starts it when its
        # ``future`` is first used): aclose() must not start one to end it.
        self._started = False
        self._inner_application = self.application
        self.application = self._start
        if via not in VIAS:
            # After super().__init__(): asgiref's __del__ needs what it sets.
            raise ValueError(f"via must be one of {', '.join(map(repr, VIAS))}, not {via!r}.")
        if http_response:
            self.scope["extensions"] = {"websocket.http.response": {}}
        if ticket is not None:
            if token is not None:
                raise ValueError("give token= (exchanged for a ticket with via='ticket') or ticket=, not both")
            self.via = "ticket"
            self._present(ticket)
        elif token is not None and via == "ticket":
            exchanged = token
            self._defer(lambda: _exchange_for_ticket(exchanged))
        elif token is not None:
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
            return token if via != "ticket" else await _exchange_for_ticket(token)

        communicator = cls(application, path, token=None, via=via, **kwargs)
        communicator._defer(mint)
        return communicator

    @property
    def presented_token(self) -> str | None:
        """The token (or ticket) this handshake presents, for assertions that it never comes back."""
        return self._token

    def __repr__(self) -> str:
        # Never the token: test reports print reprs.
        return f"<{type(self).__name__} path={self.scope.get('path')!r} via={self.via!r}>"

    # -- the handshake ----------------------------------------------------------

    def _present(self, token: str) -> None:
        """Put ``token`` into the scope where a client of kind ``via`` puts it."""
        self._token = token
        if self.via == "message":
            return  # sent in the first frame, after the accept
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
        inner = self._inner_application

        async def gated(scope: Any, receive: Any, send: Any) -> Any:
            await ready.wait()
            return await inner(scope, receive, send)

        self._inner_application = gated

    def _start(self, scope: Any, receive: Any, send: Any) -> Any:
        self._started = True
        return self._inner_application(scope, receive, send)

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
        if self.via == "message" and self._token is not None:
            from channels_bearer.first_message import AUTHENTICATE_MESSAGE_TYPE

            await self.send_json_to({"type": AUTHENTICATE_MESSAGE_TYPE, "token": self._token})
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
        if self.accepted is None:
            # Never connected: the application waits at the gate, or never
            # started (then it stays usable).
            if self._started:
                self.stop(exceptions=False)
                with contextlib.suppress(asyncio.CancelledError):
                    await self.future
            return
        await self.disconnect()

    async def __aenter__(self) -> BearerCommunicator:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()


async def _exchange_for_ticket(token: str) -> str:
    """A one-time ticket for ``token``, as ``TicketView`` issues one to the client that presents it.

    The token is judged by the configured backends (refused as a client's
    would be: ``BearerError``), and the ticket carries its user, id, expiry
    and scopes, so revoking the token voids the ticket.
    """
    from channels_bearer.authentication import authenticate_credential
    from channels_bearer.sources import Credential

    identity = await authenticate_credential(Credential("header", token), {"type": "websocket"})
    return await amake_ticket(identity.user, token_id=identity.token_id, expires_at=identity.expires_at, scopes=identity.scopes)


# -- assertions ------------------------------------------------------------------
