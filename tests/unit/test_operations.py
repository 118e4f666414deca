"""Issue 17 in one process: signals, metrics, the socket cap and the refusal rate.

Channels' communicator and the in-memory layer; the same over Redis and two
real server processes is in tests/integration/test_operations_redis.py.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer, WebsocketConsumer
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model
from django.core.checks import run_checks
from django.test import override_settings
from django.urls import path
from prometheus_client import REGISTRY
from rest_framework_simplejwt.tokens import AccessToken

from channels_bearer import revoke
from channels_bearer.consumers import BearerConsumerMixin
from channels_bearer.identity import BearerIdentity
from channels_bearer.limits import client_address
from channels_bearer.config import validate
from channels_bearer.middleware import BearerAuthMiddlewareStack
from channels_bearer.signals import bearer_authenticated, bearer_closed, bearer_refused
from channels_bearer.testing import amake_token
from tests.support.apps import assert_secret_absent, closed_with
from tests.support.clock import FakeClock
from tests.support.queries import counted
from tests.support.servers import free_port
from tests.support.tokens import jwt_token, short_jwt
from tests.support.waiting import eventually

pytestmark = pytest.mark.django_db(transaction=True)

DRF = "channels_bearer.backends.DRFTokenBackend"
JWT = "channels_bearer.backends.SimpleJWTBackend"
BASE = {
    "BACKENDS": [DRF, JWT],
    "SOURCES": ["subprotocol", "header", "message"],
    "REFRESH": True,
}


class AsyncEcho(BearerConsumerMixin, AsyncWebsocketConsumer):
    bearer_message_auth = False

    async def connect(self) -> None:
        await self.accept()

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        await self.send(text_data=text_data)


class SyncEcho(BearerConsumerMixin, WebsocketConsumer):
    bearer_message_auth = False

    def connect(self) -> None:
        self.accept()

    def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        self.send(text_data=text_data)


class FirstAsync(AsyncEcho):
    bearer_message_auth = True


class FirstSync(SyncEcho):
    bearer_message_auth = True


class Scoped(AsyncEcho):
    bearer_scopes = ["chat:write"]  # a DRF token carries none


class FirstScoped(FirstAsync):
    bearer_scopes = ["chat:write"]


class Optional(BearerConsumerMixin, AsyncWebsocketConsumer):
    bearer_required = False
    bearer_message_auth = False

    async def connect(self) -> None:
        await self.accept()


application = BearerAuthMiddlewareStack(
    URLRouter(
        [
            path("async/", AsyncEcho.as_asgi()),
            path("sync/", SyncEcho.as_asgi()),
            path("optional/", Optional.as_asgi()),
            path("first-async/", FirstAsync.as_asgi()),
            path("first-sync/", FirstSync.as_asgi()),
            path("scoped/", Scoped.as_asgi()),
            path("first-scoped/", FirstScoped.as_asgi()),
        ]
    )
)
KINDS = ["async", "sync"]


class Heard:
    """Every sending of the three signals, with its arguments."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, signal: Any, sender: Any, **kwargs: Any) -> None:
        name = {
            id(bearer_authenticated): "authenticated",
            id(bearer_refused): "refused",
            id(bearer_closed): "closed",
        }
        self.events.append((name[id(signal)], {"sender": sender, **kwargs}))

    def of(self, name: str) -> list[dict[str, Any]]:
        return [kwargs for event, kwargs in self.events if event == name]


@pytest.fixture
def heard() -> Iterator[Heard]:
    recorder = Heard()
    for signal in (bearer_authenticated, bearer_refused, bearer_closed):
        signal.connect(recorder, dispatch_uid=f"test-{id(signal)}")
    yield recorder
    for signal in (bearer_authenticated, bearer_refused, bearer_closed):
        signal.disconnect(dispatch_uid=f"test-{id(signal)}")


@pytest.fixture(autouse=True)
def _settings() -> Iterator[None]:
    with override_settings(CHANNELS_BEARER={**BASE, "CLIENT_ADDRESS_HEADER": "X-Forwarded-For"}):
        yield


