"""Origin checks under real daphne and uvicorn, with a client that sends no ``Origin``.

The ``websockets`` client sends no ``Origin`` at all unless told to, as
scripts, mobile apps and other servers do; the demo's stack uses
``channels_bearer.security.AllowedHostsOriginValidator``.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.handshake import MARKER, Accounts, LogWatch, connect_outcome, make_accounts
from tests.support.servers import Server

pytestmark = pytest.mark.server


@pytest.fixture(scope="module")
def accounts(make_user: Any, server_env_base: dict[str, str]) -> Accounts:
    return make_accounts(make_user, server_env_base, "origin")


@pytest.mark.parametrize("via", ["subprotocol", "header"])
async def test_a_script_without_origin_connects_with_its_token(via: str, server: Server, accounts: Accounts) -> None:
    log = LogWatch(server)
    if via == "subprotocol":
        outcome = await connect_outcome(server, subprotocols=[MARKER, accounts.drf], send_origin=False, echo="hi")
    else:
        headers = [("Authorization", f"Bearer {accounts.jwt}")]
        outcome = await connect_outcome(server, headers=headers, send_origin=False, echo="hi")
    assert outcome.opened, outcome
    assert outcome.frame["user"] == accounts.username
    await log.assert_clean(accounts.drf, accounts.jwt)


async def test_no_origin_and_no_token_is_refused_and_logged(server: Server) -> None:
    log = LogWatch(server)
    outcome = await connect_outcome(server, send_origin=False)
    assert outcome.status == 403, outcome
    text = await log.assert_clean()
    assert "WebSocket handshake refused for /ws/whoami/: no Origin header and no bearer credential" in text


async def test_a_foreign_origin_is_refused_and_logged(server: Server, accounts: Accounts) -> None:
    log = LogWatch(server)
    outcome = await connect_outcome(server, subprotocols=[MARKER, accounts.drf], origin="https://evil.example")
    assert outcome.status == 403, outcome
    text = await log.assert_clean(accounts.drf)
    assert "WebSocket handshake refused for /ws/whoami/: Origin 'https://evil.example' is not allowed" in text
