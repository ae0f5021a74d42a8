"""Bollinger band mean reversion: buy the return into the band after a washout.

Trades: a close strictly below the lower band arms the strategy; the first later
close strictly above the lower band is a BUY, provided it is still below the
exit band (if one candle jumps from below the lower band past the exit band the
reversion is already over, so no BUY). SELL when the close reaches the exit
band from below (prior close < band, this close >= band). `exit_band` picks the
band: "mid" (default, the SMA: take the reversion to the mean) or "upper" (hold
for the full swing). Bands are SMA(period) +/- num_std population std devs.

Stop policy: close - atr_mult * ATR(atr_period) on BUY (default 2 ATR), or None
(worker risk defaults) when atr_mult is None or ATR is not usable yet. No take
profit: the exit band moves with the market, so the exit is the SELL signal.

Signal tape: the bands are recomputed bit for bit (`running_bollinger`). The
armed state is a run: it starts on a close below the lower band, survives closes
on the band, and ends on the first close above it (the BUY candidate), so the
candidates are the "above" closes whose previous off-band close was "below", and
each one's deepest z is the minimum over that run of "below" closes.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any, Literal

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
    run_minima,
    snap,
    snap_array,
)
from desk.strategies._exact import running_atr, running_bollinger
from desk.strategies.base import CandleColumns, CandleWindow, SignalTape, StrategyParams
from desk.strategies.indicators import ATR, Bollinger


class BollingerStrategy:
    class Params(StrategyParams):
        period: int = Field(20, gt=1, description="SMA and std window, candles")
        num_std: float = Field(2.0, gt=0, le=10, description="band half-width in standard deviations")
        exit_band: Literal["mid", "upper"] = Field("mid", description="band whose touch from below sells")
        atr_period: int = Field(14, gt=0, description="ATR period for the stop")
        atr_mult: Annotated[float, Field(gt=0)] | None = Field(2.0, description="stop distance in ATRs; None = off")

    def __init__(self, params: Params) -> None:
        self.params = params
        # Bands are ready on candle `period`; a BUY or SELL compares with the candle before.
        self.warmup: int = params.period + 1
        self._bands = Bollinger(params.period, params.num_std)
        self._atr = ATR(params.atr_period)
        self._prev_exit_gap: float | None = None
        # Lowest z-score of the close while below the lower band; None when not armed.
        self._armed_z: float | None = None

    def on_candle(self, candle: Candle, window: CandleWindow, **kwargs: Any) -> Signal | None:
        close = candle.close
        bands = self._bands.update(close)
        atr = self._atr.update(candle.high, candle.low, close)
        if bands is None:
            return None
        p = self.params
        exit_level = bands.mid if p.exit_band == "mid" else bands.upper
        # Snapped so that a flat market (all three bands equal to the close) is "on", never "below".
        lower_gap = snap(close - bands.lower, close)
        exit_gap = snap(close - exit_level, close)
        prev_exit, self._prev_exit_gap = self._prev_exit_gap, exit_gap
        std = self._bands.std or 0.0

        if lower_gap < 0:
            z = ratio(close - bands.mid, std, default=-p.num_std)
            self._armed_z = z if self._armed_z is None else min(self._armed_z, z)
        elif lower_gap > 0 and self._armed_z is not None:
            deepest, self._armed_z = self._armed_z, None
            if exit_gap < 0:
                # Back at the band is 0.5; having been 2 std devs beyond it is 1.0.
                confidence = clamp01(0.5 + 0.25 * (-deepest - p.num_std))
                reason = (
                    f"close {fmt(close)} back above lower band {fmt(bands.lower)} "
                    f"(mid {fmt(bands.mid)}, low z {deepest:.2f})"
                )
                stop = atr_stop(close, atr, p.atr_mult)
                return Signal(side=Side.BUY, stop_price=stop, take_profit=None, confidence=confidence, reason=reason)

        if prev_exit is not None and prev_exit < 0 <= exit_gap:
            reason = f"close {fmt(close)} reached {p.exit_band} band {fmt(exit_level)}"
            return Signal(side=Side.SELL, stop_price=None, take_profit=None, confidence=1.0, reason=reason)
        return None

    def features(self, window: CandleWindow, **kwargs: Any) -> dict[str, float]:
        close = window.last_close if len(window) else None
        bands = self._bands.value
        if bands is None or close is None:
            pct_b, width, mid_gap = 0.5, 0.0, 0.0
        else:
            # %b: 0 at the lower band, 1 at the upper; 0.5 when the bands have zero width.
            pct_b = ratio(close - bands.lower, bands.upper - bands.lower, default=0.5)
            width = ratio(bands.upper - bands.lower, bands.mid)
            mid_gap = ratio(close - bands.mid, close)
        return {
            "pct_b": pct_b,
            "band_width": width,
            "mid_gap": mid_gap,
            **common_features(window, self._atr.value),
        }

    def signal_tape(self, columns: CandleColumns, window_capacity: int) -> SignalTape:
        """Every signal `on_candle` gives over `columns` from a fresh start; see `VectorisedStrategy`."""
        p = self.params
        close = np.asarray(columns.close, dtype=np.float64)
        bands = running_bollinger(close, p.period, p.num_std)  # NaN until warm, where on_candle returns early
        exit_level = bands.mid if p.exit_band == "mid" else bands.upper
        lower_gap = snap_array(close - bands.lower, close)
        exit_gap = snap_array(close - exit_level, close)
        # The off-band closes in order; a disarm is an "above" right after a "below" among them.
        off_band = np.flatnonzero((lower_gap < 0) | (lower_gap > 0))
        below = lower_gap[off_band] < 0
        ends = np.flatnonzero(~below[1:] & below[:-1]) + 1
        z = ratio_array(close - bands.mid, bands.std, default=-p.num_std)  # std 0.0 -> default, as `or 0.0`
        deepest = run_minima(z[off_band], below, ends)
        disarms = off_band[ends]
        buys = exit_gap[disarms] < 0  # a disarm that already reached the exit band is no BUY
        prev_exit = np.concatenate(([np.nan], exit_gap[:-1]))
        sells = np.flatnonzero((prev_exit < 0) & (exit_gap >= 0))  # never a BUY candle: that needs exit_gap < 0
        bars = np.union1d(disarms[buys], sells)
        if not bars.size:
            return empty_tape()
        buying = np.isin(bars, disarms[buys])
        lows = np.zeros(bars.size)  # the deepest z of each BUY's washout
        lows[buying] = deepest[buys]
        atr = running_atr(columns.high, columns.low, close, p.atr_period)
        last = close[bars]
        mid, upper, lower = bands.mid[bars], bands.upper[bars], bands.lower[bars]

        def signals() -> Iterator[Signal]:  # on_candle's arithmetic, at the signal candles only
            rows = (buying, lows, last, lower, mid, exit_level[bars], atr[bars])
            for buy, low_z, close_now, lower_now, mid_now, exit_now, atr_now in zip(
                *(a.tolist() for a in rows), strict=True
            ):
                if buy:
                    confidence = clamp01(0.5 + 0.25 * (-low_z - p.num_std))
                    reason = (
                        f"close {fmt(close_now)} back above lower band {fmt(lower_now)} "
                        f"(mid {fmt(mid_now)}, low z {low_z:.2f})"
                    )
                    stop = atr_stop(close_now, none_if_nan(atr_now), p.atr_mult)
                    yield Signal(Side.BUY, stop, None, confidence, reason)
                else:
                    reason = f"close {fmt(close_now)} reached {p.exit_band} band {fmt(exit_now)}"
                    yield Signal(Side.SELL, None, None, 1.0, reason)

        features = {
            "pct_b": ratio_array(last - lower, upper - lower, default=0.5),
            "band_width": ratio_array(upper - lower, mid),
            "mid_gap": ratio_array(last - mid, last),
            **common_feature_columns(close, atr, bars, window_capacity),
        }
        return make_tape(bars, signals(), features)
