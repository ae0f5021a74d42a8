"""Signal tapes: each strategy's vectorised form gives exactly what on_candle gives candle by candle.

Every case drives a fresh strategy through the same columns as the worker does
(`replay`: append to a CandleWindow of the given capacity, on_candle, then
features) and compares with `signal_tape` over the same columns: the same bars
and sides, the same reasons, stops and confidences (to 1e-12 relative) and the
same features (to 1e-9 relative, 1e-12 absolute). The paths are chosen to hit
what a batch computation most easily gets wrong: long random walks, perfectly
flat markets at inexact prices (rounding noise must never signal), ladders,
flat stretches where averages tie, prices on a tick grid, and a market whose
SMA gap hovers at the NOISE threshold, where a last-bit difference flips a
crossing. The `_exact` indicators underneath are held bit-identical to the
incremental classes.
"""

from __future__ import annotations

import gc
import itertools
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from strategy_helpers import replay

from desk.core.types import MINUTE_MS, Side, Signal
from desk.strategies import _common, _exact
from desk.strategies import indicators as ind
from desk.strategies._common import NOISE
from desk.strategies.base import CandleColumns, CandleWindow, SignalTape, Strategy, StrategyParams, VectorisedStrategy
from desk.strategies.registry import available_slugs, build_strategy

START_TS = 1_700_000_040_000

# --------------------------------------------------------------------------- paths


def columns_for(close: np.ndarray, rng: np.random.Generator, wick: float) -> CandleColumns:
    """Candles around a close path: opens near the previous close, highs/lows a random wick beyond the body."""
    n = len(close)
    open_ = np.concatenate(([close[0]], close[:-1])) * (1.0 + rng.normal(0.0, wick / 10, n))
    high = np.maximum(open_, close) * (1.0 + np.abs(rng.normal(0.0, wick, n)))
    low = np.minimum(open_, close) * (1.0 - np.abs(rng.normal(0.0, wick, n)))
    volume = rng.lognormal(2.0, 1.0, n)
    ts = START_TS + MINUTE_MS * np.arange(n, dtype=np.int64)
    return CandleColumns(ts, open_, high, low, close, volume)


def gbm(n: int, seed: int, sigma: float = 0.004, price: float = 100.0) -> CandleColumns:
    """Geometric Brownian motion with a new drift every 200 candles, so trends come and go."""
    rng = np.random.default_rng(seed)
    drift = np.repeat(rng.normal(0.0, sigma / 4, n // 200 + 1), 200)[:n]
    return columns_for(price * np.exp(np.cumsum(drift + rng.normal(0.0, sigma, n))), rng, sigma / 2)


def flat(n: int = 2_000) -> CandleColumns:
    """Identical zero-range candles at a price no binary float holds exactly."""
    close = np.full(n, 1234.567)
    return CandleColumns(START_TS + MINUTE_MS * np.arange(n, dtype=np.int64), close, close, close, close, close)


def ladder() -> CandleColumns:
    """Up and down in steps of 0.1 (inexact in binary), with a fixed wick: trends that turn sharply."""
    legs = [np.arange(1_000), np.arange(1_000, 200, -1), np.arange(200, 1_400), np.arange(1_400, 0, -1)]
    close = 100.0 + 0.1 * np.concatenate(legs)
    rng = np.random.default_rng(5)
    return columns_for(close, rng, 0.0002)


def flat_stretches(seed: int = 11) -> CandleColumns:
    """Long dead-flat stretches at decimal prices, from the first candle, between random walks.

    Averages tie, then part; a flat start puts RSI at exactly 50 before the first move.
    """
    rng = np.random.default_rng(seed)
    price = 250.3
    closes = [np.full(300, price)]
    for _ in range(8):
        walk = price * np.exp(np.cumsum(rng.normal(0.0, 0.003, int(rng.integers(150, 600)))))
        price = round(float(walk[-1]), 1)
        closes += [walk, np.full(int(rng.integers(200, 1_200)), price)]
    close = np.concatenate(closes)
    columns = columns_for(close, rng, 0.001)
    still = np.concatenate(([False], close[1:] == close[:-1]))
    for name in ("open", "high", "low"):
        getattr(columns, name)[still] = close[still]  # truly flat candles: zero range, zero true range
    return columns


def ticked(seed: int = 3) -> CandleColumns:
    """Prices on a 0.01 tick grid: exact ties between averages and bands are common."""
    rng = np.random.default_rng(seed)
    close = np.round(100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.0015, 5_000))), 2)
    columns = columns_for(close, rng, 0.0008)
    for name in ("open", "high", "low"):
        np.copyto(getattr(columns, name), np.round(getattr(columns, name), 2))
    np.copyto(columns.high, np.maximum.reduce([columns.high, columns.open, columns.close]))
    np.copyto(columns.low, np.minimum.reduce([columns.low, columns.open, columns.close]))
    return columns


