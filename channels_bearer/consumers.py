"""``BearerConsumerMixin``: for Channels' four websocket consumers.

::

    class ChatConsumer(BearerConsumerMixin, AsyncJsonWebsocketConsumer):
        app_subprotocols = ["chat.v2"]      # optional
        async def connect(self):
            await self.accept()             # answers "chat.v2" or the marker

The mixin refuses handshakes without a token (``bearer_required``), and picks
the subprotocol for ``accept()``. It needs ``BearerAuthMiddleware`` around the
router, which validated the token before the consumer was built.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from channels.consumer import AsyncConsumer
from django.core.exceptions import ImproperlyConfigured

from channels_bearer.conf import conf
from channels_bearer.exceptions import BearerError, InsufficientScope
from channels_bearer.identity import BearerIdentity
from channels_bearer.refusal import log_refusal, refusal_messages

__all__ = ["BearerConsumerMixin"]


class BearerConsumerMixin:
    """Mix in before a Channels websocket consumer class.

    ``bearer_required``: refuse handshakes that present no token, with a bare
    ``WWW-Authenticate: Bearer`` challenge (401 on uvicorn, 403 on daphne, or
    accept-then-close 4401 with ``REFUSAL = "close"``).

    ``app_subprotocols``: the application subprotocols this consumer speaks, in
    order of preference; ``accept()`` answers the first one the client offered.
    """

    bearer_required: bool = True
    app_subprotocols: Sequence[str] = ()
    #: OAuth 2.0 scopes the token must carry (``scope``/``scp`` claim, or the
    #: backend's own notion): refused with ``insufficient_scope`` otherwise.
    bearer_scopes: Sequence[str] = ()

    scope: dict[str, Any]
    base_send: Any

    @property
    def bearer(self) -> BearerIdentity | None:
        """The identity the middleware put in ``scope["bearer"]``."""
        identity: BearerIdentity | None = self.scope.get("bearer")
        return identity

    def websocket_connect(self, message: dict[str, Any]) -> Any:
        # A plain method on purpose: for the async consumers it returns the
        # coroutine that AsyncConsumer.dispatch awaits; for the sync ones it runs.
        if "bearer" not in self.scope:
            raise ImproperlyConfigured(
                f"{type(self).__name__} uses BearerConsumerMixin, but the scope has no 'bearer' key: "
                "wrap the websocket router in channels_bearer.middleware.BearerAuthMiddlewareStack."
            )
        error = self.bearer_refusal()
        if error is not None or (self.bearer_required and self.bearer is None):
            log_refusal(self.scope, error, None)
            return self.bearer_refuse(error)
        return super().websocket_connect(message)  # type: ignore[misc]

    def bearer_refusal(self) -> BearerError | None:
        """A reason to refuse this authenticated handshake, or ``None``.

        Override to add checks of your own (call ``super()``); return the
        error rather than raising it.
        """
        bearer = self.bearer
        if bearer is not None and self.bearer_scopes:
            missing = set(self.bearer_scopes) - set(bearer.scopes)
            if missing:
                return InsufficientScope(f"the token lacks the scope(s) {' '.join(sorted(missing))}")
        return None

    def bearer_refuse(self, error: BearerError | None) -> Any:
        messages = refusal_messages(
            error,
            self.scope,
            mode=conf.REFUSAL,
            accept_subprotocol=self.select_subprotocol(),
        )
        if isinstance(self, AsyncConsumer):

            async def send_all() -> None:
                for message in messages:
                    await self.base_send(message)

            return send_all()
        for message in messages:
            self.base_send(message)
        return None

    def select_subprotocol(self) -> str | None:
        """The subprotocol ``accept()`` answers when it is given none.

        The first of the client's offers that this consumer declares in
        ``app_subprotocols``, else ``None``: the middleware, which saw the
        marker before removing it from the list, then answers with the marker.
        """
        for candidate in self.scope.get("subprotocols") or ():
            if candidate in self.app_subprotocols:
                return str(candidate)
        return None

    def accept(self, subprotocol: str | None = None, headers: Any = None) -> Any:
        if subprotocol is None:
            subprotocol = self.select_subprotocol()
        return super().accept(subprotocol, headers)  # type: ignore[misc]