async def create_user(username: str) -> Any:
    return await sync_to_async(get_user_model().objects.create_user)(username, password="pw")


def client(url: str, token: str | None = None, *, address: str = "203.0.113.7") -> WebsocketCommunicator:
    headers = [(b"x-forwarded-for", f"10.9.9.9, {address}".encode())]
    return WebsocketCommunicator(
        application,
        url,
        headers=headers,
        subprotocols=["access_token", token] if token is not None else None,
    )


async def handshake(
    url: str, token: str | None = None, *, address: str = "203.0.113.7"
) -> tuple[WebsocketCommunicator, Any]:
    """Connect; ``(communicator, subprotocol)`` when accepted, else ``(communicator, close code)`` of the close."""
    comm = client(url, token, address=address)
    connected, detail = await comm.connect()
    if connected:
        # An accept-then-close refusal (4429 on a server with no HTTP refusals).
        if not await comm.receive_nothing(0.1):
            message = await comm.receive_output(1)
            if message["type"] == "websocket.close":
                return comm, message["code"]
    return comm, detail



def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


# -- signals ----------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
async def test_authenticated_is_sent_once_with_who_where_and_how(kind: str, heard: Heard) -> None:
    user = await create_user("sig-ok")
    token = await amake_token(user)
    comm, subprotocol = await handshake(f"/{kind}/", token)
    assert subprotocol == "access_token"
    [event] = heard.of("authenticated")
    assert event["user"] == user
    assert isinstance(event["identity"], BearerIdentity) and event["identity"].user == user
    assert (event["source"], event["backend"], event["path"], event["client"]) == (
        "subprotocol",
        DRF,
        f"/{kind}/",
        "203.0.113.7",
    )
    assert heard.of("refused") == []
    await comm.disconnect()


