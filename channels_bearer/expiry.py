"""When tokens expire: one clock per event loop, whatever the number of sockets.

Every ``BearerConsumerMixin`` socket whose token expires sets an alarm; the
clock keeps them in a heap and holds a single timer for the earliest, so an
idle socket costs an entry, not a timer of its own. When an alarm rings, the
socket gets its ``bearer.expired`` event (:mod:`channels_bearer.mailbox`).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Callable

__all__ = ["Alarm", "set_alarm"]


class Alarm:
    """A call at ``when`` (the loop's clock); ``cancel()`` it if it is no longer wanted."""

    __slots__ = ("when", "callback", "cancelled", "clock")

    def __init__(self, when: float, callback: Callable[[], None], clock: _Clock) -> None:
        self.when = when
        self.callback = callback
        self.cancelled = False
        self.clock = clock

    def cancel(self) -> None:
        if not self.cancelled:
            self.cancelled = True
            # Drop the reference: a cancelled alarm may wait in the heap a while.
            self.callback = _nothing
            self.clock.cancelled_one()


def _nothing() -> None:
    return None


class _Clock:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.heap: list[tuple[float, int, Alarm]] = []
        self.order = itertools.count()
        self.timer: asyncio.TimerHandle | None = None
        self.cancelled = 0

    def cancelled_one(self) -> None:
        # Sockets mostly close before their token expires: drop cancelled
        # alarms once they are half the heap, not at their time.
        self.cancelled += 1
        if self.cancelled > 64 and self.cancelled * 2 > len(self.heap):
            self.heap = [entry for entry in self.heap if not entry[2].cancelled]
            heapq.heapify(self.heap)
            self.cancelled = 0

    def add(self, alarm: Alarm) -> None:
        heapq.heappush(self.heap, (alarm.when, next(self.order), alarm))
        if self.timer is None or alarm.when < self.timer.when():
            self._reschedule()

    def _reschedule(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        while self.heap and self.heap[0][2].cancelled:
            heapq.heappop(self.heap)
            self.cancelled = max(self.cancelled - 1, 0)
        if self.heap:
            self.timer = self.loop.call_at(self.heap[0][0], self._ring)

    def _ring(self) -> None:
        self.timer = None
        now = self.loop.time()
        while self.heap and self.heap[0][0] <= now:
            _, _, alarm = heapq.heappop(self.heap)
            if alarm.cancelled:
                self.cancelled = max(self.cancelled - 1, 0)
            else:
                alarm.cancelled = True
                alarm.callback()
        self._reschedule()


_clocks: dict[int, _Clock] = {}


def set_alarm(loop: asyncio.AbstractEventLoop, delay: float, callback: Callable[[], None]) -> Alarm:
    """Call ``callback()`` on ``loop`` in ``delay`` seconds; on the loop's thread only."""
    clock = _clocks.get(id(loop))
    if clock is None or clock.loop is not loop:
        for key in [key for key, other in _clocks.items() if other.loop.is_closed()]:
            del _clocks[key]
        clock = _clocks[id(loop)] = _Clock(loop)
    alarm = Alarm(loop.time() + max(delay, 0.0), callback, clock)
    clock.add(alarm)
    return alarm
