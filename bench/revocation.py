#!/usr/bin/env python3
"""How long a revocation takes to close every socket it should (issue 11).

    python3 dev.py bench            # runs this after bench/run.py
    .venv/bin/python bench/revocation.py [--quick] [--rounds N]

For each scenario of issue 11, with two real daphne processes on a real
redis-server (and PostgreSQL for the transaction), the time from the change
(the statement started in the revoking process, or its transaction began
to commit) until the last affected socket was closed with 4403 or the last
new handshake was refused, on both processes. Clocks: ``time.time()`` of one
machine. Prints a markdown table and writes it to ``bench/results/revocation.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import websockets  # noqa: E402
from websockets.asyncio.client import ClientConnection, connect  # noqa: E402

from tests.support.handshake import close_code  # noqa: E402
from tests.support.servers import (  # noqa: E402
    PostgresProcess,
    RedisProcess,
    Revoker,
    Server,
    manage,
    revoker,
    server_env,
    start_server,
)

RESULTS = ROOT / "bench" / "results"
SOCKETS_PER_PROCESS = 10
GROUP_EXPIRY = 2


@contextlib.contextmanager
def two_daphnes(env: dict[str, str], logs: Path, settings: dict[str, Any] | None = None) -> Iterator[list[Server]]:
    servers = [start_server("daphne", env, logs, settings=settings) for _ in range(2)]
    try:
        yield servers
    finally:
        for server in servers:
            server.stop()


def token_for(env: dict[str, str], username: str) -> str:
    return manage(env, "bearer_token", username, "--create").stdout.strip()


async def open_socket(server: Server, token: str) -> ClientConnection:
    ws = await connect(server.ws("/ws/whoami/"), subprotocols=["access_token", token], origin=server.origin)
    await asyncio.wait_for(ws.recv(), 5)
    return ws


async def closed_at(ws: ClientConnection, timeout: float = 10) -> float | None:
    """``time.time()`` when the server closed ``ws`` with 4403; ``None`` otherwise."""
    return time.time() if await close_code(ws, timeout) == 4403 else None


async def refused_at(server: Server, token: str, timeout: float = 10) -> float | None:
    """Retry a handshake until it is refused; ``time.time()`` of the first refusal."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            ws = await connect(server.ws("/ws/whoami/"), subprotocols=["access_token", token], origin=server.origin)
        except websockets.InvalidStatus:
            return time.time()
        await ws.close()
        await asyncio.sleep(0.01)
    return None


def latest(times: list[float | None], since: float) -> float | None:
    if not times or any(t is None for t in times):
        return None  # something was never closed or refused: a hole
    return max(t for t in times if t is not None) - since


# -- scenarios: each returns the latency of one round in seconds, None for a hole --------


async def old_sockets(servers: list[Server], env: dict[str, str], third: Revoker, n: int) -> float | None:
    token = token_for(env, f"bench-old-{n}")
    sockets = [await open_socket(s, token) for s in servers for _ in range(SOCKETS_PER_PROCESS)]
    await asyncio.sleep(GROUP_EXPIRY * 2.5)
    waits = [asyncio.create_task(closed_at(ws)) for ws in sockets]
    changed = await asyncio.to_thread(third.run, f"Token.objects.get(key={token!r}).delete()")
    return latest(list(await asyncio.gather(*waits)), changed)


