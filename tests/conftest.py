from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.servers import (  # noqa: F401  (require_program: imported from here by test modules)
    SERVER_KINDS,
    RedisProcess,
    Server,
    manage,
    require_program,
    server_env,
    start_server,
)

@pytest.fixture(scope="session")
def server_env_base(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A migrated SQLite file shared by every server process of the session."""
    db_path = tmp_path_factory.mktemp("serverdb") / "db.sqlite3"
    env = server_env(db_path)
    manage(env, "migrate", "--no-input", "-v", "0")
    return env


@pytest.fixture(scope="session")
def server_logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("serverlogs")


@pytest.fixture(scope="session")
def running_servers(server_env_base: dict[str, str], server_logs: Path) -> Iterator[dict[str, Server]]:
    servers = {kind: start_server(kind, server_env_base, server_logs) for kind in SERVER_KINDS}
    yield servers
    for server in servers.values():
        server.stop()


@pytest.fixture(params=SERVER_KINDS)
def server(request: pytest.FixtureRequest, running_servers: dict[str, Server]) -> Server:
    """Each test using it runs once against daphne and once against uvicorn."""
    found = running_servers[request.param]
    assert found.alive(), f"{found.kind} died:\n{found.log()}"
    return found


@pytest.fixture(scope="session")
def make_user(server_env_base: dict[str, str]):  # type: ignore[no-untyped-def]
    """Create a user in the servers' database; return a token of the given kind."""

    def make(username: str, kind: str = "drf") -> str:
        return manage(server_env_base, "bearer_token", username, "--create", "--kind", kind).stdout.strip()

    return make


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real redis-server of the test session's own, on a free loopback port."""
    redis = RedisProcess(tmp_path_factory.mktemp("redis"))
    redis.start()
    yield redis.url
    redis.stop()
