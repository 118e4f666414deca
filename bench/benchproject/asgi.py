"""The benchmark's ASGI app: one websocket stack per server, picked by BENCH_CONFIG["stack"].

* ``noauth``: no authentication middleware at all (the limit);
* ``bearer``: channels-bearer's ``BearerAuthMiddlewareStack``;
* ``peer-drf`` / ``peer-jwt``: channels-auth-token-middlewares' DRF token or
  SimpleJWT stack (header ``Authorization: Token|Bearer <token>``, or ``?token=``).

All are wrapped in ``AllowedHostsOriginValidator`` as the contract's wiring is,
and route ``/ws/`` to the same consumer: accept, send the username in one text
frame, wait. ``BENCH_CONFIG["consumer"] = "mixin"`` uses ``BearerConsumerMixin``
instead (groups for revocation, expiry timer). HTTP ``/bench/stats`` answers
``{"queries": <SQL statements run so far>, "connections": <database connections
opened so far>}`` without touching Django.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchproject.settings")

from django.core.asgi import get_asgi_application  # noqa: E402

django_asgi_app = get_asgi_application()

from channels.generic.websocket import AsyncWebsocketConsumer  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.conf import settings  # noqa: E402
from django.urls import path  # noqa: E402

from benchproject import counting  # noqa: E402
from channels_bearer.consumers import BearerConsumerMixin  # noqa: E402


def _username(scope: dict[str, Any]) -> str:
    user = scope.get("user")
    return user.get_username() if user is not None and user.is_authenticated else "-"


class PlainConsumer(AsyncWebsocketConsumer):
    async def connect(self) -> None:
        subprotocols = self.scope.get("subprotocols") or []
        # Without the middleware nobody strips the marker; answer what was offered.
        await self.accept(subprotocols[0] if subprotocols and settings.BENCH_CONFIG.get("stack") == "noauth" else None)
        await self.send(text_data=_username(self.scope))


class MixinConsumer(BearerConsumerMixin, AsyncWebsocketConsumer):
    async def connect(self) -> None:
        await self.accept()
        await self.send(text_data=_username(self.scope))


async def stats_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    body = json.dumps({"queries": counting.queries(), "connections": counting.connections(), "pid": os.getpid()}).encode()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


async def http_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["path"] == "/bench/stats":
        return await stats_app(scope, receive, send)
    return await django_asgi_app(scope, receive, send)


def websocket_stack() -> Any:
    config = settings.BENCH_CONFIG
    consumer = MixinConsumer if config.get("consumer") == "mixin" else PlainConsumer
    router = URLRouter([path("ws/", consumer.as_asgi())])
    stack = config.get("stack", "bearer")
    if stack == "noauth":
        return router
    if stack == "bearer":
        from channels_bearer.middleware import BearerAuthMiddlewareStack

        return BearerAuthMiddlewareStack(router)
    if stack == "peer-drf":
        from channels_auth_token_middlewares.middleware import DRFAuthTokenMiddlewareStack

        return DRFAuthTokenMiddlewareStack(router)
    if stack == "peer-jwt":
        from channels_auth_token_middlewares.middleware import SimpleJWTAuthTokenMiddlewareStack

        return SimpleJWTAuthTokenMiddlewareStack(router)
    raise ValueError(f"unknown BENCH_CONFIG stack {stack!r}")


application = ProtocolTypeRouter({"http": http_app, "websocket": AllowedHostsOriginValidator(websocket_stack())})
