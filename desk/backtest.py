"""Backtests: replay candle files through exactly the engines that trade live.

Only the seams differ from `desk.runtime`: a simulated clock driven by the
data, a replay feed, the paper broker, and workers evaluated one after another
on this thread (so a replay is deterministic and fast; there is no wall-clock
time limit on a strategy here). Everything is journaled and projected into a
store in `out_dir` that the control room can open.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import ClassVar

from desk.config import DeskConfig
from desk.core.clock import SimulatedClock, WallClock
from desk.core.errors import DeskError
from desk.core.events import (
    AccountOpened,
    ConfigApplied,
    EquitySampled,
    EquitySeries,
    Event,
    PositionClosed,
    PositionOpened,
    PositionReduced,
    RuntimeStarted,
    RuntimeStopped,
)
from desk.core.types import MINUTE_MS, Candle
from desk.engines.bus import EventBus
from desk.engines.trading import TradingCore
from desk.fast_forward import FastForward
from desk.services.broker.paper import PaperBroker
from desk.services.feed.replay import ReplayFeed, ReplaySource
from desk.services.store.store import EventStore
from desk.strategies.base import Strategy

# A backtest only needs the projection once it is done. Projected in process (sweeps), group commits
# keep SQLite off the hot path. A projection process commits on the other core instead, so it is
# handed every journaled batch at once: held back, the batches would only be projected after the
# run, while the run waits at close.
PROJECTION_LAG_S = 2.0
# And its journal is written in batches of about this many events rather than once a minute: an
# interrupted run still closes the store, which writes the rest, and a killed one is redone anyway.
JOURNAL_BATCH = 1024
Progress = Callable[[int], None]


class BacktestError(DeskError):
    """A backtest cannot start: its output folder is not usable."""


@dataclass(frozen=True, slots=True)
class OpenTrade:
    """A position not closed (yet): when it was entered, and the fees paid on it so far."""

    worker: str
    entry_ts: int
    fees: float


@dataclass(slots=True)
class RunRecorder:
    """Keeps what the report needs as the run goes, so it never has to re-read the journal.

    `open_trades` holds the positions still open, by position id; at the end of
    a run they are the ones the data ran out on, whose fees and time in the
    market the report counts too.
    """

    equity_ts: list[int] = field(default_factory=list)
    equity: list[float] = field(default_factory=list)
    exposed: list[bool] = field(default_factory=list)
    trades: list[PositionClosed] = field(default_factory=list)
    open_trades: dict[str, OpenTrade] = field(default_factory=dict)

    APPLIES: ClassVar[tuple[type[Event], ...]] = (
        EquitySampled,
        EquitySeries,
        PositionOpened,
        PositionReduced,
        PositionClosed,
    )

    def apply(self, event: Event) -> None:
        if isinstance(event, EquitySampled):
            self.equity_ts.append(event.ts_event)
            self.equity.append(event.equity)
            self.exposed.append(event.open_positions > 0)
        elif isinstance(event, EquitySeries):
            self.equity_ts.extend(range(event.start_ts, event.ts_event + 1, event.step_ms))
            self.equity.extend(event.equity)
            self.exposed.extend(count > 0 for count in event.open_positions)
        elif isinstance(event, PositionOpened):
            self.open_trades[event.position_id] = OpenTrade(event.worker, event.ts_event, event.entry_fee)
        elif isinstance(event, PositionReduced):
            held = self.open_trades.get(event.position_id)
            if held is not None:
                self.open_trades[event.position_id] = replace(held, fees=held.fees + event.fee)
        elif isinstance(event, PositionClosed):
            self.open_trades.pop(event.position_id, None)
            self.trades.append(event)


@dataclass(frozen=True, slots=True)
class BacktestResult:
    out_dir: Path
    minutes: int
    events: int
    wall_seconds: float
    starting_cash: float
    recorder: RunRecorder
    path: str  # "fast-forward", or why the run went candle by candle
    # Symbols whose data starts late or ends early (`ReplayFeed.short_coverage`), journaled in ConfigApplied.
    coverage_notes: tuple[str, ...] = ()


def prepare_out_dir(out_dir: Path) -> None:
    """Refuse an output folder that already holds a store; a backtest never appends to another run."""
    if (out_dir / "journal").exists() and any((out_dir / "journal").glob("*.jsonl")):
        raise BacktestError(f"{out_dir} already holds a journal; choose an empty --out folder")
    if (out_dir / "desk.db").exists():
        raise BacktestError(f"{out_dir} already holds desk.db; choose an empty --out folder")


def backtest_config(config: DeskConfig, out_dir: Path) -> DeskConfig:
    """The config with its store in the run's output folder, as the run will journal it."""
    # Relative paths resolve against out_dir, so two runs into two folders journal the same config.
    store = config.store.model_copy(update={"journal_dir": "journal", "database_url": "sqlite:///desk.db"})
    return config.model_copy(update={"store": store})


