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
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field

from desk.core.types import Candle, Side, Signal
from desk.strategies._common import atr_stop, clamp01, common_features, fmt, ratio
from desk.strategies.base import CandleWindow, StrategyParams
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
