"""End to end in headless Chromium: the demo project under daphne and uvicorn.

What a page sees is what these tests assert: whether the socket opened, the
subprotocol the server answered (``ws.protocol``), the close code, and the
first frame of ``/ws/whoami/`` (who the server thinks the page is).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import sync_playwright

from tests.support.browser import CHROMIUM_ARGS, Accounts, log_lines_with, make_accounts, open_page, open_socket
from tests.support.encoding import b64url
from tests.support.servers import Server, require_program

pytestmark = [pytest.mark.browser, pytest.mark.server]

DRF = "channels_bearer.backends.DRFTokenBackend"
SIMPLEJWT = "channels_bearer.backends.SimpleJWTBackend"
PASSPHRASE = "tests.support.backends.PassphraseBackend"
HELPER = "/static/channels_bearer/bearer-websocket.js"
HELPER_ESM = "/static/channels_bearer/bearer-websocket.esm.js"


@pytest.fixture(scope="session")
def accounts(server_env_base: dict[str, str]) -> Accounts:
    return make_accounts(server_env_base)


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


def assert_opened_as(seen: dict[str, Any], username: str, backend: str, protocol: str = "access_token") -> None:
    assert seen["events"] == ["open", "message", "message", "close"], seen
    assert seen["protocol"] == protocol
    assert seen["frame"]["user"] == username
    assert seen["frame"]["source"] == "subprotocol"
    assert seen["frame"]["backend"] == backend
    assert seen["echo"] == "ping from the page"
    assert seen["code"] == 1000


def test_drf_token_raw(page: Any, server: Server, accounts: Accounts) -> None:
    open_page(page, server)
    # A DRF key is hex: the helper sends it as it is...
    assert page.evaluate("t => channelsBearer.protocols(t)", accounts.drf) == ["access_token", accounts.drf]
    # ...and so may a page without the helper.
    seen = open_socket(page, server, token=accounts.drf, via="raw")
    assert_opened_as(seen, accounts.username, DRF)
    assert seen["frame"]["subprotocols"] == []  # marker and token stripped


def test_simplejwt_token_raw(page: Any, server: Server, accounts: Accounts) -> None:
    open_page(page, server)
    assert page.evaluate("t => channelsBearer.protocols(t)", accounts.jwt) == ["access_token", accounts.jwt]
    seen = open_socket(page, server, token=accounts.jwt, via="raw")
    assert_opened_as(seen, accounts.username, SIMPLEJWT)
    assert seen["frame"]["expires_at"] is not None


def test_token_with_slash_equals_and_non_ascii_through_the_helper(
    page: Any, server: Server, accounts: Accounts
) -> None:
    token = accounts.passphrase
    assert "/" in token and "=" in token and not token.isascii()
    open_page(page, server)
    offered = page.evaluate("t => channelsBearer.protocols(t, ['whoami.v1'])", token)
    # The same bytes Python's base64url makes: UTF-8, URL alphabet, no padding.
    assert offered == ["access_token", "base64url.bearer." + b64url(token), "whoami.v1"]

    seen = open_socket(page, server, token=token)
    assert_opened_as(seen, accounts.passphrase_user, PASSPHRASE)
    assert token not in json.dumps(seen, ensure_ascii=False)
    assert log_lines_with(server, token, offered[1]) == []


def test_raw_non_tchar_token_throws_in_the_browser(page: Any, server: Server, accounts: Accounts) -> None:
    # Why the helper encodes: the browser refuses such a value before sending anything.
    open_page(page, server)
    seen = open_socket(page, server, token=accounts.passphrase, via="raw")
    assert seen["thrown"] == "SyntaxError"
    seen = open_socket(page, server, token="3gn11Ft0Me8lkqqW2/5uFQ=", via="raw")
    assert seen["thrown"] == "SyntaxError"


def test_wrong_token_never_opens(page: Any, server: Server) -> None:
    open_page(page, server)
    token = "wrong-token-0123456789abcdef"
    seen = open_socket(page, server, token=token)
    # uvicorn answers 401 and daphne 403; a page sees neither, only 1006.
    assert seen["events"] == ["error", "close"]
    assert seen["code"] == 1006
    assert seen["protocol"] is None and seen["frame"] is None
    assert log_lines_with(server, token) == []


def test_wrong_token_in_close_mode_gives_4401(page: Any, close_mode_server: Server) -> None:
    open_page(page, close_mode_server)
    seen = open_socket(page, close_mode_server, token="wrong-token-0123456789abcdef")
    # Accepted with the marker (or the browser would fail the handshake), then closed.
    assert seen["events"] == ["open", "close"]
    assert seen["protocol"] == "access_token"
    assert seen["code"] == 4401
    # The RFC 6750 error code as reason; daphne 4.2 drops close reasons (its
    # serverClose() sends the code only), so there a page gets the code alone.
    assert seen["reason"] == ("" if close_mode_server.kind == "daphne" else "invalid_token")


def test_close_mode_still_opens_with_a_good_token(page: Any, close_mode_server: Server, accounts: Accounts) -> None:
    open_page(page, close_mode_server)
    seen = open_socket(page, close_mode_server, token=accounts.jwt)
    assert_opened_as(seen, accounts.username, SIMPLEJWT)


def test_application_subprotocol_is_answered(page: Any, server: Server, accounts: Accounts) -> None:
    open_page(page, server)
    # whoami.v1 is declared by the demo consumer; chat.v9 is not.
    seen = open_socket(page, server, token=accounts.drf, protocols=["chat.v9", "whoami.v1"])
    assert_opened_as(seen, accounts.username, DRF, protocol="whoami.v1")
    assert seen["frame"]["subprotocols"] == ["chat.v9", "whoami.v1"]
    # Offered only an undeclared one: the marker is answered.
    seen = open_socket(page, server, token=accounts.drf, protocols=["chat.v9"])
    assert_opened_as(seen, accounts.username, DRF, protocol="access_token")


MODULE_SCRIPT = """
  import "%(helper)s";
  import bearer, {connect, protocols} from "%(esm)s";
  window.moduleCheck = {
    global: typeof globalThis.channelsBearer.connect,
    sameObject: bearer === globalThis.channelsBearer && connect === bearer.connect,
    protocols: protocols("a/b"),
  };
  const ws = connect("/ws/whoami/", %(token)s, {protocols: ["whoami.v1"]});
  ws.onmessage = (message) => { window.moduleCheck.frame = JSON.parse(message.data); ws.close(1000); };
  ws.onclose = (close) => { window.moduleCheck.code = close.code; window.moduleCheck.protocol = ws.protocol; };
