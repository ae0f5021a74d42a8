"""Fast-forward and candle by candle journal the same warm-up, faults of workers it never asks included."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from desk.backtest import run_backtest
from desk.config import parse_config
from desk.core.types import Candle, Signal
from desk.services.feed.replay import ReplayFeed
from desk.strategies.base import CandleWindow, Strategy, StrategyParams
from tests.backtest.test_fast_forward import CandleByCandleTape, busy_config, market_files
from tests.conftest import read_journal, without_wall_clock


class Broken:
    """A strategy that raises on every candle (and has no signal tape)."""

    Params = StrategyParams
    warmup = 1

    def on_candle(self, candle: Candle, window: CandleWindow, **kwargs: Any) -> Signal | None:
        raise RuntimeError("broken strategy")

    def features(self, window: CandleWindow, **kwargs: Any) -> dict[str, float]:
        return {}


def test_fast_forward_when_a_disabled_workers_strategy_raises_during_warm_up_then_the_journal_equals_candle_by_candle(
    tmp_path: Path,
) -> None:
    # backtest.py seeds every worker during the warm-up on the candle-by-candle path, disabled ones
    # included, and journals their faults; the fast-forward path seeds nobody.
    data = busy_config().model_dump()
    data["workers"].append(
        {"name": "eth-off", "symbol": "ETH/USD", "strategy": "sma_cross", "params": {}, "enabled": False}
    )
    config = parse_config(data)
    sources = market_files(tmp_path, 600, {})
    journals = []
    for fast_forward in (True, False):
        overrides: dict[str, Strategy] = {
            w.name: CandleByCandleTape(w.strategy, dict(w.params)) for w in config.workers if w.enabled
        }
        overrides["eth-off"] = Broken()
        out = tmp_path / ("fast" if fast_forward else "slow")
        result = run_backtest(
            config, ReplayFeed(sources), sources, out, strategy_overrides=overrides, fast_forward=fast_forward
        )
        assert result.path.startswith("fast-forward" if fast_forward else "candle by candle")
        journals.append(without_wall_clock(read_journal(out / "journal")))
    fast, slow = journals
    slow_faults = [r for r in slow if r["type"] == "WorkerFaulted"]
    fast_faults = [r for r in fast if r["type"] == "WorkerFaulted"]
    assert len(fast_faults) == len(slow_faults), (len(fast_faults), len(slow_faults))
    assert fast == slow