async def racing_handshakes(servers: list[Server], env: dict[str, str], third: Revoker, n: int) -> float | None:
    token = token_for(env, f"bench-race-{n}")

    async def one(index: int) -> float | None | str:
        await asyncio.sleep((index // 20) * 0.05)
        server = servers[index % 2]
        try:
            ws = await connect(server.ws("/ws/whoami/"), subprotocols=["access_token", token], origin=server.origin, open_timeout=10)
        except websockets.InvalidStatus:
            return "refused"
        return await closed_at(ws)

    attempts = [asyncio.create_task(one(i)) for i in range(100)]
    await asyncio.sleep(0.08)
    changed = await asyncio.to_thread(third.run, f"Token.objects.filter(key={token!r}).delete()")
    # The sockets that opened (the refused ones were refused when their turn came).
    outcomes = await asyncio.gather(*attempts)
    return latest([o for o in outcomes if o != "refused"], changed)  # type: ignore[misc]


def cached(change: str) -> Callable[[list[Server], dict[str, str], Revoker, int], Awaitable[float | None]]:
    async def scenario(servers: list[Server], env: dict[str, str], third: Revoker, n: int) -> float | None:
        username = f"bench-cache-{change}-{n}"
        token = token_for(env, username)
        sockets = [await open_socket(s, token) for s in servers for _ in range(SOCKETS_PER_PROCESS)]
        waits = [asyncio.create_task(closed_at(ws)) for ws in sockets]
        statement = (
            f"Token.objects.get(key={token!r}).delete()"
            if change == "token"
            else f"u = User.objects.get(username={username!r}); u.is_active = False; u.save()"
        )
        changed = await asyncio.to_thread(third.run, statement)
        refusals = await asyncio.gather(*(refused_at(s, token) for s in servers))
        return latest([*await asyncio.gather(*waits), *refusals], changed)

    return scenario


async def in_transaction(servers: list[Server], env: dict[str, str], third: Revoker, n: int) -> float | None:
    token = token_for(env, f"bench-tx-{n}")
    third.send(
        "with transaction.atomic():\n"
        f"    Token.objects.get(key={token!r}).delete()\n"
        "    print('changed', flush=True)\n"
        "    sys.stdin.readline()\n"
        "    print('committing', time.time(), flush=True)\n"
    )
    await asyncio.to_thread(third.expect, "changed")
    # Opened after the delete, before the commit: the row is still visible.
    sockets = [await open_socket(s, token) for s in servers for _ in range(SOCKETS_PER_PROCESS)]
    waits = [asyncio.create_task(closed_at(ws)) for ws in sockets]
    third.send("commit")
    committing = float(await asyncio.to_thread(third.expect, "committing"))
    await asyncio.to_thread(third.done)
    return latest(list(await asyncio.gather(*waits)), committing)


# -- the run ---------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="one round per scenario")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--publish", action="store_true", help="also write bench/published/revocation.md, which the docs include")
    args = parser.parse_args(argv)
    rounds = args.rounds or (1 if args.quick else 5)

    RESULTS.mkdir(exist_ok=True)
    rows: list[str] = []
    with tempfile.TemporaryDirectory(prefix="bench-revocation-", dir=RESULTS) as workdir:
        work = Path(workdir)
        redis = RedisProcess(work)
        redis.start()
        cluster = PostgresProcess()
        try:
            sqlite_env = {**server_env(work / "db.sqlite3"), "REDIS_URL": redis.url}
            manage(sqlite_env, "migrate", "--no-input", "-v", "0")
            cluster.start()
            cluster.create_database("bench")
            pg_env = {**sqlite_env, **cluster.env("bench")}
            manage(pg_env, "migrate", "--no-input", "-v", "0")
            scenarios: list[tuple[str, dict[str, str], dict[str, Any] | None, Any]] = [
                (f"1. sockets older than group_expiry ({GROUP_EXPIRY} s), RedisChannelLayer: token deleted",
                 {**sqlite_env, "BEARER_TEST_GROUP_EXPIRY": str(GROUP_EXPIRY)}, None, old_sockets),
                ("1. the same on RedisPubSubChannelLayer", {**sqlite_env, "BEARER_TEST_LAYER": "pubsub"}, None, old_sockets),
                ("2. 100 handshakes racing a token delete: the last one that opened closed", sqlite_env, None, racing_handshakes),
                ("3. per-process (LocMem) cache: token deleted: sockets closed, new handshakes refused",
                 sqlite_env, {"CACHE": "bearer-local", "CACHE_TTL": 300}, cached("token")),
                ("3. per-process (LocMem) cache: user deactivated", sqlite_env,
                 {"CACHE": "bearer-local", "CACHE_TTL": 300}, cached("user")),
                ("4. token deleted in transaction.atomic (PostgreSQL): sockets opened before the commit",
                 pg_env, None, in_transaction),
            ]  # fmt: skip
            for name, env, settings, scenario in scenarios:
                with two_daphnes(env, work, settings) as servers, revoker(env) as third:
                    results = [asyncio.run(scenario(servers, env, third, n)) for n in range(rounds)]
                measured = [r for r in results if r is not None]
                holes = len(results) - len(measured)
                if measured:
                    cell = f"{statistics.median(measured) * 1000:.0f} ms | {max(measured) * 1000:.0f} ms"
                else:
                    cell = "— | —"
                rows.append(f"| {name} | {cell} | {holes} |")
                print(rows[-1], flush=True)
        finally:
            cluster.cleanup()
            redis.stop()

    table = "\n".join(
        [
            f"Revocation latency, from the change to the last socket closed (or new handshake refused), "
            f"2 daphne processes on channels-redis, {SOCKETS_PER_PROCESS} sockets per process, {rounds} round(s):",
            "",
            "| scenario | median | max | rounds with a socket left open |",
            "|---|---|---|---|",
            *rows,
        ]
    )
    print()
    print(table)
    (RESULTS / ("revocation-quick.md" if args.quick else "revocation.md")).write_text(table + "\n")
    if args.publish:
        (ROOT / "bench" / "published").mkdir(exist_ok=True)
        (ROOT / "bench" / "published" / "revocation.md").write_text(table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
