"""Issue 4 with real parts: two daphne processes on channels-redis and the
Redis cache of a redis-server this session starts, as in production.

Revocations are made by a third process (``manage.py shell``), as an admin
action or a script would.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import websockets
from websockets.asyncio.client import connect

from tests.support.handshake import close_code, open_whoami
from tests.support.servers import Server, manage, shell, start_server

pytestmark = pytest.mark.redis


@pytest.fixture(scope="module")
def redis_env(server_env_base: dict[str, str], redis_url: str) -> dict[str, str]:
    return {**server_env_base, "REDIS_URL": redis_url}


@pytest.fixture(scope="module")
def two_daphnes(redis_env: dict[str, str], server_logs: Path) -> Iterator[tuple[Server, Server]]:
    first = start_server("daphne", redis_env, server_logs, settings={"REFRESH": True})
    second = start_server("daphne", redis_env, server_logs, settings={"REFRESH": True})
    yield first, second
    first.stop()
    second.stop()



def make_token(env: dict[str, str], username: str, kind: str = "drf") -> str:
    return manage(env, "bearer_token", username, "--create", "--kind", kind).stdout.strip()


def short_jwts(env: dict[str, str], username: str, *lifetimes: int) -> list[str]:
    """SimpleJWT access tokens with at least the given lifetimes, minted in one process start.

    Signed by the servers' own settings, so minted in a shell of theirs; ``exp``
    rounded up (tests.support.tokens.short_jwt says why).
    """
    return json.loads(
        shell(
            env,
            "import json, math, time; from django.contrib.auth.models import User;"
            "from rest_framework_simplejwt.tokens import AccessToken;"
            f"u = User.objects.get(username={username!r}); out = []\n"
            f"for s in {list(lifetimes)!r}:\n"
            "    t = AccessToken.for_user(u); t['exp'] = math.ceil(time.time() + s); out.append(str(t))\n"
            "print(json.dumps(out))",
        )
    )


def test_deleting_a_token_closes_its_sockets_on_both_processes(
    two_daphnes: tuple[Server, Server], redis_env: dict[str, str]
) -> None:
    first, second = two_daphnes
    token = make_token(redis_env, "redis-alice")
    other = make_token(redis_env, "redis-bob")

    async def scenario() -> tuple[list[int | None], bool]:
        sockets = [await open_whoami(first, token), await open_whoami(second, token)]
        bystander = await open_whoami(second, other)
        await asyncio.to_thread(
            shell, redis_env, f"from rest_framework.authtoken.models import Token; Token.objects.get(key={token!r}).delete()"
        )
        codes = [await close_code(ws) for ws in sockets]
        await bystander.send("still there?")
        alive = await asyncio.wait_for(bystander.recv(), 5) == "still there?"
        await bystander.close()
        return codes, alive

    codes, bystander_alive = asyncio.run(scenario())
    assert codes == [4403, 4403]
    assert bystander_alive
    for server in two_daphnes:
        assert token not in server.log()


def test_deactivating_a_user_closes_every_socket_whatever_token_opened_it(
    two_daphnes: tuple[Server, Server], redis_env: dict[str, str]
) -> None:
    first, second = two_daphnes
    drf = make_token(redis_env, "redis-carol")
    jwt = make_token(redis_env, "redis-carol", kind="jwt")

    async def scenario() -> list[int | None]:
        sockets = [await open_whoami(first, drf), await open_whoami(second, jwt), await open_whoami(first, jwt)]
        await asyncio.to_thread(
            shell,
            redis_env,
            "from django.contrib.auth.models import User; u = User.objects.get(username='redis-carol');"
            "u.is_active = False; u.save()",
        )
        return [await close_code(ws) for ws in sockets]

    assert asyncio.run(scenario()) == [4403, 4403, 4403]


def test_expiry_closes_4401_unless_refreshed(two_daphnes: tuple[Server, Server], redis_env: dict[str, str]) -> None:
    first, second = two_daphnes
    make_token(redis_env, "redis-dave")
    # Four seconds: the shell's exit, two handshakes and a refresh come first.
    expiring, refreshed, fresh = short_jwts(redis_env, "redis-dave", 4, 4, 60)

    async def scenario() -> tuple[int | None, dict[str, Any], str]:
        lapsed = await open_whoami(first, expiring)
        kept = await open_whoami(second, refreshed)
        await kept.send(json.dumps({"type": "bearer.refresh", "token": fresh}))
        answer = json.loads(await asyncio.wait_for(kept.recv(), 5))
        code = await close_code(lapsed, timeout=10)
        await kept.send("alive after the first token's expiry")
        echo = await asyncio.wait_for(kept.recv(), 5)
        await kept.close()
        return code, answer, echo

    code, answer, echo = asyncio.run(scenario())
    assert code == 4401
    assert answer["type"] == "bearer.refreshed" and answer["expires_at"]
    assert echo == "alive after the first token's expiry"


def test_a_ticket_raced_on_two_processes_opens_exactly_one_socket(
    two_daphnes: tuple[Server, Server], redis_env: dict[str, str]
) -> None:
    first, second = two_daphnes
    token = make_token(redis_env, "redis-erin")

    async def attempt(server: Server, ticket: str) -> bool:
        try:
            ws = await connect(server.ws(f"/ws/whoami/?ticket={ticket}"), origin=server.origin, open_timeout=10)
        except websockets.InvalidStatus as refused:
            assert refused.response.status_code == 403
            return False
        frame = json.loads(await asyncio.wait_for(ws.recv(), 5))
        assert frame["user"] == "redis-erin" and frame["source"] == "ticket" and frame["query_string"] == ""
        await ws.close()
        return True

    async def race() -> list[bool]:
        import urllib.request

        results: list[bool] = []
        for _ in range(5):
            request = urllib.request.Request(
                first.http("/api/ws-ticket/"), method="POST", headers={"Authorization": f"Token {token}"}
            )
            body = await asyncio.to_thread(lambda: urllib.request.urlopen(request, timeout=10).read())
            ticket = json.loads(body)["ticket"]
            outcomes = await asyncio.gather(*(attempt(server, ticket) for server in (first, second, first, second)))
            results.append(sum(outcomes) == 1)
        return results

    assert asyncio.run(race()) == [True] * 5


def test_revocation_fans_out_to_many_sockets_of_one_user(
    two_daphnes: tuple[Server, Server], redis_env: dict[str, str]
) -> None:
    first, second = two_daphnes
    token = make_token(redis_env, "redis-frank")

    async def scenario() -> list[int | None]:
        sockets = await asyncio.gather(*(open_whoami(s, token) for s in (first, second) * 25))
        await asyncio.to_thread(
            shell,
            redis_env,
            "from channels_bearer.revoke import disconnect_user; from django.contrib.auth.models import User;"
            "disconnect_user(User.objects.get(username='redis-frank'))",
        )
        return list(await asyncio.gather(*(close_code(ws) for ws in sockets)))

    assert asyncio.run(scenario()) == [4403] * 50
