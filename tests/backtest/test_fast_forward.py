"""Fast-forward: a backtest that skips quiet minutes journals exactly what the candle-by-candle run journals."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from desk.backtest import BacktestResult, run_backtest
from desk.config import DeskConfig, parse_config
from desk.core.types import Candle, CandleColumns, Signal
from desk.services.feed.replay import ReplayFeed, ReplaySource
from desk.services.feed.simulated import SimulatedMarket
from desk.strategies.base import CandleWindow, SignalTape, Strategy, StrategyParams, VectorisedStrategy
from desk.strategies.registry import build_strategy
from tests.backtest.test_backtest_runs import START, write_csv
from tests.conftest import config_data_for_tests, deep_update, read_journal, without_wall_clock

SYMBOLS = ["BTC/USD", "ETH/USD"]


class CandleByCandleTape:
    """Any strategy, with a tape computed by feeding a fresh copy of it candle by candle.

    Exactly the tape contract, by construction: so these tests check the driver,
    not a strategy's vectorised arithmetic (tests/strategies hold those equal).
    """

    def __init__(self, slug: str, params: dict[str, Any]) -> None:
        self._slug, self._params = slug, params
        self._live = build_strategy(slug, params)
        self.Params = self._live.Params
        self.warmup = self._live.warmup

    def on_candle(self, candle: Candle, window: CandleWindow, **kwargs: Any) -> Signal | None:
        return self._live.on_candle(candle, window)

    def features(self, window: CandleWindow, **kwargs: Any) -> dict[str, float]:
        return self._live.features(window)

    def signal_tape(self, columns: CandleColumns, window_capacity: int) -> SignalTape:
        strategy: Strategy = build_strategy(self._slug, self._params)
        window = CandleWindow(window_capacity)
        bars, signals, features = [], [], []
        names = ("ts", "open", "high", "low", "close", "volume")
        rows = zip(*(getattr(columns, name).tolist() for name in names), strict=True)
        for index, (ts, open_, high, low, close, volume) in enumerate(rows):
            candle = Candle("X/USD", ts, open_, high, low, close, volume)
            window.append(candle)
            signal = strategy.on_candle(candle, window)
            if signal is not None:
                bars.append(index)
                signals.append(signal)
                features.append(strategy.features(window))
        return SignalTape(np.asarray(bars, dtype=np.int64), tuple(signals), tuple(features))


def market_files(tmp_path: Path, minutes: int, holes: dict[str, list[range]]) -> list[ReplaySource]:
    """Simulated-market candles per symbol, with the given ranges of minutes cut out."""
    market = SimulatedMarket(SYMBOLS, 11, START)
    batches = [market.next_candles() for _ in range(minutes)]
    sources = []
    for symbol in SYMBOLS:
        cut = {minute for hole in holes.get(symbol, []) for minute in hole}
        rows = [
            (c.ts, c.open, c.high, c.low, c.close, c.volume)
            for minute, batch in enumerate(batches)
            for c in batch
            if c.symbol == symbol and minute not in cut
        ]
        sources.append(ReplaySource(write_csv(tmp_path / f"{symbol.replace('/', '')}.csv", rows), symbol))
    return sources


def busy_config(**risk: Any) -> DeskConfig:
    """Tight stops, take-profits, a trailing stop and risk limits that trip: every kind of event."""
    data = deep_update(
        config_data_for_tests(),
        {
            "feed": {"symbols": SYMBOLS, "seed_candles": 60},
            "risk": {
                "stop_pct": 0.004,
                "take_profit_r": 1.5,
                "daily_loss_limit_pct": 0.006,
                "trapdoor_pct": 0.03,
                "max_drawdown_pct": 0.05,
                "risk_per_trade_usd": 150.0,
                **risk,
            },
        },
    )
    data["workers"] = [
        {"name": "btc-sma", "symbol": "BTC/USD", "strategy": "sma_cross", "params": {"fast": 5, "slow": 20}},
        {"name": "btc-rsi", "symbol": "BTC/USD", "strategy": "rsi", "params": {}},
        {
            "name": "eth-breakout",
            "symbol": "ETH/USD",
            "strategy": "breakout",
            "params": {},
            "risk": {"trailing_stop_pct": 0.003},
        },
        {"name": "eth-sma", "symbol": "ETH/USD", "strategy": "sma_cross", "params": {"fast": 8, "slow": 21}},
    ]
    return parse_config(data)


def run(config: DeskConfig, sources: list[ReplaySource], out: Path, *, fast_forward: bool) -> BacktestResult:
    overrides = {w.name: CandleByCandleTape(w.strategy, dict(w.params)) for w in config.workers}
    return run_backtest(
        config, ReplayFeed(sources), sources, out, strategy_overrides=overrides, fast_forward=fast_forward
    )


def journals_of(tmp_path: Path, config: DeskConfig, sources: list[ReplaySource]) -> tuple[list[dict[str, Any]], ...]:
    fast = run(config, sources, tmp_path / "fast", fast_forward=True)
    slow = run(config, sources, tmp_path / "slow", fast_forward=False)
    assert fast.path == "fast-forward"
    assert slow.path.startswith("candle by candle")
    assert fast.minutes == slow.minutes
    return (
        without_wall_clock(read_journal(tmp_path / "fast" / "journal")),
        without_wall_clock(read_journal(tmp_path / "slow" / "journal")),
    )


def types(records: list[dict[str, Any]]) -> set[str]:
    return {r["type"] for r in records}


@pytest.mark.parametrize("fill_at", ["next_open", "close"])
def test_fast_forward_when_trades_stops_trailing_risk_and_gaps_happen_then_the_journal_equals_candle_by_candle(
    tmp_path: Path, fill_at: str
) -> None:
    holes = {"ETH/USD": [range(30, 34), range(900, 960)], "BTC/USD": [range(2_000, 2_003)]}
    sources = market_files(tmp_path, 6_000, holes)
    config = busy_config()
    config = config.model_copy(
        update={
            "portfolio": config.portfolio.model_copy(
                update={"fees": config.portfolio.fees.model_copy(update={"fill_at": fill_at})}
            )
        }
    )
    fast, slow = journals_of(tmp_path, config, sources)
    # The scenario must reach every kind of event the fast path has to find on its own.
    fills = {r["purpose"] for r in slow if r["type"] == "OrderFilled"}
    assert {"entry", "stop_loss", "take_profit", "exit"} <= fills
    assert {"StopMoved", "RiskStateChanged", "FeedGap", "EquitySeries", "PositionClosed"} <= types(slow)
    assert {r["state"] for r in slow if r["type"] == "RiskStateChanged"} == {"REDUCING", "ACTIVE"}
    assert fast == slow


def test_fast_forward_when_the_drawdown_limit_halts_trading_mid_run_then_the_journal_equals_candle_by_candle(
    tmp_path: Path,
) -> None:
    sources = market_files(tmp_path, 3_000, {})
    fast, slow = journals_of(
        tmp_path, busy_config(max_drawdown_pct=0.004, trapdoor_pct=None, daily_loss_limit_pct=None), sources
    )
    assert "HALTED" in {r["state"] for r in slow if r["type"] == "RiskStateChanged"}
    assert fast == slow


class NoTape:
    """A strategy with no signal tape: the backtest must step every minute for it."""

    Params = StrategyParams
    warmup = 1

    def on_candle(self, candle: Candle, window: CandleWindow, **kwargs: Any) -> Signal | None:
        return None

    def features(self, window: CandleWindow, **kwargs: Any) -> dict[str, float]:
        return {}


def test_backtest_when_one_worker_has_no_signal_tape_then_it_runs_candle_by_candle_and_says_why(
    tmp_path: Path,
) -> None:
    sources = market_files(tmp_path, 300, {})
    config = busy_config()
    overrides: dict[str, Strategy] = {w.name: CandleByCandleTape(w.strategy, dict(w.params)) for w in config.workers}
    overrides["btc-rsi"] = NoTape()
    result = run_backtest(config, ReplayFeed(sources), sources, tmp_path / "out", strategy_overrides=overrides)
    assert not isinstance(overrides["btc-rsi"], VectorisedStrategy)
    assert result.path == "candle by candle: worker btc-rsi: strategy rsi has no signal tape"
    assert result.minutes == 300 - config.feed.seed_candles


def test_fast_forward_when_the_default_workers_use_their_own_signal_tapes_then_the_journal_equals_candle_by_candle(
    tmp_path: Path,
) -> None:
    config = parse_config(config_data_for_tests())  # the shipped workers, their strategies' own tapes
    market = SimulatedMarket(config.feed.symbols, 5, START)
    batches = [market.next_candles() for _ in range(4_000)]
    sources = []
    for symbol in config.feed.symbols:
        rows = [(c.ts, c.open, c.high, c.low, c.close, c.volume) for b in batches for c in b if c.symbol == symbol]
        sources.append(ReplaySource(write_csv(tmp_path / f"{symbol.replace('/', '')}.csv", rows), symbol))
    fast = run_backtest(config, ReplayFeed(sources), sources, tmp_path / "fast")
    slow = run_backtest(config, ReplayFeed(sources), sources, tmp_path / "slow", fast_forward=False)
    assert slow.path == "candle by candle: fast-forward switched off"
    assert fast.path == "fast-forward"
    journal = without_wall_clock(read_journal(tmp_path / "slow" / "journal"))
    assert len([r for r in journal if r["type"] == "PositionClosed"]) >= 5
    assert without_wall_clock(read_journal(tmp_path / "fast" / "journal")) == journal
