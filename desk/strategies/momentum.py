"""Momentum: ride strong moves measured by the rate of change of the close.

Trades: BUY when ROC(lookback) = close / close[lookback candles ago] - 1 crosses
above `threshold` (prior candle <= threshold, this one >); with `trend_period`
set, only while the close is above SMA(trend_period). SELL when ROC crosses
below `exit_below` (default 0: the move has fully reversed; set it to
-threshold for a symmetric rule). One signal per crossing.

Stop policy: close - atr_mult * ATR(atr_period) on BUY (default 2 ATR), or None
(worker risk defaults) when atr_mult is None or ATR is not usable yet. No take
profit: the exit is the ROC crossing.

Signal tape: ROC and the trend SMA are recomputed over the whole data set with
the incremental arithmetic (`_exact`), the crossings found in numpy; only the
signal candles run Python, with the same helpers as `on_candle`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any

import numpy as np
from pydantic import Field, ValidationInfo, field_validator

from desk.core.types import Candle, Side, Signal
from desk.strategies._common import (
    atr_stop,
    clamp01,
    common_feature_columns,
    common_features,
    crossed_above,
    crossed_below,
    empty_tape,
    finite,
    finite_array,
    fmt,
    make_tape,
    none_if_nan,
    ratio,
    ratio_array,
)
from desk.strategies._exact import running_atr, running_roc, running_sma
from desk.strategies.base import CandleColumns, CandleWindow, SignalTape, StrategyParams
from desk.strategies.indicators import ATR, ROC, SMA


class MomentumStrategy:
    class Params(StrategyParams):
        lookback: int = Field(20, gt=0, description="ROC lookback, candles")
        threshold: float = Field(0.05, gt=0, lt=1, description="ROC above which to buy, e.g. 0.05 = +5%")
        exit_below: float = Field(0.0, gt=-1, lt=1, description="ROC below which to sell; must be < threshold")
        trend_period: Annotated[int, Field(gt=1)] | None = Field(None, description="buy only above this SMA")
        atr_period: int = Field(14, gt=0, description="ATR period for the stop")
        atr_mult: Annotated[float, Field(gt=0)] | None = Field(2.0, description="stop distance in ATRs; None = off")

        @field_validator("exit_below")
        @classmethod
        def _exit_below_threshold(cls, exit_below: float, info: ValidationInfo) -> float:
            threshold = info.data.get("threshold")  # absent when threshold itself failed validation
            if threshold is not None and exit_below >= threshold:
                raise ValueError(f"exit_below ({exit_below}) must be less than threshold ({threshold})")
            return exit_below

    def __init__(self, params: Params) -> None:
        self.params = params
        # ROC needs lookback+1 closes and a crossing one more; a BUY also needs the trend SMA warm.
        self.warmup: int = max(params.lookback + 2, params.trend_period or 0)
        self._roc = ROC(params.lookback)
        self._trend = SMA(params.trend_period) if params.trend_period else None
        self._atr = ATR(params.atr_period)
        self._prev_roc: float | None = None

    def on_candle(self, candle: Candle, window: CandleWindow, **kwargs: Any) -> Signal | None:
        close = candle.close
        roc = self._roc.update(close)
        trend = self._trend.update(close) if self._trend is not None else None
        atr = self._atr.update(candle.high, candle.low, close)
        if roc is None:
            return None
        prev, self._prev_roc = self._prev_roc, roc
        p = self.params
        if crossed_above(prev, roc, p.threshold):
            if self._trend is not None and (trend is None or close <= trend):
                return None  # momentum against (or before) the trend filter: not an entry
            # Just over the threshold is 0.5; twice the threshold or more is 1.0.
            confidence = clamp01(0.5 + 0.5 * (roc - p.threshold) / p.threshold)
            reason = f"ROC({p.lookback}) {roc:+.2%} crossed above {p.threshold:+.2%}"
            if trend is not None:
                reason += f", close {fmt(close)} above SMA({p.trend_period}) {fmt(trend)}"
            stop = atr_stop(close, atr, p.atr_mult)
            return Signal(side=Side.BUY, stop_price=stop, take_profit=None, confidence=confidence, reason=reason)
        if crossed_below(prev, roc, p.exit_below):
            reason = f"ROC({p.lookback}) {roc:+.2%} crossed below {p.exit_below:+.2%}"
            return Signal(side=Side.SELL, stop_price=None, take_profit=None, confidence=1.0, reason=reason)
        return None

    def features(self, window: CandleWindow, **kwargs: Any) -> dict[str, float]:
        close = window.last_close if len(window) else None
        trend = self._trend.value if self._trend is not None else None
        roc = self._roc.value
        return {
            "roc": finite(roc),
            "roc_over_threshold": ratio(roc, self.params.threshold),
            "trend_gap": ratio(None if close is None or trend is None else close - trend, close),
            **common_features(window, self._atr.value),
        }

    def signal_tape(self, columns: CandleColumns, window_capacity: int) -> SignalTape:
        """Every signal `on_candle` gives over `columns` from a fresh start; see `VectorisedStrategy`."""
        p = self.params
        close = np.asarray(columns.close, dtype=np.float64)
        n = len(close)
        roc = running_roc(close, p.lookback)
        # ROC is None (on_candle returns early, keeping its previous ROC) before it is warm and wherever the
        # base close is not positive; a crossing compares with the last candle where it was known.
        known = np.zeros(n, dtype=bool)
        known[p.lookback :] = close[: max(n - p.lookback, 0)] > 0
        seen = np.flatnonzero(known)
        prev, current = roc[seen[:-1]], roc[seen[1:]]
        up = (prev <= p.threshold) & (current > p.threshold)  # crossed_above(prev, roc, threshold)
        down = (prev >= p.exit_below) & (current < p.exit_below)  # crossed_below(prev, roc, exit_below)
        trend = running_sma(close, p.trend_period) if p.trend_period else np.full(n, np.nan)
        if p.trend_period:
            up &= close[seen[1:]] > trend[seen[1:]]  # the filter: no BUY before the SMA is warm or at/below it
        bars = seen[1:][up | down]
        if not bars.size:
            return empty_tape()
        atr = running_atr(columns.high, columns.low, close, p.atr_period)
        last, value = close[bars], roc[bars]  # ROC is known at every signal

        def signals() -> Iterator[Signal]:  # on_candle's arithmetic, at the signal candles only
            rows = (up[up | down], value, last, trend[bars], atr[bars])
            for buy, roc_now, close_now, trend_now, atr_now in zip(*(a.tolist() for a in rows), strict=True):
                if buy:
                    confidence = clamp01(0.5 + 0.5 * (roc_now - p.threshold) / p.threshold)
                    reason = f"ROC({p.lookback}) {roc_now:+.2%} crossed above {p.threshold:+.2%}"
                    if p.trend_period:
                        reason += f", close {fmt(close_now)} above SMA({p.trend_period}) {fmt(trend_now)}"
                    stop = atr_stop(close_now, none_if_nan(atr_now), p.atr_mult)
                    yield Signal(Side.BUY, stop, None, confidence, reason)
                else:
                    reason = f"ROC({p.lookback}) {roc_now:+.2%} crossed below {p.exit_below:+.2%}"
                    yield Signal(Side.SELL, None, None, 1.0, reason)

        features = {
            "roc": finite_array(value),
            "roc_over_threshold": ratio_array(value, np.full(len(bars), p.threshold)),
            "trend_gap": ratio_array(last - trend[bars], last),
            **common_feature_columns(close, atr, bars, window_capacity),
        }
        return make_tape(bars, signals(), features)
