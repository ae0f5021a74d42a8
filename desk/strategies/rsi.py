"""RSI mean reversion: buy the bounce out of oversold, sell into overbought.

Trades: BUY when Wilder's RSI(period) crosses up through `oversold` (prior
candle <= oversold, this one > oversold), i.e. on the first sign of recovery
rather than while it is still falling; SELL when RSI crosses above
`overbought`. One signal per crossing.

Stop policy: close - atr_mult * ATR(atr_period) on BUY (default 2 ATR), or None
(worker risk defaults) when atr_mult is None or ATR is not usable yet. No take
profit: the exit is the overbought crossing.

Signal tape: RSI is recomputed over the whole data set with the incremental
arithmetic (`_exact`, bit for bit), the crossings found in numpy, and each BUY's
trough is the minimum of the oversold run just before it: the trough resets only
on a BUY, and every run of RSI <= oversold ends in one.
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
    empty_tape,
    finite,
    finite_array,
    greater_than,
    make_tape,
    none_if_nan,
    run_minima,
)
from desk.strategies._exact import running_atr, running_rsi
from desk.strategies.base import CandleColumns, CandleWindow, SignalTape, StrategyParams
from desk.strategies.indicators import ATR, RSI


class RsiStrategy:
    class Params(StrategyParams):
        period: int = Field(14, gt=0, description="RSI period, candles")
        oversold: float = Field(30.0, gt=0, lt=100, description="RSI level whose upward crossing buys")
        overbought: float = Field(70.0, gt=0, lt=100, description="RSI level whose upward crossing sells")
        atr_period: int = Field(14, gt=0, description="ATR period for the stop")
        atr_mult: Annotated[float, Field(gt=0)] | None = Field(2.0, description="stop distance in ATRs; None = off")

        _overbought_above_oversold = greater_than("overbought", "oversold")

    def __init__(self, params: Params) -> None:
        self.params = params
        # RSI needs period changes (period+1 closes) and a crossing one more candle.
        self.warmup: int = params.period + 2
        self._rsi = RSI(params.period)
        self._atr = ATR(params.atr_period)
        self._prev_rsi: float | None = None
        # Lowest RSI since it last went to or below oversold; sizes the BUY's confidence.
        self._trough: float | None = None

    def on_candle(self, candle: Candle, window: CandleWindow, **kwargs: Any) -> Signal | None:
        close = candle.close
        rsi = self._rsi.update(close)
        atr = self._atr.update(candle.high, candle.low, close)
        if rsi is None:
            return None
        prev, self._prev_rsi = self._prev_rsi, rsi
        p = self.params
        if rsi <= p.oversold:
            self._trough = rsi if self._trough is None else min(self._trough, rsi)
        if crossed_above(prev, rsi, p.oversold):
            trough = self._trough if self._trough is not None else p.oversold
            self._trough = None
            # A bounce from just under oversold is 0.5; from RSI 0 it is 1.0.
            confidence = clamp01(0.5 + 0.5 * (p.oversold - trough) / p.oversold)
            reason = f"RSI({p.period}) {rsi:.1f} crossed up through oversold {p.oversold:g} (low {trough:.1f})"
            stop = atr_stop(close, atr, p.atr_mult)
            return Signal(side=Side.BUY, stop_price=stop, take_profit=None, confidence=confidence, reason=reason)
        if crossed_above(prev, rsi, p.overbought):
            reason = f"RSI({p.period}) {rsi:.1f} crossed above overbought {p.overbought:g}"
            return Signal(side=Side.SELL, stop_price=None, take_profit=None, confidence=1.0, reason=reason)
        return None

    def features(self, window: CandleWindow, **kwargs: Any) -> dict[str, float]:
        rsi = self._rsi.value
        p = self.params
        return {
            "rsi": finite(rsi, 50.0) / 100.0,
            "rsi_below_oversold": max(0.0, p.oversold - finite(rsi, 50.0)) / 100.0,
            "rsi_above_overbought": max(0.0, finite(rsi, 50.0) - p.overbought) / 100.0,
            **common_features(window, self._atr.value),
        }

    def signal_tape(self, columns: CandleColumns, window_capacity: int) -> SignalTape:
        """Every signal `on_candle` gives over `columns` from a fresh start; see `VectorisedStrategy`."""
        p = self.params
        close = np.asarray(columns.close, dtype=np.float64)
        rsi = running_rsi(close, p.period)  # NaN until warm: no prev there, as on_candle returns early
        prev, current = rsi[:-1], rsi[1:]
        buy = (prev <= p.oversold) & (current > p.oversold)  # crossed_above(prev, rsi, oversold)
        sell = (prev <= p.overbought) & (current > p.overbought) & ~buy  # a jump through both levels buys
        bars = np.flatnonzero(buy | sell) + 1
        if not bars.size:
            return empty_tape()
        buying = buy[bars - 1]
        troughs = np.full(bars.size, np.nan)
        troughs[buying] = run_minima(rsi, rsi <= p.oversold, bars[buying])
        atr = running_atr(columns.high, columns.low, close, p.atr_period)

        def signals() -> Iterator[Signal]:  # on_candle's arithmetic, at the signal candles only
            rows = (buying, rsi[bars], troughs, close[bars], atr[bars])
            for is_buy, value, trough, last, atr_now in zip(*(a.tolist() for a in rows), strict=True):
                if is_buy:
                    confidence = clamp01(0.5 + 0.5 * (p.oversold - trough) / p.oversold)
                    reason = (
                        f"RSI({p.period}) {value:.1f} crossed up through oversold {p.oversold:g} (low {trough:.1f})"
                    )
                    stop = atr_stop(last, none_if_nan(atr_now), p.atr_mult)
                    yield Signal(Side.BUY, stop, None, confidence, reason)
                else:
                    reason = f"RSI({p.period}) {value:.1f} crossed above overbought {p.overbought:g}"
                    yield Signal(Side.SELL, None, None, 1.0, reason)

        value = finite_array(rsi[bars], 50.0)
        below, above = p.oversold - value, value - p.overbought
        features = {
            "rsi": value / 100.0,
            "rsi_below_oversold": np.where(below > 0.0, below, 0.0) / 100.0,  # max(0.0, below)
            "rsi_above_overbought": np.where(above > 0.0, above, 0.0) / 100.0,
            **common_feature_columns(close, atr, bars, window_capacity),
        }
        return make_tape(bars, signals(), features)