def noise_band(seed: int = 17) -> CandleColumns:
    """Closes a few 1e-7 apart around 100: SMA gaps straddle the NOISE threshold (1e-9 of the price)."""
    rng = np.random.default_rng(seed)
    close = 100.0 + 1e-7 * rng.integers(0, 4, 4_000) * rng.choice([1.0, 2.5], 4_000)
    return columns_for(close, rng, 1e-9)


PATHS: dict[str, Callable[[], CandleColumns]] = {
    "gbm_3k": lambda: gbm(3_000, 1),
    "gbm_6k_calm": lambda: gbm(6_000, 2, sigma=0.0015, price=0.00002),
    "gbm_8k_wild": lambda: gbm(8_000, 3, sigma=0.012, price=60_000.0),
    "flat": flat,
    "ladder": ladder,
    "flat_stretches": flat_stretches,
    "ticked": ticked,
    "noise_band": noise_band,
}

# --------------------------------------------------------------------------- cases

CASES: list[tuple[str, dict[str, Any]]] = [
    ("sma_cross", {}),
    ("sma_cross", {"fast": 3, "slow": 7, "atr_period": 5}),
    ("sma_cross", {"fast": 1, "slow": 2, "atr_period": 1}),
    ("sma_cross", {"fast": 20, "slow": 200}),
    ("momentum", {}),
    ("momentum", {"lookback": 5, "threshold": 0.01, "exit_below": -0.01, "trend_period": 50}),
    ("momentum", {"lookback": 1, "threshold": 0.002, "atr_mult": None}),
    ("momentum", {"lookback": 30, "threshold": 0.02, "trend_period": 2, "atr_period": 1}),
    ("rsi", {}),
    ("rsi", {"period": 5, "oversold": 40, "overbought": 60}),
    ("rsi", {"period": 2, "oversold": 49.5, "overbought": 50.5, "atr_mult": None}),
    ("rsi", {"period": 30, "oversold": 45, "overbought": 55, "atr_period": 3}),
    ("rsi", {"period": 3, "oversold": 50, "overbought": 70}),  # a flat market's RSI is exactly oversold
    ("macd", {}),
    ("macd", {"fast": 3, "slow": 6, "signal": 3}),
    ("macd", {"fast": 1, "slow": 2, "signal": 1, "atr_period": 1}),
    ("macd", {"fast": 20, "slow": 50, "signal": 15, "atr_mult": None}),
    ("bollinger", {}),
    ("bollinger", {"period": 5, "num_std": 1.0}),
    ("bollinger", {"period": 2, "num_std": 0.5, "exit_band": "upper"}),
    ("bollinger", {"period": 50, "num_std": 2.5, "exit_band": "upper", "atr_mult": None}),
    ("breakout", {}),
    ("breakout", {"entry_period": 5, "exit_period": 3, "atr_period": 3}),
    ("breakout", {"entry_period": 1, "exit_period": 1}),
    ("breakout", {"entry_period": 55, "exit_period": 20, "atr_mult": None}),
]
VECTORISED = sorted({slug for slug, _ in CASES})


def case_id(case: tuple[str, dict[str, Any]]) -> str:
    slug, params = case
    return slug + "".join(f"-{key}={value}" for key, value in params.items())


def capacity_for(strategy: Strategy, path: str) -> int:
    """A different window size per path: the worker's usual one, one shorter than every return lag, and others."""
    choices = [strategy.warmup + 1, 3, 21, 400]
    return choices[sorted(PATHS).index(path) % len(choices)]


@pytest.fixture(scope="module")
def paths() -> dict[str, CandleColumns]:
    return {name: build() for name, build in PATHS.items()}


# --------------------------------------------------------------------------- comparison


def same_number(got: float | None, expected: float | None, rel: float, abs_: float = 0.0) -> bool:
    if got is None or expected is None:
        return got is expected
    return math.isclose(got, expected, rel_tol=rel, abs_tol=abs_)


