"""Issue 17 on real servers and a real Redis: the socket cap, the refusal rate,
metrics from two processes, the admin action, the signals.

Every server here runs the demo with ``REDIS_URL`` set, so ``LIMITS_CACHE``
(the ``default`` alias) is Django's RedisCache and the limits count across
processes; ``BEARER_TEST_AUDIT`` connects receivers that log each signal
(``tests/support/audit.py``).
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import websockets
from websockets.asyncio.client import connect

from tests.support.clock import FakeClock
from tests.support.handshake import close_code, open_whoami, still_open
from tests.support.servers import Server, shell, start_server
from tests.support.waiting import eventually, first_success

pytestmark = pytest.mark.redis

CAP = {"MAX_SOCKETS_PER_USER": 2, "SOCKET_LEASE": 3}
#: how open_whoami() fails on a refused handshake (4429 after accept, or 429)
REFUSED = (AssertionError, websockets.ConnectionClosed, websockets.InvalidStatus)


def started(kinds: list[str], env: dict[str, str], logs: Path, settings: dict[str, Any]) -> list[Server]:
    return [start_server(kind, env, logs, settings=settings) for kind in kinds]


@pytest.fixture(scope="module")
def redis_env(server_env_base: dict[str, str], redis_url: str) -> dict[str, str]:
    return {**server_env_base, "REDIS_URL": redis_url, "BEARER_TEST_AUDIT": "1"}


@pytest.fixture(scope="module")
def capped(redis_env: dict[str, str], server_logs: Path) -> Iterator[list[Server]]:
    """Two daphnes and a uvicorn with MAX_SOCKETS_PER_USER = 2 (refuse)."""
    servers = started(["daphne", "daphne", "uvicorn"], redis_env, server_logs, CAP)
    yield servers
    for server in servers:
        server.stop()


@pytest.fixture(scope="module")
def oldest_closing(redis_env: dict[str, str], server_logs: Path) -> Iterator[list[Server]]:
    servers = started(
        ["daphne", "daphne"],
        redis_env,
        server_logs,
        {**CAP, "MAX_SOCKETS_POLICY": "close_oldest"},
    )
    yield servers
    for server in servers:
        server.stop()


async def refusal(server: Server, token: str, **headers: str) -> int:
    """How the server refused a handshake: its HTTP status, or the close code after accept."""
    try:
        ws = await connect(
            server.ws("/ws/whoami/"),
            subprotocols=["access_token", token],  # type: ignore[list-item]
            origin=server.origin,  # type: ignore[arg-type]
            additional_headers=headers or None,
        )
    except websockets.InvalidStatus as exc:
        return exc.response.status_code
    code = await close_code(ws)
    assert code is not None
    return code


# -- the socket cap ---------------------------------------------------------------------


async def test_over_the_cap_on_any_process_the_socket_is_refused_with_4429(
    capped: list[Server], make_user: Callable[..., str]
) -> None:
    first, second, uvicorn = capped
    token = make_user("cap-redis")
    sockets = [await open_whoami(first, token), await open_whoami(second, token)]
    # daphne cannot send an HTTP refusal: accept, then close 4429; uvicorn answers 429.
    assert await refusal(first, token) == 4429
    assert await refusal(second, token) == 4429
    assert await refusal(uvicorn, token) == 429
    assert "AUDIT refused error=too_many_sockets" in first.log()
    await sockets[0].close()
    # The seat comes free when the first daphne has handled the disconnect, on any process.
    admitted = await first_success(lambda: open_whoami(uvicorn, token), REFUSED)
    assert admitted is not None, "the closed socket's seat never came free"
    sockets[0] = admitted
    assert all([await still_open(ws) for ws in sockets])
    for ws in sockets:
        await ws.close()


async def test_close_oldest_closes_the_oldest_socket_on_the_other_process(
    oldest_closing: list[Server], make_user: Callable[..., str]
) -> None:
    first, second = oldest_closing
    token = make_user("oldest-redis")
    oldest = await open_whoami(second, token)
    middle = await open_whoami(first, token)
    newest = await open_whoami(first, token)
    assert await close_code(oldest) == 4429
    assert await still_open(middle) and await still_open(newest)
    assert await eventually(lambda: "AUDIT closed reason=too_many_sockets user=oldest-redis" in second.log()), (
        second.log()
    )
    for ws in (middle, newest):
        await ws.close()


async def test_the_sockets_of_a_killed_process_stop_counting_within_the_lease(
    capped: list[Server],
    redis_env: dict[str, str],
    server_logs: Path,
    make_user: Callable[..., str],
) -> None:
    survivor = capped[0]
    [doomed] = started(["daphne"], redis_env, server_logs, CAP)
    token = make_user("cap-killed")
    try:
        # One seat on each process: the survivor's socket keeps renewing the user's
        # key in Redis, so only the dead process' lapsed lease can free a seat (not
        # the key expiring as a whole).
        kept = await open_whoami(survivor, token)
        phantom = await open_whoami(doomed, token)
        assert await refusal(survivor, token) == 4429
        # The leases are renewed while the process lives (SOCKET_LEASE = 3 s).
        await asyncio.sleep(4)
        assert await refusal(survivor, token) == 4429
        os.kill(doomed.process.pid, signal.SIGKILL)
        doomed.process.wait(10)
    finally:
        doomed.stop()
    admitted = await first_success(lambda: open_whoami(survivor, token), REFUSED)
    assert admitted is not None, "the dead process' socket still counts"
    assert await still_open(kept)
    for ws in (admitted, kept, phantom):
        await ws.close()  # the phantom is already gone with its server


# -- the refusal rate ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def rate_limited(redis_env: dict[str, str], server_logs: Path) -> Iterator[list[Server]]:
    # An hour, so that however slow the machine, the 500 handshakes below all fall
    # within one window of the first refusal.
    settings = {"REFUSAL_RATE": "20/hour", "CLIENT_ADDRESS_HEADER": "X-Forwarded-For"}
    servers = started(["daphne", "uvicorn"], {**redis_env, "BEARER_TEST_LOG_SQL": "1"}, server_logs, settings)
    yield servers
    for server in servers:
        server.stop()


def token_lookups(log: str) -> int:
    # DEBUG logging (tests.server_settings) logs every SQL statement.
    return len(re.findall(r'FROM "authtoken_token"', log))


@pytest.mark.parametrize("kind", ["daphne", "uvicorn"])
async def test_a_flood_of_random_tokens_stops_costing_queries_after_the_rate(
    kind: str, rate_limited: list[Server], make_user: Callable[..., str]
) -> None:
    server = next(s for s in rate_limited if s.kind == kind)
    address = f"198.18.{len(kind)}.{int(time.time()) % 250}"
    good = make_user(f"rate-{kind}")
    before_log = server.log()
    codes = [
        await refusal(server, os.urandom(20).hex(), **{"X-Forwarded-For": f"10.0.0.1, {address}"}) for _ in range(500)
    ]
    refused_by_backend = 403 if kind == "daphne" else 401
    rate_code = 4429 if kind == "daphne" else 429
    assert codes[:20] == [refused_by_backend] * 20
    assert codes[20:] == [rate_code] * 480
    log = server.log()[len(before_log) :]
    assert token_lookups(log) == 20  # one per random token, then none at all
    # Even a good token from that address waits for the window; another address does not.
    assert await refusal(server, good, **{"X-Forwarded-For": address}) == rate_code
    ws = await open_whoami(server, good, **{"X-Forwarded-For": f"198.19.{len(kind)}.1"})
    await ws.close()
    # The signal came once per refusal, with the address from the trusted header.
    log = server.log()[len(before_log) :]
    refused = [
        line for line in log.splitlines() if line.startswith("AUDIT refused ") and f"client={address} " in line + " "
    ]
    assert len(refused) == 501
    assert sum("error=invalid_token" in line for line in refused) == 20
    assert sum("error=rate_limited" in line for line in refused) == 481


async def test_the_redis_refusal_window_slides_and_keeps_only_what_it_needs(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import redis.asyncio

    from channels_bearer import limit_stores
    from channels_bearer.limit_stores import RedisStore

    clock = FakeClock(time.time())  # the scores are the store's clock; the key's expiry is Redis'
    monkeypatch.setattr(limit_stores, "time", clock)
    store = RedisStore(redis_url)
    address = f"sliding-{os.urandom(4).hex()}"
    for _ in range(5):
        await store.add_refusal(address, 1, 3)
    # Only the newest three are kept (enough to say "3/s is reached"), and the key lapses.
    assert await store.refusals(address, 1) == 3
    client = redis.asyncio.Redis.from_url(redis_url)
    try:
        assert await client.zcard(RedisStore.refusals_key(address)) == 3
        assert 0 < await client.ttl(RedisStore.refusals_key(address)) <= 2
        clock.now += 0.6
        await store.add_refusal(address, 1, 3)
        clock.now += 0.5
        # 1.1 s after the first five, 0.5 s after the last: one refusal in the last second.
        assert await store.refusals(address, 1) == 1
        assert await client.zcard(RedisStore.refusals_key(address)) == 3  # trimmed at the next refusal
    finally:
        await client.aclose()


# -- metrics from two processes --------------------------------------------------------------


def scrape(server: Server) -> dict[str, float]:
    with urllib.request.urlopen(server.http("/metrics"), timeout=10) as response:
        assert response.status == 200
        text = response.read().decode()
    samples: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            samples[name] = samples.get(name, 0.0) + float(value)
    return samples


def total(samples: dict[str, float], prefix: str, *labels: str) -> float:
    return sum(v for k, v in samples.items() if k.startswith(prefix) and all(label in k for label in labels))


async def test_metrics_from_two_processes_in_multiprocess_mode(
    redis_env: dict[str, str],
    server_logs: Path,
    tmp_path: Path,
    make_user: Callable[..., str],
) -> None:
    env = {**redis_env, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    first, second = started(["daphne", "uvicorn"], env, server_logs, {})
    try:
        token = make_user("metrics-redis")
        for server, refusals in ((first, 3), (second, 2)):
            for _ in range(refusals):
                await refusal(server, "not-a-token-" + os.urandom(4).hex())
        sockets = [await open_whoami(first, token), await open_whoami(second, token)]
        samples = scrape(first)
        assert (
            total(
                samples,
                "channels_bearer_handshakes_total",
                'outcome="refused"',
                'error="invalid_token"',
            )
            == 5
        )
        assert (
            total(
                samples,
                "channels_bearer_handshakes_total",
                'outcome="accepted"',
                'source="subprotocol"',
            )
            == 2
        )
        assert total(samples, "channels_bearer_open_sockets") == 2
        assert total(samples, "channels_bearer_auth_seconds_count") == 7
        # Either process serves every process' values.
        assert total(scrape(second), "channels_bearer_handshakes_total", 'outcome="refused"') == 5
        shell(
            first.env,
            "from channels_bearer.revoke import disconnect_user\nfrom django.contrib.auth.models import User\n"
            "disconnect_user(User.objects.get(username='metrics-redis'))",
        )
        assert [await close_code(ws) for ws in sockets] == [4403, 4403]

        # The client has its close code before each process is done recording: wait until they are.
        def recorded() -> bool:
            samples = scrape(second)
            return (
                total(samples, "channels_bearer_closes_total", 'reason="revoked"') == 2
                and total(samples, "channels_bearer_open_sockets") == 0
                and total(samples, "channels_bearer_revocation_seconds_count") == 2
            )

        await eventually(recorded)
        samples = scrape(second)
        assert total(samples, "channels_bearer_closes_total", 'reason="revoked"') == 2
        assert total(samples, "channels_bearer_open_sockets") == 0
        assert total(samples, "channels_bearer_revocation_seconds_count") == 2  # heard by both
        # Seconds, not milliseconds; a generous bound (the revoking shell's own start-up
        # counts), since latency is measured in bench/revocation.py, not here.
        assert 0 < total(samples, "channels_bearer_revocation_seconds_sum") < 10
    finally:
        first.stop()
        second.stop()


# -- the admin action ----------------------------------------------------------------------------

ADMIN = """
import re
from django.contrib.auth.models import User
from django.test import Client
admin, _ = User.objects.get_or_create(username="ops-admin", defaults={{"is_staff": True, "is_superuser": True}})
client = Client()
client.force_login(admin)
selected = {selected}
response = client.post("{url}", {{"action": "close_websockets", "_selected_action": selected}}, follow=True)
assert response.status_code == 200, response.status_code
print(re.search(r'<li class="success">(.*?)</li>', response.content.decode()).group(1))
"""


@pytest.mark.parametrize("admin", ["user", "token"])
async def test_the_admin_action_closes_a_users_sockets_on_both_processes(
    admin: str, capped: list[Server], make_user: Callable[..., str]
) -> None:
    first, second, _ = capped
    token = make_user(f"admin-{admin}")
    bystander = await open_whoami(first, make_user(f"admin-bystander-{admin}"))
    sockets = [await open_whoami(first, token), await open_whoami(second, token)]
    pk = shell(
        first.env, f"from django.contrib.auth.models import User; print(User.objects.get(username='admin-{admin}').pk)"
    )
    url = "/admin/auth/user/" if admin == "user" else "/admin/authtoken/tokenproxy/"
    output = shell(first.env, ADMIN.format(selected=[pk], url=url))
    assert output == "Closed 2 WebSocket(s) of 1 user(s), on every server process."
    assert [await close_code(ws) for ws in sockets] == [4403, 4403]
    assert await still_open(bystander)
    await bystander.close()
