"""Server behaviour channels-bearer depends on, pinned so a server release that
changes it fails here first, with a docstring saying what it would mean.

Most tests talk to ``tests/support/quirks_asgi.py``, a bare ASGI app that prints every
handshake it sees and reports the scope it got: that tells "the server refused
before the app ran" from "the app refused", and shows the server's own
decoding. The rest use the demo project. Measured on daphne 4.2.3 (autobahn
26.10) and uvicorn 0.54.0 with websockets 17.4 (its default ``auto`` backend).
"""

from __future__ import annotations

import re
import uuid
from typing import Any
from urllib.parse import quote

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Origin

from tests.support.backends import PASSPHRASE_PREFIX
from tests.support.handshake import MARKER, WAIT, LogWatch, raw_handshake
from tests.support.quirks_asgi import SEEN_MARK
from tests.support.servers import Server, each_server


quirks_servers, quirks = each_server("quirks_servers", "quirks", app="tests.support.quirks_asgi:application")


@pytest.fixture(scope="module")
def pat(make_user: Any) -> tuple[str, str]:
    """A user of the demo and its DRF token."""
    return "quirks-pat", make_user("quirks-pat", "drf")


def unique_path() -> str:
    return f"/q-{uuid.uuid4().hex}/"


async def app_saw(server: Server, log: LogWatch, path: str) -> bool:
    return f"{SEEN_MARK} {path}" in await log.settle()


async def test_uvicorn_refuses_raw_slash_and_equals_before_the_app(quirks: Server) -> None:
    """uvicorn answers 400 to a subprotocol value with ``/`` or ``=``; the app never sees it.

    This is why a token that is not an RFC 6455 token must travel as
    ``base64url.bearer.<...>`` even for non-browser clients behind uvicorn.
    If uvicorn starts passing such values through, raw ``/`` tokens would work
    there (browsers still refuse them, so the helper keeps encoding). daphne
    passes them on; if it starts refusing them, nothing of ours changes.

    uvicorn's 400 body quotes the whole header value, and at debug level the
    websockets library logs a traceback quoting it too: a raw token that is not
    an RFC 6455 token is echoed to the client and into debug logs before our
    code can run (docs/servers.md says so).
    """
    log = LogWatch(quirks)
    path = unique_path()
    outcome = await raw_handshake(quirks, path, headers=[("Sec-WebSocket-Protocol", f"{MARKER}, a/b=")])
    if quirks.kind == "uvicorn":
        assert outcome.status == 400, outcome
        # The 400 body quotes the header as sent: a raw token would be echoed.
        assert f"invalid Sec-WebSocket-Protocol header: expected comma at 15 in {MARKER}, a/b=".encode() in outcome.body
        assert not await app_saw(quirks, log, path)
    else:
        assert outcome.status == 101, outcome
        assert outcome.frame["subprotocols"] == [MARKER, "a/b="]


async def test_daphne_percent_decodes_subprotocol_values(quirks: Server) -> None:
    """daphne hands the app ``unquote()``-d subprotocol values: ``x%2Fy`` arrives as ``x/y``.

    The middleware therefore reads tokens that a client percent-encoded (see the
    next test) on daphne only. If daphne stops decoding, such tokens are
    refused there too, as they are on uvicorn, which hands values over as sent.
    It also means an app that echoes an offered value back verbatim answers a
    value the client never offered, which daphne hangs on: the middleware only
    ever answers the marker or an application subprotocol.
    """
    outcome = await raw_handshake(
        quirks, unique_path(), headers=[("Sec-WebSocket-Protocol", "x%2Fy, caf%C3%A9, plain")]
    )
    assert outcome.status == 101, outcome
    if quirks.kind == "daphne":
        assert outcome.frame["subprotocols"] == ["x/y", "café", "plain"]
    else:
        assert outcome.frame["subprotocols"] == ["x%2Fy", "caf%C3%A9", "plain"]