def run_backtest(
    config: DeskConfig,
    feed: ReplayFeed,
    sources: Sequence[ReplaySource],
    out_dir: Path,
    *,
    progress: Progress | None = None,
    strategy_overrides: Mapping[str, Strategy] | None = None,
    fast_forward: bool = True,
    projection_process: bool = True,
) -> BacktestResult:
    """Replay `feed` through the trading core, journaling into `out_dir`; the feed was validated on load.

    `strategy_overrides` puts a ready-made strategy instance into a named worker
    (scenario tests and research code that has not been given a slug yet).
    `fast_forward` skips quiet minutes when every strategy allows it (see
    `desk.fast_forward`); off, every minute is stepped, as the daemon does.
    `projection_process` projects into SQLite in a child process on another
    core while this one trades and journals (sweeps, whose processes already
    fill every core, turn it off).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    prepare_out_dir(out_dir)
    config = backtest_config(config, out_dir)
    wall = WallClock()
    started = time.perf_counter()
    lag_s = 0.0 if projection_process else PROJECTION_LAG_S
    store = EventStore(config.store, out_dir, projection_lag_s=lag_s, projection_process=projection_process)
    recorder = RunRecorder()
    bus = EventBus(wall, store)
    broker = PaperBroker(feed.markets(), config.portfolio.fees, config.settings.quote_currency)
    core = TradingCore(config, bus, broker, journal_market_data=False)
    for name, strategy in (strategy_overrides or {}).items():
        worker = core.worker(name)
        if worker is None:
            raise BacktestError(f"strategy override for unknown worker {name!r}")
        worker.strategy = strategy
    bus.subscribe(recorder)
    journaled_seq = 0

    def batched_flush() -> None:
        nonlocal journaled_seq
        if bus.last_seq - journaled_seq >= JOURNAL_BATCH:
            store.flush()
            journaled_seq = bus.last_seq

    minutes = 0
    path = "not started"
    coverage_notes = feed.short_coverage()
    # Opened last, just before the try that closes it: an open store may hold a projection process.
    stopped, stop_reason, clock = False, "interrupted", None
    store.open()
    try:
        first = feed.next_candles()
        if first is None:
            raise BacktestError("the data holds no candles in the requested range")
        clock = SimulatedClock(first[0].ts)
        bus.publish(
            [
                AccountOpened(
                    ts_event=first[0].ts, currency=config.settings.quote_currency, cash=config.settings.starting_cash
                ),
                RuntimeStarted(
                    ts_event=first[0].ts,
                    mode="backtest",
                    feed_source="replay",
                    config_hash=config.config_hash(),
                    recovered_events=0,
                ),
                ConfigApplied(
                    ts_event=first[0].ts,
                    config_hash=config.config_hash(),
                    workers=[w.name for w in core.workers],
                    changes={"data": [_describe(source) for source in sources], "coverage": coverage_notes},
                ),
            ]
        )
        warm_steps = min(config.feed.seed_candles, len(feed))
        driver = FastForward.prepare(core, feed, warm_steps) if fast_forward else "fast-forward switched off"
        path = "fast-forward" if isinstance(driver, FastForward) else f"candle by candle: {driver}"
        batch: list[Candle] | None = first
        # The first `seed_candles` minutes warm the workers up without trading, as in the daemon.
        for _ in range(warm_steps):
            assert batch is not None
            for candle in batch:
                core.remember(candle)
            for worker in core.workers:
                # Fast-forward's tapes have seen the warm-up already; workers it never asks still warm
                # up here, so a strategy that faults while warming is journaled the same either way.
                if not isinstance(driver, FastForward) or not worker.evaluates:
                    error = worker.seed([c for c in batch if c.symbol == worker.symbol])
                    if error is not None:
                        bus.publish(worker.fault(error, batch[0].ts + MINUTE_MS))
            batch = feed.next_candles()
        if isinstance(driver, FastForward):
            if batch is not None:
                clock.advance_to(driver.run(warm_steps, batched_flush, progress))
                minutes = len(feed) - warm_steps
        else:
            evaluate = core.evaluate_inline
            while batch is not None:
                clock.advance_to(core.step(batch, evaluate))
                batched_flush()
                minutes += 1
                if progress is not None:
                    progress(1)
                batch = feed.next_candles()
        bus.publish([RuntimeStopped(ts_event=clock.now_ms(), reason="replay finished")])
        stopped = True
    except BaseException as exc:
        stop_reason = "interrupted" if isinstance(exc, KeyboardInterrupt) else f"failed: {type(exc).__name__}"
        raise
    finally:
        # Also when interrupted: the marks buffered so far belong with the trades already journaled.
        if store.is_open:
            core.flush_equity_series()
            if not stopped and clock is not None:
                # A store cut short says so: the control room must not show it as a finished replay.
                last_ts = max(clock.now_ms(), recorder.equity_ts[-1] if recorder.equity_ts else 0)
                bus.publish([RuntimeStopped(ts_event=last_ts, reason=stop_reason)])
        store.close()
    return BacktestResult(
        out_dir=out_dir,
        minutes=minutes,
        events=bus.last_seq,
        wall_seconds=time.perf_counter() - started,
        starting_cash=config.settings.starting_cash,
        recorder=recorder,
        path=path,
        coverage_notes=tuple(coverage_notes),
    )


def _describe(source: ReplaySource) -> dict[str, str]:
    digest = hashlib.sha256(source.path.read_bytes()).hexdigest()[:16]
    return {"symbol": source.symbol, "path": str(source.path), "sha256": digest}