@pytest.mark.parametrize("refusal", ["handshake", "close"])
async def test_refused_is_sent_once_per_refusal_whatever_the_mode_and_never_with_the_token(
    refusal: str, heard: Heard, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "not-a-real-token-" + "q" * 20
    with override_settings(
        CHANNELS_BEARER={
            **BASE,
            "REFUSAL": refusal,
            "CLIENT_ADDRESS_HEADER": "X-Forwarded-For",
        }
    ):
        caplog.set_level(logging.DEBUG)
        user = await create_user(f"sig-refused-{refusal}")
        jwt = str(AccessToken.for_user(user))
        tampered = jwt[:-4] + ("AAAA" if not jwt.endswith("AAAA") else "BBBB")
        _, code = await handshake("/async/", secret)
        assert code == 4401
        _, code = await handshake("/async/", tampered)
        assert code == 4401
        _, code = await handshake("/sync/")  # no token where one is needed
        assert code == 4401
    assert [e["error"] for e in heard.of("refused")] == [
        "invalid_token",
        "invalid_token",
        "token_required",
    ]
    invalid, bad_signature, missing = heard.of("refused")
    # No backend took it up (not a DRF key, not a JWT), or SimpleJWTBackend refused its signature.
    assert invalid["source"] == "subprotocol" and invalid["backend"] is None
    assert bad_signature["backend"] == JWT
    assert invalid["path"] == "/async/" and invalid["client"] == "203.0.113.7"
    assert missing["source"] is None and missing["backend"] is None and missing["path"] == "/sync/"
    assert heard.of("authenticated") == []
    assert secret not in repr(heard.events)
    assert_secret_absent(secret, caplog)


async def test_a_receiver_that_raises_is_logged_and_changes_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(**kwargs: Any) -> None:
        raise RuntimeError("the audit database is down")

    async def broken_async(**kwargs: Any) -> None:
        raise LookupError("also down")

    bearer_authenticated.connect(broken, dispatch_uid="broken")
    bearer_authenticated.connect(broken_async, dispatch_uid="broken-async")
    bearer_refused.connect(broken, dispatch_uid="broken")
    try:
        user = await create_user("sig-raise")
        comm, subprotocol = await handshake("/async/", await amake_token(user))
        assert subprotocol == "access_token"
        await comm.send_to(text_data="still here")
        assert await comm.receive_from() == "still here"
        await comm.disconnect()
        _, code = await handshake("/async/", "wrong-token")
        assert code == 4401
    finally:
        bearer_authenticated.disconnect(dispatch_uid="broken")
        bearer_authenticated.disconnect(dispatch_uid="broken-async")
        bearer_refused.disconnect(dispatch_uid="broken")
    raised = [r for r in caplog.records if "raised" in r.getMessage() and r.name == "channels_bearer"]
    assert sorted(r.getMessage().split(" raised ")[1].split(";")[0] for r in raised) == [
        "LookupError",
        "RuntimeError",
        "RuntimeError",
    ]
    assert all(r.levelno == logging.ERROR and r.exc_info for r in raised)


async def test_a_receiver_can_count_refusals_per_address_for_a_lockout() -> None:
    """The audit use the issue names: refusals counted per client address, by a plain receiver."""
    refusals: Counter[str] = Counter()

    def note(sender: Any, error: str, client: str | None, **kwargs: Any) -> None:
        if client is not None:
            refusals[client] += 1

    bearer_refused.connect(note, dispatch_uid="lockout")
    try:
        for _ in range(3):
            await handshake("/async/", "guess", address="198.51.100.1")
        await handshake("/async/", "guess", address="198.51.100.2")
        user = await create_user("sig-lock")
        comm, _ = await handshake("/async/", await amake_token(user), address="198.51.100.2")
        await comm.disconnect()
    finally:
        bearer_refused.disconnect(dispatch_uid="lockout")
    assert refusals == {"198.51.100.1": 3, "198.51.100.2": 1}


@pytest.mark.parametrize("kind", KINDS)
async def test_closed_says_why_revoked_expired_refresh_failed(kind: str, heard: Heard) -> None:
    user = await create_user(f"sig-close-{kind}")
    drf = await amake_token(user)
    comm, _ = await handshake(f"/{kind}/", drf)
    await revoke.adisconnect_user(user)
    assert (await closed_with(comm))[0] == 4403

    short = await sync_to_async(short_jwt)(user, 1)
    comm, _ = await handshake(f"/{kind}/", short)
    assert (await closed_with(comm, 5))[0] == 4401

    comm, _ = await handshake(f"/{kind}/", drf)
    await comm.send_to(text_data='{"type": "bearer.refresh", "token": "not-valid"}')
    assert (await closed_with(comm))[0] == 4401

    # A refresh frame without a token fails the refresh too (4400).
    comm, _ = await handshake(f"/{kind}/", drf)
    await comm.send_to(text_data='{"type": "bearer.refresh"}')
    assert (await closed_with(comm))[0] == 4400
    # The signal follows the close frame: wait until it has been sent.
    assert await eventually(lambda: len(heard.of("closed")) == 4), heard.of("closed")
    sender = AsyncEcho if kind == "async" else SyncEcho
    assert [(e["reason"], e["user"], e["sender"]) for e in heard.of("closed")] == [
        ("revoked", user, sender),
        ("expired", user, sender),
        ("refresh_failed", user, sender),
        ("refresh_failed", user, sender),
    ]
    assert heard.of("closed")[0]["token_id"] and heard.of("closed")[0]["token_id"] != drf


async def test_first_message_authentication_sends_the_signals_too(heard: Heard) -> None:
    user = await create_user("sig-first")
    comm = client("/first-async/")
    connected, _ = await comm.connect()
    assert connected
    await comm.send_to(text_data='{"type": "bearer.authenticate", "token": "%s"}' % await amake_token(user))
    await comm.send_to(text_data="hello")
    assert await comm.receive_from() == "hello"
    await comm.disconnect()
    [event] = heard.of("authenticated")
    assert (event["user"], event["source"]) == (user, "message")
    comm = client("/first-sync/")
    await comm.connect()
    await comm.send_to(text_data='{"type": "bearer.authenticate", "token": "wrong"}')
    assert (await closed_with(comm))[0] == 4401
    assert [(e["error"], e["source"]) for e in heard.of("refused")] == [("invalid_token", "message")]


@pytest.mark.parametrize("how", ["revoked", "refresh_failed"])
async def test_a_sync_consumer_does_not_wait_for_the_close_receivers(how: str) -> None:
    """A sync consumer's thread is asgiref's one shared thread: if it waited for the
    ``bearer_closed`` receivers, a loop that stops meanwhile would strand it, and every
    later ``sync_to_async`` call with it (a whole test run hung on this once)."""
    release = asyncio.Event()

    async def slow_receiver(**kwargs: Any) -> None:
        await release.wait()

    bearer_closed.connect(slow_receiver, dispatch_uid="slow")
    try:
        user = await create_user(f"slow-close-{how}")
        comm, _ = await handshake("/sync/", await amake_token(user))
        if how == "revoked":
            await revoke.adisconnect_user(user)
        else:
            await comm.send_to(text_data='{"type": "bearer.refresh", "token": "not-valid"}')
        assert (await closed_with(comm))[0] in (4403, 4401)
        # The shared thread is free while the receiver still waits.
        assert await asyncio.wait_for(sync_to_async(lambda: "free")(), 3) == "free"
    finally:
        release.set()
        bearer_closed.disconnect(dispatch_uid="slow")


async def test_a_refused_refresh_names_the_token_the_socket_had(heard: Heard) -> None:
    """The new token authenticates but lacks the consumer's scope: the socket
    closes 4403, and ``bearer_closed`` names the token it was open with."""
    user = await create_user("sig-refresh-scope")
    before = await sync_to_async(jwt_token)(user, scope="chat:write")
    comm, subprotocol = await handshake("/scoped/", before)
    assert subprotocol == "access_token"
    narrower = await sync_to_async(jwt_token)(user, scope="chat:read")
    await comm.send_to(text_data='{"type": "bearer.refresh", "token": "%s"}' % narrower)
    assert await closed_with(comm) == (4403, "insufficient_scope")
    assert await eventually(lambda: len(heard.of("closed")) == 1), heard.of("closed")
    [closed] = heard.of("closed")
    assert (closed["reason"], closed["user"]) == ("refresh_failed", user)
    assert closed["token_id"] == AccessToken(before)["jti"] != AccessToken(narrower)["jti"]


async def test_a_consumer_refusal_follows_the_authentication_whichever_the_source(heard: Heard) -> None:
    """The token was good, the consumer refused the socket (a missing scope): both
    paths report ``bearer_authenticated`` and then ``bearer_refused``, as documented."""
    user = await create_user("sig-scoped")
    token = await amake_token(user)
    _, code = await handshake("/scoped/", token)
    assert code == 4403
    comm = client("/first-scoped/")
    assert (await comm.connect())[0]
    await comm.send_to(text_data='{"type": "bearer.authenticate", "token": "%s"}' % token)
    assert (await closed_with(comm))[0] == 4403
    order = [(name, kwargs.get("source")) for name, kwargs in heard.events]
    assert order == [
        ("authenticated", "subprotocol"),
        ("refused", "subprotocol"),
        ("authenticated", "message"),
        ("refused", "message"),
    ]
    assert [e["error"] for e in heard.of("refused")] == ["insufficient_scope"] * 2


# -- metrics ------------------------------------------------------------------------


async def test_metrics_count_handshakes_closes_and_open_sockets() -> None:
    user = await create_user("metrics")
    token = await amake_token(user)
    labels = {
        "outcome": "refused",
        "error": "invalid_token",
        "source": "header",
        "backend": "",
    }
    before = {
        "refused": sample("channels_bearer_handshakes_total", **labels),
        "accepted": sample(
            "channels_bearer_handshakes_total",
            outcome="accepted",
            error="",
            source="subprotocol",
            backend=DRF,
        ),
        "anonymous": sample(
            "channels_bearer_handshakes_total",
            outcome="anonymous",
            error="",
            source="",
            backend="",
        ),
        "revoked": sample("channels_bearer_closes_total", reason="revoked"),
        "timed": sample("channels_bearer_auth_seconds_count"),
    }
    comm = WebsocketCommunicator(application, "/async/", headers=[(b"authorization", b"Bearer nope")])
    await comm.connect()
    sockets = [(await handshake("/async/", token))[0] for _ in range(2)]
    assert sample("channels_bearer_open_sockets") >= 2
    open_before = sample("channels_bearer_open_sockets")
    anonymous, _ = await handshake("/optional/")
    await anonymous.disconnect()
    await revoke.adisconnect_user(user)
    for socket in sockets:
        assert (await closed_with(socket))[0] == 4403
        await socket.disconnect()
    assert sample("channels_bearer_handshakes_total", **labels) == before["refused"] + 1
    assert (
        sample(
            "channels_bearer_handshakes_total",
            outcome="accepted",
            error="",
            source="subprotocol",
            backend=DRF,
        )
        == before["accepted"] + 2
    )
    assert (
        sample(
            "channels_bearer_handshakes_total",
            outcome="anonymous",
            error="",
            source="",
            backend="",
        )
        == before["anonymous"] + 1
    )
    assert sample("channels_bearer_closes_total", reason="revoked") == before["revoked"] + 2
    assert sample("channels_bearer_auth_seconds_count") == before["timed"] + 3
    assert sample("channels_bearer_open_sockets") == open_before - 2


async def test_metrics_off_counts_nothing() -> None:
    before = sample(
        "channels_bearer_handshakes_total",
        outcome="refused",
        error="invalid_token",
        source="header",
        backend="",
    )
    with override_settings(CHANNELS_BEARER={**BASE, "METRICS": False}):
        comm = WebsocketCommunicator(application, "/async/", headers=[(b"authorization", b"Bearer nope")])
        connected, code = await comm.connect()
        assert not connected and code == 4401
    assert (
        sample(
            "channels_bearer_handshakes_total",
            outcome="refused",
            error="invalid_token",
            source="header",
            backend="",
        )
        == before
    )


def test_metrics_view_serves_the_text_format() -> None:
    from django.test import RequestFactory

    from channels_bearer.metrics import metrics_view

    response = metrics_view(RequestFactory().get("/metrics"))
    assert response.status_code == 200 and response["Content-Type"].startswith("text/plain")
    body = response.content.decode()
    for name in (
        "channels_bearer_handshakes_total",
        "channels_bearer_auth_seconds",
        "channels_bearer_open_sockets",
        "channels_bearer_closes_total",
        "channels_bearer_revocation_seconds",
    ):
        assert f"# TYPE {name.removesuffix('_total')}" in body, name


# -- the socket cap -------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
async def test_over_the_cap_the_new_socket_is_refused_with_4429(kind: str, heard: Heard) -> None:
    with override_settings(CHANNELS_BEARER={**BASE, "MAX_SOCKETS_PER_USER": 2}):
        user = await create_user(f"cap-{kind}")
        token = await amake_token(user)
        first, _ = await handshake(f"/{kind}/", token)
        second, _ = await handshake(f"/{kind}/", token)
        third, code = await handshake(f"/{kind}/", token)
        assert code == 4429
        other = await create_user(f"cap-other-{kind}")
        elsewhere, subprotocol = await handshake(f"/{kind}/", await amake_token(other))
        assert subprotocol == "access_token"  # the cap is per user
        await first.disconnect()  # waits for the application: its seat is given back in __call__'s finally
        fourth, subprotocol = await handshake(f"/{kind}/", token)  # a seat came free
        assert subprotocol == "access_token"
        for comm in (second, fourth, elsewhere):
            await comm.disconnect()
    assert [e["error"] for e in heard.of("refused")] == ["too_many_sockets"]


@pytest.mark.parametrize("kind", KINDS)
async def test_close_oldest_closes_the_oldest_socket_with_4429(kind: str, heard: Heard) -> None:
    with override_settings(
        CHANNELS_BEARER={
            **BASE,
            "MAX_SOCKETS_PER_USER": 2,
            "MAX_SOCKETS_POLICY": "close_oldest",
        }
    ):
        user = await create_user(f"oldest-{kind}")
        token = await amake_token(user)
        oldest, _ = await handshake(f"/{kind}/", token)
        middle, _ = await handshake(f"/{kind}/", token)
        newest, subprotocol = await handshake(f"/{kind}/", token)
        assert subprotocol == "access_token"
        assert (await closed_with(oldest))[0] == 4429
        for comm in (middle, newest):
            await comm.send_to(text_data="alive")
            assert await comm.receive_from() == "alive"
            await comm.disconnect()
    assert await eventually(lambda: bool(heard.of("closed"))), "no bearer_closed"
    assert [e["reason"] for e in heard.of("closed")] == ["too_many_sockets"]


async def test_the_cap_holds_for_first_message_authentication() -> None:
    with override_settings(CHANNELS_BEARER={**BASE, "MAX_SOCKETS_PER_USER": 1}):
        user = await create_user("cap-first")
        token = await amake_token(user)
        first, _ = await handshake("/async/", token)
        late = client("/first-async/")
        connected, _ = await late.connect()
        assert connected
        await late.send_to(text_data='{"type": "bearer.authenticate", "token": "%s"}' % token)
        assert (await closed_with(late))[0] == 4429
        await first.disconnect()


# -- the refusal rate -------------------------------------------------------------------



def refusal_rate(rate: str) -> Any:
    """``REFUSAL_RATE = rate``, the address taken from the last ``X-Forwarded-For`` entry."""
    return override_settings(CHANNELS_BEARER={**BASE, "REFUSAL_RATE": rate, "CLIENT_ADDRESS_HEADER": "X-Forwarded-For"})

async def test_past_the_refusal_rate_an_address_is_refused_before_any_backend_runs(
    heard: Heard,
) -> None:
    with refusal_rate("3/min"):
        user = await create_user("rate")
        token = await amake_token(user)
        for _ in range(3):
            _, code = await handshake("/async/", "guess-" + "x" * 30, address="192.0.2.50")
            assert code == 4401
        with counted() as statements:
            _, code = await handshake("/async/", token, address="192.0.2.50")  # even a good token
            assert code == 4429
            _, code = await handshake("/async/", "guess-again", address="192.0.2.50")
            assert code == 4429
        assert statements.count == 0
        # Another address is not concerned; the header's last entry is the address.
        comm, subprotocol = await handshake("/async/", token, address="192.0.2.51")
        assert subprotocol == "access_token"
        await comm.disconnect()
    errors = [e["error"] for e in heard.of("refused")]
    assert errors == ["invalid_token"] * 3 + ["rate_limited"] * 2


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    from channels_bearer import limit_stores

    fake = FakeClock(1_000_000.0)
    monkeypatch.setattr(limit_stores, "time", fake)
    return fake


async def test_the_refusal_window_passes(clock: FakeClock) -> None:
    with refusal_rate("1/s"):
        user = await create_user("rate-window")
        token = await amake_token(user)
        _, code = await handshake("/async/", "guess", address="192.0.2.60")
        assert code == 4401
        clock.now += 0.9
        _, code = await handshake("/async/", token, address="192.0.2.60")
        assert code == 4429
        # A second after the refusal it no longer counts.
        clock.now += 0.15
        comm, subprotocol = await handshake("/async/", token, address="192.0.2.60")
        assert subprotocol == "access_token"
        await comm.disconnect()


async def test_the_refusal_window_slides_across_clock_boundaries(clock: FakeClock) -> None:
    """N refusals in any T seconds, not in a calendar window: two refusals either
    side of a second's boundary still add up ("2/s" reached, the third handshake
    refused), until the first is a second old."""
    with refusal_rate("2/s"):
        user = await create_user("rate-sliding")
        token = await amake_token(user)
        clock.now = 1_000_000.85  # 0.15 s before a second begins
        _, code = await handshake("/async/", "guess", address="192.0.2.61")
        assert code == 4401
        clock.now = 1_000_001.10  # 0.1 s after it
        _, code = await handshake("/async/", "guess", address="192.0.2.61")
        assert code == 4401
        _, code = await handshake("/async/", token, address="192.0.2.61")
        assert code == 4429
        clock.now = 1_000_001.86  # the first refusal has left the window, the second has not
        comm, subprotocol = await handshake("/async/", token, address="192.0.2.61")
        assert subprotocol == "access_token"
        await comm.disconnect()


def test_client_address_is_the_peer_or_the_last_entry_of_the_trusted_header() -> None:
    plain, _ = validate({})
    behind, _ = validate({"CLIENT_ADDRESS_HEADER": "X-Real-IP"})
    scope = {
        "client": ("192.0.2.1", 5000),
        "headers": [(b"x-real-ip", b"198.51.100.9")],
    }
    assert client_address(scope, plain) == "192.0.2.1"
    assert client_address(scope, behind) == "198.51.100.9"
    assert client_address({"client": ("192.0.2.1", 5000), "headers": []}, behind) is None
    assert client_address({"headers": []}, plain) is None
    # The last entry, and the last line: a client writes the first ones itself.
    forwarded, _ = validate({"CLIENT_ADDRESS_HEADER": "X-Forwarded-For"})
    spoofed = [(b"x-forwarded-for", b"10.0.0.1, 203.0.113.5"), (b"x-forwarded-for", b"198.51.100.7")]
    assert client_address({"headers": spoofed[:1]}, forwarded) == "203.0.113.5"
    assert client_address({"headers": spoofed}, forwarded) == "198.51.100.7"


# -- settings and checks --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("setting", "code"),
    [
        ({"MAX_SOCKETS_PER_USER": 0}, "E018"),
        ({"MAX_SOCKETS_PER_USER": "5"}, "E018"),
        ({"MAX_SOCKETS_PER_USER": True}, "E018"),
        ({"MAX_SOCKETS_POLICY": "close_newest"}, "E019"),
        ({"REFUSAL_RATE": "20 per minute"}, "E032"),
        ({"REFUSAL_RATE": "0/min"}, "E032"),
        ({"REFUSAL_RATE": "20/mon"}, "E032"),
        ({"REFUSAL_RATE": 20}, "E032"),
        ({"CLIENT_ADDRESS_HEADER": "HTTP_X_FORWARDED_FOR:"}, "E033"),
        ({"CLIENT_ADDRESS_HEADER": ""}, "E033"),
        ({"METRICS": "yes"}, "E035"),
        ({"SOCKET_LEASE": -1}, "E013"),
        ({"SOCKET_LEASE": 0}, "E036"),
        ({"SOCKET_LEASE": 0.5}, "E036"),
        ({"LIMITS_CACHE": ""}, "E012"),
    ],
)
def test_bad_operations_settings_are_refused_by_the_checks(setting: dict[str, Any], code: str) -> None:
    with override_settings(CHANNELS_BEARER={**BASE, **setting}):
        ids = [m.id for m in run_checks()]
    assert f"channels_bearer.{code}" in ids


