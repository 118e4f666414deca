"""A shared (Redis) lookup cache is reached through one client per process (issue 15).

Django's ``caches[alias]`` is per async context: reached from the middleware,
every handshake would build its own ``RedisCache``, connection pool and TCP
connection. redis-server lists its clients (``CLIENT LIST``): the test
counts them around a burst of concurrent handshakes on a real daphne.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from websockets.asyncio.client import connect

from tests.support.servers import Server, manage, start_server

pytestmark = pytest.mark.redis


@pytest.fixture(scope="module")
def cached_daphne(server_env_base: dict[str, str], redis_url: str, server_logs: Path) -> Iterator[tuple[Server, dict[str, str]]]:
    env = {**server_env_base, "REDIS_URL": redis_url}
    # The demo's "default" cache is Redis when REDIS_URL is set.
    server = start_server("daphne", env, server_logs, settings={"CACHE": "default", "CACHE_TTL": 300})
    yield server, env
    server.stop()


def clients(url: str) -> int:
    with redis.Redis.from_url(url) as client:
        return len(client.client_list()) - 1  # not this one


async def whoami(server: Server, token: str) -> str:
    async with connect(server.ws("/ws/whoami/"), subprotocols=["access_token", token], origin=server.origin) as ws:  # type: ignore[list-item]
        return str(json.loads(await asyncio.wait_for(ws.recv(), 10))["user"])


def test_a_shared_cache_is_one_client_per_process(cached_daphne: tuple[Server, dict[str, str]], redis_url: str) -> None:
    server, env = cached_daphne
    tokens = {f"rc-{n}": manage(env, "bearer_token", f"rc-{n}", "--create").stdout.strip() for n in range(5)}

    async def burst() -> list[str]:
        return list(await asyncio.gather(*(whoami(server, token) for token in tokens.values() for _ in range(10))))

    # Warm: the process has made every client it keeps.
    assert sorted(asyncio.run(burst())) == sorted(name for name in tokens for _ in range(10))
    before = clients(redis_url)
    for _ in range(3):
        asyncio.run(burst())
    grown = clients(redis_url) - before
    assert grown <= 2, f"{grown} new Redis clients after 150 handshakes"
