"""Waiting for what another process does, without a fixed sleep.

A fixed ``sleep`` before an assertion is a guess at how long another process
takes; on a loaded CI machine the guess is wrong and the test fails for
nothing. These poll until the condition holds, up to a bound far above what it
takes, so a test fails only when the condition never holds.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


async def eventually(check: Callable[[], bool], timeout: float = 10, interval: float = 0.05) -> bool:
    """Whether ``check()`` came true within ``timeout`` seconds (checked once more at the end)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        await asyncio.sleep(interval)
    return check()


async def first_success(
    attempt: Callable[[], Awaitable[T]],
    failures: tuple[type[BaseException], ...],
    timeout: float = 10,
    interval: float = 0.25,
) -> T | None:
    """The result of the first ``attempt()`` that raises none of ``failures`` within ``timeout`` seconds, else None."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return await attempt()
        except failures:
            if time.monotonic() >= deadline:
                return None
            await asyncio.sleep(interval)
