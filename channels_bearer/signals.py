"""The signals channels-bearer sends, for audit logs, lockouts and dashboards.

Receivers live in your project (``@receiver(bearer_refused)`` in an app's
``signals.py``, connected in ``AppConfig.ready()``)::

    from django.dispatch import receiver
    from channels_bearer.signals import bearer_refused

    @receiver(bearer_refused)
    def note_refusal(sender, error, source, backend, path, client, **kwargs):
        AuditEntry.objects.create(kind="ws-refused", error=error, address=client)

Each is sent once per event, on the server process where it happened,
whatever ``REFUSAL`` says; none ever carries the token:

``bearer_authenticated(sender, user, identity, source, backend, path, client)``
    A backend accepted a handshake's token (or a first frame's): ``identity``
    is the ``BearerIdentity`` (``scope["bearer"]``). The consumer may still
    refuse the socket (missing scopes, the socket cap), then
    ``bearer_refused`` follows.
``bearer_refused(sender, error, source, backend, path, client)``
    channels-bearer refused a handshake or a first-message socket. ``error``
    is the RFC 6750 code (``invalid_token``, ``invalid_request``,
    ``insufficient_scope``), ``token_required`` (no token where one is
    needed), ``temporarily_unavailable``, ``rate_limited`` or
    ``too_many_sockets``; ``source`` is where the token was, or ``None``;
    ``backend`` the dotted path of the backend that refused it, when one did.
``bearer_closed(sender, user, token_id, reason)``
    An open socket was closed by channels-bearer: ``reason`` is ``"expired"``
    (4401), ``"revoked"`` (4403), ``"refresh_failed"`` (an in-band refresh
    was refused) or ``"too_many_sockets"`` (4429, ``MAX_SOCKETS_POLICY =
    "close_oldest"``).

``sender`` is the class that sent it: the middleware or the consumer. ``path``
is the WebSocket path (never the query string); ``client`` the client's
address (from ``CLIENT_ADDRESS_HEADER`` behind a trusted proxy), or ``None``.
Async receivers are awaited; sync ones run in a thread, as Django's
``Signal.asend()`` runs them, so they may use the ORM. A receiver that raises
is logged and changes nothing: the handshake goes on as it would have.
"""

from __future__ import annotations

from django.dispatch import Signal

__all__ = ["bearer_authenticated", "bearer_closed", "bearer_refused"]

bearer_authenticated = Signal()
bearer_refused = Signal()
bearer_closed = Signal()
