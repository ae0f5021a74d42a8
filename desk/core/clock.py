"""Time seams: domain code asks a Clock and never reads the wall clock itself."""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def now_ms(self) -> int:
        """Return the current time in epoch milliseconds (UTC)."""
        ...


class WallClock:
    """The real time; used for live trading and for `ts_init` stamps."""

    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000


class SimulatedClock:
    """A clock that only moves when told to; the simulated market and replays drive it."""

    def __init__(self, start_ms: int) -> None:
        self._now_ms = start_ms

    def now_ms(self) -> int:
        return self._now_ms

    def advance_to(self, ts_ms: int) -> None:
        if ts_ms < self._now_ms:
            raise ValueError(f"clock cannot go back from {self._now_ms} to {ts_ms}")
        self._now_ms = ts_ms
