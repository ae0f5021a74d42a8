"""Fast-forward against candle by candle on seeded random scenarios: the journals must be equal, record by record.

The hand-built scenarios in test_fast_forward.py pin the kinds of events the fast
path has to find on its own; this one draws small scenarios from a wide space
(1-3 symbols, jumps, gapped opens, thin and empty volume, flat stretches, holes
at the start, the end, inside the warm-up; late and early symbols; minutes no
symbol has; replay windows; random risk, sizing and fill settings) so that
combinations nobody thought of get checked in CI too. The seeds are fixed: a
failure names its seed and reproduces exactly.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from desk.backtest import BacktestResult, run_backtest
from desk.config import DeskConfig, parse_config
from desk.core.types import MINUTE_MS, Candle, CandleColumns, Side, Signal
from desk.engines.trading import TradingCore
from desk.services.feed.replay import ReplayFeed, ReplaySource
from desk.strategies.base import CandleWindow, SignalTape, Strategy, StrategyParams
from tests.backtest.test_backtest_runs import START, write_csv
from tests.conftest import config_data_for_tests, deep_update, read_journal, without_wall_clock

# Reference prices for the symbols drawn from: Kraken's rules for the majors, derived ones for the others.
# SHIB's ten-decimal tick tests the trailing search's rounding margin at the other end of the scale.
PRICES = {"BTC/USD": 60_000.0, "ETH/USD": 3_000.0, "SOL/USD": 150.0, "DOGE/USD": 0.15, "SHIB/USD": 0.0000213}
SEEDS = range(20)

Row = tuple[int, float, float, float, float, float]
# A scenario's config, data files, strategy overrides and a factory of fresh feeds over its files.
Scenario = tuple[DeskConfig, list[ReplaySource], dict[str, Strategy], Callable[[], ReplayFeed]]


class HashedSignals:
    """Buys (with explicit stops and take-profits, some invalid) and sells drawn from each candle's time.

    The answer depends on the candle alone, so the tape equals the live answers by
    construction. It reaches what the shipped strategies rarely do: a take-profit
    or stop the very next open already crosses, entries every few minutes.
    """

    class Params(StrategyParams):
        seed: int = 0
        buy_p: float = 0.02
        sell_p: float = 0.01
        stop_span: float = 0.01
        take_span: float | None = 0.01

    warmup = 1

    def __init__(self, params: HashedSignals.Params) -> None:
        self.params = params

    def _answer(self, ts: int, close: float) -> Signal | None:
        p = self.params
        draw = random.Random(ts * 1_000_003 + p.seed)
        u = draw.random()
        if u < p.buy_p:
            # Slightly negative spans put the stop above the price or the target below it: denied entries.
            stop = close * (1.0 - draw.uniform(-0.1, 1.0) * p.stop_span) if draw.random() < 0.8 else None
            take = None
            if p.take_span is not None and draw.random() < 0.7:
                take = close * (1.0 + draw.uniform(-0.05, 1.0) * p.take_span)
            return Signal(Side.BUY, stop_price=stop, take_profit=take, confidence=draw.random(), reason="hashed")
        if u < p.buy_p + p.sell_p:
            return Signal(Side.SELL, reason="hashed")
        return None

    def on_candle(self, candle: Candle, window: CandleWindow, **kwargs: Any) -> Signal | None:
        return self._answer(candle.ts, candle.close)

    def features(self, window: CandleWindow, **kwargs: Any) -> dict[str, float]:
        return {"close": float(window.last_close)}

    def signal_tape(self, columns: CandleColumns, window_capacity: int) -> SignalTape:
        bars: list[int] = []
        signals: list[Signal] = []
        features: list[dict[str, float]] = []
        for index, (ts, close) in enumerate(zip(columns.ts.tolist(), columns.close.tolist(), strict=True)):
            signal = self._answer(ts, close)
            if signal is not None:
                bars.append(index)
                signals.append(signal)
                features.append({"close": close})
        return SignalTape(np.asarray(bars, dtype=np.int64), tuple(signals), tuple(features))


def candle_rows(rng: random.Random, minutes: int, price: float) -> list[tuple[float, float, float, float, float]]:
    """GBM-like 1-minute candles with jumps, gapped opens, thin or empty volume and flat stretches."""
    sigma = rng.choice([0.0005, 0.002, 0.006])
    drift = rng.uniform(-0.05, 0.05) * sigma
    jump_p, gap_open_p = rng.choice([0.0, 0.005, 0.03]), rng.choice([0.0, 0.05, 0.3])
    thin_p, flat_p = rng.choice([0.0, 0.1, 0.8]), rng.choice([0.0, 0.0, 0.01])
    volume_scale = rng.choice([0.01, 1.0, 100.0]) * 60_000 / price
    rows: list[tuple[float, float, float, float, float]] = []
    close, flat_left = price, 0
    for _ in range(minutes):
        if flat_left or rng.random() < flat_p:
            # Identical bars with no range and mostly no volume, as thin markets print them.
            flat_left = flat_left - 1 if flat_left else rng.choice([1, 10, 100])
            level = float(f"{close:.8g}")
            rows.append((level, level, level, level, 0.0 if rng.random() < 0.7 else 1.0))
            continue
        open_ = close * math.exp(rng.gauss(0, 2 * sigma)) if rng.random() < gap_open_p else close
        move = drift + rng.gauss(0, sigma)
        if rng.random() < jump_p:
            move += rng.choice([-1, 1]) * rng.uniform(3, 15) * sigma
        close = open_ * math.exp(move)
        o, c = float(f"{open_:.8g}"), float(f"{close:.8g}")
        high = max(float(f"{max(open_, close) * (1 + abs(rng.gauss(0, sigma))):.8g}"), o, c)
        low = min(float(f"{min(open_, close) * (1 - abs(rng.gauss(0, sigma))):.8g}"), o, c)
        volume = volume_scale * rng.lognormvariate(0, 1) * (rng.choice([1e-6, 1e-3]) if rng.random() < thin_p else 1)
        rows.append((o, high, low, c, float(f"{volume:.6g}")))
    return rows


def holes(rng: random.Random, minutes: int, warm_up: int) -> set[int]:
    """Minutes cut from one symbol: at the start (late data), the end (early end), in the warm-up, anywhere."""
    cut: set[int] = set()
    for _ in range(rng.choice([0, 1, 2, 5])):
        length = rng.choice([1, 2, 3, 30, 200])
        at = rng.choice([0, minutes - length, rng.randrange(warm_up + 1), warm_up - 1, rng.randrange(minutes)])
        cut.update(range(max(at, 0), min(at + length, minutes)))
    return cut


def shipped_strategy(rng: random.Random) -> tuple[str, dict[str, Any]]:
    """A shipped strategy with random valid params, short enough to trade in a few hundred minutes."""
    slug = rng.choice(["sma_cross", "rsi", "breakout", "macd", "momentum", "bollinger"])
    atr: dict[str, Any] = {"atr_period": rng.randint(1, 20)}
    if slug != "sma_cross":
        atr["atr_mult"] = rng.choice([None, 0.5, 2.0, 8.0])
    if slug == "sma_cross":
        fast = rng.randint(1, 20)
        return slug, {"fast": fast, "slow": fast + rng.randint(1, 60), **atr}
    if slug == "rsi":
        levels = {"oversold": rng.uniform(15, 45), "overbought": rng.uniform(55, 85)}
        return slug, {"period": rng.randint(1, 30), **levels, **atr}
    if slug == "breakout":
        return slug, {"entry_period": rng.randint(1, 120), "exit_period": rng.randint(1, 60), **atr}
    if slug == "macd":
        fast = rng.randint(1, 10)
        return slug, {"fast": fast, "slow": fast + rng.randint(1, 20), "signal": rng.randint(1, 10), **atr}
    if slug == "momentum":
        threshold = rng.choice([0.0005, 0.003, 0.01])
        trend = rng.choice([None, rng.randint(2, 60)])
        return slug, {
            "lookback": rng.randint(1, 30),
            "threshold": threshold,
            "exit_below": rng.uniform(-0.01, 0.9 * threshold),
            "trend_period": trend,
            **atr,
        }
    band = rng.choice(["mid", "upper"])
    return slug, {"period": rng.randint(2, 40), "num_std": rng.uniform(0.3, 3.0), "exit_band": band, **atr}


def risk_settings(rng: random.Random) -> dict[str, Any]:
    """Tight and loose stops, targets, trailing and account limits; trapdoor never above the halt."""
    trapdoor = rng.choice([None, 0.0005, 0.003, 0.02])
    halt = rng.choice([None, 0.002, 0.01, 0.3])
    if trapdoor is not None and halt is not None and trapdoor > halt:
        trapdoor, halt = halt, trapdoor
    basis = (
        {"risk_per_trade_usd": rng.choice([5.0, 100.0, 5_000.0]), "risk_per_trade_pct": None}
        if rng.random() < 0.5
        else {"risk_per_trade_usd": None, "risk_per_trade_pct": rng.choice([0.001, 0.02, 0.1])}
    )
    return {
        "stop_pct": rng.choice([0.0005, 0.003, 0.02, 0.2]),
        "take_profit_r": rng.choice([0.2, 1.0, 3.0, 20.0]),
        "trailing_stop_pct": rng.choice([None, None, 0.0005, 0.003, 0.03]),
        "max_concurrent_positions": rng.randint(1, 5),
        "daily_loss_limit_pct": rng.choice([None, 0.0005, 0.003, 0.05]),
        "trapdoor_pct": trapdoor,
        "max_drawdown_pct": halt,
        **basis,
    }


def portfolio_settings(rng: random.Random) -> dict[str, Any]:
    """Each sizing method; fills at the next open or the close, slippage and impact on and off."""
    fees = {
        "fill_at": rng.choice(["next_open", "close"]),
        "taker": rng.choice([0.0, 0.0026]),
        "maker": rng.choice([0.0, 0.0016]),
        "slippage_bps": rng.choice([0.0, 2.0, 30.0]),
        "impact_bps_per_volume_pct": rng.choice([0.0, 1.0, 20.0]),
        "max_volume_fraction": rng.choice([0.01, 0.25, 1.0]),
    }
    return {
        "sizing": rng.choice(["fixed_risk", "pct_equity", "kelly"]),
        "pct_equity": rng.choice([0.05, 0.5]),
        "kelly_fraction": rng.choice([0.1, 1.0]),
        "kelly_min_trades": rng.choice([1, 20]),
        "max_allocation_per_worker": rng.choice([0.1, 1.0]),
        "cash_buffer": rng.choice([0.0, 0.005, 0.1]),
        "fees": fees,
    }


def scenario(seed: int, folder: Path) -> Scenario:
    """Scenario `seed`, its data files written into `folder`."""
    rng = random.Random(seed)
    minutes = rng.choice([300, 800, 1_500, 3_000])
    symbols = rng.sample(sorted(PRICES), rng.randint(1, 3))
    warm_up = rng.choice([0, 1, 30, 120])
    # A window cuts the first quarter and the last half at most; minute `anchor` is kept in every
    # symbol, so no symbol is left without candles inside it.
    windowed = rng.random() < 0.25
    anchor = minutes // 3
    nobody = holes(rng, minutes, warm_up) if rng.random() < 0.2 else set()  # minutes no symbol has
    first = START + rng.choice([0, rng.randrange(1_440)]) * MINUTE_MS  # day boundaries anywhere
    sources = []
    for symbol in symbols:
        cut = (holes(rng, minutes, warm_up) | nobody) - {anchor}
        rows = candle_rows(rng, minutes, PRICES[symbol] * rng.uniform(0.7, 1.3))
        kept: list[Row] = [(first + i * MINUTE_MS, *row) for i, row in enumerate(rows) if i not in cut]
        sources.append(ReplaySource(write_csv(folder / f"{symbol.replace('/', '')}.csv", kept), symbol))
    workers: list[dict[str, Any]] = []
    overrides: dict[str, Strategy] = {}
    for index in range(rng.randint(1, 4)):
        slug, params = shipped_strategy(rng)
        name = f"w{index}-{slug}"
        worker: dict[str, Any] = {"name": name, "symbol": rng.choice(symbols), "strategy": slug, "params": params}
        worker["weight"] = rng.choice([0.5, 1.0, 2.0])
        if rng.random() < 0.3:
            worker["risk"] = {"trailing_stop_pct": rng.choice([0.0005, 0.005]), "stop_pct": rng.choice([0.001, 0.05])}
        if rng.random() < 0.3:
            hashed = HashedSignals.Params(
                seed=rng.randrange(1 << 30),
                buy_p=rng.choice([0.005, 0.05]),
                sell_p=rng.choice([0.0, 0.005, 0.02]),
                stop_span=rng.choice([0.0005, 0.005, 0.05]),
                take_span=rng.choice([None, 0.0005, 0.005, 0.05]),
            )
            overrides[name] = HashedSignals(hashed)
        workers.append(worker)
    data = deep_update(
        config_data_for_tests(),
        {
            "settings": {
                "starting_cash": rng.choice([200.0, 10_000.0, 1_000_000.0]),
                "lookback": rng.choice([10, 300]),
            },
            "feed": {"symbols": symbols, "seed_candles": warm_up},
            "risk": risk_settings(rng),
            "portfolio": portfolio_settings(rng),
            "ml": {"min_samples": rng.choice([1, 50]), "veto_below": rng.choice([0.0, 0.0, 0.3])},
        },
    )
    data["workers"] = workers
    window: dict[str, int | None] = {"start_ms": None, "end_ms": None}
    if windowed:
        window = {
            "start_ms": first + rng.randrange(minutes // 4) * MINUTE_MS,
            "end_ms": first + rng.randrange(minutes // 2, minutes) * MINUTE_MS,
        }
    return parse_config(data), sources, overrides, lambda: ReplayFeed(sources, **window)


def test_fast_forward_when_seeded_random_scenarios_replay_then_each_journal_equals_candle_by_candle(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    full_steps = 0
    step = TradingCore.step

    def counted(core: TradingCore, *args: Any) -> int:
        nonlocal full_steps
        full_steps += 1
        return step(core, *args)

    def replay(folder: Path, scenario_parts: Scenario, *, fast_forward: bool) -> BacktestResult:
        config, sources, overrides, feed = scenario_parts
        # The journal is written in this process either way; a projection process per run would only
        # add a process start to each run, for SQLite files nobody reads here.
        return run_backtest(
            config,
            feed(),
            sources,
            folder / ("fast" if fast_forward else "slow"),
            strategy_overrides=overrides,
            fast_forward=fast_forward,
            projection_process=False,
        )

    seen: set[str] = set()
    minutes = skipped = 0
    for seed in SEEDS:
        folder = tmp_path / f"seed{seed}"
        folder.mkdir()
        parts = scenario(seed, folder)
        full_steps = 0
        with monkeypatch.context() as patch:
            patch.setattr(TradingCore, "step", counted)
            fast = replay(folder, parts, fast_forward=True)
        slow = replay(folder, parts, fast_forward=False)
        assert fast.path == "fast-forward", f"seed {seed}: {fast.path}"
        assert slow.path.startswith("candle by candle"), f"seed {seed}: {slow.path}"
        assert fast.minutes == slow.minutes, f"seed {seed}"
        minutes, skipped = minutes + slow.minutes, skipped + fast.minutes - full_steps
        fast_journal = without_wall_clock(read_journal(folder / "fast" / "journal"))
        slow_journal = without_wall_clock(read_journal(folder / "slow" / "journal"))
        for index, (a, b) in enumerate(zip(fast_journal, slow_journal, strict=False)):
            assert a == b, f"seed {seed}: record {index} differs (fast {a['type']}, candle by candle {b['type']})"
        assert len(fast_journal) == len(slow_journal), f"seed {seed}"
        seen |= {r["type"] for r in slow_journal}
        seen |= {f"{r['purpose']} fill" for r in slow_journal if r["type"] == "OrderFilled"}
    # The batch must reach every kind of event the fast path has to find on its own, and skip most minutes:
    # otherwise it would hold the journals equal without testing the search.
    assert {"entry fill", "stop_loss fill", "take_profit fill", "exit fill"} <= seen
    assert {"StopMoved", "RiskStateChanged", "FeedGap", "EquitySeries", "PositionClosed"} <= seen
    assert skipped > minutes // 2
