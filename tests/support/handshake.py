"""Helpers for the tests that talk to real daphne and uvicorn processes.

* ``raw_handshake``: a WebSocket upgrade written byte for byte on a plain
  socket, for what a well-behaved client library refuses to send (``/`` in a
  subprotocol, two ``Sec-WebSocket-Protocol`` lines, 20 KiB headers...). Every
  wait is bounded: uvicorn never answers some of these.
* ``connect_outcome``: the same through the ``websockets`` client.
* ``open_whoami``: an authenticated socket for the tests that then revoke,
  cap or close it.
* ``expected_refusal``: the documented status of a refused handshake per server.
* ``LogWatch``: the part of a server log written during one test, read after a
  sentinel request so that nothing is still in flight, and checked for token
  text and tracebacks.
* JWT builders signed with the servers' own SECRET_KEY (expired, alg none...).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.typing import Origin, Subprotocol

from tests.support.encoding import b64url
from tests.support.servers import Server, manage

MARKER = "access_token"
# Every wait on a socket is bounded by this: a hang is an outcome, not a stuck suite.
WAIT = 5.0


# ---------------------------------------------------------------- outcomes


@dataclass
class Outcome:
    """What a client saw: an open socket and its first frame, an HTTP refusal, or nothing."""

    #: HTTP status of the handshake answer; ``None`` when there was none in time.
    status: int | None
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    subprotocol: str | None = None
    #: The first text frame after a 101 (the whoami report), decoded.
    frame: Any = None
    #: Close code / reason when the server closed after accept.
    close_code: int | None = None
    close_reason: str = ""
    #: True when the wait ran out with no answer at all.
    hung: bool = False
    #: True when the server dropped the connection without an HTTP answer.
    dropped: bool = False

    @property
    def opened(self) -> bool:
        return self.status == 101


async def connect_outcome(
    server: Server,
    path: str = "/ws/whoami/",
    *,
    subprotocols: list[str] | None = None,
    headers: list[tuple[str, str]] | None = None,
    origin: str | None = None,
    echo: str | None = None,
    send_origin: bool = True,
) -> Outcome:
    """Open ``path`` with the ``websockets`` client as a real client would.

    ``origin`` defaults to the server's own; ``send_origin=False`` sends no
    ``Origin`` header at all, as scripts, apps and other servers do. On success
    the first frame is read (and ``echo`` sent and checked to come back); a
    close after accept is reported with its code and reason.
    """
    try:
        async with asyncio.timeout(WAIT):
            async with connect(
                server.ws(path),
                subprotocols=[Subprotocol(entry) for entry in subprotocols] if subprotocols is not None else None,
                additional_headers=headers or [],
                origin=Origin(origin or server.origin) if send_origin else None,
                open_timeout=WAIT,
            ) as ws:
                outcome = Outcome(101, subprotocol=ws.subprotocol)
                try:
                    outcome.frame = json.loads(await ws.recv())
                    if echo is not None:
                        await ws.send(echo)
                        assert await ws.recv() == echo
                except ConnectionClosed as closed:
                    if closed.rcvd is not None:
                        outcome.close_code = closed.rcvd.code
                        outcome.close_reason = closed.rcvd.reason
                return outcome
    except InvalidStatus as refused:
        response = refused.response
        return Outcome(
            response.status_code,
            headers={k.lower(): v for k, v in response.headers.raw_items()},
            body=bytes(response.body or b""),
        )
    except TimeoutError:
        return Outcome(None, hung=True)


async def open_whoami_with_frame(server: Server, token: str, **headers: str) -> tuple[Any, dict[str, Any]]:
    """An open ``/ws/whoami/`` socket authenticated by ``token`` (subprotocol), and its first frame.

    ``headers`` are sent as they are (``X-Forwarded-For`` for the limits'
    tests). Fails unless the server answered ``access_token`` and reported a user.
    """
    ws = await connect(
        server.ws("/ws/whoami/"),
        subprotocols=[Subprotocol(MARKER), Subprotocol(token)],
        origin=Origin(server.origin),
        additional_headers=headers or None,
    )
    assert ws.subprotocol == MARKER
    frame = json.loads(await asyncio.wait_for(ws.recv(), WAIT))
    assert "user" in frame, frame
    return ws, frame


async def open_whoami(server: Server, token: str, **headers: str) -> Any:
    """:func:`open_whoami_with_frame`, the socket only."""
    ws, _ = await open_whoami_with_frame(server, token, **headers)
    return ws


async def raw_handshake(
    server: Server,
    path: str = "/ws/whoami/",
    *,
    headers: Sequence[tuple[str, str | bytes]] | None = None,
    origin: str | None = None,
    read_frame: bool = True,
    wait: float = WAIT,
) -> Outcome:
    """Send a WebSocket upgrade request exactly as given; report the answer.

    ``headers`` are written in order, as they are (``str`` as latin-1), after
    the upgrade headers. On a 101 the first server frame is read when
    ``read_frame``; a close frame is reported as ``close_code``.
    """
    lines = [
        f"GET {path} HTTP/1.1".encode("latin-1"),
        f"Host: 127.0.0.1:{server.port}".encode("latin-1"),
        b"Upgrade: websocket",
        b"Connection: Upgrade",
        b"Sec-WebSocket-Key: " + base64.b64encode(os.urandom(16)),
        b"Sec-WebSocket-Version: 13",
        f"Origin: {origin or server.origin}".encode("latin-1"),
    ]
    for name, value in headers or []:
        raw = value if isinstance(value, bytes) else value.encode("latin-1")
        lines.append(name.encode("latin-1") + b": " + raw)
    request = b"\r\n".join(lines) + b"\r\n\r\n"

    reader, writer = await asyncio.open_connection("127.0.0.1", server.port, limit=1 << 20)
    try:
        writer.write(request)
        await writer.drain()
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), wait)
        except TimeoutError:
            return Outcome(None, hung=True)
        except (asyncio.IncompleteReadError, ConnectionError):
            return Outcome(None, dropped=True)
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        outcome = Outcome(int(status_line.split(" ")[1]))
        for line in header_lines:
            if ":" in line:
                name, _, value = line.partition(":")
                # Repeated names are joined as HTTP allows; tests read single ones.
                key = name.strip().lower()
                outcome.headers[key] = ", ".join(filter(None, [outcome.headers.get(key), value.strip()]))
        outcome.subprotocol = outcome.headers.get("sec-websocket-protocol")
        if outcome.status != 101:
            length = int(outcome.headers.get("content-length", "0") or 0)
            if length:
                try:
                    outcome.body = await asyncio.wait_for(reader.readexactly(length), wait)
                except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
                    pass
            return outcome
        if read_frame:
            try:
                opcode, payload = await asyncio.wait_for(read_server_frame(reader), wait)
            except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
                return outcome
            if opcode == 0x1:
                outcome.frame = json.loads(payload.decode("utf-8"))
            elif opcode == 0x8 and len(payload) >= 2:
                outcome.close_code = int.from_bytes(payload[:2], "big")
                outcome.close_reason = payload[2:].decode("utf-8", "replace")
        return outcome
    finally:
        writer.close()
        try:
            await asyncio.wait_for(writer.wait_closed(), 1)
        except (TimeoutError, ConnectionError):
            pass


async def read_server_frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """One unmasked, unfragmented server frame: ``(opcode, payload)``.

    Raw handshakes offer no extension, so frames are never compressed.
    """
    first, second = await reader.readexactly(2)
    length = second & 0x7F
    if length == 126:
        length = int.from_bytes(await reader.readexactly(2), "big")
    elif length == 127:
        length = int.from_bytes(await reader.readexactly(8), "big")
    return first & 0x0F, await reader.readexactly(length)


# ---------------------------------------------------------------- refusals

#: What each server answers for a refusal, by RFC 6750 error (None: no token).
#: uvicorn supports the ASGI denial-response extension; daphne turns the close
#: before accept into 403 whatever the reason.
STATUS = {
    "uvicorn": {"invalid_token": 401, "invalid_request": 400, None: 401},
    "daphne": {"invalid_token": 403, "invalid_request": 403, None: 403},
}


def assert_refused(server: Server, outcome: Outcome, error: str | None) -> None:
    """The handshake was refused as the contract says for ``error`` on this server."""
    assert not outcome.opened, f"{server.kind} opened a socket that must be refused: {outcome}"
    assert outcome.status == STATUS[server.kind][error], (server.kind, error, outcome)
    if server.kind == "uvicorn":
        challenge = "Bearer" if error is None else f'Bearer error="{error}"'
        assert outcome.headers.get("www-authenticate") == challenge, outcome.headers


# ---------------------------------------------------------------- logs

# Lines the *server* writes with raw request data, not channels-bearer:
# uvicorn's access line holds the query string (even at INFO), and the
# websockets library's wire trace (on because tests.support.servers runs uvicorn with
# --log-level debug) holds every request header and frame, and, for a request
# it refuses to parse ("! invalid handshake", "! header fields too large"), a
# traceback that can quote the offending header value.
# tests/integration/test_server_quirks.py pins all three; docs/servers.md tells deployers to
# keep them out of production logs.
UVICORN_RAW_PREFIXES = ("DEBUG:    < ", "DEBUG:    > ")
UVICORN_ACCESS_MARK = ' - "WebSocket /'
UVICORN_PARSE_FAILURE = "DEBUG:    ! "
LEVEL_PREFIXES = ("DEBUG:", "INFO:", "WARNING:", "ERROR:", "CRITICAL:")


def our_lines(server: Server, text: str) -> list[str]:
    """The log lines channels-bearer, Django and the app may have written.

    On daphne: every line. On uvicorn: all but the server-owned raw-data
    lines above (a traceback after "! <why>" runs to the next line that
    starts with a level).
    """
    if server.kind != "uvicorn":
        return text.splitlines()
    kept: list[str] = []
    in_server_traceback = False
    for line in text.splitlines():
        if in_server_traceback and not line.startswith(LEVEL_PREFIXES):
            continue
        in_server_traceback = line.startswith(UVICORN_PARSE_FAILURE)
        if in_server_traceback or line.startswith(UVICORN_RAW_PREFIXES):
            continue
        if line.startswith("INFO:") and UVICORN_ACCESS_MARK in line:
            continue
        kept.append(line)
    return kept


def secret_pieces(secret: str) -> set[str]:
    """The secret, and pieces of it: a truncated token in a log line is a leak too.

    Not its start: every JWT starts with the same encoded header.
    """
    if len(secret) < 32:
        return {secret}
    middle = len(secret) // 2
    return {secret, secret[middle - 8 : middle + 8], secret[-16:]}


class LogWatch:
    """The log a server wrote from now on."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.start = len(server.log_path.read_bytes())

    async def settle(self) -> str:
        """Wait until the server has logged a request sent now; return the new text.

        Requests are logged in order on one event loop, so once a sentinel
        request made now shows up, every earlier handshake's lines are in.
        """
        mark = f"logsync-{uuid.uuid4().hex}"
        await asyncio.to_thread(http_get, self.server, f"/{mark}/")
        deadline = time.monotonic() + WAIT
        while True:
            text = self.server.log_path.read_bytes()[self.start :].decode("utf-8", "replace")
            if mark in text:
                return text
            assert time.monotonic() < deadline, f"{self.server.kind} never logged the request {mark}"
            await asyncio.sleep(0.05)

    async def assert_clean(self, *secrets: str) -> str:
        """No traceback, and no secret in any line channels-bearer, Django or the app wrote."""
        text = await self.settle()
        lines = our_lines(self.server, text)
        assert not any("Traceback" in line for line in lines), text
        for line in lines:
            for secret in secrets:
                for piece in secret_pieces(secret):
                    assert piece not in line, f"{self.server.kind} logged token text: {line!r}"
        return text


