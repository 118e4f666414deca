"""Faults: a real part of the system breaks under a running server.

The database goes away under a running daphne and a running uvicorn (its file
overwritten in place, under the connection the lookups keep open, by one that
is not a database, then by an empty database with no tables). Handshakes must then be refused at once as a server error, not
hang and not pass: ``BackendUnavailable`` answers 503 where the server can
send an HTTP response (uvicorn) and a close before accept elsewhere (daphne's
403). The server log must hold an error that names the failing backend and
holds no token. When the file comes back, the same tokens work again.

The cached token lookups (``CHANNELS_BEARER["CACHE"]``) on a real Redis that
is stopped under a running daphne fall back to the database, with a warning
and no token in the log. Redis down for the channel layer is
test_faults_redis.py; a stalled JWKS server is test_jwks.py; PostgreSQL stopped and restarted is
test_postgres.py.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus
from websockets.typing import Origin


from tests.support.servers import SERVER_KINDS, RedisProcess, Server, server_env, start_server

pytestmark = pytest.mark.server

#: No handshake may take longer; daphne itself drops an unanswered handshake
#: after ~5 s *without* an HTTP answer, so a 403 proves it was answered.
OPEN_TIMEOUT = 15


@pytest.fixture(scope="module")
def tokens(make_user: Any) -> dict[str, str]:
    return {"drf": make_user("faulty", "drf"), "jwt": make_user("faulty", "jwt")}


@pytest.fixture
def own_database(server_env_base: dict[str, str], tokens: dict[str, str], tmp_path: Path) -> Path:
    """A consistent copy of the servers' database, ours to break."""
    copy = tmp_path / "db.sqlite3"
    source = sqlite3.connect(server_env_base["DJANGO_DB_PATH"])
    target = sqlite3.connect(copy)
    with target:
        source.backup(target)
    source.close()
    target.close()
    return copy


@pytest.fixture(params=SERVER_KINDS)
def fragile_server(request: pytest.FixtureRequest, own_database: Path, server_logs: Path) -> Iterator[Server]:
    server = start_server(request.param, server_env(own_database), server_logs)
    yield server
    server.stop()


def whoami_socket(server: Server, token: str) -> Any:
    return connect(
        server.ws("/ws/whoami/"),
        subprotocols=["access_token", token],  # type: ignore[list-item]
        origin=Origin(server.origin),
        open_timeout=OPEN_TIMEOUT,
        close_timeout=5,
    )


async def whoami(server: Server, token: str) -> str:
    """Open a socket with the token; return the user its first frame names."""
    async with whoami_socket(server, token) as socket:
        return str(json.loads(await socket.recv(decode=True))["user"])


async def refusal_status(server: Server, token: str) -> tuple[int, dict[str, str], bytes]:
    with pytest.raises(InvalidStatus) as refused:
        async with whoami_socket(server, token):
            pass
    response = refused.value.response
    return response.status_code, dict(response.headers), response.body or b""


def break_database(path: Path, how: str) -> bytes:
    """Overwrite the database file in place (so connections already open see it too); its old bytes."""
    saved = path.read_bytes()
    if how == "not-a-database":
        broken = b"this is not an SQLite database\n" * 512
    else:  # an empty database: every table is gone
        empty = path.with_name(path.name + ".empty")
        sqlite3.connect(empty).close()
        broken = empty.read_bytes()
        empty.unlink()
    overwrite(path, broken)
    return saved


def overwrite(path: Path, content: bytes) -> None:
    with path.open("r+b") as file:
        file.truncate(0)
        file.write(content)


def server_log_lines(server: Server) -> list[str]:
    """The log lines that our code or the server's own logic wrote.

    Left out: uvicorn's wire dump at ``--log-level debug`` (lines ``DEBUG:    < ...``),
    where the websockets library prints every request header, the offered
    subprotocols included. That is the server's debug mode, not a log a
    deployment keeps; SECURITY.md says not to run uvicorn at debug level.
    """
    lines = server.log().splitlines()
    if server.kind == "uvicorn":
        lines = [line for line in lines if not line.startswith(("DEBUG:    < ", "DEBUG:    > "))]
    return lines


def secret_parts(tokens: dict[str, str]) -> list[str]:
    return [tokens["drf"], tokens["jwt"].rsplit(".", 1)[1]]


@pytest.mark.parametrize("how", ["not-a-database", "no-tables"])
async def test_database_unavailable_refuses_quickly_and_recovers(
    fragile_server: Server, own_database: Path, tokens: dict[str, str], how: str
) -> None:
    server = fragile_server
    assert await whoami(server, tokens["drf"]) == "faulty"
    log_before = len(server.log())

    saved = break_database(own_database, how)
    try:
        for kind in ("drf", "jwt"):
            status, headers, body = await refusal_status(server, tokens[kind])
            if server.kind == "uvicorn":
                # A server error, not a bad token: the client should retry later
                # with the same token, so no WWW-Authenticate challenge either.
                assert status == 503, (kind, status, body)
                assert b"temporarily_unavailable" in body
                assert "www-authenticate" not in {name.lower() for name in headers}
            else:
                assert status == 403, (kind, status)
    finally:
        overwrite(own_database, saved)

    assert server.alive(), server.log()[-3000:]
    log = server.log()[log_before:]
    assert "failed while authenticating a WebSocket handshake" in log, log[-3000:]
    assert "DRFTokenBackend" in log and "SimpleJWTBackend" in log, log[-3000:]
    for line in server_log_lines(server):
        for secret in secret_parts(tokens):
            assert secret not in line, f"a token reached the {server.kind} log: {line[:80]}"

    # The database is back: the same tokens work again, nothing was cached as bad.
    assert await whoami(server, tokens["drf"]) == "faulty"
    assert await whoami(server, tokens["jwt"]) == "faulty"


# ---------------------------------------------------------------- cache down


@pytest.mark.redis
async def test_lookup_cache_down_falls_back_to_the_database(
    redis_process: RedisProcess, own_database: Path, tokens: dict[str, str], server_logs: Path
) -> None:
    """daphne with the DRF lookups cached in Redis (``CACHE: "default"``); Redis stops."""
    env = server_env(own_database, REDIS_URL=redis_process.url)
    server = start_server("daphne", env, server_logs, settings={"CACHE": "default"})
    try:
        assert await whoami(server, tokens["drf"]) == "faulty"  # fills the cache
        redis_process.stop()
        # The cache is gone: the same token is looked up in the database.
        assert await whoami(server, tokens["drf"]) == "faulty"
        assert await whoami(server, tokens["drf"]) == "faulty"
        redis_process.start()
        assert await whoami(server, tokens["drf"]) == "faulty"
    finally:
        server.stop()
    log = server.log()
    assert "using the database instead" in log, log[-3000:]
    for line in server_log_lines(server):
        assert tokens["drf"] not in line, f"a token reached the daphne log: {line[:80]}"
