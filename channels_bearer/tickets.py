"""One-time tickets: the ``ticket`` source.

A client that holds a token (or a session) asks ``TicketView`` over HTTPS for
a ticket, then opens ``wss://.../?ticket=<ticket>`` within ``TICKET_TTL``
seconds. A ticket is 256 random bits, stored only as its SHA-256 in the Django
cache (``TICKET_CACHE``), and consumed by an atomic delete: of two handshakes
racing for it, on any number of processes sharing the cache, one wins.

It carries the user and the issuing token's id, so ``disconnect_token()`` and
``disconnect_user()`` also void tickets not yet used.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from datetime import datetime
from typing import Any

from django.core.cache import BaseCache, caches

from channels_bearer import database
from channels_bearer.conf import conf
from channels_bearer.exceptions import InactiveUser, InvalidToken
from channels_bearer.identity import BearerIdentity

KEY_PREFIX = "channels_bearer:ticket:"
REVOKED_TOKEN_PREFIX = "channels_bearer:ticket-revoked-token:"
REVOKED_USER_PREFIX = "channels_bearer:ticket-revoked-user:"
BACKEND_NAME = "channels_bearer.tickets"


def _cache() -> BaseCache:
    return caches[conf.TICKET_CACHE]


def _key(ticket: str) -> str:
    # The cache holds a hash, never the ticket: a cache dump gives nothing to replay.
    return KEY_PREFIX + hashlib.sha256(ticket.encode("utf-8")).hexdigest()


def issue_ticket(
    user: Any,
    token_id: str | None = None,
    expires_at: datetime | None = None,
    scopes: frozenset[str] | set[str] = frozenset(),
) -> tuple[str, int]:
    """Issue a single-use ticket for ``user``; return ``(ticket, seconds it lives)``.

    ``token_id`` is the id of the token the request was authenticated with
    (``None`` for a session), ``expires_at`` that token's expiry: a socket
    opened with the ticket closes when the token would have expired.
    """
    ttl = conf.TICKET_TTL
    ticket = secrets.token_urlsafe(32)
    record = {
        "user": user.pk,
        "token_id": token_id,
        "expires_at": expires_at.timestamp() if expires_at else None,
        "scopes": sorted(scopes),
        "issued_at": time.time(),
    }
    _cache().set(_key(ticket), record, ttl)
    return ticket, ttl


async def aissue_ticket(
    user: Any,
    token_id: str | None = None,
    expires_at: datetime | None = None,
    scopes: frozenset[str] | set[str] = frozenset(),
) -> tuple[str, int]:
    """``issue_ticket`` for async code."""
    return await database.run(issue_ticket, user, token_id, expires_at, scopes)


async def redeem_ticket(ticket: str) -> BearerIdentity:
    """Consume ``ticket`` and return its identity; raise ``InvalidToken`` if it cannot be used."""
    return await database.run(_redeem, ticket)


def _redeem(ticket: str) -> BearerIdentity:
    cache = _cache()
    key = _key(ticket)
    record = cache.get(key)
    # delete() reports whether it removed the key; with a shared cache (Redis)
    # only one of several racing handshakes sees True.
    if record is None or not cache.delete(key):
        raise InvalidToken("the ticket is unknown, expired or already used")
    token_id = record.get("token_id")
    if token_id and cache.get(REVOKED_TOKEN_PREFIX + token_id) is not None:
        raise InactiveUser("the ticket's token was revoked")
    revoked_at = cache.get(f"{REVOKED_USER_PREFIX}{record['user']}")
    if revoked_at is not None and revoked_at >= record["issued_at"]:
        raise InactiveUser("the ticket's user was revoked")
    expires_at = record.get("expires_at")
    if expires_at is not None and expires_at <= time.time():
        raise InvalidToken("the ticket's token has expired")

    from django.contrib.auth import get_user_model

    user_model = get_user_model()
    user = user_model._default_manager.filter(pk=record["user"]).first()
    if user is None or not user.is_active:
        raise InactiveUser("the user is inactive or deleted")
    return BearerIdentity(
        user=user,
        token_id=token_id or "ticket-" + key[len(KEY_PREFIX) :][:24],
        expires_at=datetime.fromtimestamp(expires_at).astimezone() if expires_at else None,
        scopes=frozenset(record.get("scopes") or ()),
        backend=BACKEND_NAME,
    )


def void_tickets_of_token(token_id: str) -> None:
    """Make unused tickets issued with ``token_id`` unusable (they live at most TICKET_TTL)."""
    _cache().set(REVOKED_TOKEN_PREFIX + token_id, time.time(), conf.TICKET_TTL)


def void_tickets_of_user(user_pk: Any) -> None:
    """Make every ticket issued to the user so far unusable."""
    _cache().set(f"{REVOKED_USER_PREFIX}{user_pk}", time.time(), conf.TICKET_TTL)
