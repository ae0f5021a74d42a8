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
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from desk.core.types import Candle, Side, Signal
from desk.strategies._common import atr_stop, clamp01, common_features, fmt, ratio, snap
from desk.strategies.base import CandleWindow, StrategyParams
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