def test_rates_read_as_drf_reads_them() -> None:
    for text, expected in [
        ("20/min", (20, 60)),
        ("5/s", (5, 1)),
        ("100/hour", (100, 3600)),
        ("1/day", (1, 86400)),
        ("20/minutes", (20, 60)),
        ("3/ days", (3, 86400)),
    ]:
        config, messages = validate({"REFUSAL_RATE": text})
        assert messages == [] and config is not None and config.refusal_rate == expected


def test_limits_on_a_per_process_cache_are_warned_about() -> None:
    with override_settings(CHANNELS_BEARER={**BASE, "MAX_SOCKETS_PER_USER": 3}):
        ids = [m.id for m in run_checks()]
    assert "channels_bearer.W004" in ids
    with override_settings(CHANNELS_BEARER=BASE):
        assert "channels_bearer.W004" not in [m.id for m in run_checks()]


def test_metrics_true_without_prometheus_client_is_an_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The one thing this machine cannot show for real: prometheus_client is
    # installed here (the test extra), so its absence is simulated.
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "prometheus_client" else real(name, *a),
    )
    with override_settings(CHANNELS_BEARER={**BASE, "METRICS": True}):
        assert "channels_bearer.E034" in [m.id for m in run_checks()]
    with override_settings(CHANNELS_BEARER={**BASE, "METRICS": None}):
        assert "channels_bearer.E034" not in [m.id for m in run_checks()]


