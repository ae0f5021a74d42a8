"""MACD crossover: trend following on the MACD line against its signal line.

Trades: BUY when the MACD line crosses above the signal line (histogram goes
from <= 0 to > 0); SELL when it crosses below (histogram from >= 0 to < 0). One
signal per crossing, wherever the line sits relative to zero.

Stop policy: close - atr_mult * ATR(atr_period) on BUY (default 2 ATR), or None
(worker risk defaults) when atr_mult is None or ATR is not usable yet. No take
profit: the exit is the bearish crossing.

Signal tape: the three EMAs are recomputed over the whole data set with the
incremental arithmetic (`_exact`, bit for bit), so every snapped histogram, and
so every crossing, is the float on_candle compares.
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
    crossed_above,
    crossed_below,
    empty_tape,
    fmt,
    greater_than,
    make_tape,
    none_if_nan,
    ratio,
    ratio_array,
    snap,
    snap_array,
    zero_crossings,
)
from desk.strategies._exact import running_atr, running_macd
from desk.strategies.base import CandleColumns, CandleWindow, SignalTape, StrategyParams
from desk.strategies.indicators import ATR, MACD


class MacdStrategy:
    class Params(StrategyParams):
        fast: int = Field(12, gt=0, description="fast EMA period, candles")
        slow: int = Field(26, gt=1, description="slow EMA period, candles; must exceed fast")
        signal: int = Field(9, gt=0, description="signal-line EMA period, candles")
        atr_period: int = Field(14, gt=0, description="ATR period for the stop")
        atr_mult: Annotated[float, Field(gt=0)] | None = Field(2.0, description="stop distance in ATRs; None = off")

        _slow_exceeds_fast = greater_than("slow", "fast")

    def __init__(self, params: Params) -> None:
        self.params = params
        # The signal line is ready at index slow+signal-2; a crossing needs one more candle.
        self.warmup: int = params.slow + params.signal
        self._macd = MACD(params.fast, params.slow, params.signal)
        self._atr = ATR(params.atr_period)
        self._prev_hist: float | None = None

    def on_candle(self, candle: Candle, window: CandleWindow, **kwargs: Any) -> Signal | None:
        close = candle.close
        value = self._macd.update(close)
        atr = self._atr.update(candle.high, candle.low, close)
        if value is None:
            return None
        hist = snap(value.histogram, close)
        prev, self._prev_hist = self._prev_hist, hist
        p = self.params
        label = f"MACD({p.fast},{p.slow},{p.signal}) {fmt(value.line)}"
        if crossed_above(prev, hist):
            # A cross that swings the histogram by a full ATR in one candle is 1.0; a creep is near 0.5.
            swing = hist - (prev or 0.0)
            confidence = 0.5 + 0.5 * clamp01(ratio(swing, atr))
            reason = f"{label} crossed above signal {fmt(value.signal)} (histogram {fmt(hist)})"
            stop = atr_stop(close, atr, p.atr_mult)
            return Signal(side=Side.BUY, stop_price=stop, take_profit=None, confidence=confidence, reason=reason)
        if crossed_below(prev, hist):
            reason = f"{label} crossed below signal {fmt(value.signal)} (histogram {fmt(hist)})"
            return Signal(side=Side.SELL, stop_price=None, take_profit=None, confidence=1.0, reason=reason)
        return None

    def features(self, window: CandleWindow, **kwargs: Any) -> dict[str, float]:
        close = window.last_close if len(window) else None
        value = self._macd.value
        return {
            "macd_line": ratio(value.line if value else None, close),
            "macd_signal": ratio(value.signal if value else None, close),
            "macd_hist": ratio(value.histogram if value else None, close),
            **common_features(window, self._atr.value),
        }

    def signal_tape(self, columns: CandleColumns, window_capacity: int) -> SignalTape:
        """Every signal `on_candle` gives over `columns` from a fresh start; see `VectorisedStrategy`."""
        p = self.params
        close = np.asarray(columns.close, dtype=np.float64)
        macd = running_macd(close, p.fast, p.slow, p.signal)
        # The histogram is NaN until warm, where on_candle returns before comparing.
        up, down = zero_crossings(macd.histogram, close)
        bars = np.flatnonzero(up | down) + 1
        if not bars.size:
            return empty_tape()
        hist = snap_array(macd.histogram, close)
        atr = running_atr(columns.high, columns.low, close, p.atr_period)

        def signals() -> Iterator[Signal]:  # on_candle's arithmetic, at the signal candles only
            name = f"MACD({p.fast},{p.slow},{p.signal})"
            rows = (
                up[bars - 1],
                close[bars],
                macd.line[bars],
                macd.signal[bars],
                hist[bars],
                hist[bars - 1],
                atr[bars],
            )
            for buy, last, line, signal, h, prev, atr_now in zip(*(a.tolist() for a in rows), strict=True):
                label = f"{name} {fmt(line)}"
                if buy:
                    atr_known = none_if_nan(atr_now)
                    confidence = 0.5 + 0.5 * clamp01(ratio(h - (prev or 0.0), atr_known))
                    reason = f"{label} crossed above signal {fmt(signal)} (histogram {fmt(h)})"
                    yield Signal(Side.BUY, atr_stop(last, atr_known, p.atr_mult), None, confidence, reason)
                else:
                    reason = f"{label} crossed below signal {fmt(signal)} (histogram {fmt(h)})"
                    yield Signal(Side.SELL, None, None, 1.0, reason)

        last = close[bars]
        features = {
            "macd_line": ratio_array(macd.line[bars], last),
            "macd_signal": ratio_array(macd.signal[bars], last),
            "macd_hist": ratio_array(macd.histogram[bars], last),
            **common_feature_columns(close, atr, bars, window_capacity),
        }
        return make_tape(bars, signals(), features)