def assert_tape_matches(tape: SignalTape, expected: list[tuple[int, Signal, dict[str, float]]]) -> None:
    """The tape holds exactly the replay's signals, at the same bars, with the same features."""
    assert isinstance(tape.bars, np.ndarray) and tape.bars.dtype == np.int64
    assert tape.bars.tolist() == [index for index, _, _ in expected]
    assert len(tape.signals) == len(tape.features) == len(expected)
    for (index, signal, features), got, got_features in zip(expected, tape.signals, tape.features, strict=True):
        where = f"candle {index}: {got} vs {signal}"
        assert got.side is signal.side, where
        assert got.reason == signal.reason, where
        assert same_number(got.stop_price, signal.stop_price, 1e-12), where
        assert same_number(got.take_profit, signal.take_profit, 1e-12), where
        assert same_number(got.confidence, signal.confidence, 1e-12), where
        assert got_features.keys() == features.keys(), where
        for key, value in features.items():
            assert isinstance(got_features[key], float), (where, key)
            assert same_number(got_features[key], value, 1e-9, 1e-12), (where, key, got_features[key], value)


# --------------------------------------------------------------------------- tape == candle by candle


@pytest.mark.parametrize("path", sorted(PATHS))
@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_signal_tape_when_fed_a_path_then_equals_candle_by_candle_signals_and_features(
    case: tuple[str, dict[str, Any]], path: str, paths: dict[str, CandleColumns]
) -> None:
    slug, params = case
    columns = paths[path]
    capacity = capacity_for(build_strategy(slug, params), path)
    expected = replay(build_strategy(slug, params), columns, capacity)
    assert_tape_matches(build_strategy(slug, params).signal_tape(columns, capacity), expected)


@pytest.mark.parametrize("slug", VECTORISED)
def test_signal_tape_when_long_random_market_then_equals_candle_by_candle(slug: str) -> None:
    columns = gbm(20_000, 99, sigma=0.003, price=3_000.0)
    strategy = build_strategy(slug, {})
    expected = replay(build_strategy(slug, {}), columns, strategy.warmup + 1)
    assert len(expected) > 100  # the comparison is over many signals, not a handful
    assert_tape_matches(strategy.signal_tape(columns, strategy.warmup + 1), expected)


@pytest.mark.parametrize("slug", VECTORISED)
def test_signal_tape_when_flat_market_at_inexact_price_then_empty(slug: str) -> None:
    strategy = build_strategy(slug, {})
    assert strategy.signal_tape(flat(), 64).bars.size == 0


@pytest.mark.parametrize("slug", VECTORISED)
def test_signal_tape_when_called_twice_or_after_live_candles_then_unchanged(slug: str) -> None:
    # The tape is a function of the columns alone: it neither reads nor moves the live indicator state.
    columns = gbm(2_000, 8)
    strategy = build_strategy(slug, {})
    first = strategy.signal_tape(columns, 50)
    replay(strategy, gbm(300, 9), 50)  # the live strategy moves on
    again = strategy.signal_tape(columns, 50)
    assert first.bars.tolist() == again.bars.tolist() and first.signals == again.signals
    assert first.features == again.features


@pytest.mark.parametrize("slug", VECTORISED)
def test_signal_tape_when_given_row_views_of_a_larger_data_set_then_starts_fresh_at_the_first_row(slug: str) -> None:
    # The backtest hands over `rows(first, last)` of a whole file: views, starting mid-data.
    columns = gbm(4_000, 4).rows(700, 3_200)
    strategy = build_strategy(slug, {})
    expected = replay(build_strategy(slug, {}), columns, 40)
    assert_tape_matches(strategy.signal_tape(columns, 40), expected)


# --------------------------------------------------------------------------- warm-up and short data

# Breakout's warm-up waits for the longer channel and momentum's for its trend SMA, but their SELL rules
# need only the shorter lookback, so they can sell before the warm-up ends (the worker drops those).
SELLS_BEFORE_WARMUP = {
    case_id(case)
    for case in CASES
    if (case[0] == "breakout" and case[1].get("exit_period", 10) < case[1].get("entry_period", 20))
    or (case[0] == "momentum" and case[1].get("trend_period", 0) > case[1].get("lookback", 20) + 2)
}


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_signal_tape_when_fewer_candles_than_warmup_then_empty_or_early_sells_only(
    case: tuple[str, dict[str, Any]],
) -> None:
    slug, params = case
    strategy = build_strategy(slug, params)
    full = gbm(strategy.warmup + 400, 21, sigma=0.02)
    for length in (0, 1, strategy.warmup - 1):
        columns = CandleColumns(
            *(getattr(full, name)[:length] for name in ("ts", "open", "high", "low", "close", "volume"))
        )
        tape = build_strategy(slug, params).signal_tape(columns, strategy.warmup + 1)
        assert_tape_matches(tape, replay(build_strategy(slug, params), columns, strategy.warmup + 1))
        if case_id(case) not in SELLS_BEFORE_WARMUP:
            assert tape.bars.size == 0 and tape.signals == () and tape.features == ()
        else:
            assert all(signal.side is Side.SELL for signal in tape.signals)


