"""The replay feed over loaded files: one timeline for several symbols, gaps, bounds, markets and seeking."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from desk.core.errors import ReplayDataError
from desk.core.types import Candle
from desk.services.feed import replay
from desk.services.feed.replay import Gap, ReplayFeed, ReplaySource
from desk.services.feed.simulated import market_rules
from tests.services.test_replay_feed import T0, M, ccxt_rows, write


def two_symbol_feed(tmp_path: Path, **bounds: int) -> ReplayFeed:
    """BTC/USD on minutes 0-4, ETH/USD on minutes 0-4 except minute 2."""
    btc = write(tmp_path, "btcusd.csv", ccxt_rows(5, price=100.0))
    eth = write(tmp_path, "ethusd.csv", ccxt_rows(5, skip=(2,), price=10.0))
    return ReplayFeed([ReplaySource(btc, "BTC/USD"), ReplaySource(eth, "ETH/USD")], **bounds)


def drain(feed: ReplayFeed) -> list[list[Candle]]:
    batches = []
    while (batch := feed.next_candles()) is not None:
        batches.append(batch)
    return batches


def test_next_candles_when_symbol_has_gap_then_only_others_returned_at_that_ts(tmp_path: Path) -> None:
    feed = two_symbol_feed(tmp_path)
    batches = drain(feed)
    assert [[c.symbol for c in batch] for batch in batches] == [
        ["BTC/USD", "ETH/USD"],
        ["BTC/USD", "ETH/USD"],
        ["BTC/USD"],
        ["BTC/USD", "ETH/USD"],
        ["BTC/USD", "ETH/USD"],
    ]
    assert [batch[0].ts for batch in batches] == [T0 + i * M for i in range(5)]
    assert all(c.ts == batch[0].ts for batch in batches for c in batch)
    assert batches[0][1] == Candle("ETH/USD", T0, 10.0, 12.0, 9.0, 11.0, 1.0)
    assert feed.gaps() == [Gap("ETH/USD", T0 + M, T0 + 3 * M, 1)]
    assert len(feed) == 5


def test_next_candles_when_exhausted_then_none_and_stays_none(tmp_path: Path) -> None:
    feed = two_symbol_feed(tmp_path)
    drain(feed)
    assert feed.next_candles() is None
    assert feed.next_candles() is None


def test_next_candles_when_chunks_are_small_then_same_candles_across_boundaries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    straight = drain(two_symbol_feed(tmp_path))
    monkeypatch.setattr(replay, "_CHUNK_STEPS", 2)
    assert drain(two_symbol_feed(tmp_path)) == straight


def test_gaps_when_one_symbol_starts_later_then_only_inner_holes_reported(tmp_path: Path) -> None:
    btc = write(tmp_path, "btc.csv", ccxt_rows(8, skip=(3, 4, 5)))
    eth = write(tmp_path, "eth.csv", ccxt_rows(8, skip=(0, 1)))
    feed = ReplayFeed([ReplaySource(btc, "BTC/USD"), ReplaySource(eth, "ETH/USD")])
    assert feed.gaps() == [Gap("BTC/USD", T0 + 2 * M, T0 + 6 * M, 3)]
    assert [c.symbol for c in feed.next_candles() or []] == ["BTC/USD"]


def test_short_coverage_when_symbols_start_late_or_end_early_then_each_is_named_with_its_minutes(
    tmp_path: Path,
) -> None:
    btc = write(tmp_path, "btc.csv", ccxt_rows(8, skip=(5, 6, 7)))  # minutes 0-4: ends 3 minutes early
    eth = write(tmp_path, "eth.csv", ccxt_rows(8, skip=(0, 1)))  # minutes 2-7: starts 2 minutes late
    feed = ReplayFeed([ReplaySource(btc, "BTC/USD"), ReplaySource(eth, "ETH/USD")])
    assert feed.gaps() == []  # neither is a hole between two candles
    assert feed.short_coverage() == [
        "BTC/USD data ends at 2023-11-14T22:18Z, 3 minutes before the replay's last: a position on it is"
        " marked at that close to the end and its stops no longer trigger",
        "ETH/USD data starts at 2023-11-14T22:16Z, 2 minutes after the replay's first",
    ]


def test_short_coverage_when_every_symbol_spans_the_replay_then_nothing_to_say(tmp_path: Path) -> None:
    assert two_symbol_feed(tmp_path).short_coverage() == []
    # Bounds cut every symbol at the same minutes: still full coverage of what is replayed.
    assert two_symbol_feed(tmp_path, start_ms=T0 + M, end_ms=T0 + 4 * M).short_coverage() == []


def test_feed_when_bounded_then_start_inclusive_end_exclusive(tmp_path: Path) -> None:
    feed = two_symbol_feed(tmp_path, start_ms=T0 + M, end_ms=T0 + 4 * M)
    assert [batch[0].ts for batch in drain(feed)] == [T0 + M, T0 + 2 * M, T0 + 3 * M]
    assert len(feed) == 3


def test_feed_when_window_cuts_the_gap_then_gap_not_reported(tmp_path: Path) -> None:
    assert two_symbol_feed(tmp_path, start_ms=T0 + 3 * M).gaps() == []


def test_markets_when_bounded_then_rules_from_first_close_in_window(tmp_path: Path) -> None:
    path = write(tmp_path, "abcusd.csv", f"{T0},0.01,0.02,0.01,0.02,1\n{T0 + M},0.0125,0.0125,0.0125,0.0125,1\n")
    market = ReplayFeed([ReplaySource(path, "ABC/USD")], start_ms=T0 + M).markets()["ABC/USD"]
    assert market == market_rules("ABC/USD", 0.0125)
    assert market.price_decimals == 6
    assert market.min_amount == 400.0  # 5 USD at the replayed price, not a made-up one


def test_markets_when_two_symbols_then_rules_for_every_symbol(tmp_path: Path) -> None:
    feed = two_symbol_feed(tmp_path)
    markets = feed.markets()
    assert sorted(markets) == ["BTC/USD", "ETH/USD"]
    assert markets["BTC/USD"].price_decimals == 1  # Kraken's published BTC/USD rules
    assert feed.symbols == ["BTC/USD", "ETH/USD"]


def test_feed_when_window_holds_no_candles_of_a_symbol_then_error_names_file(tmp_path: Path) -> None:
    with pytest.raises(ReplayDataError, match=r"btcusd\.csv: no BTC/USD candles in the replay window"):
        two_symbol_feed(tmp_path, start_ms=T0 + 10 * M)


def test_feed_when_second_file_bad_then_error_names_it(tmp_path: Path) -> None:
    good = write(tmp_path, "btc.csv", ccxt_rows(3))
    bad = write(tmp_path, "eth.csv", ccxt_rows(3) + f"{T0},1,2,1,2,1\n")
    with pytest.raises(ReplayDataError, match=r"eth\.csv: row 4 \(line 4\), column 1 \(time\): timestamp .* not later"):
        ReplayFeed([ReplaySource(good, "BTC/USD"), ReplaySource(bad, "ETH/USD")])


@pytest.mark.parametrize(
    ("symbols", "bounds", "expected"),
    [
        (["BTC/USD", "BTC/USD"], {}, "more than one file"),
        (["BTCUSD"], {}, "not of the form BASE/QUOTE"),
        (["BTC/USD"], {"start_ms": T0 + M, "end_ms": T0 + M}, "is not before end_ms"),
    ],
    ids=["duplicate", "malformed", "empty-window"],
)
def test_feed_when_arguments_wrong_then_value_error(
    tmp_path: Path, symbols: list[str], bounds: dict[str, int], expected: str
) -> None:
    path = write(tmp_path, "btc.csv", ccxt_rows(3))
    with pytest.raises(ValueError, match=expected):
        ReplayFeed([ReplaySource(path, symbol) for symbol in symbols], **bounds)


def test_seek_when_after_a_ts_then_next_batch_is_the_following_step(tmp_path: Path) -> None:
    feed = two_symbol_feed(tmp_path)
    straight = drain(feed)
    feed.seek(T0 + M)
    assert feed.next_candles() == straight[2]
    feed.seek(T0 + M + 30_000)  # between candles: the next one
    assert feed.next_candles() == straight[2]
    feed.seek(T0 - 10 * M)
    assert drain(feed) == straight
    feed.seek(T0 + 4 * M)
    assert feed.next_candles() is None


def test_bars_when_indexed_by_ts_then_zero_copy_window_over_whole_file(tmp_path: Path) -> None:
    feed = two_symbol_feed(tmp_path, start_ms=T0 + 3 * M)
    bars = feed.bars("ETH/USD")
    assert len(bars) == 4  # the whole file: rows before the window serve as warm-up
    row = feed.index_of("ETH/USD", T0 + 3 * M)
    window = bars.close[row - 2 : row + 1]
    assert window.tolist() == [11.0, 12.0, 14.0]  # minutes 0, 1, 3: minute 2 is the gap
    assert np.shares_memory(window, bars.close)
    assert not bars.close.flags.writeable
    with pytest.raises(KeyError, match="ETH/USD has no candle at"):
        feed.index_of("ETH/USD", T0 + 2 * M)
    with pytest.raises(KeyError, match="not replayed"):
        feed.bars("SOL/USD")
