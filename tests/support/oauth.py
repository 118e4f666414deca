"""OAuth 2.0 helpers: django-oauth-toolkit tokens, and a real uvicorn with a scope-requiring consumer.

``uvicorn --factory tests.support.oauth:application`` (see ``start_scoped_server``)
runs ``BearerAuthMiddlewareStack`` around ``/ws/scoped/``, a consumer with
``bearer_scopes = ["chat:read"]``, on the servers' settings plus
``oauth2_provider``, a fresh SQLite file, and the users and toolkit tokens
listed in the ``SCOPED_FIXTURES`` environment variable (JSON).
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import secrets
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

from channels.generic.websocket import AsyncJsonWebsocketConsumer

from channels_bearer.consumers import BearerConsumerMixin
from tests.support.servers import ROOT, Server, free_port, server_env, wait_for_port

SCOPED_PATH = "/ws/scoped/"
REQUIRED_SCOPE = "chat:read"


class ScopedConsumer(BearerConsumerMixin, AsyncJsonWebsocketConsumer):
    """Needs a token with ``chat:read``; reports what it saw."""

    bearer_scopes = [REQUIRED_SCOPE]

    async def connect(self) -> None:
        await self.accept()
        bearer = self.bearer
        assert bearer is not None
        await self.send_json(
            {"user": self.scope["user"].get_username(), "scopes": sorted(bearer.scopes), "claims": _jsonable(bearer.claims)}
        )


def _jsonable(claims: dict[str, Any]) -> dict[str, Any]:
    return {k: v if isinstance(v, (str, int, float, bool, list, type(None))) else str(v) for k, v in claims.items()}


def make_application(name: str = "chat-app", user: Any = None) -> Any:
    from oauth2_provider.models import get_application_model

    application_model = get_application_model()
    return application_model.objects.create(
        name=name,
        user=user,
        client_type=application_model.CLIENT_CONFIDENTIAL,
        authorization_grant_type=application_model.GRANT_AUTHORIZATION_CODE,
        redirect_uris="https://client.example/callback",
    )


def make_access_token(
    user: Any, application: Any, *, scope: str = "read", expires_in: float = 3600, token: str | None = None
) -> str:
    """An access token row as the toolkit's token endpoint saves it; returns the token."""
    from django.utils import timezone
    from oauth2_provider.models import get_access_token_model, set_token_value

    raw = token or secrets.token_urlsafe(30)
    access_token = get_access_token_model()(
        user=user, application=application, scope=scope, expires=timezone.now() + timedelta(seconds=expires_in)
    )
    set_token_value(access_token, raw)  # honours COMPLIANT_BCP_RFC9700_TOKEN_STORAGE
    access_token.save()
    return raw


def application() -> Any:
    """The ASGI app of the scoped server (``uvicorn --factory``)."""
    import django
    from django.conf import settings

    if "oauth2_provider" not in settings.INSTALLED_APPS:
        settings.INSTALLED_APPS = [*settings.INSTALLED_APPS, "oauth2_provider"]
    django.setup()

    from channels.routing import ProtocolTypeRouter, URLRouter
    from django.core.asgi import get_asgi_application
    from django.core.management import call_command
    from django.urls import path

    from channels_bearer.middleware import BearerAuthMiddlewareStack

    def prepare() -> None:
        call_command("migrate", verbosity=0, interactive=False)
        _load_fixtures(json.loads(os.environ.get("SCOPED_FIXTURES", "{}")))

    # uvicorn calls the factory on its event loop, where Django refuses ORM calls.
    with concurrent.futures.ThreadPoolExecutor(1) as executor:
        executor.submit(prepare).result()
    return ProtocolTypeRouter(
        {
            "http": get_asgi_application(),
            "websocket": BearerAuthMiddlewareStack(URLRouter([path(SCOPED_PATH.strip("/") + "/", ScopedConsumer.as_asgi())])),
        }
    )


def _load_fixtures(fixtures: dict[str, Any]) -> None:
    from django.contrib.auth import get_user_model

    users = {}
    for spec in fixtures.get("users", []):
        users[spec["username"]] = get_user_model().objects.create_user(username=spec["username"], id=spec["id"])
    if fixtures.get("oauth_tokens"):
        app = make_application()
        for spec in fixtures["oauth_tokens"]:
            make_access_token(users[spec["user"]], app, scope=spec["scope"], token=spec["token"])


def start_scoped_server(tmp_dir: Path, *, settings: dict[str, Any], fixtures: dict[str, Any]) -> Server:
    """A uvicorn process running :func:`application` on a free port."""
    port = free_port()
    env = server_env(
        tmp_dir / "scoped.sqlite3",
        BEARER_TEST_SETTINGS=json.dumps(settings),
        SCOPED_FIXTURES=json.dumps(fixtures),
    )
    log_path = tmp_dir / f"uvicorn-scoped-{port}.log"
    command = [
        sys.executable, "-m", "uvicorn", "--factory", "--host", "127.0.0.1", "--port", str(port),
        "--log-level", "debug", "tests.support.oauth:application",
    ]  # fmt: skip
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log_path.open("wb"), stderr=subprocess.STDOUT)
    server = Server("uvicorn", port, process, log_path, env)
    try:
        wait_for_port(port, process, "uvicorn", timeout=60)
    except RuntimeError as exc:
        server.stop()
        raise RuntimeError(f"{exc}:\n{server.log()}") from None
    return server


def simplejwt_token(user_id: int, scope: str) -> str:
    """A SimpleJWT access token for ``user_id`` carrying ``scope``."""
    from rest_framework_simplejwt.tokens import AccessToken

    token = AccessToken()
    token["user_id"] = str(user_id)
    token["scope"] = scope
    return str(token)
