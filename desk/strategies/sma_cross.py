"""SMA crossover, long only: the classic trend-following benchmark.

Trades: BUY when the fast simple moving average of the close crosses above the
slow one (prior candle fast <= slow, this candle fast > slow); SELL when it
crosses back below. One signal per crossing, none while the order holds.

Stop policy: none. Signals carry stop_price=None and take_profit=None so the
worker's risk defaults apply and a benchmark can run this as a pure crossover.
Confidence is always 1.0 for the same reason.

Signal tape: the SMAs are recomputed over the whole data set with the running
arithmetic of the incremental SMA (`running_sma`), so every gap, and so every
crossing, is the same float as candle by candle; no per-candle Python.
"""

from __future__ import annotations

from itertools import repeat
from typing import Any

import numpy as np
from pydantic import Field

from desk.core.types import Candle, Side, Signal
from desk.strategies._common import (
    common_feature_columns,
    common_features,
    crossed_above,
    crossed_below,
    empty_tape,
    fmt,
    greater_than,
    make_tape,
    ratio,
    ratio_array,
    snap,
    zero_crossings,
)
from desk.strategies._exact import running_atr, running_sma
from desk.strategies.base import CandleColumns, CandleWindow, SignalTape, StrategyParams
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

    def signal_tape(self, columns: CandleColumns, window_capacity: int) -> SignalTape:
        """Every signal `on_candle` gives over `columns` from a fresh start; see `VectorisedStrategy`."""
        p = self.params
        close = np.asarray(columns.close, dtype=np.float64)
        fast, slow = running_sma(close, p.fast), running_sma(close, p.slow)
        # The gap is NaN until the slow SMA is warm, where on_candle returns before comparing.
        above, below = zero_crossings(fast - slow, slow)
        bars = np.flatnonzero(above | below) + 1
        if not bars.size:
            return empty_tape()
        last, fast_at, slow_at = close[bars], fast[bars], slow[bars]
        # A random market crosses every few dozen candles: over a long backtest this is tens of thousands
        # of signals, so the loops below hoist everything that does not change from one signal to the next.
        buying = above[bars - 1].tolist()
        buy_side, sell_side = Side.BUY, Side.SELL
        sides = [buy_side if buy else sell_side for buy in buying]
        head, up, down = f"SMA({p.fast}) ", f" crossed above SMA({p.slow}) ", f" crossed below SMA({p.slow}) "
        reasons = [
            f"{head}{fmt(f)}{up if buy else down}{fmt(s)}"
            for f, buy, s in zip(fast_at.tolist(), buying, slow_at.tolist(), strict=True)
        ]
        signals = map(Signal, sides, repeat(None), repeat(None), repeat(1.0), reasons)
        atr = running_atr(columns.high, columns.low, close, p.atr_period)
        features = {
            "fast_slow_gap": ratio_array(fast_at - slow_at, last),
            "close_fast_gap": ratio_array(last - fast_at, last),
            "close_slow_gap": ratio_array(last - slow_at, last),
            **common_feature_columns(close, atr, bars, window_capacity),
        }
        return make_tape(bars, signals, features)
