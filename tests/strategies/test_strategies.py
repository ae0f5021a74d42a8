"""Strategies on constructed price paths whose signals are known in advance.

Every path is built with `make_candles` (open = previous close, high/low = body
+/- wick) and driven through `run`, which appends each candle to a CandleWindow
and then calls on_candle, as the worker does. Indices in assertions are 0-based
candle positions in the path.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError
from strategy_helpers import build, make_candles, run, sides

from desk.core.types import Side
from desk.strategies import indicators as ind
from desk.strategies.base import CandleWindow
from desk.strategies.registry import available_slugs, build_strategy, strategy_class

BUY, SELL = Side.BUY, Side.SELL
SHIPPED = ["bollinger", "breakout", "macd", "momentum", "rsi", "sma_cross"]
# Contract tests run over whatever the registry finds, so a new strategy module is covered on arrival.
SLUGS = available_slugs()


def assert_rejected(slug: str, params: dict[str, Any], field: str) -> None:
    """The params fail validation and the error is located at `field` (so config errors name the key)."""
    with pytest.raises(ValidationError) as excinfo:
        build_strategy(slug, params)
    locations = [error["loc"] for error in excinfo.value.errors()]
    assert (field,) in locations, locations


# --------------------------------------------------------------------------- registry and shared contract


def test_available_slugs_when_listed_then_every_shipped_strategy_is_there() -> None:
    assert set(SHIPPED) <= set(available_slugs())


@pytest.mark.parametrize("slug", SLUGS)
def test_build_when_params_empty_then_defaults_load_with_positive_warmup(slug: str) -> None:
    strategy = build_strategy(slug, {})
    assert isinstance(strategy.warmup, int) and strategy.warmup > 0
    assert strategy_class(slug).Params.model_validate({}) == strategy.params


@pytest.mark.parametrize("slug", SLUGS)
def test_build_when_unknown_param_then_validation_error_names_it(slug: str) -> None:
    assert_rejected(slug, {"no_such_param": 1}, "no_such_param")


@pytest.fixture(scope="module")
def volatile_path() -> list[float]:
    """600 closes of a seeded random walk with regime shifts, so every strategy fires many times."""
    rng = np.random.default_rng(42)
    drift = np.repeat(rng.normal(0.0, 0.004, 12), 50)  # a new trend every 50 candles
    returns = drift + rng.normal(0.0, 0.01, 600)
    return list(100.0 * np.exp(np.cumsum(returns)))


@pytest.mark.parametrize("slug", SLUGS)
def test_run_when_volatile_market_then_no_signal_before_warmup_and_some_after(
    slug: str, volatile_path: list[float]
) -> None:
    strategy = build_strategy(slug, {})
    signals = run(strategy, make_candles(volatile_path, wick=0.3))
    assert signals, "the path should make every strategy trade"
    # The first possible signal is on candle number `warmup`, i.e. index warmup - 1.
    assert min(index for index, _ in signals) >= strategy.warmup - 1


@pytest.mark.parametrize("slug", SLUGS)
def test_run_when_volatile_market_then_signals_are_events_not_states(slug: str, volatile_path: list[float]) -> None:
    signals = run(build_strategy(slug, {}), make_candles(volatile_path, wick=0.3))
    consecutive_same_side = [
        (a, b) for (a, sa), (b, sb) in itertools.pairwise(signals) if b == a + 1 and sa.side == sb.side
    ]
    assert consecutive_same_side == []


@pytest.mark.parametrize("slug", SLUGS)
def test_run_when_volatile_market_then_signals_are_well_formed(slug: str, volatile_path: list[float]) -> None:
    candles = make_candles(volatile_path, wick=0.3)
    for index, signal in run(build_strategy(slug, {}), candles):
        assert signal.side in (BUY, SELL)
        assert 0.0 <= signal.confidence <= 1.0
        assert signal.reason
        assert signal.take_profit is None
        if signal.side is SELL:
            assert signal.stop_price is None
        elif signal.stop_price is not None:
            assert 0.0 < signal.stop_price < candles[index].close


@pytest.mark.parametrize("slug", SLUGS)
def test_features_when_called_on_every_candle_then_finite_with_stable_keys(
    slug: str, volatile_path: list[float]
) -> None:
    strategy = build_strategy(slug, {})
    window = CandleWindow(strategy.warmup + 1)
    keys: set[str] | None = None
    for candle in make_candles(volatile_path[:200], wick=0.3):
        window.append(candle)
        strategy.on_candle(candle, window)
        features = strategy.features(window)
        assert features and all(isinstance(v, float) and math.isfinite(v) for v in features.values())
        keys = keys or set(features)
        assert set(features) == keys  # a learner needs the same columns before and after warm-up


@pytest.mark.parametrize("slug", SLUGS)
def test_features_when_window_is_empty_or_flat_then_finite(slug: str) -> None:
    strategy = build_strategy(slug, {})
    assert all(math.isfinite(v) for v in strategy.features(CandleWindow(5)).values())
    window = CandleWindow(3)  # smaller than every lookback the features use
    for candle in make_candles([50.0] * 100):
        window.append(candle)
        strategy.on_candle(candle, window)
    assert all(math.isfinite(v) for v in strategy.features(window).values())


@pytest.mark.parametrize("slug", SLUGS)
def test_run_when_flat_market_at_inexact_price_then_rounding_noise_never_signals(slug: str) -> None:
    # 0.1-style prices are not exactly representable: running sums of them differ in the last bit.
    assert run(build_strategy(slug, {}), make_candles([1234.567] * 300)) == []


@pytest.mark.parametrize("slug", SLUGS)
def test_run_when_same_path_twice_then_same_signals(slug: str, volatile_path: list[float]) -> None:
    candles = make_candles(volatile_path, wick=0.3)
    assert run(build_strategy(slug, {}), candles) == run(build_strategy(slug, {}), candles)


# --------------------------------------------------------------------------- sma_cross


def test_sma_cross_when_step_up_then_step_down_then_buy_at_step_and_sell_at_drop() -> None:
    # 40 x 100, 40 x 110, 20 x 100, defaults fast=10 slow=30.
    # idx 40: fast = (9*100 + 110)/10 = 101 > slow = (29*100 + 110)/30 = 100.33; at idx 39 both were 100 -> BUY.
    # idx 69..79: both 110 (gap 0, no crossing). idx 80: fast = 109 < slow = 109.67 -> SELL.
    signals = run(build("sma_cross"), make_candles([100.0] * 40 + [110.0] * 40 + [100.0] * 20))
    assert sides(signals) == [(40, BUY), (80, SELL)]
    for _, signal in signals:
        assert signal.stop_price is None and signal.take_profit is None  # pure crossover for the benchmark
        assert signal.confidence == 1.0
    assert "101" in signals[0][1].reason and "100.333" in signals[0][1].reason


def test_sma_cross_when_step_lands_on_first_candle_after_warmup_then_buys_there() -> None:
    # The slow SMA is first ready at idx 29 (gap 0); the step at idx 30 = warmup - 1 is the earliest crossing.
    strategy = build("sma_cross")
    assert strategy.warmup == 31
    assert sides(run(strategy, make_candles([100.0] * 30 + [110.0] * 5))) == [(30, BUY)]


def test_sma_cross_when_step_happens_before_warmup_then_no_signal_ever() -> None:
    # Step at idx 20: when the slow SMA is ready (idx 29) fast is already above; that is a state, not a crossing.
    assert run(build("sma_cross"), make_candles([100.0] * 20 + [110.0] * 60)) == []


def test_sma_cross_params_when_fast_not_below_slow_then_rejected_at_slow() -> None:
    assert_rejected("sma_cross", {"fast": 30, "slow": 10}, "slow")
    assert_rejected("sma_cross", {"fast": 20, "slow": 20}, "slow")


def test_sma_cross_params_when_period_not_positive_then_rejected_at_that_field() -> None:
    assert_rejected("sma_cross", {"fast": -1}, "fast")
    assert_rejected("sma_cross", {"fast": 0}, "fast")
    assert_rejected("sma_cross", {"slow": 1, "fast": 1}, "slow")


# --------------------------------------------------------------------------- momentum


def test_momentum_when_rise_above_threshold_then_fall_then_buy_with_atr_stop_and_sell_below_zero() -> None:
    # lookback 5, threshold 5%, exit below 0, ATR(3) for the stop.
    # idx 10: ROC = 106/100 - 1 = +6% > 5% (idx 9: 0%) -> BUY.
    #   TRs of the flat candles are 0; idx 10 candle 100->106 has TR 6; ATR(3) = (0*2 + 6)/3 = 2
    #   stop = 106 - 2*2 = 102; confidence = 0.5 + 0.5*(0.06-0.05)/0.05 = 0.6
    # idx 15: ROC = 106/106 - 1 = 0, not below 0. idx 20: ROC = 100/106 - 1 = -5.7% -> SELL.
    strategy = build("momentum", lookback=5, threshold=0.05, atr_period=3)
    signals = run(strategy, make_candles([100.0] * 10 + [106.0] * 10 + [100.0] * 5))
    assert sides(signals) == [(10, BUY), (20, SELL)]
    buy = signals[0][1]
    assert buy.stop_price == pytest.approx(102.0)
    assert buy.confidence == pytest.approx(0.6)
    assert "+6.00%" in buy.reason


def test_momentum_when_rise_stays_below_threshold_then_no_signal() -> None:
    # +4% over 5 candles never crosses +5%.
    assert run(build("momentum", lookback=5, threshold=0.05), make_candles([100.0] * 10 + [104.0] * 10)) == []


def test_momentum_when_exit_below_is_minus_threshold_then_small_dip_holds_and_big_drop_sells() -> None:
    # idx 10 BUY (+6%); idx 20: 103/106 - 1 = -2.8%, above -5%: no SELL; idx 30: 97/103 - 1 = -5.8% -> SELL.
    strategy = build("momentum", lookback=5, threshold=0.05, exit_below=-0.05)
    closes = [100.0] * 10 + [106.0] * 10 + [103.0] * 10 + [97.0] * 5
    assert sides(run(strategy, make_candles(closes))) == [(10, BUY), (30, SELL)]


def test_momentum_when_trend_filter_set_and_bounce_is_below_trend_sma_then_no_buy() -> None:
    # 60 candles falling 1 per candle from 160 to 101, then a jump to 112 at idx 60:
    # ROC(5) = 112/105 - 1 = +6.7% (idx 59: 101/106 - 1 < 0) -> a crossing of +5%.
    # SMA(50) at the jump is (149 + 148 + ... + 101 + 112)/50 = 124.74, above 112: the filter blocks it.
    closes = [160.0 - i for i in range(60)] + [112.0] * 5
    jump = 60
    assert sides(run(build("momentum", lookback=5), make_candles(closes))) == [(jump, BUY)]
    assert run(build("momentum", lookback=5, trend_period=50), make_candles(closes)) == []


def test_momentum_when_trend_filter_set_and_breakout_is_above_trend_sma_then_buy() -> None:
    # Flat at 100 long enough for SMA(50) = 100, then +6%: close 106 > SMA -> BUY at the jump.
    strategy = build("momentum", lookback=5, trend_period=50)
    assert strategy.warmup == 50
    assert sides(run(strategy, make_candles([100.0] * 60 + [106.0] * 3))) == [(60, BUY)]


def test_momentum_when_fewer_candles_than_warmup_then_no_signal() -> None:
    # lookback 5 -> warmup 7: ROC is first known at idx 5, so a jump at idx 5 has nothing to cross from.
    strategy = build("momentum", lookback=5)
    assert strategy.warmup == 7
    assert run(strategy, make_candles([100.0] * 5 + [110.0] * 10)) == []
    # One candle later the jump is a crossing, at idx 6 = warmup - 1.
    assert sides(run(build("momentum", lookback=5), make_candles([100.0] * 6 + [110.0] * 10))) == [(6, BUY)]


def test_momentum_params_when_related_or_out_of_range_then_rejected_at_field() -> None:
    assert_rejected("momentum", {"threshold": 0.05, "exit_below": 0.05}, "exit_below")
    assert_rejected("momentum", {"lookback": 0}, "lookback")
    assert_rejected("momentum", {"threshold": -0.01}, "threshold")
    assert_rejected("momentum", {"trend_period": 0}, "trend_period")
    assert_rejected("momentum", {"atr_mult": 0}, "atr_mult")


def test_momentum_when_atr_mult_none_then_buy_leaves_stop_to_risk_defaults() -> None:
    signals = run(build("momentum", lookback=5, atr_mult=None), make_candles([100.0] * 20 + [106.0] * 3))
    assert sides(signals) == [(20, BUY)]
    assert signals[0][1].stop_price is None


# --------------------------------------------------------------------------- rsi


def test_rsi_when_drop_then_recovery_then_buy_through_oversold_and_sell_above_overbought() -> None:
    # period 5. Flat 100 x 10 (RSI 50), then 98, 96, 94, 92 (losses of 2), then 95, 98, 101 (gains of 3).
    # idx 10: avg gain 0, avg loss (0*4 + 2)/5 = 0.4 -> RSI 0 (below 30)
    # idx 11..13: loss avg 0.72, 0.976, 1.1808; RSI stays 0
    # idx 14 (+3): gain (0*4 + 3)/5 = 0.6, loss 1.1808*4/5 = 0.94464, RS 0.635 -> RSI 38.8 > 30 -> BUY
    # idx 15 (+3): gain (0.6*4 + 3)/5 = 1.08, loss 0.75571 -> RSI 58.8
    # idx 16 (+3): gain (1.08*4 + 3)/5 = 1.464, loss 0.60457 -> RS 2.4215 -> RSI 70.8 > 70 -> SELL
    closes = [100.0] * 10 + [98.0, 96.0, 94.0, 92.0, 95.0, 98.0, 101.0, 104.0]
    strategy = build("rsi", period=5, oversold=30, overbought=70)
    signals = run(strategy, make_candles(closes))
    assert sides(signals) == [(14, BUY), (16, SELL)]
    buy = signals[0][1]
    assert "38.8" in buy.reason
    assert buy.confidence == pytest.approx(1.0)  # bounced from RSI 0: 0.5 + 0.5*(30-0)/30
    # ATR(14) is ready by idx 14: the stop is close - 2*ATR, matching the batch reference.
    candles = make_candles(closes)
    atr = ind.atr([c.high for c in candles], [c.low for c in candles], [c.close for c in candles], 14)
    assert buy.stop_price == pytest.approx(95.0 - 2.0 * atr[14])


def test_rsi_when_price_keeps_falling_then_no_buy_while_oversold() -> None:
    closes = [100.0] * 10 + [100.0 - 2.0 * i for i in range(1, 30)]
    assert run(build("rsi", period=5), make_candles(closes)) == []


def test_rsi_when_drop_happens_before_warmup_then_first_signal_not_before_warmup() -> None:
    # period 5 -> warmup 7 (RSI known at idx 5: five losses of 10, RSI 0). Crash during warm-up, then
    # idx 6 (+25): gain 25/5 = 5, loss (10*4 + 0)/5 = 8, RS 0.625 -> RSI 38.5 > 30: BUY on the first candle allowed.
    strategy = build("rsi", period=5)
    assert strategy.warmup == 7
    closes = [100.0, 90.0, 80.0, 70.0, 60.0, 50.0, 75.0, 80.0, 85.0]
    signals = run(strategy, make_candles(closes))
    assert signals and min(i for i, _ in signals) >= strategy.warmup - 1
    assert sides(signals)[0] == (6, BUY)


def test_rsi_params_when_levels_inverted_or_out_of_range_then_rejected_at_field() -> None:
    assert_rejected("rsi", {"oversold": 70, "overbought": 30}, "overbought")
    assert_rejected("rsi", {"period": 0}, "period")
    assert_rejected("rsi", {"oversold": 0}, "oversold")
    assert_rejected("rsi", {"overbought": 100}, "overbought")


# --------------------------------------------------------------------------- macd


def test_macd_when_flat_then_ramp_then_decline_then_buy_at_ramp_start_and_sell_at_turn() -> None:
    # fast 3, slow 6, signal 3. Flat 100 x 20: line = signal = histogram = 0.
    # idx 20 (101): the fast EMA moves more than the slow one, the line jumps above its lagging signal -> BUY.
    # Along the ramp the histogram shrinks towards 0 but stays >= 0.
    # idx 50 (129, first down candle): the line drops below the signal -> SELL.
    closes = [100.0] * 20 + [100.0 + i for i in range(1, 31)] + [130.0 - i for i in range(1, 20)]
    signals = run(build("macd", fast=3, slow=6, signal=3), make_candles(closes))
    assert sides(signals) == [(20, BUY), (50, SELL)]
    line, _signal, hist = ind.macd(closes, 3, 6, 3)
    assert hist[19] == pytest.approx(0.0) and hist[20] > 0 and hist[49] >= 0 > hist[50]  # the reference agrees
    assert f"{line[20]:.6g}" in signals[0][1].reason


def test_macd_when_fewer_candles_than_warmup_then_no_signal() -> None:
    # fast 3, slow 6, signal 3 -> warmup 9: the histogram is first known at idx 7, so a step there has
    # nothing to cross from; one candle later it is a crossing at idx 8 = warmup - 1.
    strategy = build("macd", fast=3, slow=6, signal=3)
    assert strategy.warmup == 9
    assert run(strategy, make_candles([100.0] * 7 + [110.0] * 2)) == []
    assert sides(run(build("macd", fast=3, slow=6, signal=3), make_candles([100.0] * 8 + [110.0]))) == [(8, BUY)]


def test_macd_params_when_slow_not_above_fast_or_period_bad_then_rejected_at_field() -> None:
    assert_rejected("macd", {"fast": 26, "slow": 12}, "slow")
    assert_rejected("macd", {"signal": 0}, "signal")
    assert_rejected("macd", {"fast": -5}, "fast")


# --------------------------------------------------------------------------- bollinger


def test_bollinger_when_washout_then_recovery_then_buy_back_inside_and_sell_at_mid() -> None:
    # period 10, 2 std. Flat 100 x 10: all bands 100.
    # idx 10 (90): window 9 x 100 + 90, mean 99, var (9*1 + 81)/10 = 9, std 3, lower 93 -> 90 is below: armed.
    # idx 11 (95): 8 x 100, 90, 95: mean 98.5, var (8*2.25 + 72.25 + 12.25)/10 = 10.25, std 3.2016,
    #             lower 92.097 -> 95 back above, and below the mid 98.5 -> BUY.
    # idx 12 (99): mean 98.4 -> close reaches the mid from below -> SELL.
    closes = [100.0] * 10 + [90.0, 95.0, 99.0, 110.0, 100.0]
    signals = run(build("bollinger", period=10), make_candles(closes))
    assert sides(signals) == [(11, BUY), (12, SELL)]
    assert "92.0969" in signals[0][1].reason
    # Deepest z was (90-99)/3 = -3, one std beyond the band: 0.5 + 0.25*1.
    assert signals[0][1].confidence == pytest.approx(0.75)


def test_bollinger_when_exit_band_upper_then_sell_only_at_upper_band() -> None:
    # Same path: idx 12 (99) is under the upper band 104.7; idx 13 (110): mean 99.4, std 4.716,
    # upper 108.83 -> SELL there instead.
    closes = [100.0] * 10 + [90.0, 95.0, 99.0, 110.0, 100.0]
    signals = run(build("bollinger", period=10, exit_band="upper"), make_candles(closes))
    assert sides(signals) == [(11, BUY), (13, SELL)]


def test_bollinger_when_rebound_leaps_past_mid_in_one_candle_then_no_buy() -> None:
    # idx 10 (90) arms; idx 11 (105): mean 99.5 -> already past the mid, the reversion is over: SELL, not BUY.
    closes = [100.0] * 10 + [90.0, 105.0, 105.0]
    assert sides(run(build("bollinger", period=10), make_candles(closes))) == [(11, SELL)]


def test_bollinger_when_rise_from_flat_then_no_buy() -> None:
    # A flat band has zero width; rising out of it is not a rebound from below the lower band.
    closes = [100.0] * 15 + [100.0 + i for i in range(1, 20)]
    assert [s for s in sides(run(build("bollinger", period=10), make_candles(closes))) if s[1] is BUY] == []


def test_bollinger_when_washout_before_warmup_then_no_buy_before_warmup() -> None:
    # period 10 -> warmup 11: the dip at idx 8 happens before the bands exist (idx 9) and must not arm
    # anything, so the recovery buys nothing. (Reaching the mid at idx 10 is a SELL, harmless when flat.)
    strategy = build("bollinger", period=10)
    assert strategy.warmup == 11
    closes = [100.0] * 8 + [90.0, 95.0, 99.0, 100.0, 100.0]
    assert sides(run(strategy, make_candles(closes))) == [(10, SELL)]


def test_bollinger_params_when_out_of_range_then_rejected_at_field() -> None:
    assert_rejected("bollinger", {"period": 1}, "period")
    assert_rejected("bollinger", {"num_std": 0}, "num_std")
    assert_rejected("bollinger", {"exit_band": "lower"}, "exit_band")


# --------------------------------------------------------------------------- breakout


def test_breakout_when_close_clears_prior_high_then_buy_and_below_prior_low_then_sell() -> None:
    # entry 5, exit 3, ATR(3); wick 0.5 so flat 100 candles span 99.5..100.5 (TR 1).
    # idx 10: close 101 > prior 5-candle high 100.5 -> BUY. Its TR = 101.5 - 99.5 = 2,
    #         ATR = (1*2 + 2)/3 = 4/3, stop = 101 - 2*4/3 = 98.333
    # idx 11..19: close 101 < prior high 101.5: nothing.
    # idx 20: close 98 < prior 3-candle low 100.5 -> SELL.
    strategy = build("breakout", entry_period=5, exit_period=3, atr_period=3)
    signals = run(strategy, make_candles([100.0] * 10 + [101.0] * 10 + [98.0] * 5, wick=0.5))
    assert sides(signals) == [(10, BUY), (20, SELL)]
    assert signals[0][1].stop_price == pytest.approx(101.0 - 8.0 / 3.0)
    assert "100.5" in signals[0][1].reason


def test_breakout_when_current_candle_high_is_above_close_then_prior_channel_still_buys() -> None:
    # idx 10 closes at 100.6 with its own high 101.1: only a channel that excludes the current candle
    # (prior high 100.5) lets the close break out.
    candles = make_candles([100.0] * 10 + [100.6], wick=0.5)
    assert candles[10].high == pytest.approx(101.1)
    assert sides(run(build("breakout", entry_period=5, exit_period=3), candles)) == [(10, BUY)]


def test_breakout_when_closes_keep_making_new_highs_then_only_first_signals_until_a_pause() -> None:
    # idx 10..14 each close above the prior high: one BUY at 10. idx 15..16 pause inside the channel,
    # idx 17 breaks out again: a fresh BUY.
    closes = [100.0] * 10 + [101.0, 102.0, 103.0, 104.0, 105.0, 104.8, 104.8, 106.0]
    signals = run(build("breakout", entry_period=5, exit_period=3), make_candles(closes))
    assert sides(signals) == [(10, BUY), (17, BUY)]


def test_breakout_when_close_equals_prior_high_then_no_buy() -> None:
    assert run(build("breakout", entry_period=5, exit_period=3), make_candles([100.0] * 20)) == []


def test_breakout_when_fewer_candles_than_warmup_then_no_signal() -> None:
    # entry 5, exit 3 -> warmup 6: the prior 5-candle channel exists from idx 5.
    strategy = build("breakout", entry_period=5, exit_period=3)
    assert strategy.warmup == 6
    assert sides(run(strategy, make_candles([100.0] * 5 + [110.0]))) == [(5, BUY)]
    assert run(build("breakout", entry_period=5, exit_period=3), make_candles([100.0] * 4 + [110.0])) == []


def test_breakout_params_when_out_of_range_then_rejected_at_field() -> None:
    assert_rejected("breakout", {"entry_period": 0}, "entry_period")
    assert_rejected("breakout", {"exit_period": -1}, "exit_period")
    assert_rejected("breakout", {"atr_mult": -2.0}, "atr_mult")