"""


def test_helper_works_as_an_es_module(page: Any, server: Server, accounts: Accounts) -> None:
    # On the demo page (a real page of the server's origin: Chromium's Local
    # Network Access checks block a test-made page from opening sockets to
    # 127.0.0.1), forget the plain script's global, then import the helper as
    # a module: modules are strict, with no `this`, and fetched anew.
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    open_page(page, server)
    page.evaluate("delete globalThis.channelsBearer")
    script = MODULE_SCRIPT % {"helper": HELPER, "esm": HELPER_ESM, "token": json.dumps(accounts.drf)}
    page.add_script_tag(type="module", content=script)
    page.wait_for_function("window.moduleCheck && window.moduleCheck.code !== undefined")
    check = page.evaluate("window.moduleCheck")
    assert errors == []
    assert check["global"] == "function"
    assert check["sameObject"] is True
    assert check["protocols"] == ["access_token", "base64url.bearer." + b64url("a/b")]
    assert check.get("frame", {}).get("user") == accounts.username, check
    assert check["protocol"] == "whoami.v1"
    assert check["code"] == 1000


def test_demo_page_sign_in_shows_the_user(page: Any, server: Server, accounts: Accounts) -> None:
    console: list[str] = []
    errors: list[str] = []
    page.on("console", lambda message: console.append(f"{message.type}: {message.text}"))
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("requestfailed", lambda request: errors.append(f"request failed: {request.url}"))

    page.goto(server.http("/"))
    page.fill("#username", accounts.username)
    page.fill("#password", accounts.password)
    page.click("#sign-in")
    page.wait_for_function(
        "name => document.getElementById('whoami').textContent === name", arg=accounts.username
    )
    assert page.text_content("#status") == "open (subprotocol access_token)"
    frame = json.loads(page.text_content("#frame") or "{}")
    assert frame["backend"] == DRF and frame["source"] == "subprotocol"

    assert console == []
    assert errors == []


def test_demo_page_a_failed_sign_in_forgets_the_old_socket(page: Any, server: Server, accounts: Accounts) -> None:
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(server.http("/"))
    page.fill("#username", accounts.username)
    page.fill("#password", accounts.password)
    page.click("#sign-in")
    page.wait_for_function("name => document.getElementById('whoami').textContent === name", arg=accounts.username)

    page.fill("#password", "not the password")
    page.click("#sign-in")
    page.wait_for_function("() => document.getElementById('status').textContent.startsWith('sign-in failed')")
    # The old socket is closed: the page no longer claims who the server thinks we are.
    assert page.text_content("#whoami") == "(not connected)"
    assert page.text_content("#frame") == ""
    assert page.text_content("#status") == (
        "sign-in failed (HTTP 400): Unable to log in with provided credentials."
    )
    assert errors == []


# The optional parts of the helper: token providers and reconnect after 4401.

PROVIDER_JS = """
async ({url, tokens}) => {
  let calls = 0;
  const provider = async () => tokens[Math.min(calls++, tokens.length - 1)];
  const ws = await channelsBearer.open(url, provider, {protocols: ["whoami.v1"]});
  return await new Promise((resolve) => {
    ws.onmessage = (message) => ws.close(1000);
    ws.onclose = (close) => resolve({calls, code: close.code, protocol: ws.protocol});
  });
}
"""

RECONNECT_JS = """
async ({url, tokens, maxReconnects}) => new Promise((resolve) => {
  let calls = 0;
  const seen = {events: [], frames: [], reconnects: []};
  const socket = channelsBearer.reconnecting(url, () => {
    const token = tokens[Math.min(calls++, tokens.length - 1)];
    return calls % 2 ? token : Promise.resolve(token);  // both provider kinds
  }, {maxReconnects, reconnectDelay: 0, protocols: ["whoami.v1"]});
  const guard = setTimeout(() => resolve({...seen, timeout: true}), 10000);
  socket.onopen = () => seen.events.push("open:" + socket.protocol);
  socket.addEventListener("message", (message) => {
    seen.events.push("message");
    seen.frames.push(JSON.parse(message.data).user);
    socket.close(1000);
  });
  socket.addEventListener("reconnect", (event) => {
    seen.events.push("reconnect");
    seen.reconnects.push(event.detail);
  });
  socket.onclose = (close) => {
    seen.events.push("close");
    clearTimeout(guard);
    resolve({...seen, calls, code: close.code, readyState: socket.readyState});
  };
})
"""


@pytest.mark.parametrize(("protocols", "answered"), [([], ""), (["whoami.v1"], "whoami.v1")])
def test_first_message_authentication_through_the_helper(
    page: Any, server: Server, accounts: Accounts, protocols: list[str], answered: str
) -> None:
    open_page(page, server)
    seen = open_socket(page, server, token=accounts.jwt, via="helper-message", protocols=protocols, path="/ws/whoami-message/")
    # The page's own onopen ran after the helper sent the authenticate frame;
    # the first frame the page gets is the greeting, the second its echo.
    assert seen["events"] == ["open", "message", "message", "close"], seen
    assert seen["protocol"] == answered
    assert seen["frame"]["user"] == accounts.username
    assert seen["frame"]["source"] == "message"
    assert seen["frame"]["backend"] == SIMPLEJWT
    assert seen["frame"]["subprotocols"] == protocols  # the token was never in the list
    assert seen["echo"] == "ping from the page"
    assert seen["code"] == 1000
    assert log_lines_with(server, accounts.jwt) == []


def test_first_message_with_a_bad_token_closes_4401_in_the_page(page: Any, server: Server) -> None:
    open_page(page, server)
    seen = open_socket(page, server, token="f" * 40, via="helper-message", path="/ws/whoami-message/")
    assert seen["events"] == ["open", "close"], seen
    assert seen["code"] == 4401


def test_the_helper_refuses_an_unknown_via(page: Any, server: Server, accounts: Accounts) -> None:
    open_page(page, server)
    thrown = page.evaluate(
        "t => { try { channelsBearer.connect('/ws/whoami/', t, {via: 'carrier-pigeon'}); } catch (e) { return e.name + ': ' + e.message; } }",
        accounts.drf,
    )
    assert thrown.startswith("TypeError: channelsBearer: options.via must be one of subprotocol, message")


def test_open_with_an_async_token_provider(page: Any, server: Server, accounts: Accounts) -> None:
    open_page(page, server)
    seen = page.evaluate(PROVIDER_JS, {"url": "/ws/whoami/", "tokens": [accounts.passphrase]})
    assert seen == {"calls": 1, "code": 1000, "protocol": "whoami.v1"}
    # connect() returns a WebSocket, so it cannot wait for a Promise: it says what to use.
    message = page.evaluate(
        """() => { try { channelsBearer.connect("/ws/whoami/", async () => "t"); }
                   catch (error) { return error.name + ": " + error.message; } }"""
    )
    assert message.startswith("TypeError: channelsBearer: the token provider returned a Promise")


def test_reconnects_with_a_fresh_token_after_4401(
    page: Any, close_mode_server: Server, accounts: Accounts
) -> None:
    open_page(page, close_mode_server)
    seen = page.evaluate(
        RECONNECT_JS,
        {"url": "/ws/whoami/", "tokens": ["expired-0123456789abcdef", accounts.drf], "maxReconnects": 3},
    )
    assert not seen.get("timeout"), seen
    assert seen["events"] == ["open:access_token", "reconnect", "open:whoami.v1", "message", "close"]
    assert seen["reconnects"] == [{"attempt": 1, "code": 4401}]
    assert seen["frames"] == [accounts.username]
    assert seen["calls"] == 2
    assert seen["code"] == 1000
    assert seen["readyState"] == 3


def test_reconnect_gives_up_on_a_token_that_keeps_failing(page: Any, close_mode_server: Server) -> None:
    open_page(page, close_mode_server)
    seen = page.evaluate(
        RECONNECT_JS, {"url": "/ws/whoami/", "tokens": ["still-wrong-0123456789abcdef"], "maxReconnects": 2}
    )
    assert not seen.get("timeout"), seen
    assert seen["events"] == ["open:access_token", "reconnect"] * 2 + ["open:access_token", "close"]
    assert [r["attempt"] for r in seen["reconnects"]] == [1, 2]
    assert seen["calls"] == 3
    assert seen["code"] == 4401
