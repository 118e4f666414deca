"""Page scripts and accounts for the headless Chromium tests (tests/integration/test_browser.py).

Chromium is Debian's, driven through Playwright's Python package (no browser
download). The pages are the demo project's, served by the real daphne and
uvicorn processes of tests/integration/conftest.py.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from tests.support.backends import PASSPHRASE_PREFIX
from tests.support.servers import Server, manage

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
      : via === "helper-message"
        ? channelsBearer.connect(url, token, {protocols, via: "message"})
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


def make_accounts(server_env_base: dict[str, str]) -> Accounts:
    # One `manage.py shell` for every user and token: each manage.py start
    # costs about a second, and the browser suite has a budget.
    username, passphrase_user = "browser-alice", "browser-bob"
    script = (
        "import json\n"
        "from django.contrib.auth import get_user_model\n"
        "from channels_bearer.testing.tokens import make_token\n"
        "User = get_user_model()\n"
        f"alice, _ = User.objects.get_or_create(username={username!r})\n"
        f"alice.set_password({DEMO_PASSWORD!r}); alice.save()\n"
        f"User.objects.get_or_create(username={passphrase_user!r})\n"
        "print(json.dumps({'drf': make_token(alice, 'drf'), 'jwt': make_token(alice, 'jwt')}))\n"
    )
    tokens = json.loads(manage(server_env_base, "shell", "-c", script).stdout.strip().splitlines()[-1])
    return Accounts(username, DEMO_PASSWORD, tokens["drf"], tokens["jwt"], passphrase_user)


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
        # tests.support.backends.PassphraseBackend: "/", "=", a space and non-ASCII.
        return PASSPHRASE_PREFIX + self.passphrase_user


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
