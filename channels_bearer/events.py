"""What happened to a handshake or a socket, reported in one place.

The middleware and the mixin call these at each event; they send the signals
(:mod:`channels_bearer.signals`), count the metrics
(:mod:`channels_bearer.metrics`) and the refusals ``REFUSAL_RATE`` limits
(:mod:`channels_bearer.limits`). With no receiver connected and metrics off,
each is a few attribute reads.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from typing import Any

from django.dispatch import Signal

from channels_bearer import limits, metrics
from channels_bearer.config import BearerConfig
from channels_bearer.exceptions import BearerError
from channels_bearer.identity import BearerIdentity
from channels_bearer.signals import bearer_authenticated, bearer_closed, bearer_refused
from channels_bearer.types import Scope

logger = logging.getLogger("channels_bearer")

#: What no backend was asked about gets ``token_required`` (no token where one was needed).
NO_TOKEN = "token_required"
#: Refusals that say nothing about the client's credentials: not counted
#: against its address (the limit itself, a full socket cap, the server's own fault).
NOT_COUNTED = frozenset({"rate_limited", "too_many_sockets", "temporarily_unavailable"})
#: Why channels-bearer closed an open socket (``bearer_closed``'s ``reason``).
CLOSE_REASONS = ("expired", "revoked", "refresh_failed", "too_many_sockets")

_NAMES = {
    id(bearer_authenticated): "bearer_authenticated",
    id(bearer_refused): "bearer_refused",
    id(bearer_closed): "bearer_closed",
}


async def authenticated(
    sender: type,
    scope: Scope,
    identity: BearerIdentity,
    config: BearerConfig,
    seconds: float | None,
) -> None:
    """A backend accepted the token of a handshake (or of a first frame)."""
    if metrics.enabled():
        metrics.handshake("accepted", None, identity.source, identity.backend, seconds)
    # The receiver list first: has_listeners() takes a lock (1.1 against 0.4 µs
    # an event when nothing is connected, the common case).
    if bearer_authenticated.receivers and bearer_authenticated.has_listeners(sender):
        await _send(
            bearer_authenticated,
            sender,
            user=identity.user,
            identity=identity,
            source=identity.source,
            backend=identity.backend,
            path=scope.get("path"),
            client=limits.client_address(scope, config),
        )


async def refused(
    sender: type,
    scope: Scope,
    error: BearerError | None,
    source: str | None,
    config: BearerConfig,
    seconds: float | None = None,
) -> None:
    """channels-bearer refused a handshake (``error`` ``None``: no token where one is needed)."""
    code = error.error if error is not None else NO_TOKEN
    backend = error.backend if error is not None else None
    counted = config.refusal_rate is not None and code not in NOT_COUNTED
    listened = bool(bearer_refused.receivers) and bearer_refused.has_listeners(sender)
    # Read once, and only when the rate or a receiver needs it (a header scan behind a proxy).
    client = limits.client_address(scope, config) if counted or listened else None
    if counted:
        await limits.count_refusal(client, config)
    if metrics.enabled():
        metrics.handshake("refused", code, source, backend, seconds)
    if listened:
        await _send(
            bearer_refused,
            sender,
            error=code,
            source=source,
            backend=backend,
            path=scope.get("path"),
            client=client,
        )


def anonymous() -> None:
    """A handshake with no token went on to the consumer (which decides)."""
    if metrics.enabled():
        metrics.handshake("anonymous", None, None, None, None)


async def closed(sender: type, identity: BearerIdentity | None, reason: str) -> None:
    """channels-bearer closed an open socket, for ``reason`` (one of :data:`CLOSE_REASONS`)."""
    if metrics.enabled():
        metrics.closed(reason)
    if bearer_closed.receivers and bearer_closed.has_listeners(sender):
        await _send(
            bearer_closed,
            sender,
            user=identity.user if identity is not None else None,
            token_id=identity.token_id if identity is not None else None,
            reason=reason,
        )


#: Reports started by closed_soon() that have not finished: the loop holds only
#: weak references to its tasks.
_reporting: set[asyncio.Task[None]] = set()


def closed_soon(loop: asyncio.AbstractEventLoop, sender: type, identity: BearerIdentity | None, reason: str) -> None:
    """:func:`closed`, started on ``loop`` and not waited for; callable from any thread.

    For sync consumers: their thread must not wait on the event loop for the
    receivers once the socket is closed. Nothing there needs them done, and
    a loop that stops meanwhile (a server shutting down, a test that ends
    with the close frame) would leave the thread waiting forever, and with
    it every later ``sync_to_async`` call that needs that thread.
    """

    def start() -> None:
        task = loop.create_task(closed(sender, identity, reason))
        _reporting.add(task)
        task.add_done_callback(_reporting.discard)

    try:
        # In a context of its own: the caller's tells asgiref that sync code
        # belongs on the consumer's thread, which will not be waiting any more
        # when a sync receiver runs.
        loop.call_soon_threadsafe(start, context=contextvars.Context())
    except RuntimeError:  # the loop is closed: nobody is left to hear it
        logger.debug("Not reporting a close (%s): the event loop is closed.", reason)


async def _send(signal: Signal, sender: type, **arguments: Any) -> None:
    # asend_robust: a receiver that raises is logged here and the handshake
    # goes on; the others still run.
    for receiver, result in await signal.asend_robust(sender, **arguments):
        if isinstance(result, Exception):
            logger.error(
                "A receiver of %s (%s) raised %s; the socket goes on as it would have.",
                _NAMES.get(id(signal), "a channels-bearer signal"),
                getattr(receiver, "__qualname__", repr(receiver)),
                type(result).__name__,
                exc_info=(type(result), result, result.__traceback__),
            )
