"""Reconnect storms (issue 15): many handshakes with one token share one lookup.

The backends' lookups are counted where they happen (a subclass counts the
token row reads), so the count is the database's, whatever thread ran it.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.test import override_settings
from django.urls import path

from channels_bearer import flights, revoke
from channels_bearer.backends import DRFTokenBackend, SimpleJWTBackend
from channels_bearer.middleware import BearerAuthMiddlewareStack
from channels_bearer.registry import registry
from tests.support.apps import RecordingConsumer
from tests.support.tokens import drf_token, jwt_token
from tests.support.waiting import eventually

pytestmark = pytest.mark.django_db(transaction=True)

READS: list[str] = []
_reads_lock = threading.Lock()
#: Holds every read until released, so that the storm's handshakes overlap.
GATE = threading.Event()
#: Reads waiting at the gate, and handshakes that have reached the single-flight
#: step (starting a lookup or joining one): what the tests wait for, instead of
#: guessing with a sleep how long the handshakes take to get there.
AT_GATE = [0]
ENTERED = [0]


def wait_at_gate() -> None:
    with _reads_lock:
        AT_GATE[0] += 1
    GATE.wait(10)


class CountingDRFBackend(DRFTokenBackend):
    def get_token_object(self, model: Any, key: str) -> Any:
        wait_at_gate()
        with _reads_lock:
            READS.append("token")
        return super().get_token_object(model, key)


class CountingJWTBackend(SimpleJWTBackend):
    def lookup_user(self, user_id: Any) -> Any:
        wait_at_gate()
        with _reads_lock:
            READS.append("user")
        return super().lookup_user(user_id)


application = BearerAuthMiddlewareStack(URLRouter([path("ws/", RecordingConsumer.as_asgi())]))
COUNTING = {"BACKENDS": ["tests.unit.test_storms.CountingDRFBackend", "tests.unit.test_storms.CountingJWTBackend"]}


@pytest.fixture(autouse=True)
def counting(monkeypatch: pytest.MonkeyPatch) -> Any:
    READS.clear()
    AT_GATE[0] = ENTERED[0] = 0
    shared = flights.shared

    async def counted_shared(key: Any, lookup: Any) -> Any:
        ENTERED[0] += 1  # on the event loop: no lock needed
        return await shared(key, lookup)

    monkeypatch.setattr(flights, "shared", counted_shared)
    GATE.set()
    with override_settings(CHANNELS_BEARER=COUNTING):
        yield
    GATE.set()


async def until(check: Any) -> None:
    assert await eventually(check), "the handshakes never got there"


async def connect(token: str) -> tuple[bool, Any, WebsocketCommunicator]:
    communicator = WebsocketCommunicator(application, "/ws/", subprotocols=["access_token", token])
    connected, subprotocol = await communicator.connect(timeout=10)
    return connected, subprotocol, communicator


async def storm(tokens: list[str], each: int) -> list[bool]:
    GATE.clear()
    attempts = [asyncio.ensure_future(connect(token)) for token in tokens for _ in range(each)]
    await until(lambda: ENTERED[0] == len(attempts))  # every handshake has started its lookup, or joined one
    GATE.set()
    results = await asyncio.gather(*attempts)
    for _, _, communicator in results:
        await communicator.disconnect()
    return [connected for connected, _, _ in results]


async def test_a_storm_of_one_token_reads_its_row_once(user_factory: Any) -> None:
    from asgiref.sync import sync_to_async

    users = [await sync_to_async(user_factory)(f"storm-{n}") for n in range(5)]
    tokens = [await sync_to_async(drf_token)(user) for user in users]
    assert await storm(tokens, each=10) == [True] * 50
    assert READS == ["token"] * 5


async def test_a_storm_of_one_jwt_user_reads_the_user_once(user_factory: Any) -> None:
    from asgiref.sync import sync_to_async

    user = await sync_to_async(user_factory)("storm-jwt")
    # Ten different tokens of one user: one user read.
    tokens = [await sync_to_async(jwt_token)(user) for _ in range(10)]
    assert await storm(tokens, each=2) == [True] * 20
    assert READS == ["user"]


async def test_a_storm_of_a_dead_token_reads_once_and_refuses_all() -> None:
    results = await storm(["f" * 40], each=20)
    assert results == [False] * 20
    assert READS == ["token"]


async def test_handshakes_do_not_join_a_lookup_that_started_before_a_revocation(user_factory: Any) -> None:
    from asgiref.sync import sync_to_async

    user = await sync_to_async(user_factory)("storm-revoked")
    token = await sync_to_async(drf_token)(user)
    GATE.clear()
    early = asyncio.ensure_future(connect(token))
    await until(lambda: AT_GATE[0] == 1)  # its lookup is running, and waits at the gate
    mark = registry.mark()
    await revoke.adisconnect_user(user)
    assert registry.mark() == mark + 1
    late = asyncio.ensure_future(connect(token))
    await until(lambda: ENTERED[0] == 2)  # it has started a lookup of its own, or joined the early one
    GATE.set()
    (early_ok, early_code, first), (late_ok, _, second) = await asyncio.gather(early, late)
    # The early one read the row before the revocation: refused (4403), as
    # the revocation landed during its handshake. The late one did not take
    # that read's answer: it read again, and the token is still valid.
    assert (early_ok, early_code) == (False, 4403)
    assert late_ok
    assert READS == ["token", "token"]
    await second.disconnect()


async def test_a_handshake_that_gives_up_does_not_cancel_the_lookup_others_wait_for(user_factory: Any) -> None:
    from asgiref.sync import sync_to_async

    user = await sync_to_async(user_factory)("storm-leaver")
    token = await sync_to_async(drf_token)(user)
    GATE.clear()
    leader = asyncio.ensure_future(connect(token))
    await until(lambda: AT_GATE[0] == 1)
    follower = asyncio.ensure_future(connect(token))
    await until(lambda: ENTERED[0] == 2)  # it has joined the leader's lookup
    leader.cancel()
    GATE.set()
    connected, _, communicator = await follower
    assert connected
    assert READS == ["token"]
    await communicator.disconnect()
