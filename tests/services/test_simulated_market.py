"""Tests for the simulated market: determinism, seek, candle shape, statistics and exchange rules."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
import pytest

from desk.core.types import DAY_MS, MINUTE_MS, Candle
from desk.services.feed.base import Feed
from desk.services.feed.simulated import BLOCK_MINUTES, REGIMES, SimulatedMarket

MAJORS = ["BTC/USD", "ETH/USD", "SOL/USD"]
START_MS = 1_704_067_200_000  # 2024-01-01T00:00:00Z, a minute boundary
SEED = 20240101
MINUTES_PER_DAY = DAY_MS // MINUTE_MS


def take(market: SimulatedMarket, minutes: int) -> list[list[Candle]]:
    """Step the market `minutes` times and return every batch."""
    batches = []
    for _ in range(minutes):
        batch = market.next_candles()
        assert batch is not None
        batches.append(batch)
    return batches


@dataclass(frozen=True)
class Run:
    """A straight run of the majors, as arrays shaped (minutes, symbols)."""

    ts: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    regimes: list[list[str]]


@pytest.fixture(scope="module")
def thirty_days() -> Run:
    """30 simulated days of the three majors, shared because generating them is the slow part."""
    market = SimulatedMarket(MAJORS, seed=SEED, start_ms=START_MS)
    rows: list[list[tuple[int, float, float, float, float, float]]] = []
    regimes: list[list[str]] = []
    for _ in range(30 * MINUTES_PER_DAY):
        batch = market.next_candles()
        assert batch is not None
        assert [c.symbol for c in batch] == MAJORS
        rows.append([(c.ts, c.open, c.high, c.low, c.close, c.volume) for c in batch])
        regimes.append([market.regime(symbol) for symbol in MAJORS])
    data = np.array(rows)  # (minutes, symbols, fields)
    return Run(
        ts=data[:, 0, 0].astype(np.int64),
        open=data[:, :, 1],
        high=data[:, :, 2],
        low=data[:, :, 3],
        close=data[:, :, 4],
        volume=data[:, :, 5],
        regimes=regimes,
    )


def test_feed_when_simulated_market_then_satisfies_protocol() -> None:
    feed: Feed = SimulatedMarket(MAJORS, seed=1, start_ms=START_MS)
    assert feed.symbols == MAJORS
    assert set(feed.markets()) == set(MAJORS)


def test_generate_when_same_seed_then_identical_candles() -> None:
    first = take(SimulatedMarket(MAJORS, seed=42, start_ms=START_MS), 2 * BLOCK_MINUTES + 10)
    second = take(SimulatedMarket(MAJORS, seed=42, start_ms=START_MS), 2 * BLOCK_MINUTES + 10)
    assert first == second


def test_generate_when_other_seed_then_different_candles() -> None:
    first = take(SimulatedMarket(MAJORS, seed=42, start_ms=START_MS), 100)
    second = take(SimulatedMarket(MAJORS, seed=43, start_ms=START_MS), 100)
    closes_first = [c.close for batch in first for c in batch]
    closes_second = [c.close for batch in second for c in batch]
    # Not merely "some candle differs": almost every close should.
    assert sum(a != b for a, b in zip(closes_first, closes_second, strict=True)) > 0.9 * len(closes_first)


def test_generate_when_other_symbols_added_then_symbol_path_unchanged() -> None:
    alone = take(SimulatedMarket(["BTC/USD"], seed=42, start_ms=START_MS), BLOCK_MINUTES + 5)
    together = take(SimulatedMarket(["ETH/USD", "BTC/USD", "DOGE/USD"], seed=42, start_ms=START_MS), BLOCK_MINUTES + 5)
    assert [batch[0] for batch in alone] == [batch[1] for batch in together]


def test_seek_when_any_target_then_matches_straight_run() -> None:
    minutes = 3 * BLOCK_MINUTES + 50
    straight = take(SimulatedMarket(MAJORS, seed=7, start_ms=START_MS), minutes)
    market = SimulatedMarket(MAJORS, seed=7, start_ms=START_MS)
    # Forward, backward, onto and next to block boundaries, and within the same block.
    for minute in [
        500,
        2 * BLOCK_MINUTES,
        1,
        BLOCK_MINUTES - 1,
        BLOCK_MINUTES,
        BLOCK_MINUTES + 1,
        3 * BLOCK_MINUTES,
        3,
    ]:
        market.seek(START_MS + (minute - 1) * MINUTE_MS)
        # After a seek, inspection reports the minute before, as a straight run would.
        for symbol, candle in zip(MAJORS, straight[minute - 1], strict=True):
            assert market.price(symbol) == candle.close
        assert market.next_candles() == straight[minute]
        assert market.next_candles() == straight[minute + 1]


def test_seek_when_before_start_then_first_candle_is_at_start() -> None:
    market = SimulatedMarket(MAJORS, seed=7, start_ms=START_MS)
    first = market.next_candles()
    take(market, 2000)
    market.seek(START_MS - 1)
    assert market.next_candles() == first
    assert first[0].ts == START_MS


def test_seek_when_between_minutes_then_next_minute_open_follows() -> None:
    straight = take(SimulatedMarket(MAJORS, seed=7, start_ms=START_MS), 20)
    market = SimulatedMarket(MAJORS, seed=7, start_ms=START_MS)
    market.seek(START_MS + 10 * MINUTE_MS + 30_000)
    assert market.next_candles() == straight[11]


def test_seek_when_thirty_days_then_identical_to_regeneration_in_hops() -> None:
    # Speed is measured in bench/, not here.
    market = SimulatedMarket(MAJORS, seed=SEED, start_ms=START_MS)
    market.seek(START_MS + (30 * MINUTES_PER_DAY - 1) * MINUTE_MS)
    candles = market.next_candles()
    assert candles[0].ts == START_MS + 30 * DAY_MS
    other = SimulatedMarket(MAJORS, seed=SEED, start_ms=START_MS)
    other.seek(START_MS + 20 * DAY_MS)  # seek in two hops: must land on the same candles
    other.seek(START_MS + (30 * MINUTES_PER_DAY - 1) * MINUTE_MS)
    assert other.next_candles() == candles


def test_candles_when_three_days_three_symbols_then_ohlc_invariants_hold(thirty_days: Run) -> None:
    minutes = 3 * MINUTES_PER_DAY
    o, h, lo, c = (a[:minutes] for a in (thirty_days.open, thirty_days.high, thirty_days.low, thirty_days.close))
    assert np.all(lo <= np.minimum(o, c))
    assert np.all(np.maximum(o, c) <= h)
    assert np.all(lo > 0)
    assert np.all(thirty_days.volume[:minutes] > 0)
    # Each open is the previous close, so there are no gaps between minutes.
    assert np.array_equal(o[1:], c[:-1])
    # Bars have real range, not just open/close.
    assert np.mean(h > np.maximum(o, c)) > 0.5
    assert np.mean(lo < np.minimum(o, c)) > 0.5


def test_candles_when_any_minute_including_block_boundaries_then_wicks_stay_intrabar_sized(thirty_days: Run) -> None:
    # A wick is the part of the range outside the body; jumps move the body, never the wick.
    # Regression: the first minute of each 1,024-minute block once took its open from the
    # block's end, drawing an 8 % wick.
    upper = thirty_days.high / np.maximum(thirty_days.open, thirty_days.close) - 1.0
    lower = 1.0 - thirty_days.low / np.minimum(thirty_days.open, thirty_days.close)
    assert upper.max() < 0.015 and lower.max() < 0.015
    assert lower[::1024].max() < 0.015


def test_candles_when_rounded_then_prices_on_market_precision() -> None:
    market = SimulatedMarket([*MAJORS, "PEPE/USD"], seed=3, start_ms=START_MS)
    rules = market.markets()
    for batch in take(market, 300):
        for candle in batch:
            rule = rules[candle.symbol]
            for price in (candle.open, candle.high, candle.low, candle.close):
                assert rule.round_price(price) == price
            assert round(candle.volume, rule.amount_decimals) == candle.volume


def test_candles_when_first_then_open_is_start_price() -> None:
    market = SimulatedMarket(MAJORS, seed=3, start_ms=START_MS)
    expected = {"BTC/USD": 60_000.0, "ETH/USD": 3_000.0, "SOL/USD": 150.0}
    assert {s: market.price(s) for s in MAJORS} == expected
    first = market.next_candles()
    assert {c.symbol: c.open for c in first} == expected
    assert {s: market.price(s) for s in MAJORS} == {c.symbol: c.close for c in first}


def test_timestamps_when_stepping_then_advance_by_exactly_one_minute(thirty_days: Run) -> None:
    assert thirty_days.ts[0] == START_MS
    assert set(np.diff(thirty_days.ts).tolist()) == {MINUTE_MS}


def test_btc_when_thirty_days_then_realised_vol_near_nominal(thirty_days: Run) -> None:
    returns = np.diff(np.log(thirty_days.close[:, 0]))
    annualised = float(returns.std() * math.sqrt(525_600))
    # Nominal 60 %; regimes and jumps make a month noisy, so the band is wide but still
    # rules out a per-minute/per-year scaling mistake (which would be off by orders of magnitude).
    assert 0.35 <= annualised <= 1.10


def test_vol_when_symbols_compared_then_ordered_btc_eth_sol(thirty_days: Run) -> None:
    vols = np.diff(np.log(thirty_days.close), axis=0).std(axis=0)
    assert vols[0] < vols[1] < vols[2]


def test_returns_when_btc_and_eth_then_positively_correlated(thirty_days: Run) -> None:
    returns = np.diff(np.log(thirty_days.close), axis=0)
    correlation = float(np.corrcoef(returns[:, 0], returns[:, 1])[0, 1])
    assert 0.3 < correlation < 0.95


def test_returns_when_thirty_days_then_jumps_occur_but_rarely(thirty_days: Run) -> None:
    btc = np.abs(np.diff(np.log(thirty_days.close[:, 0])))
    # A 0.9 % BTC minute is > 6 sigma even when stressed, so these are jumps (~0.8/day expected).
    jumps = int(np.sum(btc > 0.009))
    assert 5 <= jumps <= 80


def test_regime_when_three_days_then_at_least_two_distinct_regimes(thirty_days: Run) -> None:
    for column in range(len(MAJORS)):
        seen = {minute[column] for minute in thirty_days.regimes[: 3 * MINUTES_PER_DAY]}
        assert seen <= set(REGIMES)
        assert len(seen) >= 2


def test_regime_when_thirty_days_then_all_regimes_last_hours(thirty_days: Run) -> None:
    btc = [minute[0] for minute in thirty_days.regimes]
    assert set(btc) == set(REGIMES)
    switches = sum(a != b for a, b in itertools.pairwise(btc))
    mean_length = len(btc) / (switches + 1)
    assert 60 <= mean_length <= 12 * 60


def test_regime_when_high_vol_then_moves_and_volume_larger(thirty_days: Run) -> None:
    btc_regime = np.array([minute[0] for minute in thirty_days.regimes[1:]])
    returns = np.abs(np.diff(np.log(thirty_days.close[:, 0])))
    volume = thirty_days.volume[1:, 0]
    stressed = btc_regime == "high_vol"
    assert np.median(returns[stressed]) > 1.8 * np.median(returns[~stressed])
    assert np.median(volume[stressed]) > 1.5 * np.median(volume[~stressed])


def test_markets_when_known_symbols_then_kraken_rules() -> None:
    rules = SimulatedMarket(MAJORS, seed=1, start_ms=START_MS).markets()
    btc, eth, sol = rules["BTC/USD"], rules["ETH/USD"], rules["SOL/USD"]
    assert (btc.base, btc.quote) == ("BTC", "USD")
    assert (btc.price_decimals, btc.amount_decimals, btc.min_amount, btc.min_cost) == (1, 8, 0.0001, 0.5)
    assert (eth.price_decimals, eth.amount_decimals, eth.min_amount, eth.min_cost) == (2, 8, 0.002, 0.5)
    assert (sol.price_decimals, sol.amount_decimals, sol.min_amount, sol.min_cost) == (2, 8, 0.02, 0.5)


@pytest.mark.parametrize("symbol", ["PEPE/USD", "DOGE/USDT", "ETH/BTC", "XYZ/EUR", "ADA/USD"])
def test_markets_when_unknown_symbol_then_sane_rules(symbol: str) -> None:
    market = SimulatedMarket([symbol], seed=1, start_ms=START_MS)
    rule = market.markets()[symbol]
    base, quote = symbol.split("/")
    assert (rule.base, rule.quote, rule.symbol) == (base, quote, symbol)
    price = market.price(symbol)
    assert price > 0
    # At least 4 significant digits of price resolution.
    assert 10.0**-rule.price_decimals <= price / 1_000
    assert rule.amount_decimals == 8
    assert rule.min_cost == 0.5
    assert rule.min_amount > 0
    candle = market.next_candles()[0]
    assert candle.low <= min(candle.open, candle.close) <= max(candle.open, candle.close) <= candle.high


def test_markets_when_unknown_usd_symbol_then_min_order_about_five_dollars() -> None:
    market = SimulatedMarket(["PEPE/USD", "ADA/USD"], seed=1, start_ms=START_MS)
    for symbol, rule in market.markets().items():
        assert 2.0 <= rule.min_amount * market.price(symbol) <= 10.0


def test_price_when_unknown_symbol_derived_then_same_across_seeds() -> None:
    first = SimulatedMarket(["PEPE/USD"], seed=1, start_ms=START_MS).price("PEPE/USD")
    second = SimulatedMarket(["PEPE/USD"], seed=2, start_ms=START_MS).price("PEPE/USD")
    assert first == second


@pytest.mark.parametrize(
    ("symbols", "start_ms"),
    [([], START_MS), (["BTCUSD"], START_MS), (["BTC/"], START_MS), (["BTC/USD", "BTC/USD"], START_MS)],
)
def test_init_when_bad_symbols_then_value_error(symbols: list[str], start_ms: int) -> None:
    with pytest.raises(ValueError):
        SimulatedMarket(symbols, seed=1, start_ms=start_ms)


def test_init_when_start_not_on_minute_then_value_error() -> None:
    with pytest.raises(ValueError, match="minute"):
        SimulatedMarket(MAJORS, seed=1, start_ms=START_MS + 1)


def test_price_when_symbol_not_simulated_then_key_error() -> None:
    market = SimulatedMarket(MAJORS, seed=1, start_ms=START_MS)
    with pytest.raises(KeyError):
        market.price("DOGE/USD")
    with pytest.raises(KeyError):
        market.regime("DOGE/USD")
