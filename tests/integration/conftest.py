"""Integration tests: real daphne and uvicorn processes, redis-server, PostgreSQL, Chromium.

Servers run the demo project (``tests.server_settings``) on a SQLite file this
session migrates; per-server fixtures come from one factory,
``tests.support.servers.each_server``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.servers import RedisProcess, each_server, manage, server_env


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


#: The demo on daphne and uvicorn: ``server`` runs a test once against each.
running_servers, server = each_server("running_servers", "server", scope="session")
#: The same with REFUSAL = "close": refusals are accept, then close 4401/4403/4400.
close_mode_servers, close_mode_server = each_server(
    "close_mode_servers", "close_mode_server", scope="session", settings={"REFUSAL": "close"}
)


@pytest.fixture(scope="session")
def make_user(server_env_base: dict[str, str]) -> Callable[..., str]:
    """Create a user in the servers' database; return a token of the given kind."""

    def make(username: str, kind: str = "drf") -> str:
        return manage(server_env_base, "bearer_token", username, "--create", "--kind", kind).stdout.strip()

    return make


@pytest.fixture
def redis_process(tmp_path: Path) -> Iterator[RedisProcess]:
    """A redis-server of this test's own, to stop and start again."""
    process = RedisProcess(tmp_path)
    process.start()
    yield process
    process.stop()


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real redis-server of the test session's own, on a free loopback port."""
    redis = RedisProcess(tmp_path_factory.mktemp("redis"))
    redis.start()
    yield redis.url
    redis.stop()