# -- the admin action, in process ------------------------------------------------------------



def post_the_admin_action(pk: Any, *, superuser: bool) -> list[str]:
    """POST close_websockets for user ``pk`` through a real admin site; the messages the admin showed."""
    from django.contrib.auth.models import Permission
    from django.contrib.messages import get_messages
    from django.test import Client

    if superuser:
        admin = get_user_model().objects.create_superuser("ops", password="pw")
    else:
        admin = get_user_model().objects.create_user("viewer", password="pw", is_staff=True)
        admin.user_permissions.add(Permission.objects.get(codename="view_user"))
    client = Client()
    client.force_login(admin)
    with override_settings(ROOT_URLCONF="tests.support.admin_urls"):
        response = client.post("/admin/auth/user/", {"action": "close_websockets", "_selected_action": [pk]}, follow=True)
    assert response.status_code == 200
    return [str(m) for m in get_messages(response.wsgi_request)]

async def test_the_admin_action_without_a_count_closes_the_sockets_and_says_so() -> None:
    # No MAX_SOCKETS_PER_USER: nothing counts the sockets, so the message gives
    # no number (with one, on Redis, tests/integration/test_operations_redis.py).
    user = await create_user("admin-nocount")
    bystander = await create_user("admin-bystander")
    comm, subprotocol = await handshake("/async/", await amake_token(user))
    other, _ = await handshake("/async/", await amake_token(bystander))
    assert subprotocol == "access_token"

    with override_settings(CHANNELS_BEARER=BASE):
        messages = await sync_to_async(post_the_admin_action)(user.pk, superuser=True)
    assert messages == [
        "Closing the WebSockets of 1 user(s) on every server process (how many is known only with "
        "MAX_SOCKETS_PER_USER set and a Redis LIMITS_CACHE)."
    ]
    assert (await closed_with(comm))[0] == 4403
    assert await other.receive_nothing(0.2)  # the bystander's socket stays open
    await other.disconnect()



