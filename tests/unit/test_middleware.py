"""What the inner application sees, and the subprotocol the middleware answers."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

import pytest
from asgiref.testing import ApplicationCommunicator
from channels.db import database_sync_to_async
from channels.testing import HttpCommunicator
from django.contrib.auth.models import AnonymousUser
from django.test import override_settings
from rest_framework_simplejwt.tokens import AccessToken

from channels_bearer.identity import token_hash_id
from channels_bearer.middleware import BearerAuthMiddleware, BearerAuthMiddlewareStack
from tests.support.tokens import BOTH_BACKENDS
from tests.support.apps import (
    websocket_scope,
    SEEN,
    assert_secret_absent,
    build_app,
    communicator,
    consumer_ran,
    RecordingConsumer,
)
from tests.support.encoding import encoded_entry

pytestmark = pytest.mark.django_db(transaction=True)


async def connect(app: Any = None, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
    """Connect; return (answered subprotocol, what the consumer saw)."""
    comm = communicator(app or build_app(), **kwargs)
    connected, subprotocol = await comm.connect()
    assert connected, f"refused with {subprotocol}"
    await comm.disconnect()
    return subprotocol, next(entry for entry in SEEN if entry["event"] == "connect")


# --- scope["subprotocols"], scope["user"], scope["bearer"] --------------------------


@pytest.mark.parametrize("encode", [False, True], ids=["raw", "base64url"])
async def test_marker_and_token_stripped(alice: Any, token: str, encode: bool) -> None:
    entry = encoded_entry(token) if encode else token
    _, seen = await connect(subprotocols=["graphql-ws", "access_token", entry, "chat.v2"])
    assert seen["subprotocols"] == ["graphql-ws", "chat.v2"]
    assert seen["user"] == alice


async def test_bearer_for_drf_token(alice: Any, token: str) -> None:
    _, seen = await connect(headers=[(b"authorization", b"Bearer " + token.encode())])
    bearer = seen["bearer"]
    assert bearer.user == alice
    assert bearer.source == "header"
    assert bearer.backend == "channels_bearer.backends.DRFTokenBackend"
    assert bearer.expires_at is None
    assert bearer.claims == {}
    assert bearer.token_id == token_hash_id(token)
    assert token not in bearer.token_id
    assert token not in repr(bearer)
    assert token not in str(bearer)


async def test_bearer_backend_is_the_configured_path(alice: Any, token: str) -> None:
    # Not the class's canonical path: the one written in the setting.
    path = "channels_bearer.backends.drf.DRFTokenBackend"
    with override_settings(CHANNELS_BEARER={"BACKENDS": [path]}):
        _, seen = await connect(subprotocols=["access_token", token])
    assert seen["bearer"].backend == path


async def test_bearer_for_jwt(alice: Any) -> None:
    access = await database_sync_to_async(AccessToken.for_user)(alice)
    token = str(access)
    with override_settings(CHANNELS_BEARER=BOTH_BACKENDS):
        _, seen = await connect(subprotocols=["access_token", token])
    bearer = seen["bearer"]
    assert seen["user"] == alice
    assert bearer.source == "subprotocol"
    assert bearer.backend == "channels_bearer.backends.SimpleJWTBackend"
    assert isinstance(bearer.expires_at, datetime)
    assert bearer.expires_at.utcoffset() is not None
    assert bearer.expires_at == datetime.fromtimestamp(access["exp"], tz=timezone.utc)
    assert bearer.claims["jti"] == access["jti"]
    assert bearer.token_id == access["jti"]
    assert token not in repr(bearer)


async def test_no_token_anonymous() -> None:
    subprotocol, seen = await connect(subprotocols=["chat"])
    assert isinstance(seen["user"], AnonymousUser)
    assert seen["bearer"] is None
    assert seen["subprotocols"] == ["chat"]
    assert subprotocol is None



class EchoingConsumer(RecordingConsumer):
    """No mixin, like RecordingConsumer; echoes each text frame."""

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        await self.send(text_data=f"echo:{text_data}")


async def test_without_the_mixin_the_message_source_leaves_the_frame_to_the_consumer(token: str) -> None:
    # What the README says a consumer without BearerConsumerMixin gets with the
    # "message" source: AnonymousUser, and the authenticate frame as any other.
    with override_settings(CHANNELS_BEARER={**BOTH_BACKENDS, "SOURCES": ["subprotocol", "header", "message"]}):
        comm = communicator(build_app(("ws/", EchoingConsumer.as_asgi())))
        assert await comm.connect() == (True, None)
        frame = json.dumps({"type": "bearer.authenticate", "token": token})
        await comm.send_to(text_data=frame)
        assert await comm.receive_from() == f"echo:{frame}"
        await comm.disconnect()
    seen = next(entry for entry in SEEN if entry["event"] == "connect")
    assert isinstance(seen["user"], AnonymousUser) and seen["bearer"] is None

def outer_user_app(inner: Any, user: Any) -> Any:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> Any:
        return await inner({**scope, "user": user}, receive, send)

    return app


async def test_no_token_keeps_outer_user(alice: Any, user_factory: Any, token: str) -> None:
    session_user = await database_sync_to_async(user_factory)("session-user")
    app = outer_user_app(build_app(), session_user)
    _, seen = await connect(app)
    assert seen["user"] == session_user
    assert seen["bearer"] is None
    # A presented token wins over the outer middleware's user.
    SEEN.clear()
    _, seen = await connect(app, subprotocols=["access_token", token])
    assert seen["user"] == alice


async def test_outer_scope_not_mutated(token: str) -> None:
    comm = communicator(build_app(), "/ws/?x=1", subprotocols=["access_token", token])
    assert (await comm.connect())[0]
    await comm.disconnect()
    assert comm.scope["subprotocols"] == ["access_token", token]
    assert "bearer" not in comm.scope and "user" not in comm.scope


async def test_http_scope_passes_through_untouched() -> None:
    received: list[dict[str, Any]] = []

    async def http_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        received.append(scope)
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    comm = HttpCommunicator(
        BearerAuthMiddlewareStack(http_app),
        "GET",
        "/?access_token=abc",
        headers=[(b"authorization", b"Bearer abc")],
    )
    response = await comm.get_response()
    assert response["status"] == 204
    [scope] = received
    assert scope is comm.scope
    assert "user" not in scope and "bearer" not in scope
    assert scope["query_string"] == b"access_token=abc"


def test_stack_builds_the_middleware() -> None:
    assert isinstance(BearerAuthMiddlewareStack(RecordingConsumer.as_asgi()), BearerAuthMiddleware)


# --- the answered subprotocol -------------------------------------------------------


def answering(answer: str | None, headers: list[tuple[bytes, bytes]] | None = None) -> Any:
    return build_app(("ws/", RecordingConsumer.as_asgi(answer=answer, answer_headers=headers or ())))


async def test_marker_answered_when_offered(token: str, debug_logs: pytest.LogCaptureFixture) -> None:
    app = answering(None)
    subprotocol, _ = await connect(app, subprotocols=["access_token", token])
    assert subprotocol == "access_token"
    assert_secret_absent(token, debug_logs, app)


async def test_offered_app_subprotocol_answered(token: str) -> None:
    subprotocol, seen = await connect(answering("chat.v2"), subprotocols=["chat.v2", "access_token", token])
    assert subprotocol == "chat.v2"
    assert seen["subprotocols"] == ["chat.v2"]


@pytest.mark.parametrize("answer", ["TOKEN", "access_token", "not-offered"])
async def test_any_other_answer_becomes_the_marker(token: str, answer: str, debug_logs: Any) -> None:
    app = answering(token if answer == "TOKEN" else answer)
    subprotocol, _ = await connect(app, subprotocols=["chat", "access_token", token])
    assert subprotocol == "access_token"
    assert_secret_absent(token, debug_logs, app)


async def test_token_in_accept_headers_dropped(token: str, debug_logs: Any) -> None:
    app = answering(None, [(b"Sec-WebSocket-Protocol", token.encode()), (b"x-kept", b"1")])
    subprotocol, _ = await connect(app, subprotocols=["access_token", encoded_entry(token)])
    assert subprotocol == "access_token"
    [accept] = app.of_type("websocket.accept")
    assert accept["headers"] == [(b"x-kept", b"1")]
    assert_secret_absent(token, debug_logs, app)


async def test_answer_untouched_without_marker(token: str) -> None:
    # A header token: the client offered no marker, so nothing is filled in.
    app = answering("chat")
    subprotocol, _ = await connect(
        app, subprotocols=["chat"], headers=[(b"authorization", b"Bearer " + token.encode())]
    )
    assert subprotocol == "chat"


# --- refusal on the wire ------------------------------------------------------------


async def handshake(app: Any, scope_extra: dict[str, Any]) -> list[dict[str, Any]]:
    """Drive the app with a raw ASGI scope; return what it sent."""
    comm = ApplicationCommunicator(app, websocket_scope(**scope_extra))
    await comm.send_input({"type": "websocket.connect"})
    await comm.wait(timeout=2)
    return list(app.sent)


@pytest.mark.parametrize(
    ("subprotocols", "status", "challenge"),
    [
        (["access_token", "f" * 40], 401, b'Bearer error="invalid_token"'),
        (["access_token"], 400, b'Bearer error="invalid_request"'),
    ],
)
async def test_denial_response_where_the_server_supports_it(
    subprotocols: list[str], status: int, challenge: bytes, debug_logs: Any
) -> None:
    app = build_app()
    sent = await handshake(app, {"subprotocols": subprotocols, "extensions": {"websocket.http.response": {}}})
    start, body = sent
    assert start["type"] == "websocket.http.response.start"
    assert start["status"] == status
    assert (b"www-authenticate", challenge) in start["headers"]
    assert body["type"] == "websocket.http.response.body"
    assert not consumer_ran()
    assert_secret_absent("f" * 40, debug_logs, app)


@pytest.mark.parametrize(
    ("subprotocols", "code", "reason"),
    [
        (["access_token", "f" * 40], 4401, "invalid_token"),
        (["access_token", "f" * 40, "access_token"], 4400, "invalid_request"),
    ],
)
async def test_close_mode_accepts_with_marker_then_closes(
    subprotocols: list[str], code: int, reason: str, debug_logs: Any
) -> None:
    app = build_app()
    with override_settings(CHANNELS_BEARER={"REFUSAL": "close"}):
        comm = communicator(app, subprotocols=subprotocols)
        connected, subprotocol = await comm.connect()
        assert (connected, subprotocol) == (True, "access_token")
        closed = await comm.receive_output()
        await comm.wait()
    assert closed == {"type": "websocket.close", "code": code, "reason": reason}
    assert not consumer_ran()
    assert_secret_absent("f" * 40, debug_logs, app)


async def test_close_mode_without_marker_accepts_with_no_subprotocol(token: str) -> None:
    with override_settings(CHANNELS_BEARER={"REFUSAL": "close"}):
        comm = communicator(build_app(), headers=[(b"authorization", b"Bearer " + b"f" * 40)])
        assert await comm.connect() == (True, None)
        assert (await comm.receive_output())["code"] == 4401


def test_challenge_names_required_scopes_but_never_unsafe_text() -> None:
    from channels_bearer.exceptions import InsufficientScope, InvalidToken
    from channels_bearer.refusal import challenge

    assert challenge(None) == b"Bearer"
    assert challenge(InvalidToken("expired")) == b'Bearer error="invalid_token"'
    scoped = InsufficientScope("missing", required=("chat:read", "chat:write"))
    assert challenge(scoped) == b'Bearer error="insufficient_scope", scope="chat:read chat:write"'
    # A scope that would break the quoted-string is left out rather than escaped.
    assert challenge(InsufficientScope("missing", required=('a"b', "ok"))) == (
        b'Bearer error="insufficient_scope", scope="ok"'
    )
