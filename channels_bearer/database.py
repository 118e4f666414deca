"""The lookups' database work: on Channels' database thread, keeping its connection.

Channels' ``database_sync_to_async`` closes "old" connections before and after
every call, and with Django's default ``CONN_MAX_AGE = 0`` every connection is
old: every handshake would open and close a database connection. On
PostgreSQL, where the server forks a process per connection, that cost more
than the rest of the handshake together (measured: about 6 ms of database CPU
each). The lookups here run on the same thread (``thread_sensitive``), as the
async ORM does, and keep that thread's connection between handshakes: one
connection per server process in the steady state, whatever ``CONN_MAX_AGE``
says.

A connection on which a query fails is closed, whatever the error, so no
lookup meets a broken connection twice. When the connection itself was lost
(a restart, an idle timeout, a failover: ``OperationalError`` or
``InterfaceError``), the lookup is tried once more on a new connection, so
the handshake that meets it still succeeds when the database is back.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from asgiref.sync import sync_to_async
from django.db import DatabaseError, InterfaceError, OperationalError, connections

__all__ = ["run"]

T = TypeVar("T")


async def run(function: Callable[..., T], *args: Any) -> T:
    """``function(*args)`` on the database thread, on a connection kept between calls."""
    result: T = await sync_to_async(_call, thread_sensitive=True)(function, *args)
    return result


def _call(function: Callable[..., T], *args: Any) -> T:
    try:
        return function(*args)
    except DatabaseError as exc:
        # Whatever failed, a connection it failed on is not kept: the next
        # lookup connects again (to a database that may be back by then).
        if not _close_broken_connections() or not isinstance(exc, (OperationalError, InterfaceError)):
            raise
    # The connection was lost (not the query's fault): once more, on a new one.
    try:
        return function(*args)
    except DatabaseError:
        _close_broken_connections()
        raise


def _close_broken_connections() -> bool:
    """Close this thread's connections on which an error occurred; whether there were any."""
    closed = False
    for connection in connections.all(initialized_only=True):
        # Django sets errors_occurred when a query fails for another reason
        # than the data (DataError, IntegrityError); inside a transaction the
        # connection is the transaction's owner's to deal with.
        if connection.errors_occurred and not connection.in_atomic_block:
            connection.close()
            closed = True
    return closed
