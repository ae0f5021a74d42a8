"""Time seams: domain code asks a Clock and never reads the wall clock itself."""

from __future__ import annotations

import time
from datetime import UTC, date, datetime, timedelta
from typing import Protocol

from desk.core.errors import ConfigError

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


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


def parse_utc_ms(text: str, key_path: str) -> int:
    """An ISO 8601 date or time as epoch ms: a date is UTC midnight, no offset means UTC, an offset is honoured.

    For `--from`/`--to` and `feed.simulated.start`; a problem is a ConfigError naming `key_path`.
    """
    cleaned = text.strip()
    # fromisoformat ignores a trailing Z after a bare date, so take the UTC designator off first.
    designator = cleaned[-1:] in ("Z", "z")
    core = cleaned[:-1] if designator else cleaned
    if not core:
        raise ConfigError([(key_path, "needs a date or time, e.g. 2026-01-01 or 2026-01-01T09:30Z")])
    try:
        day = date.fromisoformat(core)
        moment = datetime(day.year, day.month, day.day, tzinfo=UTC)
    except ValueError:
        try:
            moment = datetime.fromisoformat(core + "+00:00" if designator else core)
        except ValueError:
            raise ConfigError(
                [(key_path, f"not an ISO 8601 date or time: {text!r} (e.g. 2026-01-01 or 2026-01-01T09:30Z)")]
            ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)  # documented as UTC everywhere
    # Whole milliseconds in integers (digits below a millisecond are dropped, as the candle files have none).
    return (moment - _EPOCH) // timedelta(milliseconds=1)