async def test_percent_encoded_token_reads_on_daphne_only(server: Server, pat: tuple[str, str]) -> None:
    """Through the demo: a percent-encoded passphrase token authenticates on daphne
    (which decodes it) and is an unknown token on uvicorn (401).

    The whoami frame shows the application subprotocols as the consumer saw them:
    decoded on daphne. If this flips, docs/servers.md's "which server does what" table
    and the lenient-decoding note of the subprotocol source must change.
    """
    username, drf = pat
    token = PASSPHRASE_PREFIX + username
    log = LogWatch(server)

    encoded = await raw_handshake(
        server, headers=[("Sec-WebSocket-Protocol", f"{MARKER}, {quote(token, safe='')}")]
    )
    beside = await raw_handshake(server, headers=[("Sec-WebSocket-Protocol", f"{MARKER}, {drf}, chat%2Fv1")])

    if server.kind == "daphne":
        assert encoded.status == 101, encoded
        assert encoded.subprotocol == MARKER
        assert (encoded.frame["user"], encoded.frame["backend"]) == (username, "tests.support.backends.PassphraseBackend")
        assert beside.frame["subprotocols"] == ["chat/v1"]
    else:
        assert encoded.status == 401, encoded
        assert encoded.headers["www-authenticate"] == 'Bearer error="invalid_token"'
        assert beside.frame["subprotocols"] == ["chat%2Fv1"]
    assert beside.subprotocol == MARKER
    await log.assert_clean(token, quote(token, safe=""), drf)


async def test_daphne_drops_accept_headers_and_has_no_denial_response(quirks: Server) -> None:
    """daphne: no ``scope["extensions"]``, ``headers`` of ``websocket.accept`` dropped,
    and a refusal can only be a close before accept, which it answers with 403.

    This is why the middleware refuses with a close on daphne (403, no
    ``WWW-Authenticate``) and with a 401 + challenge on uvicorn, which advertises
    ``websocket.http.response``. If daphne gains the extension, refusals there
    become 401/400 with a challenge automatically, and the table in docs/servers.md changes.
    """
    accepted = await raw_handshake(quirks, unique_path())
    denied = await raw_handshake(quirks, "/deny/")
    if quirks.kind == "daphne":
        assert accepted.status == 101
        assert "x-quirk" not in accepted.headers
        assert accepted.frame["extensions"] == []
        assert denied.status == 403
        assert "www-authenticate" not in denied.headers
    else:
        assert accepted.headers["x-quirk"] == "accept-header"
        assert accepted.frame["extensions"] == ["websocket.http.response"]
        assert denied.status == 401
        assert denied.headers["www-authenticate"] == "Bearer"
        assert denied.body == b"denied\n"


async def test_daphne_drops_the_close_reason(quirks: Server) -> None:
    """daphne sends a close after accept with its code but no reason.

    With ``REFUSAL = "close"`` a client on daphne gets 4401/4403/4400 and an
    empty reason: the code is the contract, the reason a hint. If daphne starts
    forwarding reasons, clients there see ``invalid_token`` as on uvicorn.
    """
    async with connect(quirks.ws("/close-after-accept/"), origin=Origin(quirks.origin), open_timeout=WAIT) as ws:
        with pytest.raises(ConnectionClosed) as closed:
            await ws.recv()
    assert closed.value.rcvd is not None
    expected_reason = "" if quirks.kind == "daphne" else "invalid_token"
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (4401, expected_reason)


async def test_repeated_protocol_header_lines_are_joined(quirks: Server) -> None:
    """Both servers join repeated ``Sec-WebSocket-Protocol`` lines into one list.

    daphne's own loop keeps only the last header line, but autobahn (26.10)
    joins repeated lines with ", " before daphne sees them, so nothing is
    lost. ``FACTS.md`` recorded "daphne keeps only the last line": if that
    comes back, a token in an earlier line is silently dropped and such a
    handshake is refused as having no token (the demo check below fails).
    """
    outcome = await raw_handshake(
        quirks, unique_path(), headers=[("Sec-WebSocket-Protocol", "one"), ("Sec-WebSocket-Protocol", "two")]
    )
    assert outcome.status == 101, outcome
    assert outcome.frame["subprotocols"] == ["one", "two"]


async def test_token_in_an_earlier_protocol_line_is_read(server: Server, pat: tuple[str, str]) -> None:
    """The demo side of the previous test: marker and token in the first line,
    the application subprotocol in the second; authenticated on both servers."""
    username, drf = pat
    outcome = await raw_handshake(
        server, headers=[("Sec-WebSocket-Protocol", f"{MARKER}, {drf}"), ("Sec-WebSocket-Protocol", "whoami.v1")]
    )
    assert outcome.status == 101, outcome
    assert outcome.subprotocol == "whoami.v1"
    assert (outcome.frame["user"], outcome.frame["subprotocols"]) == (username, ["whoami.v1"])


