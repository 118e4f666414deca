"""The consumer's part of ``MAX_SOCKETS_PER_USER``: a seat per socket.

:mod:`channels_bearer.limits` counts the seats (in Redis across processes, or
per process); this part takes one when a socket of a known user is about to
open (before the consumer's ``connect()``, or after the first frame
authenticated it), refuses the socket when the user has none left (429 or
4429), gives its seat back when the socket ends, and closes the socket with
4429 when a newer one took its seat (``MAX_SOCKETS_POLICY = "close_oldest"``).
"""

from __future__ import annotations

from typing import Any

from channels_bearer import events, limits
from channels_bearer.conf import conf
from channels_bearer.consumer_base import ConsumerBase
from channels_bearer.exceptions import TooManySockets
from channels_bearer.identity import BearerIdentity
from channels_bearer.refusal import log_refusal, refusal_messages
from channels_bearer.revoke import identity_user_key
from channels_bearer.types import Message

__all__ = ["SocketCap"]


class SocketCap(ConsumerBase):
    """The part of ``BearerConsumerMixin`` that holds a seat under ``MAX_SOCKETS_PER_USER``."""

    async def _bearer_take_seat(self, identity: BearerIdentity, *, accepted: bool) -> bool:
        """Count this socket against ``MAX_SOCKETS_PER_USER``; ``False`` when it was refused instead."""
        config = conf.current()
        user = identity_user_key(identity)
        if user is None or config.max_sockets_per_user is None:
            return True
        member = limits.socket_member(getattr(self, "channel_name", None))
        admitted, evicted = await limits.acquire(self, user, member, config)
        if not admitted:
            error = TooManySockets("the user has MAX_SOCKETS_PER_USER sockets open")
            log_refusal(self.scope, error, identity.source)
            self._bearer.closed = True
            await events.refused(type(self), self.scope, error, identity.source, config)
            if accepted:
                messages: list[Message] = [{"type": "websocket.close", "code": error.close_code, "reason": error.error}]
            else:
                messages = refusal_messages(
                    error, self.scope, mode=config.refusal, accept_subprotocol=self.select_subprotocol()
                )
            await self._bearer_send_all(messages)
            return False
        self._bearer.seat = (user, member)
        if evicted:
            await limits.evict(evicted)
        return True

    async def _bearer_release_seat(self) -> None:
        """Give the socket's seat back (when it ends); the lease would free it later anyway."""
        if self._bearer.seat is not None:
            seat, self._bearer.seat = self._bearer.seat, None
            await limits.release(*seat, conf.current())

    def bearer_evict(self, message: Message) -> Any:
        """``MAX_SOCKETS_POLICY = "close_oldest"``: a newer socket of the user took this one's seat: close with 4429."""
        # The newer socket's acquire already gave up this one's seat.
        self._bearer.seat = None
        return self._bearer_end(TooManySockets("a newer socket of the user took this one's place"))
