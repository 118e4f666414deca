"""First-message authentication on real daphne and uvicorn: the demo's ``/ws/whoami-message/``.

A graphql-ws-style client: a handshake with no token, then
``{"type": "bearer.authenticate", "token": ...}`` as its first frame. The
servers run with ``AUTH_TIMEOUT = 3`` so that the timeout case is quick (and a
frame sent at once arrives in time on a loaded machine).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import pytest
import websockets
from websockets.asyncio.client import connect

from tests.support.encoding import b64url
from tests.support.handshake import Accounts, LogWatch, make_accounts
from tests.support.servers import Server, each_server

message_servers, message_server = each_server("message_servers", "message_server", settings={"AUTH_TIMEOUT": 3})

PATH = "/ws/whoami-message/"
WAIT = 10


@pytest.fixture(scope="module")
def accounts(make_user: Any, server_env_base: dict[str, str]) -> Accounts:
    return make_accounts(make_user, server_env_base, "msg")


def authenticate(token: str) -> str:
    return json.dumps({"type": "bearer.authenticate", "token": token})


async def closed_with(ws: Any, server: Server) -> tuple[int | None, str | None]:
    """The close code and reason; daphne drops every close reason (test_server_quirks.py), so it reads None there."""
    with pytest.raises(websockets.ConnectionClosed):
        await asyncio.wait_for(ws.recv(), WAIT)
    assert ws.close_code is not None
    if server.kind == "daphne":
        assert ws.close_reason == ""
        return ws.close_code, None
    return ws.close_code, ws.close_reason


def reason(server: Server, text: str) -> str | None:
    return None if server.kind == "daphne" else text


@pytest.mark.parametrize("kind", ["drf", "jwt"])
async def test_the_first_frame_authenticates(message_server: Server, accounts: Accounts, kind: str) -> None:
    token = accounts.drf if kind == "drf" else accounts.jwt
    log = LogWatch(message_server)
    async with connect(message_server.ws(PATH), origin=message_server.origin) as ws:  # type: ignore[arg-type]
        assert ws.subprotocol is None
        await ws.send(authenticate(token))
        greeting = json.loads(await asyncio.wait_for(ws.recv(), WAIT))
        assert (greeting["user"], greeting["source"]) == (accounts.username, "message")
        assert greeting["backend"].endswith("DRFTokenBackend" if kind == "drf" else "SimpleJWTBackend")
        # The authenticate frame reached no application code: the next frame is the first echoed.
        echo = f"echo-{uuid.uuid4().hex}"
        await ws.send(echo)
        assert await asyncio.wait_for(ws.recv(), WAIT) == echo
    await log.assert_clean(token, b64url(token))


async def test_an_application_subprotocol_is_answered(message_server: Server, accounts: Accounts) -> None:
    async with connect(message_server.ws(PATH), origin=message_server.origin, subprotocols=["whoami.v1"]) as ws:  # type: ignore[arg-type, list-item]
        assert ws.subprotocol == "whoami.v1"
        await ws.send(authenticate(accounts.drf))
        assert json.loads(await asyncio.wait_for(ws.recv(), WAIT))["subprotocols"] == ["whoami.v1"]


async def test_no_frame_in_time_closes_4408(message_server: Server) -> None:
    async with connect(message_server.ws(PATH), origin=message_server.origin) as ws:  # type: ignore[arg-type]
        assert await closed_with(ws, message_server) == (4408, reason(message_server, "authentication_timeout"))


async def test_another_first_frame_closes_4408(message_server: Server, accounts: Accounts) -> None:
    async with connect(message_server.ws(PATH), origin=message_server.origin) as ws:  # type: ignore[arg-type]
        await ws.send(json.dumps({"type": "connection_init", "payload": {"token": accounts.drf}}))
        assert await closed_with(ws, message_server) == (4408, reason(message_server, "authentication_expected"))


async def test_an_invalid_token_closes_4401(message_server: Server) -> None:
    bad = "f" * 40
    log = LogWatch(message_server)
    async with connect(message_server.ws(PATH), origin=message_server.origin) as ws:  # type: ignore[arg-type]
        await ws.send(authenticate(bad))
        assert await closed_with(ws, message_server) == (4401, reason(message_server, "invalid_token"))
    await log.assert_clean(bad)


async def test_an_inactive_users_token_closes_4403(message_server: Server, accounts: Accounts) -> None:
    async with connect(message_server.ws(PATH), origin=message_server.origin) as ws:  # type: ignore[arg-type]
        await ws.send(authenticate(accounts.inactive_jwt))
        assert await closed_with(ws, message_server) == (4403, reason(message_server, "invalid_token"))


async def test_a_handshake_token_still_works_there(message_server: Server, accounts: Accounts) -> None:
    async with connect(
        message_server.ws(PATH), origin=message_server.origin, subprotocols=["access_token", accounts.drf]  # type: ignore[arg-type, list-item]
    ) as ws:
        assert ws.subprotocol == "access_token"
        assert json.loads(await asyncio.wait_for(ws.recv(), WAIT))["source"] == "subprotocol"


async def test_the_plain_route_still_refuses_a_tokenless_handshake(message_server: Server) -> None:
    with pytest.raises(websockets.InvalidStatus):
        async with connect(message_server.ws("/ws/whoami/"), origin=message_server.origin):  # type: ignore[arg-type]
            pass
