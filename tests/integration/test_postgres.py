"""On PostgreSQL with Django's defaults (``CONN_MAX_AGE = 0``): no connection per handshake (issue 15).

A real daphne on a throwaway PostgreSQL cluster. PostgreSQL counts the
sessions it accepts (``pg_stat_database.sessions``) and lists its backends
(``pg_stat_activity``): the tests read both, through a connection of their
own, around rounds of handshakes. Also, on daphne and uvicorn: a restart of the
database, a killed connection, and the database down, are survived.
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

from tests.support.handshake import LogWatch, connect_outcome
from tests.support.servers import PostgresProcess, Server, manage, start_server

pytestmark = pytest.mark.server

DATABASE = "handshakes"


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresProcess]:
    cluster = PostgresProcess()
    try:
        cluster.start()
        cluster.create_database(DATABASE)
        yield cluster
    finally:
        cluster.cleanup()


@pytest.fixture(scope="module")
def pg_env(postgres: PostgresProcess, server_env_base: dict[str, str]) -> dict[str, str]:
    env = {**server_env_base, **postgres.env(DATABASE)}
    manage(env, "migrate", "--no-input", "-v", "0")
    return env


@pytest.fixture(scope="module")
def tokens(pg_env: dict[str, str]) -> dict[str, str]:
    return {kind: manage(pg_env, "bearer_token", "pg-alice", "--create", "--kind", kind).stdout.strip() for kind in ("drf", "jwt")}


@pytest.fixture(scope="module")
def pg_daphne(pg_env: dict[str, str], server_logs: Path, tokens: dict[str, str]) -> Iterator[Server]:
    server = start_server("daphne", pg_env, server_logs)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def pg_uvicorn(pg_env: dict[str, str], server_logs: Path, tokens: dict[str, str]) -> Iterator[Server]:
    server = start_server("uvicorn", pg_env, server_logs)
    yield server
    server.stop()


@pytest.fixture(params=["daphne", "uvicorn"])
def pg_server(request: pytest.FixtureRequest) -> Server:
    """Each server in turn, for the fault tests."""
    server: Server = request.getfixturevalue(f"pg_{request.param}")
    return server


@pytest.fixture
def admin(postgres: PostgresProcess) -> Iterator[Any]:
    connection = postgres.admin(DATABASE)
    yield connection
    connection.close()


def sessions(admin: Any) -> int:
    """Sessions PostgreSQL has accepted on the database so far."""
    return int(admin.execute("SELECT sessions FROM pg_stat_database WHERE datname = %s", [DATABASE]).fetchone()[0])


#: The client connections open on the database now, the test's own left out.
CLIENT_BACKENDS = (
    "FROM pg_stat_activity WHERE datname = %s AND backend_type = 'client backend' AND pid <> pg_backend_pid()"
)


def backends(admin: Any, select: str = "count(*)") -> int:
    """``select`` over the client connections open now (by default, how many)."""
    return int(admin.execute(f"SELECT {select} {CLIENT_BACKENDS}", [DATABASE]).fetchone()[0])


async def handshake(server: Server, token: str) -> str:
    async with connect(server.ws("/ws/whoami/"), subprotocols=["access_token", token], origin=server.origin) as ws:  # type: ignore[list-item]
        return str(json.loads(await asyncio.wait_for(ws.recv(), 10))["user"])


async def rounds(server: Server, token: str, count: int, concurrency: int) -> list[str]:
    users: list[str] = []
    for start in range(0, count, concurrency):
        users += await asyncio.gather(*(handshake(server, token) for _ in range(min(concurrency, count - start))))
    return users


@pytest.mark.parametrize("kind", ["drf", "jwt"])
def test_handshakes_open_no_database_connection_each(kind: str, pg_daphne: Server, tokens: dict[str, str], admin: Any) -> None:
    asyncio.run(handshake(pg_daphne, tokens[kind]))  # the process' connection exists from now on
    before = sessions(admin)
    users = asyncio.run(rounds(pg_daphne, tokens[kind], 100, 10))
    opened = sessions(admin) - before
    assert users == ["pg-alice"] * 100
    # Channels' database_sync_to_async opened one per handshake (100 here);
    # the peer's best path about 0.21 per handshake.
    assert opened <= 2, f"{opened} new connections for 100 handshakes"


def test_connections_stay_bounded_under_load(pg_daphne: Server, tokens: dict[str, str], admin: Any) -> None:
    counts = []
    for _ in range(2):
        users = asyncio.run(rounds(pg_daphne, tokens["drf"], 200, 50))
        assert users == ["pg-alice"] * 200
        counts.append(backends(admin))
    # One for the lookups of the daphne process (and none leaked by a round).
    assert counts[0] <= 2 and counts[1] <= counts[0], counts


def test_a_database_restart_is_survived(pg_server: Server, tokens: dict[str, str], postgres: PostgresProcess) -> None:
    assert asyncio.run(handshake(pg_server, tokens["drf"])) == "pg-alice"
    postgres.restart()
    # The process' connection died with the server: the lookup that meets it
    # connects again, and the handshake succeeds.
    assert asyncio.run(handshake(pg_server, tokens["drf"])) == "pg-alice"
    assert asyncio.run(handshake(pg_server, tokens["jwt"])) == "pg-alice"


def test_a_killed_database_connection_is_replaced(pg_server: Server, tokens: dict[str, str], admin: Any) -> None:
    # The database stays up; only the server's connection dies (an idle
    # timeout, a failover, an operator's pg_terminate_backend).
    def kill_every_connection() -> int:
        return backends(admin, "count(pg_terminate_backend(pid))")

    # First every connection (the other server's too, which stays idle), then
    # one handshake here: what is open now is this server's.
    kill_every_connection()
    assert asyncio.run(handshake(pg_server, tokens["drf"])) == "pg-alice"
    assert kill_every_connection() >= 1, "the server kept no connection open to kill"
    for kind in ("drf", "jwt", "drf"):
        assert asyncio.run(handshake(pg_server, tokens[kind])) == "pg-alice"
    assert pg_server.alive()


def test_the_database_down_refuses_at_once_and_recovers(
    pg_server: Server, tokens: dict[str, str], postgres: PostgresProcess
) -> None:
    assert asyncio.run(handshake(pg_server, tokens["drf"])) == "pg-alice"
    watch = LogWatch(pg_server)
    postgres.stop()
    try:
        for kind in ("drf", "jwt"):
            outcome = asyncio.run(connect_outcome(pg_server, subprotocols=["access_token", tokens[kind]]))
            # temporarily_unavailable: 503 where the server sends HTTP refusals; daphne turns it into 403.
            assert outcome.status == (403 if pg_server.kind == "daphne" else 503) and not outcome.hung, outcome
    finally:
        postgres.start()
    text = asyncio.run(watch.assert_clean(*tokens.values()))
    assert "failed while authenticating a WebSocket handshake" in text
    for kind in ("drf", "jwt"):
        assert asyncio.run(handshake(pg_server, tokens[kind])) == "pg-alice"
    assert pg_server.alive()


def test_refusals_open_no_connection_each_either(pg_daphne: Server, admin: Any) -> None:
    asyncio.run(handshake_refused(pg_daphne))
    before = sessions(admin)
    for _ in range(20):
        asyncio.run(handshake_refused(pg_daphne))
    assert sessions(admin) - before <= 1


async def handshake_refused(server: Server) -> None:
    with pytest.raises(websockets.InvalidStatus):
        await handshake(server, "f" * 40)
