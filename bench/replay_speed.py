"""Replay speed: the desk's full engine path against backtesting.py on the same candles.

Generates seeded geometric-Brownian-motion 1-minute candles (100k and 1M bars by
default), then on the same data and in the same run:

- replays them through the desk (`desk.backtest.run_backtest`: worker, learner,
  risk, portfolio, execution, paper broker, journal and SQLite) with one
  `sma_cross(10, 30)` worker, all-in sizing, 0.26 % fee per side, fills at the
  next open;
- runs the same strategy in backtesting.py's `FractionalBacktest` (install with
  `.venv/bin/python -m pip install -r bench/requirements.txt`).

Prints bars/s for both, the ratio, both closed-trade counts and both final
equities. Both exclude loading the data. Under each size it prints the journal
floor: the time it takes only to construct, stamp, encode and write the events
the desk's run journaled, with no engine deciding anything, as a share of the
time the 2x target allows (half of backtesting.py's time). The instrument has no exchange minimum
beyond one satoshi (1e-8), the unit FractionalBacktest trades in, and the
account starts with a billion. Over 100k bars that keeps every order far above
the minimum; over 1M bars 5,707 round trips of fees wear it down to a few
hundredths of a cent, and from there most buy signals are refused as below the
minimum size (the desk journals each refusal; backtesting.py still manages one
more dust trade).

    .venv/bin/python bench/replay_speed.py [--bars 100000 1000000] [--seed 1]
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import math
import platform
import resource
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from desk.backtest import JOURNAL_BATCH, run_backtest  # noqa: E402
from desk.config import parse_config  # noqa: E402
from desk.core.events import event_from_record, event_to_record, stamp  # noqa: E402
from desk.core.types import Market  # noqa: E402
from desk.services.feed.replay import ReplayFeed, ReplaySource  # noqa: E402
from desk.services.logging import configure_logging  # noqa: E402
from desk.services.store.encoding import encode_json_bytes  # noqa: E402
from desk.services.store.journal import Journal  # noqa: E402
from tests.conftest import config_data_for_tests  # noqa: E402

SYMBOL = "GBM/USD"
FEE = 0.0026
START_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
# Fees of 0.26 % a side leave e^-10 of the account after 100k bars (1,975 round trips) and e^-30
# after 1M (5,707): a billion keeps the 100k run's orders far above one satoshi, not the 1M run's.
CASH = 1_000_000_000.0


def gbm_candles(bars: int, seed: int) -> pd.DataFrame:
    """1-minute OHLCV from GBM at 60 %/yr: open = previous close, wicks from two extra draws."""
    rng = np.random.default_rng(seed)
    sigma = 0.6 / np.sqrt(525_600)
    log_returns = rng.normal(-0.5 * sigma**2, sigma, bars)
    close = 60_000.0 * np.exp(np.cumsum(log_returns))
    open_ = np.concatenate(([60_000.0], close[:-1]))
    wick = np.abs(rng.normal(0.0, sigma, (2, bars)))
    high = np.maximum(open_, close) * (1.0 + wick[0])
    low = np.minimum(open_, close) * (1.0 - wick[1])
    volume = rng.lognormal(1.5, 0.5, bars)
    ts = START_MS + np.arange(bars, dtype=np.int64) * 60_000
    return pd.DataFrame({"ts": ts, "open": open_, "high": high, "low": low, "close": close, "volume": volume})


class BenchFeed(ReplayFeed):
    """The replay feed with FractionalBacktest's unit as the only exchange minimum."""

    def markets(self) -> dict[str, Market]:
        return {
            SYMBOL: Market(SYMBOL, "GBM", "USD", amount_decimals=8, price_decimals=8, min_amount=1e-8, min_cost=0.0)
        }


def desk_config(fast: int = 10, slow: int = 30) -> object:
    data = config_data_for_tests()
    data["settings"]["starting_cash"] = CASH
    data["feed"].update({"symbols": [SYMBOL], "seed_candles": 0})
    # No protective exits in reach and no risk halts: the crossover alone decides, as in backtesting.py.
    data["risk"].update(
        {
            "stop_pct": 0.49,
            "take_profit_r": 50.0,
            "trailing_stop_pct": None,
            "max_drawdown_pct": None,
            "trapdoor_pct": None,
            "daily_loss_limit_pct": None,
            "max_concurrent_positions": 1,
        }
    )
    data["portfolio"].update(
        {"sizing": "pct_equity", "pct_equity": 1.0, "max_allocation_per_worker": 1.0, "cash_buffer": 0.0}
    )
    data["portfolio"]["fees"] = {
        "taker": FEE,
        "maker": FEE,
        "slippage_bps": 0.0,
        "impact_bps_per_volume_pct": 0.0,
        "max_volume_fraction": 1.0,
        "fill_at": "next_open",
    }
    data["workers"] = [
        {"name": "sma", "symbol": SYMBOL, "strategy": "sma_cross", "params": {"fast": fast, "slow": slow}}
    ]
    return parse_config(data)


def journal_floor(journal_dir: Path, scratch: Path) -> tuple[float, int]:
    """Return the best of three timings of producing this journal with no engine at all, and its event count.

    Each journaled event is rebuilt from its fields beforehand; the timed part is
    only what the event grammar (frozen dataclasses, one JSON line each) asks of
    every event, whatever the engines do: construct the event, stamp its
    envelope, turn it into a record, encode it, and write the lines to a file.
    No strategy, risk, sizing, matching, state or SQLite.
    """
    envelope = {"seq", "id", "ts_init"}
    fields = [
        (type(event), {f.name: getattr(event, f.name) for f in dataclasses.fields(event) if f.name not in envelope})
        for event in map(event_from_record, Journal(journal_dir).read())
    ]
    best = math.inf
    # A floor must not be inflated by collections over the rest of this process's heap: GC off while timed.
    gc.collect()
    gc.disable()
    try:
        for _ in range(3):
            best = min(best, _produce(fields, scratch / "floor.jsonl"))
    finally:
        gc.enable()
    return best, len(fields)


