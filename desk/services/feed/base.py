"""The feed seam. The simulated market, exchange polling and journal replay all satisfy it."""

from __future__ import annotations

from typing import Protocol

from desk.core.types import Candle, Market


class Feed(Protocol):
    """A source of closed 1-minute candles for a fixed list of symbols, in lockstep.

    Every call to `next_candles` advances one minute for all symbols at once so
    the runtime can treat a minute as one unit of work.
    """

    @property
    def symbols(self) -> list[str]:
        """The symbols this feed serves, in the order `next_candles` returns them."""
        ...

    def markets(self) -> dict[str, Market]:
        """Exchange rules (precision, minimum order) per symbol."""
        ...

    def next_candles(self) -> list[Candle] | None:
        """Return the next closed 1-minute candle of every symbol, all with the same `ts`,
        in `symbols` order; `None` once the feed is exhausted.

        A replay of recorded candles leaves out a symbol that has no candle in that minute
        (a gap in its data), so a batch may hold fewer candles than `symbols`, never none.
        """
        ...

    def seek(self, after_ts: int) -> None:
        """Position the feed so the next call returns the minute after `after_ts` (epoch ms)."""
        ...
