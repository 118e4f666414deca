"""A clock moved by hand, for rules that count time (the refusal rate's window).

Patched over a module's ``time`` (``monkeypatch.setattr(module, "time", clock)``),
it answers ``time()`` and ``monotonic()`` with the same ``now``, so a test
steps across a window's edge exactly instead of sleeping up to it.
"""

from __future__ import annotations


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def time(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.now