# ---------------------------------------------------------------- HTTP


@dataclass
class HttpAnswer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def http_request(
    server: Server,
    path: str,
    *,
    method: str = "GET",
    data: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
) -> HttpAnswer:
    body = json.dumps(data).encode() if data is not None else None
    request = urllib.request.Request(server.http(path), data=body, method=method, headers=dict(headers or {}))
    if body is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=WAIT) as response:
            return HttpAnswer(response.status, {k.lower(): v for k, v in response.headers.items()}, response.read())
    except urllib.error.HTTPError as error:
        return HttpAnswer(error.code, {k.lower(): v for k, v in error.headers.items()}, error.read())


def http_get(server: Server, path: str) -> HttpAnswer:
    return http_request(server, path)


# ---------------------------------------------------------------- accounts and JWTs


@dataclass
class Accounts:
    """Users in the servers' database, made through the demo's management command."""

    env: dict[str, str]
    username: str
    password: str
    drf: str
    jwt: str
    inactive_drf: str
    inactive_jwt: str
    deleted_drf: str
    deleted_jwt: str


def make_accounts(make_user: Any, env: dict[str, str], prefix: str) -> Accounts:
    """An active user with a password, an inactive one and a deleted one, with tokens.

    The active user's tokens come from the ``bearer_token`` command (``make_user``);
    the rest is one ``manage.py shell`` run, since each process start costs a
    second on a busy machine. ``prefix`` keeps test modules that share the
    session's database apart.
    """
    username, inactive, deleted = f"{prefix}-alice", f"{prefix}-ivan", f"{prefix}-dora"
    password = f"pw-{uuid.uuid4().hex}"
    drf, jwt = make_user(username, "drf"), make_user(username, "jwt")
    script = (
        "import json\n"
        "from django.contrib.auth import get_user_model\n"
        "from channels_bearer.tokens import make_token\n"
        "users = get_user_model()._default_manager\n"
        f"user = users.get(username={username!r}); user.set_password({password!r}); user.save()\n"
        "tokens = {}\n"
        f"for name in ({inactive!r}, {deleted!r}):\n"
        "    other = users.create_user(username=name)\n"
        "    tokens[name] = [make_token(other, 'drf'), make_token(other, 'jwt')]\n"
        f"users.filter(username={inactive!r}).update(is_active=False)\n"
        f"users.filter(username={deleted!r}).delete()\n"
        "print(json.dumps(tokens))\n"
    )
    tokens = json.loads(manage(env, "shell", "-c", script).stdout.strip().splitlines()[-1])
    return Accounts(
        env=env,
        username=username,
        password=password,
        drf=drf,
        jwt=jwt,
        inactive_drf=tokens[inactive][0],
        inactive_jwt=tokens[inactive][1],
        deleted_drf=tokens[deleted][0],
        deleted_jwt=tokens[deleted][1],
    )