async def test_daphne_refuses_duplicate_offered_values(quirks: Server) -> None:
    """daphne (autobahn) answers 400 to a subprotocol list with a repeated value;
    uvicorn passes it on.

    So "the marker twice" is refused by daphne itself with 400 before our
    ``invalid_request`` (which would be 403 there): the hostile suite expects
    400 for it on daphne. If this changes, that expectation becomes 403.
    """
    log = LogWatch(quirks)
    path = unique_path()
    outcome = await raw_handshake(quirks, path, headers=[("Sec-WebSocket-Protocol", "a, b, a")])
    if quirks.kind == "daphne":
        assert outcome.status == 400, outcome
        assert not await app_saw(quirks, log, path)
    else:
        assert outcome.status == 101, outcome
        assert outcome.frame["subprotocols"] == ["a", "b", "a"]


async def test_non_ascii_subprotocol_bytes(quirks: Server) -> None:
    """A raw non-ASCII byte in ``Sec-WebSocket-Protocol``: uvicorn answers 400
    (with a debug-level traceback of the websockets library's header parser);
    daphne answers 500 and logs a ``UnicodeDecodeError`` traceback from its own
    header decoding. Neither runs the app.

    That traceback is daphne's, not ours, and holds no header text; it is why
    the hostile suite does not send raw non-ASCII subprotocols to daphne. If
    daphne starts passing such bytes on, the middleware must handle them
    (the property tests already cover non-ASCII scope values).
    """
    log = LogWatch(quirks)
    path = unique_path()
    outcome = await raw_handshake(quirks, path, headers=[("Sec-WebSocket-Protocol", b"caf\xc3\xa9")])
    text = await log.settle()
    assert f"{SEEN_MARK} {path}" not in text
    if quirks.kind == "daphne":
        assert outcome.status == 500, outcome
        assert "UnicodeDecodeError" in text
        assert "caf" not in text.split("UnicodeDecodeError", 1)[1].splitlines()[0]
    else:
        assert outcome.status == 400, outcome
        # At debug level the websockets library logs why, with a traceback.
        assert "! invalid handshake\nTraceback" in text


async def test_servers_log_raw_request_data(server: Server, pat: tuple[str, str]) -> None:
    """uvicorn logs the query string (``?access_token=``) at INFO in its access
    line, and with ``--log-level debug`` the websockets library traces every
    request header, ``Authorization`` and ``Sec-WebSocket-Protocol`` included.
    daphne logs the path only.

    These are the lines ``LogWatch`` does not hold against channels-bearer, and
    the reason docs/servers.md tells uvicorn users to keep ``query`` off and debug
    logging out of production. If uvicorn stops logging query strings, the
    W001 check's warning can soften; if daphne starts, it must mention daphne.
    """
    _, drf = pat
    log = LogWatch(server)
    await raw_handshake(server, f"/ws/whoami/?access_token={drf}")
    await raw_handshake(server, headers=[("Authorization", f"Bearer {drf}")])
    lines = [line for line in (await log.settle()).splitlines() if drf in line]
    if server.kind == "uvicorn":
        assert any(line.startswith("INFO:") and f'"WebSocket /ws/whoami/?access_token={drf}"' in line for line in lines)
        assert any(re.match(rf"DEBUG: +< authorization: Bearer {drf}$", line) for line in lines), lines
    else:
        assert lines == []


async def test_uvicorn_logs_an_error_when_the_app_returns_right_after_a_denial(
    quirks_servers: dict[str, Server],
) -> None:
    """uvicorn 0.54 logs ``ERROR: ASGI callable returned without completing
    handshake.`` when an app sends a ``websocket.http.response`` denial and
    returns at once (its sans-I/O protocol only marks the handshake complete
    in ``connection_lost``, which runs an event-loop turn later). The client
    still gets its 401.

    channels-bearer's middleware refuses exactly so, so every refused handshake
    on uvicorn writes that line (measured: one ``await asyncio.sleep(0)`` after
    the body avoids it). If this test fails, uvicorn fixed it and docs/servers.md's
    note on that log line can go.
    """
    server = quirks_servers["uvicorn"]
    log = LogWatch(server)
    outcome = await raw_handshake(server, "/deny/")
    assert outcome.status == 401
    assert "ERROR:    ASGI callable returned without completing handshake." in await log.settle()
