"""The virtual clock of ``conveyor.testing``: real time plus an offset that only grows."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..app import Conveyor


class VirtualClock:
    """Seconds since the epoch, ``offset`` ahead of the real clock. It still runs with real
    time (a task that measures itself sees time pass); ``advance`` and ``move_to`` only
    ever move it forward, so a job never comes due twice."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset

    def __repr__(self) -> str:
        return f"<VirtualClock {self.offset:+.3f} s>"

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError(f"the clock only moves forward; advance({seconds!r})")
        self.offset += seconds

    def move_to(self, when: float) -> None:
        """Forward to ``when`` (epoch seconds); a time already passed leaves it as it is."""
        self.advance(max(0.0, when - self()))


def virtual_clock(app: Conveyor) -> VirtualClock:
    """The app's virtual clock, installed as ``app.clock`` on first use and kept from then
    on: a job retried at virtual 10:05 must still be due at the next drain."""
    clock = app.clock
    if not isinstance(clock, VirtualClock):
        clock = VirtualClock()
        app.clock = clock
    return clock
