"""Counts every SQL statement the process runs, on every thread's connection, and the connections it opens."""

from __future__ import annotations

import threading
from typing import Any

from django.db.backends.signals import connection_created

_lock = threading.Lock()
_executed = 0
_connections = 0


def _count(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
    global _executed
    with _lock:  # the DB thread and others may count at once
        _executed += 1
    return execute(sql, params, many, context)


def _on_connection(sender: Any, connection: Any, **kwargs: Any) -> None:
    # Django opens a new connection per thread (and, with CONN_MAX_AGE=0, per
    # database_sync_to_async call): count it, and wrap each one as it is made.
    # (With Django's pool this is a checkout, not a new PostgreSQL session: the
    # bench counts those in PostgreSQL's own log.)
    global _connections
    with _lock:
        _connections += 1
    if _count not in connection.execute_wrappers:
        connection.execute_wrappers.append(_count)


def install() -> None:
    connection_created.connect(_on_connection, dispatch_uid="benchproject.counting")


def queries() -> int:
    return _executed


def connections() -> int:
    return _connections
