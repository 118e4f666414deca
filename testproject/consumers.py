from __future__ import annotations

from typing import Any

from channels.generic.websocket import AsyncJsonWebsocketConsumer

from channels_bearer.consumers import BearerConsumerMixin


class WhoAmIConsumer(BearerConsumerMixin, AsyncJsonWebsocketConsumer):
    """Tells the client who the server thinks it is, then echoes text frames."""

    app_subprotocols = ["whoami.v1"]

    async def connect(self) -> None:
        await self.accept()
        bearer = self.bearer
        assert bearer is not None  # bearer_required refused anonymous handshakes
        await self.send_json(
            {
                "user": self.scope["user"].get_username(),
                "source": bearer.source,
                "backend": bearer.backend,
                "token_id": bearer.token_id,
                "expires_at": bearer.expires_at.isoformat() if bearer.expires_at else None,
                "subprotocols": list(self.scope.get("subprotocols", [])),
                "query_string": self.scope.get("query_string", b"").decode("latin-1"),
            }
        )

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None, **kwargs: Any) -> None:
        if text_data is not None:
            await self.send(text_data=text_data)


class WhoAmIMessageConsumer(WhoAmIConsumer):
    """``/ws/whoami/`` for clients that send their token in the first frame.

    The handshake needs no token; the greeting follows the accepted
    ``{"type": "bearer.authenticate", "token": "..."}`` frame.
    """

    bearer_message_auth = True