def test_signal_tape_when_breakout_sells_before_warmup_then_tape_keeps_that_sell() -> None:
    # Defaults: warm-up 21 (entry channel 20 + 1), but the 10-candle exit channel is complete at candle 10.
    closes = np.array([100.0] * 10 + [90.0] * 5)
    columns = CandleColumns(START_TS + MINUTE_MS * np.arange(15), closes, closes + 0.5, closes - 0.5, closes, closes)
    strategy = build_strategy("breakout", {})
    tape = strategy.signal_tape(columns, 64)
    assert tape.bars.tolist() == [10] and tape.signals[0].side is Side.SELL and strategy.warmup - 1 > 10
    assert_tape_matches(tape, replay(build_strategy("breakout", {}), columns, 64))


# --------------------------------------------------------------------------- the protocol


@pytest.mark.parametrize("slug", available_slugs())
def test_isinstance_when_strategy_has_signal_tape_then_vectorised(slug: str) -> None:
    assert isinstance(build_strategy(slug, {}), VectorisedStrategy) is (slug in VECTORISED)


def test_isinstance_when_strategy_lacks_signal_tape_then_not_vectorised() -> None:
    class CandleByCandleOnly:
        Params = StrategyParams
        warmup = 1

        def on_candle(self, candle: Any, window: CandleWindow, **kwargs: Any) -> Signal | None:
            return None

        def features(self, window: CandleWindow, **kwargs: Any) -> dict[str, float]:
            return {}

    assert not isinstance(CandleByCandleOnly(), VectorisedStrategy)


def test_assert_tape_matches_when_tape_is_one_candle_late_then_fails(paths: dict[str, CandleColumns]) -> None:
    # The comparison must be able to fail: an off-by-one in the bars is caught.
    columns = paths["gbm_3k"]
    expected = replay(build_strategy("sma_cross", {}), columns, 64)
    tape = build_strategy("sma_cross", {}).signal_tape(columns, 64)
    late = SignalTape(tape.bars + 1, tape.signals, tape.features)
    with pytest.raises(AssertionError):
        assert_tape_matches(late, expected)
    # ... and so is a window one candle off, which moves only the features.
    with pytest.raises(AssertionError):
        assert_tape_matches(
            build_strategy("sma_cross", {}).signal_tape(columns, 20),
            replay(build_strategy("sma_cross", {}), columns, 21),
        )


# --------------------------------------------------------------------------- the exact indicators


def updates(indicator: Any, *columns: np.ndarray, field: str | None = None) -> np.ndarray:
    """What an incremental indicator returns for each row, as floats (NaN for None)."""
    out = []
    for row in zip(*(column.tolist() for column in columns), strict=True):
        value = indicator.update(*row)
        out.append(np.nan if value is None else float(getattr(value, field) if field else value))
    return np.asarray(out)