def _produce(fields: list[tuple[type, dict[str, object]]], path: Path) -> float:
    """Seconds to construct, stamp, record, encode and write the events once, in the backtest's batches."""
    with path.open("wb") as sink:
        started = time.perf_counter()
        for first in range(0, len(fields), JOURNAL_BATCH):
            lines = []
            for seq, (kind, values) in enumerate(fields[first : first + JOURNAL_BATCH], start=first + 1):
                event = kind(**values)
                stamp(event, seq, 0)
                lines.append(encode_json_bytes(event_to_record(event)))
            lines.append(b"")
            sink.write(b"\n".join(lines))
        return time.perf_counter() - started


@dataclasses.dataclass(frozen=True)
class DeskRun:
    seconds: float
    trades: int
    equity: float
    load_s: float
    path: str
    peak_mb: float
    floor_s: float
    events: int


def run_desk(
    frame: pd.DataFrame, folder: Path, *, fast_forward: bool = True, periods: tuple[int, int] = (10, 30)
) -> DeskRun:
    path = folder / "gbm.parquet"
    frame.to_parquet(path, index=False)
    loaded = time.perf_counter()
    source = ReplaySource(path, SYMBOL, layout="generic")
    feed = BenchFeed([source])
    load_s = time.perf_counter() - loaded
    result = run_backtest(desk_config(*periods), feed, [source], folder / "out", fast_forward=fast_forward)
    # Sizes run smallest first and the floor and bt.py run after this, so the process's peak so far is
    # this size's desk run.
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    floor = journal_floor(folder / "out" / "journal", folder)
    return DeskRun(
        result.wall_seconds,
        len(result.recorder.trades),
        result.recorder.equity[-1],
        load_s,
        result.path,
        peak_mb,
        *floor,
    )


def run_backtesting_py(frame: pd.DataFrame, periods: tuple[int, int] = (10, 30)) -> tuple[float, int, float]:
    from backtesting import Strategy
    from backtesting.lib import FractionalBacktest, crossover

    def sma(values: np.ndarray, n: int) -> np.ndarray:
        return pd.Series(values).rolling(n).mean().to_numpy()

    class SmaCross(Strategy):
        def init(self) -> None:
            self.fast = self.I(sma, self.data.Close, periods[0])
            self.slow = self.I(sma, self.data.Close, periods[1])

        def next(self) -> None:
            if crossover(self.fast, self.slow):
                if not self.position:
                    self.buy()
            elif crossover(self.slow, self.fast) and self.position:
                self.position.close()

    data = frame.rename(columns=str.capitalize).set_index(pd.to_datetime(frame["ts"], unit="ms"))
    data = data[["Open", "High", "Low", "Close", "Volume"]]
    backtest = FractionalBacktest(data, SmaCross, cash=CASH, commission=FEE, finalize_trades=False)
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        stats = backtest.run()
    return time.perf_counter() - started, int(stats["# Trades"]), float(stats["Equity Final [$]"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bars", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--every-minute", action="store_true", help="step the desk through every minute")
    parser.add_argument(
        "--periods",
        type=int,
        nargs=2,
        default=(10, 30),
        metavar=("FAST", "SLOW"),
        help="the SMA periods (longer ones trade less often: how the ratio depends on trade density)",
    )
    args = parser.parse_args()
    configure_logging("WARNING")
    periods = (args.periods[0], args.periods[1])
    print(f"Python {platform.python_version()} on {platform.machine()}; sma_cross{periods}, fee {FEE:.2%} per side")
    header = (
        f"{'bars':>9} {'desk bars/s':>12} {'bt.py bars/s':>13} {'ratio':>6} {'desk trades':>12} {'bt.py trades':>13}"
    )
    print(header + f" {'desk equity':>14} {'bt.py equity':>14} {'desk load s':>12}")
    for bars in args.bars:
        frame = gbm_candles(bars, args.seed)
        with tempfile.TemporaryDirectory() as folder:
            desk = run_desk(frame, Path(folder), fast_forward=not args.every_minute, periods=periods)
        bt_s, bt_trades, bt_equity = run_backtesting_py(frame, periods)
        desk_rate, bt_rate = bars / desk.seconds, bars / bt_s
        print(
            f"{bars:>9} {desk_rate:>12,.0f} {bt_rate:>13,.0f} {desk_rate / bt_rate:>6.2f} {desk.trades:>12}"
            f" {bt_trades:>13} {desk.equity:>14.6g} {bt_equity:>14.6g} {desk.load_s:>12.2f}"
        )
        print(f"{'':>9} desk path: {desk.path}; process peak RSS after the desk run: {desk.peak_mb:,.0f} MB")
        budget_s = bt_s / 2.0
        print(
            f"{'':>9} journal floor: {desk.floor_s:.3f} s for {desk.events:,} events"
            f" ({desk.floor_s / desk.events * 1e6:.1f} µs each) = {desk.floor_s / budget_s:.0%} of the"
            f" {budget_s:.3f} s the 2x target allows"
        )
    print("desk = the full engine path with journal and SQLite projection; both exclude loading the data.")


if __name__ == "__main__":
    main()
