"""The lookups' database work: on a thread of channels-bearer's own, keeping its connection.

Channels closes "old" connections on its shared database thread before and
after every ``database_sync_to_async`` call and before every message a
consumer handles, and with Django's default ``CONN_MAX_AGE = 0`` every
connection is old: every handshake would open and close a database
connection. On PostgreSQL, where the server forks a process per connection,
that cost more than the rest of the handshake together (measured: about
6 ms of database CPU each). The lookups run instead on one thread of their
own, whose connection Channels never touches and which is kept between
handshakes: one more connection per server process, opened once, whatever
``CONN_MAX_AGE`` says. The application's own database work, on Channels'
thread, is left as it was.

A connection on which a query fails is closed, whatever the error, so no
lookup meets a broken connection twice. When the connection itself was lost
(a restart, an idle timeout, a failover: ``OperationalError`` or
``InterfaceError``), the lookup is tried once more on a new connection, so
the handshake that meets it still succeeds when the database is back.

DRF authentication classes (``DRFAuthenticationBackend``) run on a second
thread of the same kind, ``channels-bearer-auth``: a class may wait on the
network (token introspection, a remote user store), and while it waits the
other backends' lookups go on.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from asgiref.sync import AsyncToSync, sync_to_async
from django.db import DatabaseError, InterfaceError, OperationalError, connections

__all__ = ["AUTHENTICATION", "LOOKUPS", "close", "on_lookup_thread", "run"]

T = TypeVar("T")

#: The threads work may run on, by name.
LOOKUPS = "channels-bearer-db"
AUTHENTICATION = "channels-bearer-auth"

_executors: dict[str, ThreadPoolExecutor] = {}
_executor_lock = threading.Lock()


def _lookup_thread(name: str = LOOKUPS) -> ThreadPoolExecutor:
    with _executor_lock:
        if name not in _executors:
            # One thread each: lookups run one at a time, as on Channels'
            # thread, on one connection.
            _executors[name] = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        return _executors[name]


async def run(function: Callable[..., T], *args: Any, thread: str = LOOKUPS) -> T:
    """``function(*args)`` on the lookup thread (or ``thread``), on a connection kept between calls.

    Under ``async_to_sync`` (a Django ``TestCase``'s async test, sync code
    calling async code), on the sync thread that called it instead, as
    thread-sensitive code always runs: that thread may hold a transaction
    whose rows the lookup must see.
    """
    if _under_async_to_sync():
        result: T = await sync_to_async(_call, thread_sensitive=True)(function, *args)
    else:
        result = await sync_to_async(_call, thread_sensitive=False, executor=_lookup_thread(thread))(function, *args)
    return result


def _under_async_to_sync() -> bool:
    # How asgiref's SyncToAsync itself knows that a sync thread waits above
    # and sends thread-sensitive work back to it: from the task that
    # async_to_sync runs, or from any task on the loop it made (a test
    # communicator's application runs in a fresh context, on that loop).
    # Public but undocumented attributes of asgiref 3.x: read defensively, so
    # that an asgiref without them means "no sync thread waits" (the lookup
    # thread), never an AttributeError in every handshake.
    if getattr(getattr(AsyncToSync, "executors", None), "current", None) is not None:
        return True
    return asyncio.get_running_loop() in getattr(AsyncToSync, "loop_thread_executors", {})


def on_lookup_thread(function: Callable[[], T]) -> T:
    """Run ``function()`` on the lookup thread and wait for it; from sync code (tests, tools)."""
    return _lookup_thread().submit(function).result()


def close() -> None:
    """Close every lookup thread's connections (tests; a process that forks). From sync code."""
    with _executor_lock:
        executors = list(_executors.values())
    for executor in executors:
        executor.submit(connections.close_all).result()


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
