"""Counting the SQL statements a lookup runs, wherever it runs them.

channels-bearer's lookups run on a thread of their own
(:mod:`channels_bearer.database`) unless a sync thread waits above them
(``async_to_sync``), so Django's ``CaptureQueriesContext`` on the test's
connection may see none of them: ``counted()`` counts on both.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from django.db import connections

from channels_bearer import database


@dataclass
class Statements:
    sql: list[str] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.sql)


@contextlib.contextmanager
def counted(alias: str = "default") -> Iterator[Statements]:
    """The statements run on the test's thread and on the lookup thread, while inside."""
    statements = Statements()

    def count(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        statements.sql.append(sql % tuple(repr(p) for p in params) if params and "%s" in sql else sql)
        return execute(sql, params, many, context)

    def install() -> None:
        connections[alias].execute_wrappers.append(count)

    def remove() -> None:
        connections[alias].execute_wrappers.remove(count)

    install()
    database.on_lookup_thread(install)
    try:
        yield statements
    finally:
        remove()
        database.on_lookup_thread(remove)