async def test_a_view_only_staff_member_is_not_offered_the_admin_action() -> None:
    # permissions=["change"]: closing someone's sockets needs the change permission.
    user = await create_user("admin-untouched")
    comm, subprotocol = await handshake("/async/", await amake_token(user))
    assert subprotocol == "access_token"
    with override_settings(CHANNELS_BEARER=BASE):
        messages = await sync_to_async(post_the_admin_action)(user.pk, superuser=False)
    assert not any("WebSockets" in message for message in messages), messages
    assert await comm.receive_nothing(0.2)  # still open
    await comm.disconnect()

def test_a_redis_store_keeps_nothing_of_closed_event_loops() -> None:
    # A script calling asyncio.run() (or async_to_sync from plain threads) again
    # and again makes a loop each time; the store's per-loop client and leases
    # must not pile up (on the old code: one entry per loop, for ever).
    from channels_bearer.limit_stores import RedisStore

    store = RedisStore(f"redis://127.0.0.1:{free_port()}/0")  # never reached: clients connect lazily

    async def use_it() -> None:
        store._client()
        store._held[id(asyncio.get_running_loop())] = {("user", "member"): 60.0}

    for _ in range(5):
        asyncio.run(use_it())
    assert (len(store._clients), len(store._held)) == (1, 1)
