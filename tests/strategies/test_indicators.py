"""Indicators against hand-computed values on tiny series, and incremental == batch on a long random one."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pytest

from desk.strategies import indicators as ind

NAN = math.nan


def feed(indicator: Any, *series: Sequence[float]) -> list[Any]:
    """Call indicator.update(*row) for each row of the zipped series and collect the results."""
    return [indicator.update(*row) for row in zip(*series, strict=True)]


def assert_series(actual: Sequence[float | None], expected: Sequence[float]) -> None:
    """None from an incremental indicator and NaN from a batch one both mean "not warm yet"."""
    assert len(actual) == len(expected)
    for got, want in zip(actual, expected, strict=True):
        if math.isnan(want):
            assert got is None or math.isnan(got)
        else:
            assert got == pytest.approx(want, rel=1e-12, abs=1e-12)


# --------------------------------------------------------------------------- hand-computed values


def test_sma_when_period_three_then_mean_of_last_three_from_third_value() -> None:
    closes = [1.0, 2.0, 3.0, 4.0, 5.0]
    # (1+2+3)/3 = 2, (2+3+4)/3 = 3, (3+4+5)/3 = 4
    expected = [NAN, NAN, 2.0, 3.0, 4.0]
    assert_series(feed(ind.SMA(3), closes), expected)
    assert_series(list(ind.sma(closes, 3)), expected)


def test_ema_when_period_three_then_seeded_with_sma_and_alpha_one_half() -> None:
    closes = [2.0, 4.0, 6.0, 8.0, 4.0]
    # alpha = 2/(3+1) = 0.5; seed = (2+4+6)/3 = 4
    # then 4 + 0.5*(8-4) = 6, then 6 + 0.5*(4-6) = 5
    expected = [NAN, NAN, 4.0, 6.0, 5.0]
    assert_series(feed(ind.EMA(3), closes), expected)
    assert_series(list(ind.ema(closes, 3)), expected)


def test_rsi_when_period_three_then_wilder_averages_after_simple_seed() -> None:
    closes = [10.0, 11.0, 12.0, 11.0, 13.0, 12.0]
    # changes: +1, +1, -1, +2, -1
    # index 3: avg gain = (1+1+0)/3 = 2/3, avg loss = (0+0+1)/3 = 1/3, RS = 2, RSI = 100 - 100/3
    # index 4 (+2): gain = (2/3*2 + 2)/3 = 10/9, loss = (1/3*2 + 0)/3 = 2/9, RS = 5, RSI = 100 - 100/6
    # index 5 (-1): gain = (10/9*2 + 0)/3 = 20/27, loss = (2/9*2 + 1)/3 = 13/27, RS = 20/13,
    #               RSI = 100 - 100/(33/13) = 100 - 1300/33
    expected = [NAN, NAN, NAN, 100 - 100 / 3, 100 - 100 / 6, 100 - 1300 / 33]
    assert_series(feed(ind.RSI(3), closes), expected)
    assert_series(list(ind.rsi(closes, 3)), expected)


def test_rsi_when_no_losses_then_100_and_when_flat_then_50() -> None:
    # Only gains: avg loss is 0, so RSI is 100 by convention.
    assert_series(feed(ind.RSI(2), [1.0, 2.0, 3.0, 4.0]), [NAN, NAN, 100.0, 100.0])
    # No movement at all: 0/0, which the module defines as a neutral 50.
    assert_series(feed(ind.RSI(2), [5.0, 5.0, 5.0, 5.0]), [NAN, NAN, 50.0, 50.0])
    assert_series(list(ind.rsi([5.0, 5.0, 5.0, 5.0], 2)), [NAN, NAN, 50.0, 50.0])
    # Only losses: avg gain 0, RS = 0, RSI = 0.
    assert_series(feed(ind.RSI(2), [4.0, 3.0, 2.0]), [NAN, NAN, 0.0])


def test_atr_when_period_three_then_true_range_uses_previous_close_and_wilder_smoothing() -> None:
    highs = [10.0, 11.0, 12.0, 11.0, 9.0, 12.0]
    lows = [8.0, 9.0, 10.0, 7.0, 8.0, 11.0]
    closes = [9.0, 10.5, 11.0, 8.0, 8.5, 11.5]
    # TR0 = 10-8 = 2 (no previous close)
    # TR1 = max(11-9, |11-9|, |9-9|) = 2
    # TR2 = max(12-10, |12-10.5|, |10-10.5|) = 2          -> first ATR = (2+2+2)/3 = 2
    # TR3 = max(11-7, |11-11|, |7-11|) = 4                -> ATR = (2*2 + 4)/3 = 8/3
    # TR4 = max(9-8, |9-8|, |8-8|) = 1                    -> ATR = (8/3*2 + 1)/3 = 19/9
    # TR5 = max(12-11, |12-8.5|, |11-8.5|) = 3.5 (a gap)  -> ATR = (19/9*2 + 3.5)/3 = 69.5/27
    assert list(ind.true_range(highs, lows, closes)) == [2.0, 2.0, 2.0, 4.0, 1.0, 3.5]
    expected = [NAN, NAN, 2.0, 8 / 3, 19 / 9, 69.5 / 27]
    assert_series(feed(ind.ATR(3), highs, lows, closes), expected)
    assert_series(list(ind.atr(highs, lows, closes, 3)), expected)


def test_macd_when_periods_two_three_two_then_line_signal_histogram_by_hand() -> None:
    closes = [1.0, 2.0, 3.0, 4.0, 6.0, 5.0]
    # EMA(2), alpha 2/3: seed (1+2)/2 = 3/2; 3/2 + 2/3*(3-3/2) = 5/2; 5/2 + 2/3*(4-5/2) = 7/2;
    #                    7/2 + 2/3*(6-7/2) = 31/6; 31/6 + 2/3*(5-31/6) = 91/18
    # EMA(3), alpha 1/2: seed (1+2+3)/3 = 2; 2 + (4-2)/2 = 3; 3 + (6-3)/2 = 9/2; 9/2 + (5-9/2)/2 = 19/4
    # line (from index 2): 5/2-2 = 1/2; 7/2-3 = 1/2; 31/6-9/2 = 2/3; 91/18-19/4 = 11/36
    # signal EMA(2) of the line: seed (1/2+1/2)/2 = 1/2 at index 3; 1/2 + 2/3*(2/3-1/2) = 11/18;
    #                            11/18 + 2/3*(11/36-11/18) = 11/27
    # histogram: 0; 2/3-11/18 = 1/18; 11/36-11/27 = -11/108
    line = [NAN, NAN, 1 / 2, 1 / 2, 2 / 3, 11 / 36]
    signal = [NAN, NAN, NAN, 1 / 2, 11 / 18, 11 / 27]
    hist = [NAN, NAN, NAN, 0.0, 1 / 18, -11 / 108]
    macd = ind.MACD(2, 3, 2)
    values = feed(macd, closes)
    assert values[:3] == [None, None, None]
    assert macd.ready
    assert_series([v.line for v in values[3:]], line[3:])
    assert_series([v.signal for v in values[3:]], signal[3:])
    assert_series([v.histogram for v in values[3:]], hist[3:])
    batch_line, batch_signal, batch_hist = ind.macd(closes, 2, 3, 2)
    assert_series(list(batch_line), line)
    assert_series(list(batch_signal), signal)
    assert_series(list(batch_hist), hist)


def test_bollinger_when_textbook_series_then_population_std_of_two() -> None:
    closes = [2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]
    # mean = 40/8 = 5; squared deviations 9+1+1+1+0+0+4+16 = 32; population var = 32/8 = 4, std = 2
    # bands with k=2: mid 5, upper 5+4 = 9, lower 5-4 = 1
    values = feed(ind.Bollinger(8, 2.0), closes)
    assert values[:7] == [None] * 7
    assert values[7] == pytest.approx((5.0, 9.0, 1.0))
    mid, upper, lower = ind.bollinger(closes, 8, 2.0)
    assert (mid[7], upper[7], lower[7]) == pytest.approx((5.0, 9.0, 1.0))
    assert np.isnan(mid[:7]).all()


def test_bollinger_when_window_slides_then_old_values_leave_the_band() -> None:
    closes = [1.0, 3.0, 7.0]
    # period 2, k=1: [1,3] mean 2, std 1 -> (2, 3, 1); [3,7] mean 5, std 2 -> (5, 7, 3)
    values = feed(ind.Bollinger(2, 1.0), closes)
    assert values[0] is None
    assert values[1] == pytest.approx((2.0, 3.0, 1.0))
    assert values[2] == pytest.approx((5.0, 7.0, 3.0))


def test_bollinger_when_flat_then_zero_width_never_negative_variance() -> None:
    bands = ind.Bollinger(5, 2.0)
    for _ in range(50):
        value = bands.update(100.1)  # not exactly representable: the sums carry rounding
    assert value is not None
    assert bands.std == 0.0
    assert value.upper == value.mid == value.lower == pytest.approx(100.1, rel=1e-15)


def test_donchian_when_period_three_then_highest_high_and_lowest_low_including_current() -> None:
    highs = [5.0, 7.0, 6.0, 4.0, 3.0, 8.0]
    lows = [4.0, 5.0, 5.0, 2.0, 1.0, 6.0]
    # idx2: max(5,7,6)=7 min(4,5,5)=4; idx3: max(7,6,4)=7 min(5,5,2)=2
    # idx4: max(6,4,3)=6 min(5,2,1)=1; idx5: max(4,3,8)=8 min(2,1,6)=1
    values = feed(ind.Donchian(3), highs, lows)
    assert values == [None, None, (7.0, 4.0), (7.0, 2.0), (6.0, 1.0), (8.0, 1.0)]
    upper, lower = ind.donchian(highs, lows, 3)
    assert_series(list(upper), [NAN, NAN, 7.0, 7.0, 6.0, 8.0])
    assert_series(list(lower), [NAN, NAN, 4.0, 2.0, 1.0, 1.0])


def test_roc_when_period_two_then_change_against_two_closes_ago() -> None:
    closes = [100.0, 110.0, 121.0, 99.0]
    # idx2: 121/100 - 1 = 0.21; idx3: 99/110 - 1 = -0.1
    expected = [NAN, NAN, 0.21, -0.1]
    assert_series(feed(ind.ROC(2), closes), expected)
    assert_series(list(ind.roc(closes, 2)), expected)


# --------------------------------------------------------------------------- warm-up and validation


@pytest.mark.parametrize(
    ("make", "rows_needed"),
    [
        (lambda: ind.SMA(5), 5),
        (lambda: ind.EMA(5), 5),
        (lambda: ind.RSI(5), 6),
        (lambda: ind.ROC(5), 6),
        (lambda: ind.Bollinger(5), 5),
        (lambda: ind.MACD(3, 5, 4), 5 + 4 - 1),
    ],
)
def test_ready_when_enough_closes_then_value_set_and_not_before(make: Callable[[], Any], rows_needed: int) -> None:
    indicator = make()
    for i in range(rows_needed):
        result = indicator.update(100.0 + i)
        warm = i == rows_needed - 1
        assert (result is not None) is warm
        assert indicator.ready is warm
        assert (indicator.value is not None) is warm


def test_ready_when_enough_candles_then_atr_and_donchian_set_and_not_before() -> None:
    atr, channel = ind.ATR(4), ind.Donchian(4)
    for i in range(4):
        a = atr.update(101.0 + i, 99.0 + i, 100.0 + i)
        d = channel.update(101.0 + i, 99.0 + i)
        assert (a is not None) is (i == 3)
        assert (d is not None) is (i == 3)


@pytest.mark.parametrize("period", [0, -3])
def test_construct_when_period_not_positive_then_value_error(period: int) -> None:
    for cls in (ind.SMA, ind.EMA, ind.RSI, ind.ATR, ind.Bollinger, ind.Donchian, ind.ROC):
        with pytest.raises(ValueError, match="period"):
            cls(period)


def test_construct_macd_when_fast_not_below_slow_then_value_error() -> None:
    with pytest.raises(ValueError, match="fast"):
        ind.MACD(26, 26, 9)
    with pytest.raises(ValueError, match="fast"):
        ind.macd([1.0] * 50, 30, 26, 9)


# --------------------------------------------------------------------------- incremental == batch


@pytest.fixture
def ohlc() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """500 candles of a seeded random walk around 100, with highs and lows bracketing the close."""
    rng = np.random.default_rng(20260121)
    closes = 100.0 + np.cumsum(rng.normal(0.0, 1.0, 500))
    highs = closes + rng.uniform(0.0, 1.5, 500)
    lows = closes - rng.uniform(0.0, 1.5, 500)
    return highs, lows, closes


def assert_matches_batch(incremental: list[float | None], batch: np.ndarray) -> None:
    got = np.array([np.nan if v is None else v for v in incremental])
    np.testing.assert_array_equal(np.isnan(got), np.isnan(batch))  # same warm-up
    np.testing.assert_allclose(got, batch, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("period", [1, 2, 14, 50])
def test_incremental_when_random_series_then_equals_batch_for_single_value_indicators(
    ohlc: tuple[np.ndarray, np.ndarray, np.ndarray], period: int
) -> None:
    highs, lows, closes = ohlc
    assert_matches_batch(feed(ind.SMA(period), closes), ind.sma(closes, period))
    assert_matches_batch(feed(ind.EMA(period), closes), ind.ema(closes, period))
    assert_matches_batch(feed(ind.RSI(period), closes), ind.rsi(closes, period))
    assert_matches_batch(feed(ind.ROC(period), closes), ind.roc(closes, period))
    assert_matches_batch(
        feed(ind.ATR(period), highs, lows, closes),
        ind.atr(highs, lows, closes, period),
    )


@pytest.mark.parametrize("period", [1, 2, 20, 50])
def test_incremental_when_random_series_then_equals_batch_for_bands_and_channels(
    ohlc: tuple[np.ndarray, np.ndarray, np.ndarray], period: int
) -> None:
    highs, lows, closes = ohlc
    bands = feed(ind.Bollinger(period, 2.0), closes)
    for column, batch in enumerate(ind.bollinger(closes, period, 2.0)):
        assert_matches_batch([None if b is None else b[column] for b in bands], batch)
    channel = feed(ind.Donchian(period), highs, lows)
    for column, batch in enumerate(ind.donchian(highs, lows, period)):
        assert_matches_batch([None if c is None else c[column] for c in channel], batch)


def test_incremental_when_random_series_then_macd_equals_batch(ohlc: tuple[np.ndarray, ...]) -> None:
    closes = ohlc[2]
    values = feed(ind.MACD(12, 26, 9), closes)
    for column, batch in enumerate(ind.macd(closes, 12, 26, 9)):
        if column == 0:
            # The line exists before the signal does; compare only where the incremental value is out.
            batch = np.where(np.isnan(ind.macd(closes, 12, 26, 9)[1]), np.nan, batch)
        assert_matches_batch([None if v is None else v[column] for v in values], batch)


def test_bollinger_when_price_is_large_and_spread_is_tiny_then_std_stays_accurate() -> None:
    # E[x^2] - E[x]^2 at 60000 with cent-sized moves loses every significant digit; the shifted sums must not.
    rng = np.random.default_rng(7)
    closes = 60_000.0 + rng.normal(0.0, 0.01, 5_000)
    bands = ind.Bollinger(20, 2.0)
    for close in closes:
        value = bands.update(float(close))
    assert value is not None and bands.std is not None
    assert bands.std == pytest.approx(float(np.std(closes[-20:])), rel=1e-6)


def test_sma_when_many_updates_then_running_sum_does_not_drift() -> None:
    rng = np.random.default_rng(11)
    closes = rng.uniform(1.0, 1e6, 20_000)  # wide range so naive add/subtract would accumulate error
    sma = ind.SMA(30)
    for close in closes:
        value = sma.update(float(close))
    assert value == pytest.approx(float(np.mean(closes[-30:])), rel=1e-12)