def jwt_parts(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Header and claims of a JWT, unverified."""
    header, payload, _ = token.split(".")
    return (
        json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4))),
        json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))),
    )


def server_secret() -> str:
    """The SECRET_KEY the server processes sign their JWTs with (the demo's)."""
    from testproject import settings as demo_settings

    return str(demo_settings.SECRET_KEY)


def sign_jwt(claims: dict[str, Any], *, key: str | None = None, algorithm: str = "HS256") -> str:
    import jwt

    return jwt.encode(claims, key if key is not None else server_secret(), algorithm=algorithm)


def unsigned_jwt(claims: dict[str, Any]) -> str:
    """``alg: none``: a header, the claims and an empty signature."""
    return f"{b64url(json.dumps({'alg': 'none', 'typ': 'JWT'}))}.{b64url(json.dumps(claims))}."


def fresh_claims(real_jwt: str, **changes: Any) -> dict[str, Any]:
    """A real access token's claims with a new ``jti`` and ``changes`` applied."""
    _, claims = jwt_parts(real_jwt)
    claims.update(jti=uuid.uuid4().hex, **changes)
    return claims


async def close_code(ws: Any, timeout: float = 5) -> int | None:
    """The code the server closed ``ws`` with, or ``None`` if it is still open after ``timeout`` (then closed)."""
    import websockets

    try:
        async with asyncio.timeout(timeout):
            while True:
                await ws.recv()
    except websockets.ConnectionClosed:
        code: int | None = ws.close_code
        return code
    except TimeoutError:
        await ws.close()
        return None


async def still_open(ws: Any) -> bool:
    """Whether ``ws`` still echoes (the demo's whoami consumer echoes every text frame)."""
    import websockets

    try:
        await ws.send("still there?")
        return bool(await asyncio.wait_for(ws.recv(), 5) == "still there?")
    except websockets.ConnectionClosed:
        return False
