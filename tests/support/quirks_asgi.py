"""A bare ASGI app that reports what the server handed it, for tests/integration/test_server_quirks.py.

No Django, no channels-bearer: it shows the server's own behaviour. Every
WebSocket handshake it sees is printed (path only) to the server log, then
accepted with a response header of its own, and the first text frame tells
the client what the app saw::

    {"path": ..., "subprotocols": [...], "extensions": [...], "headers": [[name, value], ...]}

``/deny/`` answers with a ``websocket.http.response`` 401 where the server
advertises the extension, and with a close before accept elsewhere.
``/close-after-accept/`` accepts, then closes with 4401 and a reason.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

Message = dict[str, Any]

#: Printed with the path of every handshake the app sees: a test looks for it
#: to tell "the server refused before the app ran" from "the app refused".
SEEN_MARK = "quirks-app-saw"


async def application(
    scope: dict[str, Any],
    receive: Callable[[], Awaitable[Message]],
    send: Callable[[Message], Awaitable[None]],
) -> None:
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    if scope["type"] != "websocket":
        await send({"type": "http.response.start", "status": 404, "headers": []})
        await send({"type": "http.response.body", "body": b""})
        return
    print(f"{SEEN_MARK} {scope['path']}", flush=True)
    if (await receive())["type"] != "websocket.connect":
        return
    extensions = sorted(scope.get("extensions") or {})
    if scope["path"] == "/deny/":
        if "websocket.http.response" in extensions:
            await send(
                {
                    "type": "websocket.http.response.start",
                    "status": 401,
                    "headers": [(b"www-authenticate", b"Bearer")],
                }
            )
            await send({"type": "websocket.http.response.body", "body": b"denied\n"})
        else:
            await send({"type": "websocket.close", "code": 4401})
        return
    if scope["path"] == "/close-after-accept/":
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.close", "code": 4401, "reason": "invalid_token"})
        return
    offered = [str(entry) for entry in scope.get("subprotocols") or ()]
    # No subprotocol answered: daphne hangs the handshake when the answer is not
    # the raw offered value, and it hands the app percent-decoded values.
    await send({"type": "websocket.accept", "subprotocol": None, "headers": [(b"x-quirk", b"accept-header")]})
    report = {
        "path": scope["path"],
        "subprotocols": offered,
        "extensions": extensions,
        "headers": [[name.decode("latin-1"), value.decode("latin-1")] for name, value in scope["headers"]],
    }
    await send({"type": "websocket.send", "text": json.dumps(report)})
    while (await receive())["type"] != "websocket.disconnect":
        pass
