"""SMA crossover, long only: the classic trend-following benchmark.

Trades: BUY when the fast simple moving average of the close crosses above the
slow one (prior candle fast <= slow, this candle fast > slow); SELL when it
crosses back below. One signal per crossing, none while the order holds.

Stop policy: none. Signals carry stop_price=None and take_profit=None so the
worker's risk defaults apply and a benchmark can run this as a pure crossover.
Confidence is always 1.0 for the same reason.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from desk.core.types import Candle, Side, Signal
from desk.strategies._common import common_features, crossed_above, crossed_below, fmt, greater_than, ratio, snap
from desk.strategies.base import CandleWindow, StrategyParams
from desk.strategies.indicators import ATR, SMA


class SmaCrossStrategy:
    class Params(StrategyParams):
        fast: int = Field(10, gt=0, description="fast SMA period, candles")
        slow: int = Field(30, gt=1, description="slow SMA period, candles; must exceed fast")
        atr_period: int = Field(14, gt=0, description="ATR period, used only for features")

        _slow_exceeds_fast = greater_than("slow", "fast")

    def __init__(self, params: Params) -> None:
        self.params = params
        # The slow SMA is ready on candle `slow`; a crossing needs one more to compare with.
        self.warmup: int = params.slow + 1
        self._fast = SMA(params.fast)
        self._slow = SMA(params.slow)
        self._atr = ATR(params.atr_period)
        self._prev_gap: float | None = None

    def on_candle(self, candle: Candle, window: CandleWindow, **kwargs: Any) -> Signal | None:
        fast = self._fast.update(candle.close)
        slow = self._slow.update(candle.close)
        self._atr.update(candle.high, candle.low, candle.close)
        if fast is None or slow is None:
            return None
        gap = snap(fast - slow, slow)
        prev, self._prev_gap = self._prev_gap, gap
        p = self.params
        if crossed_above(prev, gap):
            reason = f"SMA({p.fast}) {fmt(fast)} crossed above SMA({p.slow}) {fmt(slow)}"
            return Signal(side=Side.BUY, stop_price=None, take_profit=None, confidence=1.0, reason=reason)
        if crossed_below(prev, gap):
            reason = f"SMA({p.fast}) {fmt(fast)} crossed below SMA({p.slow}) {fmt(slow)}"
            return Signal(side=Side.SELL, stop_price=None, take_profit=None, confidence=1.0, reason=reason)
        return None

    def features(self, window: CandleWindow, **kwargs: Any) -> dict[str, float]:
        close = window.last_close if len(window) else None
        fast, slow = self._fast.value, self._slow.value
        gap = None if fast is None or slow is None else fast - slow
        return {
            "fast_slow_gap": ratio(gap, close),
            "close_fast_gap": ratio(None if close is None or fast is None else close - fast, close),
            "close_slow_gap": ratio(None if close is None or slow is None else close - slow, close),
            **common_features(window, self._atr.value),
        }
