"""Redis down and back (issue 7, faults): sockets and handshakes survive the
outage, revocation logs an error meanwhile, and works again once Redis returns.

A redis-server of this module's own, stopped and restarted on the same port.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from websockets.asyncio.client import ClientConnection, connect


from tests.support.servers import RedisProcess, Server, manage, start_server

pytestmark = pytest.mark.redis


@pytest.fixture
def daphne_on_redis(
    redis_process: RedisProcess, server_env_base: dict[str, str], server_logs: Path
) -> Iterator[tuple[Server, dict[str, str]]]:
    env = {**server_env_base, "REDIS_URL": redis_process.url}
    server = start_server("daphne", env, server_logs)
    yield server, env
    server.stop()


async def whoami(server: Server, token: str) -> tuple[ClientConnection, dict[str, object]]:
    ws = await connect(server.ws("/ws/whoami/"), subprotocols=["access_token", token], origin=server.origin)
    return ws, json.loads(await asyncio.wait_for(ws.recv(), 5))


async def echo(ws: ClientConnection, text: str) -> str:
    await ws.send(text)
    return str(await asyncio.wait_for(ws.recv(), 5))


async def close_within(ws: ClientConnection, seconds: float) -> int | None:
    """The close code if the server closes ``ws`` within ``seconds``; else ``None``, ``ws`` left open."""
    try:
        await asyncio.wait_for(ws.wait_closed(), seconds)
    except TimeoutError:
        return None
    return ws.close_code


def revoke_user(env: dict[str, str], username: str) -> subprocess.CompletedProcess[str]:
    return manage(
        env,
        "shell",
        "-c",
        "from django.contrib.auth.models import User; from channels_bearer.revoke import disconnect_user;"
        f"disconnect_user(User.objects.get(username={username!r}))",
    )


def test_redis_down_then_back(daphne_on_redis: tuple[Server, dict[str, str]], redis_process: RedisProcess) -> None:
    server, env = daphne_on_redis
    token = manage(env, "bearer_token", "outage", "--create").stdout.strip()

    async def scenario() -> None:
        before, frame = await whoami(server, token)
        assert frame["user"] == "outage"

        redis_process.stop()
        await asyncio.sleep(0.5)
        # The open socket lives on, and a new handshake still authenticates.
        assert await echo(before, "during the outage") == "during the outage"
        during, frame = await whoami(server, token)
        assert frame["user"] == "outage"
        assert await echo(during, "hello") == "hello"
        # Revocation from another process cannot reach Redis: it logs and does not raise.
        result = await asyncio.to_thread(revoke_user, env, "outage")
        assert result.returncode == 0
        assert "Could not send bearer.revoke" in result.stderr
        assert token not in result.stderr

        redis_process.start()
        # Recovery: the listener re-joins its group within its backoff (<= 5 s), on
        # a machine that may be slow: revoke again until both sockets have heard it.
        codes: list[int | None] = [None, None]
        deadline = time.monotonic() + 30
        while None in codes and time.monotonic() < deadline:
            await asyncio.to_thread(revoke_user, env, "outage")
            codes = [await close_within(ws, 2) for ws in (before, during)]
        assert codes == [4403, 4403]

    asyncio.run(scenario())
    log = server.log()
    assert "Channel layer unavailable" in log
    assert "Channel layer available again" in log
    assert token not in log
