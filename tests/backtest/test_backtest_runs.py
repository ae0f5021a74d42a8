"""Backtests: exact trades on a known ladder, determinism, agreement with the live path, bad data refused."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
import yaml

import main
from desk.backtest import run_backtest
from desk.config import DeskConfig, parse_config
from desk.core.clock import parse_utc_ms
from desk.core.types import Candle, Side, Signal
from desk.reporting import build_report
from desk.runtime import TradingRuntime
from desk.services.feed.replay import ReplayFeed, ReplaySource
from desk.services.feed.simulated import SimulatedMarket
from desk.strategies.base import CandleWindow, StrategyParams
from tests.conftest import config_data_for_tests, deep_update, read_journal, without_wall_clock

START = parse_utc_ms("2026-03-01T00:00:00Z", "start")
# open, high, low, close: the strategy buys at the close of bar 2 and sells at the close of bar 5.
LADDER = [
    (98.0, 98.5, 97.5, 98.0),
    (98.0, 99.5, 97.8, 99.0),
    (99.0, 100.5, 98.8, 100.0),
    (101.0, 102.0, 100.5, 101.5),  # the entry fills at this open: 101
    (102.0, 103.0, 101.8, 102.5),
    (103.0, 104.0, 102.5, 104.0),
    (105.0, 105.5, 104.0, 105.0),  # the exit fills at this open: 105
    (105.0, 106.0, 104.5, 105.5),
]


class LadderStrategy:
    """Buys on the third candle with a stop 10 below, sells on the sixth: nothing else."""

    Params = StrategyParams
    warmup = 1

    def __init__(self) -> None:
        self.seen = 0

    def on_candle(self, candle: Candle, window: CandleWindow, **kwargs: Any) -> Signal | None:
        self.seen += 1
        if self.seen == 3:
            return Signal(Side.BUY, stop_price=candle.close - 10.0, reason="ladder buy")
        if self.seen == 6:
            return Signal(Side.SELL, reason="ladder sell")
        return None

    def features(self, window: CandleWindow, **kwargs: Any) -> dict[str, float]:
        return {"close": window.last_close}


def write_csv(path: Path, rows: list[tuple[int, float, float, float, float, float]]) -> Path:
    path.write_text("".join(f"{ts},{o},{h},{lo},{c},{v}\n" for ts, o, h, lo, c, v in rows))
    return path


def ladder_config() -> DeskConfig:
    data = deep_update(
        config_data_for_tests(),
        {
            "feed": {"symbols": ["LAD/USD"], "seed_candles": 0},
            "risk": {"risk_per_trade_usd": 50.0, "take_profit_r": 2.0},
            "portfolio": {"fees": {"taker": 0.0026, "slippage_bps": 0.0, "impact_bps_per_volume_pct": 0.0}},
        },
    )
    data["workers"] = [{"name": "ladder", "symbol": "LAD/USD", "strategy": "sma_cross"}]
    return parse_config(data)


def test_backtest_when_a_known_strategy_walks_a_price_ladder_then_trades_fees_and_pnl_match_hand_figures(
    tmp_path: Path,
) -> None:
    rows = [(START + i * 60_000, o, h, lo, c, 1_000.0) for i, (o, h, lo, c) in enumerate(LADDER)]
    source = ReplaySource(write_csv(tmp_path / "ladder.csv", rows), "LAD/USD")
    result = run_backtest(
        ladder_config(),
        ReplayFeed([source]),
        [source],
        tmp_path / "out",
        strategy_overrides={"ladder": LadderStrategy()},
    )
    records = read_journal(tmp_path / "out" / "journal")
    fills = [(r["side"], r["qty"], r["price"], r["fee"]) for r in records if r["type"] == "OrderFilled"]
    # qty = 50 USD risk / (100 - 90) stop distance = 5; fees 0.26 % of 5 x 101 and of 5 x 105.
    assert fills == [("buy", 5.0, 101.0, pytest.approx(1.313)), ("sell", 5.0, 105.0, pytest.approx(1.365))]
    (closed,) = [r for r in records if r["type"] == "PositionClosed"]
    assert closed["entry_price"] == 101.0 and closed["exit_price"] == 105.0
    assert closed["realized_pnl"] == pytest.approx(20.0)
    assert closed["fees"] == pytest.approx(2.678)
    assert closed["net_pnl"] == pytest.approx(17.322)
    assert closed["exit_reason"] == "signal: ladder sell"
    assert result.recorder.equity[-1] == pytest.approx(10_017.322)
    assert len(result.recorder.equity) == len(LADDER)


def test_backtest_when_a_symbols_data_ends_early_with_a_position_open_then_said_and_its_entry_fee_reported(
    tmp_path: Path,
) -> None:
    # The ladder stops after bar 4: the entry (bar 3's open, 101) is held when LAD/USD's data ends, while
    # OTH/USD goes on for 4 more minutes.
    lad = [(START + i * 60_000, o, h, lo, c, 1_000.0) for i, (o, h, lo, c) in enumerate(LADDER[:5])]
    oth = [(START + i * 60_000, 50.0, 50.0, 50.0, 50.0, 1_000.0) for i in range(9)]
    sources = [
        ReplaySource(write_csv(tmp_path / "lad.csv", lad), "LAD/USD"),
        ReplaySource(write_csv(tmp_path / "oth.csv", oth), "OTH/USD"),
    ]
    config = ladder_config()
    config = config.model_copy(update={"feed": config.feed.model_copy(update={"symbols": ["LAD/USD", "OTH/USD"]})})
    result = run_backtest(
        config, ReplayFeed(sources), sources, tmp_path / "out", strategy_overrides={"ladder": LadderStrategy()}
    )

    expected = (
        "LAD/USD data ends at 2026-03-01T00:04Z, 4 minutes before the replay's last: a position on it is"
        " marked at that close to the end and its stops no longer trigger"
    )
    assert result.coverage_notes == (expected,)
    (applied,) = [r for r in read_journal(tmp_path / "out" / "journal") if r["type"] == "ConfigApplied"]
    assert applied["changes"]["coverage"] == [expected]
    report = build_report(result.recorder, result.starting_cash, workers=["ladder"])
    assert report.by_worker["ladder"].trade_count == 0
    assert report.total.fees == pytest.approx(1.313)  # 0.26 % of 5 x 101, paid though never closed


class BadLevelsStrategy(LadderStrategy):
    """Buys on the third candle (close 100) with the stop or the take-profit on the wrong side of the price."""

    def __init__(self, stop: float | None, take: float | None) -> None:
        super().__init__()
        self.stop, self.take = stop, take

    def on_candle(self, candle: Candle, window: CandleWindow, **kwargs: Any) -> Signal | None:
        self.seen += 1
        if self.seen == 3:
            return Signal(Side.BUY, stop_price=self.stop, take_profit=self.take, reason="bad levels")
        return None


@pytest.mark.parametrize(
    ("stop", "take", "rule"),
    [(100.5, 120.0, "invalid_stop"), (90.0, 100.0, "invalid_take_profit"), (90.0, 99.0, "invalid_take_profit")],
)
def test_backtest_when_a_signal_puts_a_level_on_the_wrong_side_then_denied_with_its_rule_and_nothing_sent(
    tmp_path: Path, stop: float, take: float, rule: str
) -> None:
    rows = [(START + i * 60_000, o, h, lo, c, 1_000.0) for i, (o, h, lo, c) in enumerate(LADDER)]
    source = ReplaySource(write_csv(tmp_path / "ladder.csv", rows), "LAD/USD")
    strategy = BadLevelsStrategy(stop, take)
    run_backtest(
        ladder_config(), ReplayFeed([source]), [source], tmp_path / "out", strategy_overrides={"ladder": strategy}
    )
    records = read_journal(tmp_path / "out" / "journal")
    assert [r["rule"] for r in records if r["type"] == "OrderDenied"] == [rule]
    assert not [r for r in records if r["type"] in ("EntryPlanned", "OrderSubmitted", "OrderFilled")]


def run_cli_backtest(config_path: Path, data: Path, out: Path) -> int:
    return main.main(
        [
            "--config",
            str(config_path),
            "--log-level",
            "WARNING",
            "backtest",
            "--data",
            f"BTC/USD={data}",
            "--out",
            str(out),
            "--no-progress",
        ]
    )


def gbm_rows(minutes: int, seed: int) -> list[tuple[int, float, float, float, float, float]]:
    market = SimulatedMarket(["BTC/USD"], seed, START)
    return [
        (c.ts, c.open, c.high, c.low, c.close, c.volume) for c in (market.next_candles()[0] for _ in range(minutes))
    ]


def test_backtest_when_run_twice_then_the_journal_and_report_are_identical(tmp_path: Path) -> None:
    data = write_csv(tmp_path / "btc.csv", gbm_rows(3_000, seed=3))
    config_path = tmp_path / "config.yaml"
    config = deep_update(config_data_for_tests(), {"feed": {"symbols": ["BTC/USD"]}})
    config["workers"] = [w for w in config["workers"] if w["symbol"] == "BTC/USD"]
    config_path.write_text(yaml.safe_dump(config))
    assert run_cli_backtest(config_path, data, tmp_path / "one") == 0
    assert run_cli_backtest(config_path, data, tmp_path / "two") == 0
    first = without_wall_clock(read_journal(tmp_path / "one" / "journal"))
    second = without_wall_clock(read_journal(tmp_path / "two" / "journal"))
    assert any(r["type"] == "OrderFilled" for r in first)
    assert first == second
    assert (tmp_path / "one" / "report.json").read_text() == (tmp_path / "two" / "report.json").read_text()


DECISIONS = ("IntentProposed", "OrderDenied", "OrderFilled", "PositionOpened", "PositionClosed", "RiskStateChanged")
IDS = {"seq", "id", "ts_init", "correlation_id", "causation_id", "intent_id", "order_id", "fill_id", "position_id"}


def decisions(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in r.items() if k not in IDS} for r in records if r["type"] in DECISIONS]


@pytest.mark.slow
def test_replay_when_fed_the_simulated_markets_candles_then_decisions_match_the_live_run(tmp_path: Path) -> None:
    config = parse_config(config_data_for_tests())
    live_dir = tmp_path / "live"
    asyncio.run(TradingRuntime(config, base_dir=live_dir).run(max_candles=1_500))
    journal = read_journal(live_dir / "journal")
    # The live run warmed up on the market's first seed_candles minutes without journaling them.
    market = SimulatedMarket(
        config.feed.symbols, config.feed.simulated.seed, parse_utc_ms(config.feed.simulated.start, "")
    )
    seed = [market.next_candles() for _ in range(config.feed.seed_candles)]
    sources = []
    for symbol in config.feed.symbols:
        rows = [(c.ts, c.open, c.high, c.low, c.close, c.volume) for batch in seed for c in batch if c.symbol == symbol]
        rows += [
            (r["ts"], r["open"], r["high"], r["low"], r["close"], r["volume"])
            for r in journal
            if r["type"] == "CandleClosed" and r["symbol"] == symbol
        ]
        sources.append(ReplaySource(write_csv(tmp_path / f"{symbol.replace('/', '')}.csv", rows), symbol))
    run_backtest(config, ReplayFeed(sources), sources, tmp_path / "replay")
    replayed = read_journal(tmp_path / "replay" / "journal")
    assert len([r for r in journal if r["type"] == "PositionClosed"]) > 3
    assert decisions(replayed) == decisions(journal)


@pytest.mark.parametrize(
    ("line", "fragment"),
    [
        ("{ts},100,101,99,nan,5\n", "NaN"),
        ("{ts},100,101,99,-3,5\n", "close"),
        ("{ts},100,98,99,100,5\n", "high"),
    ],
)
def test_backtest_when_a_data_file_is_bad_then_error_names_file_and_row_and_out_is_untouched(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], line: str, fragment: str
) -> None:
    rows = gbm_rows(50, seed=1)
    good = "".join(f"{ts},{o},{h},{lo},{c},{v}\n" for ts, o, h, lo, c, v in rows)
    data = tmp_path / "bad.csv"
    data.write_text(good + line.format(ts=rows[-1][0] + 60_000))
    config_path = tmp_path / "config.yaml"
    config_path.write_text(yaml.safe_dump(config_data_for_tests()))
    out = tmp_path / "out"
    assert run_cli_backtest(config_path, data, out) == 2
    error = capsys.readouterr().err
    assert "bad.csv" in error and "row 51" in error and fragment.lower() in error.lower()
    assert not out.exists()


def test_backtest_when_out_already_holds_a_run_then_refused_and_left_as_it_was(tmp_path: Path) -> None:
    data = write_csv(tmp_path / "btc.csv", gbm_rows(500, seed=2))
    config_path = tmp_path / "config.yaml"
    config_path.write_text(yaml.safe_dump(config_data_for_tests()))
    assert run_cli_backtest(config_path, data, tmp_path / "out") == 0
    before = sorted((p.name, p.stat().st_size) for p in (tmp_path / "out").rglob("*"))
    assert run_cli_backtest(config_path, data, tmp_path / "out") == 2
    assert sorted((p.name, p.stat().st_size) for p in (tmp_path / "out").rglob("*")) == before


def test_backtest_when_interrupted_then_the_equity_marks_so_far_are_journaled(tmp_path: Path) -> None:
    data = write_csv(tmp_path / "btc.csv", gbm_rows(3_000, seed=4))
    config = parse_config(deep_update(config_data_for_tests(), {"feed": {"seed_candles": 0}}))
    source = ReplaySource(data, "BTC/USD")
    steps = 0

    def stop_after_1000(count: int) -> None:
        nonlocal steps
        steps += count
        if steps >= 1_000:  # fast-forward reports minutes in runs, so the count may pass 1,000 in one call
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_backtest(config, ReplayFeed([source]), [source], tmp_path / "out", progress=stop_after_1000)
    records = read_journal(tmp_path / "out" / "journal")
    marks = sum(len(r["equity"]) for r in records if r["type"] == "EquitySeries")
    assert 1_000 <= marks == steps
    # The store says it was cut short, at the last minute it marked, so nobody takes it for a full replay.
    last = records[-1]
    assert (last["type"], last["reason"]) == ("RuntimeStopped", "interrupted")
    last_mark = max(r["ts_event"] for r in records if r["type"] == "EquitySeries")
    assert last["ts_event"] == last_mark