@pytest.mark.parametrize("path", sorted(PATHS))
@pytest.mark.parametrize("period", [1, 2, 3, 14, 64])
def test_running_indicators_when_compared_with_classes_then_bit_identical(
    path: str, period: int, paths: dict[str, CandleColumns]
) -> None:
    c = paths[path]
    same = np.testing.assert_array_equal
    same(_exact.running_sma(c.close, period), updates(ind.SMA(period), c.close))
    same(_exact.running_ema(c.close, period), updates(ind.EMA(period), c.close))
    same(_exact.running_rsi(c.close, period), updates(ind.RSI(period), c.close))
    same(_exact.running_atr(c.high, c.low, c.close, period), updates(ind.ATR(period), c.high, c.low, c.close))
    same(_exact.running_roc(c.close, period), updates(ind.ROC(period), c.close))
    upper, lower = _exact.running_donchian(c.high, c.low, period)
    same(upper, updates(ind.Donchian(period), c.high, c.low, field="upper"))
    same(lower, updates(ind.Donchian(period), c.high, c.low, field="lower"))
    bands = _exact.running_bollinger(c.close, period, 2.0)
    for field in ("mid", "upper", "lower"):
        same(getattr(bands, field), updates(ind.Bollinger(period, 2.0), c.close, field=field))
    macd = _exact.running_macd(c.close, period, period + 3, max(period // 2, 1))
    for field in ("line", "signal", "histogram"):
        reference = ind.MACD(period, period + 3, max(period // 2, 1))
        same(getattr(macd, field), updates(reference, c.close, field=field))


def test_window_sums_when_values_are_hard_to_add_then_equal_math_fsum() -> None:
    rng = np.random.default_rng(2)
    width, count = 9, 4_000
    hard = rng.normal(size=(width, count)) * 2.0 ** rng.integers(-60, 60, (width, count))  # cancellation
    ties = np.round(rng.uniform(100, 200, (width, count)), 3)  # decimal prices: exact halfway cases occur
    zeros = np.where(rng.random((width, count)) < 0.3, 0.0, ties)
    prices = 60_000 * np.exp(rng.normal(0, 0.01, (width, count)))  # the fast path
    for windows in (hard, ties, zeros, prices, -prices):
        expected = [math.fsum(column) for column in windows.T.tolist()]
        np.testing.assert_array_equal(_exact.window_sums(windows), expected)


def test_recurrence_when_chunk_estimates_are_wrong_then_repair_still_gives_exact_values() -> None:
    # The estimates only decide how much repair is needed: wrong ones (here decay 0) must not change the result.
    closes = gbm(30_000, 6).close
    alpha = 2.0 / 11

    def step(prev: np.ndarray, value: np.ndarray) -> np.ndarray:
        return prev + alpha * (value - prev)

    seed = float(np.cumsum(np.concatenate(([0.0], closes[:10])))[-1]) / 10
    repaired = _exact.recurrence(step, closes, 9, seed, decay=0.0, gain=0.5)
    np.testing.assert_array_equal(repaired, updates(ind.EMA(10), closes))


# --------------------------------------------------------------------------- element-wise twins of the scalar helpers

EDGES = [0.0, -0.0, 1e-300, -1e-300, 1.0, -1.0, 2.5, 1e-9, -1e-9, 1e300, math.inf, -math.inf, math.nan]


def test_ratio_array_when_given_edge_values_then_matches_ratio_with_nan_as_none() -> None:
    pairs = [(a, b) for a in EDGES for b in EDGES]
    numerators, denominators = (np.array(column) for column in zip(*pairs, strict=True))
    for default in (0.0, 0.5, -2.0):
        got = _common.ratio_array(numerators, denominators, default).tolist()
        expected = [_common.ratio(_common.none_if_nan(a), _common.none_if_nan(b), default) for a, b in pairs]
        assert got == expected


def test_zero_crossings_when_gaps_straddle_the_noise_threshold_then_match_snap_and_crossed() -> None:
    rng = np.random.default_rng(4)
    scale = 100.0 + rng.random(20_000)
    diff = NOISE * scale * rng.choice([-2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0], 20_000)  # exactly at +-NOISE too
    diff[rng.random(20_000) < 0.05] = np.nan  # not known yet: crosses nothing
    above, below = _common.zero_crossings(diff, scale)
    snapped = [
        None if math.isnan(d) else _common.snap(d, s) for d, s in zip(diff.tolist(), scale.tolist(), strict=True)
    ]
    assert above.tolist() == [
        a is not None and b is not None and _common.crossed_above(a, b) for a, b in itertools.pairwise(snapped)
    ]
    assert below.tolist() == [
        a is not None and b is not None and _common.crossed_below(a, b) for a, b in itertools.pairwise(snapped)
    ]


def test_make_tape_when_building_then_garbage_collector_state_is_restored() -> None:
    features = {"x": np.array([1.0, 2.0])}
    signals = [Signal(Side.BUY), Signal(Side.SELL)]
    assert gc.isenabled()
    tape = _common.make_tape(np.array([3, 7]), iter(signals), features)
    assert gc.isenabled() and tape.signals == tuple(signals) and tape.features == ({"x": 1.0}, {"x": 2.0})
    gc.disable()
    try:
        _common.make_tape(np.array([3]), [signals[0]], {"x": np.array([1.0])})
        assert not gc.isenabled()  # a caller's choice to pause it is kept
    finally:
        gc.enable()
