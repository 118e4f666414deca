"""django-rest-knox on two daphne processes and channels-redis: logout closes the sockets everywhere.

knox's logout deletes the token's row and logout-all every row of the user
(``tests/unit/test_knox.py`` goes through knox's views); here a third
process deletes the rows as those views do, and both servers close the
sockets opened with them, and only those.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import websockets
from websockets.asyncio.client import ClientConnection

from tests.support.handshake import close_code, open_whoami_with_frame, still_open
from tests.support.servers import Server, shell, start_server

pytestmark = pytest.mark.redis

KNOX = "channels_bearer.backends.KnoxTokenBackend"
BACKENDS = {"BACKENDS": ["channels_bearer.backends.DRFTokenBackend", KNOX]}


@pytest.fixture(scope="module")
def two_daphnes(server_env_base: dict[str, str], redis_url: str, server_logs: Path) -> Iterator[tuple[Server, Server]]:
    env = {**server_env_base, "REDIS_URL": redis_url}
    first = start_server("daphne", env, server_logs, settings=BACKENDS)
    second = start_server("daphne", env, server_logs, settings=BACKENDS)
    yield first, second
    first.stop()
    second.stop()



def knox_tokens(env: dict[str, str], username: str, count: int) -> list[str]:
    return json.loads(
        shell(
            env,
            "import json; from django.contrib.auth.models import User; from knox.models import AuthToken\n"
            f"user, _ = User.objects.get_or_create(username={username!r})\n"
            f"print(json.dumps([AuthToken.objects.create(user)[1] for _ in range({count})]))",
        )
    )


async def open_socket(server: Server, token: str) -> ClientConnection:
    ws, frame = await open_whoami_with_frame(server, token)
    assert frame["backend"] == KNOX
    return ws






async def test_logout_closes_that_tokens_sockets_on_both_processes(two_daphnes: tuple[Server, Server]) -> None:
    first, second = two_daphnes
    env = first.env
    logged_out, kept = knox_tokens(env, "knox-alice", 2)
    sockets = [await open_socket(server, logged_out) for server in (first, second)]
    others = [await open_socket(server, kept) for server in (first, second)]
    # What knox's LogoutView does: request._auth.delete().
    shell(
        env,
        "from knox.crypto import hash_token; from knox.models import AuthToken\n"
        f"AuthToken.objects.get(digest=hash_token({logged_out!r})).delete()",
    )
    assert await asyncio.gather(*(close_code(ws) for ws in sockets)) == [4403, 4403]
    assert all([await still_open(ws) for ws in others])
    for ws in others:
        await ws.close()
    with pytest.raises(websockets.InvalidStatus):
        await open_socket(second, logged_out)


async def test_logout_all_closes_every_knox_socket_of_the_user(two_daphnes: tuple[Server, Server]) -> None:
    first, second = two_daphnes
    tokens = knox_tokens(first.env, "knox-bob", 2)
    sockets = [await open_socket(server, token) for server in (first, second) for token in tokens]
    # What knox's LogoutAllView does.
    shell(first.env, "from django.contrib.auth.models import User\nUser.objects.get(username='knox-bob').auth_token_set.all().delete()")
    assert await asyncio.gather(*(close_code(ws) for ws in sockets)) == [4403] * 4
