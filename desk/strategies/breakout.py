"""Donchian channel breakout (turtle style): buy new highs, sell new lows.

Trades: BUY when the close is above the highest high of the prior `entry_period`
candles; SELL when the close is below the lowest low of the prior `exit_period`
candles. "Prior" excludes the current candle (otherwise the close could never
exceed a high that includes its own candle). Signals fire on the breakout
candle only: while consecutive closes keep breaking out, only the first one
signals; a pause inside the channel re-arms it.

Stop policy: close - atr_mult * ATR(atr_period) on BUY (default 2 ATR, the
turtles' 2N), or None (worker risk defaults) when atr_mult is None or ATR is
not usable yet. No take profit: the exit is the channel-low breakdown.

Signal tape: the channels are rolling extremes (exact in numpy), the prior
channel of a candle is the one ending the candle before, and "fresh" is a
breakout whose previous candle was not one.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any

import numpy as np
from pydantic import Field

from desk.core.types import Candle, Side, Signal
from desk.strategies._common import (
    atr_stop,
    clamp01,
    common_feature_columns,
    common_features,
    empty_tape,
    fmt,
    make_tape,
    none_if_nan,
    ratio,
    ratio_array,
)
from desk.strategies._exact import running_atr, running_donchian
from desk.strategies.base import CandleColumns, CandleWindow, SignalTape, StrategyParams
from desk.strategies.indicators import ATR, Donchian


class BreakoutStrategy:
    class Params(StrategyParams):
        entry_period: int = Field(20, gt=0, description="candles whose highest high a close must beat to buy")
        exit_period: int = Field(10, gt=0, description="candles whose lowest low a close must break to sell")
        atr_period: int = Field(14, gt=0, description="ATR period for the stop")
        atr_mult: Annotated[float, Field(gt=0)] | None = Field(2.0, description="stop distance in ATRs; None = off")

    def __init__(self, params: Params) -> None:
        self.params = params
        # Both prior channels must be complete before the current candle.
        self.warmup: int = max(params.entry_period, params.exit_period) + 1
        self._entry = Donchian(params.entry_period)
        self._exit = Donchian(params.exit_period)
        self._atr = ATR(params.atr_period)
        self._was_above = False
        self._was_below = False

    def on_candle(self, candle: Candle, window: CandleWindow, **kwargs: Any) -> Signal | None:
        close = candle.close
        # Read the channels before adding this candle: that is what makes them "prior".
        entry, exit_ = self._entry.value, self._exit.value
        self._entry.update(candle.high, candle.low)
        self._exit.update(candle.high, candle.low)
        atr = self._atr.update(candle.high, candle.low, close)

        above = entry is not None and close > entry.upper
        below = exit_ is not None and close < exit_.lower
        fresh_above, fresh_below = above and not self._was_above, below and not self._was_below
        self._was_above, self._was_below = above, below
        p = self.params
        if fresh_above and entry is not None:
            # Closing one full ATR beyond the channel is 1.0; a marginal poke is 0.5.
            confidence = 0.5 + 0.5 * clamp01(ratio(close - entry.upper, atr))
            reason = f"close {fmt(close)} broke above prior {p.entry_period}-candle high {fmt(entry.upper)}"
            stop = atr_stop(close, atr, p.atr_mult)
            return Signal(side=Side.BUY, stop_price=stop, take_profit=None, confidence=confidence, reason=reason)
        if fresh_below and exit_ is not None:
            reason = f"close {fmt(close)} broke below prior {p.exit_period}-candle low {fmt(exit_.lower)}"
            return Signal(side=Side.SELL, stop_price=None, take_profit=None, confidence=1.0, reason=reason)
        return None

    def features(self, window: CandleWindow, **kwargs: Any) -> dict[str, float]:
        close = window.last_close if len(window) else None
        # These channels include the latest candle; for a learner "where in the range" is what matters.
        entry, exit_ = self._entry.value, self._exit.value
        if entry is None or close is None:
            position, high_gap = 0.5, 0.0
        else:
            position = ratio(close - entry.lower, entry.upper - entry.lower, default=0.5)
            high_gap = ratio(close - entry.upper, close)
        low_gap = 0.0 if exit_ is None or close is None else ratio(close - exit_.lower, close)
        return {
            "channel_position": position,
            "high_gap": high_gap,
            "low_gap": low_gap,
            **common_features(window, self._atr.value),
        }

    def signal_tape(self, columns: CandleColumns, window_capacity: int) -> SignalTape:
        """Every signal `on_candle` gives over `columns` from a fresh start; see `VectorisedStrategy`."""
        p = self.params
        close = np.asarray(columns.close, dtype=np.float64)
        entry_upper, entry_lower = running_donchian(columns.high, columns.low, p.entry_period)
        _, exit_lower = running_donchian(columns.high, columns.low, p.exit_period)
        # Prior channels: as read before this candle's update, NaN (None) until complete.
        prior_high = np.concatenate(([np.nan], entry_upper[:-1]))
        prior_low = np.concatenate(([np.nan], exit_lower[:-1]))
        above, below = close > prior_high, close < prior_low
        fresh_above = above & ~np.concatenate(([False], above[:-1]))
        fresh_below = below & ~np.concatenate(([False], below[:-1]))
        bars = np.flatnonzero(fresh_above | fresh_below)
        if not bars.size:
            return empty_tape()
        atr = running_atr(columns.high, columns.low, close, p.atr_period)

        def signals() -> Iterator[Signal]:  # on_candle's arithmetic, at the signal candles only
            rows = (fresh_above[bars], close[bars], prior_high[bars], prior_low[bars], atr[bars])
            for buy, last, channel_high, channel_low, atr_now in zip(*(a.tolist() for a in rows), strict=True):
                if buy:
                    atr_known = none_if_nan(atr_now)
                    confidence = 0.5 + 0.5 * clamp01(ratio(last - channel_high, atr_known))
                    reason = f"close {fmt(last)} broke above prior {p.entry_period}-candle high {fmt(channel_high)}"
                    yield Signal(Side.BUY, atr_stop(last, atr_known, p.atr_mult), None, confidence, reason)
                else:
                    reason = f"close {fmt(last)} broke below prior {p.exit_period}-candle low {fmt(channel_low)}"
                    yield Signal(Side.SELL, None, None, 1.0, reason)

        # Features read the channels after this candle's update: the ones that include it.
        last = close[bars]
        upper, lower = entry_upper[bars], entry_lower[bars]
        features = {
            "channel_position": ratio_array(last - lower, upper - lower, default=0.5),
            "high_gap": ratio_array(last - upper, last),
            "low_gap": ratio_array(last - exit_lower[bars], last),
            **common_feature_columns(close, atr, bars, window_capacity),
        }
        return make_tape(bars, signals(), features)
