"""MACD crossover: trend following on the MACD line against its signal line.

Trades: BUY when the MACD line crosses above the signal line (histogram goes
from <= 0 to > 0); SELL when it crosses below (histogram from >= 0 to < 0). One
signal per crossing, wherever the line sits relative to zero.

Stop policy: close - atr_mult * ATR(atr_period) on BUY (default 2 ATR), or None
(worker risk defaults) when atr_mult is None or ATR is not usable yet. No take
profit: the exit is the bearish crossing.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field

from desk.core.types import Candle, Side, Signal
from desk.strategies._common import (
    atr_stop,
    clamp01,
    common_features,
    crossed_above,
    crossed_below,
    fmt,
    greater_than,
    ratio,
    snap,
)
from desk.strategies.base import CandleWindow, StrategyParams
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
