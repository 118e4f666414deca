"""Fixtures and page scripts for the headless Chromium tests (tests/test_browser.py).

One Chromium per test session (Debian's, through Playwright's Python package:
no browser download), a fresh context per test. The pages are the demo
project's, served by the real daphne and uvicorn processes of tests/conftest.py,
plus two more of each started with ``REFUSAL = "close"``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import sync_playwright

from tests.backends import PASSPHRASE_PREFIX
from tests.conftest import require_program
from tests.servers import SERVER_KINDS, Server, manage, start_server

# Flags that keep a CI container's Chromium quiet and offline.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

DEMO_PASSWORD = "correct horse battery staple"

# Opens one socket in the page and reports what the page saw. `via` is
# "raw" (new WebSocket(url, protocols)) or "helper" (channelsBearer.connect).
# On the first frame it sends one text frame, waits for its echo and closes
# with 1000. The 10 s guard only keeps a broken server from hanging the suite.
OPEN_SOCKET_JS = """
async ({url, via, token, protocols}) => new Promise((resolve) => {
  const seen = {events: [], protocol: null, frame: null, echo: null, code: null, reason: null};
  let ws;
  try {
    ws = via === "helper"
      ? channelsBearer.connect(url, token, {protocols})
      : new WebSocket(url, protocols);
  } catch (error) {
    resolve({thrown: error.name, message: String(error.message)});
    return;
  }
  const guard = setTimeout(() => resolve({...seen, timeout: true}), 10000);
  ws.onopen = () => { seen.events.push("open"); seen.protocol = ws.protocol; };
  ws.onerror = () => seen.events.push("error");
  ws.onmessage = (message) => {
    seen.events.push("message");
    if (seen.frame === null) {
      seen.frame = JSON.parse(message.data);
      ws.send("ping from the page");
    } else {
      seen.echo = message.data;
      ws.close(1000);
    }
  };
  ws.onclose = (close) => {
    seen.events.push("close");
    seen.code = close.code;
    seen.reason = close.reason;
    clearTimeout(guard);
    resolve(seen);
  };
})
"""


@dataclass(frozen=True)
class Accounts:
    """Users in the servers' database, and their tokens (made once per session)."""

    username: str
    password: str
    drf: str
    jwt: str
    passphrase_user: str

    @property
    def passphrase(self) -> str:
        # tests.backends.PassphraseBackend: "/", "=", a space and non-ASCII.
        return PASSPHRASE_PREFIX + self.passphrase_user


@pytest.fixture(scope="session")
def accounts(server_env_base: dict[str, str]) -> Accounts:
    # One `manage.py shell` for every user and token: each manage.py start
    # costs about a second, and the browser suite has a budget.
    username, passphrase_user = "browser-alice", "browser-bob"
    script = (
        "import json\n"
        "from django.contrib.auth import get_user_model\n"
        "from channels_bearer.tokens import make_token\n"
        "User = get_user_model()\n"
        f"alice, _ = User.objects.get_or_create(username={username!r})\n"
        f"alice.set_password({DEMO_PASSWORD!r}); alice.save()\n"
        f"User.objects.get_or_create(username={passphrase_user!r})\n"
        "print(json.dumps({'drf': make_token(alice, 'drf'), 'jwt': make_token(alice, 'jwt')}))\n"
    )
    tokens = json.loads(manage(server_env_base, "shell", "-c", script).stdout.strip().splitlines()[-1])
    return Accounts(username, DEMO_PASSWORD, tokens["drf"], tokens["jwt"], passphrase_user)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One headless Chromium per module.

    Not per session: Playwright's sync API keeps an event loop running on the
    main thread while it is open, and every later test that calls
    ``asyncio.run()`` (or runs an async test) would fail.
    """
    # Debian's chromium, never a downloaded one; under CI=true a missing one fails.
    executable = require_program("chromium")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS, headless=True)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context()
    context.set_default_timeout(15_000)
    yield context.new_page()
    context.close()


@pytest.fixture(scope="module")
def close_mode_servers(server_env_base: dict[str, str], server_logs: Path) -> Iterator[dict[str, Server]]:
    """daphne and uvicorn with ``REFUSAL = "close"``: refusals are accept, then close 4401/4403/4400."""
    servers: dict[str, Server] = {}
    try:
        for kind in SERVER_KINDS:
            servers[kind] = start_server(kind, server_env_base, server_logs, settings={"REFUSAL": "close"})
        yield servers
    finally:
        for server in servers.values():
            server.stop()


@pytest.fixture(params=SERVER_KINDS)
def close_mode_server(request: pytest.FixtureRequest, close_mode_servers: dict[str, Server]) -> Server:
    found = close_mode_servers[request.param]
    assert found.alive(), f"{found.kind} died:\n{found.log()}"
    return found


def open_page(page: Any, server: Server) -> Any:
    """The demo page, which loads bearer-websocket.js as a plain script: a page on the server's origin."""
    response = page.goto(server.http("/"))
    assert response is not None and response.status == 200
    page.wait_for_function("typeof globalThis.channelsBearer === 'object'")
    return page


def open_socket(
    page: Any,
    server: Server,
    *,
    token: str,
    via: str = "helper",
    protocols: list[str] | None = None,
    path: str = "/ws/whoami/",
) -> dict[str, Any]:
    """Open a socket from ``page`` and return what the page saw (see OPEN_SOCKET_JS)."""
    if via == "raw" and protocols is None:
        protocols = ["access_token", token]
    seen: dict[str, Any] = page.evaluate(
        OPEN_SOCKET_JS, {"url": server.ws(path), "via": via, "token": token, "protocols": protocols or []}
    )
    assert not seen.get("timeout"), f"no close within 10 s: {seen}\n{server.log()[-3000:]}"
    return seen


def log_lines_with(server: Server, *secrets: str) -> list[str]:
    """Server log lines that hold any of ``secrets``.

    Skips uvicorn's wire dump (``DEBUG:    < header: value``): the tests run
    it at debug level, where the websockets library logs every request
    header; that is the server's setting, not something this package logs.
    """
    return [
        line
        for line in server.log().splitlines()
        if not line.startswith(("DEBUG:    < ", "DEBUG:    > ")) and any(secret in line for secret in secrets)
    ]
